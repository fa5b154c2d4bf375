"""Generated inputs of the paper: every table, figure and quoted number is a rule output.

Built from the per-run score files, the training metrics, the canonical data, the resolved
config and Snakemake's benchmark files, never typed in. Each ``*_table`` function returns
LaTeX (booktabs) and, where a table has numbers, the same numbers as a DataFrame for a CSV.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from xstilts import formats, tables
from xstilts.tasks import (
    BASELINE,
    DATASETS,
    DISPLAY_NAMES,
    INTERMEDIATE_TASKS,
    MULTITASK,
    TARGET_TASKS,
    TARGET_TRAININGS,
)
from xstilts.xtreme import GROUP2TASKS, QA_TASKS

GROUPS = GROUP2TASKS["xtreme"]
METRIC_NAMES = {"accuracy": "Acc.", "seqeval_f1": "F1", "token_accuracy": "Token acc.", "squad": "(EM+F1)/2"}
TARGET_METRICS = {"pair_classification": "Acc.", "tagging": "F1", "span_qa": "EM / F1", "bitext_mining": "F1",
                  "parallel_sentences": "Acc."}


def _tex(text: str) -> str:
    """Escape LaTeX special characters of plain text."""
    return re.sub(r"([&%$#_{}])", r"\\\1", text).replace("~", r"\textasciitilde{}").replace("^", r"\^{}")


def _latex_table(rows: list[list[str]], header: list[str], caption: str, label: str, align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    # Shrunk to the text width only when wider (graphicx's \resizebox measures it as \width).
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             f"\\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}}", f"\\caption{{{caption}}}", f"\\label{{{label}}}", r"\end{table}", ""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Datasets


def count_examples(data_root: str | Path, dataset: str, lang: str, split: str) -> int:
    """Examples in one canonical split (sentence pairs for BUCC's gold, lines for text)."""
    files = formats.data_files(data_root, dataset, lang, split)
    if "records" in files:
        return sum(1 for line in formats.read_lines(files["records"]) if line.strip())
    if "gold" in files:
        return len(formats.read_lines(files["gold"]))
    return len(formats.read_lines(files.get("source") or files["text"]))


def dataset_table(data_root: str | Path, layout: dict[str, dict[str, list[str]]], intermediate: list[str],
                  targets: list[str], caption: str, variant_caption: str = "") -> tuple[str, pd.DataFrame]:
    """Tasks, formats, sizes, languages and metrics of the run's data (counted from the files).

    Machine translations and the MLM corpus (variants' data, a stand-in model's phase 1) get a
    row each when the grid reads them (``layout`` has them), and ``variant_caption`` is then
    appended to the caption."""
    rows, records = [], []

    def size(dataset: str, split: str, per_language: bool = False) -> str:
        langs = layout.get(dataset, {}).get(split, [])
        if not langs:
            return "--"
        counts = [count_examples(data_root, dataset, lang, split) for lang in langs]
        return f"{round(sum(counts) / len(counts)):,}" if per_language else f"{sum(counts):,}"

    for name in intermediate:
        task = INTERMEDIATE_TASKS[name]
        train = sum(count_examples(data_root, s.dataset, s.lang, "train") for s in task.train)
        dev = sum(count_examples(data_root, s.dataset, s.lang, "dev") for s in task.dev)
        fmt = task.format.replace("_", " ")
        row = ["intermediate", DISPLAY_NAMES[name], fmt, f"{train:,}", f"{dev:,}", "--", "1", METRIC_NAMES[task.metric]]
        rows.append(row)
        records.append(row)
    for name in targets:
        target = TARGET_TASKS[name]
        training = TARGET_TRAININGS[target.training] if target.training else None
        train = (f"{sum(count_examples(data_root, s.dataset, s.lang, 'train') for s in training.train):,}"
                 if training else "--")
        dev = size(name, "dev", per_language=True) if "dev" in layout.get(name, {}) else "--"
        langs = len(layout.get(name, {}).get("test", []))
        row = ["target", DISPLAY_NAMES[name], target.format.replace("_", " "), train, dev,
               size(name, "test", per_language=True), str(langs), TARGET_METRICS[target.format]]
        rows.append(row)
        records.append(row)
    extra = [d for d in DATASETS if d in layout and (DATASETS[d].translation_of or DATASETS[d].corpus)]
    for name in extra:
        data = DATASETS[name]
        langs = layout[name].get("train", [])
        train = sum(count_examples(data_root, name, lang, "train") for lang in langs)
        metric = METRIC_NAMES[INTERMEDIATE_TASKS[data.translation_of].metric] if data.translation_of else "--"
        row = ["translation" if data.translation_of else "corpus", DISPLAY_NAMES.get(name, name),
               data.format.replace("_", " "), f"{train:,}", "--", "--", str(len(langs)), metric]
        rows.append(row)
        records.append(row)
    if extra and variant_caption:
        caption = f"{caption} {variant_caption}"
    header = ["", "Task", "Format", "Train (en)", "Dev / lang.", "Test / lang.", "Langs.", "Metric"]
    latex_rows = [[_tex(c) for c in r] for r in rows]
    latex = _latex_table(latex_rows, header, _tex(caption), "tab:datasets", "llllrrrl")
    return latex, pd.DataFrame(records, columns=["phase", *header[1:]])


# --------------------------------------------------------------------------------------------
# Hyperparameters


def hyperparameter_table(jobs: dict[str, dict[str, Any]], caption: str) -> str:
    """One row per trained task from the jobs' effective settings (``Plan.*_job``)."""
    rows = []
    for name, hp in jobs.items():
        eff = hp["batch_size"] * hp["grad_accum"]
        steps = f"{hp['max_steps']} steps" if hp.get("max_steps") else f"{hp['epochs']:g} ep."
        rows.append([_tex(name), f"{hp['learning_rate']:.0e}".replace("e-0", "e-"), steps, str(eff),
                     str(hp["max_seq_length"]), f"{hp['warmup_ratio']:g}", str(hp["eval_every_steps"] or "epoch"),
                     str(hp["patience"] or "--")])
    header = ["Training", "LR", "Length", "Batch", "Max len.", "Warmup", "Eval every", "Patience"]
    return _latex_table(rows, header, _tex(caption), "tab:hparams")


# --------------------------------------------------------------------------------------------
# Compute


def compute_table(benchmark_files: Iterable[tuple[str, str | Path]], gpu_rules: set[str], caption: str) -> tuple[str, pd.DataFrame]:
    """Wall-clock and GPU-hours per rule from Snakemake ``benchmark:`` files, given as
    (rule, path) pairs (one GPU per job for GPU rules)."""
    totals: dict[str, list[float]] = {}
    for rule, path in benchmark_files:
        frame = pd.read_csv(path, sep="\t")
        totals.setdefault(rule, []).append(float(frame["s"].iloc[-1]))
    records = []
    for rule in sorted(totals):
        seconds = totals[rule]
        gpu_hours = sum(seconds) / 3600 if rule in gpu_rules else 0.0
        records.append({"rule": rule, "jobs": len(seconds), "wall_hours": sum(seconds) / 3600,
                        "mean_minutes": sum(seconds) / len(seconds) / 60, "gpu_hours": gpu_hours})
    df = pd.DataFrame(records, columns=["rule", "jobs", "wall_hours", "mean_minutes", "gpu_hours"])
    rows = [[_tex(r["rule"]), str(r["jobs"]), f"{r['wall_hours']:.2f}", f"{r['mean_minutes']:.1f}",
             f"{r['gpu_hours']:.2f}" if r["rule"] in gpu_rules else "--"] for r in records]
    rows.append([r"\textbf{total}", str(int(df["jobs"].sum())), f"{df['wall_hours'].sum():.2f}", "",
                 f"{df['gpu_hours'].sum():.2f}"])
    latex = _latex_table(rows, ["Rule", "Jobs", "Wall-clock h", "Mean min / job", "GPU-h"], _tex(caption),
                         "tab:compute")
    return latex, df


# --------------------------------------------------------------------------------------------
# Selection and summary


def dev_scores(target_metrics: Iterable[tuple[str, str, str | Path]],
               bucc_details: Iterable[tuple[str, str | Path]]) -> dict[tuple[str, str], float]:
    """(encoder, target) -> dev score used to pick the best intermediate task per target.

    ``target_metrics``: (encoder, training, metrics.json) of every phase-3 run; ``bucc_details``:
    (encoder, BUCC details file). Trained targets: the English dev score of their training (mean
    over seeds); BUCC: the mean dev F1 over languages (the tuned threshold's); Tatoeba has no dev
    split, so it follows the encoder that is best on BUCC dev, the closest retrieval dev signal.
    """
    per: dict[tuple[str, str], list[float]] = {}
    for encoder, training, path in target_metrics:
        with open(path, encoding="utf-8") as f:
            result = json.load(f)["result"]
        for target, spec in TARGET_TASKS.items():
            if spec.training == training:
                per.setdefault((encoder, target), []).append(float(result["dev"][training]["score"]))
    for encoder, path in bucc_details:
        with open(path, encoding="utf-8") as f:
            details = json.load(f)
        langs = details["languages"]
        score = sum(v["dev"]["f1"] for v in langs.values()) / len(langs)
        per[(encoder, "bucc2018")] = [score]
        per[(encoder, "tatoeba")] = [score]
    return {key: sum(v) / len(v) for key, v in per.items()}


def best_per_target(dev: dict[tuple[str, str], float], encoders: list[str], targets: list[str]) -> dict[str, str]:
    """The intermediate encoder with the best dev score for each target (ties: registry order)."""
    candidates = [e for e in encoders if e != BASELINE]
    best = {}
    for target in targets:
        scored = [(dev[(e, target)], -i, e) for i, e in enumerate(candidates) if (e, target) in dev]
        if scored:
            best[target] = max(scored)[2]
    return best


def _task_means(runs: list[dict[str, Any]], encoder: str, seeds: list[int]) -> dict[str, tuple[float, float]]:
    """target -> (mean, sd) over seeds of the task score of one encoder."""
    chosen = [r for r in runs if r["encoder"] == encoder and r["seed"] in seeds]
    out = {}
    for task in chosen[0]["scores"]:
        values = [float(r["scores"][task]["avg_metric"]) for r in chosen]
        out[task] = tables._mean_sd(values)
    return out


def summary(runs: list[dict[str, Any]], best: dict[str, str], targets: list[str], seeds: list[int],
            multitask: bool) -> pd.DataFrame:
    """XTREME-style summary: per-task scores, category scores and the overall score.

    Rows: the baseline; "best intermediate per target" (each target's score from the encoder
    chosen on dev); the multi-task encoder. Categories and overall as in XTREME (mean over the
    category's tasks; overall = mean over tasks), only when all their tasks are in the run.
    """
    rows: dict[str, dict[str, float]] = {}
    base = _task_means(runs, BASELINE, seeds)
    rows["Baseline (no intermediate task)"] = {t: base[t][0] for t in targets}
    picked = {t: _task_means(runs, best[t], seeds)[t][0] for t in targets if t in best}
    if picked:
        rows["Best intermediate task per target"] = picked
    if multitask:
        mt = _task_means(runs, MULTITASK, seeds)
        rows["Multi-task"] = {t: mt[t][0] for t in targets}
    df = pd.DataFrame.from_dict(rows, orient="index")[targets]
    for group, members in GROUPS.items():
        if all(m in targets for m in members):
            df[group] = df[members].mean(axis=1)
    if all(t in targets for ts in GROUPS.values() for t in ts):
        df["overall"] = df[targets].mean(axis=1)
    return df


def summary_table(df: pd.DataFrame, best: dict[str, str], caption: str) -> str:
    """``caption`` may use {picks} (the best intermediate task per target)."""
    header = ["System", *[DISPLAY_NAMES.get(c, c.capitalize()) for c in df.columns]]
    rows = [[_tex(index), *[f"{v:.1f}" for v in row]] for index, row in zip(df.index, df.values)]
    picks = ", ".join(f"{DISPLAY_NAMES[t]}: {DISPLAY_NAMES[e]}" for t, e in best.items())
    return _latex_table(rows, header, _tex(caption.format(picks=picks)), "tab:summary")


# --------------------------------------------------------------------------------------------
# Headline numbers


def _macro_name(*parts: str) -> str:
    name = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z]+", " ".join(parts)) if p)
    if not name.isalpha():
        raise ValueError(f"cannot make a LaTeX macro name from {parts}")
    return name


