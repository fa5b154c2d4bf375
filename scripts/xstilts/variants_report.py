"""The variants' tables and the paper's generated Variants text, from per-run score files.

A variant (``tasks.VARIANTS``: ``+mlm``, ``-translated``) trains an intermediate task some other
way; its encoder is one more row of the grid (``mnli+mlm``). For one model and one variant, the
table puts each variant row beside its plain task's row: the XTREME task scores of the paper's
targets and their average, exactly as the main matrix computes them (``tables.matrix``), mean
± sample sd over seeds, plus two gains of the average (points):

* **gain over the task**: the variant row's average minus the plain task row's (plain rows: --);
* **gain over the baseline**: the row's average minus the baseline's (no intermediate task).

Whether a variant's difference to its plain task is more than seed noise is stated with one rule
(``SPREAD_RULE``): it *exceeds the seed spread* when ``|variant avg - task avg| > sd(variant avg)
+ sd(task avg)``, the sample standard deviations over seeds of each row's average; otherwise it is
*within the seed spread*; with a single seed there is no spread: ``n/a (1 seed)``.

Written per variant as CSV (full precision, ``<column>_sd`` columns with several seeds),
Markdown and LaTeX (one decimal), and, for the paper, one LaTeX body (``generated/variants.tex``):
``\\newcommand`` macros of every number its sentences quote, a sentence per (variant, task)
pair built from those macros, and ``\\input{tables/variant_<variant>.tex}``. A grid without
variants gets a sentence saying so, so the section always compiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from xstilts import tables
from xstilts.latex import command_name
from xstilts.paper import _latex_table, _tex
from xstilts.tasks import BASELINE, DISPLAY_NAMES, VARIANTS, display_name

GAIN_TASK = "gain_over_task"
GAIN_BASELINE = "gain_over_baseline"
#: Verdicts of the variant-minus-task difference of the average.
EXCEEDS, WITHIN, ONE_SEED = "exceeds the seed spread", "within the seed spread", "n/a (1 seed)"
SPREAD_RULE = ("A variant's difference to its plain task exceeds the seed spread when its magnitude is larger "
               "than the sum of the two rows' sample standard deviations (over seeds) of the average.")
HEADER = {tables.AVERAGE: "Avg", GAIN_TASK: "vs. task", GAIN_BASELINE: "vs. baseline", "verdict": "Seed spread"}
SHORT_VERDICT = {EXCEEDS: "exceeds", WITHIN: "within", ONE_SEED: ONE_SEED, "": "--"}


def verdict(difference: float, sd_variant: float, sd_task: float, n_seeds: int) -> str:
    """``SPREAD_RULE`` applied to one difference of averages (sds over ``n_seeds`` seeds)."""
    if n_seeds < 2:
        return ONE_SEED
    return EXCEEDS if abs(difference) > sd_variant + sd_task else WITHIN


@dataclass
class Pair:
    """One (variant encoder, plain task) comparison, on the average over the targets."""

    variant: str
    encoder: str
    task: str
    task_avg: float
    task_sd: float
    variant_avg: float
    variant_sd: float
    baseline_avg: float
    verdict: str

    @property
    def gain_over_task(self) -> float:
        return self.variant_avg - self.task_avg

    @property
    def gain_over_baseline(self) -> float:
        return self.variant_avg - self.baseline_avg

    @property
    def spread(self) -> float:
        return self.variant_sd + self.task_sd


@dataclass
class VariantTable:
    """One variant's table: per row (plain task, then its variant, per pair) the target scores."""

    variant: str
    #: rows: encoders (plain, variant per pair); columns: targets, avg.
    means: pd.DataFrame
    sds: pd.DataFrame
    baseline_avg: float
    baseline_sd: float
    pairs: list[Pair]
    n_seeds: int


