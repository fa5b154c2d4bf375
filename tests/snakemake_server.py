"""A fork server for the test suite's Snakemake runs.

Why: ``python -m snakemake`` imports Snakemake, its plugin interfaces and the installed plugins
(the SLURM plugin pulls in pandas) before it reads a Snakefile: about 0.9 CPU-seconds, for each of
the 70-odd runs and dry runs the tests start in a process of their own. On the 2-core test machine
that is half a minute of the suite. The server (one per test process, ``tests/conftest.py``) does
those imports once; ``run`` then asks it for each run, and it forks a process that runs Snakemake's
``__main__`` as ``python -m snakemake ARGS`` would: the run's command line, working folder
(``sys.path[0]``, as ``-m`` sets it), environment and standard streams (the file descriptors
themselves, over the socket), its exit status reported back. The fork imports the Snakefile and
the xstilts library it loads itself (the server imports no xstilts), so a copy of the workflow
still runs its own copy of the library. What changes for a run: its parent process is the server,
not the test process.

``run`` returns what ``subprocess.run(cmd, capture_output=True, text=True)`` would, timeout
included, and runs ``python -m snakemake`` in a process of its own instead when no server runs in
this process or the server refuses the run, which it does when what the imports saw would differ:
another working folder than the server's (Snakemake notes the folder it is imported in, its "Run
directory"), or an environment that differs in a variable an import could read (any but the
pytest, Hugging Face and xstilts ones, which Snakemake's imports do not read). Runs that a test
kills or signals (tests/test_reliability.py's drills) and the SLURM test's background run start
processes of their own (``subprocess.Popen``).

Why hand-written: ``multiprocessing``'s forkserver serves only the process that started it, with
functions, not command lines; the same reason as ``xstilts.worker`` (whose server imports the
xstilts library, which a fork for a workflow copy must not inherit).
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Environment variables a run may set differently from the server: none is read by Snakemake's
#: imports (the Hugging Face switches are read when huggingface_hub is imported, which only the
#: jobs do; XSTILTS_* by the library, which the fork imports itself).
PER_RUN_PREFIXES = ("PYTEST_", "HF_", "XSTILTS_")
#: What ``python -m snakemake`` imports before it reads the Snakefile.
PRELOAD = ("snakemake.cli", "snakemake.api", "snakemake.workflow", "snakemake.scheduling.job_scheduler")
_MAX_MESSAGE = 4 * 1024 * 1024

#: This test process's server (``enable``; ``run`` starts it at its first call).
_SERVER: Server | None = None
_ENABLED: tuple[Path, Path, tuple[str, ...]] | None = None


# ---------------------------------------------------------------------------------------------
# The test side


class Server:
    """A server process (its socket and log in ``folder``), started in the working folder ``cwd``
    with this process's ``os.environ``; ready (listening) when the constructor returns. It serves
    runs whose environment differs from that in ``ignore_env`` and ``PER_RUN_PREFIXES`` only."""

    def __init__(self, folder: Path, cwd: Path, ignore_env: tuple[str, ...] = ()):
        folder.mkdir(parents=True, exist_ok=True)
        self.socket_path = str(folder / "snakemake.sock")
        self.log = folder / "snakemake-server.log"
        for stale in (self.socket_path, self.socket_path + ".new"):  # a server before this one, killed
            if os.path.exists(stale):
                os.unlink(stale)
        with open(self.log, "w") as log:
            # os.environ, not the inherited environment: a C library may have set variables in the
            # latter (ncurses sets LINES and COLUMNS) that the runs' environments do not have.
            self.process = subprocess.Popen([sys.executable, __file__, self.socket_path, str(os.getpid()),
                                             ",".join(ignore_env)], stdin=subprocess.DEVNULL, stdout=log,
                                            stderr=subprocess.STDOUT, cwd=cwd, env=dict(os.environ),
                                            start_new_session=True)
        deadline = time.monotonic() + 120
        while not os.path.exists(self.socket_path):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                raise RuntimeError(f"the Snakemake server did not start; its log: {self.log}")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def enable(folder: Path, cwd: Path, ignore_env: tuple[str, ...] = ()) -> None:
    """Let ``run`` start this process's server (``Server``, with these arguments) at its first
    call: a test process that runs no Snakemake pays nothing."""
    global _ENABLED
    _ENABLED = (folder, cwd, ignore_env)


def stop() -> None:
    global _SERVER, _ENABLED
    _ENABLED = None
    if _SERVER is not None:
        _SERVER.stop()
        _SERVER = None


def run(args: list[str], cwd: str | Path, env: dict[str, str], timeout: float | None = None,
        server: Server | None = None) -> subprocess.CompletedProcess:
    """``subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, env=env,
    capture_output=True, text=True, timeout=timeout)``, forked from ``server`` (default: this
    process's) when it can."""
    global _SERVER
    cmd = [sys.executable, "-m", "snakemake", *map(str, args)]
    if server is None:
        if _SERVER is None and _ENABLED is not None:
            _SERVER = Server(*_ENABLED)
        server = _SERVER
    forked = _run_forked(server, cmd, str(cwd), env, timeout) if server is not None else None
    if forked is not None:
        return forked
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _run_forked(server: Server, cmd: list[str], cwd: str, env: dict[str, str],
                timeout: float | None) -> subprocess.CompletedProcess | None:
    """The run forked from the server; None when the server refuses it."""
    deadline = None if timeout is None else time.monotonic() + timeout
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    stdin = os.open(os.devnull, os.O_RDONLY)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    try:
        sock.connect(server.socket_path)
        request = {"argv": cmd[2:], "cwd": os.path.abspath(cwd), "env": dict(env)}
        socket.send_fds(sock, [json.dumps(request).encode()], [stdin, out_w, err_w])
    except OSError as error:
        for fd in (out_r, err_r):
            os.close(fd)
        sock.close()
        raise RuntimeError(f"the Snakemake fork server does not answer ({error}); its log: {server.log}") from error
    finally:
        for fd in (stdin, out_w, err_w):
            os.close(fd)
    answer = _receive(sock)
    if answer is None or "pid" not in answer:
        for fd in (out_r, err_r):
            os.close(fd)
        sock.close()
        return None
    pid = int(answer["pid"])
    chunks: dict[int, list[bytes]] = {out_r: [], err_r: []}
    status: int | None = None
    with selectors.DefaultSelector() as selector:
        for fd in chunks:
            selector.register(fd, selectors.EVENT_READ)
        selector.register(sock, selectors.EVENT_READ)
        while len(selector.get_map()) > 0:
            wait = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = selector.select(wait)
            if not events and deadline is not None and time.monotonic() >= deadline:
                _kill(pid)
                output = _drain(selector, chunks, out_r, err_r)
                sock.close()
                raise subprocess.TimeoutExpired(cmd, timeout, output=_text(output[0]), stderr=_text(output[1]))
            for key, _ in events:
                if key.fileobj is sock:
                    message = _receive(sock)
                    if message is not None and "status" in message:
                        status = int(message["status"])
                    selector.unregister(sock)
                    continue
                _read(selector, key.fd, chunks)
    sock.close()
    if status is None:
        raise RuntimeError(f"the Snakemake server ended before run pid {pid} reported its exit status")
    return subprocess.CompletedProcess(cmd, status, _text(b"".join(chunks[out_r])), _text(b"".join(chunks[err_r])))


def _read(selector: selectors.BaseSelector, fd: int, chunks: dict[int, list[bytes]]) -> None:
    """One read of a run's pipe into ``chunks``; at the pipe's end, it is unregistered and closed."""
    data = os.read(fd, 65536)
    if data:
        chunks[fd].append(data)
    else:
        selector.unregister(fd)
        os.close(fd)


def _drain(selector: selectors.BaseSelector, chunks: dict[int, list[bytes]], out_r: int, err_r: int) -> tuple[bytes, bytes]:
    """What the killed run's pipes still hold (as subprocess.run reads after a timeout), briefly;
    the pipes still open are closed."""
    end = time.monotonic() + 5
    while any(fd in selector.get_map() for fd in chunks) and time.monotonic() < end:
        for key, _ in selector.select(0.5):
            if key.fd in chunks:
                _read(selector, key.fd, chunks)
    for fd in chunks:
        if fd in selector.get_map():
            selector.unregister(fd)
            os.close(fd)
    return b"".join(chunks[out_r]), b"".join(chunks[err_r])


def _text(data: bytes) -> str:
    """Bytes as ``text=True`` decodes them: the locale's encoding, universal newlines."""
    import locale

    return data.decode(locale.getpreferredencoding(False)).replace("\r\n", "\n").replace("\r", "\n")


def _receive(sock: socket.socket) -> dict[str, Any] | None:
    data = sock.recv(_MAX_MESSAGE)
    return json.loads(data) if data else None


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# ---------------------------------------------------------------------------------------------
# The server side


def serve(socket_path: str, parent: int, ignored: frozenset[str]) -> dict[str, Any] | None:
    """Import, then fork a process per request. Returns in a fork only: the request it is to run
    (``main`` runs it at the top level, so that Snakemake's exit is the interpreter's own)."""
    import gc
    import importlib

    for name in PRELOAD:
        importlib.import_module(name)
    from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry
    from snakemake_interface_logger_plugins.registry import LoggerPluginRegistry
    from snakemake_interface_report_plugins.registry import ReportPluginRegistry
    from snakemake_interface_storage_plugins.registry import StoragePluginRegistry

    for registry in (ExecutorPluginRegistry, StoragePluginRegistry, ReportPluginRegistry, LoggerPluginRegistry):
        registry()  # collects (imports) the installed plugins once
    def _comparable(env: dict[str, str]) -> dict[str, str]:
        return {k: v for k, v in env.items() if not k.startswith(PER_RUN_PREFIXES) and k not in ignored}

    env = _comparable(dict(os.environ))
    cwd = os.getcwd()
    gc.collect()
    gc.freeze()  # forks share the imported heap: the collector's passes would copy it into each

    listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    listener.bind(socket_path + ".new")
    listener.listen(64)
    os.rename(socket_path + ".new", socket_path)  # appears once it listens
    print(f"snakemake server: {len(sys.modules)} modules imported; pid {os.getpid()}", flush=True)
    wake_read, wake_write = os.pipe()
    for fd in (wake_read, wake_write):
        os.set_blocking(fd, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    runs: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    while not stopping and os.getppid() == parent:
        for key, _ in selector.select(timeout=1.0):
            if key.fileobj is not listener:
                try:
                    while os.read(wake_read, 512):
                        pass
                except BlockingIOError:
                    pass
                continue
            conn, _ = listener.accept()
            data, fds, _, _ = socket.recv_fds(conn, _MAX_MESSAGE, 3)
            request = json.loads(data)
            differ = sorted(k for k in set(env) | set(_comparable(request["env"]))
                            if env.get(k) != request["env"].get(k))
            why = ("no standard streams" if len(fds) != 3 else
                   f"another working folder ({request['cwd']}) than the server's" if request["cwd"] != cwd else
                   f"the environment differs in {', '.join(differ[:8])}" if differ else "")
            if why:
                print(f"snakemake server: refused a run: {why}", flush=True)
                conn.send(json.dumps({"refused": why}).encode())
                conn.close()
                for fd in fds:
                    os.close(fd)
                continue
            sys.stdout.flush()
            sys.stderr.flush()
            pid = os.fork()
            if pid == 0:
                selector.close()
                listener.close()
                for other in [*runs.values(), conn]:
                    other.close()
                signal.set_wakeup_fd(-1)
                os.close(wake_read)
                os.close(wake_write)
                for signum in (signal.SIGCHLD, signal.SIGTERM):
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                    os.close(fd)
                return request
            for fd in fds:
                os.close(fd)
            runs[pid] = conn
            conn.send(json.dumps({"pid": pid}).encode())
            print(f"snakemake server: run pid {pid}: {' '.join(request['argv'])}", flush=True)
        while runs:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = runs.pop(pid)
            try:
                conn.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
            except OSError:
                pass  # the test process is gone
            conn.close()
    listener.close()
    os.unlink(socket_path)
    return None


def main(argv: list[str]) -> None:
    request = serve(argv[0], int(argv[1]), frozenset(filter(None, argv[2].split(","))))
    if request is None:
        return
    # The fork: become `python -m snakemake ARGS` started in the request's folder.
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    tempfile.tempdir = None  # the run's TMPDIR
    sys.path[0] = request["cwd"]
    sys.argv = ["-m", *request["argv"][1:]]  # runpy puts the module's file first, as -m does
    import runpy

    runpy.run_module("snakemake", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
