"""XTREME metrics, re-implemented from the official semantics (values ×100, like ``evaluate.py``).

Every function here is pure: it takes already-read predictions and gold labels and returns
numbers. Reading the official folder layout is :mod:`xstilts.xtreme`'s job.

Values are computed in the same order of floating-point operations as the official script, so
that a score file written from them is byte-identical to the official one. For the same reason
the cases where the official script yields the *integer* ``0`` (seqeval's undefined precision,
recall or F1, and BUCC with no correct pair) return ``0`` rather than ``0.0``; both compare
equal, but ``json.dump`` writes them differently.

Semantics (see the module functions for details):

* accuracy: exact equality of prediction and label, per example.
* sequence labelling: chunk precision/recall/F1 with the semantics of **seqeval 0.0.12**, the
  version that reproduces the official UD-POS expectation; for POS tags this makes every
  maximal run of one tag a chunk, except that tags starting with ``S`` (SCONJ, SYM) are
  always single-token chunks.
* SQuAD v1.1 EM/F1 (XQuAD, TyDiQA-GoldP, every language) and MLQA's language-specific EM/F1.
* BUCC 2018: set-based precision/recall/F1 over ``(source_id, target_id)`` pairs.
* Mewsli-X: mean reciprocal rank of the gold entity in the top 20 ("map@20").
* LAReQA: mean average precision at 20 with the divisor ``min(#targets, 20)``.
"""

from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence

# --------------------------------------------------------------------------------------------
# Classification


def accuracy(predictions: Sequence[object], labels: Sequence[object]) -> float:
    """Percentage of positions where the prediction equals the label.

    Both sequences must have the same, non-zero length (the official script asserts the
    former and divides by zero on the latter).
    """
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions but {len(labels)} labels")
    if not predictions:
        raise ValueError("accuracy of zero examples is undefined")
    correct = sum(int(p == g) for p, g in zip(predictions, labels))
    return float(correct) / len(predictions) * 100


# --------------------------------------------------------------------------------------------
# Sequence labelling (seqeval 0.0.12 chunk semantics)

Chunk = tuple[str, int, int]

# conlleval's transition rules as seqeval 0.0.12 applies them to the first character of every
# tag (the "marker"). A chunk ends before the current token when the previous marker is in the
# first set, or the pair of markers is in the second; it starts at the current token when the
# marker is in the third set or the pair is in the fourth. Independently of the markers, a
# change of type ends a chunk unless the previous marker is "O" or "." and starts one unless the
# current marker is "O" or ".".
_ALWAYS_ENDS_AFTER = frozenset("ES")
_ENDS_BETWEEN = frozenset((p, c) for p in "BI" for c in "BSO")
_ALWAYS_STARTS = frozenset("BS")
_STARTS_BETWEEN = frozenset((p, c) for p in "ESO" for c in "EI")
_OUTSIDE = frozenset("O.")


def seqeval_chunks(sentences: Sequence[Sequence[str]]) -> list[Chunk]:
    """Chunks ``(type, start, end)`` (end inclusive) of tagged sentences, as seqeval 0.0.12.

    Sentences are concatenated with an ``"O"`` after each one, so no chunk crosses a sentence
    boundary; positions index that concatenation. A tag's marker is its first character and
    its type is ``tag.split("-")[-1]``: ``B-PER`` is marker ``B`` type ``PER``, and a UD tag
    such as ``NOUN`` is marker ``N`` type ``NOUN``.
    """
    tags: list[str] = []
    for sentence in sentences:
        tags.extend(sentence)
        tags.append("O")
    tags.append("O")  # flushes a chunk still open at the end

    chunks: list[Chunk] = []
    prev_marker, prev_type, begin = "O", "", 0
    for i, tag in enumerate(tags):
        if not tag:
            raise ValueError(f"empty tag at position {i}")
        marker, type_ = tag[0], tag.split("-")[-1]
        type_changed = prev_type != type_
        ends = (
            prev_marker in _ALWAYS_ENDS_AFTER
            or (prev_marker, marker) in _ENDS_BETWEEN
            or (type_changed and prev_marker not in _OUTSIDE)
        )
        if ends:
            chunks.append((prev_type, begin, i - 1))
        starts = (
            marker in _ALWAYS_STARTS
            or (prev_marker, marker) in _STARTS_BETWEEN
            or (type_changed and marker not in _OUTSIDE)
        )
        # seqeval never resets `begin` otherwise; a chunk ending without a fresh start (only
        # possible with exotic tags such as "O-X" followed by "X") reuses the stale offset.
        if starts:
            begin = i
        prev_marker, prev_type = marker, type_
    return chunks


def _ratio(numerator: int, denominator: int) -> float:
    # seqeval returns the integer 0 for an empty denominator.
    return numerator / denominator if denominator > 0 else 0


