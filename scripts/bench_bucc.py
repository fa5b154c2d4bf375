#!/usr/bin/env python
"""Benchmark ``xstilts bucc`` against the bare two-way FAISS kNN it cannot avoid.

For each size n, random unit vectors (n source x n target x dim; a fraction of the targets are
noisy copies of sources, which are the gold pairs) are written as BUCC files. Then, in the same
process and with the same thread count, the benchmark times

* bare kNN: ``IndexFlatIP`` add + k-NN search source->target and target->source, nothing else;
* library: ``mine_bitext`` + ``optimize_threshold`` on the in-memory arrays;
* command: the whole ``xstilts bucc`` dev-mode run (read TSV and .npy files, dedup, normalise,
  kNN, margins, merge, id mapping, threshold, JSON output).

Repeats alternate bare and full runs; the minimum of each is reported (other load on the
machine only ever adds time). The target is command <= 1.3 x bare kNN. ``--gpu`` also times
faiss-gpu and the torch CUDA path (bare ``knn`` both ways vs the command with that backend)
when CUDA is present.

    python scripts/bench_bucc.py --sizes 5000 50000 --dim 1024
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np


def make_data(folder: Path, n: int, dim: int, gold_fraction: float, seed: int) -> dict[str, Any]:
    """Write n x n BUCC files of random unit vectors; return paths and the in-memory data."""
    rng = np.random.default_rng(seed)
    src = rng.standard_normal((n, dim), dtype=np.float32)
    trg = rng.standard_normal((n, dim), dtype=np.float32)
    n_gold = int(n * gold_fraction)
    src_rows = rng.permutation(n)[:n_gold]
    trg_rows = rng.permutation(n)[:n_gold]
    # Noise of the same norm as the vector: cosine about 0.7, far above random pairs (~0).
    trg[trg_rows] = src[src_rows] + rng.standard_normal((n_gold, dim), dtype=np.float32)
    src /= np.linalg.norm(src, axis=1, keepdims=True)
    trg /= np.linalg.norm(trg, axis=1, keepdims=True)
    src_ids = [f"xx-{i:09d}" for i in range(n)]
    trg_ids = [f"en-{i:09d}" for i in range(n)]
    src_sents = [f"source sentence {i}" for i in range(n)]
    trg_sents = [f"target sentence {i}" for i in range(n)]
    gold = [(src_ids[i], trg_ids[j]) for i, j in zip(src_rows.tolist(), trg_rows.tolist())]
    paths = {name: str(folder / f"{n}.{name}") for name in ("src.tsv", "trg.tsv", "gold.tsv", "src.npy", "trg.npy")}
    Path(paths["src.tsv"]).write_text("".join(f"{i}\t{s}\n" for i, s in zip(src_ids, src_sents)), encoding="utf-8")
    Path(paths["trg.tsv"]).write_text("".join(f"{i}\t{s}\n" for i, s in zip(trg_ids, trg_sents)), encoding="utf-8")
    Path(paths["gold.tsv"]).write_text("".join(f"{a}\t{b}\n" for a, b in gold), encoding="utf-8")
    np.save(paths["src.npy"], src)
    np.save(paths["trg.npy"], trg)
    return {"paths": paths, "src": src, "trg": trg, "src_ids": src_ids, "trg_ids": trg_ids,
            "src_sents": src_sents, "trg_sents": trg_sents, "gold": gold}


def bare_faiss(x: np.ndarray, y: np.ndarray, k: int, threads: int) -> None:
    """Two-way exact inner-product kNN, nothing else."""
    import faiss

    faiss.omp_set_num_threads(threads)
    for queries, database in ((x, y), (y, x)):
        index = faiss.IndexFlatIP(database.shape[1])
        index.add(database)
        index.search(queries, min(k, len(database)))


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_command(data: dict[str, Any], out: str, k: int, backend: str) -> None:
    from xstilts.cli import main

    p = data["paths"]
    argv = ["bucc", "--src", p["src.tsv"], "--trg", p["trg.tsv"], "--src-emb", p["src.npy"],
            "--trg-emb", p["trg.npy"], "--gold", p["gold.tsv"], "--output", out, "--k", str(k), "--backend", backend]
    if main(argv) != 0:
        raise SystemExit("xstilts bucc failed")


def run_library(data: dict[str, Any], k: int, backend: str) -> dict[str, float]:
    from xstilts import retrieval

    cands = retrieval.mine_bitext(data["src_ids"], data["src_sents"], data["trg_ids"], data["trg_sents"],
                                  data["src"], data["trg"], k=k, backend=backend)
    return retrieval.optimize_threshold(cands, data["gold"])


def bench_size(n: int, args: argparse.Namespace, folder: Path) -> list[dict[str, Any]]:
    from xstilts import retrieval

    threads = retrieval._default_threads()
    data = make_data(folder, n, args.dim, args.gold_fraction, args.seed)
    out = str(folder / f"{n}.out.json")
    rows = []
    backends = [("faiss-cpu", lambda: bare_faiss(data["src"], data["trg"], args.k, threads))]
    if args.gpu:
        for backend in ("faiss-gpu", "torch"):
            try:
                if retrieval.resolve_backend(backend) != backend or not retrieval._torch_cuda():
                    raise ValueError("no CUDA")
            except ValueError as e:
                print(f"  {backend}: skipped ({e})", file=sys.stderr)
                continue

            def bare(backend: str = backend) -> None:
                retrieval.knn(data["src"], data["trg"], args.k, backend)
                retrieval.knn(data["trg"], data["src"], args.k, backend)

            backends.append((backend, bare))
    for backend, bare in backends:
        times: dict[str, list[float]] = {"bare": [], "library": [], "command": []}
        metrics: dict[str, float] = {}
        for _ in range(args.repeat):
            times["bare"].append(timed(bare))
            times["library"].append(timed(lambda: metrics.update(run_library(data, args.k, backend))))
            times["command"].append(timed(lambda: run_command(data, out, args.k, backend)))
        best = {key: min(v) for key, v in times.items()}
        row = {
            "n_src": n, "n_trg": n, "dim": args.dim, "k": args.k, "backend": backend, "threads": threads,
            "bare_knn_s": round(best["bare"], 3), "library_s": round(best["library"], 3),
            "command_s": round(best["command"], 3),
            "library_ratio": round(best["library"] / best["bare"], 3),
            "command_ratio": round(best["command"] / best["bare"], 3),
            "all_runs_s": {key: [round(t, 3) for t in v] for key, v in times.items()},
            "dev_f1": round(metrics.get("f1", float("nan")), 2),
        }
        rows.append(row)
        print(
            f"n={n} dim={args.dim} {backend}: bare kNN {row['bare_knn_s']:.2f}s | mine+threshold "
            f"{row['library_s']:.2f}s ({row['library_ratio']:.3f}x) | xstilts bucc {row['command_s']:.2f}s "
            f"({row['command_ratio']:.3f}x) | dev F1 {row['dev_f1']}",
            flush=True,
        )
    for path in data["paths"].values():
        os.remove(path)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 50000], help="sentences per side")
    parser.add_argument("--dim", type=int, default=1024, help="embedding dimension (XLM-R Large: 1024)")
    parser.add_argument("--k", type=int, default=4, help="neighbourhood size (default 4)")
    parser.add_argument("--gold-fraction", type=float, default=0.2, help="share of targets that copy a source")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each timing; the minimum is reported")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--gpu", action="store_true", help="also time faiss-gpu and the torch CUDA path")
    parser.add_argument("--workdir", help="folder for the generated files (default: a temporary folder)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        rows = [row for n in args.sizes for row in bench_size(n, args, Path(tmp))]
    peak_gib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"load average after: {os.getloadavg()}; peak RSS {peak_gib:.2f} GiB", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"results": rows, "peak_rss_gib": round(peak_gib, 2)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
