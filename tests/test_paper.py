"""The paper's generated inputs from fixture files with known numbers, and its file references.

Score files, metrics, benchmark records and published CSVs are written here by hand; every
expected value below is worked out from them in the comments, not read back from the code.
"""

from __future__ import annotations

import json
import math
import os
import shutil

import pandas as pd
import pytest

import snakemake_server
from conftest import ROOT
from test_workflow import snakemake
from xstilts import paper, tables
from xstilts.paper_build import toolchain_available

CAPTIONS = tables.load_captions(ROOT / "paper" / "captions.yaml")
TARGETS = ["xnli", "panx", "tydiqa"]


def score_file(tmp_path, encoder, seed, xnli, panx, tydiqa_f1, tydiqa_em):
    """One run's scores: XNLI accuracy, PAN-X F1 and TyDiQA F1/EM per language (en, de)."""
    def avg(d):
        return sum(d.values()) / len(d)

    scores = {
        "xnli": {"accuracy": xnli, "avg_accuracy": avg(xnli), "avg_metric": avg(xnli)},
        "panx": {"f1": panx, "avg_f1": avg(panx), "avg_metric": avg(panx)},
        "tydiqa": {"f1": tydiqa_f1, "exact_match": tydiqa_em, "avg_f1": avg(tydiqa_f1),
                   "avg_exact_match": avg(tydiqa_em), "avg_metric": (avg(tydiqa_f1) + avg(tydiqa_em)) / 2},
    }
    path = tmp_path / "scores" / f"{encoder}-{seed}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"model": "m", "encoder": encoder, "seed": seed, "scores": scores}))
    return str(path)


@pytest.fixture()
def runs(tmp_path):
    # baseline XNLI avg: seed 0 (80+60)/2 = 70, seed 1 72 -> mean 71, sd sqrt(2) = 1.414
    # mnli XNLI avg: seed 0 77.5, seed 1 80.5 -> mean 79, sd 2.121; gain +8 > spread 2.121
    # squad XNLI avg: seed 0 71, seed 1 72 -> 71.5: gain +0.5 < spread (within)
    # PAN-X: baseline 50 both seeds; mnli 51 and 53 -> mean 52 (gain +2, sd 1.414: exceeds)
    #        squad 60 and 40 -> mean 50 (gain 0, sd 14.1: within)
    # TyDiQA: baseline F1 60, EM 40 (score 50); mnli F1 62, EM 44 (score 53); squad F1 70, EM 50 (60)
    f = []
    f.append(score_file(tmp_path, "baseline", 0, {"en": 80.0, "de": 60.0}, {"en": 60.0, "de": 40.0},
                        {"en": 70.0, "de": 50.0}, {"en": 50.0, "de": 30.0}))
    f.append(score_file(tmp_path, "baseline", 1, {"en": 82.0, "de": 62.0}, {"en": 60.0, "de": 40.0},
                        {"en": 70.0, "de": 50.0}, {"en": 50.0, "de": 30.0}))
    f.append(score_file(tmp_path, "mnli", 0, {"en": 85.0, "de": 70.0}, {"en": 61.0, "de": 41.0},
                        {"en": 72.0, "de": 52.0}, {"en": 54.0, "de": 34.0}))
    f.append(score_file(tmp_path, "mnli", 1, {"en": 87.0, "de": 74.0}, {"en": 63.0, "de": 43.0},
                        {"en": 72.0, "de": 52.0}, {"en": 54.0, "de": 34.0}))
    f.append(score_file(tmp_path, "squad_v1", 0, {"en": 81.0, "de": 61.0}, {"en": 70.0, "de": 50.0},
                        {"en": 80.0, "de": 60.0}, {"en": 60.0, "de": 40.0}))
    f.append(score_file(tmp_path, "squad_v1", 1, {"en": 82.0, "de": 62.0}, {"en": 50.0, "de": 30.0},
                        {"en": 80.0, "de": 60.0}, {"en": 60.0, "de": 40.0}))
    return f, tables.load_scores(f)


def metrics_file(tmp_path, encoder, training, seed, dev):
    # Which run a file belongs to is given with it, never parsed from its path.
    path = tmp_path / f"run-{len(list(tmp_path.iterdir()))}.json"
    path.write_text(json.dumps({"result": {"dev": {training: {"score": dev}}}}))
    return encoder, training, str(path)