def headline_macros(runs: list[dict[str, Any]], best: dict[str, str], targets: list[str], seeds: list[int],
                    preset: str, model: str) -> tuple[str, list[dict[str, Any]]]:
    """``\\newcommand`` definitions of the numbers the text quotes, and the same as records.

    For each target: the best intermediate task (chosen on dev), its test gain over the
    baseline and whether that gain exceeds the seed spread (the larger of the two seed
    standard deviations; with one seed the spread is unknown and the text says so).
    """
    base = _task_means(runs, BASELINE, seeds)
    lines = [f"\\newcommand{{\\xstiltsPreset}}{{{_tex(preset)}}}", f"\\newcommand{{\\xstiltsModel}}{{{_tex(model)}}}",
             f"\\newcommand{{\\xstiltsSeeds}}{{{len(seeds)}}}"]
    records = []
    gains = []
    for target in TARGET_TASKS:
        key = _macro_name(DISPLAY_NAMES[target])
        if target not in targets or target not in best:
            # Defined for every XTREME target so the text compiles for any subset of targets.
            lines += [f"\\newcommand{{\\{key}{suffix}}}{{n/a}}" for suffix in ("BestTask", "BestGain", "Baseline")]
            lines.append(f"\\newcommand{{\\{key}GainVerdict}}{{not in this run}}")
            continue
        encoder = best[target]
        mean, sd = _task_means(runs, encoder, seeds)[target]
        b_mean, b_sd = base[target]
        gain = mean - b_mean
        gains.append(gain)
        spread = max(sd, b_sd) if len(seeds) > 1 else math.nan
        verdict = ("single seed, spread unknown" if math.isnan(spread)
                   else ("exceeds the seed spread" if abs(gain) > spread else "within the seed spread"))
        lines += [f"\\newcommand{{\\{key}BestTask}}{{{_tex(DISPLAY_NAMES[encoder])}}}",
                  f"\\newcommand{{\\{key}BestGain}}{{{gain:+.1f}}}",
                  f"\\newcommand{{\\{key}Baseline}}{{{b_mean:.1f}}}",
                  f"\\newcommand{{\\{key}GainVerdict}}{{{verdict}}}"]
        records.append({"target": target, "best": encoder, "gain": gain, "baseline": b_mean, "verdict": verdict})
    mean_gain = f"{sum(gains) / len(gains):+.1f}" if gains else "n/a"
    lines.append(f"\\newcommand{{\\MeanBestGain}}{{{mean_gain}}}")
    return "\n".join(lines) + "\n", records


