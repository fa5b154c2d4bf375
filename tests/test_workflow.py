"""The Snakemake workflow itself: lint, the demo grid's job counts, and a real run of a reduced grid.

The reduced run (tests/configs/smoke.yaml over config.yaml) executes the
same DAG as the demo in a temporary directory, twice, and checks finite tables, byte-identical
tables across the two runs, and `xstilts evaluate` on the DAG's own prediction folders; the
baseline's XNLI training, run again with more epochs in a copy, must reach English accuracy
clearly above chance. The other phase-1 architectures run side by side in
tests/test_architectures.py.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

import snakemake_server
from conftest import ROOT
from xstilts.paper_build import toolchain_available
from xstilts.tasks import DATASETS, INTERMEDIATE_TASKS, TARGET_TASKS, TARGET_TRAININGS

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# The reduced grid.
SMOKE = ("--configfile", str(ROOT / "tests" / "configs" / "smoke.yaml"))
# The smoke config's run and model name its result tree (rules/common.smk builds the paths).
RUN = "results/smoke"
TABLES = f"{RUN}/tables/xlmr-smoke"
FIGURES = f"{RUN}/figures/xlmr-smoke"
PAPER = f"{RUN}/paper/xlmr-smoke"
# The presentation rules after the tables: the paper's inputs, compute table, per-language
# figure, and the PDF only where a TeX toolchain is installed (rule all says so otherwise).
TEX = toolchain_available()
PAPER_JOBS = {"make_paper_inputs": 1, "make_compute_table": 1, "make_language_figure": 1, **({"compile_paper": 1} if TEX else {})}
# CI installs TeX (scripts/install_tex.sh) and sets this, so the PDF tests cannot be skipped there.
REQUIRE_TEX = os.environ.get("XSTILTS_REQUIRE_TEX") == "1"


def snakemake(*args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    proc = snakemake_server.run(["-s", str(ROOT / "Snakefile"), *args], cwd=cwd or ROOT, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


def test_lint_reports_nothing():
    proc = snakemake_server.run(["--lint"], cwd=ROOT, env=dict(os.environ))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dry_run_of_the_demo_grid(tmp_path):
    counts = job_counts(snakemake("-n", "--directory", str(tmp_path)).stdout)
    encoders = 1 + len(INTERMEDIATE_TASKS) + 1 + 2  # baseline, nine tasks, multi-task, mnli+mlm, mnli-translated
    assert encoders == 13
    models = 2  # xlmr-demo and qwen2-demo: every model job twice, the data once
    per_model = {
        "train_tokenizer": 1,
        "pretrain_mlm": 1,
        # One feature set per dataset that a training or prediction job encodes (the 26 datasets
        # less BUCC, Tatoeba and the corpus), and two of the corpus (mnli+mlm's LM and dev lines).
        "tokenize_dataset": 23 + 2,
        "finetune_intermediate": encoders - 1,
        "finetune_target": encoders * len(TARGET_TRAININGS) * 1,  # one seed in the demo
        "predict_target": encoders * len(TARGET_TRAININGS) * 1,
        "embed_sentences": encoders,
        "mine_bucc": encoders,
        "search_tatoeba": encoders,
        "score_run": encoders,
        "make_tables": 1,
        "make_figure": 1,
        "make_variant_tables": 1,
        # The reasoning analysis (rules/reasoning.smk): XNLI and XCOPA, XCOPA trained above.
        "bootstrap_reasoning_gains": 1,
        "make_reasoning_figure": 1,
        "make_reasoning_section": 1,
        **PAPER_JOBS,
    }
    # Every dataset but SQuAD's translation (the demo translates MNLI only).
    shared = {"make_demo_dataset": len(DATASETS) - 1, "write_labels": len(TARGET_TASKS), "make_model_comparison": 1, "all": 1}
    expected = {**shared, **{rule: models * n for rule, n in per_model.items()}}
    assert counts == {**expected, "total": sum(expected.values())}
    assert sum(expected.values()) == 26 + 10 + 1 + 1 + models * (2 + 25 + 12 + 2 * 91 + 3 * 13 + 13 + 3 + 3
                                                              + len(PAPER_JOBS))


def test_more_seeds_multiply_only_phase_3(tmp_path):
    # On the reduced grid (a dry run of the demo's 1,500 jobs takes seconds more and shows the same):
    # six encoders (baseline, mnli, squad_v1, multitask, mnli+mlm, mnli-translated), three trained
    # targets (xnli, udpos, and squad for xquad), one model.
    one, three = (job_counts(snakemake(*SMOKE, "-n", "--directory", str(tmp_path), "--config", f"seeds={seeds}").stdout)
                  for seeds in ("[0]", "[0,1,2]"))
    assert one["finetune_target"] == one["predict_target"] == 6 * 3
    assert three["finetune_target"] == three["predict_target"] == 6 * 3 * 3
    assert one["score_run"] == 6 and three["score_run"] == 6 * 3
    unchanged = {"finetune_intermediate": 5, "embed_sentences": 6, "mine_bucc": 6, "search_tatoeba": 6,
                 "pretrain_mlm": 1, "tokenize_dataset": one["tokenize_dataset"], "make_tables": 1}
    assert {rule: three[rule] for rule in unchanged} == {rule: one[rule] for rule in unchanged} == unchanged


def test_bad_config_fails_before_any_job(tmp_path):
    proc = snakemake("-n", "--directory", str(tmp_path), "--config", "seeds=zero", check=False)
    assert proc.returncode != 0
    assert "seeds: 'zero' is not of type 'array'" in proc.stdout + proc.stderr
    assert not (tmp_path / "results").exists()


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Two runs of the reduced grid: run `smoke` in one working directory; that directory copied
    (times kept) to a second one, where the same grid runs again under the run name `smoke2`.

    smoke_runs[0] holds results/smoke; smoke_runs[1] holds the copy of results/smoke and
    results/smoke2, computed from scratch (so byte identity across runs is checked on them).
    Both runs' jobs fork from the pre-imported worker (the default); `own_process_reruns` runs
    some of them again, each in a process of its own.
    """
    first = tmp_path_factory.mktemp("run1")
    snakemake(*SMOKE, "--cores", "2", "--directory", str(first))
    second = tmp_path_factory.mktemp("run2") / "copy"
    shutil.copytree(first, second, symlinks=True)  # copy2: modification times kept
    SMOKE_STATE["copied"] = {p: p.stat().st_mtime_ns for p in (second / RUN).rglob("*")}
    SMOKE_STATE["copy_dry_run"] = snakemake(*SMOKE, "-n", "--directory", str(second)).stdout
    snakemake(*SMOKE, "--cores", "2", "--directory", str(second), "--config", "run=smoke2")
    return [first, second]


