"""Fault drills on a reduced grid (tests/configs/drill.yaml): killed jobs, a killed workflow, two
workflows at once, damaged files and config mistakes, each checked against an uninterrupted
reference run of the same grid, byte for byte.

Every drill runs real Snakemake processes in a temporary directory; the reference run is shared
by the module, and each drill starts from a copy of it (times kept, so nothing there is out of
date) less the outputs the drill needs made again: the interrupted drills remove those of the
XNLI training job and of what depends on it (its prediction, the score, the tables), so they run
these jobs and nothing upstream. Killing happens right after that job's first checkpoint, so the
resumed job has work left to do.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT
from test_workflow import SNAKEMAKE, snakemake
from xstilts import jobcontrol, manifest

DRILL = ROOT / "tests" / "configs" / "drill.yaml"
RUN, MODEL = "results/drill", "xlmr-drill"
TARGET = f"{RUN}/tables/{MODEL}/provenance.json"  # tables, not the paper: enough for every drill
XNLI = f"{RUN}/target/{MODEL}/baseline/xnli/seed0"
CHECKPOINT = f"{RUN}/checkpoints/finetune_target/{MODEL}/baseline/xnli/seed0"
XNLI_LOG = f"logs/drill/finetune_target/{MODEL}/baseline/xnli/seed0.log"
# What the XNLI job and the jobs after it (its prediction, the baseline's score, the tables) left
# in the reference run: outputs, and the XNLI jobs' logs (with the hidden link that keeps a killed
# attempt's log) and benchmarks. The later outputs too: Snakemake does not make a missing file
# again while the files made from it are present and up to date.
XNLI_ONWARDS = (XNLI, f"{RUN}/scores/{MODEL}/baseline", f"{RUN}/tables",
                f"logs/drill/*/{MODEL}/baseline/xnli/*seed0.log*",
                f"benchmarks/drill/*/{MODEL}/baseline/xnli/seed0.tsv")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}

pytestmark = pytest.mark.workflow


def run(workdir: Path, *args: str, check: bool = True, cores: int = 1) -> subprocess.CompletedProcess:
    # TARGET before `args`: after `--forcerun FILE` it would be read as one more file to force
    # (the option takes a list), and the run would build the default target, the paper included.
    return snakemake("--configfile", str(DRILL), "--cores", str(cores), "--directory", str(workdir), TARGET, *args,
                     check=check)


def start(workdir: Path, name: str) -> subprocess.Popen:
    """A snakemake run in the background (its own session, so a drill can kill just it)."""
    workdir.mkdir(parents=True, exist_ok=True)
    out = open(workdir.parent / f"{workdir.name}-{name}.out", "w")
    cmd = [*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "--configfile", str(DRILL), "--cores", "1",
           "--directory", str(workdir), TARGET]
    return subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def output_of(proc: subprocess.Popen, workdir: Path, name: str) -> str:
    return (workdir.parent / f"{workdir.name}-{name}.out").read_text()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def training_pid_after_first_checkpoint(workdir: Path, proc: subprocess.Popen, timeout: float = 600) -> int:
    """The pid of the XNLI training job once its first checkpoint is on disk (from its job lock)."""
    lock = manifest.lock_path(workdir / XNLI / "model")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (workdir / CHECKPOINT / "state.pt").exists():
            holder = jobcontrol.read_holder(lock)
            if holder and alive(holder["pid"]):
                return holder["pid"]
        if proc.poll() is not None:
            raise AssertionError(f"snakemake ended (status {proc.returncode}) before the XNLI job's first checkpoint")
        time.sleep(0.05)
    raise AssertionError("the XNLI job wrote no checkpoint in time")


def files(folder: Path) -> dict[str, bytes]:
    """Every file under a folder (job locks excluded: they name the process holding them)."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.endswith(manifest.LOCK_SUFFIX)}


def assert_same_results(workdir: Path, reference: Path) -> None:
    ours, theirs = files(workdir / XNLI), files(reference / XNLI)
    assert ours.keys() == theirs.keys()
    assert [k for k in ours if ours[k] != theirs[k]] == []
    assert files(workdir / RUN / "tables") == files(reference / RUN / "tables")


def verify(workdir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "xstilts.cli", "verify", RUN], cwd=workdir, env=ENV,
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    workdir = tmp_path_factory.mktemp("reference")
    run(workdir, cores=2)  # the drills' runs use one core: the same bytes either way
    return workdir


def reference_copy(reference: Path, tmp_path: Path, removed: tuple[str, ...] = ()) -> Path:
    """The reference run's working directory copied (modification times kept) less the files and
    folders matching the glob patterns `removed`: a run there makes those again and what depends
    on them, nothing else."""
    workdir = tmp_path / "w"
    shutil.copytree(reference, workdir, symlinks=True)
    for pattern in removed:
        matches = sorted(workdir.glob(pattern))
        assert matches, pattern
        for path in matches:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    return workdir


