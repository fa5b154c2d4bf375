"""BUCC mining, thresholding and Tatoeba retrieval against brute-force numpy references.

The references below are written from the protocol (xtreme_eval.md section 2), independently
of ``xstilts.retrieval``: full similarity matrices in float64, Python sorting, and an exhaustive
threshold sweep.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from xstilts import retrieval as R
from xstilts.cli import main as cli_main

BACKENDS = ["faiss-cpu", "torch"]


# --------------------------------------------------------------------------------------------
# Brute-force references


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def bf_knn(q: np.ndarray, db: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    sims = np.asarray(q, np.float64) @ np.asarray(db, np.float64).T
    idx = np.array([sorted(range(len(db)), key=lambda j: (-row[j], j))[:k] for row in sims], dtype=np.int64)
    return np.take_along_axis(sims, idx, 1), idx


def bf_mine(src_ids, src_sents, trg_ids, trg_sents, xe, ye, k=4, margin="ratio"):
    def dedup(sents, emb):
        texts, rows = [], {}
        for r, t in enumerate(sents):
            if t not in rows:
                texts.append(t)
            rows[t] = r  # the last occurrence wins
        return texts, unit(np.asarray(emb)[[rows[t] for t in texts]])

    sx, x = dedup(src_sents, xe)
    sy, y = dedup(trg_sents, ye)
    sims = x @ y.T
    kf, kb = min(k, len(y)), min(k, len(x))
    _, fwd = bf_knn(x, y, kf)
    _, bwd = bf_knn(y, x, kb)
    mx = np.array([sims[i, fwd[i]].mean() for i in range(len(x))])
    my = np.array([sims[bwd[j], j].mean() for j in range(len(y))])

    def score(i, j):
        c, m = sims[i, j], (mx[i] + my[j]) / 2
        return {"ratio": c / m, "distance": c - m, "absolute": c}[margin]

    entries = []
    for i in range(len(x)):
        j = max(fwd[i], key=lambda j: (score(i, j), -list(fwd[i]).index(j)))
        entries.append((score(i, j), i, j))
    for j in range(len(y)):
        i = max(bwd[j], key=lambda i: (score(i, j), -list(bwd[j]).index(i)))
        entries.append((score(i, j), i, j))
    order = sorted(range(len(entries)), key=lambda e: (-entries[e][0], e))
    used_x, used_y, mined = set(), set(), []
    for e in order:
        s, i, j = entries[e]
        if i not in used_x and j not in used_y:
            used_x.add(i)
            used_y.add(j)
            if s > 0:
                mined.append((i, j, s))

    def idmap(ids, sents):
        counts = Counter(t.strip() for t in sents)
        return {t.strip(): i for i, t in zip(ids, sents) if counts[t.strip()] == 1}

    mapx, mapy = idmap(src_ids, src_sents), idmap(trg_ids, trg_sents)
    return [(mapx[sx[i].strip()], mapy[sy[j].strip()], s) for i, j, s in mined
            if sx[i].strip() in mapx and sy[j].strip() in mapy]


def bf_prf(pred, gold) -> tuple[float, float, float]:
    pred, gold = {tuple(p[:2]) for p in pred}, {tuple(g) for g in gold}
    c = len(pred & gold)
    if c == 0:
        return 0.0, 0.0, 0.0
    p, r = c / len(pred), c / len(gold)
    return 100 * p, 100 * r, 100 * 2 * p * r / (p + r)


def bf_threshold(cands, gold) -> float:
    """Try every distinct score t as 'keep score >= t'; best F1, then the highest t; the
    threshold is the midpoint to the next lower distinct score (t itself at the bottom)."""
    values = sorted({s for _, _, s in cands}, reverse=True)
    best_t, best_f = None, 0.0
    for t in values:
        f = bf_prf([c for c in cands if c[2] >= t], gold)[2]
        if f > best_f + 1e-12:
            best_t, best_f = t, f
    if best_t is None:
        return 0.0
    pos = values.index(best_t)
    return best_t if pos == len(values) - 1 else (best_t + values[pos + 1]) / 2


def bucc_data(seed: int, n: int = 150, m: int = 130, d: int = 16, dups: bool = True):
    rng = np.random.default_rng(seed)
    y = rng.standard_normal((m, d)).astype(np.float32)
    x = rng.standard_normal((n, d)).astype(np.float32)
    perm = rng.permutation(m)[: n // 2]
    x[: len(perm)] = y[perm] + 0.7 * rng.standard_normal((len(perm), d)).astype(np.float32)
    src = [f"quelle {i}" for i in range(n)]
    trg = [f"target {j}" for j in range(m)]
    if dups:
        for i in rng.choice(n, 12, replace=False):
            src[i] = src[int(rng.integers(n))]
        for j in rng.choice(m, 12, replace=False):
            trg[j] = trg[int(rng.integers(m))]
        src[7] = src[8] + " "  # distinct texts that collide after strip()
    src_ids = [f"de-{i:05d}" for i in range(n)]
    trg_ids = [f"en-{j:05d}" for j in range(m)]
    gold = [(src_ids[i], trg_ids[perm[i]]) for i in range(len(perm)) if rng.random() < 0.8]
    return src_ids, src, trg_ids, trg, x, y, gold


def assert_same_candidates(got, want, tol=1e-5):
    assert [(a, b) for a, b, _ in got] == [(a, b) for a, b, _ in want]
    np.testing.assert_allclose([s for *_, s in got], [s for *_, s in want], rtol=tol, atol=tol)


# --------------------------------------------------------------------------------------------
# kNN


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_matches_bruteforce(backend):
    rng = np.random.default_rng(1)
    q, db = unit(rng.standard_normal((120, 24))), unit(rng.standard_normal((90, 24)))
    scores, idx = R.knn(q.astype(np.float32), db.astype(np.float32), 5, backend)
    want_s, want_i = bf_knn(q, db, 5)
    assert scores.dtype == np.float32 and idx.dtype == np.int64 and idx.shape == (120, 5)
    np.testing.assert_array_equal(idx, want_i)
    np.testing.assert_allclose(scores, want_s, atol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_exact_ties_go_to_lower_index(backend):
    # Small integers make every inner product exact, so the ties below are exact too.
    rng = np.random.default_rng(2)
    db = rng.integers(-3, 4, size=(40, 8)).astype(np.float32)
    db[[3, 10, 25, 31]] = np.array([5, 5, 5, 5, 5, 5, 5, 5], dtype=np.float32)
    q = np.tile(np.ones(8, dtype=np.float32), (30, 1))
    scores, idx = R.knn(q, db, 3, backend)
    assert idx.tolist() == [[3, 10, 25]] * 30
    assert scores.tolist() == [[40.0, 40.0, 40.0]] * 30
    _, top1 = R.knn(q, db, 1, backend)
    assert top1.ravel().tolist() == [3] * 30


@pytest.mark.parametrize("backend", BACKENDS)
def test_knn_chunking_changes_nothing(backend, monkeypatch):
    rng = np.random.default_rng(3)
    q, db = rng.standard_normal((333, 16)).astype(np.float32), rng.standard_normal((77, 16)).astype(np.float32)
    whole = R.knn(q, db, 4, backend)
    monkeypatch.setattr(R, "FAISS_QUERY_CHUNK", 50)
    monkeypatch.setattr(R, "TORCH_BLOCK_BYTES", 77 * 4 * 40)
    chunked = R.knn(q, db, 4, backend)
    np.testing.assert_array_equal(whole[1], chunked[1])
    np.testing.assert_allclose(whole[0], chunked[0], atol=1e-6)


def test_knn_backends_agree_and_accept_float16():
    rng = np.random.default_rng(4)
    q, db = rng.standard_normal((200, 32)).astype(np.float16), rng.standard_normal((150, 32)).astype(np.float16)
    a, b = R.knn(q, db, 4, "faiss-cpu"), R.knn(q, db, 4, "torch")
    np.testing.assert_array_equal(a[1], b[1])
    assert R.resolve_backend("auto") in {"faiss-cpu", "faiss-gpu", "torch"}


def test_torch_path_forces_full_fp32_matmuls_and_restores_the_setting():
    torch = pytest.importorskip("torch")
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        with R._no_tf32(torch, torch.device("cuda")):
            assert matmul.fp32_precision == "ieee"
        assert matmul.fp32_precision == "tf32"
    finally:
        matmul.fp32_precision = before


def test_balanced_chunks_cover_everything_evenly():
    chunks = R._balanced_chunks(1001, 250)
    assert chunks == [(0, 200), (200, 400), (400, 601), (601, 801), (801, 1001)]
    assert R._balanced_chunks(0, 10) == []


@pytest.mark.parametrize(
    "q, db, k, message",
    [
        (np.zeros((3, 4)), np.zeros((5, 3)), 1, "dimensions"),
        (np.zeros((3, 4)), np.zeros((5, 4)), 6, "k must be"),
        (np.zeros((3, 4)), np.zeros((5, 4)), 0, "k must be"),
        (np.zeros(4), np.zeros((5, 4)), 1, "2-D"),
        (np.zeros((3, 4)), np.zeros((0, 4)), 1, "empty"),
        (np.zeros((3, 4), dtype=np.int32), np.zeros((5, 4)), 1, "floating"),
    ],
)
def test_knn_rejects_bad_input(q, db, k, message):
    with pytest.raises(ValueError, match=message):
        R.knn(q, db, k, "faiss-cpu")


def test_unknown_backend_is_an_error():
    with pytest.raises(ValueError, match="unknown backend"):
        R.knn(np.ones((1, 2)), np.ones((1, 2)), 1, "annoy")


# --------------------------------------------------------------------------------------------
# Mining


@pytest.mark.parametrize("seed, margin, k", [(0, "ratio", 4), (1, "ratio", 4), (2, "distance", 4),
                                             (3, "absolute", 4), (4, "ratio", 2), (5, "ratio", 1)])
@pytest.mark.parametrize("backend", BACKENDS)
def test_mine_bitext_matches_bruteforce(seed, margin, k, backend):
    src_ids, src, trg_ids, trg, x, y, _ = bucc_data(seed)
    got = R.mine_bitext(src_ids, src, trg_ids, trg, x, y, k=k, margin=margin, backend=backend)
    want = bf_mine(src_ids, src, trg_ids, trg, x, y, k=k, margin=margin)
    assert len(want) > 40
    assert_same_candidates(got, want)
    scores = [s for *_, s in got]
    assert scores == sorted(scores, reverse=True) and min(scores) > 0


def test_mine_uses_k_capped_by_the_other_side():
    src_ids, src, trg_ids, trg, x, y, _ = bucc_data(6, n=40, m=3, dups=False)
    got = R.mine_bitext(src_ids, src, trg_ids, trg, x, y, k=4)
    assert_same_candidates(got, bf_mine(src_ids, src, trg_ids, trg, x, y, k=4))
    assert len(got) <= 3


def test_ratio_margin_value_by_hand():
    # Two sources, two targets, k = 2, so every mean covers both neighbours. s1-t0 has the
    # highest cosine, but both are close to everything; the margin prefers s0-t0 and s1-t1.
    x = np.array([[1.0, 0.0], [0.6, 0.8]], dtype=np.float32)
    y = np.array([[0.8, 0.6], [0.0, 1.0]], dtype=np.float32)
    cos = np.array([[0.8, 0.0], [0.96, 0.8]])
    mx, my = cos.mean(axis=1), cos.mean(axis=0)  # [0.4, 0.88] and [0.88, 0.4]
    ratio = cos / ((mx[:, None] + my[None, :]) / 2)  # [[1.25, 0], [1.0909, 1.25]]
    assert ratio[0, 0] == pytest.approx(1.25) and ratio[1, 0] == pytest.approx(0.96 / 0.88)
    got = R.mine_bitext(["s0", "s1"], ["a", "b"], ["t0", "t1"], ["c", "d"], x, y, k=2)
    # Equal scores: the forward pair of s0 comes first (stable order), then s1's.
    assert [(a, b) for a, b, _ in got] == [("s0", "t0"), ("s1", "t1")]
    np.testing.assert_allclose([s for *_, s in got], [1.25, 1.25], atol=1e-6)
    got = R.mine_bitext(["s0", "s1"], ["a", "b"], ["t0", "t1"], ["c", "d"], x, y, k=2, margin="absolute")
    assert [(a, b) for a, b, _ in got] == [("s1", "t0")]
    got = R.mine_bitext(["s0", "s1"], ["a", "b"], ["t0", "t1"], ["c", "d"], x, y, k=2, margin="distance")
    np.testing.assert_allclose([s for *_, s in got], [0.8 - 0.64, 0.8 - 0.64], atol=1e-6)


def test_repeated_text_keeps_last_embedding_and_has_no_id():
    base = np.eye(4, dtype=np.float32)
    y = base.copy()
    # "dup" occurs at rows 0 and 2: its first embedding points at t0, its last at t2.
    x = np.stack([base[0], base[1], base[2] + 0.01 * base[3], base[3]])
    src = ["dup", "b", "dup", "d"]
    texts, rows = R.unique_sentences(src)
    assert texts == ["dup", "b", "d"] and rows.tolist() == [2, 1, 3]
    pairs = R.mine_pairs(R.normalize(x[rows]), R.normalize(y), k=2, backend="faiss-cpu")
    assert sorted((texts[i], j) for i, j, _ in pairs) == [("b", 1), ("d", 3), ("dup", 2)]
    # "dup" has no id (its text repeats), so its pair is dropped after the one-to-one merge.
    got = R.mine_bitext(["s0", "s1", "s2", "s3"], src, ["t0", "t1", "t2", "t3"], ["w", "x", "y", "z"], x, y, k=2)
    assert sorted((a, b) for a, b, _ in got) == [("s1", "t1"), ("s3", "t3")]


def test_texts_equal_after_strip_have_no_id():
    mapping = R.sentence_ids(["a", "b", "c", "d"], ["x", " x", "y ", "z"])
    assert mapping == {"y": "c", "z": "d"}


def test_mine_pairs_greedy_merge_by_hand():
    # s0 and s1 both prefer t0 (k = 1, plain cosine); s0 is closer, so the one-to-one merge
    # gives t0 to s0 and s1 gets nothing, although it is some target's second choice.
    x = R.normalize(np.array([[1.0, 0.05], [1.0, 0.3], [0.0, 1.0]]))
    y = R.normalize(np.array([[1.0, 0.0], [0.2, 1.0]]))
    pairs = R.mine_pairs(x, y, k=1, margin="absolute", backend="faiss-cpu")
    sims = unit(x) @ unit(y).T
    assert [(i, j) for i, j, _ in pairs] == [(0, 0), (2, 1)]
    np.testing.assert_allclose([s for *_, s in pairs], [sims[0, 0], sims[2, 1]])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"src_emb": np.ones((3, 4), np.float32)}, "2 sentences but 3 embedding rows"),
        ({"trg_emb": np.ones((2, 5), np.float32)}, "dimensions"),
        ({"src_emb": np.array([[1, 0], [0, 0]], np.float32), "trg_emb": np.eye(2, dtype=np.float32)}, "row 1 is zero"),
        ({"margin": "cosine"}, "unknown margin"),
        ({"src_ids": ["a"]}, "1 ids but 2 sentences"),
    ],
)
def test_mine_bitext_rejects_bad_input(kwargs, message):
    args = dict(src_ids=["a", "b"], src_sentences=["x", "y"], trg_ids=["c", "d"], trg_sentences=["u", "v"],
                src_emb=np.eye(2, 4, dtype=np.float32), trg_emb=np.eye(2, 4, dtype=np.float32))
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        R.mine_bitext(**args)


# --------------------------------------------------------------------------------------------
# Threshold, extraction, scoring


def test_threshold_midpoint_by_hand():
    cands = [("a", "1", 0.9), ("b", "2", 0.8), ("c", "3", 0.7), ("d", "4", 0.6)]
    res = R.optimize_threshold(cands, [("a", "1"), ("b", "2")])
    assert res == {"threshold": pytest.approx(0.75), "precision": 100.0, "recall": 100.0, "f1": 100.0}


def test_threshold_when_best_cut_keeps_everything():
    # The official loop raises IndexError here; the threshold is the lowest score itself.
    cands = [("a", "1", 1.3), ("b", "2", 1.1), ("c", "3", 1.05)]
    res = R.optimize_threshold(cands, [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4")])
    assert res["threshold"] == 1.05
    assert (res["precision"], res["recall"]) == (100.0, 75.0)
    assert len(R.extract(cands, res["threshold"])) == 3


def test_threshold_without_correct_candidates_is_zero():
    res = R.optimize_threshold([("a", "1", 1.2), ("b", "2", 1.1)], [("x", "y")])
    assert res == {"threshold": 0.0, "precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert R.optimize_threshold([], [("x", "y")])["threshold"] == 0.0


def test_threshold_never_splits_equal_scores():
    # The official loop would cut after "a" alone (F1 2/3) at threshold 1.2, which ">=" then
    # cannot realise (it keeps "b" too). The realisable cuts: after both 1.2s (F1 1/2), after
    # 1.0 (2/5), after 0.9 (1/3).
    cands = [("a", "1", 1.2), ("b", "2", 1.2), ("c", "3", 1.0), ("d", "4", 0.9)]
    res = R.optimize_threshold(cands, [("a", "1"), ("x", "y")])
    assert res == {"threshold": pytest.approx(1.1), "precision": 50.0, "recall": 50.0, "f1": 50.0}


def test_first_of_equal_f1_cuts_wins():
    # F1 = 2c / (n + |gold|): keeping 1 (c=1) and keeping 4 (c=2) both give 2/3; the first
    # (highest) cut wins, as in the official strict-improvement loop.
    cands = [("a", "1", 2.0), ("b", "2", 1.8), ("c", "3", 1.6), ("d", "4", 1.4), ("e", "5", 1.2)]
    res = R.optimize_threshold(cands, [("a", "1"), ("d", "4")])
    assert res["threshold"] == pytest.approx(1.9)
    assert res["f1"] == pytest.approx(100 * 2 / 3)


@pytest.mark.parametrize("seed", range(8))
def test_threshold_matches_exhaustive_sweep(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 60))
    # Rounded scores create ties on purpose; duplicate id pairs keep their highest score.
    cands = [(f"s{i}", f"t{i}", float(np.round(rng.uniform(0.9, 1.4), 2))) for i in range(n)]
    cands += [cands[int(rng.integers(n))][:2] + (0.5,)]
    gold = [(f"s{i}", f"t{i}") for i in range(n) if rng.random() < 0.5] + [("s-x", "t-x")]
    best: dict[tuple[str, str], float] = {}
    for a, b, sc in cands:
        best[(a, b)] = max(sc, best.get((a, b), sc))
    unique = [(a, b, sc) for (a, b), sc in best.items()]
    res = R.optimize_threshold(cands, gold)
    want_t = bf_threshold(unique, gold)
    assert res["threshold"] == pytest.approx(want_t, abs=1e-12)
    p, r, f = bf_prf([c for c in unique if c[2] >= want_t], gold) if want_t else (0.0, 0.0, 0.0)
    assert (res["precision"], res["recall"], res["f1"]) == pytest.approx((p, r, f))


def test_extract_keeps_ge_threshold_sorted_and_unique():
    cands = [("a", "1", 1.0), ("b", "2", 1.2), ("a", "1", 1.1), ("c", "3", 0.9), ("d", "4", 1.2)]
    assert R.extract(cands, 1.0) == [("b", "2", 1.2), ("d", "4", 1.2), ("a", "1", 1.1)]


def test_score_pairs_values():
    pred = [("a", "1", 2.0), ("b", "2", 1.0), ("c", "9", 1.0), ("a", "1", 0.5)]
    gold = [("a", "1"), ("b", "2"), ("d", "4"), ("e", "5"), ("a", "1")]
    res = R.score_pairs(pred, gold)
    assert res == pytest.approx({"precision": 100 * 2 / 3, "recall": 50.0, "f1": 100 * 4 / 7})
    assert R.score_pairs([], gold) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    with pytest.raises(ValueError, match="no pairs"):
        R.score_pairs(pred, [])


@pytest.mark.parametrize("seed", [10, 11])
def test_dev_threshold_applied_to_test(seed):
    dev = bucc_data(seed)
    test = bucc_data(seed + 100, n=170, m=160)
    dev_c = R.mine_bitext(*dev[:6], backend="faiss-cpu")
    test_c = R.mine_bitext(*test[:6], backend="faiss-cpu")
    tuned = R.optimize_threshold(dev_c, dev[6])
    th = bf_threshold(bf_mine(*dev[:6]), dev[6])
    assert tuned["threshold"] == pytest.approx(th, abs=1e-5)
    kept = R.extract(test_c, tuned["threshold"])
    want = [c for c in bf_mine(*test[:6]) if c[2] >= th]
    assert_same_candidates(kept, want)
    assert tuple(R.score_pairs(kept, test[6]).values()) == pytest.approx(bf_prf(want, test[6]))


# --------------------------------------------------------------------------------------------
# Tatoeba


def tatoeba_data(seed: int, n: int = 120, d: int = 16):
    rng = np.random.default_rng(seed)
    en = rng.standard_normal((n, d)).astype(np.float32)
    xx = (en + 1.1 * rng.standard_normal((n, d))).astype(np.float32)
    return xx, en


@pytest.mark.parametrize("backend", BACKENDS)
def test_tatoeba_both_directions(backend):
    xx, en = tatoeba_data(0)
    sims = unit(xx) @ unit(en).T
    want_xx2en, want_en2xx = sims.argmax(axis=1), sims.argmax(axis=0)
    got_xx2en = R.tatoeba_predict(xx, en, "xx2en", backend)
    got_en2xx = R.tatoeba_predict(xx, en, "en2xx", backend)
    np.testing.assert_array_equal(got_xx2en, want_xx2en)
    np.testing.assert_array_equal(got_en2xx, want_en2xx)
    assert (want_xx2en != want_en2xx).any()  # the directions really differ on this data
    n = len(en)
    assert R.tatoeba_accuracy(got_xx2en) == pytest.approx(100 * np.mean(want_xx2en == np.arange(n)))
    assert R.tatoeba_accuracy(got_en2xx) == pytest.approx(100 * np.mean(want_en2xx == np.arange(n)))


def test_tatoeba_default_direction_is_xx2en_and_errors():
    xx, en = tatoeba_data(1)
    np.testing.assert_array_equal(R.tatoeba_predict(xx, en), R.tatoeba_predict(xx, en, "xx2en"))
    assert R.tatoeba_accuracy([0, 1, 5, 3]) == 75.0
    with pytest.raises(ValueError, match="as many of each"):
        R.tatoeba_predict(xx, en[:-1])
    with pytest.raises(ValueError, match="unknown direction"):
        R.tatoeba_predict(xx, en, "en2en")
    with pytest.raises(ValueError, match="non-empty"):
        R.tatoeba_accuracy([])


def test_xtreme_order_sorts_the_stripped_english_side_stably():
    # Hand-worked: stripped texts b a c a b -> a(1) a(3) b(0) b(4) c(2); "Z" sorts before "a".
    english = ["b", "a", "c ", " a", "b", "Z"]
    assert R.xtreme_tatoeba_order(english).tolist() == [5, 1, 3, 0, 4, 2]
    assert R.xtreme_tatoeba_order([]).tolist() == []


def test_answers_in_xtreme_layout():
    # English row k translates non-English row gold[k].
    gold = np.array([2, 0, 1])
    # en2xx: English row k retrieved non-English row pred[k].
    assert R.tatoeba_answers([2, 1, 1], "en2xx", gold).tolist() == [2, 1, 1]
    # xx2en: non-English row i retrieved English row pred[i] = [1, 0, 1]. Line 0: its translation
    # (row 2) found English row 1, which translates row 0: wrong. Line 1: row 0 found English
    # row 1 -> 0: right. Line 2: row 1 found English row 0 -> 2: wrong.
    answers = R.tatoeba_answers([1, 0, 1], "xx2en", gold)
    assert answers.tolist() == [0, 0, 2]
    assert R.tatoeba_accuracy(answers, gold) == pytest.approx(100 / 3)
    # Line-aligned (no gold): the predictions as they are.
    assert R.tatoeba_answers([1, 0, 2], "xx2en").tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="exactly once"):
        R.tatoeba_answers([0, 1, 2], "en2xx", [0, 0, 1])
    with pytest.raises(ValueError, match="2 lines but there are 3"):
        R.tatoeba_accuracy([0, 1, 2], [0, 1])


def xtreme_preprocess(english: list[str]) -> tuple[list[str], list[str]]:
    """What XTREME's tatoeba_preprocess writes (reference/xtreme_eval.md section 2.2), written
    from its description: the English file, stripped lines sorted by text (stable), and the
    hidden label file: for each sorted line, its LASER line number."""
    rows = sorted(((line.strip(), i) for i, line in enumerate(english)), key=lambda row: row[0])
    return [text for text, _ in rows], [str(i) for _, i in rows]


def tatoeba_pair(seed: int, n: int = 60, d: int = 16):
    """LASER-layout texts and embeddings, English in no particular order, two equal texts."""
    rng = np.random.default_rng(seed)
    words = ["tom", "mary", "runs", "sleeps", "here", "now", "cats", "eat", "a", "B"]
    english = [" ".join(rng.choice(words, size=4)) + f" {i}" for i in range(n)]
    english[7] = english[3]
    xx, en = tatoeba_data(seed, n, d)
    en[7] = en[3]  # equal texts, equal embeddings
    return english, xx, en


@pytest.mark.parametrize("direction", ["en2xx", "xx2en"])
def test_tatoeba_command_on_xtreme_preprocessed_files(tmp_path, direction):
    english, xx, en = tatoeba_pair(11)
    sorted_english, labels = xtreme_preprocess(english)
    gold = np.array([int(g) for g in labels])
    assert sorted_english != [e.strip() for e in english]  # the layouts really differ
    (tmp_path / "laser.eng").write_text("\n".join(english) + "\n", encoding="utf-8")
    (tmp_path / "test-de.tsv").write_text("\n".join(labels) + "\n", encoding="utf-8")
    np.save(tmp_path / "xx.npy", xx)
    np.save(tmp_path / "en_laser.npy", en)
    np.save(tmp_path / "en_xtreme.npy", en[gold])  # rows of XTREME's sorted de-en.en

    sims = unit(xx) @ unit(en).T  # LASER layout, row i translates row i
    if direction == "en2xx":
        # XTREME's own prediction: sorted English line k queries the non-English side.
        want = np.array([int(np.argmax(sims[:, gold[k]])) for k in range(len(gold))])
    else:
        # The translation of English line k queries the English side; the English row it finds
        # is named by its LASER line, the non-English line it translates.
        want = np.array([int(np.argmax(sims[gold[k]])) for k in range(len(gold))])
    accuracy = 100 * np.mean(want == gold)
    laser_accuracy = 100 * np.mean((sims.argmax(axis=0) if direction == "en2xx" else sims.argmax(axis=1))
                                   == np.arange(len(gold)))

    def path(name: str) -> str:
        return str(tmp_path / name)

    # XTREME's layout with its label file, and LASER's with the English text: the same files.
    runs = {"gold": ["--trg-emb", path("en_xtreme.npy"), "--gold", path("test-de.tsv")],
            "text": ["--trg-emb", path("en_laser.npy"), "--trg-text", path("laser.eng")]}
    for name, extra in runs.items():
        argv = ["tatoeba", "--src-emb", path("xx.npy"), *extra, "--direction", direction,
                "--output", path(f"{name}.json"), "--predictions", path(f"{name}/tatoeba/test-de.tsv")]
        assert cli_main(argv) == 0
        res = json.loads((tmp_path / f"{name}.json").read_text())
        assert res["predictions"] == want.tolist(), name
        assert res["accuracy"] == pytest.approx(accuracy) == pytest.approx(laser_accuracy)
        # The prediction file scores against XTREME's label file as the official evaluate does.
        from xstilts.xtreme import score_language

        got = score_language("tatoeba", tmp_path / name / "tatoeba" / "test-de.tsv", tmp_path / "test-de.tsv", "de")
        assert got == {"accuracy": pytest.approx(accuracy)}
    assert 0 < accuracy < 100


def test_tatoeba_command_gold_errors(tmp_path, capsys):
    xx, en = tatoeba_data(12, n=3)
    np.save(tmp_path / "xx.npy", xx)
    np.save(tmp_path / "en.npy", en)
    cases = [("[1]\n[0]\n[2]\n", "expected a line index such as '3', got '[1]'"),
             ("1\n0\n", "2 gold labels but the embeddings have 3 rows"),
             ("1\n1\n2\n", "exactly once"),
             ("0\n1\n3\n", "exactly once")]
    for text, message in cases:
        (tmp_path / "gold.tsv").write_text(text)
        argv = ["tatoeba", "--src-emb", str(tmp_path / "xx.npy"), "--trg-emb", str(tmp_path / "en.npy"),
                "--gold", str(tmp_path / "gold.tsv"), "--output", str(tmp_path / "o.json")]
        assert cli_main(argv) == 1, message
        assert message in capsys.readouterr().err
    (tmp_path / "en.txt").write_text("a\nb\n")
    argv = ["tatoeba", "--src-emb", str(tmp_path / "xx.npy"), "--trg-emb", str(tmp_path / "en.npy"),
            "--trg-text", str(tmp_path / "en.txt"), "--output", str(tmp_path / "o.json")]
    assert cli_main(argv) == 1
    assert "has 2 lines but" in capsys.readouterr().err
    assert not (tmp_path / "o.json").exists()


def test_pipeline_tatoeba_files_are_xtreme_files(tmp_path):
    from xstilts import pipeline
    from xstilts.xtreme import score_language

    english, xx, en = tatoeba_pair(13)
    data = tmp_path / "data" / "tatoeba" / "de"
    data.mkdir(parents=True)
    (data / "test.source.txt").write_text("".join(f"satz {i}\n" for i in range(len(english))), encoding="utf-8")
    (data / "test.target.txt").write_text("".join(f"{e}\n" for e in english), encoding="utf-8")
    emb = tmp_path / "emb" / "tatoeba" / "de"
    emb.mkdir(parents=True)
    np.save(emb / "test.source.npy", xx)
    np.save(emb / "test.target.npy", en)
    pipeline.write_labels("tatoeba", ["de"], tmp_path / "data", tmp_path / "labels")
    _, labels = xtreme_preprocess(english)
    assert (tmp_path / "labels" / "tatoeba" / "test-de.tsv").read_text().splitlines() == labels
    for direction in ("xx2en", "en2xx"):
        details = pipeline.search_tatoeba({"languages": ["de"], "direction": direction}, tmp_path / "data",
                                          tmp_path / "emb", tmp_path / direction, tmp_path / f"{direction}.json")
        # The same lines as the command on XTREME's preprocessed files (test above).
        gold = np.array([int(g) for g in labels])
        sims = unit(xx) @ unit(en).T
        want = [int(np.argmax(sims[:, g] if direction == "en2xx" else sims[g])) for g in gold]
        pred = tmp_path / direction / "tatoeba" / "test-de.tsv"
        assert pred.read_text().splitlines() == [str(w) for w in want]
        score = score_language("tatoeba", pred, tmp_path / "labels" / "tatoeba" / "test-de.tsv", "de")["accuracy"]
        assert score == pytest.approx(details["languages"]["de"]["accuracy"]) == pytest.approx(
            100 * np.mean(np.array(want) == gold))


# --------------------------------------------------------------------------------------------
# Commands end to end


def write_bucc(tmp: Path, data, name: str, emb_dtype=np.float32) -> dict[str, str]:
    src_ids, src, trg_ids, trg, x, y, gold = data
    paths = {k: str(tmp / f"{name}.{k}") for k in ("src", "trg", "gold", "src_emb", "trg_emb")}
    Path(paths["src"]).write_text("".join(f"{i}\t{s}\n" for i, s in zip(src_ids, src)), encoding="utf-8")
    Path(paths["trg"]).write_text("".join(f"{i}\t{s}\n" for i, s in zip(trg_ids, trg)), encoding="utf-8")
    Path(paths["gold"]).write_text("".join(f"{a}\t{b}\n" for a, b in gold), encoding="utf-8")
    np.save(paths["src_emb"] + ".npy", x.astype(emb_dtype))
    np.save(paths["trg_emb"] + ".npy", y.astype(emb_dtype))
    paths["src_emb"] += ".npy"
    paths["trg_emb"] += ".npy"
    return paths


def bucc_cmd(p: dict[str, str], out: Path, *extra: str) -> list[str]:
    return ["bucc", "--src", p["src"], "--trg", p["trg"], "--src-emb", p["src_emb"], "--trg-emb", p["trg_emb"],
            "--output", str(out), *extra]


def test_bucc_command_dev_then_test(tmp_path):
    dev, test = bucc_data(20), bucc_data(21, n=140, m=150)
    pd, pt = write_bucc(tmp_path, dev, "dev", np.float16), write_bucc(tmp_path, test, "test")
    assert cli_main(bucc_cmd(pd, tmp_path / "dev.json", "--gold", pd["gold"])) == 0
    out = json.loads((tmp_path / "dev.json").read_text())
    assert list(out) == ["threshold", "precision", "recall", "f1", "pairs"]
    # float16 files: the reference sees the same float16-rounded vectors.
    x16, y16 = dev[4].astype(np.float16).astype(np.float32), dev[5].astype(np.float16).astype(np.float32)
    want = bf_mine(*dev[:4], x16, y16)
    assert_same_candidates([tuple(p) for p in out["pairs"]], want)
    th = bf_threshold(want, dev[6])
    assert out["threshold"] == pytest.approx(th, abs=1e-5)
    assert (out["precision"], out["recall"], out["f1"]) == pytest.approx(
        bf_prf([c for c in want if c[2] >= th], dev[6]))

    assert cli_main(bucc_cmd(pt, tmp_path / "test.json", "--threshold", str(out["threshold"]),
                             "--gold", pt["gold"])) == 0
    res = json.loads((tmp_path / "test.json").read_text())
    want_t = [c for c in bf_mine(*test[:6]) if c[2] >= out["threshold"]]
    assert_same_candidates([tuple(p) for p in res["pairs"]], want_t)
    assert res["threshold"] == out["threshold"]
    assert (res["precision"], res["recall"], res["f1"]) == pytest.approx(bf_prf(want_t, test[6]))

    assert cli_main(bucc_cmd(pt, tmp_path / "apply.json", "--threshold", "1.1")) == 0
    res = json.loads((tmp_path / "apply.json").read_text())
    assert list(res) == ["threshold", "pairs"] and min(p[2] for p in res["pairs"]) >= 1.1

    assert cli_main(bucc_cmd(pt, tmp_path / "mine.json")) == 0
    res = json.loads((tmp_path / "mine.json").read_text())
    assert res["threshold"] is None and len(res["pairs"]) == len(bf_mine(*test[:6]))


def bad_bucc_inputs(tmp: Path, p: dict[str, str]) -> list[tuple[dict[str, str], str]]:
    def write(name: str, text: str) -> str:
        (tmp / name).write_text(text, encoding="utf-8")
        return str(tmp / name)

    def save(name: str, arr) -> str:
        np.save(tmp / name, arr)
        return str(tmp / name)

    n_src = len(Path(p["src"]).read_text().splitlines())
    return [
        ({"src_emb": save("short.npy", np.ones((n_src - 1, 16), np.float32))}, "embedding rows but"),
        ({"trg_emb": save("wide.npy", np.ones((130, 8), np.float32))}, "dimensions"),
        ({"src_emb": save("flat.npy", np.ones(n_src, np.float32))}, "2-D"),
        ({"src_emb": save("int.npy", np.ones((n_src, 16), np.int64))}, "float32 or float16"),
        ({"src_emb": save("nan.npy", np.full((n_src, 16), np.nan, np.float32))}, "NaN"),
        ({"src_emb": write("junk.npy", "not numpy")}, "not a readable .npy"),
        ({"src": write("notab.tsv", "only-one-field\n")}, "expected 'id<TAB>sentence'"),
        ({"trg": write("empty.tsv", "")}, "no sentences"),
        ({"gold": write("empty.gold", "\n")}, "no gold pairs"),
        ({"gold": write("bad.gold", "a b c\n")}, "expected 'source_id<TAB>target_id'"),
        ({"src": str(tmp / "missing.tsv")}, "file not found"),
    ]


def test_bucc_command_errors(tmp_path, capsys):
    p = write_bucc(tmp_path, bucc_data(30), "d")
    for change, message in bad_bucc_inputs(tmp_path, p):
        q = {**p, **change}
        assert cli_main(bucc_cmd(q, tmp_path / "o.json", "--gold", q["gold"])) == 1, message
        err = capsys.readouterr().err
        assert "xstilts bucc: error:" in err and message in err, (message, err)
        assert not (tmp_path / "o.json").exists()
    assert cli_main(bucc_cmd(p, tmp_path / "o.json", "--threshold", "nan")) == 1
    assert "finite" in capsys.readouterr().err
    assert cli_main(bucc_cmd(p, tmp_path / "o.json", "--k", "0")) == 1
    assert "k must be" in capsys.readouterr().err


def test_bucc_command_accepts_repeated_lines(tmp_path, caplog):
    # BUCC releases repeat some lines (same id, same text); the official scoring drops the text,
    # as it drops a text under several ids, and so must the command, with a warning.
    src_ids, src, trg_ids, trg, x, y, gold = bucc_data(31, dups=False)
    # The first gold pair's source line is written three times, a target line twice; an
    # embedder gives a repeated line the same vector.
    s_row, t_row = src_ids.index(gold[0][0]), 5
    rep = {"src": [s_row, s_row], "trg": [t_row]}
    src_ids2 = src_ids + [src_ids[i] for i in rep["src"]]
    src2 = src + [src[i] for i in rep["src"]]
    x2 = np.concatenate([x, x[rep["src"]]])
    trg_ids2, trg2, y2 = trg_ids + [trg_ids[t_row]], trg + [trg[t_row]], np.concatenate([y, y[rep["trg"]]])
    p = write_bucc(tmp_path, (src_ids2, src2, trg_ids2, trg2, x2, y2, gold), "rep")
    with caplog.at_level("WARNING"):
        assert cli_main(bucc_cmd(p, tmp_path / "rep.json", "--gold", p["gold"])) == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert f"{p['src']}: ids on more than one line: {src_ids[s_row]}; as in the official scoring" in warnings[0]
    assert f"{p['trg']}: ids on more than one line: {trg_ids[t_row]}; as in" in warnings[1]
    out = json.loads((tmp_path / "rep.json").read_text())
    want = bf_mine(src_ids2, src2, trg_ids2, trg2, x2, y2)
    assert_same_candidates([tuple(c) for c in out["pairs"]], want)
    # The repeated texts have no id left: no candidate names them.
    assert not {c[0] for c in out["pairs"]} & {src_ids[s_row]}
    assert not {c[1] for c in out["pairs"]} & {trg_ids[t_row]}
    # Without the repetitions that source sentence is mined (so dropping it was a real change).
    q = write_bucc(tmp_path, (src_ids, src, trg_ids, trg, x, y, gold), "plain")
    assert cli_main(bucc_cmd(q, tmp_path / "plain.json", "--gold", q["gold"])) == 0
    assert src_ids[s_row] in {c[0] for c in json.loads((tmp_path / "plain.json").read_text())["pairs"]}


def test_tatoeba_command(tmp_path, capsys):
    xx, en = tatoeba_data(5)
    np.save(tmp_path / "xx.npy", xx.astype(np.float16))
    np.save(tmp_path / "en.npy", en)
    sims = unit(xx.astype(np.float16)) @ unit(en).T
    for direction, want in (("xx2en", sims.argmax(axis=1)), ("en2xx", sims.argmax(axis=0))):
        out = tmp_path / f"{direction}.json"
        argv = ["tatoeba", "--src-emb", str(tmp_path / "xx.npy"), "--trg-emb", str(tmp_path / "en.npy"),
                "--output", str(out)]
        assert cli_main(argv + (["--direction", direction] if direction == "en2xx" else [])) == 0
        res = json.loads(out.read_text())
        assert res == {"direction": direction, "accuracy": pytest.approx(100 * np.mean(want == np.arange(len(en)))),
                       "predictions": want.tolist()}
    np.save(tmp_path / "en_short.npy", en[:-2])
    argv = ["tatoeba", "--src-emb", str(tmp_path / "xx.npy"), "--trg-emb", str(tmp_path / "en_short.npy"),
            "--output", str(tmp_path / "bad.json")]
    assert cli_main(argv) == 1
    assert "hold as many sentences" in capsys.readouterr().err


def test_installed_entry_point(tmp_path):
    import shutil
    import subprocess
    import sys

    script = shutil.which("xstilts", path=str(Path(sys.executable).parent))
    if script is None:
        pytest.skip("the xstilts console script is not installed next to this interpreter")
    xx, en = tatoeba_data(6, n=20)
    np.save(tmp_path / "xx.npy", xx)
    np.save(tmp_path / "en.npy", en)
    done = subprocess.run(
        [script, "tatoeba", "--src-emb", str(tmp_path / "xx.npy"), "--trg-emb", str(tmp_path / "en.npy"),
         "--output", str(tmp_path / "o.json")],
        capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "accuracy" in done.stderr and "faiss.loader" not in done.stderr
    assert json.loads((tmp_path / "o.json").read_text())["direction"] == "xx2en"