def test_best_intermediate_task_is_chosen_on_dev_not_test(tmp_path):
    files = [
        metrics_file(tmp_path, "mnli", "xnli", 0, 70.0), metrics_file(tmp_path, "mnli", "xnli", 1, 72.0),
        metrics_file(tmp_path, "squad_v1", "xnli", 0, 73.0), metrics_file(tmp_path, "squad_v1", "xnli", 1, 73.0),
        metrics_file(tmp_path, "mnli", "squad", 0, 40.0), metrics_file(tmp_path, "squad_v1", "squad", 0, 55.0),
        metrics_file(tmp_path, "baseline", "xnli", 0, 99.0),  # never a candidate
    ]
    dev = paper.dev_scores(files, [])
    assert dev[("mnli", "xnli")] == 71.0  # mean over seeds
    # XNLI: squad_v1 73 > mnli 71; XQuAD and MLQA follow the shared SQuAD training.
    best = paper.best_per_target(dev, ["baseline", "mnli", "squad_v1"], ["xnli", "xquad", "mlqa"])
    assert best == {"xnli": "squad_v1", "xquad": "squad_v1", "mlqa": "squad_v1"}


def test_headline_macros_state_whether_the_gain_exceeds_the_seed_spread(runs):
    _, loaded = runs
    best = {"xnli": "mnli", "panx": "squad_v1", "tydiqa": "squad_v1"}
    macros, records = paper.headline_macros(loaded, best, TARGETS, [0, 1], "demo", "m")
    assert r"\newcommand{\XNLIBestTask}{MNLI}" in macros
    assert r"\newcommand{\XNLIBestGain}{+8.0}" in macros
    assert r"\newcommand{\XNLIGainVerdict}{exceeds the seed spread}" in macros
    assert r"\newcommand{\PANXBestGain}{+0.0}" in macros
    assert r"\newcommand{\PANXGainVerdict}{within the seed spread}" in macros
    assert r"\newcommand{\TyDiQABestGain}{+10.0}" in macros  # (70+50)/2 - (60+40)/2
    # Targets outside the run are defined (the text compiles for any subset) and say so.
    assert r"\newcommand{\BUCCBestTask}{n/a}" in macros and r"\newcommand{\BUCCGainVerdict}{not in this run}" in macros
    assert r"\newcommand{\MeanBestGain}{+6.0}" in macros  # (8 + 0 + 10) / 3
    assert [r["target"] for r in records] == TARGETS
    single, _ = paper.headline_macros(loaded, best, TARGETS, [0], "demo", "m")
    assert r"\newcommand{\XNLIGainVerdict}{single seed, spread unknown}" in single


def test_summary_groups_and_best_row(runs):
    _, loaded = runs
    best = {"xnli": "mnli", "panx": "mnli", "tydiqa": "squad_v1"}
    df = paper.summary(loaded, best, TARGETS, [0, 1], multitask=False)
    assert df.loc["Baseline (no intermediate task)", "xnli"] == 71.0
    assert df.loc["Best intermediate task per target"].to_dict() == {"xnli": 79.0, "panx": 52.0, "tydiqa": 60.0}
    # No category is complete (PAWS-X, UD-POS, XQuAD, MLQA are missing): no group, no overall.
    assert list(df.columns) == TARGETS
    latex = paper.summary_table(df, best, CAPTIONS["summary"].replace("{seeds}", "2 seeds"))
    assert r"\toprule" in latex and r"\bottomrule" in latex
    assert "Baseline (no intermediate task) & 71.0 & 50.0 & 50.0" in latex
    assert "chosen on dev: XNLI: MNLI, PAN-X: MNLI, TyDiQA: SQuAD v1.1." in latex


def published_rows():
    return [
        {"system": "x-stilts", "task": "xnli", "metric": "accuracy", "value": "80.4", "source": "s"},
        {"system": "xlm-r", "task": "xnli", "metric": "accuracy", "value": "79.2", "source": "s"},
        {"system": "xlm-r", "task": "tydiqa", "metric": "f1", "value": "65.1", "source": "s"},
    ]


