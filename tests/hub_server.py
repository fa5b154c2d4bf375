"""A local HTTP server for the real-data test: upstream files by URL, and one model repository
in the Hugging Face hub's API, so the download rules' real code runs against it unchanged.

Files. ``/files/<name>`` serves the bytes registered with ``add_file`` (with Range requests, as
``xstilts.download`` resumes a short transfer with one).

Hub. ``add_model`` registers a repository at one commit; the server answers the endpoints
``huggingface_hub`` (2.x) calls for ``HfApi().model_info(..., files_metadata=True)`` and
``snapshot_download(..., revision=<commit>, local_dir=...)``. ``add_dataset`` does the same for a
dataset repository (``HfApi().dataset_info``, ``snapshot_download(..., repo_type="dataset")``),
answered on the same endpoints under ``/api/datasets/`` and ``/datasets/<repo>/resolve/``:

* ``GET /api/models/<repo>/revision/<commit>?blobs=True``: the model info with ``siblings``
  (``rfilename``, ``size``, ``blobId`` and, for LFS files, ``lfs`` {size, sha256, pointerSize});
* ``GET /api/models/<repo>/tree/<commit>[/<path>]?recursive=...``: the file listing (``oid``
  and ``lfs`` {oid, size, pointerSize});
* ``HEAD`` and ``GET /<repo>/resolve/<commit>/<file>``: the file, with the headers the hub
  sends: ``X-Repo-Commit``, ``ETag`` (the git blob id, or the LFS sha256 with ``X-Linked-Etag``
  and ``X-Linked-Size`` for LFS files).

Weights (``*.safetensors``, ``*.bin``) and ``*.parquet`` files are served as LFS files,
everything else as plain git blobs, as on the hub. A file named in ``corrupt`` is served with
its last byte flipped (same size, true metadata), as a damaged transfer. Point ``HF_ENDPOINT``
at ``url`` to use it. Every request is recorded (``requests``).
"""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _is_lfs(name: str) -> bool:
    return name.endswith((".safetensors", ".bin", ".parquet"))


