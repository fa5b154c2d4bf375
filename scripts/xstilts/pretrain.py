"""Phase-1 stand-in for the embedded demo: a tokenizer and a tiny model config of one architecture family.

``model.pretrain.architecture`` picks the family; each trains its tokenizer the way that family
does and saves it in the family's own Hugging Face classes, so every later stage loads tokenizer
and model with ``AutoTokenizer`` / ``AutoModel`` exactly as it would load the hub checkpoint:

* ``xlm-roberta`` (default): a SentencePiece Unigram model (what XLM-R uses) wrapped as
  ``XLMRobertaTokenizer`` with XLM-R's layout (``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3,
  ``<mask>`` last) and an ``XLMRobertaConfig``.
* ``bert``: a cased WordPiece vocabulary (``[PAD]``=0, ``[UNK]``=1, ``[CLS]``=2, ``[SEP]``=3,
  ``[MASK]``=4, then ``##`` continuations, characters and merges) as ``BertTokenizer``, whose
  inputs include ``token_type_ids``, and a ``BertConfig`` with two segment types.
* ``deberta-v2``: a SentencePiece Unigram model with mDeBERTa-v3's layout (``[PAD]``=0,
  ``[CLS]``=1, ``[SEP]``=2, ``[UNK]``=3, ``[MASK]`` last) as ``DebertaV2Tokenizer``, and a
  ``DebertaV2Config`` with mDeBERTa-v3's disentangled relative attention.
* ``qwen2`` (a decoder-only demo): a byte-level BPE with Qwen2's pre-tokenizer as
  ``Qwen2Tokenizer``, with explicit ``<|endoftext|>``=0 (pad, Qwen's own pad), ``<|im_start|>``=1
  (BOS) and ``<|im_end|>``=2 (EOS) framing every sequence (``BOS a EOS BOS b EOS`` for pairs),
  right padding, and a ``Qwen2Config`` with tied embeddings. Its phase 1 is causal-LM pretraining
  (the ``text`` format picks the objective from the model type, ``modeling.text_head``).

Training is deterministic: the same corpus gives byte-identical tokenizer files in any process.
SentencePiece runs single-threaded (the Unigram trainer of ``tokenizers`` is not deterministic:
its hash-map iteration order varies between processes). The WordPiece trainer of ``tokenizers``
numbers the ``##`` continuation symbols in hash-map order, which changes which merge wins a tie;
declaring those symbols up front, sorted, fixes their ids and so the whole merge sequence.
The BPE trainer of ``tokenizers`` breaks count ties by the pair itself, and its alphabet (the
256 byte symbols) is given up front: byte-identical across processes (tests/test_pretrain.py).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

DEFAULT_ARCHITECTURE = "xlm-roberta"
# Tokenizer classes refuse longer inputs; the model's own position limit is in its config.
MODEL_MAX_LENGTH = 512


def _sentencepiece_vocab(lines: list[str], vocab_size: int, pieces: dict[str, int]) -> list[tuple[str, float]]:
    """(piece, score) of a Unigram model trained on ``lines``, special pieces at the given ids.

    ``pieces`` maps the roles pad, bos, eos and unk to ``(piece, id)`` for SentencePiece."""
    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        hard_vocab_limit=False, character_coverage=1.0, num_threads=1, shuffle_input_sentence=False,
        input_sentence_size=0, minloglevel=2, **pieces,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    return [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(sp.get_piece_size())]


def _xlmr_tokenizer(lines: list[str], vocab_size: int) -> Any:
    from transformers import XLMRobertaTokenizer

    vocab = _sentencepiece_vocab(lines, vocab_size, {"bos_id": 0, "pad_id": 1, "eos_id": 2, "unk_id": 3})
    vocab.append(("<mask>", 0.0))
    return XLMRobertaTokenizer(vocab=vocab)


BERT_SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def _bert_tokenizer(lines: list[str], vocab_size: int) -> Any:
    import json

    from tokenizers import Tokenizer, models, trainers
    from transformers import BertTokenizer

    # Multilingual BERT's text handling: cased, accents kept, CJK characters split off.
    empty = BertTokenizer(do_lower_case=False)
    trainee = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    trainee.normalizer = empty.backend_tokenizer.normalizer
    trainee.pre_tokenizer = empty.backend_tokenizer.pre_tokenizer
    continuations = set()
    for line in lines:
        for word, _ in trainee.pre_tokenizer.pre_tokenize_str(trainee.normalizer.normalize_str(line)):
            continuations.update(word[1:])
    # Exactly the "##" symbols the trainer would add itself, but numbered in sorted order.
    declared = [*BERT_SPECIAL_TOKENS, *(f"##{c}" for c in sorted(continuations))]
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=declared, show_progress=False)
    trainee.train_from_iterator(lines, trainer)
    vocab = json.loads(trainee.to_str())["model"]["vocab"]
    return BertTokenizer(vocab=vocab, do_lower_case=False)


def _deberta_v2_tokenizer(lines: list[str], vocab_size: int) -> Any:
    from transformers import DebertaV2Tokenizer

    vocab = _sentencepiece_vocab(lines, vocab_size, {
        "pad_id": 0, "pad_piece": "[PAD]", "bos_id": 1, "bos_piece": "[CLS]",
        "eos_id": 2, "eos_piece": "[SEP]", "unk_id": 3, "unk_piece": "[UNK]",
    })
    vocab.append(("[MASK]", 0.0))
    return DebertaV2Tokenizer(vocab=vocab, unk_id=3, do_lower_case=False, split_by_punct=False)


QWEN2_PAD, QWEN2_BOS, QWEN2_EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"


def _qwen2_tokenizer(lines: list[str], vocab_size: int) -> Any:
    import json

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    specials = [QWEN2_PAD, QWEN2_BOS, QWEN2_EOS]
    # Qwen2's own normalizer and pre-tokenizer (regex split, then bytes), with a prefix space so that
    # pre-split words (tagging) get the same pieces as words inside running text.
    empty = Qwen2Tokenizer(vocab={t: i for i, t in enumerate(specials)}, merges=[], add_prefix_space=True)
    trainee = Tokenizer(models.BPE())
    trainee.normalizer = empty.backend_tokenizer.normalizer
    trainee.pre_tokenizer = empty.backend_tokenizer.pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    trainee.train_from_iterator(lines, trainer)
    model = json.loads(trainee.to_str())["model"]
    # BOS and EOS frame every sequence: BOS is span QA's "no answer" position (features.no_answer_index),
    # EOS the last real token, which the sequence classifier pools (it sees the whole input). The
    # explicit pad token differs from both, so the classifier never mistakes EOS for padding. Right
    # padding keeps per-token outputs at their tokens' positions (features.pad_right).
    return Qwen2Tokenizer(vocab=model["vocab"], merges=[tuple(m) for m in model["merges"]],
                          unk_token=QWEN2_PAD, pad_token=QWEN2_PAD, bos_token=QWEN2_BOS, eos_token=QWEN2_EOS,
                          add_prefix_space=True, add_bos_token=True, add_eos_token=True, padding_side="right")


def _common(tokenizer: Any, arch: dict[str, Any]) -> dict[str, Any]:
    return {
        "vocab_size": len(tokenizer),
        "hidden_size": arch["hidden_size"],
        "num_hidden_layers": arch["num_hidden_layers"],
        "num_attention_heads": arch["num_attention_heads"],
        "intermediate_size": arch["intermediate_size"],
        "pad_token_id": tokenizer.pad_token_id,
        "hidden_dropout_prob": arch["hidden_dropout_prob"],
        "attention_probs_dropout_prob": arch["attention_probs_dropout_prob"],
    }


def _xlmr_config(tokenizer: Any, arch: dict[str, Any]) -> Any:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch["hidden_size"],
        num_hidden_layers=arch["num_hidden_layers"],
        num_attention_heads=arch["num_attention_heads"],
        intermediate_size=arch["intermediate_size"],
        # RoBERTa positions start after the padding index, hence the +2.
        max_position_embeddings=arch["max_position_embeddings"] + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        hidden_dropout_prob=arch["hidden_dropout_prob"],
        attention_probs_dropout_prob=arch["attention_probs_dropout_prob"],
    )


def _bert_config(tokenizer: Any, arch: dict[str, Any]) -> Any:
    from transformers import BertConfig

    return BertConfig(
        **_common(tokenizer, arch),
        max_position_embeddings=arch["max_position_embeddings"],
        type_vocab_size=2,  # segments A and B of sentence pairs, as in BERT
    )


def _deberta_v2_config(tokenizer: Any, arch: dict[str, Any]) -> Any:
    from transformers import DebertaV2Config

    positions = arch["max_position_embeddings"]
    return DebertaV2Config(
        **_common(tokenizer, arch),
        max_position_embeddings=positions,
        # mDeBERTa-v3: no absolute positions or segment embeddings; disentangled attention
        # (content-to-position and position-to-content) over log-bucketed relative positions,
        # 256 buckets for 512 positions (scaled here), keys shared between content and position.
        type_vocab_size=0,
        relative_attention=True,
        max_relative_positions=-1,
        position_buckets=max(1, positions // 2),
        pos_att_type=["p2c", "c2p"],
        position_biased_input=False,
        norm_rel_ebd="layer_norm",
        share_att_key=True,
        # The MLM head of DeBERTa proper (tied to the input embeddings), not the legacy BERT-style one.
        legacy=False,
    )


def _qwen2_config(tokenizer: Any, arch: dict[str, Any]) -> Any:
    from transformers import Qwen2Config

    return Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=arch["hidden_size"],
        num_hidden_layers=arch["num_hidden_layers"],
        num_attention_heads=arch["num_attention_heads"],
        num_key_value_heads=arch["num_attention_heads"],
        intermediate_size=arch["intermediate_size"],
        max_position_embeddings=arch["max_position_embeddings"],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        # Small Qwen2 models (0.5B, 1.5B) tie the LM head to the input embeddings. Qwen2 has
        # attention dropout only; hidden_dropout_prob has no counterpart.
        tie_word_embeddings=True,
        attention_dropout=arch["attention_probs_dropout_prob"],
        use_cache=False,
    )


@dataclass(frozen=True)
class Architecture:
    """How one model family trains its tokenizer and configures its model."""

    model_type: str
    tokenizer: Callable[[list[str], int], Any]
    config: Callable[[Any, dict[str, Any]], Any]


ARCHITECTURES = {
    "xlm-roberta": Architecture("xlm-roberta", _xlmr_tokenizer, _xlmr_config),
    "bert": Architecture("bert", _bert_tokenizer, _bert_config),
    "deberta-v2": Architecture("deberta-v2", _deberta_v2_tokenizer, _deberta_v2_config),
    "qwen2": Architecture("qwen2", _qwen2_tokenizer, _qwen2_config),
}


def architecture(name: str) -> Architecture:
    """The registry entry for ``model.pretrain.architecture`` ``name``."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model.pretrain.architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return ARCHITECTURES[name]


def train_tokenizer(lines: Iterable[str], vocab_size: int, out_dir: str | Path,
                    architecture_name: str = DEFAULT_ARCHITECTURE) -> Any:
    """Train the tokenizer of ``architecture_name`` on ``lines`` and save it to ``out_dir``.

    ``vocab_size`` is a cap: a small corpus yields fewer pieces.
    """
    tokenizer = architecture(architecture_name).tokenizer(list(lines), vocab_size)
    tokenizer.model_max_length = MODEL_MAX_LENGTH
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def model_config(tokenizer: Any, arch: dict[str, Any]) -> Any:
    """The model config for the tokenizer's vocabulary and the requested architecture.

    ``arch`` holds the ``model.pretrain`` sizes and optionally ``architecture`` (the family,
    default ``xlm-roberta``)."""
    return architecture(arch["architecture"]).config(tokenizer, arch)
