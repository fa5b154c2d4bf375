"""``xstilts bucc``: mine BUCC 2018 bitext from precomputed embeddings, tune or apply a threshold.

Modes:

* dev (``--gold``, no ``--threshold``): mine, choose the F1-maximising threshold on the gold
  pairs; ``pairs`` in the output are all mined candidates (score > 0).
* test (``--threshold``): mine, keep candidates with score >= threshold; ``pairs`` are the kept
  pairs, scored against ``--gold`` when given.
* mine only (neither): ``threshold`` is null and ``pairs`` are all mined candidates.

Output JSON: ``{"threshold", "precision", "recall", "f1", "pairs": [[src_id, trg_id, score],
...]}``, pairs by descending score; the three metrics (x100) only when ``--gold`` is given.
Semantics: :mod:`xstilts.retrieval`. Files that repeat a line are accepted, as the official
scoring accepts them, with a warning naming the repeated ids.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections import Counter

HELP = "Mine BUCC 2018 bitext from sentence embeddings (margin kNN) and tune or apply the F1 threshold."

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``bucc`` options."""
    parser.add_argument("--src", required=True, help="source (non-English) sentences, lines 'id<TAB>sentence'")
    parser.add_argument("--trg", required=True, help="target (English) sentences, lines 'id<TAB>sentence'")
    parser.add_argument("--src-emb", required=True, help=".npy (float32/float16), row i embeds line i of --src")
    parser.add_argument("--trg-emb", required=True, help=".npy (float32/float16), row i embeds line i of --trg")
    parser.add_argument("--gold", help="gold pairs, lines 'src_id<TAB>trg_id'")
    parser.add_argument(
        "--threshold", type=float, help="apply this threshold (test mode); without it, --gold tunes one (dev mode)"
    )
    parser.add_argument("--output", required=True, help="output JSON file")
    parser.add_argument("--k", type=int, default=4, help="neighbourhood size of the margin (default 4)")
    parser.add_argument(
        "--margin", choices=("ratio", "distance", "absolute"), default="ratio", help="margin function (default ratio)"
    )
    parser.add_argument(
        "--backend",
        choices=("auto", "faiss-cpu", "faiss-gpu", "torch"),
        default="auto",
        help="kNN backend (default auto: faiss-gpu, else torch on CUDA, else faiss-cpu)",
    )


def setup_logging() -> None:
    """INFO messages to stderr, unless the caller configured logging already."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # faiss reports at INFO which of its builds it loaded: noise in every run's log.
        logging.getLogger("faiss.loader").setLevel(logging.WARNING)


def fail(command: str, error: Exception) -> int:
    """Report a user error (bad input file, unwritable output) on stderr; returns exit status 1."""
    print(f"xstilts {command}: error: {error}", file=sys.stderr)
    return 1


def warn_repeated_ids(path: str, ids: list[str], shown: int = 5) -> None:
    """Warn, naming them, about ids on more than one line of ``path``.

    The official scoring accepts such files (BUCC releases repeat some lines): ids are found
    through the sentence text, so a text on several lines has no id and its candidates are
    dropped, like a text under several ids; an id on lines of different texts names them all.
    """
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    if repeated:
        more = f" and {len(repeated) - shown} more" if len(repeated) > shown else ""
        log.warning(
            "%s: ids on more than one line: %s%s; as in the official scoring, a sentence text on several "
            "lines has no id and its candidates are dropped",
            path, ", ".join(repeated[:shown]), more,
        )


def run(args: argparse.Namespace) -> int:
    """Mine, tune or apply the threshold and write ``--output``; 1 on a user error, else 0."""
    setup_logging()
    from xstilts import retrieval
    from xstilts.formats import FormatError, read_id_sentences, read_pairs

    try:
        if args.threshold is not None and not math.isfinite(args.threshold):
            raise ValueError(f"--threshold must be a finite number, got {args.threshold}")
        src_ids, src_sents = read_id_sentences(args.src)
        trg_ids, trg_sents = read_id_sentences(args.trg)
        for path, ids in ((args.src, src_ids), (args.trg, trg_ids)):
            warn_repeated_ids(path, ids)
        src_emb = retrieval.load_embeddings(args.src_emb, len(src_ids), args.src)
        trg_emb = retrieval.load_embeddings(args.trg_emb, len(trg_ids), args.trg)
        if src_emb.shape[1] != trg_emb.shape[1]:
            raise FormatError(
                f"{args.src_emb} has {src_emb.shape[1]} dimensions but {args.trg_emb} has {trg_emb.shape[1]}"
            )
        gold = None
        if args.gold:
            gold = read_pairs(args.gold)
            if not gold:
                raise FormatError(f"{args.gold}: the file holds no gold pairs")
            src_set, trg_set = set(src_ids), set(trg_ids)
            unknown = sum(1 for s, t in set(gold) if s not in src_set or t not in trg_set)
            if unknown:
                log.warning("%s: %d gold pairs name ids absent from --src/--trg", args.gold, unknown)
        candidates = retrieval.mine_bitext(
            src_ids, src_sents, trg_ids, trg_sents, src_emb, trg_emb, k=args.k, margin=args.margin, backend=args.backend
        )
        del src_emb, trg_emb
        result: dict[str, object]
        if args.threshold is not None:
            pairs = retrieval.extract(candidates, args.threshold)
            result = {"threshold": args.threshold}
            if gold is not None:
                result.update(retrieval.score_pairs(pairs, gold))
        elif gold is not None:
            pairs = candidates
            result = retrieval.optimize_threshold(candidates, gold)
        else:
            pairs = candidates
            result = {"threshold": None}
    except (FormatError, ValueError, OSError) as e:
        return fail("bucc", e)
    log.info(
        "bucc: %d candidates, %d pairs out%s",
        len(candidates),
        len(pairs),
        "".join(f", {m} {result[m]:.2f}" for m in ("precision", "recall", "f1") if m in result),
    )
    result["pairs"] = [[s, t, score] for s, t, score in pairs]
    try:
        retrieval.write_json(args.output, result, list_key="pairs")
    except OSError as e:
        return fail("bucc", e)
    return 0