def seqeval_f1(
    pred_sentences: Sequence[Sequence[str]], gold_sentences: Sequence[Sequence[str]]
) -> dict[str, float]:
    """Micro chunk F1, precision and recall ×100 with seqeval 0.0.12 semantics (NER and POS).

    Returns ``{"f1", "precision", "recall"}`` in the key order of the official score file.
    Sentence ``i`` of the predictions must have as many tags as sentence ``i`` of the gold.
    """
    if len(pred_sentences) != len(gold_sentences):
        raise ValueError(f"{len(pred_sentences)} predicted sentences but {len(gold_sentences)} gold sentences")
    for i, (pred, gold) in enumerate(zip(pred_sentences, gold_sentences), start=1):
        if len(pred) != len(gold):
            # seqeval would silently misalign every later chunk.
            raise ValueError(f"sentence {i} has {len(pred)} predicted tags but {len(gold)} gold tags")
    gold_chunks = set(seqeval_chunks(gold_sentences))
    pred_chunks = set(seqeval_chunks(pred_sentences))
    correct = len(gold_chunks & pred_chunks)
    precision = _ratio(correct, len(pred_chunks))
    recall = _ratio(correct, len(gold_chunks))
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0
    return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


# --------------------------------------------------------------------------------------------
# Extractive QA: SQuAD v1.1 and MLQA

_ASCII_PUNCTUATION = frozenset(string.punctuation)
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")


def squad_normalize(text: str) -> str:
    """SQuAD v1.1 normalisation: lower-case, drop ASCII punctuation and English articles,
    collapse whitespace. Applied to every language of XQuAD and TyDiQA-GoldP."""
    text = "".join(ch for ch in text.lower() if ch not in _ASCII_PUNCTUATION)
    return " ".join(_EN_ARTICLES.sub(" ", text).split())


@functools.cache
def _unicode_punctuation() -> frozenset[str]:
    # Every code point below sys.maxunicode whose category is P*, plus ASCII punctuation (which
    # adds the symbols $+<=>^`|~). Built once: scanning 1.1M code points takes a fraction of a
    # second.
    chars = (chr(i) for i in range(sys.maxunicode))
    return frozenset(ch for ch in chars if unicodedata.category(ch).startswith("P")) | _ASCII_PUNCTUATION


def _remove_arabic_article(text: str) -> str:
    # MLQA's pattern '\sال^|ال' can only ever match its second alternative (a "^" after two
    # consumed characters never matches), so every "ال" is replaced, even inside a word.
    return text.replace("ال", " ")


def _article_remover(pattern: str) -> Callable[[str], str]:
    regex = re.compile(pattern)
    return lambda text: regex.sub(" ", text)


def _no_articles(text: str) -> str:
    return text


_MLQA_ARTICLES: dict[str, Callable[[str], str]] = {
    "en": _article_remover(r"\b(a|an|the)\b"),
    "es": _article_remover(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "de": _article_remover(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    "vi": _article_remover(r"\b(của|là|cái|chiếc|những)\b"),
    "ar": _remove_arabic_article,
    "hi": _no_articles,
    "zh": _no_articles,
}

_CJK = re.compile(r"[\u4e00-\u9fa5]")
_CJK_SPLIT = re.compile(r"([\u4e00-\u9fa5])")  # the group keeps the ideographs in re.split


def _mixed_segmentation(text: str) -> list[str]:
    """Every CJK unified ideograph (U+4E00-U+9FA5) is a token; other runs split on whitespace.

    MLQA also makes punctuation characters single tokens here, but normalisation has removed
    all of them by the time this runs.
    """
    tokens: list[str] = []
    for piece in _CJK_SPLIT.split(text):
        if _CJK.fullmatch(piece):
            tokens.append(piece)
        else:
            tokens.extend(piece.split())
    return tokens


_MLQA_TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    **{lang: str.split for lang in ("en", "es", "hi", "vi", "de", "ar")},
    "zh": _mixed_segmentation,
}


def _check_mlqa_language(lang: str) -> None:
    if lang not in _MLQA_ARTICLES:
        known = ", ".join(_MLQA_ARTICLES)
        raise ValueError(f"Unknown Language {lang!r}: MLQA normalisation is defined for {known}")


def mlqa_normalize(text: str, lang: str) -> str:
    """MLQA normalisation for answer language ``lang`` (en es de ar hi vi zh).

    Lower-case, delete all Unicode punctuation (category P*) and ASCII punctuation, remove
    the language's articles (Arabic: every "ال"), then tokenise (zh: one token per ideograph)
    and re-join with single spaces.
    """
    _check_mlqa_language(lang)
    punctuation = _unicode_punctuation()
    text = "".join(ch for ch in text.lower() if ch not in punctuation)
    tokens = _MLQA_TOKENIZERS[lang](_MLQA_ARTICLES[lang](text))
    return " ".join(t for t in tokens if t.strip())


def _token_f1(prediction_tokens: list[str], gold_tokens: list[str]) -> float:
    same = sum((Counter(prediction_tokens) & Counter(gold_tokens)).values())
    if same == 0:
        # Also when both are empty: EM is then 1 but F1 stays 0, as in the official scripts.
        return 0
    precision = 1.0 * same / len(prediction_tokens)
    recall = 1.0 * same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def _qa_em_f1(
    predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]], normalize: Callable[[str], str]
) -> dict[str, float]:
    if not gold:
        raise ValueError("no gold questions: EM and F1 are undefined")
    exact_match = 0
    f1 = 0.0
    for qid, answers in gold.items():
        if not answers:
            raise ValueError(f"question {qid!r} has no gold answer")
        if qid not in predictions:
            continue  # an unanswered question scores 0 but still counts
        prediction = normalize(predictions[qid])
        normalized = [normalize(a) for a in answers]
        exact_match += max(int(prediction == a) for a in normalized)
        f1 += max(_token_f1(prediction.split(), a.split()) for a in normalized)
    return {"exact_match": 100.0 * exact_match / len(gold), "f1": 100.0 * f1 / len(gold)}


