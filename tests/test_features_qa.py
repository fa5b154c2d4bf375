"""Feature encoding and span-QA post-processing, checked against the raw text."""

from __future__ import annotations

import numpy as np
import pytest

from xstilts import features, formats, qa, task_formats
from xstilts.tasks import NER_TAGS


@pytest.fixture(scope="module")
def tokenizer(tiny_encoder):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_encoder)


HP = {"max_seq_length": 48, "doc_stride": 16, "max_query_length": 64}


def test_span_positions_recover_the_answer(tokenizer, tiny_bench):
    records = formats.read_dataset(tiny_bench, "squad_v1", "en", "train")
    enc = task_formats.encode("span_qa", tokenizer, records, HP, train=True)
    assert len(enc.features) > len(records)  # long contexts make several windows
    hits = 0
    for feat, ex, offsets in zip(enc.features, enc.example_index, enc.offsets):
        s, e = feat["start_positions"], feat["end_positions"]
        if s == 0:
            assert e == 0
            continue
        hits += 1
        text = records[ex]["context"][offsets[s][0] : offsets[e][1]]
        assert text == records[ex]["answers"]["text"][0]
    assert hits >= len(records)  # every answer lies inside at least one window


def test_best_answers_decodes_the_max_scoring_span():
    records = [{"id": "q1", "context": "Anna lives in Port Sela ."}]
    offsets = [[None, (0, 4), (5, 10), (11, 13), (14, 18), (19, 23), (24, 25)]]
    start = np.full(7, -5.0)
    end = np.full(7, -5.0)
    start[4], end[5] = 3.0, 2.0  # "Port Sela"
    start[1], end[1] = 2.9, 2.0  # "Anna" scores 4.9 < 5.0
    assert qa.best_answers(records, [0], offsets, [start], [end]) == {"q1": "Port Sela"}
    # spans longer than max_answer_length are skipped
    assert qa.best_answers(records, [0], offsets, [start], [end], max_answer_length=1) == {"q1": "Anna"}
    # a null score above the best span predicts "" only when null answers are allowed
    start[0], end[0] = 4.0, 4.0
    assert qa.best_answers(records, [0], offsets, [start], [end], allow_null=True) == {"q1": ""}
    assert qa.best_answers(records, [0], offsets, [start], [end]) == {"q1": "Port Sela"}


def test_best_answers_combines_windows():
    records = [{"id": "q", "context": "a b"}]
    offsets = [[None, (0, 1)], [None, (2, 3)]]
    scores = [np.array([0.0, 1.0]), np.array([0.0, 2.0])]
    assert qa.best_answers(records, [0, 0], offsets, scores, scores) == {"q": "b"}


def test_tagging_labels_only_first_subwords(tokenizer):
    records = [{"id": "t", "tokens": ["Krosuburo", "lives", "in", "Port", "Sela", "."],
                "tags": ["B-PER", "O", "O", "B-LOC", "I-LOC", "O"]}]
    enc = task_formats.encode("tagging", tokenizer, records, HP, NER_TAGS)
    labels, words = enc.features[0]["labels"], enc.word_ids[0]
    labelled = [(w, NER_TAGS[label]) for w, label in zip(words, labels) if label != features.IGNORE]
    assert labelled == list(enumerate(records[0]["tags"]))
    assert len(enc.features[0]["input_ids"]) > len(records[0]["tokens"]) + 2  # "Krosuburo" has several pieces


def test_choice_features_pair_context_with_each_choice(tokenizer):
    records = [{"id": "c", "context": "Anna buys a pear .", "question": "what ?", "choices": ["pear", "car", "saw"], "label": 0}]
    enc = task_formats.encode("multiple_choice", tokenizer, records, HP)
    assert len(enc.features[0]["input_ids"]) == 3 and enc.features[0]["labels"] == 0
    pear, car, saw = enc.features[0]["input_ids"]
    # the same context and question, then the choice: sequences differ only after a common prefix
    common = next(i for i, (a, b) in enumerate(zip(pear, car)) if a != b)
    assert pear[:common] == car[:common] == saw[:common] and common > 5
    assert car[common:-1] == tokenizer("car", add_special_tokens=False)["input_ids"]


def test_text_blocks(tokenizer):
    enc = features.encode_text(tokenizer, ["a b c"] * 50, 16)
    assert all(len(f["input_ids"]) == 16 for f in enc.features)
    assert enc.features[0]["input_ids"][0] == tokenizer.bos_token_id
    assert enc.features[0]["input_ids"][-1] == tokenizer.eos_token_id
