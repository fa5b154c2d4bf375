"""The SLURM profile (profiles/slurm) against a real SLURM cluster, and a lint of the profile.

CI (.ci/run) starts a one-node cluster on localhost with tests/slurm/local_cluster.sh (Debian's
Slurm, two fake GPUs, the memory of a modest node: 16,000 MB) and sets XSTILTS_SLURM=1, which
turns a missing cluster into an error. sbatch rejects a job that asks for more memory than the
node has, so the grid's jobs, their retries included, must ask for what they need and no more.
Elsewhere the cluster tests are skipped, with the reason, when no cluster answers; the lint
needs no cluster.

The cluster scenario runs a slice of the reduced grid (tests/configs/smoke.yaml, ``SLURM_GRID``:
two encoders, a trained and a retrieval target: every kind of job, local and submitted; less
data and training) through
`snakemake --profile profiles/slurm` twice in one directory:

1. with a config that makes the intermediate training (MNLI) fail inside its SLURM job (a
   learning rate of 1e30 makes its loss non-finite: a fault of training alone, so the tokenised
   features of the two configs are the same): Snakemake must name the job's logs, retry it with
   more memory and time, and finish everything that does not depend on it (the baseline
   encoder's XNLI training and prediction, its embeddings and Tatoeba search);
2. with that config fixed: only the failed job and what depends on it (the MNLI encoder's
   training, prediction, embeddings and search) may run.

Then SLURM's own records must show every non-local job of the grid, with the memory, time limit
and GPU its rule declares, and the tables must be byte-identical to those of a local run.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
import yaml

import snakemake_server
from conftest import ROOT
from test_workflow import PAPER_JOBS

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
PROFILE = ROOT / "profiles" / "slurm"
SMOKE = ROOT / "tests" / "configs" / "smoke.yaml"
# What the Snakefile declares `localrules` (plus `all`, which runs nothing): these jobs run on
# the submit host, every other job goes through sbatch.
LOCAL_RULES = {"make_demo_dataset", "write_labels", "score_run", "make_tables", "make_variant_tables", "make_figure",
               "make_paper_inputs", "make_compute_table", "make_language_figure", "compile_paper", "all"}
REQUIRED = os.environ.get("XSTILTS_SLURM") == "1"
# The profile's first status check comes 40 s after a submission, right for jobs of hours; the
# smoke grid's jobs take seconds. A CLI flag overrides that one profile entry. (The plugin then
# sets its own interval, 10 s longer after each check that finds no job finished; Snakemake's
# --seconds-between-status-checks does not change that.)
FAST_POLL = ["--slurm-init-seconds-before-status-checks", "2"]
# A SLURM run that hangs (e.g. a status command that never answers) fails instead.
TIMEOUT_S = 1800
FAILING = "mnli"  # the intermediate training the broken config makes fail
BROKEN_CONFIG = {"intermediate": {"hparams": {"learning_rate": 1.0e30}}}
# A slice of the smoke grid: what the SLURM scenario checks (submission, logs, retries, SLURM's
# records, a rerun, tables equal to a local run) needs every kind of job, not every task;
# tests/test_workflow.py runs the whole smoke grid, variant rows included. Two encoders
# (baseline, MNLI), XNLI (trained, predicted) and Tatoeba (embedded, searched). Nothing here
# checks what a model learns, so the slice trains less than the smoke grid (a third of MNLI and
# of the corpus, one epoch each): its jobs run twice, on SLURM and in the local run.
SLURM_GRID = {"data": {"synthetic": {"sizes": {"mnli": {"train": 500}, "mlm_corpus": {"train": 500}}}},
              "models": [{"name": "xlmr-smoke", "extends": "xlmr-demo",
                          "pretrain": {"vocab_size": 1000, "hparams": {"epochs": 1}}}],
              "intermediate": {"tasks": ["mnli"], "multitask": {"enabled": False},
                               "variants": {"mlm": {"tasks": []}, "translated": {"tasks": []}}},
              "targets": {"tasks": ["xnli", "tatoeba"], "task_hparams": {"xnli": {"epochs": 1}}}}


def command(*args: str) -> dict:
    return {"args": [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), *args], "cwd": ROOT, "text": True,
            "env": {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}}


def snakemake(*args: str, timeout: int = TIMEOUT_S) -> subprocess.CompletedProcess:
    run = command(*args)
    return snakemake_server.run(run["args"][len(SNAKEMAKE):], cwd=run["cwd"], env=run["env"], timeout=timeout)


def check(proc: subprocess.CompletedProcess) -> str:
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"snakemake failed:\n{output[-6000:]}"
    return output


# ---------------------------------------------------------------------------------------------
# Profile lint (no cluster needed)


def test_every_profile_key_is_an_option_of_the_installed_snakemake_and_plugin():
    from snakemake.cli import get_argument_parser

    options = {o for action in get_argument_parser()._actions for o in action.option_strings}
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    unknown = sorted(k for k in profile if f"--{k}" not in options)
    assert not unknown, f"profiles/slurm/config.yaml: not an option of snakemake or its SLURM plugin: {unknown}"
    assert profile["executor"] == "slurm"
    # squeue answers with or without slurmdbd; the plugin's default (sacct) hangs without it.
    assert profile["slurm-status-command"] == "squeue"


def test_the_installed_plugin_is_the_pinned_one():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pin = next(d for d in deps if d.startswith("snakemake-executor-plugin-slurm=="))
    assert importlib.metadata.version("snakemake-executor-plugin-slurm") == pin.split("==")[1]


def test_profile_values_parse(tmp_path):
    # A dry run parses every entry with the plugin's own types and checks (unknown keys and
    # invalid values are errors) without submitting anything.
    output = check(snakemake("--profile", str(PROFILE), "-n", "--directory", str(tmp_path)))
    assert "Using profiles" in output and "profiles/slurm" in output


def test_placeholders_are_empty_so_the_default_partition_is_used():
    resources = yaml.safe_load((PROFILE / "config.yaml").read_text())["default-resources"]
    assert resources == {"slurm_partition": "", "slurm_account": ""}


# ---------------------------------------------------------------------------------------------
# The grid through a real SLURM


def cluster_problem() -> str | None:
    """Why no usable SLURM cluster answers here, or None."""
    for tool in ("sbatch", "squeue", "sinfo"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%a %t %G"], capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        return "`sinfo` did not answer within 30 s"
    if proc.returncode != 0:
        return f"`sinfo` failed: {proc.stderr.strip()}"
    rows = [line.split() for line in proc.stdout.splitlines() if line.strip()]
    usable = [r for r in rows if r[0] == "up" and r[1].rstrip("*") in ("idle", "mix", "alloc")]
    if not usable:
        return f"no partition is up with a usable node (sinfo: {proc.stdout.strip()!r})"
    if not any("gpu" in r[2] for r in usable):
        return "no node offers a GPU (gres gpu), so the GPU rules would wait forever"
    return None


@pytest.fixture(scope="module")
def cluster():
    problem = cluster_problem()
    if problem:
        message = (f"no SLURM cluster reachable: {problem}. "
                   "Start the local test cluster (root) with `tests/slurm/local_cluster.sh start`.")
        if REQUIRED:
            pytest.fail(f"{message} XSTILTS_SLURM=1 requires one.")
        pytest.skip(message)


#: What a modest cluster node offers: the local cluster's node has no more (local_cluster.sh).
MODEST_NODE_MB = 16000


def node_memory_mb() -> int:
    """The memory of the cluster's smallest node (sinfo's RealMemory), MB."""
    proc = subprocess.run(["sinfo", "--noheader", "--Node", "--format=%m"], capture_output=True, text=True,
                          check=True, timeout=30)
    return min(int(v) for v in proc.stdout.split())


def test_the_node_is_modest_and_sbatch_refuses_a_job_larger_than_it(cluster):
    memory = node_memory_mb()
    assert memory <= MODEST_NODE_MB
    proc = subprocess.run(["sbatch", f"--mem={memory + 1000}", "--time=1", "--wrap", "true"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "Memory specification can not be satisfied" in proc.stderr, proc
    # What the node has is accepted (held, then cancelled: it never runs).
    proc = subprocess.run(["sbatch", "--parsable", "--hold", f"--mem={memory}", "--time=1", "--wrap", "true"],
                          capture_output=True, text=True, timeout=60, check=True)
    subprocess.run(["scancel", proc.stdout.strip().split(";")[0]], check=True, timeout=60)


BLOCK = re.compile(r"^(localrule|rule) (\w+):\n((?:    .*\n?)*)", re.M)
SUBMITTED = re.compile(r"^Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.$", re.M)


def wildcard_str(fields: dict[str, str]) -> str:
    """The job's wildcard values joined by `_`: how the plugin names its log folders."""
    wildcards = fields.get("wildcards", "")
    return "_".join(pair.split("=", 1)[1] for pair in wildcards.split(", ")) if wildcards else ""


