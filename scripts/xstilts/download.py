"""Verified downloads: pinned URLs (sha256 + size) and pinned Hugging Face hub commits.

Only the download rules (Snakemake ``localrule``s) call this module; every other job runs with
the Hugging Face offline switches set and reads local files only.

Integrity. A file is streamed to ``<partial_dir>/<name>.part`` (outside the rule's output, so an
interrupted transfer resumes with an HTTP range request instead of starting over), then its size
and sha256 are checked against the pin, and only then is it moved into place. A short transfer
is resumed, a corrupted one (checksum mismatch) is discarded and fetched again from scratch; a
file that still does not match after the retries is an error, never used. Conversion jobs
re-check the sha256 of every raw file before reading it (``verify_file``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterable

log = logging.getLogger("xstilts.download")

USER_AGENT = "xstilts-download/0.1 (+https://github.com/)"
CHUNK = 1 << 20
COMMIT = re.compile(r"^[0-9a-f]{40}$")


class DownloadError(RuntimeError):
    """A download failed or did not verify; the message says which file and what to do."""


# --------------------------------------------------------------------------------------------
# Checksums


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def git_blob_sha1(path: str | os.PathLike) -> str:
    """The git object id of a file's content (how the hub identifies non-LFS files)."""
    size = os.path.getsize(path)
    h = hashlib.sha1(f"blob {size}\0".encode())
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def verify_file(path: str | os.PathLike, sha256: str | None, size: int | None = None) -> str:
    """Check a local file against its pin; return its sha256. Raises DownloadError."""
    path = Path(path)
    if not path.is_file():
        raise DownloadError(f"{path}: missing; it is written by rule download_source (run the workflow with network access)")
    if size is not None and path.stat().st_size != size:
        raise DownloadError(f"{path}: {path.stat().st_size} bytes, expected {size}: the file is truncated or "
                            f"not the pinned one; delete the folder {path.parent} and run the workflow again "
                            "(rule download_source fetches it anew)")
    digest = sha256_file(path)
    if sha256 is not None and digest != sha256:
        raise DownloadError(f"{path}: sha256 {digest} does not match the pin {sha256}: the file is corrupted or "
                            f"not the pinned one; delete the folder {path.parent} and run the workflow again "
                            "(rule download_source fetches it anew)")
    return digest


# --------------------------------------------------------------------------------------------
# URL downloads


