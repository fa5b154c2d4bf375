"""``xstilts evaluate``: a drop-in replacement for google-research/xtreme's ``evaluate.py``.

Same flags, same output file (see :mod:`xstilts.xtreme` for the few deliberate deviations on
broken inputs). Instead of the official per-language dump, stdout gets a summary table; with
``--verbose`` it also gets every language's scores.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from xstilts.formats import FormatError
from xstilts.xtreme import TASK2LANGS, VERSIONS, evaluate, plan

HELP = "Score XTREME/XTREME-R prediction folders against label folders, as the official evaluate.py does."

_PROG = "xstilts evaluate"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The official script's flags, with its names and defaults."""
    parser.add_argument(
        "--prediction_folder", required=True, help="folder with one sub-folder of test-<lang> files per task"
    )
    parser.add_argument("--label_folder", required=True, help="the gold folder, laid out like the predictions")
    parser.add_argument(
        "--xtreme_version", default="xtreme", choices=VERSIONS, help="benchmark version (default: %(default)s)"
    )
    parser.add_argument("--verbose", action="store_true", help="also print the scores of every language")
    parser.add_argument("--output_file", required=True, help="JSON file to write, in the official structure")
    parser.add_argument(
        "--only_available_languages",
        action="store_true",
        help="(xstilts only) score each task on the languages present in both folders instead of requiring "
        "every language of the benchmark, e.g. for the embedded demo; averages are then not leaderboard numbers",
    )


def run(args: argparse.Namespace) -> int:
    """Score, write ``--output_file`` and print the summary; 1 on a user error, else 0."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{_PROG}: warning: %(message)s"))
    logger = logging.getLogger("xstilts.xtreme")
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    try:
        chosen = plan(args.prediction_folder, args.label_folder, args.xtreme_version)
        _print_notes(chosen.predictions_only, chosen.labels_only, args)
        scores = evaluate(args.prediction_folder, args.label_folder, args.xtreme_version,
                          only_available_languages=args.only_available_languages)
        _write(args.output_file, scores)
    except (FormatError, OSError) as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 1
    finally:
        logger.removeHandler(handler)
    _print_summary(scores, args)
    return 0


def _print_notes(predictions_only: list[str], labels_only: list[str], args: argparse.Namespace) -> None:
    # The official script skips such tasks silently; a note costs nothing and explains why a
    # task (and then all_task) is absent from the output.
    for task in predictions_only:
        print(f"{_PROG}: note: {task} has predictions but no labels in {args.label_folder}; skipped", file=sys.stderr)
    for task in labels_only:
        print(f"{_PROG}: note: {task} has labels but no predictions in {args.prediction_folder}; skipped", file=sys.stderr)


def _write(path: str, scores: dict[str, Any]) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        # indent=2 and no final newline, byte for byte what the official script writes.
        json.dump(scores, f, indent=2)


def _print_summary(scores: dict[str, Any], args: argparse.Namespace) -> None:
    task2langs = TASK2LANGS[args.xtreme_version]
    tasks = [t for t in task2langs if t in scores]
    print(f"XTREME evaluation ({args.xtreme_version}) of {args.prediction_folder} against {args.label_folder}")
    if not tasks:
        print("no task folder is present in both folders; nothing was scored")
    else:
        print(f"{'task':<10} {'langs':>5} {'metric':>7}  averages")
        for task in tasks:
            entry = scores[task]
            averages = "  ".join(
                f"{k[4:]} {v:.2f}" for k, v in entry.items() if k.startswith("avg_") and k != "avg_metric"
            )
            headline = f"{entry['avg_metric']:7.2f}" if "avg_metric" in entry else f"{'-':>7}"
            note = averages or "not scored here: the official language list is empty"
            print(f"{task:<10} {len(task2langs[task]):>5} {headline}  {note}")
    groups = {k: v for k, v in scores.items() if k not in task2langs}
    if groups:
        print("groups: " + "  ".join(f"{k} {v:.2f}" for k, v in groups.items()))
    if "all_task" not in scores:
        missing = [t for t in task2langs if "avg_metric" not in scores.get(t, {})]
        print(f"no all_task: no score for {', '.join(missing)}")
    if args.verbose:
        for task in tasks:
            _print_languages(task, scores[task])
    print(f"wrote {args.output_file}")


def _print_languages(task: str, entry: dict[str, Any]) -> None:
    per_lang = {k: v for k, v in entry.items() if isinstance(v, dict)}
    if not per_lang:
        return
    metrics = list(per_lang)
    widths = [max(len(m), 7) for m in metrics]
    print(f"\n== {task} ==")
    print(f"{'lang':<6} " + " ".join(f"{m:>{w}}" for m, w in zip(metrics, widths)))
    for lang in per_lang[metrics[0]]:
        print(f"{lang:<6} " + " ".join(f"{per_lang[m][lang]:>{w}.2f}" for m, w in zip(metrics, widths)))
    print(f"{'avg':<6} " + " ".join(f"{entry['avg_' + m]:>{w}.2f}" for m, w in zip(metrics, widths)))
