"""Upstream files -> canonical datasets (``formats.py``), with XTREME's conversion semantics.

Two layers:

* **parsers**: pure functions from the text of one upstream file (in its published format) to
  canonical records, each tested on small hand-written files (``tests/test_converters.py``);
* **the dispatcher** ``convert``: one table entry per dataset saying which upstream files feed
  which (split, language), reading them straight from the verified downloads (zip, tar, plain
  files) and writing exactly ``formats.data_files(...)`` for every split and language of the
  dataset's layout, then reading every written file back through the canonical validators.

XTREME semantics kept where they matter (reference/xtreme_eval.md section 3):

* XNLI: ``contradictory`` -> ``contradiction``; dev and test split per ``language`` column.
* UD-POS: CoNLL-U -> fused surface forms (``zum``) tagged with the POS of the span's head
  (fewest ancestors, ties by a POS precedence list, as XTREME's ud-conversion-tools); sentences
  whose forms are all, or all but one, ``_`` are dropped; ZWNJ and spaces inside words removed;
  all treebanks of a language concatenated per split in file-name order (a split shipped in
  several files, as de_hdt's training data, included).
* PAN-X: the ``lang:`` prefix of every token is stripped.
* TyDiQA-GoldP: languages from the question-id prefix (``english-...``); XTREME's test set is
  the official dev set; our English dev is held out from English train (``tydiqa_holdout``).
* BUCC 2018: ``training`` -> test, ``sample`` -> dev, sentence ids kept.
* Tatoeba: LASER's line-aligned files, line i translating line i.
* COPA and XCOPA (XTREME-R): premise -> context, ``cause``/``effect`` -> XTREME-R's question
  ("What was the cause?", as ``third_party/run_xcopa.py`` words it), choice1/choice2 -> choices,
  label 0/1; XCOPA's val files are its dev sets. Social IQa: answerA-C, labels 1-3 -> 0-2.
* Machine-translated training sets: XNLI-MT 1.0 (``contradictory`` -> ``contradiction``, ids
  ``<lang>-<line>``); MLQA translate-train, answers that do not occur in their translated
  context dropped (and counted), as XTREME's SQuAD reader skips them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import re
import tarfile
import zipfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Callable, Iterator

from xstilts import formats
from xstilts.formats import FormatError, utf8_problem
from xstilts.sources import TATOEBA_CODES
from xstilts.tasks import BINARY_LABELS, BITEXT, DATASETS, NER_TAGS, NLI_LABELS, PARALLEL, SPAN, TAGGING, TEXT, UPOS_TAGS

log = logging.getLogger("xstilts.converters")

Records = list[dict[str, Any]]


class ConversionError(FormatError):
    """An upstream file does not have the layout or content its converter expects."""


# ============================================================================================
# Parsers: one upstream format each


def _lines(text: str) -> list[tuple[int, str]]:
    return [(i, line.rstrip("\r")) for i, line in enumerate(text.split("\n"), start=1)]


def tsv_rows(text: str, where: str, columns: tuple[str, ...]) -> Iterator[tuple[int, dict[str, str]]]:
    """Rows of a headed, unquoted TSV file (GLUE, SNLI, XNLI, PAWS-X) as dicts of ``columns``.

    Rows too short to hold every requested column are skipped (as the Hugging Face loaders do);
    a header without a requested column is an error.
    """
    lines = [(n, line) for n, line in _lines(text) if line.strip()]
    if not lines:
        raise ConversionError(f"{where}: empty file")
    header = lines[0][1].split("\t")
    missing = [c for c in columns if c not in header]
    if missing:
        raise ConversionError(f"{where}:1: header lacks column(s) {missing}; found {header[:12]}")
    index = {c: header.index(c) for c in columns}
    need = max(index.values())
    for n, line in lines[1:]:
        cells = line.split("\t")
        if len(cells) <= need:
            continue
        yield n, {c: cells[i] for c, i in index.items()}


def pair_tsv(text: str, where: str, *, sentence1: str, sentence2: str, label: str, id_column: str,
             labels: tuple[str, ...], label_map: dict[str, str] | None = None,
             drop: tuple[str, ...] = ("-",)) -> Records:
    """Sentence-pair classification from a headed TSV file (MNLI, QQP, SNLI, PAWS-X)."""
    label_map = label_map or {}
    records, dropped = [], 0
    for n, row in tsv_rows(text, where, (sentence1, sentence2, label, id_column)):
        value = label_map.get(row[label].strip(), row[label].strip())
        if value in drop:
            dropped += 1
            continue
        if value not in labels:
            raise ConversionError(f"{where}:{n}: unknown label {row[label]!r}; expected one of {list(labels)}")
        records.append({"id": row[id_column], "sentence1": row[sentence1].strip(),
                        "sentence2": row[sentence2].strip(), "label": value})
    if dropped:
        log.info("%s: dropped %d examples without a gold label", where, dropped)
    return records


def _json_lines(text: str, where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for n, line in _lines(text):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise ConversionError(f"{where}:{n}: invalid JSON ({e.msg})") from None
        if not isinstance(obj, dict):
            raise ConversionError(f"{where}:{n}: expected a JSON object")
        yield n, obj


def _field(obj: dict[str, Any], key: str, where: str) -> Any:
    try:
        return obj[key]
    except KeyError:
        raise ConversionError(f"{where}: missing field {key!r}") from None


ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}


def anli_jsonl(text: str, where: str) -> Records:
    """ANLI rounds (``anli_v0.1/R*/{train,dev}.jsonl``): uid, context, hypothesis, label e/n/c."""
    records = []
    for n, obj in _json_lines(text, where):
        label = _field(obj, "label", f"{where}:{n}")
        if label not in ANLI_LABELS:
            raise ConversionError(f"{where}:{n}: unknown label {label!r}; expected one of {sorted(ANLI_LABELS)}")
        records.append({"id": str(_field(obj, "uid", f"{where}:{n}")),
                        "sentence1": _field(obj, "context", f"{where}:{n}"),
                        "sentence2": _field(obj, "hypothesis", f"{where}:{n}"), "label": ANLI_LABELS[label]})
    return records


def _answer_span(context: str, text: str, start: int, where: str) -> int:
    """The start of ``text`` in ``context``: ``start`` if it matches there, else the nearest
    occurrence (a few upstream offsets are off by some characters)."""
    if context[start : start + len(text)] == text:
        return start
    hits = [m.start() for m in re.finditer(re.escape(text), context)]
    if not hits:
        raise ConversionError(f"{where}: answer {text!r} does not occur in its context")
    return min(hits, key=lambda h: abs(h - start))


def squad_json(text: str, where: str, *, drop_unfound: bool = False) -> Records:
    """SQuAD v1.1/v2.0-format JSON (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): one record per question.

    SQuAD v2.0 questions marked ``is_impossible`` get no answers (``plausible_answers`` are not
    answers). An answer whose offset is off moves to the nearest occurrence of its text. An answer
    whose text does not occur in its context is an error, unless ``drop_unfound`` (machine-
    translated data, where answer and context were translated separately): then such answers, and
    empty ones, are dropped, and so is every question left without an answer (as XTREME's SQuAD
    reader skips training examples whose answer it cannot find); the counts are logged.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConversionError(f"{where}: invalid JSON ({e.msg} at line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise ConversionError(f"{where}: expected SQuAD JSON ({{'data': [{{'paragraphs': ...}}]}})")
    records: Records = []
    relocated = lost = dropped = 0
    for a, article in enumerate(data["data"]):
        title = article.get("title", "") or ""
        for p, paragraph in enumerate(_field(article, "paragraphs", f"{where}: data[{a}]")):
            context = _field(paragraph, "context", f"{where}: data[{a}].paragraphs[{p}]")
            for qa in _field(paragraph, "qas", f"{where}: data[{a}].paragraphs[{p}]"):
                qid = str(_field(qa, "id", f"{where}: data[{a}].paragraphs[{p}]"))
                at = f"{where}: question {qid}"
                answers = [] if qa.get("is_impossible") else _field(qa, "answers", at)
                texts, starts = [], []
                for answer in answers:
                    t, s = _field(answer, "text", at), _field(answer, "answer_start", at)
                    if not isinstance(t, str) or not isinstance(s, int):
                        raise ConversionError(f"{at}: malformed answer {answer!r}")
                    if drop_unfound and (not t.strip() or t not in context):
                        lost += 1
                        continue
                    texts.append(t)
                    starts.append(_answer_span(context, t, s, at))
                    relocated += starts[-1] != s
                if drop_unfound and not texts:
                    dropped += 1
                    continue
                records.append({"id": qid, "title": title, "context": context,
                                "question": _field(qa, "question", at),
                                "answers": {"text": texts, "answer_start": starts}})
    if relocated:
        log.info("%s: moved %d answer offset(s) to the nearest occurrence of the answer text", where, relocated)
    if lost or dropped:
        log.warning("%s: dropped %d answer(s) empty or not found in their context, and %d of %d questions "
                    "left without an answer", where, lost, dropped, dropped + len(records))
    return records


def hellaswag_jsonl(text: str, where: str) -> Records:
    """HellaSwag: context = ``ctx_a``, choices = ``ctx_b`` + each ending (as jiant)."""
    records = []
    for n, obj in _json_lines(text, where):
        at = f"{where}:{n}"
        endings = _field(obj, "endings", at)
        label = int(_field(obj, "label", at))
        if len(endings) != 4 or not 0 <= label < 4:
            raise ConversionError(f"{at}: expected 4 endings and a label 0-3, got {len(endings)} and {label}")
        ctx_b = obj.get("ctx_b", "") or ""
        records.append({"id": str(_field(obj, "ind", at)), "context": _field(obj, "ctx_a", at), "question": "",
                        "choices": [f"{ctx_b} {e}".strip() for e in endings], "label": label})
    return records


def cosmosqa_csv(text: str, where: str) -> Records:
    """Cosmos QA CSV (id, context, question, answer0-3, label)."""
    reader = csv.DictReader(io.StringIO(text))
    needed = ["id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label"]
    missing = [c for c in needed if c not in (reader.fieldnames or [])]
    if missing:
        raise ConversionError(f"{where}:1: header lacks column(s) {missing}")
    records = []
    for n, row in enumerate(reader, start=2):
        try:
            label = int(row["label"])
        except (TypeError, ValueError):
            raise ConversionError(f"{where}: row {n}: label {row['label']!r} is not 0-3") from None
        if not 0 <= label < 4 or any(row[c] is None for c in needed):
            raise ConversionError(f"{where}: row {n}: malformed row")
        records.append({"id": row["id"], "context": row["context"], "question": row["question"],
                        "choices": [row[f"answer{i}"] for i in range(4)], "label": label})
    return records


def commonsenseqa_jsonl(text: str, where: str) -> Records:
    """CommonsenseQA: question stem, five choices ordered by their letters, answerKey."""
    records = []
    for n, obj in _json_lines(text, where):
        at = f"{where}:{n}"
        question = _field(obj, "question", at)
        choices = sorted(_field(question, "choices", at), key=lambda c: c["label"])
        letters = [c["label"] for c in choices]
        key = _field(obj, "answerKey", at)
        if key not in letters:
            raise ConversionError(f"{at}: answerKey {key!r} is not one of the choices {letters}")
        records.append({"id": str(_field(obj, "id", at)), "context": "", "question": _field(question, "stem", at),
                        "choices": [c["text"] for c in choices], "label": letters.index(key)})
    return records


#: XTREME-R's wording of COPA's question field (third_party/run_xcopa.py: "What was the {question}?").
COPA_QUESTIONS = {"cause": "What was the cause?", "effect": "What was the effect?"}


def copa_jsonl(text: str, where: str) -> Records:
    """COPA (SuperGLUE) and XCOPA JSONL: premise, choice1, choice2, question, label, idx."""
    records = []
    for n, obj in _json_lines(text, where):
        at = f"{where}:{n}"
        question = _field(obj, "question", at)
        if question not in COPA_QUESTIONS:
            raise ConversionError(f"{at}: question {question!r} is neither 'cause' nor 'effect'")
        label = _field(obj, "label", at)
        if label not in (0, 1) or isinstance(label, bool):
            raise ConversionError(f"{at}: label {label!r} is not 0 or 1")
        records.append({"id": str(_field(obj, "idx", at)), "context": _field(obj, "premise", at),
                        "question": COPA_QUESTIONS[question],
                        "choices": [_field(obj, "choice1", at), _field(obj, "choice2", at)], "label": label})
    return records


def siqa_jsonl(text: str, labels: str, where: str) -> Records:
    """Social IQa: ``<split>.jsonl`` (context, question, answerA-C) and ``<split>-labels.lst`` (1-3)."""
    rows = list(_json_lines(text, where))
    gold = [line.strip() for _, line in _lines(labels) if line.strip()]
    if len(gold) != len(rows):
        raise ConversionError(f"{where}: {len(rows)} examples but {len(gold)} labels in its label list")
    records = []
    for i, ((n, obj), label) in enumerate(zip(rows, gold)):
        at = f"{where}:{n}"
        if label not in ("1", "2", "3"):
            raise ConversionError(f"{at}: label {label!r} (from the label list) is not 1, 2 or 3")
        records.append({"id": str(i), "context": _field(obj, "context", at), "question": _field(obj, "question", at),
                        "choices": [_field(obj, f"answer{c}", at) for c in "ABC"], "label": int(label) - 1})
    return records


_CCG_LEAF = re.compile(r"<L (\S+) (\S+) (\S+) (\S+) (\S+)>")


def ccg_auto(text: str, where: str) -> Records:
    """CCGbank AUTO derivations -> (word, supertag) sequences, one record per sentence."""
    records: Records = []
    sentence_id = None
    for n, line in _lines(text):
        if line.startswith("ID="):
            sentence_id = line.split()[0][3:]
        elif line.startswith("("):
            leaves = _CCG_LEAF.findall(line)
            if sentence_id is None or not leaves:
                raise ConversionError(f"{where}:{n}: a derivation without an ID= line or without leaves")
            records.append({"id": sentence_id, "tokens": [leaf[3] for leaf in leaves],
                            "tags": [leaf[0] for leaf in leaves]})
            sentence_id = None
        elif line.strip():
            raise ConversionError(f"{where}:{n}: not a CCGbank AUTO line: {line[:60]!r}")
    return records


def xnli_tsv(text: str, where: str) -> dict[str, Records]:
    """XNLI-1.0 ``xnli.{dev,test}.tsv`` -> records per language."""
    out: dict[str, Records] = defaultdict(list)
    for n, row in tsv_rows(text, where, ("language", "gold_label", "sentence1", "sentence2", "pairID")):
        label = "contradiction" if row["gold_label"] == "contradictory" else row["gold_label"]
        if label not in NLI_LABELS:
            raise ConversionError(f"{where}:{n}: unknown label {row['gold_label']!r}")
        out[row["language"]].append({"id": row["pairID"], "sentence1": row["sentence1"].strip(),
                                     "sentence2": row["sentence2"].strip(), "label": label})
    return dict(out)


def xnli_mt_tsv(text: str, where: str, lang: str) -> Records:
    """XNLI-MT 1.0 ``multinli.train.<lang>.tsv``: MNLI's training set machine-translated, headed
    and unquoted (quote characters are text), columns premise, hypo, label; ``contradictory`` ->
    ``contradiction``. The files carry no ids; the files of all languages are line-aligned, so an
    example's id is ``<lang>-<line number>``. Rows without a label column or with label ``-`` are
    dropped and counted; an unknown label is an error."""
    records: Records = []
    for n, row in tsv_rows(text, where, ("premise", "hypo", "label")):
        label = row["label"].strip()
        label = "contradiction" if label == "contradictory" else label
        if label == "-":
            continue
        if label not in NLI_LABELS:
            raise ConversionError(f"{where}:{n}: unknown label {row['label']!r}; expected one of "
                                  f"{[*NLI_LABELS, 'contradictory']}")
        records.append({"id": f"{lang}-{n}", "sentence1": row["premise"].strip(), "sentence2": row["hypo"].strip(),
                        "label": label})
    rows = sum(1 for _, line in _lines(text) if line.strip()) - 1  # less the header
    if rows != len(records):
        log.warning("%s: dropped %d of %d rows (too few columns or no gold label)", where, rows - len(records), rows)
    return records


def pawsx_tsv(text: str, where: str) -> Records:
    return pair_tsv(text, where, sentence1="sentence1", sentence2="sentence2", label="label", id_column="id",
                    labels=BINARY_LABELS, drop=())


# --- UD-POS -----------------------------------------------------------------------------------

# XTREME's ud-conversion-tools (conllu_to_conll.py --replace_subtokens_with_fused_forms): which
# sub-token of a multi-word token gives the fused form its POS when several are equally high.
POS_PRECEDENCE = {
    "default": "VERB NOUN PROPN PRON ADJ NUM ADV INTJ AUX ADP DET PART CCONJ SCONJ X PUNCT".split(),
    "es": "VERB AUX PRON ADP DET".split(),
    "fr": "VERB AUX PRON NOUN ADJ ADV ADP DET PART SCONJ CONJ".split(),
    "it": "VERB AUX ADV PRON ADP DET INTJ".split(),
}


def _ancestors(node: int, parents: dict[int, set[int]]) -> int:
    seen: set[int] = set()
    todo = list(parents.get(node, ()))
    while todo:
        p = todo.pop()
        if p not in seen:
            seen.add(p)
            todo.extend(parents.get(p, ()))
    return len(seen)


def _span_head(span: list[int], parents: dict[int, set[int]], upos: dict[int, str], precedence: list[str]) -> int:
    """The sub-token that heads a multi-word token: the single highest one (fewest ancestors,
    counting basic and enhanced heads), else the highest one with the best-ranked POS."""
    depth = {i: _ancestors(i, parents) for i in span}
    top = min(depth.values())
    highest = [i for i in span if depth[i] == top]
    if len(highest) == 1:
        return highest[0]
    rank = {tag: r for r, tag in enumerate(precedence)}
    return min(highest, key=lambda i: (rank.get(upos[i], len(precedence)), i))


def _conllu_sentence(rows: list[tuple[int, list[str]]], precedence: list[str], where: str) -> tuple[list[str], list[str]]:
    forms: dict[int, str] = {}
    upos: dict[int, str] = {}
    parents: dict[int, set[int]] = defaultdict(set)
    spans: list[tuple[int, int, str]] = []
    for n, cols in rows:
        token_id = cols[0]
        if "." in token_id:  # empty nodes of enhanced graphs
            continue
        if "-" in token_id:
            start, end = (int(x) for x in token_id.split("-"))
            spans.append((start, end, cols[1]))
            continue
        try:
            i = int(token_id)
            if cols[6] != "_":
                parents[i].add(int(cols[6]))
        except ValueError:
            raise ConversionError(f"{where}:{n}: bad token id or head {cols[0]!r}/{cols[6]!r}") from None
        if cols[8] != "_":
            for pair in cols[8].split("|"):
                head = pair.split(":")[0]
                if head.isdigit():
                    parents[i].add(int(head))
        forms[i], upos[i] = cols[1], cols[3]
    drop: set[int] = set()
    for start, end, fused in spans:
        span = [i for i in range(start, end + 1) if i in forms]
        if not span:
            raise ConversionError(f"{where}: multi-word token {start}-{end} covers no words")
        head = _span_head(span, parents, upos, precedence)
        forms[head] = fused
        drop.update(i for i in span if i != head)
    order = [i for i in sorted(forms) if i not in drop]
    return [forms[i] for i in order], [upos[i] for i in order]


def conllu_xtreme(text: str, lang: str, where: str) -> list[tuple[list[str], list[str]]]:
    """A CoNLL-U file -> XTREME's UD-POS sentences as (tokens, UPOS tags)."""
    precedence = POS_PRECEDENCE.get(lang, POS_PRECEDENCE["default"])
    sentences = []
    rows: list[tuple[int, list[str]]] = []
    for n, line in _lines(text) + [(0, "")]:
        if line.startswith("#"):
            continue
        if line.strip():
            cols = line.split("\t")
            if len(cols) != 10:
                raise ConversionError(f"{where}:{n}: expected 10 tab-separated CoNLL-U columns, got {len(cols)}")
            rows.append((n, cols))
            continue
        if not rows:
            continue
        tokens, tags = _conllu_sentence(rows, precedence, where)
        rows = []
        empty = sum(t == "_" for t in tokens)
        if empty and empty >= len(tokens) - 1:  # text withheld by the treebank's licence
            continue
        tokens = ["".join(t.replace("\u200c", "").split(" ")) for t in tokens]
        unknown = sorted(set(tags) - set(UPOS_TAGS))
        if unknown:
            raise ConversionError(f"{where}: unknown UPOS tag(s) {unknown}")
        sentences.append((tokens, tags))
    return sentences


def panx_conll(text: str, where: str) -> list[tuple[list[str], list[str]]]:
    """PAN-X (WikiANN as XTREME splits it): ``lang:token<TAB>TAG`` lines, blank line between sentences."""
    sentences, tokens, tags = [], [], []
    for n, line in _lines(text) + [(0, "")]:
        if not line.strip():
            if tokens:
                sentences.append((tokens, tags))
                tokens, tags = [], []
            continue
        cells = line.strip().split("\t")
        if len(cells) != 2 or ":" not in cells[0]:
            raise ConversionError(f"{where}:{n}: expected 'lang:token<TAB>tag', got {line[:60]!r}")
        if cells[1] not in NER_TAGS:
            raise ConversionError(f"{where}:{n}: unknown tag {cells[1]!r}; expected one of {list(NER_TAGS)}")
        tokens.append(cells[0].split(":", 1)[1])
        tags.append(cells[1])
    return sentences


# --- TyDiQA, BUCC, Tatoeba --------------------------------------------------------------------

TYDIQA_LANGUAGES = {"arabic": "ar", "bengali": "bn", "english": "en", "finnish": "fi", "indonesian": "id",
                    "korean": "ko", "russian": "ru", "swahili": "sw", "telugu": "te"}
#: One English passage in TYDIQA_DEV_BUCKETS goes to our English dev set.
TYDIQA_DEV_BUCKETS = 10


def tydiqa_by_language(text: str, where: str) -> dict[str, Records]:
    """TyDiQA-GoldP JSON -> records per language, from the question-id prefix (``english-...``)."""
    out: dict[str, Records] = defaultdict(list)
    for rec in squad_json(text, where):
        name = rec["id"].split("-")[0]
        if name not in TYDIQA_LANGUAGES:
            raise ConversionError(f"{where}: question {rec['id']!r} has no known language prefix")
        out[TYDIQA_LANGUAGES[name]].append(rec)
    return dict(out)


def tydiqa_holdout(records: Records) -> tuple[Records, Records]:
    """Split English GoldP train into (train, dev): a passage goes to dev when the sha256 of its
    text is 0 modulo TYDIQA_DEV_BUCKETS, so a passage and all its questions stay on one side and
    the split does not depend on file order."""
    train, dev = [], []
    for rec in records:
        bucket = int(hashlib.sha256(rec["context"].encode("utf-8")).hexdigest()[:8], 16) % TYDIQA_DEV_BUCKETS
        (dev if bucket == 0 else train).append(rec)
    return train, dev


def id_sentences(text: str, where: str) -> list[tuple[str, str]]:
    rows = []
    for n, line in _lines(text):
        if not line:
            continue
        cells = line.split("\t")
        if len(cells) != 2 or not cells[0]:
            raise ConversionError(f"{where}:{n}: expected 'id<TAB>sentence', got {line[:60]!r}")
        rows.append((cells[0], cells[1].strip()))
    if not rows:
        raise ConversionError(f"{where}: no sentences")
    return rows


def bucc_corpus(source: str, target: str, gold: str, where: str) -> tuple[list[tuple[str, str]], ...]:
    """One BUCC 2018 split: the two comparable corpora and the gold pairs (ids checked)."""
    src = id_sentences(source, f"{where}.source")
    trg = id_sentences(target, f"{where}.en")
    pairs = id_sentences(gold, f"{where}.gold")
    src_ids, trg_ids = {i for i, _ in src}, {i for i, _ in trg}
    for s, t in pairs:
        if s not in src_ids or t not in trg_ids:
            raise ConversionError(f"{where}.gold: pair {s}\t{t} names a sentence missing from the corpora")
    return src, trg, pairs


def tatoeba_pair(source: str, english: str, where: str) -> tuple[list[str], list[str]]:
    """LASER Tatoeba ``tatoeba.xxx-eng.{xxx,eng}``: line i of one translates line i of the other."""
    src = [line.strip() for _, line in _lines(source)]
    eng = [line.strip() for _, line in _lines(english)]
    for side in (src, eng):
        if side and side[-1] == "":
            side.pop()
    if len(src) != len(eng) or not src:
        raise ConversionError(f"{where}: {len(src)} source lines but {len(eng)} English lines; "
                              "the files must be line-aligned")
    return src, eng


# ============================================================================================
# Reading upstream containers


class Raw:
    """The verified download folder of one source: plain files, zip and tar archives."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        path = self.folder / name
        if not path.is_file():
            raise ConversionError(f"{path}: missing; it is written by rule download_source")
        return path

    def text(self, name: str) -> str:
        return _decode(self.path(name).read_bytes(), str(self.folder / name))

    def zip_text(self, archive: str, member: str) -> str:
        path = self.path(archive)
        with zipfile.ZipFile(path) as z:
            names = [n for n in z.namelist()
                     if (n == member or n.endswith("/" + member)) and not n.startswith("__MACOSX/")]
            if not names:
                raise ConversionError(f"{path}: no member {member!r} (members: {z.namelist()[:8]} ...)")
            return _decode(z.read(names[0]), f"{path}:{names[0]}")

    def tar_texts(self, archive: str, wanted: Callable[[str], bool]) -> Iterator[tuple[str, str]]:
        """(member name, text) of the regular files of a tar archive that ``wanted`` selects."""
        path = self.path(archive)
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile() and wanted(member.name):
                    data = tar.extractfile(member).read()  # type: ignore[union-attr]
                    yield member.name, _decode(data, f"{path}:{member.name}")


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConversionError(utf8_problem(where, e)) from None


def _tar_bytes(data: bytes, wanted: Callable[[str], bool], where: str) -> dict[str, str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:*") as tar:
        return {m.name: _decode(tar.extractfile(m).read(), f"{where}:{m.name}")  # type: ignore[union-attr]
                for m in tar if m.isfile() and wanted(m.name)}


# ============================================================================================
# Per-dataset readers: (raw folder, layout) -> {(split, lang): payload}

Layout = dict[str, list[str]]
Payloads = dict[tuple[str, str], Any]


def _anli(round_: str) -> Callable[[Raw, Layout], Payloads]:
    def read(raw: Raw, layout: Layout) -> Payloads:
        return {(split, "en"): anli_jsonl(raw.zip_text("anli_v0.1.zip", f"{round_}/{split}.jsonl"),
                                          f"anli_v0.1.zip:{round_}/{split}.jsonl") for split in layout}
    return read


def _glue(archive: str, files: dict[str, str], **columns: Any) -> Callable[[Raw, Layout], Payloads]:
    def read(raw: Raw, layout: Layout) -> Payloads:
        return {(split, "en"): pair_tsv(raw.zip_text(archive, files[split]), f"{archive}:{files[split]}", **columns)
                for split in layout}
    return read


def _json_files(files: dict[str, str], parse: Callable[[str, str], Records]) -> Callable[[Raw, Layout], Payloads]:
    def read(raw: Raw, layout: Layout) -> Payloads:
        return {(split, "en"): parse(raw.text(files[split]), files[split]) for split in layout}
    return read


def _xnli(raw: Raw, layout: Layout) -> Payloads:
    out: Payloads = {}
    for split in layout:
        member = f"XNLI-1.0/xnli.{split}.tsv"
        for lang, records in xnli_tsv(raw.zip_text("XNLI-1.0.zip", member), f"XNLI-1.0.zip:{member}").items():
            out[(split, lang)] = records
    return out


def _xnli_mt(raw: Raw, layout: Layout) -> Payloads:
    """XNLI-MT 1.0: ``XNLI-MT-1.0/multinli/multinli.train.<lang>.tsv`` (train only)."""
    out: Payloads = {}
    for split, langs in layout.items():
        if split != "train":
            raise ConversionError(f"mnli_mt: XNLI-MT-1.0.zip has only a train split, not {split!r}")
        for lang in langs:
            member = f"XNLI-MT-1.0/multinli/multinli.train.{lang}.tsv"
            out[(split, lang)] = xnli_mt_tsv(raw.zip_text("XNLI-MT-1.0.zip", member), f"XNLI-MT-1.0.zip:{member}", lang)
    return out


PAWSX_FILES = {"train": "train.tsv", "dev": "dev_2k.tsv", "test": "test_2k.tsv"}


def _pawsx(raw: Raw, layout: Layout) -> Payloads:
    wanted = {f"{lang}/{PAWSX_FILES[split]}": (split, lang) for split, langs in layout.items() for lang in langs}
    out: Payloads = {}
    for name, text in raw.tar_texts("x-final.tar.gz", lambda n: "/".join(n.split("/")[-2:]) in wanted):
        out[wanted["/".join(name.split("/")[-2:])]] = pawsx_tsv(text, f"x-final.tar.gz:{name}")
    return out


# A treebank's split may come in several files (UD v2.5 de_hdt-ud-train-a-1.conllu, -a-2, -b-1,
# -b-2); XTREME reads every file whose name contains the split, in file-name order.
_UD_FILE = re.compile(r"(?:^|/)([a-z]{2,3})_[a-z0-9]+-ud-(train|dev|test)(?:-[a-z0-9]+)*\.conllu$")


def _udpos(raw: Raw, layout: Layout) -> Payloads:
    wanted = {(split, lang) for split, langs in layout.items() for lang in langs}

    def select(name: str) -> bool:
        m = _UD_FILE.search(name)
        return bool(m) and (m.group(2), m.group(1)) in wanted

    # Parse while streaming the archive; concatenate each language's treebanks in file-name order.
    parsed = {}
    for name, text in raw.tar_texts("ud-treebanks-v2.5.tgz", select):
        m = _UD_FILE.search(name)
        assert m is not None
        parsed[Path(name).name] = (m.group(2), m.group(1), conllu_xtreme(text, m.group(1), f"ud-treebanks-v2.5.tgz:{name}"))
    out: Payloads = defaultdict(list)
    for _, (split, lang, sentences) in sorted(parsed.items()):
        out[(split, lang)] += sentences
    return {key: value for key, value in out.items() if value}


def _panx(raw: Raw, layout: Layout) -> Payloads:
    path = raw.path("panx_dataset.zip")
    langs = sorted({lang for langs in layout.values() for lang in langs})
    out: Payloads = {}
    with zipfile.ZipFile(path) as z:
        members = {Path(n).name: n for n in z.namelist()}
        for lang in langs:
            if f"{lang}.tar.gz" not in members:
                raise ConversionError(f"{path}: no {lang}.tar.gz inside")
            inner = _tar_bytes(z.read(members[f"{lang}.tar.gz"]), lambda n: Path(n).name in layout,
                               f"{path}:{lang}.tar.gz")
            for name, text in inner.items():
                split = Path(name).name
                if lang in layout.get(split, []):
                    out[(split, lang)] = panx_conll(text, f"{path}:{lang}.tar.gz:{name}")
    return out


SIQA_FILES = {"train": "train", "dev": "dev"}
COPA_FILES = {"train": "train", "dev": "val"}


def _siqa(raw: Raw, layout: Layout) -> Payloads:
    archive = "socialiqa-train-dev.zip"
    out: Payloads = {}
    for split in layout:
        name = SIQA_FILES[split]
        out[(split, "en")] = siqa_jsonl(raw.zip_text(archive, f"{name}.jsonl"),
                                        raw.zip_text(archive, f"{name}-labels.lst"), f"{archive}:{name}.jsonl")
    return out


def _copa(raw: Raw, layout: Layout) -> Payloads:
    return {(split, "en"): copa_jsonl(raw.zip_text("COPA.zip", f"COPA/{COPA_FILES[split]}.jsonl"),
                                      f"COPA.zip:COPA/{COPA_FILES[split]}.jsonl") for split in layout}


def _xcopa(raw: Raw, layout: Layout) -> Payloads:
    files = {"dev": "val", "test": "test"}
    return {(split, lang): copa_jsonl(raw.text(f"{files[split]}.{lang}.jsonl"), f"{files[split]}.{lang}.jsonl")
            for split, langs in layout.items() for lang in langs}


def _xquad(raw: Raw, layout: Layout) -> Payloads:
    return {("test", lang): squad_json(raw.text(f"xquad.{lang}.json"), f"xquad.{lang}.json")
            for lang in layout.get("test", [])}


def _mlqa(raw: Raw, layout: Layout) -> Payloads:
    out: Payloads = {}
    for split, langs in layout.items():
        for lang in langs:
            member = f"MLQA_V1/{split}/{split}-context-{lang}-question-{lang}.json"
            out[(split, lang)] = squad_json(raw.zip_text("MLQA_V1.zip", member), f"MLQA_V1.zip:{member}")
    return out


def _mlqa_translate_train(raw: Raw, layout: Layout) -> Payloads:
    """MLQA translate-train: ``mlqa-translate-train/<lang>_squad-translate-train-train-v1.1.json``
    (SQuAD v1.1 train machine-translated); answers not found in their context are dropped."""
    archive = "mlqa-translate-train.tar.gz"
    wanted: dict[str, tuple[str, str]] = {}
    for split, langs in layout.items():
        if split != "train":
            raise ConversionError(f"squad_v1_mt: only the train split of {archive} is used, not {split!r}")
        wanted.update({f"mlqa-translate-train/{lang}_squad-translate-train-train-v1.1.json": (split, lang)
                       for lang in langs})

    def member(name: str) -> str | None:
        return next((w for w in wanted if name == w or name.endswith("/" + w)), None)

    out: Payloads = {}
    for name, text in raw.tar_texts(archive, lambda n: member(n) is not None):
        key = member(name)
        assert key is not None
        out[wanted[key]] = squad_json(text, f"{archive}:{name}", drop_unfound=True)
    missing = [w for w, key in wanted.items() if key not in out]
    if missing:
        raise ConversionError(f"{raw.path(archive)}: no member(s) {missing}")
    return out


def _tydiqa(raw: Raw, layout: Layout) -> Payloads:
    out: Payloads = {}
    if "train" in layout or "dev" in layout:
        english = tydiqa_by_language(raw.text("tydiqa-goldp-v1.1-train.json"), "tydiqa-goldp-v1.1-train.json")
        train, dev = tydiqa_holdout(english.get("en", []))
        out[("train", "en")], out[("dev", "en")] = train, dev
    if "test" in layout:  # XTREME's test set is the official GoldP dev set
        for lang, records in tydiqa_by_language(raw.text("tydiqa-goldp-v1.1-dev.json"),
                                                "tydiqa-goldp-v1.1-dev.json").items():
            out[("test", lang)] = records
    return out


BUCC_SPLITS = {"test": "training", "dev": "sample"}


def _bucc(raw: Raw, layout: Layout) -> Payloads:
    out: Payloads = {}
    for split, langs in layout.items():
        for lang in langs:
            archive = f"bucc2018-{lang}-en.{BUCC_SPLITS[split]}-gold.tar.bz2"
            prefix = f"{lang}-en.{BUCC_SPLITS[split]}"
            files = {Path(n).name: t for n, t in raw.tar_texts(archive, lambda n: Path(n).name.startswith(prefix))}
            missing = [f"{prefix}.{s}" for s in (lang, "en", "gold") if f"{prefix}.{s}" not in files]
            if missing:
                raise ConversionError(f"{archive}: missing member(s) {missing}")
            out[(split, lang)] = bucc_corpus(files[f"{prefix}.{lang}"], files[f"{prefix}.en"], files[f"{prefix}.gold"],
                                             f"{archive}:{prefix}")
    return out


def _tatoeba(raw: Raw, layout: Layout) -> Payloads:
    codes = {two: three for three, two in TATOEBA_CODES.items()}
    return {("test", lang): tatoeba_pair(raw.text(f"tatoeba.{codes[lang]}-eng.{codes[lang]}"),
                                         raw.text(f"tatoeba.{codes[lang]}-eng.eng"), f"tatoeba.{codes[lang]}-eng")
            for lang in layout.get("test", [])}


CCG_SECTIONS = {"train": [f"{s:02d}" for s in range(2, 22)], "dev": ["00"], "test": ["23"]}


def ccgbank_auto_dir(root: str | Path) -> Path:
    """The ``AUTO`` folder of a CCGbank release given its root (or the folder itself)."""
    root = Path(root)
    for candidate in (root / "data" / "AUTO", root / "AUTO", root):
        if (candidate / "00").is_dir() and (candidate / "02").is_dir():
            return candidate
    raise ConversionError(ccgbank_missing_message(str(root)))


def ccgbank_missing_message(path: str) -> str:
    where = f"{path!r} ({Path(path).resolve()})" if path and not path.startswith("(") else path
    return (
        f"CCGbank not found at {where}. CCGbank (LDC2005T13) is licensed by the LDC and cannot be downloaded "
        "by the workflow. Either put the release there (the folder holding data/AUTO/00 ... data/AUTO/24), or "
        "set data.download.ccgbank to where it is (--config 'data={\"download\": {\"ccgbank\": \"/path\"}}'), "
        "or drop CCG from the grid: --config 'intermediate={\"tasks\": [\"anli_plus\", \"mnli\", \"qqp\", "
        "\"squad_v1\", \"squad_v2\", \"hellaswag\", \"cosmosqa\", \"commonsenseqa\"]}' (or the same "
        "keys in config.yaml or a file passed with --configfile)."
    )


def _ccg(ccgbank: str | Path) -> Callable[[Raw, Layout], Payloads]:
    def read(raw: Raw, layout: Layout) -> Payloads:
        auto = ccgbank_auto_dir(ccgbank)
        out: Payloads = {}
        for split in layout:
            records: Records = []
            for section in CCG_SECTIONS[split]:
                files = sorted((auto / section).glob("*.auto"))
                if not files:
                    raise ConversionError(f"{auto / section}: no .auto files; is this a complete CCGbank release?")
                for path in files:
                    records += ccg_auto(_decode(path.read_bytes(), str(path)), str(path))
            out[(split, "en")] = records
        return out
    return read


READERS: dict[str, Callable[[Raw, Layout], Payloads]] = {
    "anli_r1": _anli("R1"),
    "anli_r2": _anli("R2"),
    "anli_r3": _anli("R3"),
    "snli": _glue("snli_1.0.zip", {"train": "snli_1.0/snli_1.0_train.txt", "dev": "snli_1.0/snli_1.0_dev.txt"},
                  sentence1="sentence1", sentence2="sentence2", label="gold_label", id_column="pairID",
                  labels=NLI_LABELS),
    "mnli": _glue("MNLI.zip", {"train": "MNLI/train.tsv", "dev": "MNLI/dev_matched.tsv"},
                  sentence1="sentence1", sentence2="sentence2", label="gold_label", id_column="pairID",
                  labels=NLI_LABELS),
    "qqp": _glue("QQP-clean.zip", {"train": "QQP/train.tsv", "dev": "QQP/dev.tsv"},
                 sentence1="question1", sentence2="question2", label="is_duplicate", id_column="id",
                 labels=BINARY_LABELS, drop=()),
    "squad_v1": _json_files({"train": "train-v1.1.json", "dev": "dev-v1.1.json"}, squad_json),
    "squad_v2": _json_files({"train": "train-v2.0.json", "dev": "dev-v2.0.json"}, squad_json),
    "hellaswag": _json_files({"train": "hellaswag_train.jsonl", "dev": "hellaswag_val.jsonl"}, hellaswag_jsonl),
    "cosmosqa": _json_files({"train": "train.csv", "dev": "valid.csv"}, cosmosqa_csv),
    "commonsenseqa": _json_files({"train": "train_rand_split.jsonl", "dev": "dev_rand_split.jsonl"},
                                 commonsenseqa_jsonl),
    "xnli": _xnli,
    "pawsx": _pawsx,
    "udpos": _udpos,
    "panx": _panx,
    "xquad": _xquad,
    "mlqa": _mlqa,
    "mnli_mt": _xnli_mt,
    "squad_v1_mt": _mlqa_translate_train,
    "tydiqa": _tydiqa,
    "bucc2018": _bucc,
    "tatoeba": _tatoeba,
    "siqa": _siqa,
    "copa": _copa,
    "xcopa": _xcopa,
}


# ============================================================================================
# Writing and checking the canonical files


def _unique_ids(records: Records, where: str, strict: bool) -> Records:
    """Make ids unique: an error for QA (predictions are keyed by id), else ``#n`` suffixes."""
    seen: Counter[str] = Counter()
    for rec in records:
        seen[rec["id"]] += 1
        if seen[rec["id"]] > 1:
            if strict:
                raise ConversionError(f"{where}: duplicate question id {rec['id']!r}")
            rec["id"] = f"{rec['id']}#{seen[rec['id']]}"
    return records


def _write(dataset: str, split: str, lang: str, payload: Any, data_root: Path) -> list[str]:
    fmt = DATASETS[dataset].format
    files = formats.data_files(data_root, dataset, lang, split)
    where = f"{dataset}/{lang}/{split}"
    if fmt == BITEXT:
        src, trg, gold = payload
        formats.write_tsv(files["source"], src)
        formats.write_tsv(files["target"], trg)
        formats.write_tsv(files["gold"], gold)
    elif fmt == PARALLEL:
        src, trg = payload
        formats.write_lines(files["source"], src)
        formats.write_lines(files["target"], trg)
    elif fmt == TEXT:
        if not payload:
            raise ConversionError(f"{where}: the upstream data has no lines")
        formats.write_lines(files["text"], payload)
    else:
        records = payload
        if fmt == TAGGING and records and isinstance(records[0], tuple):
            records = [{"id": f"{lang}-{split}-{i}", "tokens": t, "tags": g} for i, (t, g) in enumerate(records)]
        if not records:
            raise ConversionError(f"{where}: the upstream data has no examples")
        formats.write_jsonl(files["records"], _unique_ids(records, where, strict=fmt == SPAN))
    return sorted(files.values())


def check_written(dataset: str, layout: Layout, data_root: str | Path) -> dict[str, int]:
    """Read every canonical file back through the format validators; return example counts."""
    fmt = DATASETS[dataset].format
    counts = {}
    for split, langs in layout.items():
        for lang in langs:
            files = formats.data_files(data_root, dataset, lang, split)
            if fmt == BITEXT:
                formats.read_id_sentences(files["source"])
                formats.read_id_sentences(files["target"])
                counts[f"{lang}/{split}"] = len(formats.read_pairs(files["gold"]))
            elif fmt == PARALLEL:
                n_src, n_trg = (len(formats.read_lines(files[side])) for side in ("source", "target"))
                if n_src != n_trg:
                    raise FormatError(f"{files['source']}: {n_src} lines but {n_trg} in the target file")
                counts[f"{lang}/{split}"] = n_src
            elif fmt == TEXT:
                counts[f"{lang}/{split}"] = len(formats.read_lines(files["text"]))
            else:
                counts[f"{lang}/{split}"] = len(formats.read_dataset(data_root, dataset, lang, split))
    return counts


def convert(dataset: str, raw_dir: str | Path | None, layout: Layout, data_root: str | Path,
            ccgbank: str | Path | None = None, corpus: dict[str, Any] | None = None) -> dict[str, int]:
    """Convert one dataset from its verified downloads; write and validate every canonical file
    of ``layout`` (split -> languages). Returns the example count of every file written.

    ``corpus``: a hub corpus' settings (``Plan.convert_job(...)["corpus"]`` plus ``folders``, its
    per-language download folders), read by ``xstilts.corpus`` (mlm_corpus)."""
    if dataset == "ccg":
        if not ccgbank:
            raise ConversionError(ccgbank_missing_message("(data.download.ccgbank is not set)"))
        reader = _ccg(ccgbank)
    elif corpus is not None:
        from xstilts import corpus as hub_corpus

        reader = hub_corpus.reader(corpus)
    elif dataset in READERS:
        reader = READERS[dataset]
    else:
        raise ConversionError(f"no converter for dataset {dataset!r}")
    payloads = reader(Raw(raw_dir or "."), layout)
    data_root = Path(data_root)
    for split, langs in layout.items():
        for lang in langs:
            if (split, lang) not in payloads:
                raise ConversionError(f"{dataset}: the upstream data has no {split} split for language {lang!r}")
            _write(dataset, split, lang, payloads[(split, lang)], data_root)
    counts = check_written(dataset, layout, data_root)
    log.info("%s: %s", dataset, ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts
