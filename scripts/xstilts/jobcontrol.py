"""Job control for long jobs: one process per job (``JobLock``), and no job outliving its workflow
(``watch_parent``).

Both guard the same failure: a workflow process is killed (``kill -9``, a lost SSH session, an
out-of-memory kill) while a training job it started keeps running, and a rerun starts the same job
again, so that two processes write one checkpoint folder. The lock makes the second one wait (or
fail with a message naming the first); the parent watch stops the orphaned one, keeping its last
checkpoint, so the rerun resumes from it.

Linux first: the lock is ``fcntl.flock``, the watch reads ``/proc``. Elsewhere both degrade to
doing nothing, with a warning for the lock.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

try:
    import fcntl
except ImportError:  # not POSIX (Windows): JobLock warns and does not lock
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

#: Exit status of a job stopped because its workflow is gone (EX_TEMPFAIL: rerun it).
PARENT_GONE_EXIT = 75

#: Set to 1 to switch the parent watch off (see ``watch_parent``).
NO_PARENT_WATCH_ENV = "XSTILTS_NO_PARENT_WATCH"

PROC = Path("/proc")

# errno values of a file system that does not implement flock (Lustre without -o flock, some
# FUSE and SMB mounts); the lock is then skipped with a warning instead of failing every job.
_NO_LOCK_SUPPORT = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL}


class JobLockedError(RuntimeError):
    """Another process holds the lock of the same job (and we may not, or no longer, wait)."""


def read_holder(lock_path: str | Path) -> dict[str, Any] | None:
    """What the holder of a lock wrote into it (pid, host, started, argv); None if nothing readable.

    The file is empty between holders and while a new holder is writing, so None is normal.
    """
    try:
        text = Path(lock_path).read_text(encoding="utf-8")
        holder = json.loads(text)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "an unknown process (it has not written its details yet)"
    return f"pid {holder.get('pid')} on host {holder.get('host')} (started {holder.get('started')})"


class JobLock:
    """An exclusive lock of one job, held for the duration of a ``with`` block.

    ``with JobLock(lock_path, what="finetune_target results/.../model"):`` takes an exclusive
    ``fcntl.flock`` on ``lock_path`` (created, parent folders too) and writes the holder's pid,
    host, start time and command line into it, so that a second process running the same job
    can name the first. That second process, with ``wait=True``, logs whom it waits for (once,
    then every minute) and polls every ``poll`` seconds until the lock is free or ``timeout``
    seconds have passed (None: no limit), then raises ``JobLockedError``; with ``wait=False`` it
    raises at once.

    The kernel releases a flock when its holder dies, however it dies (``kill -9`` included),
    which is why this is a flock and not a pid file: a stale lock cannot exist. For the same
    reason the file is never deleted (another process may already hold a lock on it; deleting it
    would let a third process lock a new file of the same name); it is emptied on release.

    Lock files belong on the results file system, next to the job's checkpoints, so that every
    host that can write the job's outputs sees the same lock. On NFS, Linux emulates flock with
    POSIX byte-range locks held by the server's lock manager (NFSv4, or NFSv3 with lockd), which
    works across hosts; a mount with ``nolock`` or ``local_lock=flock`` only locks within one
    host. Where the file system has no flock at all (Lustre mounted without ``-o flock``, some
    FUSE/SMB mounts: ENOLCK, ENOSYS, EOPNOTSUPP), and on systems without ``fcntl``, the job runs
    without the lock and a warning says so: refusing to run would make the workflow unusable
    there, and the lock only guards against a second workflow running the same job at once.
    """

    def __init__(self, lock_path: str | Path, what: str = "", wait: bool = True, poll: float = 2.0,
                 timeout: float | None = None, log: logging.Logger | None = None, log_every: float = 60.0):
        self.path = Path(lock_path)
        self.what = what or str(self.path)
        self.wait = wait
        self.poll = poll
        self.timeout = timeout
        self.log = log or logging.getLogger(__name__)
        self.log_every = log_every
        self.locked = False
        self._fd: int | None = None

    def __enter__(self) -> "JobLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock (waiting as configured); see the class docstring."""
        if fcntl is None:
            self.log.warning("no fcntl on this system: running %s without a job lock", self.what)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not self._lock(fd):
                os.close(fd)
                return
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self.locked = True
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.now().astimezone().isoformat(timespec="seconds"), "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)

    def _lock(self, fd: int) -> bool:
        """True once locked; False where the file system has no flock (warned)."""
        start = time.monotonic()
        last_log = None
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                pass
            except OSError as error:
                if error.errno not in _NO_LOCK_SUPPORT:
                    raise
                self.log.warning("the file system of %s does not support flock (%s): running %s without a job "
                                 "lock, so nothing stops a second workflow from running the same job at once",
                                 self.path, error.strerror, self.what)
                return False
            holder = read_holder(self.path)
            waited = time.monotonic() - start
            if not self.wait or (self.timeout is not None and waited >= self.timeout):
                raise JobLockedError(self._locked_message(holder, waited))
            if last_log is None or time.monotonic() - last_log >= self.log_every:
                self.log.info("waiting for %s, which runs the same job %s; lock %s",
                              _describe(holder), self.what, self.path)
                last_log = time.monotonic()
            delay = self.poll if self.timeout is None else min(self.poll, max(0.0, self.timeout - waited))
            time.sleep(delay)

    def _locked_message(self, holder: dict[str, Any] | None, waited: float) -> str:
        waited_text = f" after waiting {waited:.0f} s" if self.wait else ""
        command = f"; its command: {' '.join(map(str, holder.get('argv', [])))}" if holder else ""
        where = f"kill {holder.get('pid')} on {holder.get('host')}" if holder else "stop it"
        return (f"{self.what}: the same job is already running{waited_text}: {_describe(holder)}{command}. "
                f"Lock file: {self.path}. Wait for that process to finish, or {where} if it should not run, "
                f"then rerun; its last checkpoint is kept and the rerun resumes from it.")

    def release(self) -> None:
        """Empty the lock file and release the lock (the file stays: see the class docstring)."""
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # while still held, so no new holder's record is erased
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            os.close(self._fd)
            self._fd = None
            self.locked = False


