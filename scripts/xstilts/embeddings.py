"""Sentence embeddings from a middle layer of a local Hugging Face encoder.

The paper (via jiant's ``EmbeddingModel`` + ``MeanPoolerHead``) embeds a sentence as the mean of
``hidden_states[14]`` of XLM-R Large (the output of transformer block 14 of 24) over every
non-padding position, ``<s>`` and ``</s>`` included, with inputs truncated to 512 tokens.

Where it provably gives the same numbers, the encoder is loaded with only its first ``layer``
blocks, so its last hidden state *is* ``hidden_states[layer]`` of the full model and the upper
blocks cost nothing. That identity holds for encoders with nothing after the last block (no final
LayerNorm): post-LayerNorm BERT, RoBERTa, XLM-R, ELECTRA, DeBERTa(-v2), ... Only the families in
``TRUNCATION_EXACT_MODEL_TYPES`` are truncated, and ``tests/test_embeddings.py`` checks every one
of them against ``output_hidden_states=True``. Every other model type (pre-LN encoders, decoders
with a final norm, anything unknown) runs all its blocks with ``output_hidden_states`` and the
pooling reads ``hidden_states[layer]``. Either way the encoder and a sentence-transformers
``Pooling`` module form a ``SentenceTransformer``, which does the tokenisation (truncation to
``max_length``, padding to the longest sentence of a batch, on the tokenizer's padding side),
length-sorted batching and device placement.

Only local folders are loaded (``local_files_only``); nothing here reaches the network or changes
global settings (library log levels are adjusted only for the duration of a load).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
from typing import Any, Iterator

import numpy as np

log = logging.getLogger(__name__)

# Families whose hidden_states[L] equals the output of the model truncated to L blocks: nothing
# follows the last block and no block depends on the depth. Each one is verified numerically by
# tests/test_embeddings.py (test_truncation_is_exact_for_every_listed_family); add a family only
# with a passing check. Pre-LN variants are separate model types (e.g. roberta-prelayernorm).
TRUNCATION_EXACT_MODEL_TYPES = frozenset(
    {"bert", "roberta", "xlm-roberta", "camembert", "electra", "deberta", "deberta-v2", "mpnet", "data2vec-text"}
)
#: ``retrieval.pooling`` -> sentence-transformers' pooling mode. ``last``: the last non-padding
#: token, the usual sentence embedding of a decoder (the only token that has seen the whole input).
POOLINGS = {"mean": "mean", "cls": "cls", "last": "lasttoken"}
# RoBERTa-style position ids start after the padding index, which costs pad_token_id + 1 slots.
OFFSET_POSITION_MODEL_TYPES = frozenset({"roberta", "xlm-roberta", "camembert", "xmod", "data2vec-text", "mpnet"})


def default_layer(num_hidden_layers: int) -> int:
    """The retrieval layer for an encoder of ``num_hidden_layers`` blocks: 14 of 24 (XLM-R Large,
    as in the paper), scaled proportionally for other depths, rounding halves up, at least 1
    (e.g. 12 -> 7, 6 -> 4, 4 -> 2, 2 -> 1)."""
    if num_hidden_layers < 1:
        raise ValueError(f"an encoder needs at least one layer, got {num_hidden_layers}")
    return max(1, min(num_hidden_layers, (7 * num_hidden_layers + 6) // 12))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _LoadReportFilter(logging.Filter):
    """Keeps transformers' LOAD REPORT table out of the logs, remembering it.

    Truncating the encoder makes every upper-layer weight "UNEXPECTED", which is intended."""

    def __init__(self) -> None:
        super().__init__()
        self.reports: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" in message:
            self.reports.append(_ANSI.sub("", message))
            return False
        return True


def _missing_weights(report: str) -> list[str]:
    # Rows are "key | STATUS | ...". A missing pooler is harmless: the pooler is never used.
    missing = []
    for line in report.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) >= 2 and cells[1] == "MISSING" and not cells[0].startswith("pooler."):
            missing.append(cells[0])
    return sorted(missing)


@contextlib.contextmanager
def _quiet_load() -> Iterator[_LoadReportFilter]:
    from transformers.utils import logging as hf_logging

    report_filter = _LoadReportFilter()
    modeling_logger = logging.getLogger("transformers.modeling_utils")
    modeling_logger.addFilter(report_filter)
    # Progress bars are for terminals: in a log file they are noise.
    bars_before = hf_logging.is_progress_bar_enabled()
    if not sys.stderr.isatty():
        hf_logging.disable_progress_bar()
    try:
        yield report_filter
    finally:
        modeling_logger.removeFilter(report_filter)
        if bars_before:
            hf_logging.enable_progress_bar()


def _default_dtype(device: str) -> Any:
    import torch

    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def load_encoder(
    model_dir: str | os.PathLike,
    layer: int | None = None,
    pooling: str = "mean",
    max_length: int = 512,
    device: str | None = None,
    dtype: Any = None,
) -> Any:
    """A ``SentenceTransformer`` embedding sentences as ``pooling`` over ``hidden_states[layer]``.

    ``model_dir`` is a local folder with a Hugging Face encoder and its tokenizer (any
    ``AutoModel`` checkpoint; task heads are ignored). ``layer`` counts blocks (1..depth; default
    :func:`default_layer`); the model is truncated to ``layer`` blocks only for the families in
    ``TRUNCATION_EXACT_MODEL_TYPES``, others run in full with ``output_hidden_states``. ``pooling``
    is ``mean`` (over every non-padding token, special tokens included) or ``cls`` (the first
    non-padding token: ``<s>``, ``[CLS]``) or ``last`` (the last non-padding token: a decoder's
    EOS, which has attended to the whole sentence). Inputs are truncated to ``max_length``
    tokens, special tokens included. ``device`` defaults to CUDA when available, else CPU;
    ``dtype`` (a ``torch.dtype`` or its name, e.g. ``"float16"``) to bfloat16 on GPUs that
    support it, float16 on other GPUs and float32 on CPU. Weights missing from the checkpoint
    (other than the unused pooler) are reported as a warning.
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import AutoConfig, AutoModel

    from xstilts.features import ensure_pad_token, pad_right
    from xstilts.modeling import attention_implementation

    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"{model_dir}: not a local model folder (hub ids are never downloaded)")
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")
    if max_length < 2:
        raise ValueError(f"max_length must leave room for the special tokens, got {max_length}")
    model_dir = str(model_dir)
    config = AutoConfig.from_pretrained(model_dir, local_files_only=True)
    depth = int(getattr(config, "num_hidden_layers", 0) or 0)
    if depth < 1:
        raise ValueError(f"{model_dir}: the config names no num_hidden_layers; is this an encoder?")
    layer = default_layer(depth) if layer is None else int(layer)
    if not 1 <= layer <= depth:
        raise ValueError(f"layer must be between 1 and {depth} for this encoder, got {layer}")
    positions = getattr(config, "max_position_embeddings", None)
    if positions:
        if config.model_type in OFFSET_POSITION_MODEL_TYPES:
            positions -= (config.pad_token_id or 0) + 1
        if max_length > positions:
            raise ValueError(f"max_length {max_length} exceeds the {positions} positions this encoder can embed")
    truncate = config.model_type in TRUNCATION_EXACT_MODEL_TYPES
    if truncate:
        config_kwargs: dict[str, Any] = {"num_hidden_layers": layer}
        # The default output, last_hidden_state, of the truncated model.
        output: dict[str, Any] = {}
    else:
        log.info(
            "model type %r is not known to truncate exactly: running all %d blocks, reading hidden_states[%d]",
            config.model_type,
            depth,
            layer,
        )
        config_kwargs = {}
        # sentence-transformers indexes the model output along this path and, because it passes
        # through hidden_states, asks the model for output_hidden_states.
        output = {
            "modality_config": {"text": {"method": "forward", "method_output_name": ["hidden_states", layer]}},
            "module_output_name": "token_embeddings",
        }
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype.removeprefix("torch."))
    dtype = dtype or _default_dtype(device)
    with _quiet_load() as reports:
        transformer = Transformer(
            model_dir,
            max_seq_length=max_length,
            config_kwargs={**config_kwargs, "local_files_only": True},
            model_kwargs={"dtype": dtype, "local_files_only": True, "use_safetensors": True,
                          "attn_implementation": attention_implementation(AutoModel, config)},
            processor_kwargs={"local_files_only": True},
            **output,
        )
    for report in reports.reports:
        log.debug("%s", report)
        missing = _missing_weights(report)
        if missing:
            log.warning("%s: weights missing from the checkpoint, left random: %s", model_dir, ", ".join(missing))
    # Batches pad on the right, with EOS where the tokenizer has no pad token (as in training);
    # pooling reads the attention mask, so the pad's id never matters here.
    pad_right(ensure_pad_token(transformer.tokenizer))
    pool = Pooling(transformer.get_embedding_dimension(), pooling_mode=POOLINGS[pooling])
    model = SentenceTransformer(modules=[transformer, pool], device=device)
    log.info(
        "encoder %s: hidden_states[%d] of %d layers (%s), %s pooling, max %d tokens, %s on %s",
        model_dir,
        layer,
        depth,
        "truncated" if truncate else "output_hidden_states",
        pooling,
        max_length,
        str(dtype).replace("torch.", ""),
        device,
    )
    return model


def encode(model: Any, sentences: list[str], batch_size: int = 32, log_every: int = 50_000) -> np.ndarray:
    """Embed ``sentences`` with a model from :func:`load_encoder`: a float32 array, row i for
    sentence i.

    Sentences are processed longest first (by characters, as sentence-transformers sorts), so
    batches hold similar lengths and pad little; inputs above ``log_every`` sentences are encoded
    in slices of that many, with a progress message after each.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dim = model.get_embedding_dimension()
    if len(sentences) == 0:
        return np.zeros((0, dim), dtype=np.float32)
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    out = np.empty((len(sentences), dim), dtype=np.float32)
    step = max(batch_size, log_every)
    for lo in range(0, len(order), step):
        rows = order[lo : lo + step]
        emb = model.encode(
            [sentences[i] for i in rows],
            batch_size=batch_size,
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        out[rows] = emb
        if len(order) > step:
            log.info("encoded %d/%d sentences", min(lo + step, len(order)), len(order))
    return out