SMOKE_STATE: dict = {}
RUN2 = "results/smoke2"
# One job of each kind that runs torch and transformers, all on the baseline encoder: tokenising
# (UD-POS's features), training and prediction (its UD-POS model) and sentence embedding.
OWN_PROCESS_JOBS = {"tokenize_dataset": 1, "finetune_target": 1, "predict_target": 1, "embed_sentences": 1}


@pytest.fixture(scope="module")
def own_process_reruns(smoke_runs, tmp_path_factory):
    """The first run copied (times kept), and OWN_PROCESS_JOBS run again there (`--forcerun`), each
    in a process of its own (XSTILTS_NO_WORKER=1). Returns the copy, the outputs run again
    (paths in the working directory) and snakemake's output."""
    first = smoke_runs[0]
    copy = tmp_path_factory.mktemp("own_process") / "copy"
    shutil.copytree(first, copy, symlinks=True)
    features = next(p for p in (first / RUN / "features/xlmr-smoke/udpos").iterdir() if not p.name.startswith("."))
    udpos = f"{RUN}/target/xlmr-smoke/baseline/udpos/seed0"
    outputs = [features.relative_to(first).as_posix(), f"{udpos}/model", f"{udpos}/metrics.json",
               f"{udpos}/predictions", f"{udpos}/predict.json", f"{RUN}/embeddings/xlmr-smoke/baseline"]
    proc = snakemake(*SMOKE, "--cores", "2", "--directory", str(copy), *outputs,
                     "--forcerun", *outputs, env={"XSTILTS_NO_WORKER": "1"})
    return copy, outputs, proc.stdout + proc.stderr