def jobs_in(output: str) -> list[tuple[str, str, str, dict[str, str]]]:
    """(`rule` or `localrule`, rule, wildcard string, fields) of every job block Snakemake printed."""
    jobs = []
    for m in BLOCK.finditer(output):
        fields = dict(re.findall(r"^    (\w+): (.*)$", m.group(3), re.M))
        jobs.append((m.group(1), m.group(2), wildcard_str(fields), fields))
    return jobs


def resources_of(fields: dict[str, str]) -> dict[str, str]:
    return dict(pair.split("=", 1) for pair in fields["resources"].split(", "))


def submissions(output: str, logdir: Path) -> list[dict]:
    """Every sbatch submission, with the resources Snakemake gave that attempt of the job."""
    latest = {}  # Snakemake job id -> the block printed last for it (a retry prints it again)
    events = [(m.start(), "block", m) for m in BLOCK.finditer(output)]
    events += [(m.start(), "submit", m) for m in SUBMITTED.finditer(output)]
    out = []
    for _, kind, m in sorted(events, key=lambda e: e[0]):
        if kind == "block":
            fields = dict(re.findall(r"^    (\w+): (.*)$", m.group(3), re.M))
            latest[fields["jobid"]] = (m.group(2), fields)
            continue
        rule, fields = latest[m.group(1)]
        rel = Path(m.group(3)).relative_to(logdir)
        assert rel.parts[0] == f"rule_{rule}", (rel, rule)
        assert (rel.parts[1] if len(rel.parts) == 3 else "") == wildcard_str(fields), rel
        values = dict(pair.split("=", 1) for pair in fields["wildcards"].split(", ")) if "wildcards" in fields else {}
        out.append({"rule": rule, "wildcards": wildcard_str(fields), "values": values, "slurm_id": m.group(2),
                    "log": Path(m.group(3)), "resources": resources_of(fields)})
    return out


