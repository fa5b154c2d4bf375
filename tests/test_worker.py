"""The pre-imported worker (xstilts.worker): a job handed to it runs in a fork with the job's own
standard streams, folder, environment, signals and exit status, and runs in its own process
whenever the worker could not run it as a fresh process would.

The workflow-level check that forks compute the same bytes as own processes is in
tests/test_workflow.py (the two smoke runs: one with the worker, one without).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from conftest import ROOT
from xstilts import worker

pytestmark = pytest.mark.skipif(not worker.available(), reason="the worker needs Linux")

# A stand-in rule script: it hands itself to the worker exactly as pipeline.run_rule does, then
# (in the fork, or in its own process when refused) reports where it ran and does what argv says.
JOB = textwrap.dedent("""
    import json, os, sys, tempfile, time
    sys.path.insert(0, {scripts!r})
    from xstilts import worker

    status, reason = worker.delegate()
    if status is not None:
        sys.exit(status)
    report = {{"pid": os.getpid(), "ppid": os.getppid(), "cwd": os.getcwd(), "in_worker": worker.IN_WORKER,
               "reason": reason, "tmp": tempfile.gettempdir(), "argv": sys.argv[1:]}}
    print(json.dumps(report), flush=True)
    action = sys.argv[1]
    if action == "exit":
        sys.exit(int(sys.argv[2]))
    if action == "raise":
        raise ValueError("a failing job")
    if action == "abort":
        os.abort()
    if action == "sleep":
        open(sys.argv[2], "w").write(str(os.getpid()))
        time.sleep(120)
    if action == "watch":  # as a training job: stop when the workflow process is gone
        from xstilts import jobcontrol

        jobcontrol.watch_parent(interval=0.1)
        open(sys.argv[2], "w").write(str(os.getpid()))
        time.sleep(120)
