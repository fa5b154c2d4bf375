"""Across models: one table, one figure and one paper section comparing the models of a run.

Each model of the grid has its own results (``tables/<model>/matrix.csv``,
``paper/<model>/best_per_target.json``, ``reasoning/<model>/significance.json``); this module
puts them side by side and answers, per model family (encoder or decoder, read from the model's
own config), whether English intermediate-task training still helps zero-shot cross-lingual
transfer and reasoning:

* ``models.csv`` (long format, full precision): for every model, target (and the average) and
  row (baseline, each intermediate task, multi-task, the best intermediate task chosen on dev)
  its score and its gain over the model's own baseline;
* ``models.{md,tex}``: one row per model, its baseline average and the best-on-dev gain per target;
* ``reasoning_verdicts.*``: the paired-bootstrap verdict (helps / hurts / n.s.) per model,
  intermediate task and reasoning target;
* a grouped bar chart of each intermediate task's gain on the average, models side by side;
* the paper section's body and its number macros (every number is a macro).

Nothing here is typed in: every number is read from the per-model files.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from xstilts.formats import FormatError
from xstilts.tables import AVERAGE
from xstilts.latex import command_name
from xstilts.tasks import BASELINE, MULTITASK, display_name

#: Families in the order the text and the tables present them (``modeling.model_family``).
FAMILIES = ("encoder", "decoder")
#: The ``row`` column of models.csv.
ROW_BASELINE, ROW_INTERMEDIATE, ROW_MULTITASK, ROW_BEST = "baseline", "intermediate", "multitask", "best_on_dev"
VERDICTS = ("helps", "hurts", "n.s.")
# The per-model matrix calls its baseline row after the paper's model (XLM-R); here it is each
# model's own baseline.
_ROW_NAMES = {BASELINE: "Baseline", ROW_BEST: "Best on dev"}


@dataclass(frozen=True)
class ModelInput:
    """One model's per-model results, as the comparison reads them."""

    name: str
    family: str
    matrix: str | Path
    best: str | Path
    significance: str | Path | None = None


def read_family(encoder_dir: str | Path) -> str:
    """``encoder`` or ``decoder``: the family of the phase-1 model saved in ``encoder_dir``,
    read from its ``config.json`` (``modeling.model_family``), never from the model's name."""
    from transformers import AutoConfig

    from xstilts.modeling import model_family

    path = Path(encoder_dir) / "config.json"
    if not path.is_file():
        raise FormatError(f"{path}: missing; the phase-1 model folder {encoder_dir} has no config.json "
                          "(it is written by rule pretrain_mlm or prepare_model)")
    return model_family(AutoConfig.from_pretrained(str(encoder_dir)))


def _name(key: str) -> str:
    return _ROW_NAMES.get(key) or ("Avg" if key == AVERAGE else display_name(key))


def _reasoning_name(key: str) -> str:
    return "Reasoning avg." if key == "avg" else display_name(key)


# --------------------------------------------------------------------------------------------
# Reading


