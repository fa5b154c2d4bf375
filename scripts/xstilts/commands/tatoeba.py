"""``xstilts tatoeba``: top-1 cosine retrieval accuracy on line-aligned Tatoeba embeddings.

Row i of ``--src-emb`` (non-English) translates row i of ``--trg-emb`` (English). ``xx2en``
(default, the paper's via jiant) queries with the non-English rows against the English ones;
``en2xx`` (the official XTREME scripts) the other way. Output JSON: ``{"direction", "accuracy",
"predictions"}``, accuracy x100, ``predictions[i]`` the database row retrieved for query row i.
"""

from __future__ import annotations

import argparse
import logging

from xstilts.commands.bucc import fail, setup_logging

HELP = "Tatoeba top-1 retrieval accuracy from sentence embeddings (xx2en as in the paper, or en2xx)."

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``tatoeba`` options."""
    parser.add_argument("--src-emb", required=True, help="non-English embeddings .npy (float32/float16)")
    parser.add_argument("--trg-emb", required=True, help="English embeddings .npy; row i translates --src-emb row i")
    parser.add_argument(
        "--direction",
        choices=("xx2en", "en2xx"),
        default="xx2en",
        help="xx2en: non-English queries, English database (the paper's, default); en2xx: the XTREME scripts'",
    )
    parser.add_argument("--output", required=True, help="output JSON file")
    parser.add_argument(
        "--backend",
        choices=("auto", "faiss-cpu", "faiss-gpu", "torch"),
        default="auto",
        help="kNN backend (default auto: faiss-gpu, else torch on CUDA, else faiss-cpu)",
    )


def run(args: argparse.Namespace) -> int:
    """Retrieve, score and write ``--output``; 1 on a user error, else 0."""
    setup_logging()
    from xstilts import retrieval
    from xstilts.formats import FormatError

    try:
        src = retrieval.load_embeddings(args.src_emb)
        trg = retrieval.load_embeddings(args.trg_emb)
        if len(src) != len(trg):
            raise FormatError(
                f"{args.src_emb} has {len(src)} rows but {args.trg_emb} has {len(trg)}; the sides must be line-aligned"
            )
        if src.shape[1] != trg.shape[1]:
            raise FormatError(f"{args.src_emb} has {src.shape[1]} dimensions but {args.trg_emb} has {trg.shape[1]}")
        predictions = retrieval.tatoeba_predict(src, trg, direction=args.direction, backend=args.backend)
    except (FormatError, ValueError, OSError) as e:
        return fail("tatoeba", e)
    accuracy = retrieval.tatoeba_accuracy(predictions)
    log.info("tatoeba %s: accuracy %.2f on %d sentences", args.direction, accuracy, len(predictions))
    result = {"direction": args.direction, "accuracy": accuracy, "predictions": predictions.tolist()}
    try:
        retrieval.write_json(args.output, result, list_key="predictions")
    except OSError as e:
        return fail("tatoeba", e)
    return 0
