"""Span-QA post-processing: from start/end logits of context windows to answer strings.

Pure functions (numpy in, strings out), following the transformers QA example and jiant:
the best-scoring valid span over all windows of an example, with ``n_best_size`` start and end
candidates per window and spans of at most ``max_answer_length`` tokens. With
``allow_null`` (SQuAD v2.0), the empty answer wins when the best span scores below the
smallest "no answer" score (start and end at the window's CLS token) of the example's windows.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def best_answers(
    records: Sequence[dict[str, Any]],
    example_index: Sequence[int],
    offsets: Sequence[Sequence[tuple[int, int] | None]],
    start_logits: Sequence[np.ndarray],
    end_logits: Sequence[np.ndarray],
    n_best_size: int = 20,
    max_answer_length: int = 30,
    allow_null: bool = False,
    null_index: Sequence[int] | None = None,
) -> dict[str, str]:
    """Answer text per record id. ``start_logits[i]``/``end_logits[i]`` belong to feature i.

    ``null_index[i]`` is feature i's "no answer" position (its CLS token; 0 when not given).
    """
    best: dict[int, tuple[float, str]] = {}
    null: dict[int, float] = {}
    for feature, ex in enumerate(example_index):
        starts, ends = np.asarray(start_logits[feature]), np.asarray(end_logits[feature])
        spans = offsets[feature]
        n = min(len(spans), len(starts))
        cls = null_index[feature] if null_index is not None else 0
        null_score = float(starts[cls] + ends[cls])
        null[ex] = min(null.get(ex, null_score), null_score)
        start_candidates = np.argsort(-starts[:n], kind="stable")[:n_best_size]
        end_candidates = np.argsort(-ends[:n], kind="stable")[:n_best_size]
        context = records[ex]["context"]
        for s in start_candidates:
            if spans[s] is None:
                continue
            for e in end_candidates:
                if spans[e] is None or e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(starts[s] + ends[e])
                if ex not in best or score > best[ex][0]:
                    best[ex] = (score, context[spans[s][0] : spans[e][1]])
    answers: dict[str, str] = {}
    for ex, record in enumerate(records):
        if ex not in best and ex not in null:
            continue  # no window at all (cannot happen with non-empty contexts)
        score, text = best.get(ex, (float("-inf"), ""))
        if allow_null and null.get(ex, float("-inf")) > score:
            text = ""
        answers[record["id"]] = text
    return answers