# --------------------------------------------------------------------------------------------
# Published vs reproduced


def read_published(path: str | Path) -> list[dict[str, str]]:
    """Verified published numbers: CSV with system, task, metric, value, source (``#`` comments)."""
    rows = read_csv_comments(path, ("system", "task", "metric", "value", "source"))
    for r in rows:
        float(r["value"])
    return rows


def our_metric(runs: list[dict[str, Any]], encoder: str, task: str, metric: str, seeds: list[int]) -> float | None:
    """Our mean over seeds of ``avg_<metric>`` of one task (None if the run lacks it)."""
    values = []
    for r in runs:
        if r["encoder"] == encoder and r["seed"] in seeds and task in r["scores"]:
            entry = r["scores"][task]
            key = "avg_metric" if metric == "score" else f"avg_{metric}"
            if key not in entry:
                return None
            values.append(float(entry[key]))
    return sum(values) / len(values) if values else None


# RemBERT's leaderboard categories -> the summary's columns ("avg" = mean of the three shown).
CATEGORY_COLUMNS = {"classification": ["classification"], "structured_prediction": ["tagging"], "qa": ["qa"],
                    "avg": ["classification", "tagging", "qa"]}
CATEGORY_NAMES = {"classification": "Classification", "structured_prediction": "Structured prediction",
                  "qa": "Question answering", "avg": "Avg of the three"}