def tree(folder: Path) -> dict[str, bytes]:
    """Every file of an output (a file, or a folder and its subfolders) without the manifests, job
    locks and Snakemake time stamps of its jobs (their names start with a dot)."""
    if folder.is_file():
        return {folder.name: folder.read_bytes()}
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)}


@pytest.mark.workflow
def test_the_runs_jobs_ran_in_the_worker_and_the_reruns_in_their_own_processes(smoke_runs, own_process_reruns):
    for workdir, run in zip(smoke_runs, ("smoke", "smoke2")):
        worker_log = (workdir / f"logs/{run}/worker.log").read_text()
        assert "refused" not in worker_log, run
        forked = re.findall(r"job pid \d+: \S+\.snakemake/scripts/\S+\.(\w+)\.py", worker_log)
        job_logs = sorted((workdir / f"logs/{run}").glob("*/**/*.log"))
        # Every job of the grid but `all` (no script) forked, and each ended well, with its usage logged.
        assert len(forked) == len(job_logs) == worker_log.count("exited with 0: ") > 40, (run, len(job_logs))
        assert Counter(forked) == Counter(p.relative_to(workdir / f"logs/{run}").parts[0] for p in job_logs)
    # The reruns: exactly the chosen jobs, and no worker (its log is the first run's, as copied).
    copy, _, output = own_process_reruns
    assert job_counts(output) == {**OWN_PROCESS_JOBS, "total": sum(OWN_PROCESS_JOBS.values())}
    assert "No job worker (XSTILTS_NO_WORKER is set)" in output
    assert (copy / "logs/smoke/worker.log").read_bytes() == (smoke_runs[0] / "logs/smoke/worker.log").read_bytes()


@pytest.mark.workflow
def test_jobs_in_their_own_processes_write_the_bytes_they_write_in_the_worker(smoke_runs, own_process_reruns):
    copy, outputs, _ = own_process_reruns
    for output in outputs:
        ours, theirs = tree(copy / output), tree(smoke_runs[0] / output)
        assert ours and ours.keys() == theirs.keys(), output
        assert [name for name in ours if ours[name] != theirs[name]] == [], output
        # ... and were written again, not left as copied.
        assert (copy / output).stat().st_mtime_ns > (smoke_runs[0] / output).stat().st_mtime_ns, output


@pytest.mark.workflow
def test_a_copied_working_directory_reruns_nothing(smoke_runs):
    assert "Nothing to be done" in SMOKE_STATE["copy_dry_run"], SMOKE_STATE["copy_dry_run"][-3000:]


@pytest.mark.workflow
def test_two_runs_in_one_directory_keep_their_own_files(smoke_runs):
    second = smoke_runs[1]
    # The second run wrote only under its own name, and every file of the first is untouched.
    assert (second / RUN2 / "tables/xlmr-smoke/matrix.csv").is_file()
    assert {p: p.stat().st_mtime_ns for p in (second / RUN).rglob("*")} == SMOKE_STATE["copied"]
    assert sorted(p.name for p in (second / "logs").iterdir()) == ["smoke", "smoke2"]
    assert sorted(p.name for p in (second / "benchmarks").iterdir()) == ["smoke", "smoke2"]
    # ... and both are up to date.
    for run in ("smoke", "smoke2"):
        proc = snakemake(*SMOKE, "-n", "--directory", str(second), "--config", f"run={run}")
        assert "Nothing to be done" in proc.stdout + proc.stderr, run


@pytest.mark.workflow
def test_moving_the_workflow_reruns_nothing(smoke_runs, tmp_path):
    # A checkout moved to another folder (here: copied) sees the same finished run as up to date.
    from test_paper import workflow_copy

    proc = dry_run_with(workflow_copy(tmp_path), smoke_runs[0])
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