def squad_em_f1(predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """SQuAD v1.1 exact match and F1 ×100, each maximised over a question's gold answers.

    ``gold`` maps every question id to its gold answer texts and defines the denominator: a
    question without a prediction scores 0. Predictions for unknown ids are ignored.
    Returns ``{"exact_match", "f1"}``.
    """
    return _qa_em_f1(predictions, gold, squad_normalize)


def mlqa_em_f1(
    predictions: Mapping[str, str], gold: Mapping[str, Sequence[str]], lang: str
) -> dict[str, float]:
    """MLQA exact match and F1 ×100 with the normalisation of answer language ``lang``.

    Same conventions as :func:`squad_em_f1`; raises ``ValueError`` for a language MLQA does
    not define.
    """
    _check_mlqa_language(lang)
    return _qa_em_f1(predictions, gold, functools.partial(mlqa_normalize, lang=lang))


# --------------------------------------------------------------------------------------------
# Retrieval


def bucc_f1(pred_pairs: Iterable[Hashable], gold_pairs: Iterable[Hashable]) -> dict[str, float]:
    """BUCC 2018 F1, precision and recall ×100 over *sets* of pairs (duplicates collapse).

    Pairs are any hashable items, normally ``(source_id, target_id)`` tuples.
    Returns ``{"f1", "precision", "recall"}``, all the integer 0 when no pair is correct.
    """
    gold, pred = set(gold_pairs), set(pred_pairs)
    correct = len(gold & pred)
    if correct == 0:
        return {"f1": 0, "precision": 0, "recall": 0}
    precision = correct / len(pred)
    recall = correct / len(gold)
    f1 = 2 * precision * recall / (precision + recall)
    return {"f1": f1 * 100, "precision": precision * 100, "recall": recall * 100}


def mrr_at_k(predictions: Mapping[str, Sequence[str]], gold: Mapping[str, str], k: int = 20) -> float:
    """Mean reciprocal rank ×100 of each gold id within its top-``k`` predictions.

    This is Mewsli-X's "map@20" (one gold entity per mention makes MAP equal MRR). The mean
    runs over the examples of ``gold``; a missing example scores 0 and predictions for unknown
    examples are ignored. An empty ``gold`` scores 0.0, as in the official code.
    """
    reciprocal_ranks = []
    for example_id, target in gold.items():
        ranked = list(predictions.get(example_id, []))[:k]
        rank = next((r for r, candidate in enumerate(ranked, start=1) if candidate == target), None)
        reciprocal_ranks.append(1.0 / rank if rank else 0.0)
    mrr = sum(reciprocal_ranks) / len(reciprocal_ranks) if reciprocal_ranks else 0.0
    return mrr * 100


def average_precision_at_k(targets: Iterable[Hashable], ranking: Sequence[Hashable], k: int = 20) -> float:
    """LAReQA's average precision at ``k`` (a fraction, not ×100).

    Sums precision@i at every rank i <= k that holds a not-yet-seen target, and divides by
    ``min(#targets, k)``.
    """
    target_set = set(targets)
    if not target_set:
        raise ValueError("average precision needs at least one target")
    top = list(ranking)[:k]
    hits, score, seen = 0, 0.0, set()
    for i, candidate in enumerate(top, start=1):
        if candidate in target_set and candidate not in seen:
            hits += 1
            score += hits / i
        seen.add(candidate)
    return score / min(len(target_set), k)


def mean_average_precision_at_k(
    targets: Sequence[Iterable[Hashable]], rankings: Sequence[Sequence[Hashable]], k: int = 20
) -> float:
    """LAReQA mAP@k ×100: the mean of :func:`average_precision_at_k` over all questions."""
    if len(targets) != len(rankings):
        raise ValueError(f"{len(targets)} target sets but {len(rankings)} rankings")
    if not targets:
        raise ValueError("mAP of zero questions is undefined")
    return sum(average_precision_at_k(t, r, k) for t, r in zip(targets, rankings)) / len(targets) * 100
