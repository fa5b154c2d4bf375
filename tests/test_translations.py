"""Machine-translated training sets: XNLI-MT 1.0 (mnli_mt) and MLQA translate-train (squad_v1_mt).

Tiny archives in the exact upstream layouts (as the legacy huggingface/datasets xnli and mlqa
loading scripts read them) go through ``converters.convert``, the entry point real data use.
"""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
import zipfile

import pytest

from xstilts import converters, formats, sources
from xstilts.tasks import DATASETS, NLI_LABELS

XNLI_MT = "XNLI-MT-1.0.zip"
MLQA_TT = "mlqa-translate-train.tar.gz"

# Line 1 is the header; line n of every language translates the same MNLI example.
XNLI_MT_TSV = {
    "de": "premise\thypo\tlabel\n"
          "Das Konzept der Sahne hat zwei Dimensionen.\tProdukt und Geografie machen die Sahne aus.\tneutral\n"
          "Er sagte \"Hallo\" und ging.\tEr schwieg.\tcontradictory\n"
          "Einer unserer Leute wird Ihre Anweisungen ausführen.\tJemand wird es tun.\tentailment\n",
    "fr": "premise\thypo\tlabel\n"
          "Le concept de crème a deux dimensions.\tLe produit et la géographie font la crème.\tneutral\n"
          "Il a dit \"bonjour\" et est parti.\tIl s'est tu.\tcontradictory\n"
          "Un de nos hommes exécutera vos instructions.\tQuelqu'un le fera.\tentailment\n",
}


def _xnli_mt_zip(raw, tsvs=XNLI_MT_TSV):
    raw.mkdir(exist_ok=True)
    with zipfile.ZipFile(raw / XNLI_MT, "w") as z:
        for lang, text in tsvs.items():
            z.writestr(f"XNLI-MT-1.0/multinli/multinli.train.{lang}.tsv", text)
        z.writestr("XNLI-MT-1.0/multinli/multinli.train.en.tsv", XNLI_MT_TSV["de"])  # not asked for


def _squad(lang: str) -> dict:
    context = {"de": "Die Universität wurde 1842 gegründet. Sie liegt in Indiana.",
               "es": "La universidad fue fundada en 1842. Está en Indiana."}[lang]
    year, state = "1842", "Indiana"
    return {"version": "1.1", "data": [{"title": "Notre_Dame", "paragraphs": [{"context": context, "qas": [
        # offset right
        {"id": "q1", "question": "Wann?", "answers": [{"text": year, "answer_start": context.index(year)}]},
        # offset off (the English offset kept after translation): moved to the text
        {"id": "q2", "question": "Wo?", "answers": [{"text": state, "answer_start": 3}]},
        # answer translated differently from the context: not in it, dropped
        {"id": "q3", "question": "Wer?", "answers": [{"text": "Pater Sorin", "answer_start": 0}]},
    ]}]}]}


def _mlqa_tar(raw, langs=("de", "es")):
    raw.mkdir(exist_ok=True)
    with tarfile.open(raw / MLQA_TT, "w:gz") as tar:
        for lang in langs:
            for split in ("train", "dev"):
                data = json.dumps(_squad(lang), ensure_ascii=False).encode("utf-8")
                info = tarfile.TarInfo(f"mlqa-translate-train/{lang}_squad-translate-train-{split}-v1.1.json")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def test_mnli_mt_converts_every_language_of_xnli_mt(tmp_path):
    _xnli_mt_zip(tmp_path / "raw")
    counts = converters.convert("mnli_mt", tmp_path / "raw", {"train": ["de", "fr"]}, tmp_path / "data")
    assert counts == {"de/train": 3, "fr/train": 3}
    for lang in ("de", "fr"):
        records = formats.read_dataset(tmp_path / "data", "mnli_mt", lang, "train")
        assert [r["label"] for r in records] == ["neutral", "contradiction", "entailment"]
        assert {r["label"] for r in records} <= set(NLI_LABELS)
        assert [r["id"] for r in records] == [f"{lang}-2", f"{lang}-3", f"{lang}-4"]  # line-aligned ids
        assert len({r["id"] for r in records}) == len(records)
    de = formats.read_dataset(tmp_path / "data", "mnli_mt", "de", "train")
    assert de[1] == {"id": "de-3", "sentence1": 'Er sagte "Hallo" und ging.', "sentence2": "Er schwieg.",
                     "label": "contradiction"}  # QUOTE_NONE: quotes are text


