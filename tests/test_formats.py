"""Canonical formats: every malformed input is an error that names the file, line and problem."""

from __future__ import annotations

import json

import pytest

from xstilts import formats
from xstilts.tasks import NLI_LABELS

GOOD_PAIR = {"id": "a", "sentence1": "x", "sentence2": "y", "label": "entailment"}


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_round_trip(tmp_path):
    records = [GOOD_PAIR, {**GOOD_PAIR, "id": "b", "sentence1": "Grüße 你好", "label": "neutral"}]
    formats.write_jsonl(tmp_path / "f.jsonl", records)
    assert formats.read_jsonl(tmp_path / "f.jsonl", "pair_classification", NLI_LABELS) == records
    assert "你好" in (tmp_path / "f.jsonl").read_text(encoding="utf-8")  # not \u-escaped


@pytest.mark.parametrize(
    "line, message",
    [
        ("{bad json", "f.jsonl:1: invalid JSON"),
        (json.dumps({"id": "a", "sentence1": "x", "label": "entailment"}), "missing field(s) sentence2"),
        (json.dumps({**GOOD_PAIR, "extra": 1}), "unexpected field(s) extra"),
        (json.dumps({**GOOD_PAIR, "label": "entails"}), "unknown label(s) ['entails']"),
        (json.dumps({**GOOD_PAIR, "sentence1": 3}), "field 'sentence1' has the wrong type"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_pair_errors(tmp_path, line, message):
    path = write(tmp_path / "f.jsonl", [line])
    with pytest.raises(formats.FormatError) as err:
        formats.read_jsonl(path, "pair_classification", NLI_LABELS)
    assert message in str(err.value)


def test_duplicate_ids_and_empty_files(tmp_path):
    with pytest.raises(formats.FormatError, match="f.jsonl:2: duplicate id 'a'"):
        formats.read_jsonl(write(tmp_path / "f.jsonl", [json.dumps(GOOD_PAIR)] * 2), "pair_classification")
    with pytest.raises(formats.FormatError, match="holds no examples"):
        formats.read_jsonl(write(tmp_path / "e.jsonl", []), "pair_classification")


def test_span_answer_must_match_context(tmp_path):
    rec = {"id": "q", "title": "t", "context": "Anna lives in Rome .", "question": "where ?",
           "answers": {"text": ["Rome"], "answer_start": [14]}}
    path = write(tmp_path / "s.jsonl", [json.dumps(rec)])
    assert formats.read_jsonl(path, "span_qa")[0]["answers"]["text"] == ["Rome"]
    rec["answers"]["answer_start"] = [13]
    with pytest.raises(formats.FormatError, match="not found at character 13"):
        formats.read_jsonl(write(tmp_path / "s.jsonl", [json.dumps(rec)]), "span_qa")


def test_tagging_and_choice_shapes(tmp_path):
    bad_tags = {"id": "t", "tokens": ["a", "b"], "tags": ["O"]}
    with pytest.raises(formats.FormatError, match="2 tokens but 1 tags"):
        formats.read_jsonl(write(tmp_path / "t.jsonl", [json.dumps(bad_tags)]), "tagging")
    bad_choice = {"id": "c", "context": "", "question": "q", "choices": ["a", "b"], "label": 2}
    with pytest.raises(formats.FormatError, match="label 2 is not an index into 2 choices"):
        formats.read_jsonl(write(tmp_path / "c.jsonl", [json.dumps(bad_choice)]), "multiple_choice")


def test_non_utf8_and_missing_files(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD_PAIR).replace("x", "é").encode("latin-1") + b"\n")
    with pytest.raises(formats.FormatError, match="not valid UTF-8"):
        formats.read_jsonl(path, "pair_classification")
    with pytest.raises(formats.FormatError, match="file not found"):
        formats.read_jsonl(tmp_path / "nope.jsonl", "pair_classification")


def test_bucc_files(tmp_path):
    ids, sentences = formats.read_id_sentences(write(tmp_path / "s.tsv", ["de-1\tHallo Welt", "de-2\tTschüss"]))
    assert ids == ["de-1", "de-2"] and sentences == ["Hallo Welt", "Tschüss"]
    with pytest.raises(formats.FormatError, match="s.tsv:2: expected 'id<TAB>sentence'"):
        formats.read_id_sentences(write(tmp_path / "s.tsv", ["de-1\tok", "no tab here"]))
    assert formats.read_pairs(write(tmp_path / "g.tsv", ["de-1\ten-3", ""])) == [("de-1", "en-3")]
    with pytest.raises(formats.FormatError, match="a cell may not contain a tab"):
        formats.write_tsv(tmp_path / "x.tsv", [("a", "b\tc")])


def test_xtreme_writers(tmp_path):
    formats.write_xtreme_tagging(tmp_path / "t.tsv", [["B-PER", "O"], ["O"]])
    assert (tmp_path / "t.tsv").read_text() == "B-PER\nO\n\nO\n\n"
    records = [
        {"id": "1", "title": "a", "context": "c1", "question": "q1", "answers": {"text": ["c"], "answer_start": [0]}},
        {"id": "2", "title": "a", "context": "c1", "question": "q2", "answers": {"text": [], "answer_start": []}},
        {"id": "3", "title": "b", "context": "c2", "question": "q3", "answers": {"text": ["2"], "answer_start": [1]}},
    ]
    formats.write_xtreme_qa_labels(tmp_path / "l.json", records)
    data = json.loads((tmp_path / "l.json").read_text())["data"]
    assert [a["title"] for a in data] == ["a", "b"]
    assert [q["id"] for q in data[0]["paragraphs"][0]["qas"]] == ["1", "2"]
    assert data[1]["paragraphs"][0]["qas"][0]["answers"] == [{"text": "2", "answer_start": 1}]


def test_a_file_cut_inside_a_character_looks_truncated(tmp_path):
    path = tmp_path / "cut.jsonl"
    path.write_bytes("é".encode()[:1])
    with pytest.raises(formats.FormatError, match=r"ends inside a UTF-8 character .* looks truncated"):
        formats.read_lines(path)