def minutes(limit: str) -> int:
    """SLURM's time limit `[D-]HH:MM:SS` or `MM:SS` in minutes."""
    days, _, clock = limit.rpartition("-")
    parts = [int(p) for p in clock.split(":")]
    h, m = (parts[0], parts[1]) if len(parts) == 3 else (0, parts[0])
    return (int(days) if days else 0) * 1440 + h * 60 + m


def slurm_records(ids: list[str]) -> dict[str, dict[str, str]]:
    """SLURM's own record of each job: state, memory, time limit, GPUs (squeue keeps finished
    jobs for MinJobAge seconds; the local cluster keeps them an hour)."""
    if not ids:
        return {}
    fields = ["JobID", "State", "MinMemory", "TimeLimit", "tres-per-job"]
    proc = subprocess.run(["squeue", "--states=all", "--noheader", "--jobs", ",".join(ids),
                           "--Format", ",".join(f"{f}:|" for f in fields)],
                          capture_output=True, text=True, check=True)
    records = {}
    for line in proc.stdout.splitlines():
        values = [v.strip() for v in line.split("|")][: len(fields)]
        records[values[0]] = dict(zip(fields, values))
    return records


@pytest.fixture(scope="module")
def slurm_runs(cluster, tmp_path_factory):
    """One directory run through SLURM with the broken config, then with the fixed one, and a
    local run of the same grid; what each printed, how long it took, SLURM's records."""
    base = tmp_path_factory.mktemp("slurm")
    broken = base / "broken.yaml"
    broken.write_text(yaml.safe_dump(BROKEN_CONFIG))
    plain = base / "slurm_grid.yaml"
    plain.write_text(yaml.safe_dump(SLURM_GRID))
    workdir, localdir = base / "slurm_run", base / "local_run"
    expected = jobs_in(check(snakemake("--configfile", str(SMOKE), str(plain), "-n", "--directory", str(base / "dry"))))
    # The local run runs beside the SLURM jobs (two fake GPUs: two GPU jobs at a time).
    with open(base / "local_run.log", "w") as local_log:
        local = subprocess.Popen(**command("--configfile", str(SMOKE), str(plain), "--cores", "1", "--directory",
                                           str(localdir)),
                                 stdout=local_log, stderr=subprocess.STDOUT)
        try:
            runs = {}
            for name, configs in (("failing", [SMOKE, plain, broken]), ("rerun", [SMOKE, plain])):
                started = time.monotonic()
                proc = snakemake("--profile", str(PROFILE), *FAST_POLL, "--configfile", *map(str, configs),
                                 "--directory", str(workdir))
                output = proc.stdout + proc.stderr
                (base / f"{name}.log").write_text(output)
                subs = submissions(output, workdir / "logs" / "slurm")
                runs[name] = {"proc": proc, "output": output, "seconds": time.monotonic() - started,
                              "submissions": subs, "slurm": slurm_records([s["slurm_id"] for s in subs])}
                if name == "failing":
                    # Job locks excluded: every attempt of a job takes its lock, the rerun of a
                    # failed one too (the lock file of a finished job is left untouched).
                    runs[name]["files"] = {p: p.stat().st_mtime_ns for p in (workdir / "results").rglob("*")
                                           if p.is_file() and not p.name.endswith(".lock")}
            local.wait(timeout=TIMEOUT_S)
        finally:
            if local.poll() is None:
                local.kill()
    assert local.returncode == 0, (base / "local_run.log").read_text()[-6000:]
    print(f"\nSLURM: failing run {runs['failing']['seconds']:.0f} s ({len(runs['failing']['submissions'])} sbatch), "
          f"rerun {runs['rerun']['seconds']:.0f} s ({len(runs['rerun']['submissions'])} sbatch)")
    return {"expected": expected, "workdir": workdir, "localdir": localdir, **runs}


