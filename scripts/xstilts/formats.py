"""Canonical on-disk formats: one schema per task format, shared by synthetic and real data.

Every dataset lives under ``<data_root>/<dataset>/<lang>/`` and every producer (the embedded
benchmark generator, the download converters) writes exactly these files, so no downstream rule
can tell synthetic from real data.

JSON-lines formats (``<split>.jsonl``, UTF-8, one object per line):

===================== ===================================================================
format                fields
===================== ===================================================================
pair_classification   ``id`` str, ``sentence1`` str, ``sentence2`` str, ``label`` str
multiple_choice       ``id`` str, ``context`` str, ``question`` str, ``choices`` [str],
                      ``label`` int (index into ``choices``)
span_qa               ``id`` str, ``title`` str, ``context`` str, ``question`` str,
                      ``answers`` {``text``: [str], ``answer_start``: [int]} (character
                      offsets into ``context``; both lists empty = unanswerable)
tagging               ``id`` str, ``tokens`` [str], ``tags`` [str] (same length)
===================== ===================================================================

Plain-text formats:

* ``text`` (MLM corpus): ``train.txt``, one sentence per line.
* ``bitext_mining`` (BUCC 2018): ``<split>.source.tsv`` and ``<split>.target.tsv`` with lines
  ``id<TAB>sentence`` (source = the non-English side, target = English), and
  ``<split>.gold.tsv`` with lines ``source_id<TAB>target_id``.
* ``parallel_sentences`` (Tatoeba): ``test.source.txt`` and ``test.target.txt``, line i of the
  source (non-English) file translating line i of the target (English) file.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable

from xstilts.tasks import BITEXT, CHOICE, DATASETS, PAIR, PARALLEL, SPAN, TAGGING, TEXT


class FormatError(ValueError):
    """A canonical or XTREME file does not follow its documented schema."""


# --------------------------------------------------------------------------------------------
# Paths


#: Canonical files of one split, by format: role -> file name (``{split}`` filled in).
_FILES: dict[str, dict[str, str]] = {
    PAIR: {"records": "{split}.jsonl"},
    CHOICE: {"records": "{split}.jsonl"},
    SPAN: {"records": "{split}.jsonl"},
    TAGGING: {"records": "{split}.jsonl"},
    TEXT: {"text": "{split}.txt"},
    BITEXT: {role: f"{{split}}.{role}.tsv" for role in ("source", "target", "gold")},
    PARALLEL: {role: f"{{split}}.{role}.txt" for role in ("source", "target")},
}


def data_files(data_root: str | os.PathLike, dataset: str, lang: str, split: str) -> dict[str, str]:
    """Paths of the canonical files of one dataset/language/split, keyed by role."""
    base = Path(data_root) / dataset / lang
    return {role: str(base / name.format(split=split)) for role, name in _FILES[DATASETS[dataset].format].items()}


def data_file(data_root: str | os.PathLike, dataset: str, lang: str, split: str) -> str:
    """The single JSONL file of a labelled dataset split (pair, choice, span, tagging)."""
    files = data_files(data_root, dataset, lang, split)
    if "records" not in files:
        raise ValueError(f"dataset {dataset!r} is not stored as JSON lines")
    return files["records"]


# --------------------------------------------------------------------------------------------
# Writing


def _ensure_parent(path: str | os.PathLike) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)


def write_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]]) -> None:
    """Write records as UTF-8 JSON lines, keys in insertion order (byte-stable)."""
    _ensure_parent(path)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def write_lines(path: str | os.PathLike, lines: Iterable[str]) -> None:
    _ensure_parent(path)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for line in lines:
            if "\n" in line or "\r" in line:
                raise FormatError(f"{path}: a line may not contain a newline: {line!r}")
            f.write(line + "\n")


def write_tsv(path: str | os.PathLike, rows: Iterable[tuple[str, ...]]) -> None:
    def check(row: tuple[str, ...]) -> str:
        for cell in row:
            if "\t" in cell:
                raise FormatError(f"{path}: a cell may not contain a tab: {cell!r}")
        return "\t".join(row)

    write_lines(path, (check(r) for r in rows))


# --------------------------------------------------------------------------------------------
# Reading and validation


def _read_text(path: str | os.PathLike) -> str:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise FormatError(f"{path}: file not found") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise FormatError(utf8_problem(path, e)) from None


def utf8_problem(where: str | os.PathLike, e: UnicodeDecodeError) -> str:
    """The message for undecodable bytes; a file cut inside a multi-byte character looks truncated."""
    if e.reason == "unexpected end of data":
        return (f"{where}: ends inside a UTF-8 character (byte {e.start} of {len(e.object)}): the file looks "
                "truncated; rebuild or download it again")
    return f"{where}: not valid UTF-8 (byte {e.start}); re-encode the file as UTF-8"


def read_lines(path: str | os.PathLike) -> list[str]:
    """Lines of a UTF-8 text file without their line endings."""
    text = _read_text(path)
    return text.split("\n")[:-1] if text.endswith("\n") else text.split("\n") if text else []


_STR = (str,)
_SCHEMAS: dict[str, dict[str, Any]] = {
    PAIR: {"id": _STR, "sentence1": _STR, "sentence2": _STR, "label": _STR},
    CHOICE: {"id": _STR, "context": _STR, "question": _STR, "choices": "list[str]", "label": (int,)},
    SPAN: {"id": _STR, "title": _STR, "context": _STR, "question": _STR, "answers": "answers"},
    TAGGING: {"id": _STR, "tokens": "list[str]", "tags": "list[str]"},
}


def _check_record(rec: Any, fmt: str, where: str) -> None:
    if not isinstance(rec, dict):
        raise FormatError(f"{where}: expected a JSON object, got {type(rec).__name__}")
    schema = _SCHEMAS[fmt]
    missing = [k for k in schema if k not in rec]
    if missing:
        raise FormatError(f"{where}: missing field(s) {', '.join(missing)} required by the {fmt} format")
    extra = [k for k in rec if k not in schema]
    if extra:
        raise FormatError(f"{where}: unexpected field(s) {', '.join(extra)} for the {fmt} format")
    for key, kind in schema.items():
        value = rec[key]
        if kind == "list[str]":
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        elif kind == "answers":
            ok = (
                isinstance(value, dict)
                and set(value) == {"text", "answer_start"}
                and isinstance(value["text"], list)
                and isinstance(value["answer_start"], list)
                and len(value["text"]) == len(value["answer_start"])
                and all(isinstance(t, str) for t in value["text"])
                and all(isinstance(s, int) and not isinstance(s, bool) for s in value["answer_start"])
            )
        else:
            ok = isinstance(value, kind) and not isinstance(value, bool)
        if not ok:
            raise FormatError(f"{where}: field {key!r} has the wrong type or shape: {value!r}")
    _CHECKS.get(fmt, lambda rec, where: None)(rec, where)


def _check_tags(rec: dict[str, Any], where: str) -> None:
    if len(rec["tokens"]) != len(rec["tags"]):
        raise FormatError(f"{where}: {len(rec['tokens'])} tokens but {len(rec['tags'])} tags")
    if not rec["tokens"]:
        raise FormatError(f"{where}: a tagging example needs at least one token")


def _check_choice(rec: dict[str, Any], where: str) -> None:
    if not 0 <= rec["label"] < len(rec["choices"]):
        raise FormatError(f"{where}: label {rec['label']} is not an index into {len(rec['choices'])} choices")


def _check_answers(rec: dict[str, Any], where: str) -> None:
    for text, start in zip(rec["answers"]["text"], rec["answers"]["answer_start"]):
        if rec["context"][start : start + len(text)] != text:
            raise FormatError(
                f"{where}: answer {text!r} is not found at character {start} of the context"
            )


#: Checks of a record beyond field types, by format.
_CHECKS = {TAGGING: _check_tags, CHOICE: _check_choice, SPAN: _check_answers}
#: The values of a record checked against a closed label inventory, by format (default: its label).
_LABEL_VALUES = {TAGGING: lambda rec: rec["tags"]}


def read_jsonl(path: str | os.PathLike, fmt: str, labels: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Read and validate a canonical JSON-lines file of format ``fmt``.

    ``labels``, when given, is the closed label (pair) or tag (tagging) inventory; any other
    value is an error naming the file and line.
    """
    records = []
    seen: set[str] = set()
    label_set = set(labels)
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise FormatError(f"{where}: invalid JSON ({e.msg})") from None
        _check_record(rec, fmt, where)
        if rec["id"] in seen:
            raise FormatError(f"{where}: duplicate id {rec['id']!r}")
        seen.add(rec["id"])
        if label_set:
            values = _LABEL_VALUES.get(fmt, lambda r: [r["label"]])(rec)
            unknown = sorted(set(values) - label_set)
            if unknown:
                raise FormatError(f"{where}: unknown label(s) {unknown}; expected one of {sorted(label_set)}")
        records.append(rec)
    if not records:
        raise FormatError(f"{path}: the file holds no examples")
    return records


