"""Models: one shared Hugging Face encoder with one standard task head per task.

Every phase uses the same construction. Each task gets the stock ``AutoModelFor<Task>`` head
for its format, and all heads share a single ``AutoModel`` encoder (the pattern of jiant and
of Phang's "multi-task training with transformers" notebook). A single-task run is simply the
one-task case, so intermediate, multi-task, target and MLM training share one code path.

Encoders are saved with ``save_pretrained`` and loaded with ``from_pretrained`` from a local
folder, exactly as ``xlm-roberta-large`` is: a phase-2 encoder folder is a drop-in replacement
for the pretrained model in phase 3 and in retrieval.

Where the format's stock head does not exist for the model type (transformers' own
``AutoModelFor*`` registry says so), the format's ``fallback_head`` is used: decoders have no
masked-LM head, so the ``text`` format trains a causal LM; and no decoder has a multiple-choice
head, so multiple choice uses ``ChoiceScoringModel``, a sequence classifier with one output
scoring each context+choice sequence, softmax over the choices: the stock head's semantics.

Every model is built by ``load_model``, which asks for torch's fused attention
(``scaled_dot_product_attention``, "sdpa") wherever the architecture has it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, PretrainedConfig
from transformers import logging as hf_logging

from xstilts.task_formats import task_format

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeadSpec:
    """What a task head needs: the task format and, for classifiers and taggers, the labels."""

    format: str
    labels: tuple[str, ...] = field(default=())
    #: Load the head's own weights from the encoder folder (the model's pretrained LM head, which
    #: the +MLM variant keeps training) instead of initialising it; refused if the folder has none.
    pretrained: bool = False


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports and progress bars for the duration of a load or save.

    A fresh head's MISSING keys and an MLM checkpoint's UNEXPECTED ``lm_head`` are expected
    here. The previous settings are restored, so other code still sees transformers' warnings.
    """
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def attention_implementation(model_class: Any, config: PretrainedConfig) -> str:
    """``sdpa`` where the class ``model_class`` builds for ``config`` has torch's fused attention
    path (transformers' own ``_supports_sdpa`` flag), else ``eager``.

    transformers 5 already picks sdpa when no implementation is named and falls back to eager
    without a word; naming it makes the choice independent of that default (training metrics
    record it), and the fallback is decided from the class, never from a list of model families.
    """
    if model_class is ChoiceScoringModel:
        model_class = AutoModelForSequenceClassification
    mapping = getattr(model_class, "_model_mapping", None)  # an AutoModel* class: the config's own class
    concrete = mapping[type(config)] if mapping is not None and type(config) in mapping else model_class
    return "sdpa" if getattr(concrete, "_supports_sdpa", False) else "eager"


def load_model(model_class: Any, source: str | Path | PretrainedConfig, **kwargs: Any) -> Any:
    """``model_class`` from a config (random initialisation) or from a local folder (safetensors
    weights only), with ``attention_implementation``'s attention. Every model xstilts trains,
    evaluates or predicts with is built here."""
    config = source if isinstance(source, PretrainedConfig) else AutoConfig.from_pretrained(source)
    kwargs.setdefault("attn_implementation", attention_implementation(model_class, config))
    if isinstance(source, PretrainedConfig):
        return model_class.from_config(source, **kwargs)
    return model_class.from_pretrained(source, use_safetensors=True, **kwargs)


#: Config key naming a head xstilts built itself, so that loading a saved folder never guesses.
HEAD_KEY = "xstilts_head"
CHOICE_SCORING = "choice_scoring"


