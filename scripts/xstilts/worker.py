"""A pre-imported worker for local runs: each job forks from a process that has already imported
torch, transformers, sentence-transformers and the xstilts library.

Why: a rule job is a fresh Python process, and importing that stack costs 6 to 9 seconds of CPU
before a job does any work. The demo's tiny models train and predict in less than that, so on a
2-core machine most of a run was imports. A fork of a process that has done the imports costs
milliseconds, and the job still runs in a process of its own (its own memory, exit status, log and
lock), exactly the code it would run alone.

How, for a local run (``workflow.local_exec``; the Snakefile's ``onstart``):

- ``start`` launches the server (``serve``) in a session of its own and puts its socket's path in
  ``XSTILTS_WORKER``, which every local job inherits. The server imports ``PRELOAD`` and every
  module of the xstilts package, then answers requests until the workflow process ends
  (``stop``, or its parent is gone).
- A rule job still starts as ``python script.py`` (Snakemake's ``script:``), a process that imports
  nothing heavy. ``pipeline.run_rule`` calls ``delegate`` first: it sends the worker its script, its
  standard input, output and error (the file descriptors themselves), working folder, command line
  and environment. The worker forks; the fork runs the script as ``python script.py`` would and
  exits; its exit status becomes the job's. Signals sent to the job are forwarded to the fork, and
  a job process that dies takes its fork with it (the fork watches the connection).
- The worker refuses a request it cannot serve as a fresh process would, and the job then runs in
  its own process as before, saying why in its log: another Python, another copy of the library,
  a library file edited since the worker imported it, or an environment that differs in a variable
  that libraries read when imported (thread counts, for example). Jobs with network access
  (downloads) never use it.

Why hand-written: the standard library's ``multiprocessing`` forkserver (the same idea) forks
only for the process that started it, while Snakemake starts each job as a program of its own;
this module is that idea for unrelated processes, with their standard streams passed over the
socket (``socket.send_fds``), in one module of the standard library only.

Templates (several runs in a row, as a test suite makes): ``start_template`` starts a worker that
imports as above but runs no jobs, and puts its socket in ``XSTILTS_WORKER_TEMPLATE``. A run
started with that variable set asks the template for its worker instead of importing again: the
template forks a worker for that run (its socket, its log, the workflow process to watch), which
then serves the run's jobs exactly as a worker of its own would. The template refuses when the
run's Python, library folder, library files or environment differ from its own, and the run
starts a worker that imports, with the reason in its log. A forked worker is not a child of its
workflow process, so it and its jobs watch that process by pid (``jobcontrol.watch_workflow``):
a killed workflow stops them as it stops a worker of its own.

``XSTILTS_NO_WORKER=1`` switches it off for a run. Under a cluster profile no worker is started:
jobs run on other hosts; nor on a machine with a GPU driver (``why_not``). Linux only
(``SOCK_SEQPACKET``, ``fork``); elsewhere every job runs in its own process.

What changes for a job: Snakemake's ``benchmark:`` files measure the job's own process tree, and
the fork is the worker's child, not the job's: their wall-clock time (the ``s`` column, the only
one the compute table reads) is right, their memory and CPU columns count the job process alone.
The worker's log has a line per job instead: its pid, exit status, CPU time and peak memory. A
job's own log is the same with or without the worker.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import pkgutil
import runpy
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from xstilts import jobcontrol
from xstilts.jobcontrol import PARENT_GONE_EXIT

log = logging.getLogger(__name__)

#: The worker's socket path, set in the workflow process's environment for its jobs.
SOCKET_ENV = "XSTILTS_WORKER"
#: Set to 1 to run every job in a process of its own.
DISABLE_ENV = "XSTILTS_NO_WORKER"
#: The socket of a template worker (``start_template``) that runs fork their workers from.
TEMPLATE_ENV = "XSTILTS_WORKER_TEMPLATE"

#: Imported by the worker besides every module of the xstilts package (some are imported lazily
#: by xstilts functions, so that light jobs and the command line never pay for them).
#: ``snakemake.script`` is what the rule scripts' preamble imports to read their job.
PRELOAD = ("torch", "transformers", "datasets", "sentence_transformers", "peft", "faiss", "pandas", "matplotlib",
           "matplotlib.pyplot", "tokenizers", "sentencepiece", "snakemake.script")

#: Environment variables that may differ between the worker and a job: none is read when a module
#: is imported. The fork takes the job's values of these (and of every other variable).
#: Snakemake sets the temporary-folder ones per job; the shell that starts a job sets ``_``,
#: ``SHLVL``, ``PWD``, ``OLDPWD`` and drops the prompts; ``CUDA_VISIBLE_DEVICES`` is read when
#: CUDA starts, never in the worker; the worker sets the offline switches itself.
PER_JOB_ENV = frozenset({"TMPDIR", "TMP", "TEMP", "TEMPDIR", "_", "SHLVL", "PWD", "OLDPWD", "PS1", "PS2",
                         "CUDA_VISIBLE_DEVICES", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                         "TRANSFORMERS_OFFLINE", SOCKET_ENV, TEMPLATE_ENV})

#: The thread-count variables Snakemake sets for a job (snakemake.shell); the worker is started
#: with them at 1, the thread count of every xstilts rule.
THREAD_ENV = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

#: Seconds a job waits for the worker's answer before it runs in its own process instead.
ANSWER_TIMEOUT = 300.0
#: Seconds a run waits for a template's answer (it answers once it has imported) before it starts
#: a worker that imports.
TEMPLATE_TIMEOUT = 120.0

#: True in a fork of the worker: ``delegate`` then never delegates again.
IN_WORKER = False

_MAX_MESSAGE = 1 << 20


def available() -> bool:
    """Whether this system can run the worker (Linux: forks and sequenced-packet Unix sockets)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SOCK_SEQPACKET") and hasattr(socket, "send_fds")