def own_output(run: dict) -> str:
    """What the submitting Snakemake printed itself: without the SLURM logs of failed jobs, which
    it echoes verbatim (each holds the job's own Snakemake run, its job block included)."""
    output = run["output"]
    for sub in run["submissions"]:
        if sub["log"].is_file():
            output = output.replace(sub["log"].read_text(), "")
    return output


def is_failing(sub: dict) -> bool:
    return sub["rule"] == "finetune_intermediate" and sub["values"]["itask"] == FAILING


#: What the MNLI encoder's jobs are, besides its intermediate training: they wait for it.
DEPENDENT = {("finetune_target", "xlmr-smoke_mnli_xnli_0"), ("predict_target", "xlmr-smoke_mnli_xnli_0"),
             ("embed_sentences", "xlmr-smoke_mnli"), ("search_tatoeba", "xlmr-smoke_mnli")}


@pytest.mark.workflow
def test_a_failing_job_is_reported_with_its_logs(slurm_runs):
    run = slurm_runs["failing"]
    assert run["proc"].returncode != 0
    failed = [s for s in run["submissions"] if is_failing(s)]
    assert failed
    # Nothing that needs the failed job ran; everything else did.
    assert not {(s["rule"], s["wildcards"]) for s in run["submissions"]} & DEPENDENT
    for sub in failed:
        rule_log = "logs/smoke/finetune_intermediate/{model}/{itask}.log".format(**sub["values"])
        assert rule_log in run["output"], f"the error report does not name {rule_log}"
        assert str(sub["log"]) in run["output"], f"the error report does not name the SLURM log {sub['log']}"
        # The traceback of the script's exception went to the job's stderr: the SLURM log.
        assert "the training loss is nan" in sub["log"].read_text() or "the training loss is inf" in sub["log"].read_text()
    assert "Error in rule finetune_intermediate" in run["output"]