SUMMARY_ROWS = {"xlm-r": "Baseline (no intermediate task)", "x-stilts": "Best intermediate task per target"}


def read_csv_comments(path: str | Path, columns: Iterable[str]) -> list[dict[str, str]]:
    """A CSV with ``#`` comment lines whose every row has exactly ``columns``, a source among them."""
    columns = list(columns)
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    for r in rows:
        if set(r) != set(columns) or not (r.get("source") or "").strip():
            needs = ", ".join(c for c in columns if c != "source")
            raise formats.FormatError(f"{path}: every row needs {needs} and a source: {r}")
    return rows


def published_comparison(published: list[dict[str, str]], runs: list[dict[str, Any]], best: dict[str, str],
                         seeds: list[int], comparable: bool, targets: list[str], caption: str,
                         categories: list[dict[str, str]] = (), claims: list[dict[str, str]] = (),
                         summary_df: pd.DataFrame | None = None) -> tuple[str, pd.DataFrame]:
    """Published cells beside ours for the same task, category or claim.

    Rows: every target task of the run (published task numbers), then the leaderboard
    categories and the abstract's XTREME gain when the run has every task they need. Columns:
    published XLM-R, ours (baseline), published X-STILTs, ours (best intermediate task per
    target). Unknown published cells stay "--" (never filled in); when the run is not comparable
    (e.g. the synthetic demo) our cells carry a dagger.
    """
    lookup = {(r["system"], r["task"]): (float(r["value"]), r["metric"]) for r in published}
    records = []
    for task in targets:
        metric = next((m for (s, t), (_, m) in lookup.items() if t == task), None)
        metric = metric or ("f1" if task in QA_TASKS else "score")
        row = {"kind": "task", "name": task, "metric": metric}
        for system, encoder in (("xlm-r", BASELINE), ("x-stilts", best.get(task))):
            pub = lookup.get((system, task))
            row[f"published_{system}"] = pub[0] if pub else None
            row[f"ours_{system}"] = our_metric(runs, encoder, task, metric, seeds) if encoder else None
        records.append(row)
    have = set(summary_df.columns) if summary_df is not None else set()
    by_category: dict[str, dict[str, float]] = {}
    for r in categories:
        by_category.setdefault(r["category"], {})[r["system"]] = float(r["value"])
    for category, values in by_category.items():
        columns = CATEGORY_COLUMNS[category]
        row = {"kind": "category", "name": category, "metric": "score"}
        for system in ("xlm-r", "x-stilts"):
            row[f"published_{system}"] = values.get(system)
            ours = None
            if set(columns) <= have and SUMMARY_ROWS[system] in summary_df.index:
                ours = float(summary_df.loc[SUMMARY_ROWS[system], columns].mean())
            row[f"ours_{system}"] = ours
        records.append(row)
    for r in claims:
        if r["claim"] != "xtreme_test_gain_over_xlmr":
            continue
        ours = None
        if "overall" in have and all(v in summary_df.index for v in SUMMARY_ROWS.values()):
            ours = float(summary_df.loc[SUMMARY_ROWS["x-stilts"], "overall"] - summary_df.loc[SUMMARY_ROWS["xlm-r"], "overall"])
        records.append({"kind": "claim", "name": "xtreme_gain", "metric": "gain", "published_xlm-r": None,
                        "ours_xlm-r": None, "published_x-stilts": float(r["value"]), "ours_x-stilts": ours})
    df = pd.DataFrame(records, columns=["kind", "name", "metric", "published_xlm-r", "ours_xlm-r",
                                        "published_x-stilts", "ours_x-stilts"])
    mark = "" if comparable else r"$^\dagger$"

    def cell(v: float | None, ours: bool, signed: bool = False) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "--"
        return (f"{v:+.1f}" if signed else f"{v:.1f}") + (mark if ours else "")

    def label(r: dict[str, Any]) -> list[str]:
        if r["kind"] == "task":
            return [DISPLAY_NAMES[r["name"]], r["metric"].replace("score", "task score").replace("f1", "F1")]
        if r["kind"] == "category":
            return [f"{CATEGORY_NAMES[r['name']]} (leaderboard)", "category score"]
        return ["XTREME score, gain over XLM-R", "points"]

    rows = []
    for i, r in enumerate(records):
        if i and r["kind"] != records[i - 1]["kind"]:
            rows.append([r"\midrule %"])
        signed = r["kind"] == "claim"
        rows.append([*label(r), cell(r["published_xlm-r"], False), cell(r["ours_xlm-r"], True),
                     cell(r["published_x-stilts"], False, signed), cell(r["ours_x-stilts"], True, signed)])
    note = ("" if comparable else
            r" $^\dagger$Not comparable: this run is not on the real XTREME data (preset "
            r"\xstiltsPreset).")
    latex = _latex_table(rows, ["Task", "Metric", "XLM-R (pub.)", "Baseline (ours)", "X-STILTs (pub.)",
                                "Best interm. (ours)"], _tex(caption) + note, "tab:published")
    return latex, df


