"""Score an XTREME or XTREME-R submission folder the way the official ``evaluate.py`` does.

A submission is two parallel folders, predictions and labels, each holding one sub-folder per
task with one file per language: ``<folder>/<task>/test-<lang>.<ext>``. The extension and the
file contents depend on the task:

============================ ====== ================================================================
tasks                        ext    one file holds
============================ ====== ================================================================
pawsx, xnli, tatoeba         tsv    one label per line (Tatoeba: the gold line index as text)
bucc2018                     tsv    one ``source_id<TAB>target_id`` pair per line
panx, udpos                  tsv    one tag per line, a blank line after every sentence
xquad, mlqa, tydiqa          json   predictions: ``{question_id: answer}``; labels: SQuAD v1.1 JSON
xcopa                        jsonl  one JSON object per line; its ``label`` field is scored
mewslix                      json   ``{example_id: [entity_id, ...]}``, ranked for predictions and a
                                    one-element list for labels
============================ ====== ================================================================

Behaviour shared with the official script (google-research/xtreme ``evaluate.py``, checked
against it at commit 838c13b, the HEAD of 2022-11-03):

* A task is scored when its folder exists on *both* sides; a task missing on either side is
  skipped without error. Every language of the version's list must then have both files.
* Lines are stripped; a blank line is an example (classification) or a sentence end (tags),
  and the prediction and label files must hold equally many (every task except bucc2018,
  mewslix and the QA tasks). A QA or Mewsli-X example without a prediction scores 0.
* Per task: ``{metric: {lang: value}}`` for each metric, then ``avg_<metric>`` (unweighted
  mean over the languages), then ``avg_metric``: (EM + F1) / 2 for QA, else F1, else accuracy,
  else map@20. ``all_task`` (mean of ``avg_metric`` over every task of the version) is written
  only when every task was scored; a group score only when all its tasks were. The output
  puts ``all_task`` and the groups first, then the tasks in the version's task order.

Deviations, all on inputs where the official script crashes or silently computes nonsense:

* ``lareqa`` has an empty language list in the official XTREME-R table, so its entry is ``{}``
  and the official script raises ``KeyError: 'avg_metric'`` when it computes ``all_task`` with
  a ``lareqa`` folder present. Here ``all_task`` is simply omitted whenever a task has no
  score, which makes XTREME-R's ``all_task`` unreachable, as it is officially.
* A sub-folder that names no XTREME or XTREME-R task (a typo such as ``UDPOS``) is an error
  instead of being ignored; hidden folders (``.name``) are still ignored, and so are the other
  version's tasks.
* A tag sentence whose prediction has a different number of tags than its gold is an error
  (seqeval would shift every later chunk).
* Blank lines in XCOPA JSONL files are skipped instead of crashing the JSON parser.
* Missing folders or files, non-UTF-8 or malformed files, count mismatches, gold questions
  without answers or duplicated ids, and files without examples raise
  :class:`EvaluationError` naming the file.
* ``all_task`` is an exactly rounded sum (``math.fsum``). The official sum runs over a ``set``
  whose order depends on the hash seed, so its last binary digit varies between runs; on the
  official mock data most orders, and fsum, give the same value.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts import metrics
from xstilts.formats import FormatError, utf8_problem
from xstilts.languages import XTREME_R_TASK2LANGS, XTREME_TASK2LANGS

_log = logging.getLogger(__name__)


class EvaluationError(FormatError):
    """A prediction or label folder cannot be scored; the message names the file."""


VERSIONS = ("xtreme", "xtreme-r")

TASK2LANGS: dict[str, dict[str, list[str]]] = {
    "xtreme": XTREME_TASK2LANGS,
    "xtreme-r": XTREME_R_TASK2LANGS,
}

# XTREME-R as coded officially: xcopa is in two groups and lareqa in none.
GROUP2TASKS: dict[str, dict[str, list[str]]] = {
    "xtreme": {
        "classification": ["pawsx", "xnli"],
        "tagging": ["udpos", "panx"],
        "qa": ["xquad", "mlqa", "tydiqa"],
        "retrieval": ["bucc2018", "tatoeba"],
    },
    "xtreme-r": {
        "classification": ["xnli", "xcopa"],
        "tagging": ["udpos", "panx"],
        "qa": ["xquad", "mlqa", "tydiqa"],
        "retrieval": ["tatoeba", "mewslix"],
        "multi_choice": ["xcopa"],
    },
}

QA_TASKS = frozenset({"xquad", "mlqa", "tydiqa"})

#: Which average becomes a non-QA task's ``avg_metric``: the first one present.
_HEADLINE_PREFERENCE = ("avg_f1", "avg_accuracy", "avg_map@20")


# --------------------------------------------------------------------------------------------
# Reading


def _read_text(path: str | os.PathLike) -> str:
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise EvaluationError(f"{path}: file not found") from None
    except OSError as e:
        raise EvaluationError(f"{path}: cannot read ({e.strerror})") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise EvaluationError(utf8_problem(path, e)) from None


def _lines(path: str | os.PathLike) -> list[str]:
    # Universal newlines, like iterating over a file opened in text mode: "\r\n" and a lone
    # "\r" end a line too, and a final line without a newline still counts.
    text = _read_text(path).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def _read_json(path: str | os.PathLike) -> Any:
    try:
        return json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise EvaluationError(f"{path}: malformed JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


def read_label_lines(path: str | os.PathLike) -> list[str]:
    """One stripped item per line (XNLI, PAWS-X, Tatoeba); a blank line is an empty item."""
    return [line.strip() for line in _lines(path)]


def read_bucc_pairs(path: str | os.PathLike) -> list[tuple[str, ...]]:
    """BUCC ``source_id<TAB>target_id`` lines as tuples of their tab-separated fields."""
    return [tuple(line.split("\t")) for line in read_label_lines(path)]


def read_tag_sentences(path: str | os.PathLike) -> list[list[str]]:
    """Tag files: one stripped tag per line, every blank line closes a sentence.

    Consecutive blank lines therefore give empty sentences, and a last sentence without a
    closing blank line is kept.
    """
    sentences: list[list[str]] = []
    current: list[str] = []
    for line in read_label_lines(path):
        if line:
            current.append(line)
        else:
            sentences.append(current)
            current = []
    if current:
        sentences.append(current)
    return sentences


def read_xcopa_labels(path: str | os.PathLike) -> list[Any]:
    """The ``label`` field of every JSON line of an XCOPA file (predictions and gold alike)."""
    labels = []
    for lineno, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise EvaluationError(f"{path}:{lineno}: malformed JSON line ({e.msg})") from None
        if not isinstance(row, dict) or "label" not in row:
            raise EvaluationError(f"{path}:{lineno}: expected a JSON object with a 'label' field")
        labels.append(row["label"])
    return labels


def _json_object(path: str | os.PathLike, what: str) -> dict[str, Any]:
    data = _read_json(path)
    if not isinstance(data, dict):
        raise EvaluationError(f"{path}: expected a JSON object mapping {what}, got {type(data).__name__}")
    return data


def read_qa_predictions(path: str | os.PathLike) -> dict[str, str]:
    """A QA prediction file: a JSON object mapping question id to answer text."""
    data = _json_object(path, "question ids to answer texts")
    for qid, answer in data.items():
        if not isinstance(answer, str):
            raise EvaluationError(f"{path}: the answer to question {qid!r} is not a string: {answer!r}")
    return data


def read_qa_labels(path: str | os.PathLike) -> dict[str, list[str]]:
    """SQuAD v1.1 JSON gold (``{"data": [articles]}`` or a bare article list): id -> answer texts."""
    data = _read_json(path)
    articles = data.get("data") if isinstance(data, dict) else data
    if not isinstance(articles, list):
        raise EvaluationError(f"{path}: expected SQuAD JSON with a 'data' list of articles")
    gold: dict[str, list[str]] = {}
    try:
        for article in articles:
            for paragraph in article["paragraphs"]:
                for qa in paragraph["qas"]:
                    qid = qa["id"]
                    if qid in gold:
                        raise EvaluationError(f"{path}: question id {qid!r} occurs twice")
                    answers = [answer["text"] for answer in qa["answers"]]
                    if not answers or not all(isinstance(a, str) for a in answers):
                        raise EvaluationError(f"{path}: question {qid!r} needs at least one answer text")
                    gold[qid] = answers
    except (KeyError, TypeError) as e:
        raise EvaluationError(
            f"{path}: not SQuAD v1.1 JSON (articles > paragraphs > qas > id, answers > text): {e!r}"
        ) from None
    if not gold:
        raise EvaluationError(f"{path}: the file holds no questions")
    return gold


def read_mewslix_predictions(path: str | os.PathLike) -> dict[str, list[Any]]:
    """Mewsli-X predictions: example id -> entity ids ranked best first."""
    data = _json_object(path, "example ids to ranked entity ids")
    for example_id, ranked in data.items():
        if not isinstance(ranked, list):
            raise EvaluationError(f"{path}: the prediction for {example_id!r} is not a list: {ranked!r}")
    return data


def read_mewslix_labels(path: str | os.PathLike) -> dict[str, str]:
    """Mewsli-X gold: example id -> the stripped first entity id of its list."""
    data = _json_object(path, "example ids to [gold entity id]")
    gold = {}
    for example_id, labels in data.items():
        if not isinstance(labels, list) or not labels or not isinstance(labels[0], str):
            raise EvaluationError(f"{path}: the gold of {example_id!r} must be a list holding an entity id")
        gold[example_id] = labels[0].strip()
    return gold


# --------------------------------------------------------------------------------------------
# Task table


@dataclass(frozen=True)
class TaskFormat:
    """How one task's files are read and scored."""

    ext: str
    read_predictions: Callable[[str], Any]
    read_labels: Callable[[str], Any]
    score: Callable[[Any, Any, str], dict[str, float]]  # (predictions, labels, lang)
    #: The official script asserts equal counts for these; the others match examples by id
    #: (QA, Mewsli-X) or are sets (BUCC).
    counted_as: str | None


