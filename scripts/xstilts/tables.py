"""Result tables, built only from per-run score files (``results/<run>/scores/<model>/<encoder>/seed<N>.json``).

* the intermediate x target **matrix**: one row per encoder (baseline, each intermediate task,
  multi-task), one column per target plus their average; each cell is the target's XTREME task
  score (``avg_metric``: the unweighted mean over its languages, QA as (EM+F1)/2), averaged over
  seeds;
* the same matrix as **deltas** against the baseline row;
* one **per-target** table: rows encoders, columns languages (and the average).

Each is written as CSV (full precision), Markdown and LaTeX (booktabs, one decimal). With more
than one seed, Markdown/LaTeX cells read ``mean ± sd`` (sample standard deviation) and the CSV
gets ``<column>_sd`` columns.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from xstilts.formats import FormatError
from xstilts.tasks import DISPLAY_NAMES
from xstilts.xtreme import QA_TASKS, task_entry

AVERAGE = "avg"


def load_scores(paths: Iterable[str | Path]) -> list[dict[str, Any]]:
    """Read score files, checking each names its encoder and seed.

    Every average is recomputed from the per-language values (``xtreme.task_entry``), and a
    stored average that disagrees is an error: no table shows a number its own per-language
    values do not support."""
    runs = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                run = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError(f"{path}: not a readable score file ({e}); it is written by rule score_run") from None
        for key in ("encoder", "seed", "scores"):
            if key not in run:
                raise FormatError(f"{path}: not a score file (no {key!r}); it is written by rule score_run")
        run["scores"] = {task: _recomputed(path, task, entry) for task, entry in run["scores"].items()}
        run["path"] = str(path)
        runs.append(run)
    return runs


def _recomputed(path: str | Path, task: str, entry: dict[str, Any]) -> dict[str, Any]:
    per_language = {m: v for m, v in entry.items() if isinstance(v, dict)}
    fresh = task_entry(task, per_language)
    for key, stored in entry.items():
        if key.startswith("avg_") and not math.isclose(float(stored), fresh.get(key, math.nan), rel_tol=1e-12, abs_tol=1e-9):
            raise FormatError(f"{path}: {task} {key} is {stored}, but its per-language values average to "
                              f"{fresh.get(key)}: the file was edited or damaged; rule score_run rebuilds it "
                              f"(snakemake --forcerun {path})")
    return fresh


def language_scores(task: str, entry: dict[str, Any]) -> dict[str, float]:
    """Per-language task score from a scorer entry: the metric of avg_metric, QA as (EM+F1)/2."""
    if task in QA_TASKS:
        return {lang: (entry["exact_match"][lang] + entry["f1"][lang]) / 2 for lang in entry["f1"]}
    metric = "f1" if "f1" in entry else "accuracy"
    return dict(entry[metric])


def _mean_sd(values: list[float]) -> tuple[float, float]:
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _collect(runs: list[dict[str, Any]], encoders: list[str], seeds: list[int]) -> dict[str, list[dict[str, Any]]]:
    by_encoder: dict[str, list[dict[str, Any]]] = {e: [] for e in encoders}
    for run in runs:
        if run["encoder"] in by_encoder and run["seed"] in seeds:
            by_encoder[run["encoder"]].append(run)
    for encoder, found in by_encoder.items():
        missing = sorted(set(seeds) - {r["seed"] for r in found})
        if missing:
            raise ValueError(f"no score file for encoder {encoder!r} and seed(s) {missing}")
    return by_encoder


def matrix(runs: list[dict[str, Any]], encoders: list[str], targets: list[str], seeds: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means, standard deviations) of the encoder x target matrix, with the average column."""
    by_encoder = _collect(runs, encoders, seeds)
    means, sds = {}, {}
    for encoder in encoders:
        per_seed = [
            {t: float(run["scores"][t]["avg_metric"]) for t in targets} for run in sorted(by_encoder[encoder], key=lambda r: r["seed"])
        ]
        for row in per_seed:
            row[AVERAGE] = math.fsum(row[t] for t in targets) / len(targets)
        cols = [*targets, AVERAGE]
        stats = {c: _mean_sd([row[c] for row in per_seed]) for c in cols}
        means[encoder] = {c: stats[c][0] for c in cols}
        sds[encoder] = {c: stats[c][1] for c in cols}
    return pd.DataFrame.from_dict(means, orient="index"), pd.DataFrame.from_dict(sds, orient="index")


