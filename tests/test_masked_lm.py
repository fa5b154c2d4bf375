"""The masked-LM loss is computed from the masked positions only, and equals the stock head's.

``MultiTaskModel.forward`` gives a stock ``*ForMaskedLM`` head's loss from the vocabulary logits of
the masked positions alone (``modeling.masked_positions_loss``); the stock forward computes them
at every position. For each encoder family of the grid the loss and every gradient must equal
the stock forward's on the same batch (same masks), and a causal LM keeps its stock forward.
"""

from __future__ import annotations

import pytest

from xstilts.tasks import TEXT

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENCODERS = ["xlm-roberta", "bert", "deberta-v2"]
SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
         "max_position_embeddings": 128, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from xstilts import formats, synthetic

    root = tmp_path_factory.mktemp("mlm")
    synthetic.generate(synthetic.SyntheticSpec(seed=2, layout={"mlm_corpus": {"train": ["en", "de"]}},
                                               sizes={"mlm_corpus": {"train": 120}}), root)
    lines = [line for lang in ("en", "de")
             for line in formats.read_lines(formats.data_files(root, "mlm_corpus", lang, "train")["text"])]
    return root, lines


def model_and_batch(family, corpus):
    from xstilts import features, training
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.pipeline import _load_tokenizer
    from xstilts.pretrain import model_config, train_tokenizer
    from xstilts.task_formats import language_modeling_collator

    root, lines = corpus
    folder = root / family
    train_tokenizer(lines, 300, folder, family)
    tokenizer = _load_tokenizer(folder)
    training.set_seed(0)
    model = MultiTaskModel.build(model_config(tokenizer, {**SIZES, "architecture": family}), {"mlm": HeadSpec(TEXT)})
    encoded = features.encode_text(tokenizer, lines, 48)
    hp = {"mlm_probability": 0.15, "max_seq_length": 48}
    batch = language_modeling_collator(tokenizer, hp, seed=0)(encoded.features[:8])
    return model, batch


def loss_and_grads(model, compute):
    model.zero_grad()
    loss = compute()
    loss.backward()
    return float(loss.detach()), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", ENCODERS)
def test_masked_positions_loss_equals_the_stock_heads(family, corpus):
    from xstilts.modeling import masked_lm_head

    model, batch = model_and_batch(family, corpus)
    model.train()
    assert masked_lm_head(model.heads["mlm"]) is not None, f"{family}: no single-input vocabulary head found"
    masked = int((batch["labels"] != -100).sum())
    assert 0 < masked < batch["labels"].numel() / 3  # about 15 % of the positions
    ours, ours_grads = loss_and_grads(model, lambda: model("mlm", **batch).loss)
    stock, stock_grads = loss_and_grads(model, lambda: model.heads["mlm"](**batch).loss)
    assert ours == pytest.approx(stock, rel=1e-5)
    assert ours_grads.keys() == stock_grads.keys()
    for name in stock_grads:
        torch.testing.assert_close(ours_grads[name], stock_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_causal_lm_keeps_its_stock_forward(corpus):
    from xstilts.modeling import masked_lm_head

    model, _ = model_and_batch("qwen2", corpus)
    assert masked_lm_head(model.heads["mlm"]) is None
