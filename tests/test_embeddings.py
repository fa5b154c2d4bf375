"""Middle-layer sentence embeddings against a manual ``output_hidden_states`` computation.

A tiny XLM-R (Unigram tokenizer trained on a few sentences, 4 random layers, hidden size 32)
is built in a temporary folder; nothing is downloaded. Every family that ``load_encoder``
truncates gets the same check on its own tiny random model (BERT and DeBERTa-v2 with the
phase-1 tokenizers and configs of ``xstilts.pretrain``), and a tiny GPT-2, whose last block is
followed by a final LayerNorm, checks the ``output_hidden_states`` path for unlisted families.
"""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest

from xstilts import embeddings
from xstilts.embeddings import TRUNCATION_EXACT_MODEL_TYPES, default_layer, encode, load_encoder

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SENTENCES = [
    "the cat sat on the mat",
    "a dog runs in the park every morning while the sun rises",
    "der Hund läuft im Park",
    "le chat est assis",
    "un chien court dans le parc",
    "ok",
    "the quick brown fox jumps over the lazy dog near the river bank today",
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> str:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import XLMRobertaConfig, XLMRobertaModel, XLMRobertaTokenizer

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=120, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"], unk_token="<unk>"
    )
    tok.train_from_iterator(SENTENCES * 3, trainer)
    vocab = [tuple(piece) for piece in json.loads(tok.to_str())["model"]["vocab"]]
    hf_tok = XLMRobertaTokenizer(vocab=vocab)
    assert (hf_tok.bos_token_id, hf_tok.pad_token_id, hf_tok.eos_token_id) == (0, 1, 2)
    config = XLMRobertaConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_xlmr")
    XLMRobertaModel(config).save_pretrained(path)
    hf_tok.save_pretrained(path)
    return str(path)


_HIDDEN: dict[tuple[str, str, int], list] = {}


def manual(model_dir: str, sentences: list[str], layer: int, pooling: str = "mean", max_length: int = 512):
    """hidden_states[layer] of the full model, pooled by hand; one sentence at a time, so no
    padding is involved at all (forward passes are cached per sentence)."""
    from transformers import AutoModel, AutoTokenizer

    if (model_dir, "", 0) not in _HIDDEN:
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModel.from_pretrained(model_dir, output_hidden_states=True).eval()
        _HIDDEN[(model_dir, "", 0)] = [tok, model]
    tok, model = _HIDDEN[(model_dir, "", 0)]
    out = []
    for s in sentences:
        if (model_dir, s, max_length) not in _HIDDEN:
            batch = tok([s], truncation=True, max_length=max_length, return_tensors="pt")
            ids = batch["input_ids"][0]
            assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and len(ids) <= max_length
            with torch.no_grad():
                hidden = model(**batch).hidden_states
            mask = batch["attention_mask"][0].bool()
            assert mask.all()
            _HIDDEN[(model_dir, s, max_length)] = [h[0].double() for h in hidden]
        hidden = _HIDDEN[(model_dir, s, max_length)][layer]
        out.append(hidden.mean(0) if pooling == "mean" else hidden[0])
    return torch.stack(out).numpy()


@pytest.mark.parametrize("depth, layer", [(24, 14), (12, 7), (6, 4), (4, 2), (2, 1), (1, 1), (48, 28), (36, 21)])
def test_default_layer(depth, layer):
    assert default_layer(depth) == layer


def test_default_layer_needs_a_layer():
    with pytest.raises(ValueError):
        default_layer(0)


@pytest.mark.parametrize("layer", [1, 2, 4])
def test_mean_pooling_equals_hidden_states(model_dir, layer):
    model = load_encoder(model_dir, layer=layer, device="cpu")
    got = encode(model, SENTENCES, batch_size=3)
    assert got.dtype == np.float32 and got.shape == (len(SENTENCES), 32)
    np.testing.assert_allclose(got, manual(model_dir, SENTENCES, layer), atol=2e-5)


def test_default_layer_is_used(model_dir):
    got = encode(load_encoder(model_dir, device="cpu"), SENTENCES)
    np.testing.assert_allclose(got, manual(model_dir, SENTENCES, 2), atol=2e-5)


def test_cls_pooling_and_truncation(model_dir):
    load_encoder(model_dir, layer=3, max_length=512, device="cpu")  # the largest allowed
    model = load_encoder(model_dir, layer=3, pooling="cls", device="cpu")
    np.testing.assert_allclose(encode(model, SENTENCES), manual(model_dir, SENTENCES, 3, "cls"), atol=2e-5)
    short = load_encoder(model_dir, layer=3, max_length=6, device="cpu")
    want = manual(model_dir, SENTENCES, 3, max_length=6)
    np.testing.assert_allclose(encode(short, SENTENCES), want, atol=2e-5)
    # Truncation really happened: the long sentences differ from their untruncated embedding.
    assert not np.allclose(want[1], manual(model_dir, SENTENCES[1:2], 3)[0], atol=1e-3)