def read_dataset(data_root: str | os.PathLike, dataset: str, lang: str, split: str) -> list[dict[str, Any]]:
    """Read a labelled canonical dataset split, validated against its registry entry."""
    ds = DATASETS[dataset]
    return read_jsonl(data_file(data_root, dataset, lang, split), ds.format, ds.labels)


def read_id_sentences(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Read a BUCC-format ``id<TAB>sentence`` file."""
    ids, sentences = [], []
    for lineno, line in enumerate(read_lines(path), start=1):
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0]:
            raise FormatError(f"{path}:{lineno}: expected 'id<TAB>sentence', got {line[:80]!r}")
        ids.append(parts[0])
        sentences.append(parts[1])
    if not ids:
        raise FormatError(f"{path}: the file holds no sentences")
    return ids, sentences


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """Read ``source_id<TAB>target_id`` lines (BUCC gold or predictions)."""
    pairs = []
    for lineno, line in enumerate(read_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.strip().split("\t")
        if len(parts) != 2:
            raise FormatError(f"{path}:{lineno}: expected 'source_id<TAB>target_id', got {line[:80]!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# XTREME prediction and label files (the official submission layout)


def xtreme_file(folder: str | os.PathLike, task: str, lang: str, ext: str) -> str:
    return str(Path(folder) / task / f"test-{lang}.{ext}")


def write_xtreme_classification(path: str | os.PathLike, labels: list[str]) -> None:
    """One label per line (XNLI, PAWS-X; Tatoeba indices; BUCC ``src<TAB>trg`` pairs)."""
    write_lines(path, labels)


def write_xtreme_choice(path: str | os.PathLike, labels: list[int]) -> None:
    """XCOPA: one JSON object per line whose ``label`` is the chosen alternative's index."""
    write_lines(path, (json.dumps({"label": int(label)}) for label in labels))


def write_xtreme_tagging(path: str | os.PathLike, sentences: list[list[str]]) -> None:
    """One tag per line, a blank line after every sentence."""
    lines: list[str] = []
    for tags in sentences:
        lines.extend(tags)
        lines.append("")
    write_lines(path, lines)


def write_xtreme_qa_predictions(path: str | os.PathLike, answers: dict[str, str]) -> None:
    """A JSON object mapping question id to predicted answer text."""
    _ensure_parent(path)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(answers, f, ensure_ascii=False, indent=1)
        f.write("\n")


def write_xtreme_qa_labels(path: str | os.PathLike, records: list[dict[str, Any]]) -> None:
    """SQuAD v1.1 JSON (``{"data": [{"title", "paragraphs": [{"context", "qas"}]}]}``)."""
    articles: dict[str, dict[str, Any]] = {}
    for rec in records:
        article = articles.setdefault(rec["title"], {"title": rec["title"], "paragraphs": []})
        paragraphs = article["paragraphs"]
        if not paragraphs or paragraphs[-1]["context"] != rec["context"]:
            paragraphs.append({"context": rec["context"], "qas": []})
        paragraphs[-1]["qas"].append(
            {
                "id": rec["id"],
                "question": rec["question"],
                "answers": [
                    {"text": t, "answer_start": s}
                    for t, s in zip(rec["answers"]["text"], rec["answers"]["answer_start"])
                ],
            }
        )
    _ensure_parent(path)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump({"version": "1.1", "data": list(articles.values())}, f, ensure_ascii=False)
        f.write("\n")