@pytest.mark.workflow
def test_a_failed_job_is_retried_with_more_memory_and_time(slurm_runs):
    run = slurm_runs["failing"]
    retries = yaml.safe_load((PROFILE / "config.yaml").read_text())["retries"]
    by_job = {}
    for sub in run["submissions"]:
        if is_failing(sub):
            by_job.setdefault(sub["wildcards"], []).append(sub)
    assert len(by_job) == 1  # MNLI's intermediate training
    for attempts in by_job.values():
        assert len(attempts) == 1 + retries
        first = attempts[0]["resources"]
        # The last retry, at (1 + retries) x the first request, still fits the modest node.
        assert int(first["mem_mb"]) * len(attempts) <= node_memory_mb()
        for n, sub in enumerate(attempts, start=1):
            record = run["slurm"][sub["slurm_id"]]
            assert record["State"] == "FAILED"
            assert record["MinMemory"] == f"{int(first['mem_mb']) * n}M"
            assert minutes(record["TimeLimit"]) == int(first["runtime"]) * n


@pytest.mark.workflow
def test_every_non_local_job_went_through_sbatch(slurm_runs):
    expected = {(rule, wc) for _, rule, wc, _ in slurm_runs["expected"]}
    non_local = {job for job in expected if job[0] not in LOCAL_RULES}
    subs = slurm_runs["failing"]["submissions"] + slurm_runs["rerun"]["submissions"]
    assert {(s["rule"], s["wildcards"]) for s in subs} == non_local
    # tokenizer, MLM, 2 feature sets (mnli, xnli), 1 intermediate, 2 target trainings + 2 predictions,
    # 2 x (embed, Tatoeba)
    assert len(non_local) == 13
    for name in ("failing", "rerun"):
        printed = jobs_in(own_output(slurm_runs[name]))
        assert {rule for kind, rule, _, _ in printed if kind == "localrule"} <= LOCAL_RULES
        assert {(rule, wc) for kind, rule, wc, _ in printed if kind == "rule"} <= non_local
    for name in ("failing", "rerun"):
        for sub in slurm_runs[name]["submissions"]:
            record = slurm_runs[name]["slurm"].get(sub["slurm_id"])
            assert record, f"SLURM has no record of job {sub['slurm_id']} ({sub['rule']} {sub['wildcards']})"
            assert record["State"] == ("FAILED" if name == "failing" and is_failing(sub) else "COMPLETED")
            assert record["MinMemory"] == f"{sub['resources']['mem_mb']}M"
            assert minutes(record["TimeLimit"]) == int(sub["resources"]["runtime"])
            assert ("gpu:1" in record["tres-per-job"]) == (sub["resources"].get("gpu") == "1"), record
            assert sub["log"].is_file()


@pytest.mark.workflow
def test_a_rerun_redoes_only_what_failed(slurm_runs):
    rerun = slurm_runs["rerun"]
    check(rerun["proc"])
    # The failed training, once, and what depends on it, once each.
    subs = [(s["rule"], s["wildcards"]) for s in rerun["submissions"]]
    assert sorted(subs) == sorted({("finetune_intermediate", f"xlmr-smoke_{FAILING}"), *DEPENDENT})
    local = {rule for kind, rule, _, _ in jobs_in(rerun["output"]) if kind == "localrule"}
    # No data job again; the presentation rules redo what depends on the MNLI encoder's scores.
    # Not the variant tables: the grid has no variant row, so they read the baseline's scores
    # alone, which the failing run made.
    assert local == {"score_run", "make_tables", "make_figure", *PAPER_JOBS, "all"}
    # Every file the failing run wrote is untouched.
    for path, mtime in slurm_runs["failing"]["files"].items():
        assert path.stat().st_mtime_ns == mtime, path


@pytest.mark.workflow
def test_tables_are_identical_to_a_local_run(slurm_runs):
    tables = sorted((slurm_runs["workdir"] / "results/smoke/tables/xlmr-smoke").iterdir())
    local = sorted((slurm_runs["localdir"] / "results/smoke/tables/xlmr-smoke").iterdir())
    assert [p.name for p in tables] == [p.name for p in local]
    for a, b in zip(tables, local):
        if a.name != "provenance.json":  # it names the (different) run directories
            assert a.read_bytes() == b.read_bytes(), a.name