def test_published_join_keeps_unknown_cells_empty_and_marks_non_comparable_runs(runs):
    _, loaded = runs
    best = {"xnli": "mnli", "panx": "mnli", "tydiqa": "squad_v1"}
    latex, df = paper.published_comparison(published_rows(), loaded, best, [0, 1], False, TARGETS,
                                           CAPTIONS["published"])
    rows = df.set_index("name")
    assert rows.loc["xnli", "published_x-stilts"] == 80.4 and rows.loc["xnli", "ours_x-stilts"] == 79.0
    # PAN-X has no published cell at all: both stay empty, ours are still shown.
    assert pd.isna(rows.loc["panx", "published_xlm-r"]) and pd.isna(rows.loc["panx", "published_x-stilts"])
    assert rows.loc["panx", "ours_xlm-r"] == 50.0
    # TyDiQA is compared on the published metric (F1), not the task score: baseline F1 = 60.
    assert rows.loc["tydiqa", "metric"] == "f1" and rows.loc["tydiqa", "ours_xlm-r"] == 60.0
    assert pd.isna(rows.loc["tydiqa", "published_x-stilts"]) and rows.loc["tydiqa", "ours_x-stilts"] == 70.0
    assert r"XNLI & accuracy & 79.2 & 71.0$^\dagger$ & 80.4 & 79.0$^\dagger$" in latex
    assert r"PAN-X & task score & -- & 50.0$^\dagger$ & -- & 52.0$^\dagger$" in latex
    assert "Not comparable" in latex
    comparable, _ = paper.published_comparison(published_rows(), loaded, best, [0, 1], True, TARGETS,
                                               CAPTIONS["published"])
    assert r"\dagger" not in comparable and "XNLI & accuracy & 79.2 & 71.0 & 80.4 & 79.0" in comparable


def test_published_categories_and_the_abstracts_gain(runs):
    _, loaded = runs
    targets = ["xnli", "pawsx", "panx", "udpos"]
    # A summary frame as paper.summary builds it for a run with all classification and tagging tasks.
    df = pd.DataFrame({"classification": [80.0, 84.0], "tagging": [60.0, 61.0], "overall": [70.0, 75.5]},
                      index=["Baseline (no intermediate task)", "Best intermediate task per target"])
    categories = [{"system": "xlm-r", "category": "classification", "value": "82.8", "source": "s"},
                  {"system": "x-stilts", "category": "classification", "value": "83.9", "source": "s"},
                  {"system": "x-stilts", "category": "qa", "value": "67.2", "source": "s"}]
    claims = [{"claim": "xtreme_test_gain_over_xlmr", "value": "5.4", "source": "s"},
              {"claim": "intermediate_tasks", "value": "9", "source": "s"}]
    latex, out = paper.published_comparison([], loaded, {}, [0, 1], True, targets, CAPTIONS["published"],
                                            categories, claims, df)
    rows = out.set_index("name")
    assert rows.loc["classification", "ours_x-stilts"] == 84.0 and rows.loc["classification", "published_xlm-r"] == 82.8
    # The run has no QA category: our QA cells stay empty.
    assert pd.isna(rows.loc["qa", "ours_x-stilts"]) and rows.loc["qa", "published_x-stilts"] == 67.2
    assert rows.loc["xtreme_gain", "ours_x-stilts"] == 5.5 and rows.loc["xtreme_gain", "published_x-stilts"] == 5.4
    assert "XTREME score, gain over XLM-R & points & -- & -- & +5.4 & +5.5" in latex
    assert "intermediate_tasks" not in set(out["name"])


def test_published_files_have_sources_and_numbers():
    published = ROOT / "paper" / "published"
    rows = paper.read_published(published / "xtreme_test.csv")
    assert {(r["system"], r["task"]) for r in rows} >= {("x-stilts", "xnli"), ("xlm-r", "xnli")}
    categories = paper.read_csv_comments(published / "categories.csv", {"system", "category", "value", "source"})
    assert {r["category"] for r in categories} <= set(paper.CATEGORY_COLUMNS)
    claims = paper.read_csv_comments(published / "claims.csv", {"claim", "value", "source"})
    assert any(r["claim"] == "xtreme_test_gain_over_xlmr" for r in claims)


