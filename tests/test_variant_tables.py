"""The variants' tables and the paper's generated Variants text, from fixture score files.

Every expected value is worked out by hand in the comments from the fixture numbers below, not
read back from the code.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from conftest import ROOT
from xstilts import comparison, paper, reasoning_report, tables, variants_report
from xstilts.paper_build import toolchain_available
from xstilts.tasks import XTREME_TARGETS

CAPTIONS = tables.load_captions(ROOT / "paper" / "captions.yaml")
TARGETS = list(XTREME_TARGETS)  # the 9 XTREME targets, Plan.targets order
QA = {"xquad", "mlqa", "tydiqa"}
ACCURACY = {"xnli", "pawsx", "tatoeba"}

# Per (encoder, seed) one level c. Every target scores c (non-QA: en c+2, de c-2; QA: F1 c+1,
# EM c-1, so (EM+F1)/2 = c), except XNLI which scores c+9: the average over the 9 targets is
# (8c + c + 9) / 9 = c + 1.
LEVELS = {
    "baseline": [60, 61, 62],         # avg 61, 62, 63 -> mean 62, sd 1
    "mnli": [64, 66, 68],             # avg 65, 67, 69 -> mean 67, sd 2
    "mnli+mlm": [69, 70, 71],         # avg 70, 71, 72 -> mean 71, sd 1
    "mnli-translated": [65, 67, 69],  # avg 66, 68, 70 -> mean 68, sd 2
}


def score_file(folder, encoder, seed, c):
    scores = {}
    for t in TARGETS:
        v = c + 9 if t == "xnli" else c
        if t in QA:
            per = {"f1": {"en": v + 1, "de": v + 1}, "exact_match": {"en": v - 1, "de": v - 1}}
        else:
            per = {("accuracy" if t in ACCURACY else "f1"): {"en": v + 2, "de": v - 2}}
        scores[t] = per  # no stored averages: load_scores recomputes them
    path = folder / f"{encoder}-{seed}.json"
    path.write_text(json.dumps({"model": "m", "encoder": encoder, "seed": seed, "scores": scores}))
    return str(path)


@pytest.fixture()
def files(tmp_path):
    folder = tmp_path / "scores"
    folder.mkdir()
    return [score_file(folder, e, s, c) for e, levels in LEVELS.items() for s, c in enumerate(levels)]


def test_three_seeds_averages_gains_sd_and_spread_verdict(files):
    runs = tables.load_scores(files)
    table = variants_report.variant_table(runs, "mlm", [("mnli+mlm", "mnli")], TARGETS, [0, 1, 2])
    assert list(table.means.index) == ["mnli", "mnli+mlm"]
    assert list(table.means.columns) == [*TARGETS, "avg"]
    assert table.means.loc["mnli+mlm", "xnli"] == 79.0  # 78, 79, 80
    assert table.means.loc["mnli+mlm", "tydiqa"] == 70.0
    assert table.means.loc["mnli", "avg"] == 67.0 and table.sds.loc["mnli", "avg"] == 2.0
    assert table.means.loc["mnli+mlm", "avg"] == 71.0 and table.sds.loc["mnli+mlm", "avg"] == 1.0
    assert (table.baseline_avg, table.baseline_sd) == (62.0, 1.0)
    (pair,) = table.pairs
    assert pair.gain_over_task == 4.0  # 71 - 67
    assert pair.gain_over_baseline == 9.0  # 71 - 62
    assert pair.spread == 3.0  # sd 1 + sd 2; |+4| > 3
    assert pair.verdict == "exceeds the seed spread"
    # The same numbers as the main matrix for those encoders.
    means, _ = tables.matrix(runs, ["baseline", "mnli", "mnli+mlm"], TARGETS, [0, 1, 2])
    assert table.means.loc["mnli+mlm"].equals(means.loc["mnli+mlm"])
    # translated: 68 - 67 = +1 against a spread of 2 + 2 = 4: within.
    (within,) = variants_report.variant_table(runs, "translated", [("mnli-translated", "mnli")], TARGETS,
                                              [0, 1, 2]).pairs
    assert within.gain_over_task == 1.0 and within.spread == 4.0 and within.verdict == "within the seed spread"


def test_the_spread_rule():
    assert variants_report.verdict(3.0, 1.0, 1.0, 3) == variants_report.EXCEEDS
    assert variants_report.verdict(-2.5, 1.0, 1.0, 3) == variants_report.EXCEEDS
    assert variants_report.verdict(2.0, 1.0, 1.0, 3) == variants_report.WITHIN  # not larger
    assert variants_report.verdict(9.0, float("nan"), float("nan"), 1) == "n/a (1 seed)"


def test_written_tables_and_paper_body(files, tmp_path):
    record = variants_report.make_variant_tables(
        files, {"mlm": [("mnli+mlm", "mnli")], "translated": [("mnli-translated", "mnli")]}, TARGETS, [0, 1, 2],
        tmp_path / "tables", tmp_path / "generated/variants.tex", CAPTIONS)
    assert record["mlm"] == [{"encoder": "mnli+mlm", "task": "mnli", "gain_over_task": 4.0,
                              "gain_over_baseline": 9.0, "verdict": "exceeds the seed spread"}]
    csv = pd.read_csv(tmp_path / "tables/variant_mlm.csv", index_col=0)
    assert list(csv.index) == ["mnli", "mnli+mlm"] and list(csv["task"]) == ["mnli", "mnli"]
    assert list(csv.columns[1:11]) == [*TARGETS, "avg"]
    assert csv.loc["mnli+mlm", "avg"] == 71.0 and csv.loc["mnli+mlm", "avg_sd"] == 1.0
    assert csv.loc["mnli+mlm", "xnli_sd"] == 1.0 and csv.loc["mnli", "avg_sd"] == 2.0
    assert csv.loc["mnli+mlm", "gain_over_task"] == 4.0 and pd.isna(csv.loc["mnli", "gain_over_task"])
    assert csv.loc["mnli+mlm", "gain_over_baseline"] == 9.0
    assert csv.loc["mnli", "gain_over_baseline"] == 5.0  # 67 - 62
    assert csv.loc["mnli+mlm", "spread"] == 3.0 and csv.loc["mnli+mlm", "verdict"] == "exceeds the seed spread"
    assert pd.isna(csv.loc["mnli", "spread"]) and pd.isna(csv.loc["mnli", "verdict"])  # plain rows: no comparison
    md = (tmp_path / "tables/variant_mlm.md").read_text()
    assert md.startswith("Intermediate task vs intermediate task + multilingual MLM: each intermediate task")
    assert "mean over 3 seeds" in md and "average 62.0 ± 1.0" in md
    table = [line for line in md.splitlines() if line.startswith("|")]
    rows = {cells[0]: cells[1:] for cells in ([c.strip() for c in line.strip("|").split("|")] for line in table)}
    assert list(rows["MNLI + MLM"]) == ["79.0 ± 1.0", *["70.0 ± 1.0"] * 8, "71.0 ± 1.0", "+4.0", "+9.0", "exceeds"]
    assert rows["MNLI"][-4:] == ["67.0 ± 2.0", "--", "+5.0", "--"]
    assert rows[""] == ["XNLI", "PAWS-X", "UD-POS", "PAN-X", "XQuAD", "MLQA", "TyDiQA", "BUCC", "Tatoeba", "Avg",
                        "vs. task", "vs. baseline", "Seed spread"]
    tex = (tmp_path / "tables/variant_mlm.tex").read_text()
    assert r"\label{tab:variant-mlm}" in tex and r"\toprule" in tex
    assert r"MNLI + MLM & 79.0 $\pm$ 1.0 & 70.0 $\pm$ 1.0" in tex
    assert r"71.0 $\pm$ 1.0 & +4.0 & +9.0 & exceeds \\" in tex
    assert "MNLI (translated) & " in (tmp_path / "tables/variant_translated.tex").read_text()

    body = (tmp_path / "generated/variants.tex").read_text()
    for line in [r"\newcommand{\VariantBaselineAvg}{62.0}",
                 r"\newcommand{\VariantMlmMnliTaskAvg}{67.0}",
                 r"\newcommand{\VariantMlmMnliAvg}{71.0}",
                 r"\newcommand{\VariantMlmMnliGainOverTask}{+4.0}",
                 r"\newcommand{\VariantMlmMnliGainOverBaseline}{+9.0}",
                 r"\newcommand{\VariantMlmMnliVerdict}{exceeds the seed spread}",
                 r"\newcommand{\VariantTranslatedMnliAvg}{68.0}",
                 r"\newcommand{\VariantTranslatedMnliGainOverTask}{+1.0}",
                 r"\newcommand{\VariantTranslatedMnliVerdict}{within the seed spread}",
                 r"\input{tables/variant_mlm.tex}", r"\input{tables/variant_translated.tex}"]:
        assert line in body.splitlines(), line
    assert r"MNLI + MLM averages \VariantMlmMnliAvg{} over the targets, against \VariantMlmMnliTaskAvg{}" in body
    assert r"(spread check: \VariantMlmMnliVerdict{})" in body
    # Every macro the sentences quote is defined, and every macro name is letters only.
    defined = re.findall(r"\\newcommand\{\\([A-Za-z]+)\}", body)
    used = set(re.findall(r"\\(Variant[A-Za-z]+)\{\}", body))
    assert used <= set(defined) and len(defined) == len(set(defined)) == 11


def test_one_seed(files, tmp_path):
    # Seed 0 only: baseline avg 61, mnli 65, mnli+mlm 70 -> +5 over the task, +9 over the baseline.
    variants_report.make_variant_tables(files, {"mlm": [("mnli+mlm", "mnli")]}, TARGETS, [0], tmp_path / "t",
                                        tmp_path / "g.tex", CAPTIONS)
    csv = pd.read_csv(tmp_path / "t/variant_mlm.csv", index_col=0)
    assert not any(c.endswith("_sd") for c in csv.columns)
    assert csv.loc["mnli+mlm", "avg"] == 70.0 and csv.loc["mnli+mlm", "gain_over_task"] == 5.0
    assert csv.loc["mnli+mlm", "gain_over_baseline"] == 9.0 and csv.loc["mnli+mlm", "verdict"] == "n/a (1 seed)"
    caption, _, table = (tmp_path / "t/variant_mlm.md").read_text().partition("\n\n")
    assert "±" not in table and "mean over 1 seed" in caption and "average 61.0)" in caption
    body = (tmp_path / "g.tex").read_text()
    assert r"\newcommand{\VariantMlmMnliVerdict}{n/a (1 seed)}" in body
    assert r"\newcommand{\VariantMlmMnliGainOverTask}{+5.0}" in body


def test_no_variants(tmp_path):
    record = variants_report.make_variant_tables([], {}, TARGETS, [0], tmp_path / "t", tmp_path / "g/variants.tex",
                                                 CAPTIONS)
    body = (tmp_path / "g/variants.tex").read_text()
    assert record == {} and "trains no variant encoders" in body
    assert r"\newcommand" not in body and r"\input" not in body and not (tmp_path / "t").exists()


def test_missing_seed_of_a_variant_row_is_an_error(files):
    runs = tables.load_scores([f for f in files if not f.endswith("mnli+mlm-2.json")])
    with pytest.raises(ValueError, match=r"no score file for encoder 'mnli\+mlm' and seed\(s\) \[2\]"):
        variants_report.variant_table(runs, "mlm", [("mnli+mlm", "mnli")], TARGETS, [0, 1, 2])


def test_macro_names_spell_out_digits():
    pair = variants_report.Pair("mlm", "squad_v1+mlm", "squad_v1", 0, 0, 0, 0, 0, "")
    assert variants_report.macro(pair, "Avg") == r"\VariantMlmSquadVOneAvg"
    other = variants_report.Pair("mlm", "squad_v2+mlm", "squad_v2", 0, 0, 0, 0, 0, "")
    assert variants_report.macro(other, "Avg") != variants_report.macro(pair, "Avg")


def test_variant_rows_are_named_in_the_other_reports():
    assert reasoning_report._name("mnli+mlm") == "MNLI + MLM"
    assert comparison._name("squad_v1-translated") == "SQuAD v1.1 (translated)"
    assert comparison._name("mnli") == "MNLI" and reasoning_report._name("avg") == "Reasoning avg."


def test_dataset_table_lists_translations_and_the_corpus(tmp_path):
    def lines(dataset, lang, split, n, ext="jsonl"):
        path = tmp_path / dataset / lang / f"{split}.{ext}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}\n" * n)

    lines("mnli", "en", "train", 5)
    lines("mnli", "en", "dev", 2)
    lines("mnli_mt", "de", "train", 3)
    lines("mnli_mt", "fr", "train", 4)
    lines("mlm_corpus", "en", "train", 10, "txt")
    lines("mlm_corpus", "de", "train", 20, "txt")
    layout = {"mnli": {"train": ["en"], "dev": ["en"]}, "mnli_mt": {"train": ["de", "fr"]},
              "mlm_corpus": {"train": ["de", "en"]}}
    latex, df = paper.dataset_table(tmp_path, layout, ["mnli"], [], CAPTIONS["datasets"],
                                    CAPTIONS["datasets_variant_data"])
    rows = df.set_index("Task")
    assert list(df["phase"]) == ["intermediate", "translation", "corpus"]
    assert rows.loc["MNLI (machine-translated)", "Train (en)"] == "7"  # 3 + 4
    assert rows.loc["MNLI (machine-translated)", "Langs."] == "2"
    assert rows.loc["MNLI (machine-translated)", "Metric"] == "Acc."
    assert rows.loc["Multilingual corpus (MLM)", "Train (en)"] == "30"
    assert "Machine-translated training sets" in latex
    plain, _ = paper.dataset_table(tmp_path, {"mnli": layout["mnli"]}, ["mnli"], [], CAPTIONS["datasets"],
                                   CAPTIONS["datasets_variant_data"])
    assert "Machine-translated" not in plain and "corpus" not in plain.lower()


@pytest.mark.skipif(not toolchain_available(), reason="no TeX toolchain (scripts/install_tex.sh)")
@pytest.mark.parametrize("variants", [{"mlm": [("mnli+mlm", "mnli")]}, {}], ids=["mlm", "none"])
def test_the_variants_section_compiles(files, tmp_path, variants):
    # The handwritten section with the generated body and tables, through the rule's own compiler.
    from xstilts.paper_build import compile_pdf

    src = tmp_path / "paper"
    (src / "sections").mkdir(parents=True)
    (src / "sections/variants.tex").write_text((ROOT / "paper/sections/variants.tex").read_text())
    (src / "main.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\usepackage{graphicx}\n"
                                  "\\begin{document}\\begin{table}\\caption{M}\\label{tab:matrix}\\end{table}\n"
                                  "\\input{sections/variants.tex}\\end{document}\n")
    gen = tmp_path / "out"
    variants_report.make_variant_tables(files, variants, TARGETS, [0, 1, 2], gen, gen / "variants.tex", CAPTIONS)
    generated = {"generated/variants.tex": gen / "variants.tex",
                 **{f"tables/variant_{v}.tex": gen / f"variant_{v}.tex" for v in variants}}
    compile_pdf(src / "main.tex", generated, tmp_path / "build", tmp_path / "paper.pdf")
    log = (tmp_path / "build/main.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "LaTeX Warning: Reference" not in log