#: Device files of GPU drivers (NVIDIA, AMD ROCm): their presence means jobs may use a GPU.
GPU_DEVICE_FILES = ("/dev/nvidiactl", "/dev/kfd")


def why_not(environ: dict[str, str] | None = None, device_files: tuple[str, ...] = GPU_DEVICE_FILES) -> str:
    """Why a local run should not start a worker ("" when it should).

    Not on a machine with a GPU driver: a process that has touched CUDA cannot fork a child that
    uses it, and GPU jobs run for minutes, so a job's seconds of imports do not matter there. Not
    where it cannot run (``available``), nor when ``XSTILTS_NO_WORKER`` is set.
    """
    environ = os.environ if environ is None else environ
    if environ.get(DISABLE_ENV, "") not in ("", "0"):
        return f"{DISABLE_ENV} is set"
    if not available():
        return "this system has no fork and sequenced-packet sockets (Linux only)"
    gpus = [f for f in device_files if os.path.exists(f)]
    if gpus:
        return f"this machine has a GPU driver ({gpus[0]}): GPU jobs do not fork from a shared process"
    return ""


# --------------------------------------------------------------------------------------------
# The job's side


def delegate(script: str | None = None) -> tuple[int | None, str]:
    """Run this job's script in a fork of the worker; (exit status, "") when it ran there.

    Returns (None, reason) when the job must run in this process: no worker (``reason`` empty),
    or the worker refused or could not be reached (``reason`` says why). ``script`` defaults to
    ``sys.argv[0]``, the file Snakemake runs (its own copy of the rule script with the job's
    ``snakemake`` object written into it).
    """
    path = os.environ.get(SOCKET_ENV, "")
    if IN_WORKER or not path or os.environ.get(DISABLE_ENV, "") not in ("", "0") or not available():
        return None, ""
    script = os.path.abspath(script or sys.argv[0])
    request = {"script": script, "argv": list(sys.argv), "cwd": os.getcwd(), "env": dict(os.environ),
               "identity": identity()}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(ANSWER_TIMEOUT)
        sock.connect(path)
        socket.send_fds(sock, [json.dumps(request).encode()], [0, 1, 2])
        answer = _receive(sock)
    except OSError as error:
        sock.close()
        return None, f"the worker at {path} could not be reached ({error})"
    if answer is None or "pid" not in answer:
        sock.close()
        reason = answer.get("refused") if answer else "it closed the connection"
        return None, f"the worker did not take the job: {reason}"
    pid = int(answer["pid"])
    _forward_signals(pid)
    sock.settimeout(None)
    try:
        answer = _receive(sock)
    finally:
        sock.close()
    if answer is None or "status" not in answer:
        print(f"xstilts worker: the worker ended before the job (pid {pid}) reported its exit status",
              file=sys.stderr)
        return 1, ""
    status = int(answer["status"])
    return (status if status >= 0 else 128 - status), ""


