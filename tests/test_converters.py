"""Real-data converters on small files written here in each upstream format and archive layout.

Each parser is checked on a well-formed file (exact records out, XTREME's conversion semantics)
and on malformed ones (a clear error naming the file and line); the dispatcher is checked end to
end on the archive layouts of the pinned downloads, through the canonical validators.
"""

from __future__ import annotations

import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from xstilts import converters as cv
from xstilts import formats, pipeline
from xstilts.converters import ConversionError
from xstilts.tasks import NLI_LABELS

# --------------------------------------------------------------------------------------------
# Upstream-format builders


def tsv(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join("\t".join(r) for r in [header, *rows]) + "\n"


MNLI_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
               "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]


def mnli_row(i: int, s1: str, s2: str, label: str) -> list[str]:
    return [str(i), "1", f"{i}n", "fiction", "(", "(", "(", "(", s1, s2, label, label]


def squad(articles: list[tuple[str, str, list[dict]]]) -> str:
    return json.dumps({"version": "1.1", "data": [
        {"title": t, "paragraphs": [{"context": c, "qas": qas}]} for t, c, qas in articles]})


def qa(qid: str, question: str, *answers: tuple[str, int], impossible: bool | None = None) -> dict:
    out = {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}
    if impossible is not None:
        out["is_impossible"] = impossible
    return out


def conllu(*sentences: list[str]) -> str:
    return "\n".join("\n".join(s) + "\n" for s in sentences)


def row(i: str, form: str, upos: str, head: str, deps: str = "_") -> str:
    return "\t".join([i, form, "_", upos, "_", "_", head, "dep", deps, "_"])


def zip_file(path: Path, members: dict[str, str | bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def tar_bytes(members: dict[str, str], mode: str = "w:gz") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tar:
        for name, text in members.items():
            data = text.encode("utf-8")
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# Parsers


def test_glue_tsv_keeps_quotes_drops_unlabelled_and_skips_short_rows():
    text = tsv(MNLI_HEADER, [mnli_row(1, 'He said "no".', "He refused.", "entailment"),
                             mnli_row(2, "A cat.", "A dog.", "-"),
                             ["3", "1", "3n"],
                             mnli_row(4, "  Rain. ", "Dry.", "contradiction")])
    records = cv.pair_tsv(text, "MNLI/train.tsv", sentence1="sentence1", sentence2="sentence2", label="gold_label",
                          id_column="pairID", labels=NLI_LABELS)
    assert records == [
        {"id": "1n", "sentence1": 'He said "no".', "sentence2": "He refused.", "label": "entailment"},
        {"id": "4n", "sentence1": "Rain.", "sentence2": "Dry.", "label": "contradiction"},
    ]


def test_glue_tsv_errors_name_file_and_line():
    bad_label = tsv(MNLI_HEADER, [mnli_row(1, "a", "b", "entails")])
    with pytest.raises(ConversionError, match=r"MNLI/train.tsv:2: unknown label 'entails'"):
        cv.pair_tsv(bad_label, "MNLI/train.tsv", sentence1="sentence1", sentence2="sentence2", label="gold_label",
                    id_column="pairID", labels=NLI_LABELS)
    with pytest.raises(ConversionError, match=r"QQP/dev.tsv:1: header lacks column\(s\) \['is_duplicate'\]"):
        cv.pair_tsv(tsv(["id", "question1", "question2"], [["1", "a", "b"]]), "QQP/dev.tsv",
                    sentence1="question1", sentence2="question2", label="is_duplicate", id_column="id",
                    labels=("0", "1"))


def test_anli_labels_and_malformed_lines():
    text = "\n".join(json.dumps({"uid": u, "context": "P", "hypothesis": "H", "label": lab, "reason": ""})
                     for u, lab in [("a", "e"), ("b", "n"), ("c", "c")]) + "\n"
    assert [r["label"] for r in cv.anli_jsonl(text, "R1/train.jsonl")] == ["entailment", "neutral", "contradiction"]
    with pytest.raises(ConversionError, match=r"R1/dev.jsonl:2: unknown label 'x'"):
        cv.anli_jsonl(text.replace('"label": "n"', '"label": "x"'), "R1/dev.jsonl")
    with pytest.raises(ConversionError, match=r"R1/dev.jsonl:1: invalid JSON"):
        cv.anli_jsonl('{"uid": "a",\n', "R1/dev.jsonl")


def test_squad_v1_v2_answers_impossible_and_offset_repair():
    context = "The cat sat on the mat near the cat."
    text = squad([("Cats", context, [
        qa("q1", "Who sat?", ("The cat", 0), ("cat", 4)),
        qa("q2", "Where?", ("mat", 21)),                   # offset off by two: nearest occurrence is 19
        qa("q3", "Who?", ("dog", 0), impossible=True),     # SQuAD v2.0: no answer
    ])])
    records = cv.squad_json(text, "train-v2.0.json")
    assert [r["answers"] for r in records] == [
        {"text": ["The cat", "cat"], "answer_start": [0, 4]},
        {"text": ["mat"], "answer_start": [19]},
        {"text": [], "answer_start": []},
    ]
    assert records[0]["title"] == "Cats" and records[0]["context"] == context
    with pytest.raises(ConversionError, match=r"question q9: answer 'dog' does not occur"):
        cv.squad_json(squad([("T", context, [qa("q9", "?", ("dog", 0))])]), "dev-v1.1.json")
    with pytest.raises(ConversionError, match=r"expected SQuAD JSON"):
        cv.squad_json(json.dumps({"version": "1.1"}), "dev-v1.1.json")


def test_multiple_choice_formats():
    hs = json.dumps({"ind": 7, "activity_label": "x", "ctx_a": "A man sits.", "ctx_b": "he", "ctx": "A man sits. he",
                     "endings": ["runs.", "sleeps.", "eats.", "reads."], "split": "train", "split_type": "indomain",
                     "label": 2, "source_id": "s"}) + "\n"
    assert cv.hellaswag_jsonl(hs, "hellaswag_train.jsonl") == [{
        "id": "7", "context": "A man sits.", "question": "",
        "choices": ["he runs.", "he sleeps.", "he eats.", "he reads."], "label": 2}]
    with pytest.raises(ConversionError, match=r"hellaswag_val.jsonl:1: expected 4 endings"):
        cv.hellaswag_jsonl(hs.replace('"reads."]', '"reads.", "x"]'), "hellaswag_val.jsonl")

    csv_text = ('id,context,question,answer0,answer1,answer2,answer3,label\n'
                'c1,"It rained, so ""we"" stayed\nin.",Why?,a,b,c,d,1\n')
    assert cv.cosmosqa_csv(csv_text, "train.csv") == [{
        "id": "c1", "context": 'It rained, so "we" stayed\nin.', "question": "Why?",
        "choices": ["a", "b", "c", "d"], "label": 1}]
    with pytest.raises(ConversionError, match=r"valid.csv: row 2: label 'x'"):
        cv.cosmosqa_csv(csv_text.replace(",1\n", ",x\n"), "valid.csv")

    cqa = json.dumps({"answerKey": "B", "id": "q1", "question": {"question_concept": "c", "stem": "What?", "choices": [
        {"label": "C", "text": "c"}, {"label": "A", "text": "a"}, {"label": "B", "text": "b"},
        {"label": "E", "text": "e"}, {"label": "D", "text": "d"}]}}) + "\n"
    assert cv.commonsenseqa_jsonl(cqa, "train_rand_split.jsonl") == [{
        "id": "q1", "context": "", "question": "What?", "choices": ["a", "b", "c", "d", "e"], "label": 1}]
    with pytest.raises(ConversionError, match=r"answerKey 'F'"):
        cv.commonsenseqa_jsonl(cqa.replace('"answerKey": "B"', '"answerKey": "F"'), "dev_rand_split.jsonl")


CCG_AUTO = (
    "ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1\n"
    "(<T S[dcl] 0 2> (<T NP 0 2> (<L N/N NNP NNP Pierre N_73/N_73>) (<L N NNP NNP Vinken N>) ) "
    "(<L S[dcl]\\NP VBZ VBZ sleeps (S[dcl]\\NP_1)>) )\n"
    "ID=wsj_0001.2 PARSER=GOLD NUMPARSE=1\n"
    "(<L NP PRP PRP It NP>)\n"
)


def test_ccg_auto_supertags():
    assert cv.ccg_auto(CCG_AUTO, "wsj_0001.auto") == [
        {"id": "wsj_0001.1", "tokens": ["Pierre", "Vinken", "sleeps"], "tags": ["N/N", "N", "S[dcl]\\NP"]},
        {"id": "wsj_0001.2", "tokens": ["It"], "tags": ["NP"]},
    ]
    with pytest.raises(ConversionError, match=r"wsj_0002.auto:2: not a CCGbank AUTO line"):
        cv.ccg_auto("ID=wsj_0002.1 PARSER=GOLD\nnonsense\n", "wsj_0002.auto")


XNLI_HEADER = ["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse", "sentence1_parse",
               "sentence2_parse", "sentence1", "sentence2", "promptID", "pairID", "genre"]


def xnli_row(lang: str, label: str, pair: str) -> list[str]:
    return [lang, label, "", "", "", "", f"{lang} premise {pair}", f"{lang} hypothesis", "1", pair, "fiction"]


def test_xnli_splits_languages_and_maps_contradictory():
    text = tsv(XNLI_HEADER, [xnli_row("en", "contradictory", "1"), xnli_row("de", "neutral", "1"),
                             xnli_row("en", "entailment", "2")])
    out = cv.xnli_tsv(text, "xnli.test.tsv")
    assert sorted(out) == ["de", "en"]
    assert [r["label"] for r in out["en"]] == ["contradiction", "entailment"]
    assert out["de"][0] == {"id": "1", "sentence1": "de premise 1", "sentence2": "de hypothesis", "label": "neutral"}


def test_conllu_fused_forms_take_the_head_tag_and_licence_withheld_sentences_are_dropped():
    german = conllu(
        ["# text = Er geht zum Markt.",
         row("1", "Er", "PRON", "2"), row("2", "geht", "VERB", "0"),
         "3-4\tzum\t_\t_\t_\t_\t_\t_\t_\t_",
         row("3", "zu", "ADP", "5"), row("4", "dem", "DET", "5"),  # equally high: ADP outranks DET
         row("5", "Markt", "NOUN", "2"), row("6", ".", "PUNCT", "2")],
        [row("1", "_", "NOUN", "0"), row("2", "_", "VERB", "1"), row("3", "x", "X", "1")],  # all but one "_"
        [row("1", "Ja", "INTJ", "0"), row("1.1", "ist", "AUX", "_"), row("2", "klar\u200c", "ADJ", "1")],
    )
    assert cv.conllu_xtreme(german, "de", "de_gsd-ud-test.conllu") == [
        (["Er", "geht", "zum", "Markt", "."], ["PRON", "VERB", "ADP", "NOUN", "PUNCT"]),
        (["Ja", "klar"], ["INTJ", "ADJ"]),
    ]
    # Spanish "dámelo" = da (VERB, highest) + me + lo: the verb heads the span.
    spanish = conllu([
        "1-3\tdámelo\t_\t_\t_\t_\t_\t_\t_\t_",
        row("1", "da", "VERB", "0"), row("2", "me", "PRON", "1"), row("3", "lo", "PRON", "1"),
        row("4", "con vos", "ADV", "1"),  # XTREME removes spaces inside words
    ])
    assert cv.conllu_xtreme(spanish, "es", "es_ancora-ud-dev.conllu") == [(["dámelo", "convos"], ["VERB", "ADV"])]
    # A tie decided by a language's own precedence list (Italian ranks ADV before ADP).
    italian = conllu(["1-2\tnonché\t_\t_\t_\t_\t_\t_\t_\t_",
                      row("1", "non", "ADV", "3"), row("2", "ché", "ADP", "3"), row("3", "va", "VERB", "0")])
    assert cv.conllu_xtreme(italian, "it", "it_isdt-ud-test.conllu") == [(["nonché", "va"], ["ADV", "VERB"])]


def test_conllu_malformed():
    with pytest.raises(ConversionError, match=r"en_ewt-ud-train.conllu:2: expected 10 tab-separated"):
        cv.conllu_xtreme("# c\n1\tword\tNOUN\n\n", "en", "en_ewt-ud-train.conllu")
    with pytest.raises(ConversionError, match=r"unknown UPOS tag\(s\) \['NOUNX'\]"):
        cv.conllu_xtreme(conllu([row("1", "w", "NOUNX", "0")]), "en", "en_ewt-ud-train.conllu")


def test_panx_strips_language_prefix():
    text = "en:New\tB-LOC\nen:York\tI-LOC\nen:http://a.b\tO\n\nen:Obama\tB-PER\n"
    assert cv.panx_conll(text, "en/train") == [
        (["New", "York", "http://a.b"], ["B-LOC", "I-LOC", "O"]), (["Obama"], ["B-PER"])]
    with pytest.raises(ConversionError, match=r"en/dev:1: unknown tag 'B-MISC'"):
        cv.panx_conll("en:x\tB-MISC\n", "en/dev")
    with pytest.raises(ConversionError, match=r"en/dev:2: expected 'lang:token<TAB>tag'"):
        cv.panx_conll("en:x\tO\nnoprefix\tO\n", "en/dev")


def tydiqa_text(ids: list[str]) -> str:
    return squad([(f"T{i}", f"Passage {i} says 42.", [qa(q, "How many?", ("42", len(f"Passage {i} says ")))])
                   for i, q in enumerate(ids)])


def test_tydiqa_language_prefix_and_english_holdout():
    ids = ["english--7633091408814529542-0", "finnish-8742325368463988542-0"] + \
          [f"english-{n}-0" for n in range(200)]
    by_lang = cv.tydiqa_by_language(tydiqa_text(ids), "train.json")
    assert sorted(by_lang) == ["en", "fi"] and len(by_lang["en"]) == 201
    train, dev = cv.tydiqa_holdout(by_lang["en"])
    assert 5 <= len(dev) <= 40 and len(train) + len(dev) == 201
    assert not {r["context"] for r in train} & {r["context"] for r in dev}
    # Deterministic and independent of order.
    again = cv.tydiqa_holdout(list(reversed(by_lang["en"])))[1]
    assert sorted(r["id"] for r in again) == sorted(r["id"] for r in dev)
    with pytest.raises(ConversionError, match=r"no known language prefix"):
        cv.tydiqa_by_language(tydiqa_text(["klingon-1-0"]), "dev.json")


def test_bucc_and_tatoeba():
    src, trg, gold = cv.bucc_corpus("de-000001\tHallo Welt\nde-000002\tNein\n", "en-000001\tHello world\n",
                                    "de-000001\ten-000001\n", "de-en.training")
    assert src == [("de-000001", "Hallo Welt"), ("de-000002", "Nein")] and gold == [("de-000001", "en-000001")]
    with pytest.raises(ConversionError, match=r"de-en.sample.gold: pair de-000009\ten-000001 names a sentence"):
        cv.bucc_corpus("de-000001\tHallo\n", "en-000001\tHello\n", "de-000009\ten-000001\n", "de-en.sample")
    with pytest.raises(ConversionError, match=r"de-en.sample.source:1: expected 'id<TAB>sentence'"):
        cv.bucc_corpus("no tab here\n", "en-1\tx\n", "", "de-en.sample")
    assert cv.tatoeba_pair("Hallo\r\nNein\n", "Hello\nNo\n", "tatoeba.deu-eng") == (["Hallo", "Nein"], ["Hello", "No"])
    with pytest.raises(ConversionError, match=r"2 source lines but 1 English lines"):
        cv.tatoeba_pair("a\nb\n", "a\n", "tatoeba.deu-eng")


# --------------------------------------------------------------------------------------------
# The dispatcher on the downloads' archive layouts


def test_convert_intermediate_archives(tmp_path):
    raw, data = tmp_path / "raw", tmp_path / "data"
    raw.mkdir()
    anli = "\n".join(json.dumps({"uid": f"u{i}", "context": "P", "hypothesis": "H", "label": "enc"[i % 3]})
                     for i in range(6)) + "\n"
    zip_file(raw / "anli_v0.1.zip", {"anli_v0.1/R2/train.jsonl": anli, "anli_v0.1/R2/dev.jsonl": anli})
    counts = cv.convert("anli_r2", raw, {"train": ["en"], "dev": ["en"]}, data)
    assert counts == {"en/train": 6, "en/dev": 6}
    assert formats.read_dataset(data, "anli_r2", "en", "dev")[1]["label"] == "neutral"

    qqp = tsv(["id", "qid1", "qid2", "question1", "question2", "is_duplicate"],
              [["1", "1", "2", "How?", "How so?", "1"], ["2", "3", "4", "Why?", "When?", "0"]])
    zip_file(raw / "QQP-clean.zip", {"QQP/train.tsv": qqp, "QQP/dev.tsv": qqp})
    assert cv.convert("qqp", raw, {"train": ["en"], "dev": ["en"]}, data) == {"en/train": 2, "en/dev": 2}

    (raw / "train-v1.1.json").write_text(squad([("T", "Paris is big.", [qa("a", "What?", ("Paris", 0))])]))
    (raw / "dev-v1.1.json").write_text(squad([("T", "Rome is old.", [qa("b", "What?", ("Rome", 0), ("Rome", 0))])]))
    assert cv.convert("squad_v1", raw, {"train": ["en"], "dev": ["en"]}, data) == {"en/train": 1, "en/dev": 1}


def test_convert_ccgbank_release(tmp_path):
    auto = tmp_path / "ccgbank_1_1" / "data" / "AUTO"
    for section in ["00"] + [f"{s:02d}" for s in range(2, 22)] + ["23"]:
        (auto / section).mkdir(parents=True)
        (auto / section / f"wsj_{section}01.auto").write_text(CCG_AUTO.replace("wsj_0001", f"wsj_{section}01"))
    counts = cv.convert("ccg", None, {"train": ["en"], "dev": ["en"]}, tmp_path / "data",
                        ccgbank=tmp_path / "ccgbank_1_1")
    assert counts == {"en/train": 40, "en/dev": 2}
    with pytest.raises(ConversionError, match=r"CCGbank not found at .*drop CCG from the grid"):
        cv.convert("ccg", None, {"train": ["en"]}, tmp_path / "data", ccgbank=tmp_path / "nowhere")


def test_convert_xtreme_targets_and_write_labels(tmp_path):
    raw, data, labels = tmp_path / "raw", tmp_path / "data", tmp_path / "labels"
    raw.mkdir()
    rows = [xnli_row(lang, lab, str(i)) for i, lab in enumerate(["entailment", "neutral", "contradiction"])
            for lang in ("en", "de")]
    zip_file(raw / "XNLI-1.0.zip", {"XNLI-1.0/xnli.dev.tsv": tsv(XNLI_HEADER, rows),
                                    "XNLI-1.0/xnli.test.tsv": tsv(XNLI_HEADER, rows)})
    layout = {"test": ["en", "de"], "dev": ["en", "de"]}
    assert cv.convert("xnli", raw, layout, data)["de/test"] == 3
    pipeline.write_labels("xnli", ["en", "de"], data, labels)
    assert formats.read_lines(labels / "xnli" / "test-de.tsv") == ["entailment", "neutral", "contradiction"]
    with pytest.raises(ConversionError, match=r"xnli: the upstream data has no test split for language 'fr'"):
        cv.convert("xnli", raw, {"test": ["en", "fr"]}, data)

    pawsx = {f"x-final/{lang}/{name}": tsv(["id", "sentence1", "sentence2", "label"], [["1", "a", "b", "1"],
                                                                                       ["2", "c", "d", "0"]])
             for lang in ("en", "de") for name in ("train.tsv", "dev_2k.tsv", "test_2k.tsv")}
    (raw / "x-final.tar.gz").write_bytes(tar_bytes(pawsx))
    counts = cv.convert("pawsx", raw, {"train": ["en"], "dev": ["en", "de"], "test": ["en", "de"]}, data)
    assert counts == {"en/train": 2, "en/dev": 2, "de/dev": 2, "en/test": 2, "de/test": 2}

    sentence = [row("1", "Go", "VERB", "0"), row("2", "!", "PUNCT", "1")]
    ud = {"ud-treebanks-v2.5/UD_English-GUM/en_gum-ud-train.conllu": conllu(sentence),
          "ud-treebanks-v2.5/UD_English-EWT/en_ewt-ud-train.conllu": conllu([row("1", "Hi", "INTJ", "0")]),
          "ud-treebanks-v2.5/UD_English-EWT/en_ewt-ud-dev.conllu": conllu(sentence),
          "ud-treebanks-v2.5/UD_German-GSD/de_gsd-ud-test.conllu": conllu(sentence),
          "ud-treebanks-v2.5/UD_German-GSD/de_gsd-ud-train.conllu": "not read: not in the layout\n",
          "ud-treebanks-v2.5/UD_German-GSD/README.md": "ignored"}
    (raw / "ud-treebanks-v2.5.tgz").write_bytes(tar_bytes(ud))
    cv.convert("udpos", raw, {"train": ["en"], "dev": ["en"], "test": ["de"]}, data)
    train = formats.read_dataset(data, "udpos", "en", "train")
    assert [r["tokens"] for r in train] == [["Hi"], ["Go", "!"]]  # treebanks concatenated by file name

    panx = {f"{lang}.tar.gz": tar_bytes({f"./{split}": f"{lang}:Berlin\tB-LOC\n{lang}:ist\tO\n\n"
                                        for split in ("train", "dev", "test")}) for lang in ("en", "de")}
    zip_file(raw / "panx_dataset.zip", panx)
    cv.convert("panx", raw, {"train": ["en"], "dev": ["en", "de"], "test": ["en", "de"]}, data)
    assert formats.read_dataset(data, "panx", "de", "test")[0]["tokens"] == ["Berlin", "ist"]

    (raw / "xquad.de.json").write_text(squad([("T", "Bonn ist klein.", [qa("x1", "Was?", ("Bonn", 0))])]))
    cv.convert("xquad", raw, {"test": ["de"]}, data)
    mlqa = {f"MLQA_V1/{s}/{s}-context-{lang}-question-{lang}.json": squad([("T", "Rom.", [qa(f"{s}{lang}", "?", ("Rom", 0))])])
            for s in ("dev", "test") for lang in ("en", "de")}
    zip_file(raw / "MLQA_V1.zip", mlqa)
    assert cv.convert("mlqa", raw, {"test": ["en", "de"], "dev": ["en", "de"]}, data)["de/dev"] == 1

    (raw / "tydiqa-goldp-v1.1-train.json").write_text(tydiqa_text([f"english-{n}-0" for n in range(40)]))
    (raw / "tydiqa-goldp-v1.1-dev.json").write_text(tydiqa_text(["english-1-0", "finnish-2-0"]))
    counts = cv.convert("tydiqa", raw, {"train": ["en"], "dev": ["en"], "test": ["en", "fi"]}, data)
    assert counts["en/train"] + counts["en/dev"] == 40 and counts["fi/test"] == 1

    for kind, split in (("training", "test"), ("sample", "dev")):
        prefix = f"bucc2018/de-en/de-en.{kind}"
        (raw / f"bucc2018-de-en.{kind}-gold.tar.bz2").write_bytes(tar_bytes({
            f"{prefix}.de": "de-000001\tHallo\nde-000002\tAndere\n", f"{prefix}.en": "en-000001\tHello\n",
            f"{prefix}.gold": "de-000001\ten-000001\n"}, mode="w:bz2"))
    cv.convert("bucc2018", raw, {"test": ["de"], "dev": ["de"]}, data)
    files = formats.data_files(data, "bucc2018", "de", "test")
    assert formats.read_pairs(files["gold"]) == [("de-000001", "en-000001")]
    assert formats.read_id_sentences(files["source"])[0] == ["de-000001", "de-000002"]

    (raw / "tatoeba.deu-eng.deu").write_text("Nein\nHallo\nJa\n")
    (raw / "tatoeba.deu-eng.eng").write_text("No\nHello\nYes\n")
    cv.convert("tatoeba", raw, {"test": ["de"]}, data)
    pipeline.write_labels("tatoeba", ["de"], data, labels)
    # XTREME's label file: its English side is sorted (Hello, No, Yes), each line naming the
    # German line it translates.
    assert formats.read_lines(labels / "tatoeba" / "test-de.tsv") == ["1", "0", "2"]


def test_convert_dataset_job_refuses_a_tampered_download(tmp_path):
    raw = tmp_path / "downloads" / "anli"
    raw.mkdir(parents=True)
    anli = json.dumps({"uid": "u", "context": "P", "hypothesis": "H", "label": "e"}) + "\n"
    archive = zip_file(raw / "anli_v0.1.zip", {"anli_v0.1/R1/train.jsonl": anli, "anli_v0.1/R1/dev.jsonl": anli})
    job = {"dataset": "anli_r1", "layout": {"train": ["en"], "dev": ["en"]},
           "pins": {"anli": {"anli_v0.1.zip": formats.sha256(archive)}}}
    assert pipeline.convert_dataset(job, [str(raw)], tmp_path / "data") == {"en/train": 1, "en/dev": 1}
    archive.write_bytes(archive.read_bytes() + b"tampered")
    with pytest.raises(Exception, match=r"does not match the pin"):
        pipeline.convert_dataset(job, [str(raw)], tmp_path / "data2")


def test_udpos_reads_treebanks_split_over_several_files(tmp_path):
    # UD v2.5 ships de_hdt's training data as four files; XTREME reads them all, in file-name
    # order, after the other German treebanks' (here in shuffled archive order).
    raw, data = tmp_path / "raw", tmp_path / "data"
    raw.mkdir()
    hdt = "ud-treebanks-v2.5/UD_German-HDT/de_hdt-ud-"
    ud = {f"{hdt}train-b-1.conllu": conllu([row("1", "drei", "NUM", "0")]),
          f"{hdt}train-a-2.conllu": conllu([row("1", "zwei", "NUM", "0")], [row("1", "zwei2", "NUM", "0")]),
          f"{hdt}test.conllu": conllu([row("1", "Test", "NOUN", "0")]),
          f"{hdt}train-b-2.conllu": conllu([row("1", "vier", "NUM", "0")]),
          "ud-treebanks-v2.5/UD_German-GSD/de_gsd-ud-train.conllu": conllu([row("1", "null", "NUM", "0")]),
          f"{hdt}train-a-1.conllu": conllu([row("1", "eins", "NUM", "0")]),
          f"{hdt}dev.conllu": conllu([row("1", "Dev", "NOUN", "0")]),
          "ud-treebanks-v2.5/UD_German-HDT/LICENSE.txt": "ignored"}
    (raw / "ud-treebanks-v2.5.tgz").write_bytes(tar_bytes(ud))
    counts = cv.convert("udpos", raw, {"train": ["de"], "test": ["de"]}, data)
    assert counts == {"de/train": 6, "de/test": 1}
    train = formats.read_dataset(data, "udpos", "de", "train")
    assert [r["tokens"] for r in train] == [["null"], ["eins"], ["zwei"], ["zwei2"], ["drei"], ["vier"]]
    assert [r["tokens"] for r in formats.read_dataset(data, "udpos", "de", "test")] == [["Test"]]