def test_a_published_row_without_source_is_rejected(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text("system,task,metric,value,source\nx-stilts,xnli,accuracy,80.4,\n")
    with pytest.raises(Exception, match="every row needs system, task, metric, value and a source"):
        paper.read_published(path)


def test_compute_table_from_benchmark_files(tmp_path):
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    files = []
    for rule, name, seconds in [("finetune_target", "a", 1800.0), ("finetune_target", "b", 5400.0),
                                ("mine_bucc", "a", 360.0)]:
        path = tmp_path / "benchmarks" / rule / "m" / f"{name}.tsv"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + f"{seconds}\t0\t1\t1\t1\t1\t0\t0\t1\t1\n")
        files.append((rule, path))
    latex, df = paper.compute_table(files, {"finetune_target"}, CAPTIONS["compute"])
    rows = df.set_index("rule")
    assert rows.loc["finetune_target", "jobs"] == 2
    assert rows.loc["finetune_target", "wall_hours"] == 2.0  # (1800 + 5400) / 3600
    assert rows.loc["finetune_target", "mean_minutes"] == 60.0
    assert rows.loc["finetune_target", "gpu_hours"] == 2.0 and rows.loc["mine_bucc", "gpu_hours"] == 0.0
    assert r"mine\_bucc & 1 & 0.10 & 6.0 & --" in latex
    assert r"\textbf{total} & 3 & 2.10 &  & 2.00" in latex


def test_hyperparameter_table_shows_the_effective_batch():
    hp = {"learning_rate": 1e-5, "epochs": 2, "max_steps": None, "batch_size": 4, "grad_accum": 8,
          "max_seq_length": 256, "warmup_ratio": 0.1, "eval_every_steps": 1000, "patience": 30}
    latex = paper.hyperparameter_table({"XNLI (target)": hp, "MLM": {**hp, "max_steps": 500}}, CAPTIONS["hyperparameters"])
    assert "XNLI (target) & 1e-5 & 2 ep. & 32 & 256 & 0.1 & 1000 & 30" in latex
    assert "MLM & 1e-5 & 500 steps" in latex


# ------------------------------------------------------------------------------------------
# The paper's references


def test_every_reference_of_the_paper_is_a_source_or_a_generated_file():
    sources, generated = paper.paper_files(ROOT / "paper")
    assert sources[0] == "main.tex" and "sections/results.tex" in sources
    assert all((ROOT / "paper" / s).is_file() for s in sources)
    assert "tables/matrix.tex" in generated and "generated/macros.tex" in generated
    assert "figures/delta_heatmap.pdf" in generated


def test_a_reference_outside_paper_and_the_generated_roots_is_an_error(tmp_path):
    (tmp_path / "main.tex").write_text("\\input{sections/a}\n% \\input{commented/out.tex}\n")
    (tmp_path / "sections").mkdir()
    (tmp_path / "sections/a.tex").write_text("\\includegraphics[width=1cm]{figures/x.pdf}\n\\input{elsewhere/b.tex}\n")
    with pytest.raises(FileNotFoundError, match=r"paper/sections/a.tex references 'elsewhere/b.tex'"):
        paper.paper_files(tmp_path)
    (tmp_path / "sections/a.tex").write_text("\\includegraphics[width=1cm]{figures/x.pdf}\n")
    assert paper.paper_files(tmp_path) == (["main.tex", "sections/a.tex"], ["figures/x.pdf"])


def workflow_copy(tmp_path):
    """The workflow's code in a scratch folder, to change the paper without touching the repo."""
    copy = tmp_path / "workflow"
    copy.mkdir()
    for name in ("Snakefile", "config.yaml", "rules", "scripts", "envs", "paper", "profiles"):
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, copy / name)
    return copy


