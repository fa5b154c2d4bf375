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

from xstilts.jobcontrol import PARENT_GONE_EXIT

log = logging.getLogger(__name__)

#: The worker's socket path, set in the workflow process's environment for its jobs.
SOCKET_ENV = "XSTILTS_WORKER"
#: Set to 1 to run every job in a process of its own.
DISABLE_ENV = "XSTILTS_NO_WORKER"

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
                         "TRANSFORMERS_OFFLINE", SOCKET_ENV})

#: The thread-count variables Snakemake sets for a job (snakemake.shell); the worker is started
#: with them at 1, the thread count of every xstilts rule.
THREAD_ENV = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")

#: Seconds a job waits for the worker's answer before it runs in its own process instead.
ANSWER_TIMEOUT = 300.0

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


def identity() -> dict[str, str]:
    """What a job and the worker must share: the Python and the library's folder."""
    import xstilts

    return {"python": os.path.realpath(sys.executable), "version": sys.version,
            "library": os.path.realpath(os.path.dirname(xstilts.__file__))}


# --------------------------------------------------------------------------------------------
# Starting and stopping (the workflow process)


class Handle:
    """A started worker: its process, its socket and its folder (``stop`` removes them), its log."""

    def __init__(self, process: subprocess.Popen, folder: str, socket_path: str, log_file: str | Path):
        self.process, self.folder, self.socket_path, self.log_file = process, folder, socket_path, log_file

    def stop(self, timeout: float = 20.0) -> None:
        """End the worker (forks still running after 10 s get SIGTERM) and remove its socket folder."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)
        if os.environ.get(SOCKET_ENV) == self.socket_path:
            del os.environ[SOCKET_ENV]


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
    Its log (imports, each job's pid and status, refusals) goes to ``log_file``.
    """
    folder = tempfile.mkdtemp(prefix="xstilts-worker-")  # mode 0700: only this user may connect
    socket_path = os.path.join(folder, "socket")
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from xstilts.worker import main; "
            "sys.exit(main(sys.argv[2:]))")
    env = dict(job_environment(1) if env is None else env)
    env.pop(SOCKET_ENV, None)
    with open(log_file, "a", encoding="utf-8") as out:
        process = subprocess.Popen([sys.executable, "-c", code, str(library_parent), socket_path, str(os.getpid())],
                                   stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                                   start_new_session=True, close_fds=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(socket_path):
        if process.poll() is not None or time.monotonic() > deadline:
            handle = Handle(process, folder, socket_path, log_file)
            handle.stop()
            raise RuntimeError(f"the xstilts worker did not start (see {log_file})")
        time.sleep(0.02)
    os.environ[SOCKET_ENV] = socket_path
    return Handle(process, folder, socket_path, log_file)


# --------------------------------------------------------------------------------------------
# The worker's side


class Server:
    """The worker process: imports, then forks one child per accepted job (see the module docstring)."""

    def __init__(self, socket_path: str, parent: int):
        self.parent = parent
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.listener.bind(socket_path)
        self.listener.listen(128)
        self.children: dict[int, socket.socket] = {}
        self.stopping = False
        self.env: dict[str, str] = {}
        self.identity: dict[str, str] = {}
        self.sources: dict[str, tuple[int, int]] = {}

    # ----- setup
    def preload(self) -> None:
        """Import what jobs import; remember the environment and the library files as imported."""
        from xstilts.pipeline import offline_mode

        self.env = _comparable(os.environ)
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
        os.set_blocking(wake_read, False)
        os.set_blocking(wake_write, False)
        signal.set_wakeup_fd(wake_write)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the jobs, which forward it
        selector = selectors.DefaultSelector()
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
            if os.getppid() != self.parent:
                print("worker: the workflow process is gone; stopping", flush=True)
                break
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
            print(f"worker: job pid {pid} exited with {code}: {usage.ru_utime + usage.ru_stime:.1f} s CPU, "
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
            refusal = self.refusal(request, fds)
            if refusal:
                print(f"worker: refused {request.get('script')}: {refusal}", flush=True)
                conn.send(json.dumps({"refused": refusal}).encode())
                conn.close()
                return
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
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
        if len(fds) != 3:
            return "the job did not pass its standard input, output and error"
        if request.get("identity") != self.identity:
            mine, theirs = self.identity, request.get("identity") or {}
            which = [k for k in mine if mine[k] != theirs.get(k)]
            return f"another {' and '.join(which) or 'job format'} than the worker's"
        changed = _changed(self.sources, _library_sources())
        if changed:
            return f"the xstilts library changed since the worker imported it ({changed})"
        env = _comparable(request.get("env") or {})
        differ = sorted(k for k in set(env) | set(self.env) if env.get(k) != self.env.get(k))
        if differ:
            return f"the job's environment differs from the worker's in {', '.join(differ[:8])}"
        return ""

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


def _comparable(env: Any) -> dict[str, str]:
    return {k: v for k, v in dict(env).items() if k not in PER_JOB_ENV}


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
    """``serve SOCKET PARENT_PID`` as started by ``start``."""
    socket_path, parent = argv[0], int(argv[1])
    server = Server(socket_path, parent)
    server.preload()
    server.serve()
    return 0