def variant_table(runs: list[dict[str, Any]], variant: str, rows: Iterable[tuple[str, str]], targets: list[str],
                  seeds: list[int], baseline: str = BASELINE) -> VariantTable:
    """The table of one variant from loaded score files (``tables.load_scores``).

    ``rows``: (variant encoder, plain task) pairs (``Plan.variant_rows``). Means, sds and the
    average come from ``tables.matrix`` over the baseline and the rows involved, so every
    number equals the main matrix's for the same encoder."""
    rows = [tuple(r) for r in rows]
    order = [e for encoder, task in rows for e in (task, encoder)]
    encoders = list(dict.fromkeys([baseline, *order]))
    means, sds = tables.matrix(runs, encoders, targets, seeds)
    avg = tables.AVERAGE
    base_avg, base_sd = float(means.loc[baseline, avg]), float(sds.loc[baseline, avg])
    pairs = []
    for encoder, task in rows:
        v_avg, v_sd = float(means.loc[encoder, avg]), float(sds.loc[encoder, avg])
        t_avg, t_sd = float(means.loc[task, avg]), float(sds.loc[task, avg])
        pairs.append(Pair(variant, encoder, task, t_avg, t_sd, v_avg, v_sd, base_avg,
                          verdict(v_avg - t_avg, v_sd, t_sd, len(seeds))))
    shown = list(dict.fromkeys(order))
    return VariantTable(variant, means.loc[shown], sds.loc[shown], base_avg, base_sd, pairs, len(seeds))


def table_frame(table: VariantTable) -> pd.DataFrame:
    """The table's numbers as the CSV holds them: one row per encoder, ``task`` naming its
    plain task; target and average means, the two gains, ``_sd`` columns (several seeds), the
    spread and the verdict (variant rows only; plain rows: empty)."""
    avg = tables.AVERAGE
    frame = table.means.copy()
    frame.insert(0, "task", [next((p.task for p in table.pairs if e in (p.task, p.encoder)), e) for e in frame.index])
    frame[GAIN_TASK] = math.nan
    frame[GAIN_BASELINE] = frame[avg] - table.baseline_avg
    frame["spread"] = math.nan
    frame["verdict"] = ""
    for p in table.pairs:
        frame.loc[p.encoder, GAIN_TASK] = p.gain_over_task
        frame.loc[p.encoder, "spread"] = p.spread
        frame.loc[p.encoder, "verdict"] = p.verdict
    if table.n_seeds > 1:
        for col in table.sds.columns:
            frame.insert(frame.columns.get_loc("spread"), f"{col}_sd", table.sds[col])
    frame.index.name = "encoder"
    return frame


def _shown(table: VariantTable) -> pd.DataFrame:
    """Display cells: one decimal, ``mean ± sd`` with several seeds, signed gains, short verdicts."""
    cells = tables._cells(table.means, table.sds, signed=False)
    frame = table_frame(table)

    def signed(x: float) -> str:
        return "--" if math.isnan(x) else f"{x:+.1f}"

    cells[GAIN_TASK] = [signed(x) for x in frame[GAIN_TASK]]
    cells[GAIN_BASELINE] = [signed(x) for x in frame[GAIN_BASELINE]]
    cells["verdict"] = [SHORT_VERDICT[v] for v in frame["verdict"]]
    cells.index = [display_name(e) for e in cells.index]
    cells.columns = [HEADER.get(c) or DISPLAY_NAMES.get(c, c) for c in cells.columns]
    return cells


def caption(table: VariantTable, template: str, seeds_text: str) -> str:
    what = VARIANTS[table.variant].caption
    base = f"{table.baseline_avg:.1f}" + ("" if math.isnan(table.baseline_sd) else f" ± {table.baseline_sd:.1f}")
    return template.format(variant=what[:1].upper() + what[1:], seeds=seeds_text, baseline=base)


def write_variant_table(table: VariantTable, stem: str | Path, caption_text: str) -> list[str]:
    """``<stem>.csv`` (full precision), ``<stem>.md`` and ``<stem>.tex`` (booktabs, shrunk to the
    text width when wider); returns the paths."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    table_frame(table).to_csv(f"{stem}.csv", lineterminator="\n")
    shown = _shown(table)
    md = shown.copy()
    md.index.name = ""
    with open(f"{stem}.md", "w", encoding="utf-8", newline="\n") as f:
        f.write(f"{caption_text}\n\n{md.to_markdown(stralign='right', disable_numparse=True)}\n")
    rows = [[_tex(name), *(_tex(c).replace("±", r"$\pm$") for c in row)]
            for name, row in zip(shown.index, shown.values)]
    latex = _latex_table(rows, ["", *(_tex(c) for c in shown.columns)], _tex(caption_text).replace("±", r"$\pm$"),
                         label(table.variant))
    with open(f"{stem}.tex", "w", encoding="utf-8", newline="\n") as f:
        f.write(latex)
    return [f"{stem}.csv", f"{stem}.md", f"{stem}.tex"]


def label(variant: str) -> str:
    return f"tab:variant-{variant}"


# --------------------------------------------------------------------------------------------
# The paper's generated body


def macro(pair: Pair, what: str) -> str:
    """``\\Variant<Variant><Task><What>``: letters only, digits spelled out (``latex.command_name``)."""
    return command_name("Variant", pair.variant, pair.task, what)


BASELINE_MACRO = r"\VariantBaselineAvg"


def pair_macros(pair: Pair) -> dict[str, str]:
    """Macro -> value of the numbers one pair's sentence quotes."""
    return {
        macro(pair, "TaskAvg"): f"{pair.task_avg:.1f}",
        macro(pair, "Avg"): f"{pair.variant_avg:.1f}",
        macro(pair, "GainOverTask"): f"{pair.gain_over_task:+.1f}",
        macro(pair, "GainOverBaseline"): f"{pair.gain_over_baseline:+.1f}",
        macro(pair, "Verdict"): pair.verdict,
    }


