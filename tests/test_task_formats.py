"""The task-format registry, and models that are not XLM-R: tiny BERT and DeBERTa-v2.

The BERT and DeBERTa-v2 models are randomly initialised from transformers configs, with
tokenizers built offline (a WordPiece vocabulary file, a Unigram piece list) over the words of
the tiny benchmark. They check what XLM-R cannot: segment ids (``token_type_ids``) reach the
model for pairs, choices and span QA, and span QA's "no answer" is the CLS position.
"""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pytest
import torch

from xstilts import features, formats, qa, task_formats, training
from xstilts.modeling import HeadSpec, MultiTaskModel
from xstilts.task_formats import DEV_METRICS, TASK_FORMATS
from xstilts.tasks import (
    CHOICE,
    DATASETS,
    FORMATS,
    INTERMEDIATE_TASKS,
    PAIR,
    SPAN,
    STAGE_TASKS,
    TAGGING,
    TARGET_TASKS,
    TARGET_TRAININGS,
    TEXT,
)

HP = {"max_seq_length": 64, "doc_stride": 16, "max_query_length": 32, "n_best_size": 20, "max_answer_length": 30,
      "batch_size": 4, "eval_batch_size": 4, "mixed_precision": "no"}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# ------------------------------------------------------------------------------- the registry


def test_every_format_has_an_entry_and_every_task_what_it_needs():
    assert set(TASK_FORMATS) == set(FORMATS) == set(formats._FILES)
    trainings = [*INTERMEDIATE_TASKS.values(), *TARGET_TRAININGS.values(), *STAGE_TASKS.values()]
    for task in trainings:
        entry = TASK_FORMATS[task.format]
        assert entry.head and entry.encode and entry.collator and entry.decode and entry.outputs, task.name
        assert task.metric in DEV_METRICS, task.name
    for target in TARGET_TASKS.values():
        entry = TASK_FORMATS[target.format]
        assert entry.write_labels and entry.write_predictions, target.name
    assert TASK_FORMATS[PAIR].labelled and TASK_FORMATS[TAGGING].labelled and not TASK_FORMATS[CHOICE].labelled
    assert [d for d, ds in DATASETS.items() if ds.labels_from_train] == ["ccg"]


def test_dev_metrics_by_name():
    records = [{"label": "a"}, {"label": "b"}]
    assert DEV_METRICS["accuracy"](records, ["a", "a"]) == {"accuracy": 50.0, "score": 50.0}
    tagged = [{"tags": ["X", "Y", "Y"]}]
    assert DEV_METRICS["token_accuracy"](tagged, [["X", "Y", "X"]])["score"] == pytest.approx(200 / 3)
    squad = [{"id": "q", "answers": {"text": ["Port Sela"], "answer_start": [0]}}]
    assert DEV_METRICS["squad"](squad, {"q": "Port Sela"})["score"] == 100.0


def test_no_answer_is_scored_at_the_given_position():
    records = [{"id": "q", "context": "Anna went to Port Sela"}]
    offsets = [[None, (0, 4), (5, 9), (10, 12), None, (13, 17), (18, 22)]]
    start = np.array([9.0, 1.0, 0, 0, 0, 2.0, 0])
    end = np.array([9.0, 0, 0, 0, 0, 0, 2.0])
    # Position 0 (no CLS here) would say "no answer"; the CLS token at position 4 scores low.
    assert qa.best_answers(records, [0], offsets, [start], [end], allow_null=True) == {"q": ""}
    assert qa.best_answers(records, [0], offsets, [start], [end], allow_null=True, null_index=[4]) == {"q": "Port Sela"}


# ------------------------------------------------------------------------------- tiny BERT and DeBERTa-v2


def _words(tiny_bench) -> list[str]:
    seen: dict[str, None] = {}
    for dataset in ("mnli", "hellaswag", "squad_v1", "udpos"):
        for r in formats.read_dataset(tiny_bench, dataset, "en", "dev"):
            text = " ".join(str(v) for k, v in r.items() if k in ("sentence1", "sentence2", "context", "question"))
            text += " " + " ".join(r.get("choices", []) + r.get("tokens", []))
            for w in re.findall(r"\w+|[^\w\s]", text.lower()):
                seen.setdefault(w)
    return list(seen)


@pytest.fixture(scope="module")
def bert(tiny_bench, tmp_path_factory):
    from transformers import BertConfig, BertTokenizerFast

    vocab = tmp_path_factory.mktemp("bert") / "vocab.txt"
    vocab.write_text("\n".join(SPECIALS + _words(tiny_bench)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab=str(vocab))
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128, type_vocab_size=2,
                        pad_token_id=tokenizer.pad_token_id)
    return tokenizer, config


@pytest.fixture(scope="module")
def deberta(tiny_bench):
    from transformers import DebertaV2Config, DebertaV2Tokenizer

    pieces = [(p, 0.0) for p in SPECIALS] + [("\u2581" + w, -1.0) for w in _words(tiny_bench)]
    pieces += [(c, -8.0) for c in sorted({c for w in _words(tiny_bench) for c in w})] + [("\u2581", -9.0)]
    tokenizer = DebertaV2Tokenizer(vocab=pieces)
    config = DebertaV2Config(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=64, max_position_embeddings=128, type_vocab_size=2,
                             relative_attention=True, position_buckets=16, norm_rel_ebd="layer_norm",
                             pos_att_type=["p2c", "c2p"], pad_token_id=tokenizer.pad_token_id)
    return tokenizer, config


