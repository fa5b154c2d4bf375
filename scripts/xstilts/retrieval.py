"""BUCC 2018 bitext mining and Tatoeba retrieval, scored as XTREME and jiant score them.

Everything here works on precomputed sentence embeddings (see :mod:`xstilts.embeddings`); no
model is involved. The semantics follow the official XTREME/jiant functions (``mine_bitext``,
``bucc_optimize``, ``bucc_extract``, ``similarity_search``), re-implemented with the decisions
below made explicit. Each one is deliberate and covered by ``tests/test_retrieval.py``.

Nearest neighbours (:func:`knn`)
    Exact maximum inner-product search. Every backend (``faiss-cpu``, ``faiss-gpu``, ``torch``)
    returns each row's neighbours sorted by descending score, and **equal scores by ascending
    database index**; among exactly tied scores at the k-th place the lower indices are kept
    (faiss-cpu and the torch path guarantee this; faiss-gpu keeps whichever its k-select keeps).
    Scores are float32 inner products, so backends may differ in the last bits and a
    near-tie may then flip; exact ties (identical vectors) resolve identically.

BUCC mining (:func:`mine_bitext`)
    1. Each side is deduplicated by exact sentence text, in order of first occurrence; a repeated
       text keeps the embedding of its **last** occurrence (as ``unique_embeddings`` does).
    2. Embeddings are L2-normalised (zero or non-finite rows are an error).
    3. k nearest neighbours both ways, ``k = min(k, size of the other side)`` (unique sentences).
    4. Margins from the kNN cosines (float32, combined in float64): ``ratio`` =
       cos / ((mean_fwd + mean_bwd) / 2) (the default), ``distance`` = cos - (mean_fwd +
       mean_bwd) / 2, ``absolute`` = cos, where the means are the mean cosines of each
       sentence's k neighbours. The official code recomputes the numerator cosine with numpy;
       both are float32 dot products, so scores agree to float32 rounding (checked against the
       official functions on random data: same candidates, scores within 1e-6). A pair found
       from both sides may carry two such roundings; the merge below keeps the higher.
    5. Best candidate per source and per target sentence; on equal margins the first
       neighbour wins (the higher cosine, then the lower index).
    6. Forward pairs (in source order) and backward pairs (in target order) are concatenated,
       **stably** sorted by descending score (so ties keep that order: forward before backward,
       then by index; the official ``np.argsort`` leaves tie order unspecified), then accepted
       greedily one-to-one. Accepted pairs with score > 0 are the candidates.
    7. Sentences are mapped back to ids through their text as ``read_sent2id`` does: a text
       that, after ``str.strip()``, occurs on more than one line of its side has no id, and
       candidates containing it are dropped. If two candidates map to the same id pair, the
       higher score is kept.

Threshold (:func:`optimize_threshold`, :func:`extract`)
    Candidates are stably sorted by descending score. A threshold can only cut between two
    *different* scores, so F1 is evaluated only at those cuts (the official loop also tries
    cuts inside runs of equal scores, which ``score >= threshold`` then cannot realise). The
    first cut with the highest F1 wins and the threshold is the midpoint between the last kept
    and the first dropped score. Edge cases: when the best cut keeps every candidate (the
    official code raises IndexError there) the threshold is the **lowest candidate score
    itself**, which keeps exactly those candidates under ``>=`` and nothing below them; when
    no candidate is correct the threshold is 0 and precision/recall/F1 are 0, as officially.
    The reported precision/recall/F1 are those of ``extract`` at the chosen threshold.
    :func:`extract` keeps candidates with ``score >= threshold``.

Tatoeba (:func:`tatoeba_predict`, :func:`tatoeba_answers`, :func:`xtreme_tatoeba_order`)
    Top-1 cosine retrieval. ``xx2en`` (the paper's, via jiant; default): non-English queries
    against the English database. ``en2xx`` (the official XTREME scripts): English queries
    against the non-English database. Equal scores go to the lower index.

    Prediction and label files follow XTREME's layout, whatever the direction. XTREME's
    preprocessing (``utils_preprocess.tatoeba_preprocess``) keeps LASER's non-English file and
    writes the English one stripped and stably sorted by text; line k of a label file is the
    non-English line that English line k translates, so for LASER's line-aligned files it is
    the LASER line of the k-th sorted English sentence. Line k of a prediction file is the
    non-English line the retrieval matched for English line k: ``en2xx``, the one English
    sentence k retrieves (XTREME's own prediction); ``xx2en``, the translation of sentence k
    retrieves an English sentence, named by the non-English line that sentence translates.
    Either way line k is correct exactly when it equals label line k.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from collections import Counter
from fractions import Fraction
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np

log = logging.getLogger(__name__)

Backend = Literal["auto", "faiss-cpu", "faiss-gpu", "torch"]
BACKENDS: tuple[str, ...] = ("auto", "faiss-cpu", "faiss-gpu", "torch")
MARGINS: tuple[str, ...] = ("ratio", "distance", "absolute")
DIRECTIONS: tuple[str, ...] = ("xx2en", "en2xx")

# Queries per faiss call: faiss blocks the work internally (bounded memory), so the chunks only
# give progress messages on BUCC-sized inputs.
FAISS_QUERY_CHUNK = 32768
# Bytes of the (queries x database) similarity block the torch path materialises at once.
TORCH_BLOCK_BYTES = 1 << 30

Candidate = tuple[str, str, float]


# --------------------------------------------------------------------------------------------
# Backends


def _cuda_driver_present() -> bool:
    # Importing torch costs seconds; on a machine without an NVIDIA driver "auto" needs no torch.
    return "torch" in sys.modules or os.path.exists("/proc/driver/nvidia/version")


def _faiss_gpu_count() -> int:
    try:
        import faiss
    except ImportError:
        return 0
    if not hasattr(faiss, "StandardGpuResources"):
        return 0
    return int(faiss.get_num_gpus())


def _torch_cuda() -> bool:
    if not _cuda_driver_present():
        return False
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def resolve_backend(backend: str = "auto") -> str:
    """The concrete backend ``knn`` will use for ``backend``.

    ``auto`` picks faiss-gpu when faiss was built with GPU support and sees a GPU, else the torch
    path when CUDA is available, else faiss-cpu. An explicitly named backend that cannot run
    here is an error (the torch path also runs on CPU, which the tests use).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        if _cuda_driver_present() and _faiss_gpu_count() > 0:
            return "faiss-gpu"
        if _torch_cuda():
            return "torch"
        return "faiss-cpu"
    if backend == "faiss-gpu" and _faiss_gpu_count() == 0:
        raise ValueError("backend 'faiss-gpu' needs faiss-gpu installed and a visible GPU")
    return backend


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


@contextlib.contextmanager
def _faiss_threads() -> Iterator[None]:
    """Run faiss with one OpenMP thread per usable core, restoring the previous setting.

    OpenMP's default can count every host core rather than the cores this process may use
    (containers, Slurm allocations), which oversubscribes the CPU badly.
    """
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(_default_threads())
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def _balanced_chunks(n: int, max_chunk: int) -> list[tuple[int, int]]:
    # Near-equal chunks, so no tail chunk is tiny: faiss switches to a different (non-BLAS)
    # kernel below 20 queries, whose float rounding differs.
    if n == 0:
        return []
    parts = math.ceil(n / max_chunk)
    bounds = [round(i * n / parts) for i in range(parts + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(parts)]


def _sort_rows(scores: np.ndarray, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Descending score, then ascending index: the documented, backend-independent order.
    order = np.lexsort((indices, -scores), axis=1)
    return np.take_along_axis(scores, order, 1), np.take_along_axis(indices, order, 1)


def _knn_faiss(queries: np.ndarray, database: np.ndarray, k: int, gpu: bool) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    dim = database.shape[1]
    resources = None
    if gpu:
        resources = faiss.StandardGpuResources()
        index = faiss.GpuIndexFlatIP(resources, dim)
    else:
        index = faiss.IndexFlatIP(dim)
    index.add(database)
    scores = np.empty((len(queries), k), dtype=np.float32)
    indices = np.empty((len(queries), k), dtype=np.int64)
    chunks = _balanced_chunks(len(queries), FAISS_QUERY_CHUNK)
    with _faiss_threads():
        for lo, hi in chunks:
            scores[lo:hi], indices[lo:hi] = index.search(queries[lo:hi], k)
            if len(chunks) > 1:
                log.info("knn (%s): %d/%d queries", "faiss-gpu" if gpu else "faiss-cpu", hi, len(queries))
    del index, resources
    return scores, indices


@contextlib.contextmanager
def _no_tf32(torch: Any, device: Any) -> Iterator[None]:
    # TF32 matmuls (which other code may have enabled globally) would change the neighbours.
    # torch >= 2.9 raises when its legacy (allow_tf32) and new (fp32_precision) flags are
    # mixed, so only the new one is touched, and restored afterwards.
    matmul = torch.backends.cuda.matmul
    if device.type != "cuda" or not hasattr(matmul, "fp32_precision"):
        yield
        return
    before = matmul.fp32_precision
    matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        matmul.fp32_precision = before


def _knn_torch(queries: np.ndarray, database: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    db = torch.from_numpy(database).to(device)
    n_db = len(database)
    chunk = max(1, min(65536, TORCH_BLOCK_BYTES // (4 * n_db)))
    scores = np.empty((len(queries), k), dtype=np.float32)
    indices = np.empty((len(queries), k), dtype=np.int64)
    chunks = _balanced_chunks(len(queries), chunk)
    with torch.inference_mode(), _no_tf32(torch, device):
        for n, (lo, hi) in enumerate(chunks, start=1):
            sims = torch.from_numpy(queries[lo:hi]).to(device) @ db.T
            vals, idx = torch.topk(sims, k, dim=1, largest=True, sorted=True)
            # torch.topk leaves the choice among equal scores unspecified: rows with more
            # candidates tied at the k-th score than places are re-selected exactly below.
            n_ge = (sims >= vals[:, -1:]).sum(dim=1)
            tied_rows = torch.nonzero(n_ge > k).flatten()
            vals_np, idx_np = vals.cpu().numpy(), idx.cpu().numpy()
            for row in tied_rows.cpu().tolist():
                r = sims[row].cpu().numpy()
                cand = np.flatnonzero(r >= vals_np[row, -1])
                cand = cand[np.lexsort((cand, -r[cand]))][:k]
                vals_np[row], idx_np[row] = r[cand], cand
            scores[lo:hi], indices[lo:hi] = vals_np, idx_np
            if len(chunks) > 1 and n % max(1, len(chunks) // 10) == 0:
                log.info("knn (torch, %s): %d/%d queries", device.type, hi, len(queries))
    return scores, indices


def _check_matrix(name: str, a: Any) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (rows x dimensions), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"{name}: expected floating-point values, got dtype {a.dtype}")
    return a


def _as_matrix(name: str, a: Any) -> np.ndarray:
    return np.ascontiguousarray(_check_matrix(name, a), dtype=np.float32)


def knn(
    queries: np.ndarray, database: np.ndarray, k: int, backend: Backend | str = "auto"
) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours of each query row by inner product.

    Returns ``(scores, indices)``, float32 and int64 arrays of shape ``(len(queries), k)``; each
    row is sorted by descending score, equal scores by ascending database index (see the module
    docstring for ties). Vectors are used as given: normalise them first for cosine.
    """
    q = _as_matrix("queries", queries)
    db = _as_matrix("database", database)
    if q.shape[1] != db.shape[1]:
        raise ValueError(f"queries have {q.shape[1]} dimensions but the database has {db.shape[1]}")
    if len(db) == 0:
        raise ValueError("the database is empty")
    if not 1 <= k <= len(db):
        raise ValueError(f"k must be between 1 and the database size {len(db)}, got {k}")
    if len(q) == 0:
        return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
    which = resolve_backend(backend)
    if which == "torch":
        scores, indices = _knn_torch(q, db, k)
    else:
        scores, indices = _knn_faiss(q, db, k, gpu=which == "faiss-gpu")
    return _sort_rows(scores, indices)


# --------------------------------------------------------------------------------------------
# BUCC mining


def normalize(
    emb: np.ndarray, name: str = "embeddings", copy: bool = True, row_numbers: np.ndarray | None = None
) -> np.ndarray:
    """Float32 ``emb`` with unit-length rows; zero or non-finite rows are an error.

    With ``copy=False`` a C-contiguous float32 input is normalised in place (saves memory on
    BUCC-sized arrays the caller no longer needs). ``row_numbers[i]`` is the row that error
    messages name for row i (when ``emb`` was selected from a larger array)."""
    x = _check_matrix(name, emb)
    x = np.array(x, dtype=np.float32, order="C", copy=True) if copy else np.ascontiguousarray(x, dtype=np.float32)
    for lo in range(0, len(x), 65536):
        block = x[lo : lo + 65536]
        norms = np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float64))
        bad = np.flatnonzero(~np.isfinite(norms) | (norms == 0))
        if len(bad):
            row = lo + int(bad[0])
            row = int(row_numbers[row]) if row_numbers is not None else row
            raise ValueError(f"{name}: row {row} is zero or not finite and has no direction")
        block /= norms[:, None].astype(np.float32)
    return x


def unique_sentences(sentences: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Deduplicate by exact text: the unique texts (first-occurrence order) and, for each, the
    row of its **last** occurrence, whose embedding the official code keeps."""
    first: dict[str, int] = {}
    last_row: list[int] = []
    for row, text in enumerate(sentences):
        u = first.setdefault(text, len(first))
        if u == len(last_row):
            last_row.append(row)
        else:
            last_row[u] = row
    return list(first), np.asarray(last_row, dtype=np.int64)


def sentence_ids(ids: Sequence[str], sentences: Sequence[str]) -> dict[str, str]:
    """Map ``text.strip()`` to its id, leaving out texts that occur on more than one line."""
    counts = Counter(s.strip() for s in sentences)
    return {s.strip(): i for i, s in zip(ids, sentences) if counts[s.strip()] == 1}


def _margin(cos: np.ndarray, mean_a: np.ndarray, mean_b: np.ndarray, margin: str) -> np.ndarray:
    if margin == "ratio":
        return cos / ((mean_a + mean_b) / 2)
    if margin == "distance":
        return cos - (mean_a + mean_b) / 2
    return cos


def mine_pairs(
    x: np.ndarray, y: np.ndarray, k: int = 4, margin: str = "ratio", backend: Backend | str = "auto"
) -> list[tuple[int, int, float]]:
    """Margin-based mining on unit vectors: ``(src_row, trg_row, score)`` for every pair accepted
    by the greedy one-to-one max merge with score > 0, in acceptance (descending score) order."""
    if margin not in MARGINS:
        raise ValueError(f"unknown margin {margin!r}; choose one of {', '.join(MARGINS)}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    nx, ny = len(x), len(y)
    log.info("mining: %d x %d unique sentences, k=%d, %s margin", nx, ny, k, margin)
    fwd_sim, fwd_ind = knn(x, y, min(k, ny), backend)
    bwd_sim, bwd_ind = knn(y, x, min(k, nx), backend)
    fwd_cos, bwd_cos = fwd_sim.astype(np.float64), bwd_sim.astype(np.float64)
    fwd_mean, bwd_mean = fwd_cos.mean(axis=1), bwd_cos.mean(axis=1)
    fwd_scores = _margin(fwd_cos, fwd_mean[:, None], bwd_mean[fwd_ind], margin)
    bwd_scores = _margin(bwd_cos, fwd_mean[bwd_ind], bwd_mean[:, None], margin)
    fwd_arg = fwd_scores.argmax(axis=1)
    bwd_arg = bwd_scores.argmax(axis=1)
    src = np.concatenate([np.arange(nx), bwd_ind[np.arange(ny), bwd_arg]])
    trg = np.concatenate([fwd_ind[np.arange(nx), fwd_arg], np.arange(ny)])
    scores = np.concatenate([fwd_scores[np.arange(nx), fwd_arg], bwd_scores[np.arange(ny), bwd_arg]])
    order = np.argsort(-scores, kind="stable")
    seen_src = np.zeros(nx, dtype=bool)
    seen_trg = np.zeros(ny, dtype=bool)
    pairs: list[tuple[int, int, float]] = []
    for i, j, s in zip(src[order].tolist(), trg[order].tolist(), scores[order].tolist()):
        if not s > 0:
            # Descending order: nothing later can pass the score > 0 filter (NaN sorts last).
            break
        if not seen_src[i] and not seen_trg[j]:
            seen_src[i] = seen_trg[j] = True
            pairs.append((i, j, s))
    return pairs


def _check_side(name: str, ids: Sequence[str], sentences: Sequence[str], emb: Any) -> np.ndarray:
    emb = _check_matrix(f"{name} embeddings", emb)
    if len(ids) != len(sentences):
        raise ValueError(f"{name}: {len(ids)} ids but {len(sentences)} sentences")
    if len(sentences) == 0:
        raise ValueError(f"{name}: no sentences")
    if len(emb) != len(sentences):
        raise ValueError(f"{name}: {len(sentences)} sentences but {len(emb)} embedding rows")
    return emb


def mine_bitext(
    src_ids: Sequence[str],
    src_sentences: Sequence[str],
    trg_ids: Sequence[str],
    trg_sentences: Sequence[str],
    src_emb: np.ndarray,
    trg_emb: np.ndarray,
    k: int = 4,
    margin: str = "ratio",
    backend: Backend | str = "auto",
) -> list[Candidate]:
    """Mine BUCC candidate pairs: ``[(src_id, trg_id, score), ...]`` with score > 0, sorted by
    descending score (the greedy acceptance order).

    Row i of ``src_emb`` embeds ``src_sentences[i]`` (likewise for the target side). The steps,
    dedup and id rules are those of the module docstring.
    """
    src_emb = _check_side("source", src_ids, src_sentences, src_emb)
    trg_emb = _check_side("target", trg_ids, trg_sentences, trg_emb)
    if src_emb.shape[1] != trg_emb.shape[1]:
        raise ValueError(
            f"source embeddings have {src_emb.shape[1]} dimensions but target embeddings {trg_emb.shape[1]}"
        )
    src_texts, src_rows = unique_sentences(src_sentences)
    trg_texts, trg_rows = unique_sentences(trg_sentences)
    # Fancy indexing already copies, so normalising that copy in place is safe.
    x = normalize(src_emb[src_rows], "source embeddings", copy=False, row_numbers=src_rows)
    y = normalize(trg_emb[trg_rows], "target embeddings", copy=False, row_numbers=trg_rows)
    mined = mine_pairs(x, y, k=k, margin=margin, backend=backend)
    src_map = sentence_ids(src_ids, src_sentences)
    trg_map = sentence_ids(trg_ids, trg_sentences)
    best: dict[tuple[str, str], float] = {}
    for i, j, s in mined:
        sid = src_map.get(src_texts[i].strip())
        tid = trg_map.get(trg_texts[j].strip())
        if sid is not None and tid is not None:
            key = (sid, tid)
            best[key] = max(s, best.get(key, s))
    dropped = len(mined) - len(best)
    if dropped:
        log.info("mining: %d candidates dropped (repeated sentence text, no unique id)", dropped)
    return _sorted_candidates(best)


# --------------------------------------------------------------------------------------------
# Threshold and scoring


def _unique_candidates(candidates: Iterable[Sequence[Any]]) -> dict[tuple[str, str], float]:
    # One score per (src_id, trg_id), the highest, as ``read_candidate2score`` keeps.
    best: dict[tuple[str, str], float] = {}
    for cand in candidates:
        key, s = (str(cand[0]), str(cand[1])), float(cand[2])
        if math.isnan(s):
            raise ValueError(f"candidate {key} has a NaN score")
        best[key] = max(s, best.get(key, s))
    return best


def _sorted_candidates(best: dict[tuple[str, str], float]) -> list[Candidate]:
    items = list(best.items())
    order = np.argsort(-np.asarray([s for _, s in items], dtype=np.float64), kind="stable")
    return [(items[i][0][0], items[i][0][1], items[i][1]) for i in order.tolist()]


def _gold_set(gold_pairs: Iterable[Sequence[str]]) -> set[tuple[str, str]]:
    gold = {(str(p[0]), str(p[1])) for p in gold_pairs}
    if not gold:
        raise ValueError("the gold standard holds no pairs")
    return gold


def score_pairs(pred_pairs: Iterable[Sequence[Any]], gold_pairs: Iterable[Sequence[str]]) -> dict[str, float]:
    """Set-based precision, recall and F1 (x100) of predicted against gold ``(src_id, trg_id)``
    pairs; extra items per prediction (a score) are ignored and duplicates collapse. All three
    are 0 when no prediction is correct."""
    gold = _gold_set(gold_pairs)
    pred = {(str(p[0]), str(p[1])) for p in pred_pairs}
    correct = len(pred & gold)
    if correct == 0:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    precision, recall = correct / len(pred), correct / len(gold)
    return {
        "precision": 100 * precision,
        "recall": 100 * recall,
        "f1": 100 * 2 * precision * recall / (precision + recall),
    }


def extract(candidates: Iterable[Sequence[Any]], threshold: float) -> list[Candidate]:
    """The candidates with ``score >= threshold`` (one per id pair, its highest score), sorted by
    descending score, ties in input order."""
    if math.isnan(threshold):
        raise ValueError("the threshold is NaN")
    best = _unique_candidates(candidates)
    return _sorted_candidates({key: s for key, s in best.items() if s >= threshold})


def optimize_threshold(candidates: Iterable[Sequence[Any]], gold_pairs: Iterable[Sequence[str]]) -> dict[str, float]:
    """The F1-maximising threshold on ``candidates`` (``(src_id, trg_id, score)``) against the gold
    pairs, with the precision, recall and F1 (x100) that ``extract`` at that threshold achieves.
    Cut points, ties and edge cases are described in the module docstring."""
    gold = _gold_set(gold_pairs)
    ranked = _sorted_candidates(_unique_candidates(candidates))
    scores = np.asarray([s for _, _, s in ranked], dtype=np.float64)
    correct = np.cumsum([(a, b) in gold for a, b, _ in ranked], dtype=np.int64)
    n_gold = len(gold)
    # Cut after position i only where the next score is strictly lower (or i is the last).
    cuts = np.flatnonzero(np.append(scores[:-1] > scores[1:], True)) if len(scores) else np.empty(0, np.int64)
    cuts = cuts[correct[cuts] > 0] if len(cuts) else cuts
    if len(cuts) == 0:
        return {"threshold": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    # F1 = 2c / (n + G): compare exactly so the first of mathematically equal maxima wins.
    f1 = correct[cuts] / (cuts + 1 + n_gold)
    near = cuts[f1 >= f1.max() * (1 - 1e-9)]
    best = max(near.tolist(), key=lambda i: (Fraction(int(correct[i]), i + 1 + n_gold), -i))
    if best == len(scores) - 1:
        threshold = float(scores[best])
    else:
        threshold = float((scores[best] + scores[best + 1]) / 2)
        if not threshold > scores[best + 1]:
            # Adjacent floats: the midpoint rounded onto the dropped score.
            threshold = float(scores[best])
    metrics = score_pairs(extract(ranked, threshold), gold)
    return {"threshold": threshold, **metrics}


# --------------------------------------------------------------------------------------------
# Tatoeba


def tatoeba_predict(
    src_emb: np.ndarray,
    trg_emb: np.ndarray,
    direction: str = "xx2en",
    backend: Backend | str = "auto",
) -> np.ndarray:
    """Top-1 cosine retrieval between non-English (``src_emb``) and English (``trg_emb``)
    embeddings, one row per sentence of a Tatoeba pair. ``xx2en``: for each non-English row,
    the index of the nearest English row; ``en2xx``: for each English row, the index of the
    nearest non-English row. Returns an int64 array; when the sides are line-aligned, row i is
    correct when it equals i (:func:`tatoeba_answers` covers other layouts)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")
    x = normalize(src_emb, "non-English embeddings")
    y = normalize(trg_emb, "English embeddings")
    if len(x) != len(y):
        raise ValueError(f"{len(x)} non-English rows but {len(y)} English rows; a Tatoeba pair has as many of each")
    if len(x) == 0:
        raise ValueError("no sentences")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"non-English embeddings have {x.shape[1]} dimensions but English ones {y.shape[1]}")
    queries, database = (x, y) if direction == "xx2en" else (y, x)
    _, indices = knn(queries, database, 1, backend)
    return indices[:, 0]


def _check_gold(gold: np.ndarray | Sequence[int] | None, n: int) -> np.ndarray:
    if gold is None:
        return np.arange(n)
    g = np.asarray(gold)
    if g.ndim != 1 or len(g) != n:
        raise ValueError(f"the gold labels hold {len(g)} lines but there are {n} English sentences")
    if not np.issubdtype(g.dtype, np.integer) or not np.array_equal(np.sort(g), np.arange(n)):
        raise ValueError(f"the gold labels must name each of the {n} non-English lines (0..{n - 1}) exactly once")
    return g.astype(np.int64)


def tatoeba_answers(
    predictions: np.ndarray | Sequence[int], direction: str = "xx2en", gold: np.ndarray | Sequence[int] | None = None
) -> np.ndarray:
    """Predictions of :func:`tatoeba_predict` in the layout of XTREME's prediction files.

    ``gold[k]`` is the non-English row that English row k translates (``None``: row k, the
    line-aligned case). Entry k of the result is the non-English row matched for English row k
    (module docstring): ``en2xx`` predictions as they are; ``xx2en``, the English row retrieved
    by row ``gold[k]``, named by the non-English row it translates. Entry k is correct exactly
    when it equals ``gold[k]``.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")
    pred = np.asarray(predictions, dtype=np.int64)
    g = _check_gold(gold, len(pred))
    return pred if direction == "en2xx" else g[pred[g]]


def xtreme_tatoeba_order(english: Sequence[str]) -> np.ndarray:
    """XTREME's order of the English side of a line-aligned (LASER) Tatoeba pair.

    Entry k is the LASER line that becomes line k of XTREME's ``<lang>-en.en``: lines stripped,
    then stably sorted by text (Python's code-point order, equal texts keeping their order).
    As the non-English file keeps its order, entry k is also line k of XTREME's label file.
    """
    keys = [line.strip() for line in english]
    return np.asarray(sorted(range(len(keys)), key=keys.__getitem__), dtype=np.int64)


def tatoeba_accuracy(answers: np.ndarray | Sequence[int], gold: np.ndarray | Sequence[int] | None = None) -> float:
    """Percentage of entries k of :func:`tatoeba_answers` equal to ``gold[k]`` (``None``: k)."""
    pred = np.asarray(answers)
    if pred.ndim != 1 or len(pred) == 0:
        raise ValueError("predictions must be a non-empty 1-D sequence of indices")
    return float(100 * np.mean(pred == _check_gold(gold, len(pred))))


# --------------------------------------------------------------------------------------------
# Files (shared by the ``bucc`` and ``tatoeba`` commands)


def load_embeddings(path: str | os.PathLike, rows: int | None = None, text_path: str | None = None) -> np.ndarray:
    """Load a 2-D floating-point ``.npy`` of embeddings, checking it has ``rows`` rows (one per
    line of ``text_path``, for the message) and only finite values. Raises ``FormatError``."""
    from xstilts.formats import FormatError

    try:
        emb = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found") from None
    except (ValueError, OSError, EOFError) as e:
        raise FormatError(f"{path}: not a readable .npy array ({e})") from None
    if emb.ndim != 2:
        raise FormatError(f"{path}: expected a 2-D array (sentences x dimensions), got shape {emb.shape}")
    if not np.issubdtype(emb.dtype, np.floating):
        raise FormatError(f"{path}: expected float32 or float16 values, got {emb.dtype}")
    if emb.shape[0] == 0 or emb.shape[1] == 0:
        raise FormatError(f"{path}: the array is empty (shape {emb.shape})")
    if rows is not None and emb.shape[0] != rows:
        source = f"{text_path} has {rows} lines" if text_path else f"{rows} rows were expected"
        raise FormatError(f"{path}: {emb.shape[0]} embedding rows but {source}")
    for lo in range(0, len(emb), 65536):
        finite = np.isfinite(emb[lo : lo + 65536]).all(axis=1)
        if not finite.all():
            raise FormatError(f"{path}: row {lo + int(np.argmin(finite))} holds a NaN or infinite value")
    return emb


def read_tatoeba_gold(path: str | os.PathLike, rows: int) -> np.ndarray:
    """Read an XTREME Tatoeba label file (line k: the non-English line that English line k
    translates) for ``rows`` sentences a side. Raises ``FormatError``."""
    from xstilts.formats import FormatError, read_lines

    lines = read_lines(path)
    if len(lines) != rows:
        raise FormatError(f"{path}: {len(lines)} gold labels but the embeddings have {rows} rows")
    gold = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip().isascii() or not line.strip().isdigit():
            # XTREME's retrieval script prints numpy arrays, "[3]": such files need reformatting.
            raise FormatError(f"{path}:{lineno}: expected a line index such as '3', got {line[:40]!r}")
        gold.append(int(line))
    try:
        return _check_gold(gold, rows)
    except ValueError as e:
        raise FormatError(f"{path}: {e}") from None


def write_json(path: str | os.PathLike, result: dict[str, Any], list_key: str) -> None:
    """Write ``result`` as a JSON object with one element of ``result[list_key]`` per line
    (readable and diffable at BUCC sizes), atomically (temporary file, then rename)."""
    import json
    from pathlib import Path

    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    fields = [
        f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in result.items() if key != list_key
    ]
    items = ",\n".join("  " + json.dumps(item, ensure_ascii=False) for item in result.get(list_key, []))
    fields.append(f"{json.dumps(list_key)}: [\n{items}\n]" if items else f"{json.dumps(list_key)}: []")
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        f.write("{\n" + ",\n".join(fields) + "\n}\n")
    os.replace(tmp, target)
