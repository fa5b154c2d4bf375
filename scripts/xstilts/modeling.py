"""Models: one shared Hugging Face encoder with one standard task head per task.

Every phase uses the same construction. Each task gets the stock ``AutoModelFor<Task>`` head
for its format, and all heads share a single ``AutoModel`` encoder (the pattern of jiant and
of Phang's "multi-task training with transformers" notebook). A single-task run is simply the
one-task case, so intermediate, multi-task, target and MLM training share one code path.

Encoders are saved with ``save_pretrained`` and loaded with ``from_pretrained`` from a local
folder, exactly as ``xlm-roberta-large`` is: a phase-2 encoder folder is a drop-in replacement
for the pretrained model in phase 3 and in retrieval.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    PretrainedConfig,
)
from transformers import logging as hf_logging

from xstilts.tasks import CHOICE, PAIR, SPAN, TAGGING, TEXT

log = logging.getLogger(__name__)

HEAD_CLASSES = {
    PAIR: AutoModelForSequenceClassification,
    CHOICE: AutoModelForMultipleChoice,
    SPAN: AutoModelForQuestionAnswering,
    TAGGING: AutoModelForTokenClassification,
    TEXT: AutoModelForMaskedLM,
}


@dataclass(frozen=True)
class HeadSpec:
    """What a task head needs: the task format and, for classifiers and taggers, the labels."""

    format: str
    labels: tuple[str, ...] = field(default=())


def quiet_transformers() -> None:
    """Silence transformers' load reports: a fresh head's MISSING keys are expected here."""
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


class MultiTaskModel(nn.Module):
    """Task heads (stock ``AutoModelFor*`` models) sharing one encoder."""

    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    @classmethod
    def build(cls, encoder_source: str | Path | PretrainedConfig, specs: dict[str, HeadSpec]) -> "MultiTaskModel":
        """Load the encoder (a local folder, or a config for random init) and add one head per task."""
        quiet_transformers()
        if isinstance(encoder_source, PretrainedConfig):
            config = encoder_source
            encoder = AutoModel.from_config(config)
        else:
            config = AutoConfig.from_pretrained(encoder_source)
            encoder = AutoModel.from_pretrained(encoder_source)
        heads = {}
        for name, spec in specs.items():
            head_config = copy.deepcopy(config)
            if spec.format in (PAIR, TAGGING):
                head_config.id2label = dict(enumerate(spec.labels))
                head_config.label2id = {label: i for i, label in enumerate(spec.labels)}
            model = HEAD_CLASSES[spec.format].from_config(head_config)
            # Replace the head model's own (randomly initialised) encoder with the shared one.
            # The shared AutoModel keeps its pooler, which the multiple-choice head needs.
            setattr(model, model.base_model_prefix, encoder)
            # The MLM decoder is tied to the input embeddings; re-tie it to the shared ones.
            model.tie_weights()
            heads[name] = model
        return cls(encoder, heads)

    def forward(self, task: str, **batch: torch.Tensor) -> Any:
        return self.heads[task](**batch)

    def save_encoder(self, out_dir: str | Path, tokenizer: Any) -> None:
        """Save the shared encoder and tokenizer as a standard Hugging Face model folder."""
        self.encoder.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)

    def save_head_model(self, task: str, out_dir: str | Path, tokenizer: Any) -> None:
        """Save one task's full model (encoder + head) as a standard ``AutoModelFor*`` folder."""
        self.heads[task].save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)


def load_head_model(model_dir: str | Path, fmt: str) -> nn.Module:
    """Load a fine-tuned task model saved by ``save_head_model``."""
    quiet_transformers()
    return HEAD_CLASSES[fmt].from_pretrained(model_dir)
