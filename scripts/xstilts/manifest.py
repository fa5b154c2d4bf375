"""Manifests: what a finished job wrote, so that the jobs reading it can check they read exactly that.

Every rule job writes, once its outputs are complete, one manifest per output beside it: the
hidden file ``.<name>.manifest.json`` in the output's parent folder (a sibling, not a member, so
a model or data folder holds only what its readers expect). It records, for every file of the
output, its size and sha256, and for text files the line count (for the canonical JSONL data
files, one example a line, that is the example count), plus the rule and the job that wrote it.

Every rule job checks each of its inputs against its manifest before reading it (``verify``);
``xstilts verify`` checks a whole results tree. A mismatch is reported with the damaged path and
the command that rebuilds it. Snakemake's own bookkeeping file inside directory outputs
(``.snakemake_timestamp``), manifests and job locks are not part of any output.

Why not Snakemake's own checksums: Snakemake records them only in its metadata (``.snakemake/``,
lost on a copy to another machine or after ``--drop-metadata``) and never checks an input's
content before a job reads it.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator

SUFFIX = ".manifest.json"
LOCK_SUFFIX = ".lock"
#: Snakemake's mtime carrier inside directory outputs; it changes after the job, so it is not content.
SNAKEMAKE_FILES = frozenset({".snakemake_timestamp"})
#: Files whose line count is recorded (the canonical data files are JSONL, one example a line).
TEXT_SUFFIXES = frozenset({".jsonl", ".tsv", ".txt", ".json", ".tex", ".csv", ".conllu", ".md"})
CHUNK = 1 << 20
VERSION = 1


class DamagedError(RuntimeError):
    """An input does not match the manifest of the job that wrote it (or has none)."""


@dataclass(frozen=True)
class Problem:
    """One damaged (or unverifiable) output: the path, what is wrong, the rule that rebuilds it."""

    output: Path
    what: str
    rule: str | None

    def message(self) -> str:
        rebuild = f"rule {self.rule} rebuilds it" if self.rule else "the rule that wrote it rebuilds it"
        return (f"{self.output}: {self.what}; {rebuild}: run `snakemake --forcerun {self.output}` (with your usual "
                f"options), or delete {self.output} and run snakemake again")


def manifest_path(output: str | os.PathLike) -> Path:
    """The manifest of an output file or folder: ``.<name>.manifest.json`` beside it."""
    output = Path(output)
    return output.parent / f".{output.name}{SUFFIX}"


def lock_path(output: str | os.PathLike) -> Path:
    """The job lock of the job writing ``output``: ``.<name>.lock`` beside it."""
    output = Path(output)
    return output.parent / f".{output.name}{LOCK_SUFFIX}"


def _bookkeeping(name: str) -> bool:
    return name in SNAKEMAKE_FILES or (name.startswith(".") and name.endswith((SUFFIX, LOCK_SUFFIX)))


def _members(output: Path) -> list[tuple[str, Path]]:
    if output.is_dir():
        found = []
        for dirpath, dirnames, filenames in os.walk(output):
            dirnames.sort()
            for name in sorted(filenames):
                if not _bookkeeping(name):
                    path = Path(dirpath) / name
                    found.append((path.relative_to(output).as_posix(), path))
        return found
    return [(output.name, output)]


def describe_file(path: Path) -> dict[str, Any]:
    """Size, sha256 and (text files) line count of one file, read once."""
    h = hashlib.sha256()
    lines = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
            lines += chunk.count(b"\n")
    entry: dict[str, Any] = {"size": path.stat().st_size, "sha256": h.hexdigest()}
    if path.suffix in TEXT_SUFFIXES:
        entry["examples" if path.suffix == ".jsonl" else "lines"] = lines
    _remember(path, entry["sha256"])
    return entry


def describe(output: str | os.PathLike) -> dict[str, dict[str, Any]]:
    """Every file of an output (a file, or a folder walked recursively) -> its description."""
    return {rel: describe_file(path) for rel, path in _members(Path(output))}


def job_digest(params: Any) -> str:
    """A stable digest of a job's parameters (to recognise the same job finished by another process)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def write(output: str | os.PathLike, rule: str, job: str | None = None) -> dict[str, Any]:
    """Write the manifest of a finished output (atomically: a torn manifest never exists)."""
    output = Path(output)
    record = {"manifest": VERSION, "rule": rule, "job": job, "kind": "directory" if output.is_dir() else "file",
              "files": describe(output)}
    path = manifest_path(output)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return record


