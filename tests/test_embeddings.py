"""Middle-layer sentence embeddings against a manual ``output_hidden_states`` computation.

A tiny XLM-R (Unigram tokenizer trained on a few sentences, 4 random layers, hidden size 32)
is built in a temporary folder; nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
import socket

import numpy as np
import pytest

from xstilts.embeddings import default_layer, encode, load_encoder

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


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    # A 32-wide model gains nothing from threads, and on a busy 2-core machine two spinning
    # OpenMP threads make each tiny matmul 50x slower.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
            assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id and len(ids) <= max_length
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