def _receive(sock: socket.socket) -> dict[str, Any] | None:
    data = sock.recv(_MAX_MESSAGE)
    return json.loads(data) if data else None


def _forward_signals(pid: int) -> None:
    """Pass the signals that stop a job (Ctrl-C, Snakemake's terminate, a hang-up) to its fork."""

    def forward(signum: int, _frame: Any) -> None:
        _kill(pid, signum)

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(signum, forward)


def identity(library_parent: str | Path | None = None) -> dict[str, str]:
    """What a job and the worker must share: the Python and the library's folder (the imported
    xstilts, or the one in ``library_parent``)."""
    if library_parent is None:
        import xstilts

        library = os.path.dirname(xstilts.__file__)
    else:
        library = os.path.join(library_parent, "xstilts")
    return {"python": os.path.realpath(sys.executable), "version": sys.version, "library": os.path.realpath(library)}


# --------------------------------------------------------------------------------------------
# Starting and stopping (the workflow process)


class Handle:
    """A started worker: its process (started here, or forked by a template: ``pid`` only), its
    socket and its folder (``stop`` removes them), its log, and the variable that names it."""

    def __init__(self, process: subprocess.Popen | None, folder: str, socket_path: str, log_file: str | Path,
                 pid: int | None = None, variable: str = SOCKET_ENV):
        self.process, self.folder, self.socket_path, self.log_file = process, folder, socket_path, log_file
        self.pid = process.pid if process is not None else int(pid)  # type: ignore[arg-type]
        self.started = jobcontrol.start_time(self.pid)
        self.variable = variable

    def running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return jobcontrol.alive(self.pid, self.started)

    def stop(self, timeout: float = 20.0) -> None:
        """End the worker (forks still running after 10 s get SIGTERM) and remove its socket folder."""
        if self.running():
            self._signal(signal.SIGTERM)
            if not self._wait(timeout):
                self._signal(signal.SIGKILL)
                self._wait(timeout)
        shutil.rmtree(self.folder, ignore_errors=True)
        if os.environ.get(self.variable) == self.socket_path:
            del os.environ[self.variable]

    def _signal(self, signum: int) -> None:
        if self.process is not None:
            self.process.send_signal(signum)
        elif self.running():  # never a reused pid
            _kill(self.pid, signum)

    def _wait(self, timeout: float) -> bool:
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.running() and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.running()