@pytest.mark.workflow
def test_tables_are_complete_and_finite(smoke_runs):
    matrix = pd.read_csv(smoke_runs[0] / f"{TABLES}/matrix.csv", index_col=0)
    assert list(matrix.index) == ["baseline", "mnli", "squad_v1", "multitask"]
    assert list(matrix.columns) == ["xnli", "udpos", "xquad", "bucc2018", "tatoeba", "avg"]
    assert all(math.isfinite(v) for v in matrix.values.ravel())
    assert (matrix.values >= 0).all() and (matrix.values <= 100).all()
    for ext in ("csv", "md", "tex"):
        assert (smoke_runs[0] / f"{TABLES}/matrix_delta.{ext}").stat().st_size > 0
    assert (smoke_runs[0] / f"{FIGURES}/delta_heatmap.png").stat().st_size > 0


@pytest.mark.workflow
def test_the_variant_rows_train_score_and_fill_their_tables(smoke_runs):
    run = smoke_runs[0]
    # +MLM: one run of MNLI and the LM task (its pretrained head); MNLI's dev alone selected.
    mlm = json.loads((run / f"{RUN}/intermediate/xlmr-smoke/mnli+mlm/metrics.json").read_text())
    history = mlm["result"]["history"]
    assert {"mnli", "mlm"} <= set(history[-1]["dev"])
    assert [h["dev_score"] for h in history] == [h["dev"]["mnli"]["score"] for h in history]
    assert any("mlm_corpus/de/train.txt" in p for p in mlm["inputs"])
    # Translated: MNLI's translations into the smoke languages, and the English original.
    translated = json.loads((run / f"{RUN}/intermediate/xlmr-smoke/mnli-translated/metrics.json").read_text())
    assert sorted(p.split("/data/")[1] for p in translated["inputs"] if "/data/" in p) == [
        "mnli/en/dev.jsonl", "mnli/en/train.jsonl", "mnli_mt/de/train.jsonl", "mnli_mt/ru/train.jsonl",
        "mnli_mt/zh/train.jsonl"]
    # Each variant row is scored on every target like the matrix's rows, and tabled beside its task.
    for variant, row in (("mlm", "mnli+mlm"), ("translated", "mnli-translated")):
        scores = json.loads((run / f"{RUN}/scores/xlmr-smoke/{row}/seed0.json").read_text())["scores"]
        assert set(scores) == {"xnli", "udpos", "xquad", "bucc2018", "tatoeba"}
        table = pd.read_csv(run / f"{TABLES}/variant_{variant}.csv", index_col=0)
        assert list(table.index) == ["mnli", row]
        avg = pd.read_csv(run / f"{TABLES}/matrix.csv", index_col=0).loc["mnli", "avg"]
        assert table.loc["mnli", "avg"] == pytest.approx(avg, abs=5e-5)  # matrix.csv has 4 decimals
        assert table.loc[row, "gain_over_task"] == pytest.approx(table.loc[row, "avg"] - table.loc["mnli", "avg"])
    body = (run / f"{PAPER}/generated/variants.tex").read_text()
    assert "\\input{tables/variant_mlm.tex}" in body and "\\input{tables/variant_translated.tex}" in body


#: The XNLI training of the learning check: 5 epochs instead of the smoke grid's 1 (tests/configs/smoke.yaml).
XNLI_EPOCHS = 5
BASELINE_XNLI = f"{RUN}/target/xlmr-smoke/baseline/xnli/seed0/metrics.json"


@pytest.fixture(scope="module")
def xnli_trained_longer(smoke_runs, tmp_path_factory):
    """The first run copied (times kept), and its baseline encoder's XNLI training run again there
    with XNLI_EPOCHS epochs: a config file over the smoke grid's, and that one output asked for.
    Returns the copy and Snakemake's job counts."""
    copy = tmp_path_factory.mktemp("xnli") / "copy"
    shutil.copytree(smoke_runs[0], copy, symlinks=True)
    longer = copy.parent / "xnli_epochs.yaml"
    longer.write_text(f"targets:\n  task_hparams:\n    xnli: {{epochs: {XNLI_EPOCHS}}}\n")
    proc = snakemake("--configfile", SMOKE[1], str(longer), "--cores", "2", "--directory", str(copy), BASELINE_XNLI)
    return copy, job_counts(proc.stdout + proc.stderr)