def test_the_reference_run_verifies(reference):
    result = verify(reference)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " 0 damaged" in result.stderr


# --------------------------------------------------------------------------------------------
# A killed run loses nothing


def test_a_killed_training_job_resumes_to_the_same_bytes_and_its_log_is_kept(reference, tmp_path):
    workdir = reference_copy(reference, tmp_path, XNLI_ONWARDS)
    proc = start(workdir, "killed-job")
    pid = training_pid_after_first_checkpoint(workdir, proc)
    os.kill(pid, signal.SIGKILL)
    assert proc.wait(timeout=600) != 0
    assert (workdir / CHECKPOINT / "state.pt").exists()  # the killed job's checkpoint survives its failure
    killed_log = (workdir / XNLI_LOG).read_text()

    run(workdir)
    log = workdir / XNLI_LOG
    assert "resuming from" in log.read_text()
    assert (workdir / f"{XNLI_LOG}.1").read_text() == killed_log  # the killed attempt's log, kept
    assert not (workdir / CHECKPOINT).exists()
    assert_same_results(workdir, reference)


def test_a_killed_workflow_leaves_no_job_running_and_the_rerun_finishes_the_same(reference, tmp_path):
    workdir = reference_copy(reference, tmp_path, XNLI_ONWARDS)
    proc = start(workdir, "killed-workflow")
    pid = training_pid_after_first_checkpoint(workdir, proc)
    os.kill(proc.pid, signal.SIGKILL)  # like a lost SSH session: the jobs get no signal
    proc.wait(timeout=30)
    deadline = time.monotonic() + 20
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(pid), "the training job outlived the workflow that started it"
    assert (workdir / CHECKPOINT / "state.pt").exists()
    assert "is gone; stopping" in (workdir / XNLI_LOG).read_text()

    # Snakemake's own lock is left behind by a killed snakemake (the README says to --unlock).
    locked = run(workdir, check=False)
    assert locked.returncode != 0 and "--unlock" in locked.stdout + locked.stderr
    run(workdir, "--unlock")
    run(workdir)
    assert "resuming from" in (workdir / XNLI_LOG).read_text()
    assert_same_results(workdir, reference)
    assert verify(workdir).returncode == 0


def test_two_workflows_started_at_once_do_not_damage_each_other(reference, tmp_path):
    workdir = reference_copy(reference, tmp_path, XNLI_ONWARDS)
    first, second = start(workdir, "a"), start(workdir, "b")
    codes = [first.wait(timeout=900), second.wait(timeout=900)]
    texts = [output_of(first, workdir, "a"), output_of(second, workdir, "b")]
    # At most one goes on; the other stops before any job, with Snakemake's message or ours.
    assert sorted(codes)[0] == 0 and codes.count(0) == 1, texts
    loser = texts[codes.index(max(codes))]
    assert "the workflow run 'drill'" in loser or "Directory cannot be locked" in loser, loser[-3000:]
    assert "Traceback" not in loser
    assert_same_results(workdir, reference)
    assert "Nothing to be done" in run(workdir, "-n").stdout
    assert verify(workdir).returncode == 0


# --------------------------------------------------------------------------------------------
# Damaged files are errors that name the file and the rule that rebuilds it


def overwrite(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)


def drop_last_lines(path: Path, n: int) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    path.write_text("".join(lines[:-n]), encoding="utf-8")