# --------------------------------------------------------------------------------------------
# The rule-level entry point


def make_paper_inputs(*, score_files: list[str], target_metrics: list[tuple[str, str, str]],
                      bucc_details: list[tuple[str, str]],
                      published_dir: str | Path, data_root: str | Path, layout: dict[str, dict[str, list[str]]],
                      jobs: dict[str, dict[str, Any]], encoders: list[str], targets: list[str], seeds: list[int],
                      intermediate: list[str], multitask: bool, preset: str, model: str, comparable: bool,
                      captions: dict[str, str], generated_dir: str | Path, out_dir: str | Path,
                      extra_sections: list[str] = ()) -> dict[str, Any]:
    """Write every generated TeX input of the paper (``generated_dir``) and its numbers as
    CSV/JSON (``out_dir``). The per-target appendix ``\\input``s ``tables/target_<task>.tex``."""
    generated_dir, out_dir = Path(generated_dir), Path(out_dir)
    generated_dir.mkdir(parents=True, exist_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = tables.load_scores(score_files)
    best = best_per_target(dev_scores(target_metrics, bucc_details), encoders, targets)
    n = tables.seeds_text(seeds)

    def write(name: str, text: str) -> None:
        (generated_dir / name).write_text(text, encoding="utf-8")

    macros, headline = headline_macros(runs, best, targets, seeds, preset, model)
    write("macros.tex", macros)
    latex, datasets = dataset_table(data_root, layout, intermediate, targets, captions["datasets"],
                                    captions.get("datasets_variant_data", ""))
    write("datasets.tex", latex)
    datasets.to_csv(out_dir / "datasets.csv", index=False, lineterminator="\n")
    write("hyperparameters.tex", hyperparameter_table(jobs, captions["hyperparameters"]))
    df = summary(runs, best, targets, seeds, multitask)
    write("summary.tex", summary_table(df, best, captions["summary"].replace("{seeds}", n)))
    df.to_csv(out_dir / "summary.csv", float_format="%.4f", lineterminator="\n")
    published_dir = Path(published_dir)
    published = read_published(published_dir / "xtreme_test.csv")
    categories = read_csv_comments(published_dir / "categories.csv", {"system", "category", "value", "source"})
    claims = read_csv_comments(published_dir / "claims.csv", {"claim", "value", "source"})
    latex, comparison = published_comparison(published, runs, best, seeds, comparable, targets, captions["published"],
                                             categories, claims, df)
    write("published.tex", latex)
    comparison.to_csv(out_dir / "published_comparison.csv", index=False, float_format="%.4f", lineterminator="\n")
    write("per_language.tex", "".join(f"\\input{{tables/target_{t}.tex}}\n" for t in targets))
    # Sections that exist only when the run has what they need (e.g. the reasoning analysis).
    write("extra_sections.tex", "% Sections of this run beyond the paper's own (rule make_paper_inputs).\n"
          + "".join(f"\\input{{{section}}}\n" for section in extra_sections))
    record = {"best_per_target": best, "headline": headline}
    (out_dir / "best_per_target.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    return record


# The first folder of every generated path the paper's \\input and \\includegraphics name
# (generated/macros.tex, tables/matrix.tex, figures/delta_heatmap.pdf; comparison/ holds the
# cross-model outputs, one folder per run rather than per model); rules/common.smk maps each to
# the run's output folder, and compile_paper lays the files out under these names for TeX.
GENERATED_ROOTS = ("generated", "tables", "figures", "comparison")


def _references(tex: Path) -> list[str]:
    pattern = re.compile(r"\\(?:input|include|includegraphics)(?:\[[^\]]*\])?\{([^}]+)\}")
    text = re.sub(r"(?<!\\)%.*", "", tex.read_text(encoding="utf-8"))
    return pattern.findall(text)


def paper_files(paper_dir: str | Path, main: str = "main.tex") -> tuple[list[str], list[str]]:
    """(handwritten sources, generated files) that ``paper_dir/main`` reads, following \\input.

    Handwritten paths are relative to ``paper_dir``; generated ones are the names TeX sees
    (``generated/x.tex``, ``tables/...``, ``figures/...``), which the workflow maps to its outputs.
    A reference that is neither a file in ``paper_dir`` nor under one of those roots is an error
    naming the file that makes it.
    """
    paper_dir = Path(paper_dir)
    sources, generated, todo = [], [], [main]
    while todo:
        name = todo.pop(0)
        if name in sources:
            continue
        sources.append(name)
        for ref in _references(paper_dir / name):
            if Path(ref).suffix == "":
                ref += ".tex"
            root = ref.split("/", 1)[0]
            if (paper_dir / ref).is_file():
                todo.append(ref)
            elif root in GENERATED_ROOTS and "/" in ref:
                generated.append(ref)
            else:
                raise FileNotFoundError(
                    f"paper/{name} references {ref!r}: not a file in paper/ and not a generated file "
                    f"(generated paths start with {', '.join(f'{r}/' for r in GENERATED_ROOTS)})")
    return sources, sorted(set(generated))
