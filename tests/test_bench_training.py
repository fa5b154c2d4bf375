"""scripts/bench_training.py runs on a CPU with the tiny model and writes a consistent record."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np

from conftest import ROOT


def test_the_benchmark_runs_on_cpu_and_its_record_is_consistent(tmp_path):
    record_path = tmp_path / "tiny-cpu.json"
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_training.py"), "--model", "tiny", "--steps", "2",
                          "--warmup", "1", "--predict-examples", "64", "--record", str(record_path)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(record_path.read_text())
    assert set(record) >= {"date", "device", "model", "train", "predict", "torch", "transformers"}
    assert record["model"] == "tiny" and record["device"]
    for part in ("train", "predict"):
        numbers = record[part]
        assert numbers["xstilts_tokens_per_s"] > 0 and numbers["baseline_tokens_per_s"] > 0
        assert math.isclose(numbers["ratio"], numbers["xstilts_tokens_per_s"] / numbers["baseline_tokens_per_s"],
                            rel_tol=1e-12)
        assert numbers["mfu"] is None  # a CPU has no peak in the table and none was given
    assert record["train"]["xstilts_plain_batches_tokens_per_s"] > 0
    assert record["train"]["micro_batch_size"] == 8  # auto on a CPU: passes of 8 of the effective batch 4 x 8
    assert record["settings"]["xstilts"]["attention"] == ["sdpa"]
    # The printed table carries the same numbers.
    row = next(line for line in run.stdout.splitlines() if line.startswith("| train |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[1].replace(",", "")) == round(record["train"]["xstilts_tokens_per_s"])
    assert float(cells[3]) == round(record["train"]["ratio"], 2)


def test_mfu_and_the_length_histogram():
    sys.path.insert(0, str(ROOT / "scripts"))
    import bench_training

    assert bench_training.peak_flops("NVIDIA H100 80GB HBM3", None) == 989e12
    assert bench_training.peak_flops("NVIDIA H100 PCIe", None) == 756e12
    assert bench_training.peak_flops("whatever", 100.0) == 100e12
    assert bench_training.peak_flops("NVIDIA H100 80GB HBM3", None, gpu=False) is None  # a CPU: n/a
    assert bench_training.peak_flops("NVIDIA T4", None) is None
    per_token = bench_training.flops_per_token(10**9, 1, 1, np.array([1]), training=True)
    assert per_token == 3 * (2e9 + 4)
    assert bench_training.flops_per_token(10**9, 2, 8, np.array([2, 4]), training=False) == 2e9 + 4 * 2 * 8 * (20 / 6)
    assert math.isclose(sum(s for _, _, s in bench_training.LENGTH_HISTOGRAM), 1.0)
    lengths = bench_training.sample_lengths(20000, np.random.default_rng(0))
    assert lengths.min() >= 8 and lengths.max() <= 256
    assert 40 < lengths.mean() < 60  # the documented approximation: about 48 tokens per pair