""")


# The jobs' environment (pytest's per-test variable left out: it would differ between jobs).
ENV = {k: v for k, v in worker.job_environment(1).items() if k not in ("PYTEST_CURRENT_TEST", worker.SOCKET_ENV)}


@pytest.fixture(scope="module", autouse=True)
def no_session_template():
    """This module starts its own workers and templates: the test session's template
    (tests/conftest.py) is not offered to them."""
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv(worker.TEMPLATE_ENV, raising=False)
        yield


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> Path:
    """A copy of the xstilts library for this module's worker and jobs: a test edits a file of it,
    and the checkout's own files must stay as they are for the workflow runs of other tests
    (running at the same time under pytest-xdist)."""
    scripts = tmp_path_factory.mktemp("library") / "scripts"
    shutil.copytree(ROOT / "scripts" / "xstilts", scripts / "xstilts", ignore=shutil.ignore_patterns("__pycache__"))
    return scripts


@pytest.fixture(scope="module")
def server(tmp_path_factory, library):
    folder = tmp_path_factory.mktemp("worker")
    handle = worker.start(folder / "worker.log", library, env=ENV)
    yield handle
    handle.stop()
    assert not Path(handle.folder).exists()


@pytest.fixture()
def job_script(tmp_path, library) -> Path:
    path = tmp_path / "job.py"
    path.write_text(JOB.format(scripts=str(library)))
    return path


def run_job(script: Path, *args: str, env: dict | None = None, cwd: Path | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script), *args], env={**(env or ENV), worker.SOCKET_ENV: os.environ[worker.SOCKET_ENV]}, cwd=cwd,
                          capture_output=True, text=True, timeout=120, **kwargs)


def report(proc: subprocess.CompletedProcess) -> dict:
    import json

    return json.loads(proc.stdout.splitlines()[0])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not alive(pid)


def test_a_job_runs_in_a_fork_with_its_streams_folder_environment_and_status(server, job_script, tmp_path):
    env = {**ENV, "TMPDIR": str(tmp_path)}
    proc = run_job(job_script, "exit", "3", env=env, cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    got = report(proc)  # printed by the fork, read here through the job process's own stdout
    assert got["in_worker"] is True and got["ppid"] == server.process.pid
    assert got["cwd"] == str(tmp_path) and got["tmp"] == str(tmp_path) and got["argv"] == ["exit", "3"]
    # The worker's log, not the job's, records each fork's status and usage.
    assert re.search(rf"job pid {got['pid']} exited with 3: [\d.]+ s CPU, peak resident memory \d+ MiB",
                     Path(server.log_file).read_text())


def test_an_exception_and_a_crash_are_the_jobs_failures(server, job_script):
    raised = run_job(job_script, "raise")
    assert raised.returncode == 1 and "ValueError: a failing job" in raised.stderr
    assert report(raised)["in_worker"] is True
    aborted = run_job(job_script, "abort")
    assert aborted.returncode == 128 + signal.SIGABRT  # as bash reports a job killed by a signal


def test_a_job_the_worker_cannot_run_as_a_fresh_process_runs_in_its_own(server, job_script):
    # Thread counts are read when numpy's BLAS loads: a 2-thread job cannot fork from a 1-thread worker.
    proc = run_job(job_script, "exit", "0", env={**ENV, "OMP_NUM_THREADS": "2"})
    got = report(proc)
    assert proc.returncode == 0 and got["in_worker"] is False and got["ppid"] != server.process.pid
    assert "OMP_NUM_THREADS" in got["reason"]


def test_an_edited_library_file_is_never_run_from_the_old_import(server, job_script, library):
    module = library / "xstilts" / "tasks.py"
    before = module.stat()
    try:
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns + 1_000_000_000))
        got = report(run_job(job_script, "exit", "0"))
    finally:
        os.utime(module, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert got["in_worker"] is False and "tasks.py" in got["reason"]
    assert report(run_job(job_script, "exit", "0"))["in_worker"] is True  # as imported again


def test_without_a_worker_or_switched_off_the_job_runs_in_its_own_process(server, job_script):
    no_worker = subprocess.run([sys.executable, str(job_script), "exit", "0"], env=ENV, capture_output=True, text=True)
    switched_off = run_job(job_script, "exit", "0", env={**ENV, worker.DISABLE_ENV: "1"})
    for proc in (no_worker, switched_off):
        got = report(proc)
        assert got["in_worker"] is False and got["reason"] == ""


def test_signals_to_the_job_reach_its_fork(server, job_script, tmp_path):
    pid_file = tmp_path / "pid"
    proc = subprocess.Popen([sys.executable, str(job_script), "sleep", str(pid_file)], env={**ENV, worker.SOCKET_ENV: os.environ[worker.SOCKET_ENV]},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    fork = wait_for_pid(pid_file)
    assert fork != proc.pid and alive(fork)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert wait_gone(fork)


def test_a_killed_job_process_takes_its_fork_along(server, job_script, tmp_path):
    pid_file = tmp_path / "pid"
    proc = subprocess.Popen([sys.executable, str(job_script), "sleep", str(pid_file)], env={**ENV, worker.SOCKET_ENV: os.environ[worker.SOCKET_ENV]},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    fork = wait_for_pid(pid_file)
    proc.kill()  # no signal to forward: the fork sees its connection close
    proc.wait(30)
    assert wait_gone(fork)


def test_the_worker_ends_with_the_process_that_started_it(tmp_path):
    starter = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT / 'scripts')!r})
        from xstilts import worker
        handle = worker.start({str(tmp_path / 'worker.log')!r}, {str(ROOT / 'scripts')!r})
        print(handle.process.pid, handle.folder, flush=True)
        os._exit(0)  # no stop(): like a workflow process killed with SIGKILL
    """)
    out = subprocess.run([sys.executable, "-c", starter], capture_output=True, text=True, timeout=120, check=True)
    pid, folder = out.stdout.split()
    assert wait_gone(int(pid), 90), "the worker outlived its workflow process"
    assert "the workflow process is gone" in (tmp_path / "worker.log").read_text()
    Path(folder, "socket").unlink(missing_ok=True)
    os.rmdir(folder)


def wait_for_pid(pid_file: Path, seconds: float = 60) -> int:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pid_file.exists() and pid_file.read_text():
            return int(pid_file.read_text())
        time.sleep(0.05)
    raise AssertionError("the job never started")


def test_a_gpu_machine_or_the_switch_starts_no_worker(tmp_path):
    device = tmp_path / "nvidiactl"
    assert worker.why_not({}, (str(device),)) == ""
    device.touch()
    assert "GPU driver" in worker.why_not({}, (str(device),))
    assert worker.DISABLE_ENV in worker.why_not({worker.DISABLE_ENV: "1"}, ())
    assert worker.why_not({worker.DISABLE_ENV: "0"}, ()) == ""


# ---------------------------------------------------------------------------------------------
# A template worker: each run's worker is forked from it instead of importing again