def _accuracy(predictions: list[Any], labels: list[Any], lang: str) -> dict[str, float]:
    return {"accuracy": metrics.accuracy(predictions, labels)}


def _seqeval(predictions: list[list[str]], labels: list[list[str]], lang: str) -> dict[str, float]:
    return metrics.seqeval_f1(predictions, labels)


def _bucc(predictions: list[tuple[str, ...]], labels: list[tuple[str, ...]], lang: str) -> dict[str, float]:
    return metrics.bucc_f1(predictions, labels)


def _squad(predictions: dict[str, str], labels: dict[str, list[str]], lang: str) -> dict[str, float]:
    return metrics.squad_em_f1(predictions, labels)


def _mlqa(predictions: dict[str, str], labels: dict[str, list[str]], lang: str) -> dict[str, float]:
    return metrics.mlqa_em_f1(predictions, labels, lang)


def _mewslix(predictions: dict[str, list[Any]], labels: dict[str, str], lang: str) -> dict[str, float]:
    return {"map@20": metrics.mrr_at_k(predictions, labels, k=20)}


_LINES = TaskFormat("tsv", read_label_lines, read_label_lines, _accuracy, "lines")
_TAGS = TaskFormat("tsv", read_tag_sentences, read_tag_sentences, _seqeval, "sentences")
_SQUAD = TaskFormat("json", read_qa_predictions, read_qa_labels, _squad, None)

