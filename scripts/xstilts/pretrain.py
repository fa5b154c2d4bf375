"""Phase-1 stand-in for the embedded demo: an XLM-R-style tokenizer and a tiny XLM-R config.

The tokenizer is a SentencePiece Unigram model (what XLM-R uses), trained single-threaded so
that the same corpus always gives the same pieces and scores (the Unigram trainer of
``tokenizers`` does not: its hash-map iteration order varies between processes). Its pieces
and scores are wrapped as ``XLMRobertaTokenizer`` with XLM-R's special-token layout
(``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, ``<mask>`` last), so every later stage loads
it with ``AutoTokenizer.from_pretrained`` exactly as it would load ``xlm-roberta-large``'s.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Iterable


def train_tokenizer(lines: Iterable[str], vocab_size: int, out_dir: str | Path) -> Any:
    """Train a Unigram tokenizer on ``lines`` and save it as an XLM-R tokenizer folder.

    ``vocab_size`` is a cap: a small corpus yields fewer pieces.
    """
    import sentencepiece as spm
    from transformers import XLMRobertaTokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(list(lines)), model_writer=model, vocab_size=vocab_size, model_type="unigram",
        hard_vocab_limit=False, character_coverage=1.0, num_threads=1, shuffle_input_sentence=False,
        input_sentence_size=0, bos_id=0, pad_id=1, eos_id=2, unk_id=3, minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_proto=model.getvalue())
    vocab = [(sp.id_to_piece(i), float(sp.get_score(i))) for i in range(sp.get_piece_size())]
    vocab.append(("<mask>", 0.0))
    tokenizer = XLMRobertaTokenizer(vocab=vocab)
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def model_config(tokenizer: Any, arch: dict[str, Any]) -> Any:
    """An ``XLMRobertaConfig`` for the tokenizer's vocabulary and the requested architecture."""
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(
        vocab_size=len(tokenizer),
        hidden_size=arch["hidden_size"],
        num_hidden_layers=arch["num_hidden_layers"],
        num_attention_heads=arch["num_attention_heads"],
        intermediate_size=arch["intermediate_size"],
        # RoBERTa positions start after the padding index, hence the +2.
        max_position_embeddings=arch.get("max_position_embeddings", 256) + 2,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        type_vocab_size=1,
        hidden_dropout_prob=arch.get("hidden_dropout_prob", 0.1),
        attention_probs_dropout_prob=arch.get("attention_probs_dropout_prob", 0.1),
    )