# A workflow process: starts its worker (`worker.start`, as the Snakefile's onstart does), runs
# the job of argv, prints what happened as JSON; with "kill" it ends without stopping its worker
# (as a workflow killed with SIGKILL) while a "watch" job is running.
RUN = textwrap.dedent("""
    import json, os, subprocess, sys, time
    sys.path.insert(0, {scripts!r})
    from xstilts import worker

    env = json.loads(sys.argv[1])
    handle = worker.start(sys.argv[2], {scripts!r}, env=env)
    out = {{"worker": handle.pid, "forked": handle.process is None}}
    job = [sys.executable, sys.argv[3], *sys.argv[4:]]
    if sys.argv[4] == "watch":
        subprocess.Popen(job, env={{**env, worker.SOCKET_ENV: handle.socket_path}}, stdout=subprocess.DEVNULL,
                         stderr=open(sys.argv[2] + ".job", "w"))
        while not (os.path.exists(sys.argv[5]) and open(sys.argv[5]).read()):
            time.sleep(0.02)
        print(json.dumps(out), flush=True)
        os._exit(0)
    proc = subprocess.run(job, env={{**env, worker.SOCKET_ENV: handle.socket_path}}, capture_output=True, text=True)
    out.update(status=proc.returncode, job=json.loads(proc.stdout.splitlines()[0]))
    handle.stop()
    out["running_after_stop"] = handle.running()
    print(json.dumps(out), flush=True)
""")


@pytest.fixture(scope="module")
def template(tmp_path_factory, library):
    folder = tmp_path_factory.mktemp("template")
    handle = worker.start_template(folder / "template.log", library, env=ENV, ignore_env=("PYTEST_CURRENT_TEST",))
    socket_path = os.environ.pop(worker.TEMPLATE_ENV)  # offered only to the runs that name it
    assert socket_path == handle.socket_path
    yield handle
    handle.stop()
    assert not handle.running() and not Path(handle.folder).exists()


def workflow_run(template, library, tmp_path, *job_args: str, env: dict | None = None) -> dict:
    run = tmp_path / "run.py"
    run.write_text(RUN.format(scripts=str(library)))
    job = tmp_path / "job.py"
    job.write_text(JOB.format(scripts=str(library)))
    import json

    proc = subprocess.run([sys.executable, str(run), json.dumps(env or ENV), str(tmp_path / "worker.log"), str(job),
                           *job_args], env={**ENV, worker.TEMPLATE_ENV: template.socket_path},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_a_run_forks_its_worker_from_the_template_and_its_jobs_run_in_that_worker(template, library, tmp_path):
    got = workflow_run(template, library, tmp_path, "exit", "3")
    assert got["forked"] and got["status"] == 3
    assert got["job"]["in_worker"] and got["job"]["ppid"] == got["worker"]  # a fork of the run's worker
    assert not got["running_after_stop"] and template.running()
    log = (tmp_path / "worker.log").read_text()
    assert f"forked from the template worker (pid {template.pid})" in log and "modules imported in" not in log
    assert re.search(rf"job pid {got['job']['pid']} exited with 3: ", log)
    assert f"forked worker pid {got['worker']} for the workflow process" in Path(template.log_file).read_text()


def test_a_killed_workflow_stops_its_forked_worker_and_the_jobs_it_runs(template, library, tmp_path):
    pid_file = tmp_path / "job.pid"
    got = workflow_run(template, library, tmp_path, "watch", str(pid_file))
    assert got["forked"]
    fork = int(pid_file.read_text())
    assert wait_gone(fork, 30), "the job outlived its workflow process"
    assert wait_gone(got["worker"], 30), "the forked worker outlived its workflow process"
    assert "is gone; stopping" in (tmp_path / "worker.log.job").read_text()
    log = (tmp_path / "worker.log").read_text()
    assert f"job pid {fork} exited with 75" in log and "the workflow process is gone" in log
    assert template.running()


def test_a_run_the_template_cannot_serve_starts_a_worker_that_imports(template, library, tmp_path):
    got = workflow_run(template, library, tmp_path, "exit", "0", env={**ENV, "OMP_NUM_THREADS": "2"})
    assert not got["forked"] and got["status"] == 0
    log = (tmp_path / "worker.log").read_text()
    assert "not forked from the template worker (the template refused: the run's environment differs from " \
           "the worker's in OMP_NUM_THREADS)" in log
    assert "modules imported in" in log  # a worker of its own


def test_a_template_runs_no_job_itself(template, job_script):
    proc = subprocess.run([sys.executable, str(job_script), "exit", "0"], env={**ENV, worker.SOCKET_ENV: template.socket_path},
                          capture_output=True, text=True, timeout=120)
    got = report(proc)
    assert proc.returncode == 0 and got["in_worker"] is False and "template worker" in got["reason"]
