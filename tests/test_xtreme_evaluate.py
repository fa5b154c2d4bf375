"""Tests of the XTREME folder scorer (xstilts.xtreme) and the ``xstilts evaluate`` command.

Three kinds of expectations:

* hand-computed numbers on small submissions written with the workflow's own writers;
* the official script's output on generated full submissions (``build_submission`` below),
  stored in ``tests/fixtures/xtreme/official_*.json`` together with how they were produced;
* the error message of every user error.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from xstilts import cli
from xstilts.formats import (
    write_jsonl,
    write_xtreme_classification,
    write_xtreme_qa_labels,
    write_xtreme_qa_predictions,
    write_xtreme_tagging,
)
from xstilts.xtreme import (
    TASK2LANGS,
    EvaluationError,
    evaluate,
    plan,
    read_tag_sentences,
    score_language,
    score_task,
    task_file,
)

FIXTURES = Path(__file__).parent / "fixtures" / "xtreme"


# --------------------------------------------------------------------------------------------
# Writing submissions


def _qa_records(questions: dict[str, list[str]]) -> list[dict]:
    """SQuAD-style records whose context holds every gold answer at its offset."""
    records = []
    for qid, answers in questions.items():
        context, starts = "", []
        for answer in answers:
            context += "Context: "
            starts.append(len(context))
            context += answer + ". "
        records.append(
            {
                "id": qid,
                "title": "t",
                "context": context,
                "question": f"question {qid}?",
                "answers": {"text": list(answers), "answer_start": starts},
            }
        )
    return records


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def _write_task(root: Path, task: str, lang: str, pred: object, gold: object) -> None:
    """Write one language of one task, in the formats the workflow writes."""
    pred_path = task_file(root / "predictions", task, lang)
    gold_path = task_file(root / "labels", task, lang)
    if task in ("pawsx", "xnli", "tatoeba"):
        write_xtreme_classification(pred_path, pred)
        write_xtreme_classification(gold_path, gold)
    elif task == "bucc2018":
        write_xtreme_classification(pred_path, ["\t".join(p) for p in pred])
        write_xtreme_classification(gold_path, ["\t".join(p) for p in gold])
    elif task in ("panx", "udpos"):
        write_xtreme_tagging(pred_path, pred)
        write_xtreme_tagging(gold_path, gold)
    elif task in ("xquad", "mlqa", "tydiqa"):
        write_xtreme_qa_predictions(pred_path, pred)
        write_xtreme_qa_labels(gold_path, _qa_records(gold))
    elif task == "xcopa":
        write_jsonl(pred_path, [{"idx": i, "label": label} for i, label in enumerate(pred)])
        write_jsonl(gold_path, [{"idx": i, "label": label} for i, label in enumerate(gold)])
    elif task == "mewslix":
        _write_json(Path(pred_path), pred)
        _write_json(Path(gold_path), {k: [v] for k, v in gold.items()})
    else:
        raise AssertionError(task)


# Small submissions whose scores are computed by hand in the comments.
XNLI_GOLD = ["entailment", "neutral", "contradiction", "neutral"]
XNLI_PRED = ["entailment", "contradiction", "contradiction", "neutral"]  # 3/4 -> 75.0
PAWSX_GOLD = ["0", "1"]
PAWSX_PRED = ["1", "1"]  # 1/2 -> 50.0
# gold chunks PER(0-1) LOC(3); predicted PER(0-1) ORG(3): P = R = F1 = 1/2
PANX_GOLD = [["B-PER", "I-PER", "O", "B-LOC"]]
PANX_PRED = [["B-PER", "I-PER", "O", "B-ORG"]]
# q1: best F1 over golds = 6/7 (second gold), EM 0; q2: EM 1, F1 1; q3: unanswered.
# EM = 100/3, F1 = 100 * (6/7 + 1) / 3 = 61.904761904761905
XQUAD_GOLD = {"q1": ["the Eiffel Tower", "Eiffel Tower in Paris"], "q2": ["blue"], "q3": ["42"]}
XQUAD_PRED = {"q1": "Eiffel Tower, Paris", "q2": "Blue!", "q9": "ignored"}
# pairs {a-1, b-2, c-9} vs gold {a-1, b-2, d-4}: 2 correct of 3 and 3 -> 200/3 for all three
BUCC_GOLD = [("a", "1"), ("b", "2"), ("d", "4")]
BUCC_PRED = [("a", "1"), ("a", "1"), ("b", "2"), ("c", "9")]


def _small_submission(root: Path, tasks: dict[str, tuple[object, object]], version: str = "xtreme") -> None:
    for task, (pred, gold) in tasks.items():
        for lang in TASK2LANGS[version][task]:
            _write_task(root, task, lang, pred, gold)


SMALL = {
    "pawsx": (PAWSX_PRED, PAWSX_GOLD),
    "xnli": (XNLI_PRED, XNLI_GOLD),
    "panx": (PANX_PRED, PANX_GOLD),
    "xquad": (XQUAD_PRED, XQUAD_GOLD),
    "bucc2018": (BUCC_PRED, BUCC_GOLD),
}


# --------------------------------------------------------------------------------------------
# Generated full submissions (the input of the stored official outputs)

_NER = ["O", "O", "O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
_UPOS = "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
_ANSWERS = {
    "any": [
        "the Eiffel Tower", "Paris", "a red car", "1889", "«Le Monde»", "5 €", "state-of-the-art",
        "Los Angeles", "der Hund", "el perro", "của tôi", "Москва", "“quoted” text", "An apple",
        "नमस्ते दुनिया", "서울 특별시", "Αθήνα", "O'Brien", "10°C",
    ],
    "ar": ["الكتاب", "جمال", "مدينة القدس", "بيت الحكمة", "ال"],
    "zh": ["北京大学", "长城。", "上海 Tower", "1997年", "“你好”"],
}
_EXTRA = {"ar": "ال", "zh": "的"}


def _perturb_answer(rng: random.Random, answer: str, lang: str, pool: list[str]) -> str | None:
    """A prediction near ``answer``: exact, re-cased, re-punctuated, shortened, padded, wrong,
    empty, or None for no prediction."""
    kind = rng.randrange(9)
    tokens = answer.split()
    variants = [
        answer,
        answer.upper(),
        answer + rng.choice(["!", "。", "»", ".", "،"]),
        " ".join(tokens[1:]) if len(tokens) > 1 else answer[1:],
        f"the {answer} {_EXTRA.get(lang, 'and')}",
        rng.choice(pool),
        "",
        None,
        answer[: max(1, len(answer) // 2)],
    ]
    return variants[kind]


def _generate(task: str, lang: str) -> tuple[object, object]:
    """Deterministic (prediction, gold) of one language; random.Random(str) is stable."""
    rng = random.Random(f"{task}/{lang}")
    n = rng.randint(4, 12)
    if task in ("pawsx", "xnli", "tatoeba", "xcopa"):
        labels = {
            "pawsx": ["0", "1"],
            "xnli": ["entailment", "neutral", "contradiction"],
            "tatoeba": [str(i) for i in range(n)],
            "xcopa": [0, 1],
        }[task]
        gold = [rng.choice(labels) for _ in range(n)]
        return [g if rng.random() < 0.6 else rng.choice(labels) for g in gold], gold
    if task in ("panx", "udpos"):
        inventory = _NER if task == "panx" else _UPOS
        gold = []
        for _ in range(n):
            sentence = [rng.choice(inventory)]
            for _ in range(rng.randint(0, 7)):
                sentence.append(sentence[-1] if rng.random() < 0.35 else rng.choice(inventory))
            gold.append(sentence)
        pred = [[t if rng.random() < 0.75 else rng.choice(inventory) for t in s] for s in gold]
        return pred, gold
    if task == "bucc2018":
        gold = [(f"{lang}-{i:06d}", f"en-{rng.randrange(10**6):06d}") for i in range(n)]
        pred = [p for p in gold if rng.random() < 0.7]
        pred += [(f"{lang}-{i:06d}", f"en-{rng.randrange(10**6):06d}") for i in range(rng.randint(0, 4))]
        pred += pred[: rng.randint(0, 2)]  # duplicates collapse
        return pred, gold
    if task in ("xquad", "mlqa", "tydiqa"):
        pool = _ANSWERS["any"] + _ANSWERS.get(lang, [])
        gold, pred = {}, {}
        for i in range(n):
            answers = [rng.choice(pool) for _ in range(rng.randint(1, 3))]
            gold[f"{lang}-q{i}"] = answers
            guess = _perturb_answer(rng, rng.choice(answers), lang, pool)
            if guess is not None:
                pred[f"{lang}-q{i}"] = guess
        pred[f"{lang}-unknown"] = "not in gold"
        return pred, gold
    if task == "mewslix":
        entities = [f"Q{i}" for i in range(40)]
        gold = {f"{lang}-m{i}": rng.choice(entities) for i in range(n)}
        pred = {}
        for example_id, entity in gold.items():
            if rng.random() < 0.15:
                continue
            ranked = rng.sample(entities, 25)
            if entity in ranked and rng.random() < 0.5:
                ranked.remove(entity)
            pred[example_id] = ranked
        return pred, gold
    raise AssertionError(task)


def build_submission(root: str | os.PathLike, version: str) -> str:
    """Write ``root/predictions`` and ``root/labels`` for every scorable task of ``version``;
    return a SHA-256 over all written files (to notice a changed generator)."""
    root = Path(root)
    for task, langs in TASK2LANGS[version].items():
        for lang in langs:
            _write_task(root, task, lang, *_generate(task, lang))
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _official(name: str) -> dict:
    return json.loads((FIXTURES / name).read_text(encoding="utf-8"))


def _assert_same_report(ours: dict, official: dict) -> None:
    """Same keys in the same order, same values and types; all_task up to the last bit."""
    ours, official = dict(ours), dict(official)
    if "all_task" in official:
        assert ours.pop("all_task") == pytest.approx(official.pop("all_task"), rel=1e-15, abs=0)
    assert json.dumps(ours, indent=2) == json.dumps(official, indent=2)


# --------------------------------------------------------------------------------------------
# Readers


def test_tag_reader_reads_what_the_writer_writes(tmp_path):
    path = tmp_path / "t.tsv"
    write_xtreme_tagging(path, [["B-PER", "I-PER"], ["O"]])
    assert path.read_text() == "B-PER\nI-PER\n\nO\n\n"
    assert read_tag_sentences(path) == [["B-PER", "I-PER"], ["O"]]


def test_tag_reader_edge_cases(tmp_path):
    path = tmp_path / "t.tsv"
    # CRLF and a lone CR end lines; a doubled blank line is an empty sentence; the last
    # sentence needs no closing blank line; lines are stripped.
    path.write_bytes(b"NOUN \r\nVERB\r\n\r\n\r\nX\rDET\n\n ADJ\nADV")
    assert read_tag_sentences(path) == [["NOUN", "VERB"], [], ["X", "DET"], ["ADJ", "ADV"]]


# --------------------------------------------------------------------------------------------
# Hand-computed scores


def test_small_submission_end_to_end(tmp_path):
    _small_submission(tmp_path, SMALL)
    report = evaluate(tmp_path / "predictions", tmp_path / "labels")
    assert list(report) == ["classification", "pawsx", "xnli", "panx", "bucc2018", "xquad"]
    assert report["classification"] == (50.0 + 75.0) / 2
    assert report["xnli"]["accuracy"] == {lang: 75.0 for lang in TASK2LANGS["xtreme"]["xnli"]}
    assert list(report["xnli"]) == ["accuracy", "avg_accuracy", "avg_metric"]
    assert report["xnli"]["avg_metric"] == 75.0
    panx = report["panx"]
    assert list(panx) == ["f1", "precision", "recall", "avg_f1", "avg_precision", "avg_recall", "avg_metric"]
    assert len(panx["f1"]) == 40 and set(panx["f1"].values()) == {50.0}
    assert panx["avg_metric"] == 50.0
    xquad = report["xquad"]
    assert list(xquad) == ["exact_match", "f1", "avg_exact_match", "avg_f1", "avg_metric"]
    assert xquad["exact_match"]["en"] == pytest.approx(100 / 3)
    assert xquad["f1"]["en"] == pytest.approx(61.904761904761905)
    assert xquad["avg_metric"] == pytest.approx((100 / 3 + 61.904761904761905) / 2)
    assert report["bucc2018"]["avg_f1"] == pytest.approx(200 / 3)
    assert report["bucc2018"]["precision"]["de"] == pytest.approx(200 / 3)


def test_groups_and_all_task(tmp_path):
    # Every XTREME task, each with a known score: all_task is the mean over the 9 tasks and
    # each group the mean over its tasks.
    tasks = dict(SMALL)
    tasks["udpos"] = ([["NOUN", "VERB"]], [["NOUN", "VERB"]])  # 100
    tasks["tatoeba"] = (["0", "2", "1", "3"], ["0", "1", "2", "3"])  # 50
    # MLQA removes "the" only for en (EM 100, F1 100); the other 6 languages keep it: EM 0,
    # F1 = 2 * 1 * (2/3) / (5/3) = 80. avg_metric = (100/7 + 580/7) / 2 = 340/7.
    tasks["mlqa"] = ({"q": "Eiffel Tower"}, {"q": ["the Eiffel Tower"]})
    tasks["tydiqa"] = ({"q": "x"}, {"q": ["y"]})  # 0, 0
    _small_submission(tmp_path, tasks)
    report = evaluate(tmp_path / "predictions", tmp_path / "labels")
    xquad = (100 / 3 + 61.904761904761905) / 2
    expected = {
        "classification": (50 + 75) / 2,
        "tagging": (100 + 50) / 2,
        "qa": (xquad + 340 / 7 + 0) / 3,
        "retrieval": (200 / 3 + 50) / 2,
    }
    assert list(report)[:5] == ["all_task", "classification", "tagging", "qa", "retrieval"]
    for group, value in expected.items():
        assert report[group] == pytest.approx(value)
    others = "es de ar hi vi zh".split()
    assert report["mlqa"]["f1"] == {"en": 100.0, **{lang: pytest.approx(80.0) for lang in others}}
    assert report["all_task"] == pytest.approx((50 + 75 + 50 + 100 + 200 / 3 + 50 + xquad + 340 / 7 + 0) / 9)
    assert list(report)[5:] == list(TASK2LANGS["xtreme"])


def test_xtreme_r_tasks_hand_computed(tmp_path):
    tasks = {
        "xcopa": ([1, 0, 1, 1], [1, 1, 1, 0]),  # 50
        # ranks 1, 2, none, missing -> (1 + 0.5 + 0 + 0) / 4 = 37.5
        "mewslix": (
            {"a": ["Q1"], "b": ["Q9", "Q2"], "c": ["Q7"] * 30 + ["Q3"], "z": ["Q1"]},
            {"a": "Q1", "b": "Q2", "c": "Q3", "d": "Q4"},
        ),
        # Arabic: "ال" is removed even inside a word, so جمال == جم
        "mlqa": ({"q": "جمال"}, {"q": ["جم"]}),
    }
    _small_submission(tmp_path, tasks, "xtreme-r")
    report = evaluate(tmp_path / "predictions", tmp_path / "labels", "xtreme-r")
    # multi_choice is xcopa alone; no other group is complete
    assert list(report) == ["multi_choice", "xcopa", "mewslix", "mlqa"]
    assert report["multi_choice"] == report["xcopa"]["avg_accuracy"] == 50.0
    assert report["mewslix"]["map@20"]["ar"] == 37.5
    assert list(report["mewslix"]) == ["map@20", "avg_map@20", "avg_metric"]
    # every MLQA language normalises the Arabic pair alike except "ar" itself
    mlqa_langs = TASK2LANGS["xtreme-r"]["mlqa"]
    assert report["mlqa"]["exact_match"] == {lang: 100.0 if lang == "ar" else 0.0 for lang in mlqa_langs}


def test_score_language_and_score_task(tmp_path):
    _small_submission(tmp_path, {"xnli": SMALL["xnli"]})
    pred = task_file(tmp_path / "predictions", "xnli", "de")
    gold = task_file(tmp_path / "labels", "xnli", "de")
    assert pred.endswith(os.path.join("predictions", "xnli", "test-de.tsv"))
    assert score_language("xnli", pred, gold, "de") == {"accuracy": 75.0}
    entry = score_task("xnli", tmp_path / "predictions", tmp_path / "labels", ["de", "en"])
    assert entry == {"accuracy": {"de": 75.0, "en": 75.0}, "avg_accuracy": 75.0, "avg_metric": 75.0}
    assert score_task("lareqa", tmp_path / "predictions", tmp_path / "labels", []) == {}


def test_blank_lines_count_as_examples(tmp_path):
    # Lines are stripped and compared as strings: "[3]" is not "3", and a blank line is an
    # example (here a wrong one).
    pred, gold = tmp_path / "p.tsv", tmp_path / "g.tsv"
    pred.write_text("[3]\n1 \n\n")
    gold.write_text("3\n1\n2\n")
    assert score_language("tatoeba", pred, gold, "de") == {"accuracy": pytest.approx(100 / 3)}


def test_bucc_blank_line_is_a_wrong_pair(tmp_path):
    pred, gold = tmp_path / "p.tsv", tmp_path / "g.tsv"
    pred.write_text("de-1\ten-1\n\n")
    gold.write_text("de-1\ten-1\nde-2\ten-2\n")
    # predictions {(de-1,en-1), ("",)}: P = 1/2, R = 1/2
    assert score_language("bucc2018", pred, gold, "de") == {"f1": 50.0, "precision": 50.0, "recall": 50.0}


# --------------------------------------------------------------------------------------------
# Which tasks are scored


def test_tasks_missing_on_one_side_are_skipped(tmp_path):
    _small_submission(tmp_path, SMALL)
    # the other version's task folders and hidden folders are ignored
    (tmp_path / "predictions" / "xcopa").mkdir()
    (tmp_path / "labels" / ".snakemake").mkdir()
    (tmp_path / "labels" / "udpos").mkdir()
    (tmp_path / "predictions" / "tatoeba").mkdir()
    chosen = plan(tmp_path / "predictions", tmp_path / "labels")
    assert chosen.tasks == ["pawsx", "xnli", "panx", "bucc2018", "xquad"]
    assert chosen.predictions_only == ["tatoeba"]
    assert chosen.labels_only == ["udpos"]
    assert chosen.other_version == ["xcopa"]
    assert list(evaluate(tmp_path / "predictions", tmp_path / "labels")) == [
        "classification", "pawsx", "xnli", "panx", "bucc2018", "xquad",
    ]


def test_lareqa_folder_gives_empty_entry_and_no_all_task(tmp_path):
    # Officially this raises KeyError: 'avg_metric' (see the xtreme module docstring).
    build_submission(tmp_path, "xtreme-r")
    (tmp_path / "predictions" / "lareqa").mkdir()
    (tmp_path / "labels" / "lareqa").mkdir()
    report = evaluate(tmp_path / "predictions", tmp_path / "labels", "xtreme-r")
    assert report["lareqa"] == {}
    assert "all_task" not in report
    without = _official("official_xtreme_r.json")["output"]
    assert list(report) == [*without][:10] + ["lareqa", *list(without)[10:]]


# --------------------------------------------------------------------------------------------
# Against the official script


@pytest.mark.parametrize(
    "name, version, remove",
    [
        ("official_xtreme.json", "xtreme", []),
        ("official_xtreme_r.json", "xtreme-r", []),
        ("official_xtreme_partial.json", "xtreme", ["labels/tydiqa", "predictions/pawsx", "labels/bucc2018"]),
    ],
)
def test_matches_official_script(tmp_path, name, version, remove):
    expected = _official(name)
    digest = build_submission(tmp_path, version)
    assert digest == expected["submission_sha256"], "build_submission changed: regenerate the fixture"
    for folder in remove:
        for path in sorted((tmp_path / folder).iterdir()):
            path.unlink()
        (tmp_path / folder).rmdir()
    assert remove == expected["removed_folders"]
    _assert_same_report(evaluate(tmp_path / "predictions", tmp_path / "labels", version), expected["output"])


# --------------------------------------------------------------------------------------------
# The command line


def test_cli_writes_the_official_file(tmp_path, capsys):
    build_submission(tmp_path, "xtreme")
    out = tmp_path / "out" / "scores.json"
    rc = cli.main(
        [
            "evaluate", "--prediction_folder", str(tmp_path / "predictions"),
            "--label_folder", str(tmp_path / "labels"), "--output_file", str(out), "--verbose",
        ]
    )
    assert rc == 0
    text = out.read_text()
    assert not text.endswith("\n") and text.startswith('{\n  "all_task": ')
    _assert_same_report(json.loads(text), _official("official_xtreme.json")["output"])
    stdout = capsys.readouterr().out
    assert "xquad" in stdout and "all_task" in stdout and "== udpos ==" in stdout


def test_cli_subprocess(tmp_path):
    _small_submission(tmp_path, SMALL)
    (tmp_path / "labels" / "tatoeba").mkdir()
    out = tmp_path / "scores.json"
    exe = Path(sys.executable).with_name("xstilts")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "xstilts.cli"]
    result = subprocess.run(
        [*command, "evaluate", "--prediction_folder", str(tmp_path / "predictions"),
         "--label_folder", str(tmp_path / "labels"), "--xtreme_version", "xtreme", "--output_file", str(out)],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["classification"] == 62.5
    assert report["xquad"]["avg_f1"] == pytest.approx(61.904761904761905)
    assert "tatoeba has labels but no predictions in" in result.stderr
    assert "q1" not in result.stderr and "1 of 3 examples have no prediction" in result.stderr
    assert "classification 62.50" in result.stdout


def _run_cli(tmp_path, capsys, *extra: str, version: str = "xtreme") -> tuple[int, str]:
    rc = cli.main(
        ["evaluate", "--prediction_folder", str(tmp_path / "predictions"), "--label_folder",
         str(tmp_path / "labels"), "--xtreme_version", version, "--output_file", str(tmp_path / "o.json"), *extra]
    )
    return rc, capsys.readouterr().err


def test_cli_user_error_has_no_traceback(tmp_path, capsys):
    rc, err = _run_cli(tmp_path, capsys)
    assert rc == 1
    assert err.startswith("xstilts evaluate: error: prediction folder ")
    assert "does not exist" in err and "Traceback" not in err


def test_cli_rejects_unknown_version(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        _run_cli(tmp_path, capsys, version="xtreme-x")
    assert exc.value.code == 2
    assert "invalid choice: 'xtreme-x'" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# User errors


def _error(tmp_path, version: str = "xtreme") -> str:
    with pytest.raises(EvaluationError) as exc:
        evaluate(tmp_path / "predictions", tmp_path / "labels", version)
    return str(exc.value)


def test_error_missing_language_file(tmp_path):
    _small_submission(tmp_path, {"xnli": SMALL["xnli"]})
    os.remove(task_file(tmp_path / "labels", "xnli", "sw"))
    message = _error(tmp_path)
    assert message.startswith(str(tmp_path / "labels" / "xnli" / "test-sw.tsv") + " is not available")
    assert "xnli needs test-sw.tsv in both folders" in message


def test_error_count_mismatch(tmp_path):
    _small_submission(tmp_path, {"panx": SMALL["panx"]})
    write_xtreme_tagging(task_file(tmp_path / "predictions", "panx", "en"), [["O"], ["O"]])
    message = _error(tmp_path)
    assert message == (
        f"{tmp_path / 'predictions' / 'panx' / 'test-en.tsv'} has 2 sentences but "
        f"{tmp_path / 'labels' / 'panx' / 'test-en.tsv'} has 1; panx needs exactly one prediction per gold example"
    )


def test_error_sentence_length_mismatch(tmp_path):
    _small_submission(tmp_path, {"panx": SMALL["panx"]})
    write_xtreme_tagging(task_file(tmp_path / "predictions", "panx", "en"), [["O", "O"]])
    assert "sentence 1 has 2 predicted tags but 4 gold tags" in _error(tmp_path)


def test_error_unknown_task_folder(tmp_path):
    _small_submission(tmp_path, {"xnli": SMALL["xnli"]})
    (tmp_path / "predictions" / "UDPOS").mkdir()
    message = _error(tmp_path)
    assert message.startswith(f"{tmp_path / 'predictions'}: sub-folder(s) UDPOS name no XTREME/XTREME-R task")
    with pytest.raises(EvaluationError, match="unknown task 'ner'"):
        score_task("ner", tmp_path / "predictions", tmp_path / "labels", ["en"])


def test_error_malformed_json(tmp_path):
    _small_submission(tmp_path, {"xquad": SMALL["xquad"]})
    Path(task_file(tmp_path / "predictions", "xquad", "th")).write_text('{"q1": "a",}')
    message = _error(tmp_path)
    assert message.startswith(f"{tmp_path / 'predictions' / 'xquad' / 'test-th.json'}: malformed JSON")
    assert "line 1 column 12" in message


def test_error_malformed_jsonl(tmp_path):
    _small_submission(tmp_path, {"xcopa": ([0, 1], [0, 1])}, "xtreme-r")
    path = task_file(tmp_path / "labels", "xcopa", "qu")
    Path(path).write_text('{"label": 0}\n\n{"label": 1\n')
    assert _error(tmp_path, "xtreme-r").startswith(f"{path}:3: malformed JSON line")
    Path(path).write_text('{"label": 0}\n{"idx": 1}\n')
    assert _error(tmp_path, "xtreme-r") == f"{path}:2: expected a JSON object with a 'label' field"


def test_error_non_utf8(tmp_path):
    _small_submission(tmp_path, {"pawsx": SMALL["pawsx"]})
    path = task_file(tmp_path / "predictions", "pawsx", "ja")
    Path(path).write_bytes("0\n".encode() + "1 é\n".encode("latin-1"))
    assert _error(tmp_path) == f"{path}: not valid UTF-8 (byte 4); re-encode the file as UTF-8"


def test_error_bad_qa_and_mewslix_shapes(tmp_path):
    _small_submission(tmp_path, {"tydiqa": SMALL["xquad"]})
    gold = task_file(tmp_path / "labels", "tydiqa", "ko")
    Path(gold).write_text(json.dumps({"data": [{"paragraphs": [{"qas": [{"id": "q1", "answers": []}]}]}]}))
    assert _error(tmp_path) == f"{gold}: question 'q1' needs at least one answer text"
    Path(gold).write_text(json.dumps({"version": "1.1"}))
    assert _error(tmp_path) == f"{gold}: expected SQuAD JSON with a 'data' list of articles"
    pred = task_file(tmp_path / "predictions", "tydiqa", "en")
    Path(pred).write_text(json.dumps({"q1": ["a"]}))
    assert _error(tmp_path) == f"{pred}: the answer to question 'q1' is not a string: ['a']"


def test_error_empty_classification_file(tmp_path):
    _small_submission(tmp_path, {"xnli": ([], [])})
    message = _error(tmp_path)
    assert message.endswith("accuracy of zero examples is undefined")
    assert str(tmp_path / "predictions" / "xnli" / "test-ar.tsv") in message


def test_only_available_languages_scores_a_language_subset(tmp_path, capsys):
    # A demo-like submission: XNLI in three of its fifteen languages.
    for lang, pred in (("en", XNLI_PRED), ("de", XNLI_GOLD), ("zh", ["neutral"] * 4)):
        _write_task(tmp_path, "xnli", lang, pred, XNLI_GOLD)
    assert "is not available" in _error(tmp_path)  # the official semantics require all 15
    scores = evaluate(tmp_path / "predictions", tmp_path / "labels", only_available_languages=True)
    # official language order (de before en before zh); zh predicts 2 of 4 right
    assert scores["xnli"]["accuracy"] == {"de": 100.0, "en": 75.0, "zh": 50.0}
    assert scores["xnli"]["avg_metric"] == 75.0
    assert "all_task" not in scores and "classification" not in scores  # pawsx absent
    code = cli.main(["evaluate", "--prediction_folder", str(tmp_path / "predictions"), "--label_folder",
                     str(tmp_path / "labels"), "--output_file", str(tmp_path / "o.json"), "--only_available_languages"])
    assert code == 0 and json.loads((tmp_path / "o.json").read_text())["xnli"]["avg_accuracy"] == 75.0