# --------------------------------------------------------------------------------------------
# The parent watch


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time in clock ticks, state) of a process from /proc/<pid>/stat; None if gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    fields = text[text.rindex(")") + 2 :].split()
    state, ppid, starttime = fields[0], int(fields[1]), int(fields[19])  # fields 3, 4 and 22
    return ppid, starttime, state


def start_time(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot): with the pid, it names one process
    for good, as pids are reused. None when there is no such living process."""
    stat = _stat(pid)
    return None if stat is None or stat[2] in ("Z", "X") else stat[1]


def alive(pid: int, started: int | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` (``start_time``) still runs."""
    return started is not None and start_time(pid) == started


#: The workflow process that a job forked by xstilts.worker serves, (pid, start time); set in
#: the fork by ``watch_workflow``.
_WORKFLOW: tuple[int, int | None] | None = None


def watch_workflow(pid: int, started: int | None) -> None:
    """In a fork of xstilts.worker: ``watch_parent`` also watches the workflow process ``pid``.

    A worker forked from a template is not a child of the workflow process it serves, so that
    process is not among its jobs' ancestors; it is watched by pid (and start time) instead."""
    global _WORKFLOW
    _WORKFLOW = (pid, started)


def _ancestors(pid: int, depth: int) -> list[tuple[int, int]]:
    """(pid, start time) of up to ``depth`` living ancestors of ``pid``, nearest first. The chain
    stops below init (pid 1, which never dies) and at the first ancestor that is gone or a zombie."""
    chain: list[tuple[int, int]] = []
    current = _stat(pid)
    while current is not None and len(chain) < depth and current[0] > 1:
        ppid = current[0]
        current = _stat(ppid)
        if current is None or current[2] in ("Z", "X"):
            break
        chain.append((ppid, current[1]))
    return chain


class ParentWatch(threading.Thread):
    """The daemon thread of ``watch_parent``; ``stop()`` ends the watch without firing."""

    def __init__(self, ancestors: list[tuple[int, int]], on_death: Callable[[int], Any], interval: float,
                 also: list[tuple[int, int | None]] = ()):
        super().__init__(name="xstilts-parent-watch", daemon=True)
        self.ancestors = ancestors
        self.also = list(also)  # (pid, start time) of processes watched that are not ancestors
        self.on_death = on_death
        self.interval = interval
        self._stopped = threading.Event()

    def stop(self) -> None:
        self._stopped.set()

    def run(self) -> None:
        while not self._stopped.wait(self.interval):
            gone = self.gone()
            if gone is not None:
                self.on_death(gone)
                return

    def gone(self) -> int | None:
        """The pid of the first recorded ancestor that is gone or no longer ours; None while all live."""
        now = _ancestors(os.getpid(), len(self.ancestors))
        for i, (pid, started) in enumerate(self.ancestors):
            if i >= len(now) or now[i] != (pid, started):
                return pid
        for pid, started in self.also:
            if not alive(pid, started):
                return pid
        return None


def _stop_job(pid: int) -> None:
    log.error("the workflow process (pid %d) that started this job is gone; stopping; the last checkpoint is "
              "kept and a rerun resumes from it", pid)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(PARENT_GONE_EXIT)


def watch_parent(on_death: Callable[[int], Any] | None = None, interval: float = 1.0,
                 depth: int = 2) -> ParentWatch | None:
    """Stop this job when the workflow process that started it dies; returns the watching thread.

    Snakemake runs a script job as ``snakemake -> /bin/bash -c ... -> python script.py``. When
    snakemake is killed, bash lives on and only its parent changes, so watching our own parent
    is not enough: the chain of ``depth`` ancestors (parent and grandparent, with their start
    times so that a reused pid is not mistaken for them) is recorded now, and every ``interval``
    seconds a daemon thread checks that each is still alive and still our ancestor (and, in a fork
    of xstilts.worker, that the workflow process set by ``watch_workflow`` is alive). When one is
    not, it calls ``on_death(pid of that process)``; the default logs an error and exits at
    once with status 75 (``PARENT_GONE_EXIT``; no cleanup, so the last checkpoint stays as it
    was written).

    Returns None (no watch) where /proc is unavailable (not Linux), where every ancestor is init,
    or when ``XSTILTS_NO_PARENT_WATCH=1`` is set. Set that to run a rule script by hand in the
    background (``nohup python scripts/x.py &``, then logging out): there its parent shell is
    meant to go away while the job goes on.
    """
    if os.environ.get(NO_PARENT_WATCH_ENV, "") not in ("", "0"):
        log.info("%s is set: this job does not stop when the process that started it dies", NO_PARENT_WATCH_ENV)
        return None
    ancestors = _ancestors(os.getpid(), depth)
    workflow = [_WORKFLOW] if _WORKFLOW is not None and _WORKFLOW not in ancestors else []
    if not ancestors and not workflow:
        return None
    watch = ParentWatch(ancestors, on_death or _stop_job, interval, also=workflow)
    watch.start()
    return watch