class ChoiceScoringModel(nn.Module):
    """Multiple choice for any architecture: one score per context+choice sequence, softmax over choices.

    The stock ``*ForMultipleChoice`` heads (encoders only) score each choice's pooled sequence
    with a one-output linear layer, reshape the scores to ``[batch, choices]`` and take the cross
    entropy; this does the same with the model type's ``*ForSequenceClassification`` (one
    label), which pools the last non-padding token of a decoder. It saves as that plain Hugging
    Face sequence-classifier folder, its config marked ``xstilts_head: choice_scoring``.
    """

    def __init__(self, scorer: nn.Module):
        super().__init__()
        self.scorer = scorer

    @classmethod
    def from_config(cls, config: PretrainedConfig, **kwargs: Any) -> "ChoiceScoringModel":
        config = copy.deepcopy(config)
        config.num_labels = 1
        setattr(config, HEAD_KEY, CHOICE_SCORING)
        return cls(AutoModelForSequenceClassification.from_config(config, **kwargs))

    @classmethod
    def from_pretrained(cls, model_dir: str | Path, **kwargs: Any) -> "ChoiceScoringModel":
        return cls(AutoModelForSequenceClassification.from_pretrained(model_dir, **kwargs))

    @property
    def config(self) -> PretrainedConfig:
        return self.scorer.config

    def forward(self, labels: torch.Tensor | None = None, **inputs: torch.Tensor) -> Any:
        from transformers.modeling_outputs import MultipleChoiceModelOutput

        n_choices = inputs["input_ids"].shape[1]
        flat = {k: v.flatten(0, 1) for k, v in inputs.items()}
        logits = self.scorer(**flat).logits.view(-1, n_choices)
        loss = nn.functional.cross_entropy(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(loss=loss, logits=logits)

    def save_pretrained(self, out_dir: str | Path, **kwargs: Any) -> None:
        self.scorer.save_pretrained(out_dir, **kwargs)


def hf_model(head: nn.Module) -> nn.Module:
    """The Hugging Face model inside a head (the head itself, or a ``ChoiceScoringModel``'s scorer)."""
    return head.scorer if isinstance(head, ChoiceScoringModel) else head


def head_class(fmt: str, config: PretrainedConfig) -> Any:
    """The head class of format ``fmt`` for a model of ``config``'s type.

    The format's stock ``AutoModelFor*`` class where transformers has one for the model type,
    else its ``fallback_head`` (see the module docstring)."""
    entry = task_format(fmt)
    stock = entry.head_class()
    if type(config) in stock._model_mapping or entry.fallback_head is None:
        return stock
    if entry.fallback_head == CHOICE_SCORING:
        return ChoiceScoringModel
    import transformers

    return getattr(transformers, entry.fallback_head)


#: The two model families of the grid, as tables and the paper name them.
ENCODER, DECODER = "encoder", "decoder"


def model_family(config: PretrainedConfig) -> str:
    """``encoder`` or ``decoder`` (decoder-only), read from the model's own config.

    transformers' masked-LM registry decides: every encoder family it ships (BERT, XLM-R,
    DeBERTa, ...) has a masked-LM class, and no decoder-only one (GPT-2, Llama, Qwen2, BLOOM,
    Gemma, Mistral) does. ``is_decoder`` cannot decide: it marks an encoder used as a decoder
    inside an encoder-decoder, and decoder-only configs leave it False.
    """
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return ENCODER if config.model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES else DECODER


class MultiTaskModel(nn.Module):
    """Task heads (stock ``AutoModelFor*`` models) sharing one encoder."""

    def __init__(self, encoder: nn.Module, heads: dict[str, nn.Module]):
        super().__init__()
        self.encoder = encoder
        self.heads = nn.ModuleDict(heads)

    @classmethod
    def build(cls, encoder_source: str | Path | PretrainedConfig, specs: dict[str, HeadSpec],
              pad_token_id: int | None = None) -> "MultiTaskModel":
        """Load the encoder (a local folder, or a config for random init) and add one head per task.

        ``pad_token_id``: the pad id of the tokenizer the batches are padded with. A config that
        names none (hub decoders: Qwen2.5, Llama 3) takes it, so the decoder classifiers pool the
        right token and the saved folders name it; a config naming a different one is refused.
        """
        with quiet_transformers():
            return cls._build(encoder_source, specs, pad_token_id)

    @classmethod
    def _build(cls, encoder_source: str | Path | PretrainedConfig, specs: dict[str, HeadSpec],
               pad_token_id: int | None = None) -> "MultiTaskModel":
        # Weights from safetensors only: a folder holding only pickled weights is refused.
        encoder = load_model(AutoModel, encoder_source)
        config = encoder_source if isinstance(encoder_source, PretrainedConfig) else AutoConfig.from_pretrained(encoder_source)
        if pad_token_id is not None and config.pad_token_id is None:
            config.pad_token_id = encoder.config.pad_token_id = pad_token_id
        elif pad_token_id is not None and config.pad_token_id != pad_token_id:
            raise ValueError(f"the {config.model_type} model config names pad_token_id {config.pad_token_id}, its "
                             f"tokenizer pads with id {pad_token_id}: sequence classifiers would pool a wrong "
                             "position; make config.json's pad_token_id the tokenizer's pad token id")
        if config.pad_token_id is None:
            # Batches are padded, and decoders' sequence classifiers pool the last non-pad token.
            raise ValueError(f"the {config.model_type} model config names no pad_token_id; batched training and "
                             "prediction need a pad token: give the tokenizer one and set config.pad_token_id to it")
        heads = {}
        for name, spec in specs.items():
            head_config = copy.deepcopy(config)
            entry = task_format(spec.format)
            if entry.labelled:
                head_config.id2label = dict(enumerate(spec.labels))
                head_config.label2id = {label: i for i, label in enumerate(spec.labels)}
                # Sequence classifiers infer problem_type on their first forward with labels and
                # write it into their config; fixing it here keeps the saved config.json the same
                # whether or not this process trained (a resume at the last step only evaluates).
                # Every labelled format here is one class per unit (pair or token).
                head_config.problem_type = "single_label_classification"
            if spec.pretrained:
                model = _pretrained_head(encoder_source, spec.format, config)
            else:
                model = load_model(head_class(spec.format, config), head_config)
            inner = hf_model(model)
            # Replace the head model's own (randomly initialised) encoder with the shared one.
            # The shared AutoModel keeps its pooler, which the multiple-choice head needs.
            setattr(inner, inner.base_model_prefix, encoder)
            # The LM head is tied to the input embeddings; re-tie it to the shared ones.
            inner.tie_weights()
            heads[name] = model
        return cls(encoder, heads)

    @classmethod
    def load_head_model(cls, model_dir: str | Path, task: str, fmt: str) -> "MultiTaskModel":
        """A fine-tuned task model saved by ``save_head_model``, as the one-task case."""
        model = load_head_model(model_dir, fmt)
        inner = hf_model(model)
        return cls(getattr(inner, inner.base_model_prefix), {task: model})

    def forward(self, task: str, **batch: torch.Tensor) -> Any:
        head = self.heads[task]
        if "labels" in batch:
            lm_head = masked_lm_head(head)
            if lm_head is not None:
                return masked_positions_loss(head, lm_head, **batch)
        return head(**batch)

    def save_encoder(self, out_dir: str | Path, tokenizer: Any) -> None:
        """Save the shared encoder and tokenizer as a standard Hugging Face model folder."""
        with quiet_transformers():
            self.encoder.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)

    def save_head_model(self, task: str, out_dir: str | Path, tokenizer: Any) -> None:
        """Save one task's full model (encoder + head) as a standard ``AutoModelFor*`` folder."""
        with quiet_transformers():
            self.heads[task].save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)