def job_environment(threads: int = 1) -> dict[str, str]:
    """This process's environment as Snakemake gives it to a job of ``threads`` threads."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_ENV})
    return env


def start(log_file: str | Path, library_parent: str | Path, env: dict[str, str] | None = None) -> Handle:
    """Start a worker for this process's jobs and set ``XSTILTS_WORKER``; returns its handle.

    ``library_parent`` is the folder holding the xstilts package the jobs import; ``env`` is the
    environment of the jobs it will serve (default: ``job_environment(1)``). The worker answers as
    soon as its socket exists; jobs that ask while it still imports wait in the socket's queue.
    Its log (imports, each job's pid and status, refusals) goes to ``log_file``. With
    ``XSTILTS_WORKER_TEMPLATE`` set, the worker is forked from that template when it accepts.
    """
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    env = dict(job_environment(1) if env is None else env)
    env.pop(SOCKET_ENV, None)
    template = os.environ.get(TEMPLATE_ENV, "")
    if template:
        folder, socket_path = _socket_folder("xstilts-worker-")
        pid, why = _ask_template(template, socket_path, log_file, library_parent, env)
        if pid is not None:
            handle = Handle(None, folder, socket_path, log_file, pid=pid)
            why = _wait_for_socket(handle)
            if not why:
                os.environ[SOCKET_ENV] = socket_path
                return handle
            handle.stop()
        with open(log_file, "a", encoding="utf-8") as out:
            out.write(f"worker: not forked from the template worker ({why}); starting one that imports\n")
    handle = _launch("xstilts-worker-", log_file, library_parent, env, [])
    os.environ[SOCKET_ENV] = handle.socket_path
    return handle


def start_template(log_file: str | Path, library_parent: str | Path, env: dict[str, str] | None = None,
                   ignore_env: tuple[str, ...] = ()) -> Handle:
    """Start a template worker and set ``XSTILTS_WORKER_TEMPLATE``: the runs this process starts
    fork their workers from it (``start``). ``env`` is their jobs' environment, as for ``start``;
    ``ignore_env`` names more variables that may differ between runs and jobs (nothing may read
    them at import; a test runner's per-test variable, for example). Ends with this process or
    ``stop``; the workers it forked end with their own workflows."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    env = dict(job_environment(1) if env is None else env)
    for name in (SOCKET_ENV, TEMPLATE_ENV):
        env.pop(name, None)
    extra = ["--template", *(["--ignore-env", ",".join(ignore_env)] if ignore_env else [])]
    handle = _launch("xstilts-worker-template-", log_file, library_parent, env, extra, variable=TEMPLATE_ENV)
    os.environ[TEMPLATE_ENV] = handle.socket_path
    return handle


def _socket_folder(prefix: str) -> tuple[str, str]:
    folder = tempfile.mkdtemp(prefix=prefix)  # mode 0700: only this user may connect
    return folder, os.path.join(folder, "socket")


def _launch(prefix: str, log_file: str | Path, library_parent: str | Path, env: dict[str, str], extra: list[str],
            variable: str = SOCKET_ENV) -> Handle:
    """A worker process of its own (``main``), once its socket exists."""
    folder, socket_path = _socket_folder(prefix)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from xstilts.worker import main; "
            "sys.exit(main(sys.argv[2:]))")
    with open(log_file, "a", encoding="utf-8") as out:
        process = subprocess.Popen([sys.executable, "-c", code, str(library_parent), socket_path, str(os.getpid()),
                                    *extra],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True, close_fds=True)
    handle = Handle(process, folder, socket_path, log_file, variable=variable)
    if _wait_for_socket(handle):
        handle.stop()
        raise RuntimeError(f"the xstilts worker did not start (see {log_file})")
    return handle


def _wait_for_socket(handle: Handle, seconds: float = 60) -> str:
    """Wait until the worker listens; why it does not ("" when it does)."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(handle.socket_path):
        if not handle.running():
            return f"worker pid {handle.pid} ended before it listened"
        if time.monotonic() > deadline:
            return f"worker pid {handle.pid} did not listen within {seconds:.0f} s"
        time.sleep(0.02)
    return ""


def _ask_template(template: str, socket_path: str, log_file: str | Path, library_parent: str | Path,
                  env: dict[str, str]) -> tuple[int | None, str]:
    """Ask the template at ``template`` to fork this run's worker: (its pid, "") or (None, why not)."""
    request = {"spawn": {"socket": socket_path, "log": os.path.abspath(log_file), "workflow": os.getpid(),
                         "identity": identity(library_parent), "env": env}}
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.settimeout(TEMPLATE_TIMEOUT)
        sock.connect(template)
        sock.send(json.dumps(request).encode())
        answer = _receive(sock)
    except OSError as error:
        return None, f"the template at {template} could not be reached: {error}"
    finally:
        sock.close()
    if answer is None or "pid" not in answer:
        return None, f"the template refused: {answer.get('refused') if answer else 'it closed the connection'}"
    return int(answer["pid"]), ""


# --------------------------------------------------------------------------------------------
# The worker's side


class Server:
    """The worker process: imports, then forks one child per accepted job (see the module docstring);
    a template (``template=True``) forks a worker per accepted run instead."""

    def __init__(self, socket_path: str, parent: int, template: bool = False, ignored: tuple[str, ...] = ()):
        self.parent = parent  # the workflow process served (the starting process, for a template)
        self.parent_started = jobcontrol.start_time(parent)
        self.template = template
        self.ignored = frozenset(ignored)
        self.listener = _listen(socket_path)
        self.children: dict[int, socket.socket | None] = {}  # None: a worker forked by a template
        self.stopping = False
        self.env: dict[str, str] = {}
        self.identity: dict[str, str] = {}
        self.sources: dict[str, tuple[int, int]] = {}
        self._selector: selectors.BaseSelector | None = None
        self._wake: tuple[int, ...] = ()

    # ----- setup
    def preload(self) -> None:
        """Import what jobs import; remember the environment and the library files as imported."""
        from xstilts.pipeline import offline_mode

        self.env = self._comparable(os.environ)
        offline_mode()  # the switches are read when huggingface_hub is imported; jobs set them anyway
        started = time.monotonic()
        import xstilts

        names = [m.name for m in pkgutil.walk_packages(xstilts.__path__, "xstilts.") if m.name != __name__]
        for name in [*PRELOAD, *names]:
            try:
                importlib.import_module(name)
            except Exception as error:  # a job that needs it imports it (and reports the error) itself
                print(f"worker: not preloaded: {name} ({type(error).__name__}: {error})", flush=True)
        self.identity = identity()
        self.sources = _library_sources()
        # Every fork shares the imported modules' memory until it writes to a page. The garbage
        # collector's passes would write to every object's header (and so copy the whole heap,
        # about a GB, into each job); frozen objects are left out of its passes.
        gc.collect()
        gc.freeze()
        print(f"worker: {len(sys.modules)} modules imported in {time.monotonic() - started:.1f} s; pid {os.getpid()}",
              flush=True)

    # ----- the loop
    def serve(self) -> None:
        wake_read, wake_write = os.pipe()
        self._wake = (wake_read, wake_write)
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs, which forward it
        selector = self._selector = selectors.DefaultSelector()
        selector.register(self.listener, selectors.EVENT_READ, "accept")
        selector.register(wake_read, selectors.EVENT_READ, "signal")
        while not self.stopping:
            for key, _ in selector.select(timeout=1.0):
                if key.data == "accept":
                    self._accept()
                else:
                    try:
                        while os.read(wake_read, 512):
                            pass
                    except BlockingIOError:
                        pass
            self._reap()
            if not jobcontrol.alive(self.parent, self.parent_started):
                print("worker: the workflow process is gone; stopping", flush=True)
                break
        if self.template:
            return  # the workers it forked serve their own workflows, and end with them
        # Running forks stop by themselves when their job processes go (each watches its
        # connection and the workflow process, and logs why it stops); the stragglers get SIGTERM.
        for grace, signum in ((10.0, signal.SIGTERM), (5.0, signal.SIGKILL)):
            deadline = time.monotonic() + grace
            while self.children and time.monotonic() < deadline:
                time.sleep(0.05)
                self._reap()
            for pid in list(self.children):
                _kill(pid, signum)

    def _stop(self, *_: Any) -> None:
        self.stopping = True

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            code = os.waitstatus_to_exitcode(status)
            what = "forked worker" if self.template else "job"
            print(f"worker: {what} pid {pid} exited with {code}: {usage.ru_utime + usage.ru_stime:.1f} s CPU, "
                  f"peak resident memory {usage.ru_maxrss / 1024:.0f} MiB", flush=True)
            if conn is not None:
                try:
                    conn.send(json.dumps({"status": code}).encode())
                except OSError:
                    pass  # the job process is gone
                conn.close()

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        fds: list[int] = []
        try:
            conn.settimeout(10)
            data, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE, 3)
            conn.settimeout(None)  # the fork's watch blocks on it for the job's whole life
            request = json.loads(data)
            if "spawn" in request:
                self._spawn(conn, request["spawn"], fds)
                return
            refusal = self.refusal(request, fds)
            if refusal:
                self._refuse(conn, str(request.get("script")), refusal)
                return
            pid = self._fork()
            if pid == 0:
                self._child(conn, fds, request)  # never returns
            self.children[pid] = conn
            conn.send(json.dumps({"pid": pid}).encode())
            print(f"worker: job pid {pid}: {request['script']}", flush=True)
        except (OSError, ValueError) as error:
            print(f"worker: a request failed: {error}", flush=True)
            conn.close()
        finally:
            for fd in fds:
                os.close(fd)

    def refusal(self, request: dict[str, Any], fds: list[int]) -> str:
        """Why this worker cannot run ``request`` as a fresh process would ("" when it can)."""
        if self.template:
            return "this is a template worker: it forks a worker for each workflow run, and runs no job"
        if len(fds) != 3:
            return "the job did not pass its standard input, output and error"
        return self._differences(request, "job")

    def _differences(self, request: dict[str, Any], what: str) -> str:
        """How a job's (or a run's) Python, library and environment differ from this process's imports."""
        if request.get("identity") != self.identity:
            mine, theirs = self.identity, request.get("identity") or {}
            which = [k for k in mine if mine[k] != theirs.get(k)]
            return f"another {' and '.join(which) or f'{what} format'} than the worker's"
        changed = _changed(self.sources, _library_sources())
        if changed:
            return f"the xstilts library changed since the worker imported it ({changed})"
        env = self._comparable(request.get("env") or {})
        differ = sorted(k for k in set(env) | set(self.env) if env.get(k) != self.env.get(k))
        if differ:
            return f"the {what}'s environment differs from the worker's in {', '.join(differ[:8])}"
        return ""

    @staticmethod
    def _refuse(conn: socket.socket, what: str, refusal: str) -> None:
        print(f"worker: refused {what}: {refusal}", flush=True)
        conn.send(json.dumps({"refused": refusal}).encode())
        conn.close()

    @staticmethod
    def _fork() -> int:
        """``os.fork`` with this process's output flushed first (the child would write it again)."""
        sys.stdout.flush()
        sys.stderr.flush()
        return os.fork()

    def _comparable(self, env: Any) -> dict[str, str]:
        return {k: v for k, v in dict(env).items() if k not in PER_JOB_ENV and k not in self.ignored}

    # ----- a template's side
    def _spawn(self, conn: socket.socket, spawn: dict[str, Any], fds: list[int]) -> None:
        """Fork a worker for the workflow run that asks (``spawn``), answer its pid."""
        if not self.template:
            refusal = "this worker serves one workflow run; only a template forks workers"
        elif fds:
            refusal = "a request for a worker passes no file descriptors"
        else:
            refusal = self._differences(spawn, "run")
        workflow = int(spawn.get("workflow", 0))
        started = jobcontrol.start_time(workflow) if workflow > 1 else None
        if not refusal and started is None:
            refusal = f"the workflow process {workflow} is gone"
        if refusal:
            self._refuse(conn, f"a worker for the workflow process {workflow}", refusal)
            return
        pid = self._fork()
        if pid == 0:
            conn.close()
            self._become_worker(spawn["socket"], spawn["log"], workflow, started)  # never returns
        self.children[pid] = None
        conn.send(json.dumps({"pid": pid}).encode())
        conn.close()
        print(f"worker: forked worker pid {pid} for the workflow process {workflow} (log {spawn['log']})", flush=True)

    def _become_worker(self, socket_path: str, log_file: str, workflow: int, started: int) -> None:
        """In a template's fork: become the worker of one workflow run, serve it, exit."""
        code = 0
        try:
            os.setsid()
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM):
                signal.signal(signum, signal.SIG_DFL)
            self.listener.close()
            if self._selector is not None:
                self._selector.close()
            for fd in self._wake:
                os.close(fd)
            self.children = {}  # the template's other workers are not this one's
            out = os.open(log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            null = os.open(os.devnull, os.O_RDONLY)
            for fd, target in ((null, 0), (out, 1), (out, 2)):
                os.dup2(fd, target)
            os.close(out)
            os.close(null)
            template = os.getppid()
            self.template = False
            self.parent, self.parent_started = workflow, started
            self.listener = _listen(socket_path)
            print(f"worker: forked from the template worker (pid {template}), its {len(sys.modules)} modules "
                  f"imported; pid {os.getpid()}", flush=True)
            self.serve()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)

    def _child(self, conn: socket.socket, fds: list[int], request: dict[str, Any]) -> None:
        """In the fork: become the job process, run its script, exit with its status."""
        global IN_WORKER
        code = 1
        try:
            IN_WORKER = True
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                signal.signal(signum, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            self.listener.close()
            for other in self.children.values():
                other.close()
            for target, fd in enumerate(fds):
                os.dup2(fd, target)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            tempfile.tempdir = None  # the job's TMPDIR
            sys.argv = list(request["argv"])
            jobcontrol.watch_workflow(self.parent, self.parent_started)
            _watch_job(conn)
            code = _run_script(request["script"])
        except BaseException:
            traceback.print_exc()
        finally:
            try:
                logging.shutdown()  # flush the job's log: os._exit skips the interpreter's exit
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)