def _read_matrix(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means, sds) of a per-model matrix.csv (``tables.write_table``); sds all NaN with one seed."""
    frame = pd.read_csv(path, index_col=0)
    if BASELINE not in frame.index or AVERAGE not in frame.columns:
        raise FormatError(f"{path}: not a matrix table (needs a {BASELINE!r} row and an {AVERAGE!r} column); "
                          "it is written by rule make_tables")
    columns = [c for c in frame.columns if not c.endswith("_sd")]
    means = frame[columns].astype(float)
    sds = pd.DataFrame({c: frame[f"{c}_sd"] if f"{c}_sd" in frame.columns else math.nan for c in columns},
                       index=frame.index).astype(float)
    return means, sds


def _read_best(path: str | Path, matrix_rows: Iterable[str]) -> dict[str, str]:
    with open(path, encoding="utf-8") as f:
        record = json.load(f)
    if "best_per_target" not in record:
        raise FormatError(f"{path}: no 'best_per_target'; it is written by rule make_paper_inputs")
    best = dict(record["best_per_target"])
    unknown = sorted(set(best.values()) - set(matrix_rows))
    if unknown:
        raise FormatError(f"{path}: picks {unknown}, which are not rows of the model's matrix; rebuild both "
                          "(rules make_tables and make_paper_inputs) from the same run")
    return best


# --------------------------------------------------------------------------------------------
# The cross-model table


def _row_kind(encoder: str) -> str:
    return ROW_BASELINE if encoder == BASELINE else ROW_MULTITASK if encoder == MULTITASK else ROW_INTERMEDIATE


def gains_frame(models: list[ModelInput]) -> pd.DataFrame:
    """Long format, one row per (model, target or ``avg``, row): score and gain over the baseline.

    ``row`` is baseline, intermediate, multitask or best_on_dev; ``encoder`` names the
    intermediate task (for best_on_dev the task chosen on dev for that target; empty for the
    average, whose best-on-dev score is the mean over targets of each target's pick, and is
    missing when a target has no pick). Every model must have the same targets.
    """
    if not models:
        raise ValueError("no models to compare")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise ValueError(f"model names repeat: {names}")
    records = []
    targets: list[str] | None = None
    for model in models:
        if model.family not in FAMILIES:
            raise ValueError(f"model {model.name}: family {model.family!r} is not one of {list(FAMILIES)}")
        means, sds = _read_matrix(model.matrix)
        mine = [c for c in means.columns if c != AVERAGE]
        if targets is None:
            targets = mine
        elif mine != targets:
            raise FormatError(f"{model.matrix}: targets {mine}, but {models[0].matrix} has {targets}; the models "
                              "of one run are compared on the same targets")
        best = _read_best(model.best, means.index)
        base = means.loc[BASELINE]

        def add(target: str, row: str, encoder: str, score: float, sd: float) -> None:
            records.append({"model": model.name, "family": model.family, "target": target, "row": row,
                            "encoder": encoder, "score": score, "score_sd": sd, "gain": score - base[target]})

        for target in [*targets, AVERAGE]:
            for encoder in means.index:
                add(target, _row_kind(encoder), encoder, means.at[encoder, target], sds.at[encoder, target])
            if target in best:
                add(target, ROW_BEST, best[target], means.at[best[target], target], sds.at[best[target], target])
        picked = [means.at[best[t], t] for t in targets if t in best]
        add(AVERAGE, ROW_BEST, "", math.fsum(picked) / len(targets) if len(picked) == len(targets) else math.nan,
            math.nan)
    columns = ["model", "family", "target", "row", "encoder", "score", "score_sd", "gain"]
    return pd.DataFrame(records, columns=columns)


def _summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model (given order): family, baseline average, best-on-dev gain per target and average."""
    targets = list(dict.fromkeys(frame["target"]))
    rows = {}
    for model, part in frame.groupby("model", sort=False):
        best = part[part["row"] == ROW_BEST].set_index("target")["gain"]
        base = part[part["row"] == ROW_BASELINE].set_index("target")["score"]
        rows[model] = {"family": part["family"].iat[0], "baseline_avg": base[AVERAGE],
                       **{t: best.get(t, math.nan) for t in targets}}
    return pd.DataFrame.from_dict(rows, orient="index")


def _cell(value: float, signed: bool = True) -> str:
    if value is None or math.isnan(value):
        return "--"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _tex(text: str) -> str:
    from xstilts.paper import _tex as escape

    return escape(text)