class Server:
    """Start with ``start()`` (port chosen by the OS on 127.0.0.1), stop with ``stop()``."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.models: dict[str, tuple[str, dict[str, bytes]]] = {}
        self.datasets: dict[str, tuple[str, dict[str, bytes]]] = {}
        #: Files (repository path) served with one byte flipped; the metadata stays the true one.
        self.corrupt: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    # ------------------------------------------------------------------------ content
    def add_file(self, name: str, data: bytes) -> str:
        """Serve ``data`` at ``/files/<name>``; return its URL."""
        self.files[name] = data
        return f"{self.url}/files/{name}"

    def add_model(self, repo_id: str, commit: str, folder: str | Path) -> dict[str, bytes]:
        """Serve every file of ``folder`` as repository ``repo_id`` at ``commit``."""
        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        self.models[repo_id] = (commit, files)
        return files

    def add_dataset(self, repo_id: str, commit: str, folder: str | Path) -> dict[str, bytes]:
        """Serve every file of ``folder`` as dataset repository ``repo_id`` at ``commit``."""
        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        self.datasets[repo_id] = (commit, files)
        return files

    def gets(self, path: str) -> int:
        """How many GET requests asked for ``path`` (the transfers of a file)."""
        return sum(1 for method, p in self.requests if method == "GET" and p == path)

    # ------------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._httpd is not None, "start() the server first"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "Server":
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # the test reads `requests`, not stderr
                pass

            def do_HEAD(self) -> None:
                server._handle(self, head=True)

            def do_GET(self) -> None:
                server._handle(self, head=False)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    # ------------------------------------------------------------------------ answers
    def _handle(self, h: BaseHTTPRequestHandler, head: bool) -> None:
        parts = urlsplit(h.path)
        path = unquote(parts.path)
        with self._lock:
            self.requests.append(("HEAD" if head else "GET", path))
        if path.startswith("/files/") and path[len("/files/"):] in self.files:
            return self._send_bytes(h, self.files[path[len("/files/"):]], {}, head)
        if path.startswith("/api/models/"):
            return self._api(h, path[len("/api/models/"):], head, self.models)
        if path.startswith("/api/datasets/"):
            return self._api(h, path[len("/api/datasets/"):], head, self.datasets)
        repos = [(f"/{r}", c, f) for r, (c, f) in self.models.items()]
        repos += [(f"/datasets/{r}", c, f) for r, (c, f) in self.datasets.items()]
        for base, commit, files in repos:
            prefix = f"{base}/resolve/"
            if path.startswith(prefix):
                revision, _, name = path[len(prefix):].partition("/")
                if revision != commit or name not in files:
                    return self._error(h, 404, "EntryNotFound")
                data = files[name]
                headers = {"X-Repo-Commit": commit}
                if _is_lfs(name):
                    headers.update({"ETag": f'"{git_blob_id(self._pointer(data))}"',
                                    "X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"',
                                    "X-Linked-Size": str(len(data))})
                else:
                    headers["ETag"] = f'"{git_blob_id(data)}"'
                if name in self.corrupt:
                    data = data[:-1] + bytes([data[-1] ^ 1])
                return self._send_bytes(h, data, headers, head)
        return self._error(h, 404, "RepoNotFound")

    @staticmethod
    def _pointer(data: bytes) -> bytes:
        return (f"version https://git-lfs.github.com/spec/v1\noid sha256:{hashlib.sha256(data).hexdigest()}\n"
                f"size {len(data)}\n").encode()

    def _api(self, h: BaseHTTPRequestHandler, rest: str, head: bool,
             repos: dict[str, tuple[str, dict[str, bytes]]]) -> None:
        for repo_id, (commit, files) in repos.items():
            if not rest.startswith(repo_id + "/"):
                continue
            kind, _, tail = rest[len(repo_id) + 1:].partition("/")
            revision, _, sub = tail.partition("/")
            if revision != commit:
                return self._error(h, 404, "RevisionNotFound")
            if kind == "revision":
                siblings = []
                for name, data in files.items():
                    entry = {"rfilename": name, "size": len(data), "blobId": git_blob_id(data)}
                    if _is_lfs(name):
                        entry["blobId"] = git_blob_id(self._pointer(data))
                        entry["lfs"] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                        "pointerSize": len(self._pointer(data))}
                    siblings.append(entry)
                body = {"_id": repo_id, "id": repo_id, "sha": commit, "private": False,
                        "disabled": False, "gated": False, "downloads": 0, "likes": 0, "tags": [],
                        "lastModified": "2024-01-01T00:00:00.000Z", "siblings": siblings}
                if repos is self.models:
                    body["modelId"] = repo_id
                return self._send_json(h, body, head)
            if kind == "tree":
                entries = []
                for name, data in files.items():
                    if sub and not name.startswith(sub.rstrip("/") + "/"):
                        continue
                    entry = {"type": "file", "path": name, "size": len(data), "oid": git_blob_id(data)}
                    if _is_lfs(name):
                        entry["oid"] = git_blob_id(self._pointer(data))
                        entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                        "pointerSize": len(self._pointer(data))}
                    entries.append(entry)
                return self._send_json(h, entries, head)
        return self._error(h, 404, "RepoNotFound")

    @staticmethod
    def _send_json(h: BaseHTTPRequestHandler, obj, head: bool) -> None:
        Server._send_bytes(h, json.dumps(obj).encode(), {"Content-Type": "application/json"}, head, ranges=False)

    @staticmethod
    def _send_bytes(h: BaseHTTPRequestHandler, data: bytes, headers: dict[str, str], head: bool,
                    ranges: bool = True) -> None:
        status, body = 200, data
        wanted = h.headers.get("Range")
        if ranges and wanted and wanted.startswith("bytes="):
            start_text, _, end_text = wanted[len("bytes="):].partition("-")
            start = int(start_text)
            end = int(end_text) if end_text else len(data) - 1
            if start >= len(data):
                h.send_response(416)
                h.send_header("Content-Range", f"bytes */{len(data)}")
                h.send_header("Content-Length", "0")
                h.end_headers()
                return
            status, body = 206, data[start:end + 1]
            headers = {**headers, "Content-Range": f"bytes {start}-{start + len(body) - 1}/{len(data)}"}
        h.send_response(status)
        for key, value in {"Accept-Ranges": "bytes", **headers}.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head:
            h.wfile.write(body)

    @staticmethod
    def _error(h: BaseHTTPRequestHandler, code: int, kind: str) -> None:
        body = json.dumps({"error": kind}).encode()
        h.send_response(code)
        h.send_header("X-Error-Code", kind)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)
