"""Verified downloads against a local HTTP server on 127.0.0.1 (started here), and hub-model checks.

The server misbehaves on purpose: it truncates transfers (once, or always), serves corrupted
bytes, or answers 404; a download must then resume, redo or fail with a clear message, and a
file that does not match its pin must never end up where the workflow reads it.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from xstilts import download, pipeline, sources
from xstilts.download import DownloadError

PAYLOAD = bytes(range(256)) * 4000  # 1 MB, a little over one read chunk
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Handler(http.server.BaseHTTPRequestHandler):
    """Paths: /good, /truncate-once, /always-truncate, /corrupt, anything else 404."""

    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):  # noqa: N802 (http.server API)
        Handler.requests.append((self.path, self.headers.get("Range")))
        kind = self.path.strip("/")
        if kind not in ("good", "truncate-once", "always-truncate", "corrupt"):
            self.send_error(404)
            return
        body = PAYLOAD if kind != "corrupt" else PAYLOAD[:-1] + b"\x00"
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        rest = body[start:]
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        truncate = kind == "always-truncate" or (kind == "truncate-once" and start == 0)
        self.wfile.write(rest[: len(rest) // 3] if truncate else rest)
        self.wfile.flush()
        self.close_connection = True


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def clear_requests():
    Handler.requests.clear()


def no_wait(_seconds: float) -> None:
    pass


def test_good_download_is_verified_and_moved_into_place(server, tmp_path):
    dest = tmp_path / "out" / "file.bin"
    assert download.fetch(f"{server}/good", dest, SHA, len(PAYLOAD), partial_dir=tmp_path / "part", wait=no_wait) == SHA
    assert dest.read_bytes() == PAYLOAD
    assert not list((tmp_path / "part").iterdir())


def test_truncated_transfer_is_resumed_with_a_range_request(server, tmp_path):
    dest = tmp_path / "file.bin"
    download.fetch(f"{server}/truncate-once", dest, SHA, len(PAYLOAD), partial_dir=tmp_path / "part", wait=no_wait)
    assert dest.read_bytes() == PAYLOAD
    assert Handler.requests == [("/truncate-once", None), ("/truncate-once", f"bytes={len(PAYLOAD) // 3}-")]


def test_a_transfer_that_never_completes_fails_and_is_never_used(server, tmp_path):
    dest = tmp_path / "out" / "file.bin"
    with pytest.raises(DownloadError, match=r"(?s)could not download a verified copy .* after 3 attempt\(s\)") as err:
        download.fetch(f"{server}/always-truncate", dest, SHA, len(PAYLOAD), partial_dir=tmp_path / "part",
                       wait=no_wait)
    assert "transfer interrupted" in str(err.value) and "data.download.mirrors" in str(err.value)
    assert not dest.exists()
    assert (tmp_path / "part" / "file.bin.part").exists()  # kept, to be resumed by the next run


def test_checksum_mismatch_is_redone_then_refused(server, tmp_path):
    dest = tmp_path / "file.bin"
    with pytest.raises(DownloadError, match=r"checksum mismatch") as err:
        download.fetch(f"{server}/corrupt", dest, SHA, len(PAYLOAD), partial_dir=tmp_path / "part", wait=no_wait)
    assert str(err.value).count("checksum mismatch") == 3  # fetched again from scratch each time
    assert not dest.exists() and not (tmp_path / "part" / "file.bin.part").exists()


def test_a_stale_corrupted_partial_file_is_discarded(server, tmp_path):
    part_dir = tmp_path / "part"
    part_dir.mkdir()
    (part_dir / "file.bin.part").write_bytes(b"\xff" * 1000)  # left over from another file
    download.fetch(f"{server}/good", tmp_path / "file.bin", SHA, len(PAYLOAD), partial_dir=part_dir, wait=no_wait)
    assert (tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert Handler.requests[0] == ("/good", "bytes=1000-") and Handler.requests[1] == ("/good", None)


def test_unpinned_files_are_refused_unless_recording_is_allowed(server, tmp_path):
    with pytest.raises(DownloadError, match=r"no sha256 is pinned .* refusing"):
        download.fetch(f"{server}/good", tmp_path / "f", None, wait=no_wait)
    assert Handler.requests == []  # refused before any transfer
    assert download.fetch(f"{server}/good", tmp_path / "f", None, allow_unpinned=True, wait=no_wait) == SHA


def test_missing_file_fails_at_once(server, tmp_path):
    with pytest.raises(DownloadError, match=r"(?s)after 1 attempt\(s\).*answered HTTP 404"):
        download.fetch(f"{server}/gone", tmp_path / "f", SHA, wait=no_wait)


def test_download_job_writes_checksums_and_honours_mirrors(server, tmp_path):
    files = [{"name": "a.bin", "url": f"{server}/good", "sha256": SHA, "size": len(PAYLOAD)}]
    sums = pipeline.download_source(files, tmp_path / "downloads" / "x", tmp_path / "partial" / "x")
    assert sums == {"a.bin": SHA}
    assert (tmp_path / "downloads" / "x" / "SHA256SUMS").read_text() == f"{SHA}  a.bin\n"
    assert not (tmp_path / "partial" / "x").exists()
    job = sources.download_job("xquad", {"xquad.de.json": f"{server}/good"})
    assert job[1]["name"] == "xquad.de.json" and job[1]["url"] == f"{server}/good"
    assert job[1]["sha256"] == "990b5d746746ed65ed4702ea5f35f99ffa4e2f1c390c07d003642acd937916f9"  # pin kept


def test_verify_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(PAYLOAD)
    assert download.verify_file(path, SHA, len(PAYLOAD)) == SHA
    with pytest.raises(DownloadError, match=r"bytes, expected .* truncated"):
        download.verify_file(path, SHA, len(PAYLOAD) + 1)
    with pytest.raises(DownloadError, match=r"does not match the pin"):
        download.verify_file(path, "0" * 64)
    with pytest.raises(DownloadError, match=r"missing; it is written by rule download_source"):
        download.verify_file(tmp_path / "nope", SHA)


def test_every_source_file_is_pinned():
    assert sources.unpinned() == []
    for source in sources.SOURCES.values():
        for f in source.files:
            assert len(f.sha256) == 64 and f.size > 0 and f.url.startswith("https://"), f


# --------------------------------------------------------------------------------------------
# Hub models


def sibling(folder: Path, name: str, lfs: bool, tamper: bool = False) -> SimpleNamespace:
    path = folder / name
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    return SimpleNamespace(rfilename=name, size=path.stat().st_size,
                           blob_id=None if lfs else download.git_blob_sha1(path),
                           lfs=SimpleNamespace(sha256="f" * 64 if tamper else sha) if lfs else None)


def test_git_blob_sha1_matches_git(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"a": 1}\n')
    proc = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True)
    if proc.returncode == 0:
        assert download.git_blob_sha1(path) == proc.stdout.strip()
    assert download.git_blob_sha1(path) == hashlib.sha1(b"blob 9\0" + b'{"a": 1}\n').hexdigest()


def test_verify_hub_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(PAYLOAD)
    good = [sibling(tmp_path, "config.json", lfs=False), sibling(tmp_path, "model.safetensors", lfs=True)]
    assert download.verify_hub_files(tmp_path, good)["model.safetensors"] == SHA
    with pytest.raises(DownloadError, match=r"does not match the hub's"):
        download.verify_hub_files(tmp_path, [sibling(tmp_path, "model.safetensors", lfs=True, tamper=True)])
    short = sibling(tmp_path, "model.safetensors", lfs=True)
    short.size += 1
    with pytest.raises(DownloadError, match=r"truncated download"):
        download.verify_hub_files(tmp_path, [short])


@pytest.fixture()
def fake_hub(monkeypatch, tmp_path):
    """huggingface_hub.HfApi and snapshot_download replaced by a local repository at one commit."""
    import huggingface_hub

    repo = tmp_path / "hub_repo"
    repo.mkdir()
    (repo / "config.json").write_text('{"model_type": "xlm-roberta"}')
    (repo / "model.safetensors").write_bytes(PAYLOAD)
    (repo / "pytorch_model.bin").write_bytes(b"not wanted")
    commit = "c" * 40
    siblings = [sibling(repo, n, lfs=n.endswith((".safetensors", ".bin"))) for n in
                ("config.json", "model.safetensors", "pytorch_model.bin")]
    calls = []
    state = {"corrupt": False}

    class FakeApi:
        def model_info(self, repo_id, revision=None, files_metadata=False):
            calls.append(("model_info", repo_id, revision))
            return SimpleNamespace(sha=commit, siblings=siblings)

    def fake_snapshot(repo_id, revision=None, allow_patterns=None, local_dir=None, **_):
        calls.append(("snapshot", revision, tuple(allow_patterns)))
        for name in allow_patterns:
            Path(local_dir).mkdir(parents=True, exist_ok=True)
            data = (repo / name).read_bytes()
            (Path(local_dir) / name).write_bytes(data[:-1] + b"!" if state["corrupt"] and name.endswith("safetensors") else data)
        return str(local_dir)

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    return SimpleNamespace(commit=commit, calls=calls, state=state)


def test_download_hub_model_at_a_pinned_commit(fake_hub, tmp_path):
    out = tmp_path / "models" / "xlmr"
    record = download.download_hub_model("org/model", fake_hub.commit, ["config.json", "model*.safetensors"], out)
    assert record["revision"] == fake_hub.commit and record["sha256"]["model.safetensors"] == SHA
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "source.json"]
    assert fake_hub.calls[1] == ("snapshot", fake_hub.commit, ("config.json", "model.safetensors"))
    assert not (tmp_path / "models" / "xlmr.staging").exists()


def test_a_corrupted_hub_download_is_refused_and_discarded(fake_hub, tmp_path):
    fake_hub.state["corrupt"] = True
    with pytest.raises(DownloadError, match=r"model.safetensors: sha256 .* does not match the hub's"):
        download.download_hub_model("org/model", fake_hub.commit, ["config.json", "model.safetensors"], tmp_path / "m")
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.staging").exists()


def test_hub_branch_revisions_need_explicit_recording(fake_hub, tmp_path):
    with pytest.raises(DownloadError, match=r"'main' .* is not a commit id.*record_revision"):
        download.download_hub_model("org/model", "main", ["config.json", "model.safetensors"], tmp_path / "m")
    assert fake_hub.calls == []  # refused before contacting the hub
    record = download.download_hub_model("org/model", "main", ["config.json", "model.safetensors"], tmp_path / "m",
                                         record_revision=True)
    assert record["revision"] == fake_hub.commit and record["requested_revision"] == "main"
    with pytest.raises(DownloadError, match=r"lack config.json or weights"):
        download.download_hub_model("org/model", fake_hub.commit, ["*.md"], tmp_path / "m2")


def test_prepare_model_links_verified_files_and_loads_them_offline(tmp_path):
    from transformers import AutoModel

    from xstilts.pretrain import model_config, train_tokenizer

    # A tiny hub-like model folder (built directly: MultiTaskModel would silence transformers' logs).
    downloaded = tmp_path / "resources" / "models" / "tiny"
    tokenizer = train_tokenizer([f"line {i} of a small corpus" for i in range(200)], 60, downloaded)
    arch = {"architecture": "xlm-roberta", "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 32, "max_position_embeddings": 256, "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.1}
    AutoModel.from_config(model_config(tokenizer, arch)).save_pretrained(downloaded)
    sums = {p.name: download.sha256_file(p) for p in downloaded.iterdir()}
    (downloaded / "source.json").write_text(json.dumps({"repo_id": "org/tiny", "revision": "a" * 40, "sha256": sums}))
    info = pipeline.prepare_model(downloaded, tmp_path / "encoders" / "baseline")
    assert info["num_hidden_layers"] == 2
    assert os.path.samefile(downloaded / "config.json", tmp_path / "encoders" / "baseline" / "config.json")
    (downloaded / "config.json").write_text("{}")  # corrupted after download
    with pytest.raises(DownloadError, match=r"does not match the pin"):
        pipeline.prepare_model(downloaded, tmp_path / "encoders" / "again")


# --------------------------------------------------------------------------------------------
# Offline jobs


def test_jobs_set_the_offline_switches_and_downloads_do_not():
    code = ("import os, sys; sys.path.insert(0, {scripts!r}); from xstilts import pipeline; "
            "pipeline.setup_logging(None, network={network}); "
            "print([os.environ.get(k) for k in ('HF_HUB_OFFLINE', 'HF_DATASETS_OFFLINE', 'TRANSFORMERS_OFFLINE')])")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    scripts = str(Path(__file__).resolve().parents[1] / "scripts")
    job = subprocess.run([sys.executable, "-c", code.format(scripts=scripts, network=False)], env=env,
                         capture_output=True, text=True, check=True)
    assert job.stdout.strip() == "['1', '1', '1']"
    dl = subprocess.run([sys.executable, "-c", code.format(scripts=scripts, network=True)], env=env,
                        capture_output=True, text=True, check=True)
    assert dl.stdout.strip() == "[None, None, None]"


def test_a_missing_model_folder_fails_fast_naming_its_rule(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no local Hugging Face tokenizer here .* rule prepare_model"):
        pipeline._load_tokenizer(tmp_path / "results" / "encoders" / "xlmr-large" / "baseline")
    with pytest.raises(FileNotFoundError, match=r"never download"):
        pipeline.embed_sentences({"languages": {}}, "FacebookAI/xlm-roberta-large", tmp_path, tmp_path / "emb", 1)
