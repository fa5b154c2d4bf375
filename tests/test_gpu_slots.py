"""GPU slots with fake GPU lists and real processes: distinct devices, waiting, release on kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_jobcontrol import wait_for
from xstilts import gpu_slots
from xstilts.gpu_slots import Gpu, GpuSlotError, GpuSlots, Slot, candidate_slots

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts"

pytestmark = pytest.mark.skipif(gpu_slots.fcntl is None, reason="needs flock (POSIX)")

FAKE = [Gpu(0, "GPU-aaaa-0000"), Gpu(1, "GPU-bbbb-1111"), Gpu(2, "GPU-cccc-2222")]

# A job that takes GPU slots among fake GPUs, logs which and when, holds them, and lets them go
# (it holds at most 30 s, so a failing test leaves nothing running for long).
HOLDER = """
import json, logging, os, sys, time
from pathlib import Path
from xstilts.gpu_slots import Gpu, GpuSlots
logging.basicConfig(level=logging.INFO)
name, count, gpus, lock_dir, out, hold = sys.argv[1:7]
gpus = [Gpu(i, u) for i, u in json.loads(gpus)]
with GpuSlots(int(count), what=name, gpus=gpus, lock_dir=lock_dir, poll=0.05):
    with open(out, "a") as f:
        f.write(f"{name} acquired {os.environ['CUDA_VISIBLE_DEVICES']} {time.time()}\\n")
    time.sleep(float(hold))
    with open(out, "a") as f:
        f.write(f"{name} released {os.environ['CUDA_VISIBLE_DEVICES']} {time.time()}\\n")
"""

# A rule job through pipeline.run_rule on two fake GPUs: its body writes the CUDA_VISIBLE_DEVICES
# it sees and the record in the GPU's lock file.
RULE_JOB = """
import json, os, sys
from pathlib import Path
from xstilts import gpu_slots, pipeline
from xstilts.gpu_slots import Gpu
gpu_slots.enumerate_gpus = lambda: [Gpu(0, "GPU-aaaa-0000"), Gpu(1, "GPU-bbbb-1111")]
out, log, gpus = sys.argv[1], sys.argv[2], int(sys.argv[3])

def body():
    lock = Path(os.environ[gpu_slots.LOCK_DIR_ENV]) / "GPU-aaaa-0000.lock"
    seen = {"visible": os.environ.get("CUDA_VISIBLE_DEVICES", "unset"),
            "holder": json.loads(lock.read_text()) if lock.exists() and lock.read_text() else None}
    Path(out).write_text(json.dumps(seen))