# Damage inside a folder output changes no time stamp Snakemake looks at (as on a failing disk), so
# each drill makes one reader of the damaged output run again (`--forcerun <reader rule>`); a
# damaged score file is a file output, and its new time stamp alone re-runs the tables.
# The damaged model is XNLI's fine-tuned one (every input is checked the same way, manifest.verify):
# its rebuild is one training job and what reads it (4 jobs), where a damaged pretrained encoder's
# is every model job of the grid (13).
DAMAGE = {
    # name: (damaged output, file inside it, how, producing rule, reader rule, expected words)
    "model": (f"{XNLI}/model", "model.safetensors",
              lambda p: overwrite(p, p.stat().st_size // 2, b"\xff" * 64), "finetune_target", "predict_target",
              "model.safetensors does not match its manifest"),
    "data": (f"{RUN}/data/xnli", "de/test.jsonl", lambda p: drop_last_lines(p, 10), "make_demo_dataset",
             "write_labels", "de/test.jsonl has"),
    "embedding": (f"{RUN}/embeddings/{MODEL}/baseline", "tatoeba/de/test.source.npy",
                  lambda p: overwrite(p, p.stat().st_size - 40, b"\x00" * 16), "embed_sentences", "search_tatoeba",
                  "tatoeba/de/test.source.npy does not match its manifest"),
    "score": (f"{RUN}/scores/{MODEL}/baseline/seed0.json", "",
              lambda p: p.write_text(p.read_text().replace('"avg_metric": ', '"avg_metric": 1', 1)), "score_run",
              None, "seed0.json has"),
}


@pytest.mark.parametrize("kind", DAMAGE)
def test_a_damaged_input_stops_its_reader_naming_the_file_and_the_fix(reference, tmp_path, kind):
    output, member, damage, rule, reader, words = DAMAGE[kind]
    workdir = reference_copy(reference, tmp_path)
    path = workdir / output / member if member else workdir / output
    damage(path)
    before = files(workdir / RUN / "encoders"), path.read_bytes()

    failed = run(workdir, *(["--forcerun", reader] if reader else []), check=False)
    text = failed.stdout + failed.stderr
    assert failed.returncode != 0, text[-3000:]
    assert words in text and f"rule {rule} rebuilds it" in text, text[-4000:]
    assert f"snakemake --forcerun {output}" in text
    assert "Traceback" not in text
    # Finished results untouched, the damaged file too (left for the rebuild, not deleted).
    assert (files(workdir / RUN / "encoders"), path.read_bytes()) == before
    damaged = verify(workdir)
    assert damaged.returncode == 1 and f"damaged: {output}: " in damaged.stdout

    # The printed fix works: rebuild the damaged output, and the run ends as the reference did.
    run(workdir, "--forcerun", output)
    assert_same_results(workdir, reference)
    assert verify(workdir).returncode == 0


def test_a_rule_log_gets_the_one_line_error(reference, tmp_path):
    workdir = reference_copy(reference, tmp_path)
    drop_last_lines(workdir / RUN / "data" / "xnli" / "de" / "test.jsonl", 10)
    run(workdir, "--forcerun", "write_labels", check=False)
    log = (workdir / "logs" / "drill" / "write_labels" / "xnli.log").read_text().strip().splitlines()
    assert len(log) == 1 and "ERROR" in log[0] and "xnli: de/test.jsonl has" in log[0]
    assert "(truncated); 20 examples, 30 written" in log[0]


# --------------------------------------------------------------------------------------------
# Config mistakes stop the workflow before any job, with one message


CONFIG_MISTAKES = {
    # name: (a config file over the drill's, words of the one message)
    "unknown language": ("languages: [en, de, xx]", "languages: 'xx' is not a language of any task"),
    "per-target language the target lacks": ("targets: {languages: {xnli: [en, ja]}}",
                                             "'ja' is not a language of xnli; its languages are ar, bg, de"),
    "hub revision not a commit": ("models: [{name: m, source: hub, hub: {id: org/model, revision: main}}]",
                                  "model.hub.revision 'main' is not a commit id"),
    "two models with one name": ("models: [{name: m, extends: xlmr-demo}, {name: m, extends: xlmr-demo}]",
                                 "the name 'm' is given to more than one model"),
    "languages not a list": ("languages: en", "expected 'all' or a list of language codes (e.g. [en, de])"),
    "no intermediate task": ("intermediate: {tasks: [], multitask: {enabled: false}}", "intermediate.tasks is empty"),
    "sequence longer than the model's positions": ("targets: {hparams: {max_seq_length: 4096}}",
                                                    "max_seq_length is 4096, more than the 256 positions"),
}


@pytest.mark.parametrize("mistake", CONFIG_MISTAKES)
def test_config_mistakes_stop_before_any_job(tmp_path, mistake):
    overlay, words = CONFIG_MISTAKES[mistake]
    (tmp_path / "mistake.yaml").write_text(overlay + "\n")
    result = snakemake("--configfile", str(DRILL), str(tmp_path / "mistake.yaml"), "-n", "--directory",
                       str(tmp_path / "w"), check=False)
    text = result.stdout + result.stderr
    assert result.returncode != 0 and words in text, text[-3000:]
    assert text.count("config: ") == 1  # one message, not one per input function
    assert "InputFunctionException" not in text and "Traceback" not in text
    assert not (tmp_path / "w" / "results").exists()


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    workflow = tmp_path / "workflow"
    shutil.copytree(ROOT, workflow, ignore=shutil.ignore_patterns(".git", ".venv", "results", "logs", "benchmarks",
                                                                  ".snakemake", "resources", "*.egg-info"))
    config = workflow / "config.yaml"
    lines = config.read_text().splitlines()
    line = next(i for i, text in enumerate(lines) if text.strip().startswith("languages:"))
    lines[line] = lines[line].replace("languages:", "languages: [en,")
    config.write_text("\n".join(lines) + "\n")
    result = subprocess.run([*SNAKEMAKE, "-s", str(workflow / "Snakefile"), "-n", "--directory", str(tmp_path / "w")],
                            cwd=workflow, env=ENV, capture_output=True, text=True)
    text = result.stdout + result.stderr
    assert result.returncode != 0
    # PyYAML notices the unclosed list on the next line and says where it was opened.
    assert re.search(rf"{re.escape(str(config))} line {line + 2}, column \d+: expected ',' or ']'", text), text[-2000:]
    assert f"(while parsing a flow sequence at line {line + 1}," in text