TASKS: dict[str, TaskFormat] = {
    "pawsx": _LINES,
    "xnli": _LINES,
    "tatoeba": _LINES,
    "panx": _TAGS,
    "udpos": _TAGS,
    "bucc2018": TaskFormat("tsv", read_bucc_pairs, read_bucc_pairs, _bucc, None),
    "xquad": _SQUAD,
    "tydiqa": _SQUAD,
    "mlqa": TaskFormat("json", read_qa_predictions, read_qa_labels, _mlqa, None),
    "xcopa": TaskFormat("jsonl", read_xcopa_labels, read_xcopa_labels, _accuracy, "examples"),
    "mewslix": TaskFormat("json", read_mewslix_predictions, read_mewslix_labels, _mewslix, None),
}

#: Every task folder name of either version. LAReQA has no entry in TASKS: the official XTREME-R
#: table gives it no languages (its mAP@20 comes from the retrieval pipeline), so none of its
#: files is ever read.
ALL_TASKS: tuple[str, ...] = tuple(dict.fromkeys([*XTREME_TASK2LANGS, *XTREME_R_TASK2LANGS]))


def task_file(folder: str | os.PathLike, task: str, lang: str) -> str:
    """``<folder>/<task>/test-<lang>.<ext>``, the official name of one language's file."""
    return str(Path(folder) / task / f"test-{lang}.{_task_format(task).ext}")


