"""Job control with real processes: the job lock, and jobs that stop when their workflow dies."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xstilts import jobcontrol
from xstilts.jobcontrol import JobLock, JobLockedError

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists() or jobcontrol.fcntl is None,
                                reason="needs Linux (/proc and flock)")

# A job that watches its ancestors, says it is ready, and otherwise sleeps (at most 30 s, so a
# failing test leaves nothing running for long).
CHILD = """
import logging, sys, time
from pathlib import Path
from xstilts.jobcontrol import watch_parent
logging.basicConfig(level=logging.INFO)
watch = watch_parent(interval=0.1)
Path(sys.argv[1]).write_text("watching" if watch else "none")
time.sleep(30)
"""

# A job that holds a lock: writes when it got it and when it lets it go.
HOLDER = """
import logging, sys, time
from pathlib import Path
from xstilts.jobcontrol import JobLock
logging.basicConfig(level=logging.INFO)
lock, log, hold = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
with JobLock(lock, what="finetune_target out/model", poll=0.05):
    with log.open("a") as f:
        f.write(f"{sys.argv[4]} acquired {time.time()}\\n")
    time.sleep(hold)
    with log.open("a") as f:
        f.write(f"{sys.argv[4]} released {time.time()}\\n")
"""


def env():
    return {**os.environ, "PYTHONPATH": f"{SCRIPTS}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
            "XSTILTS_NO_PARENT_WATCH": ""}


def wait_for(predicate, seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def alive(pid):
    """Running (not gone, not a zombie waiting to be reaped)."""
    stat = jobcontrol._stat(pid)
    return stat is not None and stat[2] not in ("Z", "X")


def ready_pid(path):
    return int(path.read_text()) if path.exists() and path.read_text().strip() else None


@pytest.fixture()
def job(tmp_path):
    """Starts ``bash -c 'python child.py; ...'`` under an optional top process; kills what is left."""
    (tmp_path / "child.py").write_text(CHILD)
    started = []

    def start(top: bool):
        ready, pidfile, status = tmp_path / "ready", tmp_path / "child.pid", tmp_path / "status"
        # bash runs a compound command, so it forks python instead of exec'ing it (as under snakemake).
        middle = f"{sys.executable} {tmp_path / 'child.py'} {ready} & echo $! > {pidfile}; wait $!; echo $? > {status}"
        argv = ["bash", "-c", middle]
        if top:
            argv = [sys.executable, "-c", "import subprocess, sys; subprocess.run(sys.argv[1:])", *argv]
        proc = subprocess.Popen(argv, env=env(), stderr=open(tmp_path / "stderr", "w"))
        started.append(proc)
        assert wait_for(lambda: ready.exists() and ready_pid(pidfile)), "the child did not start"
        assert ready.read_text() == "watching"
        return proc, ready_pid(pidfile)

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pidfile = tmp_path / "child.pid"
    if pidfile.exists() and alive(int(pidfile.read_text())):
        os.kill(int(pidfile.read_text()), signal.SIGKILL)


def test_a_job_keeps_running_while_its_workflow_lives(job):
    top, child = job(top=True)
    time.sleep(1.5)  # fifteen checks
    assert alive(child) and top.poll() is None


def test_a_job_stops_when_the_bash_between_it_and_the_workflow_is_killed(job, tmp_path):
    middle, child = job(top=False)
    assert alive(child)
    middle.kill()
    middle.wait()
    assert wait_for(lambda: not alive(child), 5.0), "the orphaned job is still running"


def test_a_job_stops_when_the_workflow_process_is_killed(job, tmp_path):
    top, child = job(top=True)
    top.kill()  # snakemake's SIGKILL: bash lives on, only bash's parent changes
    top.wait()
    assert wait_for(lambda: not alive(child), 5.0), "the job outlived its workflow"
    # bash, still alive, saw the job exit with 75 and why
    assert wait_for(lambda: (tmp_path / "status").exists() and (tmp_path / "status").read_text().strip())
    assert (tmp_path / "status").read_text().strip() == str(jobcontrol.PARENT_GONE_EXIT)
    stderr = (tmp_path / "stderr").read_text()
    assert f"the workflow process (pid {top.pid}) that started this job is gone" in stderr
    assert "a rerun resumes from it" in stderr


def test_the_watch_is_off_when_switched_off_or_without_proc(monkeypatch, tmp_path):
    monkeypatch.setenv("XSTILTS_NO_PARENT_WATCH", "1")
    assert jobcontrol.watch_parent() is None
    monkeypatch.setenv("XSTILTS_NO_PARENT_WATCH", "")
    monkeypatch.setattr(jobcontrol, "PROC", tmp_path / "no-proc")
    assert jobcontrol.watch_parent() is None


def test_the_watch_records_parent_and_grandparent_with_start_times():
    watch = jobcontrol.watch_parent(on_death=lambda pid: None, interval=60)
    try:
        parent = os.getppid()
        with open(f"/proc/{parent}/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        assert watch.ancestors[0] == (parent, start)
        assert len(watch.ancestors) <= 2 and watch.gone() is None
    finally:
        watch.stop()


def test_a_forked_job_also_watches_the_workflow_process_it_serves(monkeypatch):
    # A worker forked from a template is not a child of its workflow process: its jobs watch
    # that process by pid and start time (jobcontrol.watch_workflow, set by xstilts.worker).
    workflow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        started = jobcontrol.start_time(workflow.pid)
        with open(f"/proc/{workflow.pid}/stat") as f:
            assert started == int(f.read().rsplit(")", 1)[1].split()[19])
        assert jobcontrol.alive(workflow.pid, started) and not jobcontrol.alive(workflow.pid, started + 1)
        monkeypatch.setattr(jobcontrol, "_WORKFLOW", None)
        jobcontrol.watch_workflow(workflow.pid, started)
        gone = []
        watch = jobcontrol.watch_parent(on_death=gone.append, interval=0.05)
        try:
            assert watch.also == [(workflow.pid, started)] and watch.gone() is None
            time.sleep(0.2)
            assert gone == []
            workflow.kill()
            deadline = time.monotonic() + 10
            while not gone and time.monotonic() < deadline:
                time.sleep(0.05)
            workflow.wait()
            assert gone == [workflow.pid]
            assert not jobcontrol.alive(workflow.pid, started) and jobcontrol.start_time(workflow.pid) is None
        finally:
            watch.stop()
    finally:
        workflow.kill()
        workflow.wait()


# ------------------------------------------------------------------------------------------
# JobLock


def hold(tmp_path, name, seconds, log):
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path / "locks" / "job.lock"), str(log), str(seconds), name],
                            env=env(), stderr=subprocess.PIPE, text=True)


def events(log):
    rows = [line.split() for line in log.read_text().splitlines()] if log.exists() else []
    return {(name, what): float(t) for name, what, t in rows}


def test_a_second_job_waits_until_the_first_releases(tmp_path):
    log = tmp_path / "events"
    first = hold(tmp_path, "first", 1.5, log)
    assert wait_for(lambda: ("first", "acquired") in events(log))
    second = hold(tmp_path, "second", 0, log)
    assert second.wait(15) == 0 and first.wait(15) == 0
    times = events(log)
    assert times[("first", "released")] <= times[("second", "acquired")]
    waiting = second.stderr.read()
    assert f"waiting for pid {first.pid} on host " in waiting
    assert "which runs the same job finetune_target out/model; lock " in waiting
    assert waiting.count("waiting for pid") == 1  # logged once, not at every poll
    lock = tmp_path / "locks" / "job.lock"
    assert lock.exists() and jobcontrol.read_holder(lock) is None  # kept, and emptied on release


def test_without_waiting_a_held_lock_raises_naming_the_holder(tmp_path):
    first = hold(tmp_path, "first", 10, tmp_path / "events")
    try:
        assert wait_for(lambda: ("first", "acquired") in events(tmp_path / "events"))
        lock = tmp_path / "locks" / "job.lock"
        assert jobcontrol.read_holder(lock)["pid"] == first.pid
        with pytest.raises(JobLockedError) as error:
            with JobLock(lock, what="finetune_target out/model", wait=False):
                pytest.fail("got a lock that another process holds")
        message = str(error.value)
        assert message.startswith("finetune_target out/model: the same job is already running")
        assert f"pid {first.pid} on host " in message and str(lock) in message and f"kill {first.pid}" in message
    finally:
        first.kill()
        first.wait()


def test_a_killed_holder_releases_the_lock(tmp_path):
    first = hold(tmp_path, "first", 30, tmp_path / "events")
    assert wait_for(lambda: ("first", "acquired") in events(tmp_path / "events"))
    first.send_signal(signal.SIGKILL)
    first.wait()
    lock = tmp_path / "locks" / "job.lock"
    with JobLock(lock, wait=False) as held:
        assert held.locked and jobcontrol.read_holder(lock)["pid"] == os.getpid()
    assert lock.exists()  # never deleted


def test_waiting_past_the_timeout_raises(tmp_path):
    first = hold(tmp_path, "first", 10, tmp_path / "events")
    try:
        assert wait_for(lambda: ("first", "acquired") in events(tmp_path / "events"))
        start = time.monotonic()
        with pytest.raises(JobLockedError, match=r"already running after waiting \d+ s: pid \d+"):
            with JobLock(tmp_path / "locks" / "job.lock", poll=0.1, timeout=0.6):
                pytest.fail("got a lock that another process holds")
        assert 0.5 <= time.monotonic() - start < 3
    finally:
        first.kill()
        first.wait()


def test_without_flock_support_the_job_runs_with_a_warning(tmp_path, monkeypatch, caplog):
    def unsupported(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(jobcontrol.fcntl, "flock", unsupported)
    with caplog.at_level(logging.WARNING, logger="xstilts.jobcontrol"):
        with JobLock(tmp_path / "job.lock", what="the job") as held:
            assert not held.locked
    assert "does not support flock" in caplog.text and "the job" in caplog.text


def test_the_lock_file_names_its_holder(tmp_path):
    lock = tmp_path / "a" / "b" / "job.lock"
    with JobLock(lock):
        holder = json.loads(lock.read_text())
        assert holder["pid"] == os.getpid() and holder["argv"] == sys.argv
        assert set(holder) == {"pid", "host", "started", "argv"}
    assert lock.read_text() == ""