pipeline.run_rule("finetune_target", [log], [], [out], {"job": 1}, body, gpus=gpus)
print("after", os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
"""


def env(**extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    return {**environ, "PYTHONPATH": f"{SCRIPTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "XSTILTS_NO_PARENT_WATCH": "1", "XSTILTS_NO_WORKER": "1", **extra}


def holder(tmp_path: Path, name: str, count: int, hold: float, gpus: list[Gpu] = FAKE[:2]) -> subprocess.Popen:
    fake = json.dumps([[g.index, g.uuid] for g in gpus])
    return subprocess.Popen([sys.executable, "-c", HOLDER, name, str(count), fake, str(tmp_path / "locks"),
                             str(tmp_path / "events.log"), str(hold)], env=env())


def events(tmp_path: Path) -> list[tuple[str, str, str, float]]:
    path = tmp_path / "events.log"
    lines = path.read_text().splitlines() if path.exists() else []
    return [(name, what, device, float(t)) for name, what, device, t in (line.split() for line in lines)]


def acquired(tmp_path: Path) -> dict[str, tuple[str, float]]:
    return {name: (device, t) for name, what, device, t in events(tmp_path) if what == "acquired"}


def released(tmp_path: Path) -> dict[str, tuple[str, float]]:
    return {name: (device, t) for name, what, device, t in events(tmp_path) if what == "released"}


# --------------------------------------------------------------------------------------------
# Finding GPUs


def test_nvidia_smi_output_gives_index_and_uuid():
    text = "1, GPU-bbbb-1111\n0, GPU-aaaa-0000\n\n"
    assert gpu_slots.parse_nvidia_smi(text) == [Gpu(0, "GPU-aaaa-0000"), Gpu(1, "GPU-bbbb-1111")]


def test_gpus_are_listed_by_nvidia_smi_when_it_runs(monkeypatch):
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="0, GPU-aaaa-0000\n1, GPU-bbbb-1111\n", stderr="")

    monkeypatch.setattr(gpu_slots.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert gpu_slots.enumerate_gpus(run=run) == FAKE[:2]
    assert calls == [["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"]]


def test_without_nvidia_smi_the_driver_proc_files_list_gpus_in_bus_order(monkeypatch, tmp_path):
    for bus, uuid in [("0000:81:00.0", "GPU-later"), ("0000:01:00.0", "GPU-first")]:
        (tmp_path / bus).mkdir()
        (tmp_path / bus / "information").write_text(f"Model: \t\t Fake\nIRQ: 1\nGPU UUID: \t {uuid}\nBus Type: PCIe\n")
    monkeypatch.setattr(gpu_slots.shutil, "which", lambda name: None)
    assert gpu_slots.enumerate_gpus(proc_dir=tmp_path) == [Gpu(0, "GPU-first"), Gpu(1, "GPU-later")]
    assert gpu_slots.enumerate_gpus(proc_dir=tmp_path / "absent") == []


def test_a_failing_nvidia_smi_falls_back_to_the_proc_files(monkeypatch, tmp_path):
    def run(argv, **kwargs):
        return subprocess.CompletedProcess(argv, 9, stdout="", stderr="Driver/library version mismatch")

    monkeypatch.setattr(gpu_slots.shutil, "which", lambda name: "/usr/bin/nvidia-smi")
    assert gpu_slots.enumerate_gpus(run=run, proc_dir=tmp_path) == []


@pytest.mark.parametrize("visible, expected", [
    (None, [Slot("GPU-aaaa-0000", "GPU-aaaa-0000"), Slot("GPU-bbbb-1111", "GPU-bbbb-1111"),
            Slot("GPU-cccc-2222", "GPU-cccc-2222")]),
    ("2,0", [Slot("2", "GPU-cccc-2222"), Slot("0", "GPU-aaaa-0000")]),
    ("GPU-bbbb", [Slot("GPU-bbbb", "GPU-bbbb-1111")]),           # a UUID prefix, written back as given
    ("1,GPU-bbbb-1111", [Slot("1", "GPU-bbbb-1111")]),           # the same GPU twice: one slot
    ("0,7,1", [Slot("0", "GPU-aaaa-0000")]),                     # CUDA stops at the first invalid entry
    ("MIG-1234", [Slot("MIG-1234", "MIG-1234")]),                # a MIG instance: a slot of its own
    ("GPU-", []), ("", []), ("-1", []),
])
def test_candidates_follow_cuda_visible_devices(visible, expected):
    assert candidate_slots(FAKE, visible) == expected


def test_no_gpu_no_candidates_whatever_the_variable_says():
    assert candidate_slots([], None) == [] and candidate_slots([], "0,1") == []


def test_gpus_without_uuid_are_named_by_index():
    assert candidate_slots([Gpu(0), Gpu(1)], None) == [Slot("0", "index0"), Slot("1", "index1")]


def test_the_lock_folder_is_per_user_in_tmp_unless_overridden(tmp_path):
    assert gpu_slots.default_lock_dir({"TMPDIR": str(tmp_path)}) == (Path(f"/tmp/xstilts-gpu-{os.getuid()}"), True)
    assert gpu_slots.default_lock_dir({"XSTILTS_GPU_LOCK_DIR": str(tmp_path)}) == (tmp_path, False)


def test_cuda_counts_as_started_once_the_driver_library_is_loaded(tmp_path, monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    maps = tmp_path / "maps"
    maps.write_text("7f00-7f01 r-xp 0 08:01 1 /usr/lib/x86_64-linux-gnu/libc.so.6\n")
    assert not gpu_slots.cuda_started(maps)
    maps.write_text("7f00-7f01 r-xp 0 08:01 2 /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15\n")
    assert gpu_slots.cuda_started(maps)


def test_importing_torch_does_not_start_cuda():
    import torch

    if torch.version.cuda is None:
        pytest.skip("this torch is a CPU build, which never loads the CUDA driver: the check needs a CUDA build")
    code = ("import torch, transformers; from xstilts import pipeline, training, modeling; "
            "from xstilts.gpu_slots import cuda_started; print(torch.cuda.is_initialized(), cuda_started())")
    done = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[-2:] == ["False", "False"]


# --------------------------------------------------------------------------------------------
# Slots in one process


def test_two_slots_are_two_distinct_gpus_and_are_named_in_their_lock_files(tmp_path):
    environ: dict[str, str] = {}
    with GpuSlots(2, what="finetune_target out/model", gpus=FAKE, environ=environ, lock_dir=tmp_path) as slots:
        assert slots.devices == ["GPU-aaaa-0000", "GPU-bbbb-1111"]
        assert environ == {"CUDA_VISIBLE_DEVICES": "GPU-aaaa-0000,GPU-bbbb-1111"}
        record = json.loads((tmp_path / "GPU-bbbb-1111.lock").read_text())
        assert (record["job"], record["pid"], record["device"]) == ("finetune_target out/model", os.getpid(),
                                                                    "GPU-bbbb-1111")
        assert (tmp_path / "GPU-cccc-2222.lock").exists() is False
    assert environ == {}
    assert (tmp_path / "GPU-bbbb-1111.lock").read_text() == ""


def test_a_busy_gpu_is_skipped_and_a_second_job_gets_the_next(tmp_path):
    with GpuSlots(1, what="a", gpus=FAKE, environ={}, lock_dir=tmp_path) as a:
        with GpuSlots(1, what="b", gpus=FAKE, environ={}, lock_dir=tmp_path) as b:
            assert (a.devices, b.devices) == (["GPU-aaaa-0000"], ["GPU-bbbb-1111"])


def test_all_busy_waits_then_times_out_naming_the_holders(tmp_path, caplog):
    caplog.set_level("INFO")
    with GpuSlots(2, what="finetune_target out/a", gpus=FAKE[:2], environ={}, lock_dir=tmp_path):
        start = time.monotonic()
        with pytest.raises(GpuSlotError, match=r"no 1 free GPU\(s\) after waiting .*finetune_target out/a "
                                               rf"\(pid {os.getpid()}"):
            GpuSlots(1, what="b", gpus=FAKE[:2], environ={}, lock_dir=tmp_path, poll=0.05, timeout=0.4).acquire()
        assert 0.4 <= time.monotonic() - start < 3
    assert "b waits for 1 free GPU(s); held: GPU-aaaa-0000 by finetune_target out/a" in caplog.text


def test_a_two_gpu_job_holds_nothing_while_it_waits(tmp_path):
    with GpuSlots(1, what="a", gpus=FAKE[:2], environ={}, lock_dir=tmp_path) as a:
        with pytest.raises(GpuSlotError):
            GpuSlots(2, what="b", gpus=FAKE[:2], environ={}, lock_dir=tmp_path, poll=0.05, timeout=0.3).acquire()
        # had b kept the free GPU while waiting, c would now wait too
        with GpuSlots(1, what="c", gpus=FAKE[:2], environ={}, lock_dir=tmp_path, timeout=0) as c:
            assert (a.devices, c.devices) == (["GPU-aaaa-0000"], ["GPU-bbbb-1111"])


def test_cuda_visible_devices_restricts_the_choice_and_is_kept_as_given(tmp_path):
    outer = {"CUDA_VISIBLE_DEVICES": "1,2"}
    with GpuSlots(1, what="a", gpus=FAKE, environ=outer, lock_dir=tmp_path) as a:
        assert a.devices == ["1"] and outer["CUDA_VISIBLE_DEVICES"] == "1"
        # a job that sees every GPU skips GPU 1 (its lock is keyed by UUID, whatever its name)
        with GpuSlots(2, what="b", gpus=FAKE, environ={}, lock_dir=tmp_path) as b:
            assert b.devices == ["GPU-aaaa-0000", "GPU-cccc-2222"]
            with pytest.raises(GpuSlotError):
                GpuSlots(1, what="c", gpus=FAKE, environ={"CUDA_VISIBLE_DEVICES": "1,2"}, lock_dir=tmp_path,
                         poll=0.05, timeout=0.2).acquire()
    assert outer == {"CUDA_VISIBLE_DEVICES": "1,2"}


def test_gpus_named_by_index_get_pci_bus_order(tmp_path):
    environ: dict[str, str] = {}
    with GpuSlots(1, gpus=[Gpu(0), Gpu(1)], environ=environ, lock_dir=tmp_path):
        assert environ == {"CUDA_VISIBLE_DEVICES": "0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
        assert (tmp_path / "index0.lock").exists()
    assert environ == {}


@pytest.mark.parametrize("count, environ, gpus", [
    (1, {"SLURM_JOB_ID": "42", "CUDA_VISIBLE_DEVICES": "0"}, FAKE),   # SLURM assigned the GPUs
    (1, {}, []),                                                      # no GPU: the job runs on the CPU
    (1, {"CUDA_VISIBLE_DEVICES": ""}, FAKE),                          # every GPU hidden
    (0, {}, FAKE),                                                    # the job asks for none
])
def test_nothing_is_taken_or_changed(tmp_path, count, environ, gpus):
    before = dict(environ)
    with GpuSlots(count, gpus=gpus, environ=environ, lock_dir=tmp_path / "locks") as slots:
        assert slots.devices == [] and environ == before
    assert not (tmp_path / "locks").exists()


def test_asking_for_more_gpus_than_visible_fails_at_once(tmp_path):
    start = time.monotonic()
    with pytest.raises(GpuSlotError, match="asks for 3 GPUs but this machine shows it 2"):
        GpuSlots(3, what="x", gpus=FAKE, environ={"CUDA_VISIBLE_DEVICES": "0,1"}, lock_dir=tmp_path).acquire()
    assert time.monotonic() - start < 1


# --------------------------------------------------------------------------------------------
# Slots across processes


def test_two_jobs_at_once_get_different_gpus(tmp_path):
    jobs = [holder(tmp_path, name, 1, hold=1.5) for name in ("a", "b")]
    try:
        assert wait_for(lambda: len(acquired(tmp_path)) == 2)
        devices = {device for device, _ in acquired(tmp_path).values()}
        assert devices == {"GPU-aaaa-0000", "GPU-bbbb-1111"}
        assert not released(tmp_path)  # both held at once
    finally:
        for job in jobs:
            assert job.wait(timeout=30) == 0


def test_a_third_job_waits_for_a_free_gpu_and_gets_the_first_freed(tmp_path):
    a = holder(tmp_path, "a", 1, hold=2.0)
    assert wait_for(lambda: "a" in acquired(tmp_path))
    b = holder(tmp_path, "b", 1, hold=4.0)
    assert wait_for(lambda: "b" in acquired(tmp_path))
    c_started = time.time()
    c = holder(tmp_path, "c", 1, hold=0.1)
    for job in (a, b, c):
        assert job.wait(timeout=30) == 0
    got, freed = acquired(tmp_path), released(tmp_path)
    assert got["a"][0] == "GPU-aaaa-0000" and got["b"][0] == "GPU-bbbb-1111"
    assert c_started < freed["a"][1]                  # c started while both GPUs were busy,
    assert freed["a"][1] <= got["c"][1] < freed["b"][1]  # waited for the first to be freed,
    assert got["c"][0] == "GPU-aaaa-0000"             # and took it


def test_a_killed_job_frees_its_gpu(tmp_path):
    a = holder(tmp_path, "a", 1, hold=30, gpus=FAKE[:1])
    try:
        assert wait_for(lambda: "a" in acquired(tmp_path))
        b = holder(tmp_path, "b", 1, hold=0.1, gpus=FAKE[:1])
        time.sleep(0.5)
        assert "b" not in acquired(tmp_path)             # waiting for a
        a.send_signal(signal.SIGKILL)
        assert a.wait(timeout=10) == -signal.SIGKILL
        assert b.wait(timeout=30) == 0
        assert acquired(tmp_path)["b"][0] == "GPU-aaaa-0000"
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()


# --------------------------------------------------------------------------------------------
# Through pipeline.run_rule


def run_job(tmp_path: Path, gpus: int, **extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / f"out{gpus}.json"
    done = subprocess.run([sys.executable, "-c", RULE_JOB, str(out), str(tmp_path / f"job{gpus}.log"), str(gpus)],
                          env=env(XSTILTS_GPU_LOCK_DIR=str(tmp_path / "locks"), **extra), capture_output=True,
                          text=True, timeout=120)
    return done, out


def test_run_rule_sets_the_gpu_before_the_body_runs_and_releases_it(tmp_path):
    done, out = run_job(tmp_path, 1)
    assert done.returncode == 0, done.stderr
    seen = json.loads(out.read_text())
    assert seen["visible"] == "GPU-aaaa-0000"
    assert seen["holder"]["job"] == f"finetune_target {out}" and seen["holder"]["device"] == "GPU-aaaa-0000"
    assert done.stdout.strip() == "after unset"      # released and restored once the body is done
    assert (tmp_path / "locks" / "GPU-aaaa-0000.lock").read_text() == ""
    assert "runs on GPU GPU-aaaa-0000" in (tmp_path / "job1.log").read_text()


def test_run_rule_without_gpus_or_under_slurm_leaves_the_devices_alone(tmp_path):
    done, out = run_job(tmp_path, 0)
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["visible"] == "unset"
    done, out = run_job(tmp_path, 1, SLURM_JOB_ID="42", CUDA_VISIBLE_DEVICES="0")
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["visible"] == "0"
    assert not (tmp_path / "locks").exists()


def test_run_rule_reports_an_impossible_request_in_one_line(tmp_path):
    done, out = run_job(tmp_path, 3)
    assert done.returncode == 1
    assert "rule finetune_target: " in done.stderr and "asks for 3 GPUs but this machine shows it 2" in done.stderr
    assert "Traceback" not in done.stderr and not out.exists()


def test_every_gpu_rule_passes_its_gpu_count_to_run_rule():
    scripts = []
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for block in re.split(r"^\s*(?:rule|checkpoint) \w+:", smk.read_text(), flags=re.MULTILINE)[1:]:
            if re.search(r"^\s*gpu=", block, re.MULTILINE):
                scripts.append(re.search(r'script:\s*"([^"]+)"', block).group(1))
    assert len(scripts) >= 5
    for script in scripts:
        text = (ROOT / "rules" / script).resolve().read_text()
        assert 'gpus=snakemake.resources.get("gpu", 0)' in text, script