def _task_format(task: str) -> TaskFormat:
    try:
        return TASKS[task]
    except KeyError:
        if task in ALL_TASKS:
            raise EvaluationError(f"task {task!r} has no per-language files to score") from None
        raise EvaluationError(f"unknown task {task!r}; known tasks: {', '.join(ALL_TASKS)}") from None


# --------------------------------------------------------------------------------------------
# Scoring


def score_language(
    task: str, pred_path: str | os.PathLike, label_path: str | os.PathLike, lang: str
) -> dict[str, float]:
    """Score one language of one task: metric name -> value ×100, in the official key order.

    Keys: ``accuracy`` (pawsx, xnli, tatoeba, xcopa); ``f1, precision, recall`` (panx, udpos,
    bucc2018); ``exact_match, f1`` (xquad, mlqa, tydiqa); ``map@20`` (mewslix).
    """
    fmt = _task_format(task)
    for path in (pred_path, label_path):
        if not Path(path).is_file():
            raise EvaluationError(f"{path} is not available: {task} needs test-{lang}.{fmt.ext} in both folders")
    predictions = fmt.read_predictions(str(pred_path))
    labels = fmt.read_labels(str(label_path))
    if fmt.counted_as and len(predictions) != len(labels):
        raise EvaluationError(
            f"{pred_path} has {len(predictions)} {fmt.counted_as} but {label_path} has {len(labels)}; "
            f"{task} needs exactly one prediction per gold example"
        )
    if isinstance(labels, dict):
        missing = sum(1 for example_id in labels if example_id not in predictions)
        if missing:
            _log.warning("%s: %d of %d examples have no prediction and score 0", pred_path, missing, len(labels))
    try:
        return fmt.score(predictions, labels, lang)
    except ValueError as e:
        raise EvaluationError(f"{pred_path} vs {label_path}: {e}") from None


def _headline(task: str, averages: dict[str, float]) -> float | None:
    if task in QA_TASKS:
        return (averages["avg_exact_match"] + averages["avg_f1"]) / 2
    return next((averages[key] for key in _HEADLINE_PREFERENCE if key in averages), None)


def score_task(
    task: str, prediction_folder: str | os.PathLike, label_folder: str | os.PathLike, langs: list[str]
) -> dict[str, Any]:
    """The official per-task entry: ``{metric: {lang: value}}`` per metric, then
    ``avg_<metric>`` per metric, then ``avg_metric``. Empty for an empty language list."""
    if task not in ALL_TASKS:
        _task_format(task)  # raises the unknown-task error
    per_metric: dict[str, dict[str, float]] = {}
    for lang in langs:
        scores = score_language(
            task, task_file(prediction_folder, task, lang), task_file(label_folder, task, lang), lang
        )
        for metric, value in scores.items():
            per_metric.setdefault(metric, {})[lang] = value
    return task_entry(task, per_metric)


def task_entry(task: str, per_metric: dict[str, dict[str, float]]) -> dict[str, Any]:
    """A task's entry from its per-language values: them, ``avg_<metric>`` per metric, ``avg_metric``.

    The one place averages are computed: the scorer writes entries with it and the tables
    recompute them with it from the per-language values they read."""
    averages = {f"avg_{m}": sum(values.values()) / len(values) for m, values in per_metric.items()}
    entry: dict[str, Any] = {**per_metric, **averages}
    headline = _headline(task, averages) if averages else None
    if headline is not None:
        entry["avg_metric"] = headline
    return entry