def sentence(pair: Pair) -> str:
    task, variant = _tex(display_name(pair.task)), _tex(display_name(pair.encoder))
    return (f"{variant} averages {macro(pair, 'Avg')}{{}} over the targets, against {macro(pair, 'TaskAvg')}{{}} "
            f"for {task} trained on its English data alone: {macro(pair, 'GainOverTask')}{{}} points "
            f"(spread check: {macro(pair, 'Verdict')}{{}}), and {macro(pair, 'GainOverBaseline')}{{}} points "
            f"over the baseline.")


def variants_tex(variant_tables: list[VariantTable]) -> str:
    """The paper's generated Variants body: macros, a sentence per pair, each variant's table."""
    lines = ["% Generated by rule make_variant_tables (xstilts.variants_report): every number below is a",
             "% macro defined here from the score files."]
    if not variant_tables:
        lines.append("This grid trains no variant encoders (configuration \\texttt{intermediate.variants} names no "
                     "task), so there is no variant to compare.")
        return "\n".join(lines) + "\n"
    definitions: dict[str, str] = {BASELINE_MACRO: f"{variant_tables[0].baseline_avg:.1f}"}
    for table in variant_tables:
        for pair in table.pairs:
            for name, value in pair_macros(pair).items():
                if name in definitions:
                    raise ValueError(f"two numbers of the variants' text would share the macro {name}")
                definitions[name] = value
    lines += [f"\\newcommand{{{name}}}{{{_tex(value)}}}" for name, value in definitions.items()]
    lines += ["", f"Averages are over the paper's targets, as in Table~\\ref{{tab:matrix}}; the baseline averages "
              f"{BASELINE_MACRO}{{}}. {_tex(SPREAD_RULE)}"]
    for table in variant_tables:
        what = VARIANTS[table.variant].caption
        lines += ["", f"\\paragraph{{{_tex(what[:1].upper() + what[1:])} (Table~\\ref{{{label(table.variant)}}}).}}"]
        lines += [sentence(pair) for pair in table.pairs]
        lines.append(f"\\input{{tables/variant_{table.variant}.tex}}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The rule-level entry point


def make_variant_tables(score_files: list[str], variants: dict[str, list[tuple[str, str]]], targets: list[str],
                        seeds: list[int], tables_dir: str | Path, generated: str | Path,
                        captions: dict[str, str], baseline: str = BASELINE) -> dict[str, Any]:
    """Write ``tables_dir/variant_<variant>.{csv,md,tex}`` for each variant and the paper's
    ``generated`` body; returns a record of the pairs (for tests and logs)."""
    runs = tables.load_scores(score_files) if variants else []
    built = []
    for variant, rows in variants.items():
        table = variant_table(runs, variant, rows, targets, seeds, baseline)
        write_variant_table(table, Path(tables_dir) / f"variant_{variant}",
                            caption(table, captions["variant"], tables.seeds_text(seeds)))
        built.append(table)
    generated = Path(generated)
    generated.parent.mkdir(parents=True, exist_ok=True)
    generated.write_text(variants_tex(built), encoding="utf-8")
    return {t.variant: [{"encoder": p.encoder, "task": p.task, "gain_over_task": p.gain_over_task,
                         "gain_over_baseline": p.gain_over_baseline, "verdict": p.verdict} for p in t.pairs]
            for t in built}