def test_batch_size_and_order_do_not_matter(model_dir):
    model = load_encoder(model_dir, layer=2, device="cpu")
    one = encode(model, SENTENCES, batch_size=1)
    many = encode(model, SENTENCES, batch_size=7)
    sliced = encode(model, SENTENCES, batch_size=2, log_every=3)
    reversed_ = encode(model, SENTENCES[::-1], batch_size=4)[::-1]
    for other in (many, sliced, reversed_):
        np.testing.assert_allclose(one, other, atol=2e-5)


def test_progress_is_logged_for_long_inputs(model_dir, caplog):
    model = load_encoder(model_dir, layer=2, device="cpu")
    with caplog.at_level(logging.INFO, logger="xstilts.embeddings"):
        encode(model, SENTENCES, batch_size=2, log_every=3)
    assert [r.getMessage() for r in caplog.records if "encoded" in r.getMessage()] == [
        "encoded 3/7 sentences",
        "encoded 6/7 sentences",
        "encoded 7/7 sentences",
    ]
    assert encode(model, []).shape == (0, 32)


def test_load_report_is_not_logged_and_settings_are_restored(model_dir, caplog):
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    with caplog.at_level(logging.WARNING):
        load_encoder(model_dir, layer=1, device="cpu")
    assert not any("LOAD REPORT" in r.getMessage() for r in caplog.records)
    assert (hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()) == (verbosity, bars)


@pytest.mark.parametrize("dtype", [torch.bfloat16, "bfloat16"])
def test_bfloat16_gives_float32_close_to_float32(model_dir, dtype):
    model = load_encoder(model_dir, layer=2, device="cpu", dtype=dtype)
    got = encode(model, SENTENCES)
    assert got.dtype == np.float32
    assert next(model.parameters()).dtype == torch.bfloat16
    np.testing.assert_allclose(got, manual(model_dir, SENTENCES, 2), atol=0.1)


def test_no_network_is_touched(model_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = load_encoder(model_dir, layer=2, device="cpu")
    assert encode(model, SENTENCES[:2]).shape == (2, 32)


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"layer": 0}, ValueError),
        ({"layer": 5}, ValueError),
        ({"pooling": "max"}, ValueError),
        ({"max_length": 513}, ValueError),  # 514 positions, 2 of them before the first token
    ],
)
def test_load_encoder_rejects_bad_arguments(model_dir, kwargs, error):
    with pytest.raises(error):
        load_encoder(model_dir, device="cpu", **kwargs)


def test_hub_ids_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a local model folder"):
        load_encoder("xlm-roberta-large")
    with pytest.raises(FileNotFoundError):
        load_encoder(tmp_path / "absent")


def test_task_checkpoints_load_and_missing_weights_warn(model_dir, tmp_path, caplog):
    import shutil

    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, XLMRobertaForSequenceClassification

    # A classifier checkpoint (prefixed keys, a head, no pooler) is a fine encoder: no warning.
    head_dir = tmp_path / "classifier"
    XLMRobertaForSequenceClassification(AutoConfig.from_pretrained(model_dir)).save_pretrained(head_dir)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(f"{model_dir}/{name}", head_dir / name)
    with caplog.at_level(logging.WARNING):
        model = load_encoder(head_dir, layer=2, device="cpu")
    assert not caplog.records
    np.testing.assert_allclose(encode(model, SENTENCES), manual(str(head_dir), SENTENCES, 2), atol=2e-5)

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    weights = load_file(broken / "model.safetensors")
    kept = {k: v for k, v in weights.items() if "layer.1.output.dense" not in k}
    save_file(kept, broken / "model.safetensors", metadata={"format": "pt"})
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="xstilts.embeddings"):
        load_encoder(broken, layer=2, device="cpu")
    assert [r.getMessage().split(": ", 1)[1] for r in caplog.records if r.name == "xstilts.embeddings"] == [
        "weights missing from the checkpoint, left random: "
        "encoder.layer.1.output.dense.bias, encoder.layer.1.output.dense.weight"
    ]


# ------------------------------------------------------------------------------------------------
# Truncation only where it is exact; output_hidden_states everywhere else.

DEPTH = 4
# Options that make a family's tiny model look like its released checkpoints.
FAMILY_OPTIONS = {
    "deberta": {"relative_attention": True, "pos_att_type": ["c2p", "p2c"]},
    "electra": {"embedding_size": 16},
}


@pytest.fixture(scope="module")
def tokenizers_dir(tmp_path_factory) -> dict[str, str]:
    """The phase-1 tokenizers of xstilts.pretrain, trained on the test sentences."""
    from xstilts.pretrain import ARCHITECTURES, train_tokenizer

    root = tmp_path_factory.mktemp("tokenizers")
    for name in ARCHITECTURES:
        train_tokenizer(SENTENCES * 3, 200, root / name, name)
    return {name: str(root / name) for name in ARCHITECTURES}