def _run_script(script: str) -> int:
    """Run a rule script as ``python script`` would: its SystemExit's code, 1 for an exception."""
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as stop:
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    except BaseException:
        traceback.print_exc()
        return 1
    return 0


def _watch_job(conn: socket.socket) -> None:
    """End this fork when its job process is gone (its end of the connection closes)."""

    def watch() -> None:
        try:
            while conn.recv(64):
                pass
        except OSError:
            pass
        logging.getLogger("xstilts").error(
            "the job process that handed this job to the worker is gone; stopping (the last checkpoint is kept)")
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(PARENT_GONE_EXIT)  # as a job whose workflow process is gone (jobcontrol.watch_parent)

    threading.Thread(target=watch, name="xstilts-job-watch", daemon=True).start()


def _listen(socket_path: str) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(socket_path)
    listener.listen(128)
    return listener


def _library_sources() -> dict[str, tuple[int, int]]:
    import xstilts

    root = Path(xstilts.__file__).parent
    out = {}
    for path in sorted(root.rglob("*")):
        if path.suffix in (".py", ".yaml") and "__pycache__" not in path.parts:
            stat = path.stat()
            out[str(path.relative_to(root))] = (stat.st_mtime_ns, stat.st_size)
    return out


def _changed(before: dict[str, tuple[int, int]], now: dict[str, tuple[int, int]]) -> str:
    names = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
    return ", ".join(names[:3]) + (" ..." if len(names) > 3 else "")


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


def main(argv: list[str]) -> int:
    """``SOCKET PARENT_PID [--template [--ignore-env NAME,...]]`` as started by ``start`` and
    ``start_template``."""
    socket_path, parent, flags = argv[0], int(argv[1]), argv[2:]
    ignored = tuple(flags[flags.index("--ignore-env") + 1].split(",")) if "--ignore-env" in flags else ()
    server = Server(socket_path, parent, template="--template" in flags, ignored=ignored)
    server.preload()
    server.serve()
    return 0