def read(output: str | os.PathLike) -> dict[str, Any] | None:
    """The manifest of an output, or None when it has none; a damaged manifest is a DamagedError."""
    path = manifest_path(output)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
        if not isinstance(record.get("files"), dict):
            raise ValueError("no file list")
        return record
    except (ValueError, AttributeError) as e:
        raise DamagedError(Problem(Path(output), f"its manifest {path} is damaged ({e})", None).message()) from None


def check(output: str | os.PathLike, record: dict[str, Any] | None = None) -> list[Problem]:
    """What is wrong with an existing output compared with its manifest (empty: nothing)."""
    output = Path(output)
    record = read(output) if record is None else record
    if record is None:
        return [Problem(output, f"it has no manifest ({manifest_path(output).name}): it was not written by a "
                                "finished job of this xstilts version, or its manifest was deleted", None)]
    rule = record.get("rule")
    if not output.exists():
        return [Problem(output, "missing", rule)]
    expected: dict[str, dict[str, Any]] = record["files"]
    found = dict(_members(output))
    problems = []
    for rel in sorted(set(expected) - set(found)):
        problems.append(Problem(output, f"{rel} is missing", rule))
    for rel in sorted(set(found) - set(expected)):
        problems.append(Problem(output, f"{rel} is not one of the files its job wrote", rule))
    for rel in sorted(set(expected) & set(found)):
        want, path = expected[rel], found[rel]
        where = rel if output.is_dir() else output.name
        size = path.stat().st_size
        if size != want["size"]:
            problems.append(Problem(output, f"{where} has {size} bytes, its manifest says {want['size']} "
                                            f"({'truncated' if size < want['size'] else 'grown'}){_count(path, want)}",
                                    rule))
            continue
        got = describe_file(path)
        if got["sha256"] != want["sha256"]:
            problems.append(Problem(output, f"{where} does not match its manifest (sha256 {got['sha256'][:12]}…, "
                                            f"written as {want['sha256'][:12]}…): damaged or edited{_count(path, want, got)}",
                                    rule))
    return problems


def _count(path: Path, want: dict[str, Any], got: dict[str, Any] | None = None) -> str:
    key = "examples" if "examples" in want else "lines" if "lines" in want else None
    if key is None:
        return ""
    got = got or describe_file(path)
    if got.get(key) == want[key]:
        return ""
    return f"; {got.get(key)} {key}, {want[key]} written"


def verify(inputs: Iterable[str | os.PathLike]) -> None:
    """Check every input against its manifest before a job reads it; DamagedError names the first damage."""
    for path in inputs:
        problems = check(path)
        if problems:
            raise DamagedError(problems[0].message())


def complete(output: str | os.PathLike, job: str | None) -> bool:
    """Whether ``output`` is intact and was written by this same job (its manifest's job digest)."""
    try:
        record = read(output)
    except DamagedError:
        return False
    return record is not None and record.get("job") == job and not check(output, record)


def find(root: str | os.PathLike) -> Iterator[Path]:
    """Every output under ``root`` that has a manifest (the output path, which may be absent)."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.startswith(".") and name.endswith(SUFFIX):
                yield Path(dirpath) / name[1: -len(SUFFIX)]


# Files already hashed by this process (path -> (size, mtime_ns, sha256)), so that a job's
# provenance record reuses the digests of the input check instead of reading the files again.
_KNOWN: dict[str, tuple[int, int, str]] = {}


def _remember(path: Path, digest: str) -> None:
    st = path.stat()
    _KNOWN[str(path.resolve())] = (st.st_size, st.st_mtime_ns, digest)


def known_sha256(path: str | os.PathLike) -> str | None:
    """The sha256 of a file hashed earlier by this process, if it has not changed since."""
    key = str(Path(path).resolve())
    if key not in _KNOWN:
        return None
    st = Path(path).stat()
    size, mtime, digest = _KNOWN[key]
    return digest if (st.st_size, st.st_mtime_ns) == (size, mtime) else None