def _tiny_model(model_type: str, tokenizers: dict[str, str], path) -> str:
    """A random 4-block model of ``model_type`` with a phase-1 tokenizer, saved to ``path``."""
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    from xstilts.pretrain import ARCHITECTURES, model_config

    tokenizer = AutoTokenizer.from_pretrained(tokenizers.get(model_type, tokenizers["xlm-roberta"]))
    sizes = {"hidden_size": 32, "num_hidden_layers": DEPTH, "num_attention_heads": 2, "intermediate_size": 64,
             "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
    if model_type in ARCHITECTURES:
        config = model_config(tokenizer, {**sizes, "max_position_embeddings": 512, "architecture": model_type})
    else:
        config = AutoConfig.for_model(model_type, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                      max_position_embeddings=514, **sizes, **FAMILY_OPTIONS.get(model_type, {}))
    assert config.model_type == model_type
    torch.manual_seed(0)
    AutoModel.from_config(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def family_dirs(tokenizers_dir, tmp_path_factory):
    made: dict[str, str] = {}

    def get(model_type: str) -> str:
        if model_type not in made:
            made[model_type] = _tiny_model(model_type, tokenizers_dir, tmp_path_factory.mktemp(model_type))
        return made[model_type]

    return get


def _blocks_run(model) -> int:
    return model[0].model.config.num_hidden_layers


def test_the_phase1_families_are_truncated():
    assert {"xlm-roberta", "bert", "deberta-v2"} <= TRUNCATION_EXACT_MODEL_TYPES


@pytest.mark.parametrize("model_type", sorted(TRUNCATION_EXACT_MODEL_TYPES))
def test_truncation_is_exact_for_every_listed_family(family_dirs, model_type):
    path = family_dirs(model_type)
    for layer in (1, 3):
        model = load_encoder(path, layer=layer, device="cpu")
        assert _blocks_run(model) == layer  # the truncated path was taken
        np.testing.assert_allclose(encode(model, SENTENCES, batch_size=3), manual(path, SENTENCES, layer), atol=2e-5)
    cls = load_encoder(path, layer=2, pooling="cls", device="cpu")
    np.testing.assert_allclose(encode(cls, SENTENCES, batch_size=4), manual(path, SENTENCES, 2, "cls"), atol=2e-5)


def test_bert_inputs_carry_token_type_ids(family_dirs):
    # The BERT tokenizer's own inputs reach the model: ids of segment A, all zero for one sentence.
    model = load_encoder(family_dirs("bert"), layer=2, device="cpu")
    features = model[0].preprocess(SENTENCES[:2])
    assert "token_type_ids" in features and not features["token_type_ids"].any()
    assert features["input_ids"][0, 0] == model[0].tokenizer.cls_token_id


def test_an_unlisted_family_runs_in_full_and_reads_hidden_states(family_dirs, caplog):
    from transformers import AutoModel, AutoTokenizer

    # GPT-2 applies a final LayerNorm after its last block: a truncated GPT-2's output is *not*
    # hidden_states[layer], which is why it must not be truncated.
    assert "gpt2" not in TRUNCATION_EXACT_MODEL_TYPES
    path = family_dirs("gpt2")
    tok = AutoTokenizer.from_pretrained(path)
    batch = tok(SENTENCES[:1], return_tensors="pt")
    with torch.no_grad():
        full = AutoModel.from_pretrained(path).eval()(**batch, output_hidden_states=True).hidden_states
        cut = AutoModel.from_pretrained(path, num_hidden_layers=2).eval()(**batch).last_hidden_state
    assert not torch.allclose(cut, full[2], atol=1e-3)
    torch.testing.assert_close(full[DEPTH], full[-1])

    for layer in (1, 2, DEPTH):
        with caplog.at_level(logging.INFO, logger="xstilts.embeddings"):
            model = load_encoder(path, layer=layer, device="cpu")
        assert _blocks_run(model) == DEPTH
        assert "not known to truncate exactly" in caplog.text
        np.testing.assert_allclose(encode(model, SENTENCES, batch_size=3), manual(path, SENTENCES, layer), atol=2e-5)
    cls = load_encoder(path, layer=2, pooling="cls", device="cpu")
    np.testing.assert_allclose(encode(cls, SENTENCES, batch_size=4), manual(path, SENTENCES, 2, "cls"), atol=2e-5)
    short = load_encoder(path, layer=3, max_length=6, device="cpu")
    np.testing.assert_allclose(encode(short, SENTENCES), manual(path, SENTENCES, 3, max_length=6), atol=2e-5)


@pytest.mark.parametrize("model_type", ["xlm-roberta", "bert", "deberta-v2"])
def test_both_paths_agree_on_the_phase1_families(family_dirs, model_type, monkeypatch):
    path = family_dirs(model_type)
    truncated = encode(load_encoder(path, layer=2, device="cpu"), SENTENCES, batch_size=3)
    monkeypatch.setattr(embeddings, "TRUNCATION_EXACT_MODEL_TYPES", frozenset())
    model = load_encoder(path, layer=2, device="cpu")
    assert _blocks_run(model) == DEPTH
    full = encode(model, SENTENCES, batch_size=3)
    np.testing.assert_allclose(full, truncated, atol=2e-5)
    np.testing.assert_allclose(full, manual(path, SENTENCES, 2), atol=2e-5)
