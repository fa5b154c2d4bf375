"""``xstilts tatoeba``: top-1 cosine retrieval accuracy on Tatoeba embeddings.

``xx2en`` (default, the paper's via jiant) queries with the non-English rows (``--src-emb``)
against the English ones (``--trg-emb``); ``en2xx`` (the official XTREME scripts) the other
way. Three input layouts:

* LASER's line-aligned files (row i translates row i): predictions in row order;
* the same with ``--trg-text`` (the English sentences): predictions in XTREME's order, the
  English side sorted as XTREME's preprocessing sorts it, which is the order of XTREME's
  label files and of ``xstilts evaluate``'s;
* embeddings of XTREME's preprocessed files (``<lang>-en.<lang>``, sorted ``<lang>-en.en``) with
  ``--gold``, XTREME's label file: predictions in row order, which is then XTREME's.

Output JSON: ``{"direction", "accuracy", "predictions"}``, accuracy x100, ``predictions[k]``
the non-English row matched for English sentence k (:mod:`xstilts.retrieval`), correct when it
equals the gold label of line k; ``--predictions`` also writes them as an XTREME prediction file.
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
    parser.add_argument(
        "--trg-emb", required=True, help="English embeddings .npy; row i translates --src-emb row i, unless --gold"
    )
    parser.add_argument(
        "--direction",
        choices=("xx2en", "en2xx"),
        default="xx2en",
        help="xx2en: non-English queries, English database (the paper's, default); en2xx: the XTREME scripts'",
    )
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--trg-text",
        help="the English sentences of the line-aligned --trg-emb, one per line (LASER's tatoeba.xxx-eng.eng): "
        "predictions are then in XTREME's order, that of its label files",
    )
    layout.add_argument(
        "--gold",
        help="XTREME's label file for embeddings of XTREME's preprocessed files: line k, the --src-emb row "
        "that --trg-emb row k translates",
    )
    parser.add_argument("--output", required=True, help="output JSON file")
    parser.add_argument("--predictions", help="also write the predictions as an XTREME file, one index a line")
    parser.add_argument(
        "--backend",
        choices=("auto", "faiss-cpu", "faiss-gpu", "torch"),
        default="auto",
        help="kNN backend (default auto: faiss-gpu, else torch on CUDA, else faiss-cpu)",
    )


def run(args: argparse.Namespace) -> int:
    """Retrieve, score and write ``--output``; 1 on a user error, else 0."""
    setup_logging()
    from xstilts import formats, retrieval
    from xstilts.formats import FormatError

    try:
        src = retrieval.load_embeddings(args.src_emb)
        trg = retrieval.load_embeddings(args.trg_emb)
        if len(src) != len(trg):
            raise FormatError(
                f"{args.src_emb} has {len(src)} rows but {args.trg_emb} has {len(trg)}; "
                "the two sides of a Tatoeba pair hold as many sentences"
            )
        if src.shape[1] != trg.shape[1]:
            raise FormatError(f"{args.src_emb} has {src.shape[1]} dimensions but {args.trg_emb} has {trg.shape[1]}")
        gold = retrieval.read_tatoeba_gold(args.gold, len(trg)) if args.gold else None
        order = None
        if args.trg_text:
            english = formats.read_lines(args.trg_text)
            if len(english) != len(trg):
                raise FormatError(f"{args.trg_text} has {len(english)} lines but {args.trg_emb} has {len(trg)} rows")
            order = retrieval.xtreme_tatoeba_order(english)
        predictions = retrieval.tatoeba_predict(src, trg, direction=args.direction, backend=args.backend)
        answers = retrieval.tatoeba_answers(predictions, args.direction, gold)
    except (FormatError, ValueError, OSError) as e:
        return fail("tatoeba", e)
    if order is not None:
        # Line-aligned rows: line k of XTREME's files is row order[k], whose gold label is order[k].
        answers, gold = answers[order], order
    accuracy = retrieval.tatoeba_accuracy(answers, gold)
    log.info("tatoeba %s: accuracy %.2f on %d sentences", args.direction, accuracy, len(answers))
    result = {"direction": args.direction, "accuracy": accuracy, "predictions": answers.tolist()}
    try:
        retrieval.write_json(args.output, result, list_key="predictions")
        if args.predictions:
            formats.write_xtreme_classification(args.predictions, [str(int(a)) for a in answers])
    except OSError as e:
        return fail("tatoeba", e)
    return 0
