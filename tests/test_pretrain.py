"""Phase-1 stand-ins (xstilts.pretrain): tokenizers, configs and the LM (masked or causal) of each architecture.

The corpus is the synthetic benchmark's multilingual MLM corpus (Latin, Cyrillic and Han script,
code-switched), 200 lines per language; models are 2-block, 32-wide and random.
"""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from xstilts.pretrain import ARCHITECTURES, DEFAULT_ARCHITECTURE, model_config, train_tokenizer

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SIZES = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
         "max_position_embeddings": 128, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}
VOCAB = 600


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """One line per sentence, languages concatenated, written to a file for the subprocess test."""
    from xstilts import formats, synthetic

    root = tmp_path_factory.mktemp("corpus")
    langs = ["en", "de", "ru", "zh"]
    spec = synthetic.SyntheticSpec(seed=3, layout={"mlm_corpus": {"train": langs}},
                                   sizes={"mlm_corpus": {"train": 200}})
    synthetic.generate(spec, root)
    lines = []
    for lang in langs:
        lines += formats.read_lines(formats.data_files(root, "mlm_corpus", lang, "train")["text"])
    path = root / "corpus.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def tokenizer_dirs(corpus, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("tokenizers")
    for name in ARCHITECTURES:
        train_tokenizer(lines_of(corpus), VOCAB, root / name, name)
    return {name: root / name for name in ARCHITECTURES}