@dataclass(frozen=True)
class Plan:
    """Which task folders of a submission are scored, and which are not and why."""

    tasks: list[str]  # present on both sides, in the version's task order
    predictions_only: list[str]
    labels_only: list[str]
    other_version: list[str]  # tasks of the other XTREME version, ignored


def _subfolders(folder: str | os.PathLike, role: str) -> set[str]:
    path = Path(folder)
    if not path.is_dir():
        raise EvaluationError(f"{role} folder {folder} does not exist or is not a directory")
    # Hidden folders (.git, .snakemake, ...) are never tasks.
    return {p.name for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")}


def _check_version(version: str) -> None:
    if version not in TASK2LANGS:
        raise EvaluationError(f"unknown XTREME version {version!r}; choose one of {', '.join(VERSIONS)}")


def plan(prediction_folder: str | os.PathLike, label_folder: str | os.PathLike, version: str = "xtreme") -> Plan:
    """Decide which tasks :func:`evaluate` scores, as the official script does.

    Raises :class:`EvaluationError` for a missing folder or a sub-folder that names no task.
    """
    _check_version(version)
    predicted = _subfolders(prediction_folder, "prediction")
    labelled = _subfolders(label_folder, "label")
    for folder, names in ((prediction_folder, predicted), (label_folder, labelled)):
        unknown = sorted(names - set(ALL_TASKS))
        if unknown:
            raise EvaluationError(
                f"{folder}: sub-folder(s) {', '.join(unknown)} name no XTREME/XTREME-R task; "
                f"task folders are {', '.join(ALL_TASKS)}"
            )
    task_order = list(TASK2LANGS[version])
    return Plan(
        tasks=[t for t in task_order if t in predicted and t in labelled],
        predictions_only=[t for t in task_order if t in predicted and t not in labelled],
        labels_only=[t for t in task_order if t in labelled and t not in predicted],
        other_version=sorted((predicted | labelled) - set(task_order)),
    )


def available_languages(task: str, prediction_folder: str | os.PathLike, label_folder: str | os.PathLike,
                        version: str = "xtreme") -> list[str]:
    """The version's languages of ``task`` that have a file in both folders (official order)."""
    return [
        lang for lang in TASK2LANGS[version][task]
        if os.path.isfile(task_file(prediction_folder, task, lang)) and os.path.isfile(task_file(label_folder, task, lang))
    ]


def evaluate(
    prediction_folder: str | os.PathLike, label_folder: str | os.PathLike, version: str = "xtreme",
    only_available_languages: bool = False,
) -> dict[str, Any]:
    """Score a submission: the exact structure the official script writes to ``--output_file``.

    ``all_task`` (if every task of the version was scored), the group scores (each if all of
    its tasks were scored) and then one :func:`score_task` entry per scored task.

    ``only_available_languages`` (not in the official script) scores each task on the languages
    present in both folders instead of requiring all of them, for runs on a subset of languages
    such as the embedded demo's; averages then are not comparable to leaderboard numbers.
    """
    tasks = plan(prediction_folder, label_folder, version).tasks
    task2langs = dict(TASK2LANGS[version])
    if only_available_languages:
        for task in tasks:
            task2langs[task] = available_languages(task, prediction_folder, label_folder, version)
            if not task2langs[task]:
                raise EvaluationError(f"{task}: no language has a file in both {prediction_folder} and {label_folder}")
    detailed = {task: score_task(task, prediction_folder, label_folder, task2langs[task]) for task in tasks}
    headline = {task: entry["avg_metric"] for task, entry in detailed.items() if "avg_metric" in entry}
    overall: dict[str, Any] = {}
    if set(headline) == set(task2langs):
        # The official sum runs over a set, so its last digit depends on the hash seed; fsum is
        # exact and deterministic, and equals the official value for most seeds.
        overall["all_task"] = math.fsum(headline.values()) / len(task2langs)
    for group, members in GROUP2TASKS[version].items():
        if all(t in headline for t in members):
            overall[group] = sum(headline[t] for t in members) / len(members)
    return {**overall, **detailed}