def _pretrained_head(encoder_source: str | Path | PretrainedConfig, fmt: str, config: PretrainedConfig) -> nn.Module:
    """The format's head model loaded from the encoder folder, head weights included.

    Every weight of the head outside the encoder must be in the folder's checkpoint: a folder
    holding the bare encoder (a phase-2 encoder, or a hub model released without its LM head)
    is refused, since a fresh head would silently be a different experiment."""
    if isinstance(encoder_source, PretrainedConfig):
        raise ValueError("a pretrained head needs the model folder, not a config")
    cls = head_class(fmt, config)
    model, info = load_model(cls, encoder_source, output_loading_info=True)
    inner = hf_model(model)
    missing = [k for k in info["missing_keys"] if not k.startswith(inner.base_model_prefix + ".")]
    if missing:
        raise ValueError(f"{encoder_source}: the checkpoint has no pretrained {cls.__name__} head (missing "
                         f"{', '.join(sorted(missing)[:4])}{' ...' if len(missing) > 4 else ''}); the +MLM variant "
                         "keeps training the model's own LM head, so it needs the released checkpoint with it "
                         "(e.g. the full model.safetensors of the hub repository), or drop this model's +MLM rows")
    return model


def masked_lm_head(head: nn.Module) -> Any | None:
    """The vocabulary head of a stock ``*ForMaskedLM`` model as a function hidden states ->
    logits (XLM-R's ``lm_head``, BERT's and legacy DeBERTa-v2's ``cls``, DeBERTa-v2's
    ``lm_predictions`` with the input embeddings it ties to); None for any other head."""
    import inspect

    inner = hf_model(head)
    if not type(inner).__name__.endswith("ForMaskedLM"):
        return None
    base = getattr(inner, inner.base_model_prefix)
    if getattr(inner.config, "legacy", True) is False and hasattr(inner, "lm_predictions"):
        # DebertaV2ForMaskedLM's non-legacy head takes the word embeddings too (its forward).
        return lambda hidden: inner.lm_predictions(hidden, base.embeddings.word_embeddings)
    others = [m for name, m in inner.named_children() if name != inner.base_model_prefix]
    if len(others) != 1:
        return None
    params = inspect.signature(others[0].forward).parameters.values()
    required = [p for p in params if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return others[0] if len(required) == 1 else None


def masked_positions_loss(head: nn.Module, lm_head: Any, labels: torch.Tensor, **inputs: torch.Tensor) -> Any:
    """The masked-LM loss with vocabulary logits at the masked positions only.

    The stock head computes logits over the whole vocabulary at every position (for XLM-R Large,
    250,002 x 1,024 per token: as much arithmetic as the encoder) and its cross entropy then
    ignores the ~85 % of positions whose label is -100. This is the same loss (the mean over the
    masked positions) from the masked positions' hidden states alone; no logits are returned."""
    from transformers.modeling_outputs import MaskedLMOutput

    from xstilts.features import IGNORE

    inner = hf_model(head)
    hidden = getattr(inner, inner.base_model_prefix)(**inputs)[0]
    masked = labels != IGNORE
    logits = lm_head(hidden[masked])
    loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]).float(), labels[masked])
    return MaskedLMOutput(loss=loss)


def load_head_model(model_dir: str | Path, fmt: str) -> nn.Module:
    """Load a fine-tuned task model saved by ``save_head_model`` (its config says which head it is)."""
    config = AutoConfig.from_pretrained(model_dir)
    cls = ChoiceScoringModel if getattr(config, HEAD_KEY, None) == CHOICE_SCORING else task_format(fmt).head_class()
    with quiet_transformers():
        return load_model(cls, model_dir)


def head_labels(model: nn.Module, fmt: str) -> tuple[str, ...]:
    """The label names of a saved classifier or tagger (its config's id2label); () for other formats."""
    if not task_format(fmt).labelled:
        return ()
    id2label = model.config.id2label
    return tuple(id2label[i] for i in range(len(id2label)))
