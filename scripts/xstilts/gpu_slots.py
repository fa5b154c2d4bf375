"""GPU slots: each running GPU job of a local run gets GPUs of its own (``GpuSlots``).

Snakemake's ``--resources gpu=N`` only counts: it starts at most N GPU jobs at once, but does
not say which GPU each should use, and CUDA gives every process the first visible GPU. So a job
that asks for k GPUs takes k *slots* here, one per physical GPU, and sets
``CUDA_VISIBLE_DEVICES`` to them before anything starts CUDA; ``snakemake --cores all
--resources gpu=N`` on a machine with N GPUs then runs N GPU jobs, one per GPU.

A slot is an exclusive ``fcntl.flock`` on one lock file per GPU, named by the GPU's UUID (by its
index where no UUID is known), in a folder of this host and user (``lock_dir``). As with
``jobcontrol.JobLock`` (whose patterns this follows), the kernel releases a flock when the
process holding it dies, however it dies (``kill -9`` included), so no slot outlives its job
and no stale slot can exist; the files are never deleted (emptied on release), and the holder
writes its job, pid, host and start time into each, so that a job that finds every slot busy
can log whom it waits for. Slots are taken all at once or not at all: a job asking for two
GPUs never holds one while waiting for the other, so two such jobs cannot deadlock.

Which GPUs are candidates:

- ``CUDA_VISIBLE_DEVICES`` unset: every GPU the driver lists (``enumerate_gpus``), named in
  ``CUDA_VISIBLE_DEVICES`` by UUID, which CUDA accepts and which does not depend on
  ``CUDA_DEVICE_ORDER`` (``nvidia-smi`` numbers GPUs in PCI bus order, CUDA by default fastest
  first). A GPU without a known UUID is named by index, with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``.
- Set: only its entries, written back as they were given (indices, ``GPU-<uuid>`` or prefixes,
  ``MIG-<uuid>``). An index is matched to the GPU of that ``nvidia-smi`` index for its lock
  file, which is right when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or the GPUs are all of one model
  (CUDA then orders them by bus too); a MIG instance gets a slot of its own. Empty (or ``-1``):
  no GPU, nothing to do.
- No GPU listed (no NVIDIA driver, or ``nvidia-smi`` missing and no ``/proc/driver/nvidia``):
  nothing to do; the job runs on the CPU as it would anyway. This is also the case in a fork of
  the local worker (``xstilts.worker``), which only runs on machines without a GPU driver.
- Under SLURM (``SLURM_JOB_ID`` set) the scheduler has already given the job its GPUs (and
  usually hides the others), so nothing is taken; the job's ``CUDA_VISIBLE_DEVICES`` is logged.
  Taking slots there would even be wrong: two jobs on one node, each shown its own GPU as
  index 0 by the cgroup, could not tell their GPUs apart without UUIDs.

When CUDA reads the variable: CUDA reads ``CUDA_VISIBLE_DEVICES`` once, when the driver starts
in a process (``cuInit``). PyTorch starts it lazily, at the first call that needs a device
(``torch.cuda.is_available()`` included, unless NVML answers it), never at ``import torch``:
"It is lazily initialized, so you can always import it" (``torch.cuda``'s docstring). A rule
job imports only ``xstilts.pipeline`` (light by design) before ``pipeline.run_rule`` takes its
slots, so nothing has touched CUDA yet; ``cuda_started`` checks this and a warning says so if
some code ever does it earlier (its device choice would then stand, whatever the slot says).

AMD GPUs: not handled. ROCm builds of PyTorch read ``HIP_VISIBLE_DEVICES`` (and
``CUDA_VISIBLE_DEVICES``); supporting them means listing them in ``enumerate_gpus`` (from
``rocm-smi --showuniqueid``, say) and setting ``HIP_VISIBLE_DEVICES``: that one function is
where GPUs are found. Today a machine with AMD GPUs only lists none, and its jobs share the
first GPU as before.

Tested with fake GPU lists only: no GPU was at hand when this was written.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, MutableMapping

try:
    import fcntl
except ImportError:  # not POSIX: no slots (see GpuSlots.acquire)
    fcntl = None  # type: ignore[assignment]

from xstilts.jobcontrol import read_holder

log = logging.getLogger(__name__)

#: The variable CUDA reads to choose the devices a process sees.
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
#: How CUDA numbers devices; set to PCI_BUS_ID when a job is given bare indices (no UUID known).
ORDER_ENV = "CUDA_DEVICE_ORDER"
#: Set to put the lock files elsewhere than ``/tmp/xstilts-gpu-<uid>`` (a folder of this host).
LOCK_DIR_ENV = "XSTILTS_GPU_LOCK_DIR"
#: Set by SLURM in every job: the scheduler assigns GPUs, slots are not taken.
SLURM_ENV = "SLURM_JOB_ID"

NVIDIA_PROC = Path("/proc/driver/nvidia/gpus")
SELF_MAPS = Path("/proc/self/maps")


class GpuSlotError(RuntimeError):
    """A job cannot get the GPUs it asks for (more than are visible, or it waited past its timeout)."""


@dataclass(frozen=True)
class Gpu:
    """One physical GPU: its ``nvidia-smi`` index (PCI bus order) and UUID ("" if unknown)."""

    index: int
    uuid: str = ""


@dataclass(frozen=True)
class Slot:
    """A device a job may take: ``entry`` names it in ``CUDA_VISIBLE_DEVICES``, ``key`` names its lock file."""

    entry: str
    key: str


def enumerate_gpus(run: Callable[..., Any] = subprocess.run, proc_dir: Path = NVIDIA_PROC) -> list[Gpu]:
    """The GPUs of this machine, in ``nvidia-smi`` index order; [] when there are none.

    Asks ``nvidia-smi --query-gpu=index,uuid`` (it talks to the driver through NVML and does not
    start CUDA in this process); without ``nvidia-smi`` (some containers), reads the driver's
    ``/proc/driver/nvidia/gpus/<PCI bus id>/information``, numbering GPUs in bus order as
    ``nvidia-smi`` does. The one place where GPUs are found: another vendor's would be added here.
    """
    if shutil.which("nvidia-smi"):
        try:
            done = run(["nvidia-smi", "--query-gpu=index,uuid", "--format=csv,noheader"],
                       capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as error:
            log.warning("nvidia-smi failed (%s): looking for GPUs in %s instead", error, proc_dir)
        else:
            if done.returncode == 0:
                return parse_nvidia_smi(done.stdout)
            log.warning("nvidia-smi failed (exit status %s: %s): looking for GPUs in %s instead",
                        done.returncode, done.stderr.strip()[:200], proc_dir)
    return _gpus_from_proc(proc_dir)


def parse_nvidia_smi(text: str) -> list[Gpu]:
    """GPUs from ``nvidia-smi --query-gpu=index,uuid --format=csv,noheader`` output."""
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0].isdigit():
            gpus.append(Gpu(int(parts[0]), parts[1]))
    return sorted(gpus, key=lambda g: g.index)


def _gpus_from_proc(proc_dir: Path) -> list[Gpu]:
    try:
        folders = sorted(p for p in proc_dir.iterdir() if p.is_dir())
    except OSError:
        return []
    gpus = []
    for index, folder in enumerate(folders):  # named by PCI bus id: sorted is bus order
        try:
            info = (folder / "information").read_text(encoding="utf-8", errors="replace")
        except OSError:
            info = ""
        match = re.search(r"^GPU UUID:\s*(\S+)", info, re.MULTILINE)
        gpus.append(Gpu(index, match.group(1) if match else ""))
    return gpus


def candidate_slots(gpus: list[Gpu], visible: str | None) -> list[Slot]:
    """The devices a job may take, given the machine's GPUs and ``CUDA_VISIBLE_DEVICES`` (None: unset).

    See the module docstring. CUDA stops reading the variable at its first invalid entry; so
    does this (an entry naming no listed GPU, not a MIG instance, counts as invalid).
    """
    if not gpus:
        return []
    if visible is None:
        return [Slot(g.uuid, g.uuid) if g.uuid else Slot(str(g.index), f"index{g.index}") for g in gpus]
    slots: list[Slot] = []
    for entry in (e.strip() for e in visible.split(",")):
        gpu = _match(entry, gpus)
        if gpu is not None:
            slot = Slot(entry, gpu.uuid or f"index{gpu.index}")
        elif entry.startswith("MIG-") and len(entry) > 4:
            slot = Slot(entry, entry)
        else:
            break
        if slot.key not in {s.key for s in slots}:
            slots.append(slot)
    return slots


def _match(entry: str, gpus: list[Gpu]) -> Gpu | None:
    if entry.isdigit():
        return next((g for g in gpus if g.index == int(entry)), None)
    if entry.startswith("GPU-") and len(entry) > 4:  # CUDA accepts a unique UUID prefix
        found = [g for g in gpus if g.uuid.startswith(entry)]
        return found[0] if len(found) == 1 else None
    return None


def default_lock_dir(environ: MutableMapping[str, str] | None = None) -> tuple[Path, bool]:
    """(the folder of the lock files, whether it is the per-user default).

    ``/tmp/xstilts-gpu-<uid>`` unless ``XSTILTS_GPU_LOCK_DIR`` says otherwise. Not ``$TMPDIR``
    (Snakemake sets it per job) nor ``$XDG_RUNTIME_DIR`` (absent under cron, sudo or a plain
    ssh command, and removed at logout): every job of every run of this user on this host must
    find the same folder.
    """
    environ = os.environ if environ is None else environ
    if environ.get(LOCK_DIR_ENV):
        return Path(environ[LOCK_DIR_ENV]), False
    return Path("/tmp") / f"xstilts-gpu-{os.getuid()}", True


def cuda_started(maps: Path = SELF_MAPS) -> bool:
    """Whether this process may already have started CUDA (then ``CUDA_VISIBLE_DEVICES`` is read).

    True when PyTorch has initialised CUDA, or when the CUDA driver library is loaded at all
    (``torch.cuda.is_available()`` loads and starts it without PyTorch counting that as
    initialisation).
    """
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and getattr(cuda, "is_initialized", lambda: False)():
        return True
    try:
        return "libcuda.so" in maps.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


class GpuSlots:
    """``count`` GPUs of this machine for this process, held for the duration of a ``with`` block.

    ``with GpuSlots(1, what="finetune_target results/.../model"):`` finds the candidate devices
    (``candidate_slots``; ``gpus`` overrides ``enumerate_gpus``, for tests), takes ``count`` free
    ones, writes the holder's job, pid, host, start time and command line into their lock files,
    sets ``CUDA_VISIBLE_DEVICES`` in ``environ`` (default ``os.environ``) to them, and on exit
    releases them and restores the variable. When fewer than ``count`` are free it holds none,
    logs whom it waits for (once, then every ``log_every`` seconds) and tries again every
    ``poll`` seconds (jittered, so that two jobs colliding on several slots do not retry in step)
    until it has them or ``timeout`` seconds have passed (None: no limit; then ``GpuSlotError``).

    Does nothing (``devices`` stays []) for ``count`` 0, under SLURM, and when no GPU is listed;
    see the module docstring. Asking for more GPUs than there are candidates is a
    ``GpuSlotError`` at once: waiting could not help.
    """

    def __init__(self, count: int, what: str = "", gpus: list[Gpu] | None = None,
                 environ: MutableMapping[str, str] | None = None, lock_dir: str | Path | None = None,
                 poll: float = 2.0, timeout: float | None = None, log: logging.Logger | None = None,
                 log_every: float = 60.0):
        self.count = int(count)
        self.what = what or "this job"
        self.gpus = gpus
        self.environ = os.environ if environ is None else environ
        self.lock_dir = Path(lock_dir) if lock_dir is not None else None
        self.poll = poll
        self.timeout = timeout
        self.log = log or logging.getLogger(__name__)
        self.log_every = log_every
        #: The ``CUDA_VISIBLE_DEVICES`` entries this job holds.
        self.devices: list[str] = []
        self._held: list[tuple[Slot, int]] = []
        self._saved: dict[str, str | None] = {}

    def __enter__(self) -> "GpuSlots":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the slots (waiting as configured) and set ``CUDA_VISIBLE_DEVICES``; see the class docstring."""
        if self.count <= 0:
            return
        visible = self.environ.get(VISIBLE_ENV)
        if self.environ.get(SLURM_ENV):
            self.log.info("SLURM job %s: SLURM assigned this job's GPUs (%s=%s); no GPU slot taken",
                          self.environ[SLURM_ENV], VISIBLE_ENV, visible if visible is not None else "unset")
            return
        if fcntl is None:
            self.log.warning("no fcntl on this system: %s takes no GPU slot and uses the first visible GPU", self.what)
            return
        slots = candidate_slots(enumerate_gpus() if self.gpus is None else self.gpus, visible)
        if not slots:
            self.log.info("no GPU visible (%s=%s): %s runs on the CPU", VISIBLE_ENV,
                          visible if visible is not None else "unset", self.what)
            return
        if self.count > len(slots):
            raise GpuSlotError(f"{self.what} asks for {self.count} GPUs but this machine shows it {len(slots)} "
                               f"({', '.join(s.entry for s in slots)}; {VISIBLE_ENV}="
                               f"{visible if visible is not None else 'unset'}). Lower the rule's gpu resource or "
                               f"run it where there are more GPUs.")
        if cuda_started():
            self.log.warning("CUDA started in this process before %s took its GPU slot: %s=%s set now does not "
                             "change the device it uses", self.what, VISIBLE_ENV, visible)
        folder = self._folder()
        self._wait_for(slots, folder)
        self.devices = [slot.entry for slot, _ in self._held]
        self._saved = {name: self.environ.get(name) for name in (VISIBLE_ENV, ORDER_ENV)}
        self.environ[VISIBLE_ENV] = ",".join(self.devices)
        if visible is None and any(d.isdigit() for d in self.devices):
            self.environ[ORDER_ENV] = "PCI_BUS_ID"  # our indices are nvidia-smi's: PCI bus order
        self.log.info("%s runs on GPU %s (%s=%s); lock files %s", self.what, ", ".join(self.devices), VISIBLE_ENV,
                      self.environ[VISIBLE_ENV], ", ".join(str(self._path(folder, s)) for s, _ in self._held))

    def _folder(self) -> Path:
        folder, default = (self.lock_dir, False) if self.lock_dir is not None else default_lock_dir(self.environ)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        owner = folder.stat().st_uid
        if default and owner != os.getuid():
            raise GpuSlotError(f"the GPU lock folder {folder} belongs to another user (uid {owner}), so its slots "
                               f"cannot be trusted; remove it, or set {LOCK_DIR_ENV} to a folder of yours on this host")
        return folder

    @staticmethod
    def _path(folder: Path, slot: Slot) -> Path:
        return folder / (re.sub(r"[^A-Za-z0-9._-]", "_", slot.key) + ".lock")

    def _wait_for(self, slots: list[Slot], folder: Path) -> None:
        start = time.monotonic()
        last_log = None
        while not self._take(slots, folder):
            waited = time.monotonic() - start
            if self.timeout is not None and waited >= self.timeout:
                raise GpuSlotError(f"{self.what}: no {self.count} free GPU(s) after waiting {waited:.0f} s; "
                                   f"held: {self._holders(slots, folder)}. Lock files in {folder}.")
            if last_log is None or time.monotonic() - last_log >= self.log_every:
                self.log.info("%s waits for %d free GPU(s); held: %s", self.what, self.count,
                              self._holders(slots, folder))
                last_log = time.monotonic()
            delay = self.poll * random.uniform(0.5, 1.5)
            if self.timeout is not None:
                delay = min(delay, max(0.0, self.timeout - waited))
            time.sleep(delay)

    def _holders(self, slots: list[Slot], folder: Path) -> str:
        return "; ".join(f"{s.entry} by {_describe(read_holder(self._path(folder, s)))}" for s in slots)

    def _take(self, slots: list[Slot], folder: Path) -> bool:
        """Lock ``count`` free slots, lowest first, and write the holder record; hold none if that fails."""
        try:
            for slot in slots:
                fd = self._try_lock(self._path(folder, slot))
                if fd is not None:
                    self._held.append((slot, fd))
                    if len(self._held) == self.count:
                        break
        except BaseException:
            self._unlock_all()
            raise
        if len(self._held) < self.count:
            self._unlock_all()
            return False
        started = datetime.now().astimezone().isoformat(timespec="seconds")
        for slot, fd in self._held:
            record = {"pid": os.getpid(), "host": socket.gethostname(), "started": started, "argv": sys.argv,
                      "job": self.what, "device": slot.entry}
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
        return True

    @staticmethod
    def _try_lock(path: Path) -> int | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as error:
            os.close(fd)
            raise GpuSlotError(f"cannot lock {path} ({error.strerror}): GPU slots need a local file system with "
                               f"flock; set {LOCK_DIR_ENV} to a folder on one") from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # the file was removed (a /tmp cleaner) between open and lock: a new one may be held
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            return None
        return fd

    def _unlock_all(self) -> None:
        for _, fd in self._held:
            try:
                os.ftruncate(fd, 0)  # while still held, so no new holder's record is erased
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
        self._held = []

    def release(self) -> None:
        """Release the slots and restore ``CUDA_VISIBLE_DEVICES`` (the files stay, as in ``JobLock``)."""
        if not self._held:
            return
        self._unlock_all()
        for name, value in self._saved.items():
            if value is None:
                self.environ.pop(name, None)
            else:
                self.environ[name] = value
        self.devices = []


def _describe(holder: dict[str, Any] | None) -> str:
    if holder is None:
        return "nobody (free now, or its holder has not written its details yet)"
    return f"{holder.get('job')} (pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('started')})"
