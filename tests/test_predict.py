"""finetune_target saves the selected model; predict_target reloads it and writes XTREME files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from xstilts import formats, pipeline
from xstilts.config import hparam_defaults
from xstilts.tasks import NLI_LABELS


@pytest.fixture(scope="module")
def trained(tiny_bench, tiny_encoder, tmp_path_factory):
    out = tmp_path_factory.mktemp("target")
    hp = {**hparam_defaults(), "batch_size": 8, "grad_accum": 1, "max_seq_length": 64, "learning_rate": 5e-3,
          "max_steps": 3, "mixed_precision": "no"}
    job = {"training": "xnli", "hparams": hp, "dev_sources": [["mnli", "dev", "en"]],
           "adaptation": {"lora": None, "gradient_checkpointing": False}}
    pipeline.finetune_target(job, 0, tiny_encoder, tiny_bench, out / "model", out / "metrics.json", out / "ck", 1)
    predict = {"training": "xnli", "hparams": hp, "prediction": {}, "predict": {"xnli": ["en", "de", "zh"]}}
    pipeline.predict_target(predict, out / "model", tiny_bench, out / "predictions", out / "predict.json", 1)
    return out


def test_the_model_is_a_plain_hugging_face_folder_with_its_labels(trained):
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(trained / "model")
    assert tuple(config.id2label[i] for i in range(len(NLI_LABELS))) == NLI_LABELS
    assert (trained / "model" / "tokenizer_config.json").is_file()
    metrics = json.loads((trained / "metrics.json").read_text())
    assert "predicted_examples" not in metrics and not (trained / "ck").exists()
    assert not any("xnli" in path for path in metrics["inputs"])  # training reads no test data


def test_predictions_are_the_saved_models_argmax(trained, tiny_bench):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(trained / "model").eval()
    tokenizer = AutoTokenizer.from_pretrained(trained / "model")
    records = formats.read_dataset(tiny_bench, "xnli", "de", "test")
    lines = formats.read_lines(trained / "predictions" / "xnli" / "test-de.tsv")
    assert len(lines) == len(records)
    with torch.no_grad():
        for record, line in list(zip(records, lines))[:10]:  # one at a time: no padding at all
            enc = tokenizer(record["sentence1"], record["sentence2"], truncation=True, max_length=64, return_tensors="pt")
            assert line == model.config.id2label[int(np.argmax(model(**enc).logits[0].numpy()))]


def test_the_record_counts_examples_and_hashes_what_was_read(trained, tiny_bench):
    record = json.loads((trained / "predict.json").read_text())
    assert record["predicted_examples"] == {
        f"xnli/{lang}": len(formats.read_dataset(tiny_bench, "xnli", lang, "test")) for lang in ("en", "de", "zh")}
    read = set(record["inputs"])
    assert {formats.data_file(tiny_bench, "xnli", lang, "test") for lang in ("en", "de", "zh")} <= read
    assert str(trained / "model" / "model.safetensors") in read