def per_target(runs: list[dict[str, Any]], encoders: list[str], target: str, seeds: list[int]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(means, sds) of one target's per-language scores, languages in scorer order, plus average."""
    by_encoder = _collect(runs, encoders, seeds)
    means, sds = {}, {}
    for encoder in encoders:
        per_seed = [language_scores(target, run["scores"][target]) for run in by_encoder[encoder]]
        for row in per_seed:
            row[AVERAGE] = math.fsum(row.values()) / len(row)
        cols = list(per_seed[0])
        stats = {c: _mean_sd([row[c] for row in per_seed]) for c in cols}
        means[encoder] = {c: stats[c][0] for c in cols}
        sds[encoder] = {c: stats[c][1] for c in cols}
    return pd.DataFrame.from_dict(means, orient="index"), pd.DataFrame.from_dict(sds, orient="index")


def deltas(means: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every row minus the baseline row (the baseline row becomes all zeros)."""
    return means - means.loc[baseline]


# --------------------------------------------------------------------------------------------
# Writing


def _display(df: pd.DataFrame) -> pd.DataFrame:
    out = df.rename(index=lambda e: DISPLAY_NAMES.get(e, e))
    return out.rename(columns=lambda c: DISPLAY_NAMES.get(c, "Avg" if c == AVERAGE else c))


def _cells(means: pd.DataFrame, sds: pd.DataFrame, signed: bool, digits: int = 1) -> pd.DataFrame:
    fmt = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"

    def cell(m: float, s: float) -> str:
        text = fmt.format(m)
        return text if math.isnan(s) else f"{text} ± {s:.{digits}f}"

    return pd.DataFrame(
        [[cell(means.iat[i, j], sds.iat[i, j]) for j in range(means.shape[1])] for i in range(means.shape[0])],
        index=means.index, columns=means.columns,
    )


def write_table(means: pd.DataFrame, sds: pd.DataFrame, stem: str | Path, caption: str, label: str,
                signed: bool = False) -> list[str]:
    """Write ``<stem>.csv``, ``<stem>.md`` and ``<stem>.tex``; returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    csv = means.copy()
    if not sds.isna().all().all():
        for col in means.columns:
            csv[f"{col}_sd"] = sds[col]
    csv.index.name = "encoder"
    csv.to_csv(f"{stem}.csv", float_format="%.4f", lineterminator="\n")
    shown = _display(_cells(means, sds, signed))
    shown.index.name = ""
    with open(f"{stem}.md", "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{caption}\n\n{shown.to_markdown(stralign='right')}\n")
    latex = shown.to_latex(column_format="l" + "r" * shown.shape[1], caption=caption, label=label,
                           escape=True, position="t")
    with open(f"{stem}.tex", "w", encoding="utf-8", newline="\n") as f:
        f.write(latex.replace("±", r"$\pm$"))
    return [f"{stem}.csv", f"{stem}.md", f"{stem}.tex"]


CAPTION_KEYS = ("matrix", "matrix_delta", "target", "datasets", "hyperparameters", "summary", "published",
                "compute", "models", "reasoning_verdicts", "variant", "datasets_variant_data")


def load_captions(path: str | Path) -> dict[str, str]:
    """Captions of every generated table and figure (``paper/captions.yaml``), checked complete."""
    import yaml

    with open(path, encoding="utf-8") as f:
        captions = yaml.safe_load(f) or {}
    missing = [k for k in CAPTION_KEYS if k not in captions]
    unknown = sorted(set(captions) - set(CAPTION_KEYS))
    if missing or unknown:
        raise ValueError(f"{path}: missing captions {missing}, unknown keys {unknown}; expected exactly {list(CAPTION_KEYS)}")
    return {k: " ".join(str(v).split()) for k, v in captions.items()}


def seeds_text(seeds: list[int]) -> str:
    return f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}"


def make_tables(score_files: list[str], encoders: list[str], targets: list[str], seeds: list[int], out_dir: str | Path,
                baseline: str, context: dict[str, Any], captions: dict[str, str]) -> dict[str, Any]:
    """Write every table under ``out_dir`` and return a provenance record."""
    from xstilts.formats import sha256

    runs = load_scores(score_files)
    out_dir = Path(out_dir)
    means, sds = matrix(runs, encoders, targets, seeds)
    n = seeds_text(seeds)
    write_table(means, sds, out_dir / "matrix", captions["matrix"].format(seeds=n), "tab:matrix")
    write_table(deltas(means, baseline), sds, out_dir / "matrix_delta", captions["matrix_delta"].format(seeds=n),
                "tab:matrix-delta", signed=True)
    for target in targets:
        m, s = per_target(runs, encoders, target, seeds)
        entry = runs[0]["scores"][target]
        metric = "(EM+F1)/2" if target in QA_TASKS else ("F1" if "f1" in entry else "accuracy")
        write_table(m, s, out_dir / f"target_{target}",
                    captions["target"].format(task=DISPLAY_NAMES[target], metric=metric, seeds=n), f"tab:target-{target}")
    return {**context, "score_files": {r["path"]: sha256(r["path"]) for r in runs}}