def test_mnli_mt_errors_and_drops_name_file_and_line(tmp_path, caplog):
    bad = {"de": XNLI_MT_TSV["de"] + "Ein Satz.\tNoch einer.\tmaybe\n"}
    _xnli_mt_zip(tmp_path / "raw", bad)
    with pytest.raises(converters.ConversionError,
                       match=re.escape("XNLI-MT-1.0.zip:XNLI-MT-1.0/multinli/multinli.train.de.tsv:5: unknown label 'maybe'")):
        converters.convert("mnli_mt", tmp_path / "raw", {"train": ["de"]}, tmp_path / "data")
    with pytest.raises(converters.ConversionError, match=r"no member 'XNLI-MT-1.0/multinli/multinli.train.fr.tsv'"):
        converters.convert("mnli_mt", tmp_path / "raw", {"train": ["fr"]}, tmp_path / "data")
    short = {"de": XNLI_MT_TSV["de"] + "Nur eine Spalte\n" + "Ein Satz.\tNoch einer.\t-\n"}
    _xnli_mt_zip(tmp_path / "raw2", short)
    with caplog.at_level(logging.WARNING, logger="xstilts.converters"):
        counts = converters.convert("mnli_mt", tmp_path / "raw2", {"train": ["de"]}, tmp_path / "data")
    assert counts == {"de/train": 3}
    assert "multinli.train.de.tsv: dropped 2 of 5 rows" in caplog.text


def test_squad_v1_mt_converts_translate_train_dropping_unfound_answers(tmp_path, caplog):
    _mlqa_tar(tmp_path / "raw")
    with caplog.at_level(logging.INFO, logger="xstilts.converters"):
        counts = converters.convert("squad_v1_mt", tmp_path / "raw", {"train": ["de", "es"]}, tmp_path / "data")
    assert counts == {"de/train": 2, "es/train": 2}  # q3 dropped in each language
    for lang in ("de", "es"):
        records = formats.read_dataset(tmp_path / "data", "squad_v1_mt", lang, "train")
        assert [r["id"] for r in records] == ["q1", "q2"]
        for r in records:
            assert r["answers"]["text"]
            for text, start in zip(r["answers"]["text"], r["answers"]["answer_start"]):
                assert r["context"][start : start + len(text)] == text
        assert records[1]["answers"] == {"text": ["Indiana"], "answer_start": [records[1]["context"].index("Indiana")]}
        where = f"{MLQA_TT}:mlqa-translate-train/{lang}_squad-translate-train-train-v1.1.json"
        assert f"{where}: dropped 1 answer(s) empty or not found in their context, and 1 of 3 questions" in caplog.text
        assert f"{where}: moved 1 answer offset(s)" in caplog.text


def test_squad_v1_mt_missing_language_and_duplicate_ids_are_errors(tmp_path):
    _mlqa_tar(tmp_path / "raw", langs=("de",))
    with pytest.raises(converters.ConversionError, match=r"no member\(s\) \['mlqa-translate-train/es_squad-translate"):
        converters.convert("squad_v1_mt", tmp_path / "raw", {"train": ["de", "es"]}, tmp_path / "data")
    data = _squad("de")
    data["data"][0]["paragraphs"][0]["qas"][1]["id"] = "q1"
    with tarfile.open(tmp_path / "raw" / MLQA_TT, "w:gz") as tar:
        blob = json.dumps(data).encode()
        info = tarfile.TarInfo("mlqa-translate-train/de_squad-translate-train-train-v1.1.json")
        info.size = len(blob)
        tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(converters.ConversionError, match=r"squad_v1_mt/de/train: duplicate question id 'q1'"):
        converters.convert("squad_v1_mt", tmp_path / "raw", {"train": ["de"]}, tmp_path / "data")


def test_squad_json_still_refuses_unfound_answers_by_default():
    text = json.dumps(_squad("de"))
    with pytest.raises(converters.ConversionError, match=r"question q3: answer 'Pater Sorin' does not occur"):
        converters.squad_json(text, "x.json")


@pytest.mark.parametrize("dataset,source,name", [("mnli_mt", "xnli_mt", XNLI_MT),
                                                 ("squad_v1_mt", "mlqa_translate_train", MLQA_TT)])
def test_translation_sources_are_pinned_from_the_hf_records(dataset, source, name):
    assert sources.source_of(dataset) == source
    src = sources.SOURCES[source]
    (f,) = src.files
    assert f.name == name and f.url == f"https://dl.fbaipublicfiles.com/{'XNLI' if source == 'xnli_mt' else 'MLQA'}/{name}"
    assert re.fullmatch(r"[0-9a-f]{64}", f.sha256) and isinstance(f.size, int) and f.size > 0
    infos = "xnli" if source == "xnli_mt" else "mlqa"
    assert src.pinned_from == f"{sources.HF_DATASETS} datasets/{infos}/dataset_infos.json"
    assert dataset in converters.READERS and DATASETS[dataset].splits.keys() == {"train"}