@pytest.mark.workflow
def test_xnli_english_dev_is_clearly_above_chance(xnli_trained_longer):
    copy, counts = xnli_trained_longer
    assert counts == {"finetune_target": 1, "total": 1}  # that training alone, on the grid's own encoder
    metrics = json.loads((copy / BASELINE_XNLI).read_text())
    assert metrics["job"]["hparams"]["epochs"] == XNLI_EPOCHS
    assert len(metrics["result"]["history"]) == XNLI_EPOCHS  # one dev evaluation per epoch
    accuracy = metrics["result"]["dev"]["xnli"]["sets"]["mnli/en/dev"]["accuracy"]
    assert accuracy > 45.0, f"English XNLI dev accuracy {accuracy:.1f} is not clearly above chance (33.3)"


def content(folder: Path) -> list[Path]:
    """The files of an output folder, without the manifests and job locks of its jobs (they name the run)."""
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


@pytest.mark.workflow
def test_two_runs_give_byte_identical_tables(smoke_runs):
    first = content(smoke_runs[0] / TABLES)
    second = content(smoke_runs[1] / RUN2 / "tables/xlmr-smoke")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second):
        if a.name != "provenance.json":  # it names the (different) run directories
            assert a.read_bytes() == b.read_bytes(), a.name


@pytest.mark.workflow
def test_evaluate_command_on_the_dags_predictions(smoke_runs, tmp_path):
    run = smoke_runs[0]
    out = tmp_path / "out.json"
    predictions = run / f"{RUN}/target/xlmr-smoke/mnli/squad/seed0/predictions"
    proc = subprocess.run(["xstilts", "evaluate", "--prediction_folder", str(predictions),
                           "--label_folder", str(run / RUN / "labels"), "--output_file", str(out),
                           "--only_available_languages"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    evaluated = json.loads(out.read_text())
    scores = json.loads((run / f"{RUN}/scores/xlmr-smoke/mnli/seed0.json").read_text())["scores"]
    assert evaluated["xquad"]["avg_metric"] == pytest.approx(scores["xquad"]["avg_metric"])
    assert evaluated["xquad"]["f1"] == scores["xquad"]["f1"]


@pytest.mark.workflow
def test_every_number_traces_to_its_files(smoke_runs):
    run = smoke_runs[0]
    provenance = json.loads((run / f"{TABLES}/provenance.json").read_text())
    assert len(provenance["score_files"]) == 4
    score = json.loads((run / f"{RUN}/scores/xlmr-smoke/baseline/seed0.json").read_text())
    assert any(re.search(r"xnli/test-de\.tsv$", p) for p in score["inputs"])
    assert any(re.search(r"labels/xnli/test-de\.tsv$", p) for p in score["inputs"])


@pytest.mark.workflow
def test_rerun_has_nothing_to_do(smoke_runs):
    proc = snakemake(*SMOKE, "-n", "--directory", str(smoke_runs[0]))
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.workflow
def test_changing_one_value_reruns_only_the_jobs_it_affects(smoke_runs):
    # Snakemake's params trigger: XNLI's learning rate is a param of XNLI's fine-tuning jobs only.
    proc = snakemake(*SMOKE, "-n", "--directory", str(smoke_runs[0]),
                     "--config", 'targets={"task_hparams": {"xnli": {"learning_rate": "1e-3"}}}')
    # baseline, mnli, squad_v1, multitask, mnli+mlm, mnli-translated in tests/configs/smoke.yaml; one seed
    encoders = 6
    assert job_counts(proc.stdout) == {"finetune_target": encoders, "predict_target": encoders, "score_run": encoders,
                                       "make_tables": 1, "make_figure": 1, "make_variant_tables": 1, **PAPER_JOBS,
                                       "all": 1, "total": 3 * encoders + 4 + len(PAPER_JOBS)}
    assert all("/xnli/seed0" in line for line in proc.stdout.splitlines()
               if "output:" in line and f"{RUN}/target/" in line)


def rerun_jobs(output: str) -> dict[str, list[str]]:
    """Rule -> the outputs of its jobs in a dry run's job list."""
    jobs: dict[str, list[str]] = {}
    rule = None
    for line in output.splitlines():
        if line.startswith(("rule ", "localrule ")):
            rule = line.split()[1].rstrip(":")
            jobs.setdefault(rule, [])
        elif rule and line.strip().startswith("output:"):
            jobs[rule].append(line.split("output:", 1)[1].strip())
    return jobs


@pytest.mark.workflow
@pytest.mark.parametrize("override,training", [
    # A test-time decoding setting of span QA: SQuAD's predictions only.
    ('targets={"prediction": {"n_best_size": "5"}}', "squad"),
    # One language fewer for XNLI (the corpus keeps it for the other targets): XNLI's predictions.
    ('targets={"languages": {"xnli": ["en", "de", "ru"]}}', "xnli"),
])
def test_prediction_settings_rerun_prediction_never_training(smoke_runs, override, training):
    proc = snakemake(*SMOKE, "-n", "--directory", str(smoke_runs[0]), "--config", override)
    counts = job_counts(proc.stdout)
    encoders = 6
    assert counts["predict_target"] == encoders and counts["score_run"] == encoders
    assert not {"finetune_target", "finetune_intermediate", "pretrain_mlm"} & set(counts), counts
    assert all(f"/{training}/seed0/" in out for out in rerun_jobs(proc.stdout)["predict_target"])


PRESENTATION = {"make_tables", "make_variant_tables", "make_figure", "make_paper_inputs", "make_compute_table",
                "make_language_figure", "compile_paper", "all"}


@pytest.mark.workflow
def test_changing_a_caption_or_the_plot_style_reruns_only_presentation(smoke_runs, tmp_path):
    from test_paper import workflow_copy

    copy = workflow_copy(tmp_path)
    captions = copy / "paper/captions.yaml"
    captions.write_text(captions.read_text().replace("Change over the baseline", "Gain over the baseline"))
    style = copy / "paper/figures.mplstyle"
    style.write_text(style.read_text() + "axes.grid: True\n")
    proc = snakemake_server.run(["-s", str(copy / "Snakefile"), *SMOKE, "-n", "--directory", str(smoke_runs[0])],
                                cwd=os.getcwd(), env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout)
    assert set(counts) - {"total"} <= PRESENTATION, counts
    assert {"make_tables", "make_figure", "make_language_figure"} <= set(counts)
    assert "finetune_target" not in counts and "score_run" not in counts


def insert_statement(module: Path, function: str, statement: str) -> None:
    """Add ``statement`` as the first statement (after the docstring) of a top-level function."""
    import ast

    source = module.read_text()
    node = next(n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == function)
    first = node.body[1] if ast.get_docstring(node) is not None else node.body[0]
    lines = source.splitlines(keepends=True)
    indent = lines[first.lineno - 1][: first.col_offset]
    lines.insert(first.lineno - 1, f"{indent}{statement}\n")
    module.write_text("".join(lines))


def dry_run_with(copy: Path, workdir: Path) -> subprocess.CompletedProcess:
    proc = snakemake_server.run(["-s", str(copy / "Snakefile"), *SMOKE, "-n", "--directory", str(workdir)],
                                cwd=os.getcwd(), env=dict(os.environ))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


@pytest.mark.workflow
def test_editing_the_training_code_reruns_training_and_what_depends_on_it(smoke_runs, tmp_path):
    from test_paper import workflow_copy

    copy = workflow_copy(tmp_path)
    insert_statement(copy / "scripts/xstilts/training.py", "train", "_edited = True")
    counts = job_counts(dry_run_with(copy, smoke_runs[0]).stdout)
    assert {"pretrain_mlm", "finetune_intermediate", "finetune_target", "score_run", "make_tables"} <= set(counts)
    # Data generation, labels and the tokenizer run no training code: they stay as they are.
    assert not {"make_demo_dataset", "write_labels", "train_tokenizer"} & set(counts), counts


@pytest.mark.workflow
def test_editing_the_table_code_reruns_only_presentation(smoke_runs, tmp_path):
    from test_paper import workflow_copy

    copy = workflow_copy(tmp_path)
    insert_statement(copy / "scripts/xstilts/tables.py", "matrix", "_edited = True")
    counts = job_counts(dry_run_with(copy, smoke_runs[0]).stdout)
    assert "make_tables" in counts and set(counts) - {"total"} <= PRESENTATION, counts


@pytest.mark.workflow
def test_comments_and_docstrings_rerun_nothing(smoke_runs, tmp_path):
    from test_paper import workflow_copy

    copy = workflow_copy(tmp_path)
    for module in ("training.py", "tables.py", "pipeline.py"):
        path = copy / "scripts/xstilts" / module
        text = path.read_text().replace('"""', '"""Edited. ', 1)  # the module docstring
        # A comment after every def, class and block header.
        text = re.sub(r"(?m)^(\s*(?:def|class|if|for|while|else|elif|try|except|with|finally)\b.*:)$",
                      r"\1  # edited", text)
        path.write_text(text)
    proc = dry_run_with(copy, smoke_runs[0])
    assert "Nothing to be done" in proc.stdout + proc.stderr, proc.stdout[-3000:]


def page_ink(png: Path) -> float:
    """Share of non-white pixels of a rendered page (PNG, read by matplotlib)."""
    import matplotlib.image

    image = matplotlib.image.imread(png)  # floats in [0, 1]
    gray = image[..., :3].mean(axis=-1) if image.ndim == 3 else image
    return float((gray < 0.8).mean())


@pytest.mark.workflow
@pytest.mark.skipif(not TEX and not REQUIRE_TEX, reason="no TeX toolchain (scripts/install_tex.sh)")
def test_the_paper_compiles_and_no_page_is_blank(smoke_runs, tmp_path):
    pdf = smoke_runs[0] / f"{PAPER}/xstilts.pdf"
    assert pdf.read_bytes().startswith(b"%PDF")
    log = (smoke_runs[0] / f"{PAPER}/build/main.log").read_text(errors="replace")
    assert "Undefined control sequence" not in log and "There were undefined references" not in log
    subprocess.run(["pdftoppm", "-png", "-r", "30", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 4
    for page in pages:
        assert page_ink(page) > 0.005, f"{page.name} of the paper is blank"
    # The numbers in the text are the generated ones (macros), e.g. the XNLI baseline.
    macros = (smoke_runs[0] / f"{PAPER}/generated/macros.tex").read_text()
    assert r"\newcommand{\XNLIBestTask}" in macros and r"\newcommand{\PAWSXBestTask}{n/a}" in macros


@pytest.mark.workflow
def test_paper_inputs_are_identical_across_runs(smoke_runs):
    # Everything but the compute table (wall-clock times) is a function of the inputs.
    first = content(smoke_runs[0] / PAPER / "generated")
    second = content(smoke_runs[1] / RUN2 / "paper/xlmr-smoke/generated")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second):
        if a.name != "compute.tex":
            assert a.read_bytes() == b.read_bytes(), a.name
    compute = pd.read_csv(smoke_runs[0] / f"{PAPER}/compute.csv").set_index("rule")
    assert compute.loc["finetune_target", "jobs"] == 6 * 3  # 6 encoders x (xnli, udpos, squad) x 1 seed
    assert compute.loc["finetune_target", "gpu_hours"] > 0 and compute.loc["mine_bucc", "gpu_hours"] == 0


@pytest.mark.workflow
def test_html_report_is_self_contained_with_captions(smoke_runs):
    report = smoke_runs[0] / "report.html"
    snakemake(*SMOKE, "--report", str(report), "--directory", str(smoke_runs[0]))
    html = report.read_text()
    assert "The main result: intermediate task (rows)" in html  # paper/report/matrix.rst
    assert "Per-language change over the baseline" in html      # paper/report/language_gains.rst
    assert html.count("data:image/png;base64") + html.count("iVBORw0KGgo") >= 2  # figures embedded, not linked


@pytest.mark.workflow
def test_keep_models_false_makes_the_fine_tuned_models_temporary(smoke_runs):
    def deletable(*config: str) -> list[str]:
        proc = snakemake(*SMOKE, "--delete-temp-output", "-n", "--directory", str(smoke_runs[0]),
                         *config)
        return sorted(line.split()[-1] for line in (proc.stdout + proc.stderr).splitlines()
                      if line.startswith("Would delete"))

    assert deletable() == []  # the default keeps them
    models = deletable("--config", 'targets={"keep_models": false}')
    assert len(models) == 6 * 3 and all(m.startswith(f"{RUN}/target/") and m.endswith("/model") for m in models)