@pytest.fixture(params=["bert", "deberta"])
def family(request, bert, deberta):
    return {"bert": bert, "deberta": deberta}[request.param]


CASES = [(PAIR, "mnli"), (CHOICE, "hellaswag"), (SPAN, "squad_v1")]


@pytest.mark.parametrize("fmt,dataset", CASES)
def test_segment_ids_reach_the_model(family, tiny_bench, fmt, dataset):
    tokenizer, config = family
    assert "token_type_ids" in tokenizer.model_input_names
    records = formats.read_dataset(tiny_bench, dataset, "en", "dev")[:6]
    labels = DATASETS[dataset].labels
    encoded = task_formats.encode(fmt, tokenizer, records, HP, labels, train=True)
    for f in encoded.features:
        # One sequence per feature, or (multiple choice) one per choice.
        sequences = zip(*(([f[k]] if fmt != CHOICE else f[k]) for k in ("input_ids", "token_type_ids")))
        for ids, types in sequences:
            assert len(types) == len(ids)
            assert types[0] == 0 and types[-1] == 1 and sorted(types) == list(types)  # first segment, then second
    # Training batches carry them, padded like the ids.
    batch = TASK_FORMATS[fmt].collator(tokenizer, HP)(encoded.features[:3])
    assert batch["token_type_ids"].shape == batch["input_ids"].shape
    # And inference hands them to the encoder's embeddings.
    torch.manual_seed(0)
    model = MultiTaskModel.build(config, {"t": HeadSpec(fmt, labels)})
    seen = []
    hook = model.encoder.embeddings.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("token_type_ids")), with_kwargs=True)
    outputs = training.forward_all(model, "t", fmt, encoded, tokenizer, 4, torch.device("cpu"), contextlib.nullcontext)
    hook.remove()
    assert seen and all(t is not None and int(t.max()) == 1 for t in seen)
    assert len(outputs) == len(encoded.features)


def test_span_no_answer_is_the_cls_position(family, tiny_bench):
    tokenizer, _ = family
    records = formats.read_dataset(tiny_bench, "squad_v1", "en", "dev")[:6]
    encoded = task_formats.encode(SPAN, tokenizer, records, {**HP, "max_seq_length": 32, "doc_stride": 8}, train=True)
    assert len(encoded.features) > len(records)  # several windows, most without the answer
    nulls = 0
    for f, cls in zip(encoded.features, encoded.cls_index):
        assert f["input_ids"][cls] == tokenizer.cls_token_id
        if f["start_positions"] == f["end_positions"] == cls:
            nulls += 1
        else:
            assert f["start_positions"] > cls  # an answer inside the context
    assert 0 < nulls < len(encoded.features)


def test_cls_position_follows_the_tokenizer_not_position_zero(bert, tiny_bench):
    tokenizer, _ = bert
    records = formats.read_dataset(tiny_bench, "squad_v1", "en", "dev")[:2]
    ids = [tokenizer.pad_token_id, tokenizer.pad_token_id, tokenizer.cls_token_id, 7, tokenizer.sep_token_id]
    assert features.no_answer_index(tokenizer, ids) == 2
    encoded = task_formats.encode(SPAN, tokenizer, records, HP)
    assert encoded.cls_index == [f["input_ids"].index(tokenizer.cls_token_id) for f in encoded.features]


def test_text_blocks_use_the_models_own_special_tokens(bert):
    tokenizer, _ = bert
    blocks = features.encode_text(tokenizer, ["the dog"] * 20, 12).features
    assert blocks and all(b["input_ids"][0] == tokenizer.cls_token_id and b["input_ids"][-1] == tokenizer.sep_token_id
                          for b in blocks)


# ------------------------------------------------------------------------------- weight decay


def _by_name(model) -> set[int]:
    """The exclusion XLM-R / BERT fine-tuning scripts use: names with bias or LayerNorm weights."""
    names = ("bias", "LayerNorm.weight", "layer_norm.weight")
    return {id(p) for n, p in model.named_parameters() if any(k in n for k in names)}


def _all_heads(labels=("a", "b", "c")):
    return {f: HeadSpec(f, labels if TASK_FORMATS[f].labelled else ()) for f in (PAIR, CHOICE, SPAN, TAGGING, TEXT)}


def test_decay_exclusion_by_module_type_matches_the_names(bert, deberta, tiny_encoder):
    from transformers import AutoConfig

    for config in (AutoConfig.from_pretrained(tiny_encoder), bert[1], deberta[1]):
        model = MultiTaskModel.build(config, _all_heads())
        excluded = training.no_decay_parameters(model)
        assert excluded == _by_name(model), config.model_type
        norms = sum(1 for m in model.modules() if isinstance(m, torch.nn.LayerNorm))
        assert norms > 0 and len(excluded) > norms  # weights of every norm and every bias
        groups = training.parameter_groups(model, 0.01)
        assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))


def test_an_rms_norm_module_is_not_decayed():
    class RMSNorm(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(4))

    model = torch.nn.Sequential(torch.nn.Linear(4, 4), RMSNorm())
    excluded = training.no_decay_parameters(model)
    assert excluded == {id(model[0].bias), id(model[1].scale)}
