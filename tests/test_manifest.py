"""Manifests: each output's files with size, sha256 and line counts; damage found and named; `xstilts verify`."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest

from xstilts import manifest


def dataset(root):
    folder = root / "data" / "xnli"
    (folder / "en").mkdir(parents=True)
    lines = [json.dumps({"id": str(i), "label": "neutral"}) for i in range(20)]
    (folder / "en" / "train.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "en" / "notes.bin").write_bytes(bytes(range(256)))
    (folder / ".snakemake_timestamp").write_text("")  # Snakemake's, not content
    return folder


def test_a_manifest_records_every_file_with_size_sha256_and_examples(tmp_path):
    folder = dataset(tmp_path)
    record = manifest.write(folder, "make_demo_dataset", "job-1")
    train = folder / "en" / "train.jsonl"
    assert manifest.manifest_path(folder) == tmp_path / "data" / ".xnli.manifest.json"
    assert record["files"] == {
        "en/notes.bin": {"size": 256, "sha256": hashlib.sha256(bytes(range(256))).hexdigest()},
        "en/train.jsonl": {"size": train.stat().st_size, "sha256": hashlib.sha256(train.read_bytes()).hexdigest(),
                           "examples": 20},
    }
    assert json.loads(manifest.manifest_path(folder).read_text())["rule"] == "make_demo_dataset"
    assert manifest.check(folder) == []
    assert manifest.complete(folder, "job-1") and not manifest.complete(folder, "another job")


def test_dropped_lines_an_edited_byte_a_missing_and_an_extra_file_are_each_named(tmp_path):
    folder = dataset(tmp_path)
    manifest.write(folder, "make_demo_dataset")
    train = folder / "en" / "train.jsonl"
    text = train.read_text().split("\n")
    train.write_text("\n".join(text[:-11]) + "\n")  # the last 10 examples dropped
    [problem] = manifest.check(folder)
    assert "en/train.jsonl has" in problem.what and "(truncated); 10 examples, 20 written" in problem.what
    assert problem.rule == "make_demo_dataset"
    assert f"snakemake --forcerun {folder}" in problem.message() and "rule make_demo_dataset rebuilds it" in problem.message()

    train.write_text("\n".join(text))
    blob = folder / "en" / "notes.bin"
    damaged = bytearray(blob.read_bytes())
    damaged[10:20] = b"\0" * 10  # same size, other bytes
    blob.write_bytes(bytes(damaged))
    (folder / "en" / "extra.txt").write_text("x\n")
    whats = [p.what for p in manifest.check(folder)]
    assert whats[0] == "en/extra.txt is not one of the files its job wrote"
    assert whats[1].startswith("en/notes.bin does not match its manifest") and "damaged or edited" in whats[1]
    (folder / "en" / "notes.bin").unlink()
    assert "en/notes.bin is missing" in [p.what for p in manifest.check(folder)]
    with pytest.raises(manifest.DamagedError, match="xnli: en/notes.bin is missing"):
        manifest.verify([folder])


def test_an_input_without_a_manifest_or_with_a_damaged_one_is_refused(tmp_path):
    score = tmp_path / "seed1.json"
    score.write_text('{"scores": {}}\n')
    with pytest.raises(manifest.DamagedError, match=r"seed1.json: it has no manifest \(.seed1.json.manifest.json\)"):
        manifest.verify([score])
    manifest.write(score, "score_run")
    manifest.verify([score])
    manifest.manifest_path(score).write_text('{"files": ')
    with pytest.raises(manifest.DamagedError, match="its manifest .* is damaged"):
        manifest.verify([score])


def test_known_digests_are_reused_only_while_the_file_is_unchanged(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one\n")
    manifest.write(path, "r")
    assert manifest.known_sha256(path) == hashlib.sha256(b"one\n").hexdigest()
    path.write_text("two lines\n")
    assert manifest.known_sha256(path) is None


def verify(*args, cwd):
    return subprocess.run([sys.executable, "-m", "xstilts.cli", "verify", *args], cwd=cwd, capture_output=True, text=True)


def test_verify_command_reports_damage_and_absent_outputs(tmp_path):
    folder = dataset(tmp_path / "results")
    score = tmp_path / "results" / "scores" / "seed1.json"
    score.parent.mkdir(parents=True)
    score.write_text('{"avg": 1}\n')
    gone = tmp_path / "results" / "model"
    gone.mkdir()
    (gone / "w.bin").write_bytes(b"w")
    for output, rule in ((folder, "make_demo_dataset"), (score, "score_run"), (gone, "finetune_target")):
        manifest.write(output, rule)
    (gone / "w.bin").unlink()
    gone.rmdir()  # a temp() model deleted by Snakemake: absent, not damaged
    ok = verify("results", cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "absent:  results/model (rule finetune_target" in ok.stdout
    assert "3 outputs checked under results: 0 damaged, 1 absent" in ok.stderr

    score.write_text('{"avg": 2}\n')  # same size, edited
    bad = verify("results", cwd=tmp_path)
    assert bad.returncode == 1
    assert ("damaged: results/scores/seed1.json: seed1.json does not match its manifest" in bad.stdout
            and "rule score_run rebuilds it: run `snakemake --forcerun results/scores/seed1.json`" in bad.stdout)
    assert "1 damaged" in bad.stderr
    assert verify("nowhere", cwd=tmp_path).returncode == 1