def load(path: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(path, local_files_only=True)


# ------------------------------------------------------------------------------------------------
# Tokenizers


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_training_twice_gives_identical_files(corpus, tokenizer_dirs, tmp_path, name):
    train_tokenizer(lines_of(corpus), VOCAB, tmp_path / "again", name)
    assert digest(tmp_path / "again") == digest(tokenizer_dirs[name])


@pytest.mark.parametrize("name", ["bert", "deberta-v2", "qwen2"])
def test_training_is_identical_across_processes(corpus, tokenizer_dirs, tmp_path, name):
    # The WordPiece trainer of `tokenizers` iterates hash maps seeded per process; each run here
    # is a fresh interpreter, one with the Rust thread pool enabled, one without.
    code = ("import sys; from pathlib import Path; from xstilts.pretrain import train_tokenizer; "
            "train_tokenizer(Path(sys.argv[1]).read_text(encoding='utf-8').splitlines(), int(sys.argv[2]), "
            "sys.argv[3], sys.argv[4])")
    for i, parallel in enumerate(("true", "false")):
        env = {**os.environ, "PYTHONPATH": str(ROOT / "scripts"), "TOKENIZERS_PARALLELISM": parallel,
               "PYTHONHASHSEED": str(i + 1)}
        out = tmp_path / f"run{i}"
        subprocess.run([sys.executable, "-c", code, str(corpus), str(VOCAB), str(out), name], env=env, check=True)
        assert digest(out) == digest(tokenizer_dirs[name]), f"process {i} trained a different {name} tokenizer"


def test_the_default_is_xlm_roberta(corpus, tokenizer_dirs, tmp_path):
    assert DEFAULT_ARCHITECTURE == "xlm-roberta"
    train_tokenizer(lines_of(corpus), VOCAB, tmp_path / "default")
    assert digest(tmp_path / "default") == digest(tokenizer_dirs["xlm-roberta"])


# name -> tokenizer class, ids of (pad, unk, cls, sep, mask) (None: "the last id"), inputs.
LAYOUTS = {
    "xlm-roberta": ("XLMRobertaTokenizer", (1, 3, 0, 2, None), ["input_ids", "attention_mask"]),
    "bert": ("BertTokenizer", (0, 1, 2, 3, 4), ["input_ids", "token_type_ids", "attention_mask"]),
    "deberta-v2": ("DebertaV2Tokenizer", (0, 3, 1, 2, None), ["input_ids", "attention_mask", "token_type_ids"]),
}
# Decoder-only families: their tokenizer has no CLS, SEP or mask token.
DECODERS = ["qwen2"]
MASKED = [name for name in ARCHITECTURES if name not in DECODERS]


def test_every_architecture_has_a_layout():
    assert set(LAYOUTS) == set(MASKED) and set(DECODERS) <= set(ARCHITECTURES)


@pytest.mark.parametrize("name", MASKED)
def test_special_token_layout(tokenizer_dirs, name):
    cls_name, (pad, unk, cls, sep, mask), inputs = LAYOUTS[name]
    tok = load(tokenizer_dirs[name])
    assert type(tok).__name__ == cls_name
    assert tok.model_input_names == inputs
    mask = len(tok) - 1 if mask is None else mask
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (
        pad, unk, cls, sep, mask)
    assert 200 < len(tok) <= VOCAB + 1  # the cap (plus <mask> for SentencePiece), reached on this corpus
    assert tok.model_max_length == 512

    a = tok("Piara lives in Topo .", add_special_tokens=False)["input_ids"]
    b = tok("der Hund", add_special_tokens=False)["input_ids"]
    assert a and b and unk not in a
    single = tok("Piara lives in Topo .")
    assert single["input_ids"] == [cls, *a, sep]
    pair = tok("Piara lives in Topo .", "der Hund")
    if name == "xlm-roberta":  # <s> A </s></s> B </s>, no segment ids
        assert pair["input_ids"] == [cls, *a, sep, sep, *b, sep] and "token_type_ids" not in pair
    else:  # [CLS] A [SEP] B [SEP], segment 0 up to the first [SEP], 1 after it
        assert pair["input_ids"] == [cls, *a, sep, *b, sep]
        assert pair["token_type_ids"] == [0] * (len(a) + 2) + [1] * (len(b) + 1)


def test_qwen2_layout_frames_with_bos_and_eos_and_pads_right(tokenizer_dirs):
    tok = load(tokenizer_dirs["qwen2"])
    assert type(tok).__name__ == "Qwen2Tokenizer"
    assert tok.model_input_names == ["input_ids", "attention_mask"]
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    assert tok.cls_token_id is None and tok.sep_token_id is None and tok.mask_token is None
    assert tok.padding_side == "right" and tok.model_max_length == 512
    assert 200 < len(tok) <= VOCAB
    a = tok("Piara lives in Topo .", add_special_tokens=False)["input_ids"]
    b = tok("der Hund", add_special_tokens=False)["input_ids"]
    assert tok("Piara lives in Topo .")["input_ids"] == [1, *a, 2]
    assert tok("Piara lives in Topo .", "der Hund")["input_ids"] == [1, *a, 2, 1, *b, 2]
    assert tok.decode(a) == " Piara lives in Topo ."  # byte-level: lossless, with the prefix space
    # Pre-split words (tagging) get the pieces they have inside running text.
    words = tok(["Piara", "lives"], is_split_into_words=True)
    assert words["input_ids"][1:-1] == tok("Piara lives", add_special_tokens=False)["input_ids"]


def test_bert_is_cased_and_splits_cjk(tokenizer_dirs):
    tok = load(tokenizer_dirs["bert"])
    tokens = tok.tokenize("Piara lives")
    assert tokens[0].startswith("P")  # not lowercased
    assert any(t.startswith("##") for t in tok.get_vocab())
    han = next(c for c in tok.get_vocab() if len(c) == 1 and "\u4e00" <= c <= "\u9fff")
    assert tok.tokenize(han * 3) == [han] * 3  # each Han character is a word, as in mBERT


def test_unknown_architecture_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown model.pretrain.architecture 'gpt2'; choose one of xlm-roberta, bert"):
        train_tokenizer(["a b c"], 50, tmp_path, "gpt2")
    with pytest.raises(ValueError, match="unknown model.pretrain.architecture"):
        model_config(None, {**SIZES, "architecture": "roberta"})


def test_schema_lists_the_registry():
    with open(ROOT / "scripts/xstilts/schemas/config.schema.yaml", encoding="utf-8") as f:
        schema = yaml.safe_load(f)
    prop = schema["$defs"]["model"]["properties"]["pretrain"]["properties"]["architecture"]
    assert prop["enum"] == list(ARCHITECTURES) and prop["default"] == DEFAULT_ARCHITECTURE


@pytest.mark.parametrize("name", ["bert", "deberta-v2", "qwen2"])
def test_the_config_key_reaches_the_pretrain_job(config, name):
    from xstilts.config import resolve
    from xstilts.plan import Plan

    config["models"] = [{"name": "m", "extends": "xlmr-demo", "pretrain": {"architecture": name}}]
    assert Plan(resolve(config)).for_model("m").pretrain_job()["architecture"]["architecture"] == name


def test_a_misspelt_architecture_is_a_config_error(config):
    from xstilts.config import ConfigError, resolve

    config["models"] = [{"name": "m", "extends": "xlmr-demo", "pretrain": {"architecture": "deberta"}}]
    with pytest.raises(ConfigError, match=r"'deberta' is not allowed \(did you mean 'deberta-v2'\?\)"):
        resolve(config)


# ------------------------------------------------------------------------------------------------
# Configs and the masked LM


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_config_round_trip(tokenizer_dirs, tmp_path, name):
    from transformers import AutoConfig

    tok = load(tokenizer_dirs[name])
    config = model_config(tok, {**SIZES, "architecture": name})
    assert config.model_type == ARCHITECTURES[name].model_type == name
    assert (config.vocab_size, config.pad_token_id) == (len(tok), tok.pad_token_id)
    assert (config.hidden_size, config.num_hidden_layers) == (32, 2)
    config.save_pretrained(tmp_path)
    again = AutoConfig.from_pretrained(tmp_path, local_files_only=True)
    assert type(again) is type(config)
    assert {**again.to_dict(), "_name_or_path": ""} == {**config.to_dict(), "_name_or_path": ""}


def test_family_specific_settings(tokenizer_dirs):
    configs = {name: model_config(load(tokenizer_dirs[name]), {**SIZES, "architecture": name})
               for name in ARCHITECTURES}
    xlmr, bert, deberta = configs["xlm-roberta"], configs["bert"], configs["deberta-v2"]
    assert (xlmr.type_vocab_size, xlmr.max_position_embeddings) == (1, 130)  # positions after the padding index
    assert (bert.type_vocab_size, bert.max_position_embeddings) == (2, 128)
    assert (deberta.relative_attention, deberta.position_biased_input, deberta.share_att_key) == (True, False, True)
    assert deberta.pos_att_type == ["p2c", "c2p"] and deberta.norm_rel_ebd == "layer_norm"
    assert (deberta.position_buckets, deberta.max_relative_positions, deberta.type_vocab_size) == (64, -1, 0)
    assert deberta.legacy is False
    qwen2 = configs["qwen2"]
    assert (qwen2.tie_word_embeddings, qwen2.max_position_embeddings) == (True, 128)
    assert (qwen2.pad_token_id, qwen2.bos_token_id, qwen2.eos_token_id) == (0, 1, 2)


@pytest.mark.parametrize("name", MASKED)
def test_mlm_forward_training_step_and_reload(corpus, tokenizer_dirs, tmp_path, name):
    from transformers import AutoModel, AutoModelForMaskedLM, DataCollatorForLanguageModeling

    from xstilts import features
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.tasks import TEXT

    tok = load(tokenizer_dirs[name])
    encoded = features.encode_text(tok, lines_of(corpus)[::10], 32)
    blocks = encoded.features[:8]
    assert all(b["input_ids"][0] == tok.cls_token_id and b["input_ids"][-1] == tok.sep_token_id for b in blocks)
    assert all(len(b["input_ids"]) == 32 for b in blocks)
    batch = DataCollatorForLanguageModeling(tok, mlm_probability=0.15, seed=0)(blocks)
    assert (batch["input_ids"] == tok.mask_token_id).any()

    torch.manual_seed(0)
    model = MultiTaskModel.build(model_config(tok, {**SIZES, "architecture": name}), {"mlm": HeadSpec(TEXT)})
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    assert model("mlm", **inputs).logits.shape == (8, 32, len(tok))
    # With labels, the loss comes from the masked positions' logits alone (no logits returned:
    # tests/test_masked_lm.py checks it equals the stock head's).
    out = model("mlm", **batch)
    assert out.logits is None
    # A random model is about uniform over the vocabulary.
    assert abs(out.loss.item() - math.log(len(tok))) < 0.5
    out.loss.backward()
    embeddings = model.encoder.get_input_embeddings().weight
    assert embeddings.grad is not None and embeddings.grad.abs().sum() > 0
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    optimizer.step()
    assert model("mlm", **batch).loss.item() < out.loss.item()

    model.eval()
    with torch.no_grad():
        logits = model("mlm", **inputs).logits
    model.save_head_model("mlm", tmp_path, tok)
    reloaded = AutoModelForMaskedLM.from_pretrained(tmp_path, local_files_only=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, logits)
    assert type(AutoModel.from_pretrained(tmp_path, local_files_only=True)).__name__ == type(model.encoder).__name__
    assert type(load(tmp_path)) is type(tok)


def test_causal_lm_loss_falls_on_the_corpus_and_reloads(corpus, tokenizer_dirs, tmp_path):
    from transformers import AutoModel, AutoModelForCausalLM

    from xstilts import features
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.task_formats import TASK_FORMATS, language_modeling_collator
    from xstilts.tasks import TEXT

    tok = load(tokenizer_dirs["qwen2"])
    blocks = features.encode_text(tok, lines_of(corpus), 32).features
    assert all(b["input_ids"][0] == tok.bos_token_id and b["input_ids"][-1] == tok.eos_token_id for b in blocks)
    collate = language_modeling_collator(tok, {"mlm_probability": 0.15})
    assert collate is not None and TASK_FORMATS[TEXT].collator(tok, {"mlm_probability": 0.15}).mlm is False
    train, dev = collate(blocks[8:40]), collate(blocks[:8])
    # Next-token prediction: the labels are the inputs (shifted inside the model), nothing masked.
    assert torch.equal(dev["labels"], dev["input_ids"])

    torch.manual_seed(0)
    model = MultiTaskModel.build(model_config(tok, {**SIZES, "architecture": "qwen2"}), {"mlm": HeadSpec(TEXT)})
    head = model.heads["mlm"]
    assert type(head).__name__ == "Qwen2ForCausalLM"
    assert head.lm_head.weight is model.encoder.get_input_embeddings().weight  # tied to the shared embeddings
    with torch.no_grad():
        before = model("mlm", **dev).loss.item()
    assert abs(before - math.log(len(tok))) < 0.5
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(30):
        model("mlm", **train).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    with torch.no_grad():
        after = model("mlm", **dev).loss
        logits = model("mlm", **dev).logits
    # Held-out blocks: the model learnt the corpus, not just its training blocks.
    assert after.item() < before - 1.0, (before, after.item())
    model.save_head_model("mlm", tmp_path, tok)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**dev).logits, logits)
    assert type(AutoModel.from_pretrained(tmp_path, local_files_only=True)).__name__ == "Qwen2Model"