def test_every_generated_input_of_the_paper_has_a_producing_rule(tmp_path):
    # The dry run of target `paper` from nothing succeeds: every \input and figure is some
    # rule's output (a missing producer is a MissingInputException).
    proc = snakemake("-n", "--directory", str(tmp_path / "run"), "paper", check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "compile_paper" in proc.stdout


def test_the_build_fails_when_the_paper_references_a_file_no_rule_produces(tmp_path):
    copy = workflow_copy(tmp_path)
    results = copy / "paper/sections/results.tex"
    results.write_text(results.read_text() + "\n\\input{generated/no_such_table.tex}\n")
    proc = snakemake_server.run(["-s", str(copy / "Snakefile"), "-n", "--directory", str(tmp_path / "run"), "paper"],
                                cwd=os.getcwd(), env=dict(os.environ))
    assert proc.returncode != 0
    output = proc.stdout + proc.stderr
    assert "MissingInputException" in output and "results/demo/paper/xlmr-demo/generated/no_such_table.tex" in output


@pytest.mark.skipif(not toolchain_available() and os.environ.get("XSTILTS_REQUIRE_TEX") != "1",
                    reason="no TeX toolchain (scripts/install_tex.sh)")
def test_pdf_compiles_from_generated_inputs(tmp_path, runs):
    # A minimal paper with one generated table and one macro, through the rule's own compiler.
    from xstilts.paper_build import compile_pdf

    _, loaded = runs
    src = tmp_path / "paper"
    (src / "sections").mkdir(parents=True)
    (src / "main.tex").write_text("\\documentclass{article}\\usepackage{booktabs}\\input{generated/macros.tex}\n"
                                  "\\begin{document}\\input{sections/a.tex}\\end{document}\n")
    (src / "sections/a.tex").write_text("Gain \\XNLIBestGain.\n\\input{tables/matrix.tex}\n")
    # The run's files live anywhere; compile_pdf lays them out under the names the paper uses.
    gen = tmp_path / "results" / "somewhere"
    gen.mkdir(parents=True)
    macros, _ = paper.headline_macros(loaded, {"xnli": "mnli"}, ["xnli"], [0, 1], "demo", "m")
    (gen / "headline_macros.tex").write_text(macros)
    means, sds = tables.matrix(loaded, ["baseline", "mnli"], ["xnli"], [0, 1])
    tables.write_table(means, sds, gen / "the_matrix", "Matrix.", "tab:m")
    generated = {"generated/macros.tex": gen / "headline_macros.tex", "tables/matrix.tex": gen / "the_matrix.tex"}
    out = tmp_path / "paper.pdf"
    compile_pdf(src / "main.tex", generated, tmp_path / "build", out)
    assert out.read_bytes().startswith(b"%PDF")
    log = (tmp_path / "build/main.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "LaTeX Warning: Reference" not in log
    # Same inputs, same bytes (SOURCE_DATE_EPOCH).
    again = tmp_path / "again.pdf"
    compile_pdf(src / "main.tex", generated, tmp_path / "build2", again)
    assert again.read_bytes() == out.read_bytes()


def test_a_tex_error_names_the_log(tmp_path):
    from xstilts.paper_build import compile_pdf

    if not toolchain_available():
        with pytest.raises(RuntimeError, match="cannot compile the paper: latexmk or pdflatex not found; install"):
            compile_pdf(tmp_path / "main.tex", {}, tmp_path / "build", tmp_path / "x.pdf")
        return
    (tmp_path / "main.tex").write_text("\\documentclass{article}\\begin{document}\\undefinedmacro\\end{document}\n")
    with pytest.raises(RuntimeError, match=r"latexmk failed .*TeX log: .*build/main.log.*Undefined control sequence"):
        compile_pdf(tmp_path / "main.tex", {}, tmp_path / "build", tmp_path / "x.pdf")
    assert not (tmp_path / "x.pdf").exists()


def test_mean_and_sd_cells_of_the_matrix_in_latex(runs, tmp_path):
    files, loaded = runs
    means, sds = tables.matrix(loaded, ["baseline", "mnli"], ["xnli"], [0, 1])
    tables.write_table(means, sds, tmp_path / "m", CAPTIONS["matrix"].format(seeds="2 seeds"), "tab:matrix")
    tex = (tmp_path / "m.tex").read_text()
    # baseline 71.0 +- 1.4 (sd of 70 and 72), MNLI 79.0 +- 2.1 (sd of 77.5 and 80.5); avg = XNLI here
    assert r"Baseline (no intermediate task) & 71.0 $\pm$ 1.4 & 71.0 $\pm$ 1.4 \\" in tex
    assert r"MNLI & 79.0 $\pm$ 2.1 & 79.0 $\pm$ 2.1 \\" in tex
    assert math.isclose(pd.read_csv(tmp_path / "m.csv", index_col=0).loc["mnli", "xnli_sd"], 2.1213, abs_tol=1e-4)