def _latex(rows: list[list[str]], header: list[str], caption: str, label: str, align: str,
           rules_before: Iterable[int] = ()) -> str:
    """A booktabs table shrunk to the text width only when wider (as ``paper._latex_table``)."""
    rules_before = set(rules_before)
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%",
             f"\\begin{{tabular}}{{{align}}}", r"\toprule", " & ".join(header) + r" \\", r"\midrule"]
    for i, row in enumerate(rows):
        if i in rules_before:
            lines.append(r"\midrule")
        lines.append(" & ".join(row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}", f"\\caption{{{caption}}}", f"\\label{{{label}}}", r"\end{table}", ""]
    return "\n".join(lines)


def _write(stem: Path, frame: pd.DataFrame, header: list[str], rows: list[list[str]], caption: str,
           latex: str) -> list[str]:
    stem.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(f"{stem}.csv", index=False, float_format="%.4f", lineterminator="\n")
    md = pd.DataFrame(rows, columns=header).to_markdown(index=False, stralign="right", disable_numparse=True)
    Path(f"{stem}.md").write_text(f"{caption}\n\n{md}\n", encoding="utf-8")
    Path(f"{stem}.tex").write_text(latex, encoding="utf-8")
    return [f"{stem}.csv", f"{stem}.md", f"{stem}.tex"]


def write_models_table(frame: pd.DataFrame, stem: str | Path, caption: str) -> list[str]:
    """``<stem>.csv`` (the long frame), ``.md`` and ``.tex`` (per model: family, baseline
    average, best-on-dev gain per target and on the average)."""
    summary = _summary(frame)
    targets = [c for c in summary.columns if c not in ("family", "baseline_avg")]
    header = ["Model", "Family", "Baseline avg", *[_name(t) for t in targets]]
    rows = [[model, r["family"], _cell(r["baseline_avg"], signed=False), *[_cell(r[t]) for t in targets]]
            for model, r in summary.iterrows()]
    latex = _latex([[_tex(c) for c in row] for row in rows], [_tex(h) for h in header], _tex(caption),
                   "tab:models", "ll" + "r" * (len(header) - 2))
    return _write(Path(stem), frame, header, rows, caption, latex)


def verdicts_frame(models: list[ModelInput]) -> pd.DataFrame:
    """One row per (model, reasoning target or ``avg``, intermediate task) of the models that have
    a significance record: gain, interval, p and verdict."""
    records = []
    for model in models:
        if model.significance is None:
            continue
        with open(model.significance, encoding="utf-8") as f:
            record = json.load(f)
        if "comparisons" not in record:
            raise FormatError(f"{model.significance}: no 'comparisons'; it is written by rule "
                              "bootstrap_reasoning_gains")
        for c in record["comparisons"]:
            if c["verdict"] not in VERDICTS:
                raise FormatError(f"{model.significance}: verdict {c['verdict']!r} is not one of {list(VERDICTS)}")
            records.append({"model": model.name, "family": model.family, "target": c["target"], "itask": c["itask"],
                            "baseline": c["baseline"], "system": c["system"], "gain": c["gain"],
                            "gain_sd": c["gain_sd"], "ci_low": c["low"], "ci_high": c["high"], "p": c["p"],
                            "verdict": c["verdict"]})
    columns = ["model", "family", "target", "itask", "baseline", "system", "gain", "gain_sd", "ci_low", "ci_high",
               "p", "verdict"]
    return pd.DataFrame(records, columns=columns)


def write_verdicts_table(frame: pd.DataFrame, stem: str | Path, caption: str) -> list[str]:
    """``<stem>.csv`` (the long frame), ``.md`` and ``.tex``: per model and intermediate task, each
    reasoning target's gain and verdict. Without any reasoning analysis the table says so."""
    targets = list(dict.fromkeys(frame["target"]))
    header = ["Model", "Family", "Intermediate task", *[_reasoning_name(t) for t in targets]]
    rows, starts = [], []
    for model, part in frame.groupby("model", sort=False):
        starts.append(len(rows))
        for i, itask in enumerate(dict.fromkeys(part["itask"])):
            cells = part[part["itask"] == itask].set_index("target")
            rows.append([model if i == 0 else "", part["family"].iat[0] if i == 0 else "", _name(itask),
                         *[f"{_cell(cells.at[t, 'gain'])} {cells.at[t, 'verdict']}" if t in cells.index else "--"
                           for t in targets]])
    if rows:
        latex_rows = [[_tex(c) for c in row] for row in rows]
    else:
        rows = [["--", "--", "no reasoning analysis in this run"]]
        latex_rows = [[r"\multicolumn{3}{l}{no reasoning analysis in this run}"]]
    latex = _latex(latex_rows, [_tex(h) for h in header], _tex(caption), "tab:models-reasoning",
                   "lll" + "r" * len(targets), rules_before=starts[1:])
    return _write(Path(stem), frame, header, rows, caption, latex)


# --------------------------------------------------------------------------------------------
# Figure

# Encoders in blues, decoders in oranges (and hatched, for greyscale prints).
_PALETTES = {"encoder": "Blues", "decoder": "Oranges"}
_HATCH = {"encoder": "", "decoder": "///"}


def gains_figure(models_csv: str | Path, out_paths: list[str | Path], style: str | Path | None = None) -> None:
    """Grouped bars: each intermediate task's gain on the average score (and the multi-task and
    best-on-dev rows), one bar per model; encoders blue, decoders orange and hatched. Drawn from
    models.csv only; files carry no timestamps."""
    from xstilts.figures import _save, _style

    with _style(style):
        import matplotlib.pyplot as plt

        frame = pd.read_csv(models_csv, keep_default_na=False, na_values=[""])
        avg = frame[(frame["target"] == AVERAGE) & (frame["row"] != ROW_BASELINE)]
        groups = list(dict.fromkeys(avg["encoder"].where(avg["row"] != ROW_BEST, ROW_BEST)))
        models = list(dict.fromkeys(avg["model"]))
        families = dict(zip(frame["model"], frame["family"]))
        colours = {}
        for family in FAMILIES:
            members = [m for m in models if families[m] == family]
            cmap = plt.get_cmap(_PALETTES[family])
            for i, m in enumerate(members):
                colours[m] = cmap(0.45 + 0.45 * (i + 1) / (len(members) + 1))
        width = 0.8 / len(models)
        fig, ax = plt.subplots(figsize=(1.2 + 0.55 * len(groups) * max(1.0, len(models) / 2), 3.6))
        for k, model in enumerate(models):
            mine = avg[avg["model"] == model]
            keyed = dict(zip(mine["encoder"].where(mine["row"] != ROW_BEST, ROW_BEST), mine["gain"]))
            xs = [i - 0.4 + width * (k + 0.5) for i in range(len(groups))]
            ax.bar(xs, [keyed.get(g, math.nan) for g in groups], width, color=colours[model],
                   hatch=_HATCH[families[model]], edgecolor="white", linewidth=0.4,
                   label=f"{model} ({families[model]})")
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(range(len(groups)), [_name(g) for g in groups], rotation=45, ha="right")
        ax.set_ylabel("gain on the average (points)")
        ax.set_title("Gain from intermediate-task training, per model")
        # Below the axes: inside, it would cover the bars.
        ncol = min(4, len(models))
        fig.legend(*ax.get_legend_handles_labels(), loc="lower center", ncol=ncol, fontsize=7, frameon=False)
        fig.tight_layout(rect=(0, 0.05 * -(-len(models) // ncol) + 0.02, 1, 1))
        _save(fig, out_paths)
        plt.close(fig)


# --------------------------------------------------------------------------------------------
# The paper section

def macro_name(*parts: str) -> str:
    """A LaTeX command name (letters only) from keys such as ``qwen2.5-0.5b``:
    ``\\ModelsQwenTwoFiveZeroFiveb``."""
    return command_name("Models", *parts)


def _number(value: float, signed: bool = True) -> str:
    """A macro's value; "n/a" (in an mbox, as macros are used in math mode) when not a number."""
    return r"\mbox{n/a}" if math.isnan(value) else _cell(value, signed)


def _mean(values: list[float]) -> float:
    """The mean, or NaN when any value is NaN: a family mean over only some of its models would
    read as the family's."""
    return math.nan if not values or any(math.isnan(v) for v in values) else math.fsum(values) / len(values)


def section(frame: pd.DataFrame, verdicts: pd.DataFrame, context: dict[str, Any]) -> tuple[str, str]:
    """(macros, body) of the generated cross-model section; every number is a macro.

    Per family: how many models, their mean baseline average, the mean (and range) of the
    best-on-dev gain on the average and how many models it is positive for, and per reasoning
    target how many (model, intermediate task) pairs help, hurt or are n.s. ``context``:
    ``synthetic`` (the demo's caveat).
    """
    macros: dict[str, str] = {}

    def m(value: str, *parts: str) -> str:
        name = macro_name(*parts)
        if name in macros and macros[name] != value:
            raise ValueError(f"two numbers would share the macro {name} ({parts}): rename a model")
        macros[name] = value
        return name + "{}"

    summary = _summary(frame)
    models = list(summary.index)
    owners: dict[str, str] = {}
    for model in models:
        owner = owners.setdefault(macro_name("model", model), model)
        if owner != model:
            raise ValueError(f"models {owner!r} and {model!r} give the same macro name "
                             f"{macro_name('model', model)}: rename one in config `models`")
    present = [f for f in FAMILIES if (summary["family"] == f).any()]
    reasoning_targets = list(dict.fromkeys(verdicts["target"]))
    itasks = sorted({e for e in frame.loc[frame["row"] == ROW_INTERMEDIATE, "encoder"]})
    m(str(len(models)), "count")
    m(str(len(itasks)), "itasks")
    m(str(len([t for t in dict.fromkeys(frame["target"]) if t != AVERAGE])), "targets")
    for family in FAMILIES:
        m(str(int((summary["family"] == family).sum())), family, "count")

    lines = ["% Generated by rule make_model_comparison from the per-model results; do not edit.", ""]
    if context.get("synthetic"):
        lines += [r"\paragraph{Caveat: embedded demo.} These numbers come from the embedded demo: synthetic "
                  r"benchmarks and tiny models trained locally for seconds per task. They show that the "
                  r"comparison runs and is computed correctly, not whether intermediate training helps today's "
                  r"models; run a preset on the real data for that.", ""]
    family_counts = ", ".join(f"{m(str(int((summary['family'] == f).sum())), f, 'count')} {f}"
                              f"{'s' if (summary['family'] == f).sum() != 1 else ''}" for f in present)
    lines += [
        r"\paragraph{Question and protocol.} Does English intermediate-task training still help zero-shot "
        r"cross-lingual transfer, and reasoning in particular, for other models than the paper's? This run "
        r"compares " + m(str(len(models)), "count") + r" models (" + family_counts + r"; the family is read "
        r"from each model's own configuration) on the same " + m(str(len(itasks)), "itasks") + r" intermediate "
        r"tasks, " + macro_name("targets") + r"{} targets, seeds and scorer. For each model, "
        r"Table~\ref{tab:models} gives its baseline average and the gain of the intermediate task chosen "
        r"on dev for each target, Figure~\ref{fig:model-gains} the gain of every intermediate task on the "
        r"average, and Table~\ref{tab:models-reasoning} the paired-bootstrap verdict on the reasoning "
        r"targets.", "",
    ]
    per_model = []
    for model in models:
        row = summary.loc[model]
        label = m(_tex(model), "model", model)
        base = m(_number(row["baseline_avg"], signed=False), "model", model, "baseline")
        gain = m(_number(row[AVERAGE]), "model", model, "best gain")
        per_model.append(f"\\texttt{{{label}}} ({row['family']}): baseline ${base}$, best on dev ${gain}$")
    lines += [r"Per model, the baseline average and the best-on-dev gain on it: " + "; ".join(per_model) + ".", ""]
    for family in present:
        members = summary[summary["family"] == family]
        gains = [float(g) for g in members[AVERAGE]]
        n = len(members)
        mean = _mean(gains)
        count = macro_name(family, "count") + "{}"
        head = (r"\paragraph{" + family.capitalize() + r"s.} Over the " + count + f" {family} model"
                + ("s" if n != 1 else "") + ", the baseline averages "
                + "$" + m(_number(_mean([float(b) for b in members["baseline_avg"]]), signed=False), family,
                        "mean baseline") + "$ points")
        if math.isnan(mean):
            for what in ("mean best gain", "min best gain", "max best gain", "positive"):
                m(_number(math.nan), family, what)  # defined all the same, for any text quoting them
            transfer = head + "; no best-on-dev gain on the average could be computed (a target has no dev pick)."
            direction = None
        else:
            shown = _cell(mean)
            direction = "raises" if float(shown) > 0 else "lowers" if float(shown) < 0 else "does not change"
            transfer = (head + r", and the intermediate task chosen on dev for each target changes the average by $"
                        + m(shown, family, "mean best gain") + r"$ points on average (from $"
                        + m(_cell(min(gains)), family, "min best gain") + r"$ to $"
                        + m(_cell(max(gains)), family, "max best gain") + r"$), a gain for "
                        + m(str(sum(g > 0 for g in gains)), family, "positive") + " of them.")
        sentences = [transfer]
        mine = verdicts[verdicts["family"] == family]
        helps = hurts = 0
        for target in reasoning_targets:
            pairs = mine[mine["target"] == target]
            if pairs.empty:
                continue
            counts = {v: int((pairs["verdict"] == v).sum()) for v in VERDICTS}
            if target != "avg":  # the average's verdicts restate the targets' own
                helps += counts["helps"]
                hurts += counts["hurts"]
            where = "the reasoning average" if target == "avg" else _tex(_reasoning_name(target))
            sentences.append(
                f" On {where}, of " + m(str(len(pairs)), family, target, "pairs")
                + r" (model, intermediate task) pairs, " + m(str(counts["helps"]), family, target, "helps")
                + " help significantly, " + m(str(counts["hurts"]), family, target, "hurts") + " hurt significantly and "
                + m(str(counts["n.s."]), family, target, "ns") + " are not significant.")
        answer = " So, on this run, for " + family + "s: "
        answer += ("intermediate training chosen on dev " + direction + " zero-shot cross-lingual transfer on average"
                   if direction else "the transfer question is open")
        if mine.empty:
            answer += "; this run has no reasoning analysis."
        elif helps > hurts:
            answer += "; on reasoning, significant gains outnumber significant losses."
        elif hurts > helps:
            answer += "; on reasoning, significant losses outnumber significant gains."
        elif helps:
            answer += "; on reasoning, significant gains and losses are as many."
        else:
            answer += "; on reasoning, no pair is significant either way."
        sentences.append(answer)
        lines += ["".join(sentences), ""]
    macro_text = "% Generated by rule make_model_comparison; numbers of the cross-model section.\n" + "".join(
        f"\\newcommand{{{name}}}{{{value}}}\n" for name, value in macros.items())
    return macro_text, "\n".join(lines)


# --------------------------------------------------------------------------------------------
# The rule-level entry point


def make_comparison(models: list[ModelInput], out_dir: str | Path, captions: dict[str, str],
                    context: dict[str, Any], style: str | Path | None = None) -> dict[str, Any]:
    """Write every cross-model output under ``out_dir``: models.*, reasoning_verdicts.*,
    model_gains.{png,pdf} and generated/models{,_macros}.tex. ``context``: ``seeds`` (the
    captions' {seeds}) and ``synthetic``."""
    from xstilts.tables import seeds_text

    out_dir = Path(out_dir)
    frame = gains_frame(models)
    verdicts = verdicts_frame(models)
    n = seeds_text(list(context["seeds"]))
    write_models_table(frame, out_dir / "models", captions["models"].format(seeds=n))
    write_verdicts_table(verdicts, out_dir / "reasoning_verdicts", captions["reasoning_verdicts"].format(seeds=n))
    gains_figure(out_dir / "models.csv", [out_dir / "model_gains.png", out_dir / "model_gains.pdf"], style)
    macros, body = section(frame, verdicts, context)
    (out_dir / "generated").mkdir(parents=True, exist_ok=True)
    (out_dir / "generated" / "models_macros.tex").write_text(macros, encoding="utf-8")
    (out_dir / "generated" / "models.tex").write_text(body, encoding="utf-8")
    return {"models": [{"name": m.name, "family": m.family} for m in models]}
