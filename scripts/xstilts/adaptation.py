"""Large models: LoRA adapters (peft) and gradient checkpointing, as a job's ``adaptation`` says.

Every phase-2 and phase-3 job carries ``{"lora": None or {r, alpha, dropout, target_modules},
"gradient_checkpointing": bool}`` (``Plan`` fills it from the model's ``lora`` and
``gradient_checkpointing`` options). ``adapt`` applies it to a ``MultiTaskModel`` before
training and ``finish`` undoes it after, so the saved folders are the same plain Hugging Face
folders as without it.

LoRA goes into the shared encoder, in place (peft's ``inject_adapter_in_model``): every head
holds that same module, so all heads see the adapters, while the heads' own layers (outside
the encoder) stay outside peft and are trained in full. peft freezes everything else in the
encoder, its pooler included. ``finish`` merges the adapters into the frozen weights
(W + alpha/r * B A) and puts the plain layers back: the state dict has the original keys again.
"""

from __future__ import annotations

import logging
from typing import Any

from torch import nn

from xstilts.modeling import MultiTaskModel, hf_model

log = logging.getLogger(__name__)


def linear_layer_names(encoder: nn.Module) -> list[str]:
    """The distinct names of an encoder's linear layers (the candidates for ``target_modules``)."""
    return sorted({name.rpartition(".")[2] for name, m in encoder.named_modules() if isinstance(m, nn.Linear)})


def lora_target_modules(encoder: nn.Module, lora: dict[str, Any]) -> list[str]:
    """The module names LoRA adapts: ``lora["target_modules"]``, else peft's default for the model type.

    Raises ``ConfigError`` naming the model type and the option to set when peft has no default."""
    from peft.utils import TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING as DEFAULTS

    from xstilts.config import ConfigError

    if lora.get("target_modules"):
        return list(lora["target_modules"])
    model_type = encoder.config.model_type
    if model_type in DEFAULTS:
        return list(DEFAULTS[model_type])
    raise ConfigError(
        f"peft has no default LoRA target modules for model type {model_type!r}: set models[].lora.target_modules "
        f"to the names of the layers to adapt (usually the attention projections; this model's linear layers: "
        f"{', '.join(linear_layer_names(encoder)) or 'none'})")


def add_lora(model: MultiTaskModel, lora: dict[str, Any]) -> None:
    """Inject LoRA adapters into ``model``'s shared encoder and freeze its other weights (in place)."""
    from peft import LoraConfig, inject_adapter_in_model

    from xstilts.config import ConfigError

    targets = lora_target_modules(model.encoder, lora)
    config = LoraConfig(r=lora["r"], lora_alpha=lora["alpha"], lora_dropout=lora["dropout"], target_modules=targets,
                        bias="none")
    try:
        # In place: the heads keep pointing at this same encoder object.
        inject_adapter_in_model(config, model.encoder)
    except ValueError as e:  # peft: a target module the model does not have
        raise ConfigError(f"LoRA on the {model.encoder.config.model_type} model: {e} (models[].lora.target_modules; "
                          f"this model's linear layers: {', '.join(linear_layer_names(model.encoder))})") from e
    log.info("LoRA r=%d alpha=%g dropout=%g on %s", lora["r"], lora["alpha"], lora["dropout"], ", ".join(targets))


def merge_lora(model: MultiTaskModel) -> int:
    """Merge the encoder's LoRA adapters into its weights and restore the plain layers; the number merged."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    encoder = model.encoder
    layers = [(name, m) for name, m in encoder.named_modules() if isinstance(m, BaseTunerLayer)]
    for name, layer in layers:
        layer.merge(safe_merge=True)  # safe: a non-finite merged weight raises instead of being saved
        parent, _, child = name.rpartition(".")
        setattr(encoder.get_submodule(parent), child, layer.get_base_layer())
    if hasattr(encoder, "peft_config"):
        del encoder.peft_config
    for param in encoder.parameters():
        param.requires_grad_(True)
    return len(layers)


def set_gradient_checkpointing(model: MultiTaskModel, enable: bool) -> None:
    """Turn transformers' gradient (activation) checkpointing on or off in every head and the shared encoder.

    Each head model is a Hugging Face model containing the shared encoder (a ``ChoiceScoringModel``
    its scorer), so enabling it per head covers the encoder and any head-specific layers."""
    from xstilts.config import ConfigError

    for name, head in model.heads.items():
        inner = hf_model(head)
        if not inner.supports_gradient_checkpointing:
            raise ConfigError(f"{type(inner).__name__} (task {name}) does not support gradient checkpointing: "
                              "set models[].gradient_checkpointing to false for this model")
        if enable:
            # Non-reentrant checkpointing: gradients reach LoRA layers behind frozen embeddings.
            inner.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            inner.activation_checkpointing_disable()
            # Enabling also hooked the input embeddings (outputs that require grad); unhook them too.
            inner.disable_input_require_grads()


def adapt(model: MultiTaskModel, adaptation: dict[str, Any]) -> None:
    """Prepare ``model`` for training as the job's ``adaptation`` says (LoRA, gradient checkpointing)."""
    if adaptation["lora"]:
        add_lora(model, adaptation["lora"])
    if adaptation["gradient_checkpointing"]:
        set_gradient_checkpointing(model, True)


def finish(model: MultiTaskModel, adaptation: dict[str, Any]) -> None:
    """Undo ``adapt`` after training: adapters merged into the weights, checkpointing off; ready to save."""
    if adaptation["gradient_checkpointing"]:
        set_gradient_checkpointing(model, False)
    if adaptation["lora"]:
        log.info("merged LoRA adapters of %d layers into the encoder", merge_lora(model))