def _open(url: str, offset: int, timeout: float) -> Any:
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _transfer(url: str, part: Path, timeout: float) -> None:
    """Append the rest of ``url`` to ``part`` (resuming with a range request when possible).

    Raises ``http.client.IncompleteRead`` / ``OSError`` when the connection drops early.
    """
    offset = part.stat().st_size if part.exists() else 0
    try:
        response = _open(url, offset, timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial file is not a prefix the server can extend
            part.unlink()
            response = _open(url, 0, timeout)
        else:
            raise
    with response:
        status = getattr(response, "status", 200)
        if offset and status != 206:  # the server ignored the range: start over
            offset = 0
        expected = response.headers.get("Content-Length")
        received = 0
        with open(part, "ab" if offset else "wb") as f:
            while True:
                chunk = response.read(CHUNK)
                if not chunk:
                    break
                f.write(chunk)
                received += len(chunk)
        if expected is not None and received < int(expected):
            raise http.client.IncompleteRead(b"", int(expected) - received)


def fetch(url: str, dest: str | os.PathLike, sha256: str | None, size: int | None = None, *,
          partial_dir: str | os.PathLike | None = None, retries: int = 3, timeout: float = 60.0,
          allow_unpinned: bool = False, wait: Callable[[float], None] = time.sleep) -> str:
    """Download ``url`` to ``dest`` and verify it; return the file's sha256.

    ``sha256=None`` (an unpinned file) is refused unless ``allow_unpinned`` is set, in which case
    the checksum of the first download is returned for the caller to record.
    """
    dest = Path(dest)
    if sha256 is None and not allow_unpinned:
        raise DownloadError(f"{dest.name}: no sha256 is pinned for {url}; refusing to download an unverifiable "
                            f"file. Supply its checksum, or explicitly allow recording it on first download")
    partial = Path(partial_dir) if partial_dir else dest.parent
    partial.mkdir(parents=True, exist_ok=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = partial / f"{dest.name}.part"
    problems: list[str] = []
    for attempt in range(1, retries + 1):
        try:
            _transfer(url, part, timeout)
        except urllib.error.HTTPError as e:
            problems.append(f"attempt {attempt}: the server answered HTTP {e.code} {e.reason}")
            log.warning("%s: %s", dest.name, problems[-1])
            if e.code in (401, 403, 404, 410):  # will not change by asking again
                break
            wait(min(2 ** attempt, 30))
            continue
        except (http.client.HTTPException, urllib.error.URLError, OSError) as e:
            # A short or broken transfer: keep the partial file and resume it.
            problems.append(f"attempt {attempt}: transfer interrupted ({e.__class__.__name__}: {e})")
            log.warning("%s: %s", dest.name, problems[-1])
            wait(min(2 ** attempt, 30))
            continue
        got_size = part.stat().st_size
        if size is not None and got_size < size:
            problems.append(f"attempt {attempt}: {got_size} of {size} bytes received")
            log.warning("%s: %s", dest.name, problems[-1])
            wait(min(2 ** attempt, 30))
            continue
        digest = sha256_file(part)
        if (sha256 is not None and digest != sha256) or (size is not None and got_size != size):
            # Corrupted (or a different file): never keep it, start again from scratch.
            problems.append(f"attempt {attempt}: checksum mismatch (sha256 {digest}, {got_size} bytes; "
                            f"expected {sha256}, {size} bytes)")
            log.warning("%s: %s", dest.name, problems[-1])
            part.unlink()
            continue
        os.replace(part, dest)
        log.info("%s: %d bytes, sha256 %s verified", dest.name, got_size, digest)
        return digest
    raise DownloadError(
        f"{dest.name}: could not download a verified copy of {url} after {len(problems)} attempt(s):\n  "
        + "\n  ".join(problems)
        + "\nIf the host moved, point data.download.mirrors at another URL serving the same file "
        "(the checksum still applies)."
    )


def download_files(files: Iterable[dict[str, Any]], out_dir: str | os.PathLike,
                   partial_dir: str | os.PathLike | None = None, **kwargs: Any) -> dict[str, str]:
    """Fetch and verify every file of a download job into ``out_dir``; write ``SHA256SUMS``.

    A file whose pin was replaced (``sources.load_pins``; it carries ``replaces``) is logged as a
    warning naming both checksums."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sums = {}
    for f in files:
        if "replaces" in f:
            # Loud on purpose: these bytes are not the upstream release the paper used.
            log.warning("%s: pin replaced by data.download.pins: fetching %s, sha256 %s, %s bytes (the upstream "
                        "pin is sha256 %s)", f["name"], f["url"], f["sha256"], f.get("size"), f["replaces"])
        sums[f["name"]] = fetch(f["url"], out / f["name"], f["sha256"], f.get("size"),
                                partial_dir=partial_dir, **kwargs)
    (out / "SHA256SUMS").write_text("".join(f"{h}  {n}\n" for n, h in sorted(sums.items())), encoding="utf-8")
    if partial_dir and Path(partial_dir).is_dir() and not any(Path(partial_dir).iterdir()):
        Path(partial_dir).rmdir()
    return sums


# --------------------------------------------------------------------------------------------
# Hugging Face hub repositories (models, and datasets: the +MLM variant's Wikipedia corpus)


def _selected(siblings: Iterable[Any], patterns: list[str]) -> list[Any]:
    return [s for s in siblings if any(fnmatch.fnmatch(s.rfilename, p) for p in patterns)]


def verify_hub_files(folder: str | os.PathLike, siblings: Iterable[Any]) -> dict[str, str]:
    """Check downloaded files against the hub's metadata of the pinned commit.

    ``siblings`` are ``huggingface_hub`` ``RepoSibling`` objects (``rfilename``, ``size``,
    ``blob_id``, ``lfs``): LFS files are checked by sha256, others by git blob id. Returns the
    sha256 of every file.
    """
    sums = {}
    for s in siblings:
        path = Path(folder) / s.rfilename
        if not path.is_file():
            raise DownloadError(f"{path}: missing after download from the hub")
        if s.size is not None and path.stat().st_size != s.size:
            raise DownloadError(f"{path}: {path.stat().st_size} bytes, the hub says {s.size}: truncated download")
        digest = sha256_file(path)
        if s.lfs is not None:
            if digest != s.lfs.sha256:
                raise DownloadError(f"{path}: sha256 {digest} does not match the hub's {s.lfs.sha256}")
        elif s.blob_id is not None and git_blob_sha1(path) != s.blob_id:
            raise DownloadError(f"{path}: git blob id does not match the hub's {s.blob_id}")
        sums[s.rfilename] = digest
    return sums


def download_hub_model(repo_id: str, revision: str, patterns: list[str], out_dir: str | os.PathLike,
                       record_revision: bool = False) -> dict[str, Any]:
    """Download the files of a hub model matching ``patterns`` at a pinned commit; verify them.

    ``revision`` must be a 40-hex commit id. A branch or tag name is resolved and recorded only
    with ``record_revision`` (the commit is then written to ``source.json`` and logged, so it can
    be pinned in config.yaml).
    """

    def has_config_and_weights(commit: str, names: list[str]) -> None:
        if "config.json" not in names or not any(n.endswith((".safetensors", ".bin")) for n in names):
            raise DownloadError(f"{repo_id}@{commit}: the files matching {patterns} ({names}) lack config.json or "
                                "weights; adjust model.hub.files")

    return _download_hub(repo_id, revision, patterns, out_dir, repo_type="model", record_revision=record_revision,
                         pin_hint="set model.hub.revision to a 40-character commit of the hub repository (its "
                                  "'Files and versions' history), or set model.hub.record_revision: true to resolve "
                                  "it once and record the commit",
                         check=has_config_and_weights)


def download_hub_dataset(repo_id: str, revision: str, patterns: list[str], out_dir: str | os.PathLike) -> dict[str, Any]:
    """Download the files of a hub *dataset* repository matching ``patterns`` at a pinned commit.

    As ``download_hub_model`` (every file verified against the hub's metadata of that commit,
    ``source.json`` written), with ``revision`` always a commit id, and every pattern required
    to match at least one file of the repository at that commit.
    """

    def every_pattern_matches(commit: str, names: list[str]) -> None:
        for pattern in patterns:
            if not any(fnmatch.fnmatch(n, pattern) for n in names):
                raise DownloadError(f"dataset {repo_id}@{commit}: no file matches the pattern {pattern!r}; check the "
                                    "configuration folder and file pattern pinned in scripts/xstilts/sources.py")

    return _download_hub(repo_id, revision, patterns, out_dir, repo_type="dataset", record_revision=False,
                         pin_hint="pin the dataset's commit in scripts/xstilts/sources.py", check=every_pattern_matches)


def _download_hub(repo_id: str, revision: str, patterns: list[str], out_dir: str | os.PathLike, *, repo_type: str,
                  record_revision: bool, pin_hint: str, check: Callable[[str, list[str]], None]) -> dict[str, Any]:
    """The files of a hub repository (``repo_type`` model or dataset) matching ``patterns`` at a
    pinned commit, verified (``verify_hub_files``) before they are moved into ``out_dir``.

    ``check(commit, selected names)`` refuses a selection before anything is downloaded.
    """
    from huggingface_hub import HfApi, snapshot_download

    if not COMMIT.match(revision) and not record_revision:
        raise DownloadError(f"{repo_type} revision {revision!r} of {repo_id} is not a commit id: {pin_hint}")
    api = HfApi()
    if repo_type == "dataset":
        info = api.dataset_info(repo_id, revision=revision, files_metadata=True)
    else:
        info = api.model_info(repo_id, revision=revision, files_metadata=True)
    commit = info.sha
    if COMMIT.match(revision) and commit != revision:
        raise DownloadError(f"the hub answered commit {commit} for {repo_id}@{revision}")
    if commit != revision:
        log.warning("%s: revision %r resolved to commit %s; pin it with model.hub.revision: %s",
                    repo_id, revision, commit, commit)
    selected = _selected(info.siblings or [], patterns)
    names = [s.rfilename for s in selected]
    check(commit, names)
    out = Path(out_dir)
    # Staged next to the output (kept across an interrupted run, so huggingface_hub resumes the
    # large weights file), moved into place only after every file verified.
    staging = out.with_name(out.name + ".staging")
    # Only a dataset names its repository type: the model call stays as it always was.
    kind = {"repo_type": repo_type} if repo_type != "model" else {}
    snapshot_download(repo_id, revision=commit, allow_patterns=names, local_dir=staging, **kind)
    try:
        sums = verify_hub_files(staging, selected)
    except DownloadError:
        shutil.rmtree(staging, ignore_errors=True)  # never reuse a bad copy
        raise
    out.mkdir(parents=True, exist_ok=True)
    for name in sums:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        os.replace(staging / name, out / name)
    shutil.rmtree(staging, ignore_errors=True)
    record = {"repo_id": repo_id, "revision": commit, "requested_revision": revision, "sha256": sums}
    if repo_type != "model":
        record["repo_type"] = repo_type
    (out / "source.json").write_text(json.dumps(record, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    log.info("%s@%s: %d files verified", repo_id, commit, len(sums))
    return record
