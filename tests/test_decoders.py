"""Decoder-only models in every phase, next to the encoder they must match: padding invariance and heads.

Both families are the demo's phase-1 stand-ins (xstilts.pretrain): the tiny XLM-R and the tiny
Qwen2 decoder, random, 2 blocks, 32 wide, tokenizers trained on the synthetic MLM corpus.

Padding invariance: an example's outputs are the same (to 1e-5) whether it is run alone or in a
batch padded to a longer example, for every head format and for retrieval embeddings. With left
padding the per-token heads (tagging, span QA) fail for both families; with a wrong pooled
position (padding counted as content: a pad id the inputs do not use) every classifier test fails.
(Rotary attention depends on relative positions only, so a decoder's pooled outputs survive left
padding; its per-token outputs do not line up with the features' word ids and offsets.)
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

from xstilts.pretrain import model_config, train_tokenizer
from xstilts.tasks import CHOICE, PAIR, SPAN, TAGGING

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FAMILIES = ["xlm-roberta", "qwen2"]
SIZES = {"architecture": None, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 64, "max_position_embeddings": 128, "hidden_dropout_prob": 0.0,
         "attention_probs_dropout_prob": 0.0}
HP = {"max_seq_length": 64, "doc_stride": 16, "max_query_length": 16}
TOL = {"rtol": 0, "atol": 1e-5}
NO_ADAPTATION = {"lora": None, "gradient_checkpointing": False}

SHORT = "Piara lives in Topo ."
LONG = "der Hund of Piara lives in the big city of Topo , near the river , and the Hund is happy there ."


@pytest.fixture(scope="module")
def tokenizer_dirs(tmp_path_factory):
    from xstilts import formats, synthetic

    root = tmp_path_factory.mktemp("decoders")
    langs = ["en", "de"]
    spec = synthetic.SyntheticSpec(seed=3, layout={"mlm_corpus": {"train": langs}},
                                   sizes={"mlm_corpus": {"train": 150}})
    synthetic.generate(spec, root)
    lines = [line for lang in langs
             for line in formats.read_lines(formats.data_files(root, "mlm_corpus", lang, "train")["text"])]
    dirs = {}
    for family in FAMILIES:
        dirs[family] = root / family
        train_tokenizer(lines, 400, dirs[family], family)
    return dirs


def tokenizer(tokenizer_dirs, family):
    from xstilts.pipeline import _load_tokenizer

    return _load_tokenizer(tokenizer_dirs[family])


def config(tok, family):
    return model_config(tok, {**SIZES, "architecture": family})


RECORDS = {
    PAIR: ([{"sentence1": SHORT, "sentence2": "der Hund", "label": "a"},
              {"sentence1": LONG, "sentence2": LONG, "label": "b"},
              {"sentence1": LONG, "sentence2": SHORT, "label": "a"}], ("a", "b", "c")),
    TAGGING: ([{"tokens": SHORT.split(), "tags": ["B-PER", "O", "O", "B-LOC", "O"]},
                 {"tokens": LONG.split(), "tags": ["O"] * len(LONG.split())}], ("B-LOC", "B-PER", "O")),
    SPAN: ([{"id": "q1", "question": "Where ?", "context": SHORT, "answers": {"text": [], "answer_start": []}},
              {"id": "q2", "question": "Who lives in the big city ?", "context": LONG,
               "answers": {"text": [], "answer_start": []}}], ()),
    CHOICE: ([{"context": SHORT, "question": "", "choices": ["yes", "no"], "label": 0},
                {"context": LONG, "question": "Where ?", "choices": ["in Topo", LONG], "label": 1},
                {"context": "", "question": "Who ?", "choices": ["Piara", "der Hund ."], "label": 0}], ()),
}


def build(tok, family, fmt, labels):
    from xstilts.modeling import HeadSpec, MultiTaskModel

    torch.manual_seed(0)
    return MultiTaskModel.build(config(tok, family), {"t": HeadSpec(fmt, labels)}).eval()


def run(model, tok, fmt, encoded, batch_size):
    from xstilts.training import forward_all

    return forward_all(model, "t", fmt, encoded, tok, batch_size, torch.device("cpu"), contextlib.nullcontext)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("fmt", list(RECORDS))
def test_every_head_is_padding_invariant(tokenizer_dirs, family, fmt):
    from xstilts.task_formats import encode, task_format

    tok = tokenizer(tokenizer_dirs, family)
    records, labels = RECORDS[fmt]
    encoded = encode(fmt, tok, records, HP, labels)
    lengths = [task_format(fmt).feature_length(f) for f in encoded.features]
    assert len(set(lengths)) > 1, "the examples must differ in length, or nothing is padded"
    model = build(tok, family, fmt, labels)
    alone = run(model, tok, fmt, encoded, 1)
    together = run(model, tok, fmt, encoded, len(encoded.features))
    for i, (a, b) in enumerate(zip(alone, together)):
        if fmt in (TAGGING, SPAN):  # one output per token: compare the feature's own positions
            n = lengths[i]
            a, b = (np.stack(a)[..., :n], np.stack(b)[..., :n]) if fmt == SPAN else (a[:n], b[:n])
        np.testing.assert_allclose(b, a, **TOL, err_msg=f"{family} {fmt}: feature {i} changes when batched")


def test_padding_is_right_and_decoders_frame_with_bos_and_eos(tokenizer_dirs):
    from xstilts.features import no_answer_index

    tok = tokenizer(tokenizer_dirs, "qwen2")
    assert tok.padding_side == "right"
    batch = tok([SHORT, LONG], padding=True)
    short = batch["input_ids"][0]
    n = sum(batch["attention_mask"][0])
    assert short[0] == tok.bos_token_id and short[n - 1] == tok.eos_token_id
    assert set(short[n:]) == {tok.pad_token_id} and tok.pad_token_id not in (tok.bos_token_id, tok.eos_token_id)
    # Span QA's "no answer" position for a decoder is its BOS, the window's first token.
    assert no_answer_index(tok, tok("Where ?", SHORT)["input_ids"]) == 0


def test_sequence_classifier_pools_the_last_real_token(tokenizer_dirs):
    """A decoder's pair classifier reads the final EOS; computed here independently from the body."""
    from xstilts.task_formats import encode

    tok = tokenizer(tokenizer_dirs, "qwen2")
    records, labels = RECORDS[PAIR]
    model = build(tok, "qwen2", PAIR, labels)
    feature = encode(PAIR, tok, records[:1], HP, labels).features[0]
    ids = torch.tensor([feature["input_ids"]])
    with torch.no_grad():
        hidden = model.encoder(input_ids=ids).last_hidden_state[0, -1]
        expected = model.heads["t"].score(hidden)
        got = run(model, tok, PAIR, encode(PAIR, tok, records, HP, labels), 3)[0]
    np.testing.assert_allclose(got, expected.numpy(), **TOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_multiple_choice_head_and_its_round_trip(tokenizer_dirs, tmp_path, family):
    from xstilts.modeling import ChoiceScoringModel, MultiTaskModel
    from xstilts.task_formats import encode, task_format

    tok = tokenizer(tokenizer_dirs, family)
    records, _ = RECORDS[CHOICE]
    model = build(tok, family, CHOICE, ())
    head = model.heads["t"]
    encoded = encode(CHOICE, tok, records, HP)
    batch = task_format(CHOICE).collator(tok, {})(encoded.features)
    with torch.no_grad():
        out = model("t", **batch)
    assert out.logits.shape == (3, 2)
    np.testing.assert_allclose(out.loss.item(), torch.nn.functional.cross_entropy(out.logits, batch["labels"]).item(),
                               rtol=1e-6)
    if family == "qwen2":
        assert isinstance(head, ChoiceScoringModel)
        # One score per context+choice sequence, each computed alone, unpadded.
        with torch.no_grad():
            for r, feature in enumerate(encoded.features):
                for c, ids in enumerate(feature["input_ids"]):
                    alone = head.scorer(input_ids=torch.tensor([ids])).logits[0, 0]
                    np.testing.assert_allclose(out.logits[r, c].item(), alone.item(), **TOL)
    else:
        assert type(head).__name__ == "XLMRobertaForMultipleChoice"  # encoders keep the stock head

    model.save_head_model("t", tmp_path, tok)
    saved = transformers.AutoConfig.from_pretrained(tmp_path, local_files_only=True)
    assert (getattr(saved, "xstilts_head", None) == "choice_scoring") == (family == "qwen2")
    reloaded = MultiTaskModel.load_head_model(tmp_path, "t", CHOICE).eval()
    assert type(reloaded.heads["t"]) is type(head)
    with torch.no_grad():
        torch.testing.assert_close(reloaded("t", **batch).logits, out.logits)


def test_a_decoder_trains_its_choice_scorer(tokenizer_dirs):
    """Gradients reach the shared body through the choice scorer, and the loss falls."""
    from xstilts.task_formats import encode, task_format

    tok = tokenizer(tokenizer_dirs, "qwen2")
    records, _ = RECORDS[CHOICE]
    model = build(tok, "qwen2", CHOICE, ()).train()
    batch = task_format(CHOICE).collator(tok, {})(encode(CHOICE, tok, records, HP).features)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    first = None
    for _ in range(10):
        loss = model("t", **batch).loss
        first = first if first is not None else loss.item()
        loss.backward()
        assert model.encoder.get_input_embeddings().weight.grad.abs().sum() > 0
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < first


def test_a_model_without_a_pad_token_is_refused(tokenizer_dirs):
    from xstilts.modeling import HeadSpec, MultiTaskModel

    cfg = config(tokenizer(tokenizer_dirs, "qwen2"), "qwen2")
    cfg.pad_token_id = None
    with pytest.raises(ValueError, match="names no pad_token_id.*give the tokenizer one"):
        MultiTaskModel.build(cfg, {"t": HeadSpec(PAIR, ("a", "b"))})


@pytest.mark.parametrize("family,pooling", [("xlm-roberta", "mean"), ("xlm-roberta", "cls"), ("xlm-roberta", "last"),
                                            ("qwen2", "mean"), ("qwen2", "last")])
def test_retrieval_embeddings_are_padding_invariant(tokenizer_dirs, tmp_path, family, pooling):
    from xstilts import embeddings

    tok = tokenizer(tokenizer_dirs, family)
    torch.manual_seed(0)
    transformers.AutoModel.from_config(config(tok, family)).save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    model = embeddings.load_encoder(tmp_path, layer=1, pooling=pooling, max_length=64, device="cpu")
    sentences = [SHORT, LONG, "der Hund", LONG + " " + SHORT]
    alone = np.stack([embeddings.encode(model, [s], batch_size=1)[0] for s in sentences])
    together = embeddings.encode(model, sentences, batch_size=len(sentences))
    np.testing.assert_allclose(together, alone, **TOL)
    if pooling == "last":  # the last real token's hidden state at the layer, computed independently
        encoder = transformers.AutoModel.from_pretrained(tmp_path, local_files_only=True).eval()
        ids = torch.tensor([tok(SHORT)["input_ids"]])
        with torch.no_grad():
            expected = encoder(input_ids=ids, output_hidden_states=True).hidden_states[1][0, -1]
        np.testing.assert_allclose(alone[0], expected.numpy(), **TOL)


@pytest.fixture(scope="module")
def decoder_bench(tmp_path_factory):
    from xstilts import synthetic

    root = tmp_path_factory.mktemp("decoder_bench")
    layout = {"mlm_corpus": {"train": ["en", "zh"]}, "hellaswag": {"train": ["en"], "dev": ["en"]},
              "copa": {"train": ["en"], "dev": ["en"]}, "xcopa": {"test": ["en", "zh"]}}
    sizes = {name: {split: 40 for split in splits} for name, splits in layout.items()}
    sizes["mlm_corpus"] = {"train": 200}
    synthetic.generate(synthetic.SyntheticSpec(seed=5, layout=layout, sizes=sizes), root)
    return root


def test_multiple_choice_through_phases_2_and_3_and_prediction(decoder_bench, tmp_path):
    """HellaSwag in phase 2, COPA in phase 3 and XCOPA predictions, with the tiny decoder: the saved
    model is a plain sequence-classifier folder, and each prediction is the argmax of its choices'
    scores computed one sequence at a time from that folder."""
    from xstilts import formats, pipeline
    from xstilts.config import hparam_defaults
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.tasks import TEXT

    lines = [line for lang in ("en", "zh") for line in formats.read_lines(decoder_bench / "mlm_corpus" / lang / "train.txt")]
    phase1 = tmp_path / "phase1"
    tok = train_tokenizer(lines, 400, phase1, "qwen2")
    torch.manual_seed(0)
    MultiTaskModel.build(config(tok, "qwen2"), {"mlm": HeadSpec(TEXT)}).save_head_model("mlm", phase1, tok)
    hp = {**hparam_defaults(), "batch_size": 4, "grad_accum": 1, "max_seq_length": 64, "learning_rate": 1e-3,
          "max_steps": 3, "mixed_precision": "no"}
    intermediate = {"tasks": ["hellaswag"], "task_hparams": {"hellaswag": hp}, "hparams": hp, "seed": 0,
                    "examples_cap": None, "adaptation": NO_ADAPTATION}
    pipeline.finetune_intermediate(intermediate, phase1, decoder_bench, tmp_path / "phase2", tmp_path / "m2.json",
                                   tmp_path / "ck2", 1)
    job = {"training": "xcopa", "hparams": hp, "dev_sources": [["copa", "dev", "en"]], "adaptation": NO_ADAPTATION}
    pipeline.finetune_target(job, 0, tmp_path / "phase2", decoder_bench, tmp_path / "model", tmp_path / "m3.json",
                             tmp_path / "ck3", 1)
    predict = {**job, "prediction": {}, "predict": {"xcopa": ["en", "zh"]}}
    pipeline.predict_target(predict, tmp_path / "model", decoder_bench, tmp_path / "pred", tmp_path / "p.json", 1)

    saved = transformers.AutoConfig.from_pretrained(tmp_path / "model", local_files_only=True)
    assert saved.architectures == ["Qwen2ForSequenceClassification"] and saved.xstilts_head == "choice_scoring"
    scorer = transformers.AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    saved_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "model")
    records = formats.read_dataset(decoder_bench, "xcopa", "zh", "test")
    predicted = [json.loads(line)["label"] for line in formats.read_lines(tmp_path / "pred" / "xcopa" / "test-zh.jsonl")]
    assert len(predicted) == len(records)
    with torch.no_grad():
        for record, label in zip(records, predicted):
            first = record["context"] or record["question"]
            prefix = record["question"] + " " if record["context"] and record["question"] else ""
            scores = [scorer(**saved_tok(first, prefix + c, truncation=True, max_length=64, return_tensors="pt")).logits[0, 0]
                      for c in record["choices"]]
            assert label == int(np.argmax(scores))


@pytest.mark.parametrize("config_class, family", [
    ("XLMRobertaConfig", "encoder"), ("DebertaV2Config", "encoder"), ("BertConfig", "encoder"),
    ("Qwen2Config", "decoder"), ("LlamaConfig", "decoder"), ("BloomConfig", "decoder"), ("GemmaConfig", "decoder"),
])
def test_model_family_is_read_from_the_config(config_class, family):
    """The family comes from the model's config (transformers' registries), never from a name."""
    from xstilts.modeling import model_family

    assert model_family(getattr(transformers, config_class)()) == family
