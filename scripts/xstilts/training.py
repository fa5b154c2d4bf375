"""Training, evaluation and prediction for every phase (MLM, intermediate, multi-task, target).

One loop serves all phases (after the transformers ``*_no_trainer`` examples, on
``accelerate``): a deterministic schedule draws, for each optimizer step, one task and that
task's next micro-batches; multi-task runs sample tasks in proportion to their (capped)
training sizes, single-task runs are the one-task case. The model is evaluated on dev at a
fixed cadence and the best checkpoint is kept.

The schedule's draw (the effective batch, batch_size x grad_accum) is the science; how a
step's examples are cut into forward passes is a device setting (hparams ``micro_batch_size``,
``forward_passes``), with gradient accumulation making up the rest.

Resumable: a checkpoint (model, optimizer, scheduler, RNG states, position in the schedule,
best-so-far, the forward-pass size in use) is written at every evaluation to a directory outside
Snakemake's outputs. A rerun of a preempted job continues from it and produces the same result
as an uninterrupted run. A checkpoint written under different settings (its fingerprint
differs) is not resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from xstilts.errors import TrainingError  # noqa: F401 (raised here, importable from here)
from xstilts.features import IGNORE, Encoded
from xstilts.task_formats import DEV_METRICS, language_modeling_collator, task_format

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# Task data


@dataclass
class DevSet:
    """A dev split used for selection: where it came from, its records and features."""

    name: str
    records: list[dict[str, Any]]
    encoded: Encoded


@dataclass
class TaskData:
    """Everything the loop needs about one task."""

    name: str
    format: str
    metric: str
    hp: dict[str, Any]
    labels: tuple[str, ...] = ()
    train: Encoded | None = None
    dev: list[DevSet] = field(default_factory=list)
    #: Span QA with unanswerable questions (SQuAD v2.0): predict "" when "no answer" wins.
    allow_null: bool = False
    #: Whether this task's dev score selects the checkpoint (the mean over the selecting tasks).
    #: The +MLM variant evaluates both tasks but selects on one: never a mean of an accuracy and
    #: an LM loss.
    selects: bool = True


# --------------------------------------------------------------------------------------------
# Determinism and devices


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def configure_determinism(threads: int, deterministic: bool) -> None:
    """Fixed thread count and, with ``deterministic`` (hparams), deterministic kernels: same
    inputs, same bytes out.

    CPU kernels are deterministic at a fixed thread count, whatever ``deterministic`` says. On
    CUDA, ``deterministic`` requests deterministic algorithms (they cost some speed); without it
    cuDNN/cuBLAS pick their fastest kernels, whose results vary from run to run by rounding. The
    switch is not flipped on CPU-only machines, where it would only add seconds of imports
    (torch._dynamo) to every job.
    """
    torch.set_num_threads(max(1, threads))
    if torch.cuda.is_available():
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.use_deterministic_algorithms(True, warn_only=True)
        else:
            torch.use_deterministic_algorithms(False)
            torch.backends.cudnn.benchmark = True


def mixed_precision(setting: str) -> str:
    if setting != "auto":
        return setting
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16"
    return "no"


def collator(fmt: str, tokenizer: Any, hp: dict[str, Any]) -> Any:
    """The training collator of a format (``task_formats.TASK_FORMATS``)."""
    entry = task_format(fmt)
    if entry.collator is None:
        raise ValueError(f"format {fmt!r} is not trained (no collator)")
    return entry.collator(tokenizer, hp)


def is_norm(module: nn.Module) -> bool:
    """Whether a module is a normalisation layer: torch's, or a model's own (``*Norm`` classes, RMSNorm)."""
    norms = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase, getattr(nn, "RMSNorm", nn.LayerNorm))
    return isinstance(module, norms) or type(module).__name__.endswith("Norm")


def no_decay_parameters(model: nn.Module) -> set[int]:
    """Ids of the parameters AdamW does not decay: every bias and every normalisation weight."""
    excluded = set()
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            if name == "bias" or is_norm(module):
                excluded.add(id(param))
    return excluded


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decayed parameters, then the excluded ones (``no_decay_parameters``), in model order.

    Frozen parameters (``requires_grad`` False: a LoRA model's base weights) are left out, so the
    optimizer holds no state for them."""
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    excluded = no_decay_parameters(model)
    return [
        {"params": [p for p in params if id(p) not in excluded], "weight_decay": weight_decay},
        {"params": [p for p in params if id(p) in excluded], "weight_decay": 0.0},
    ]


def optimizer_for(model: nn.Module, hp: dict[str, Any], device: torch.device) -> torch.optim.Optimizer:
    """AdamW over ``parameter_groups``: fused (one kernel for all parameters) on CUDA, torch's
    default implementation elsewhere. The update rule is the same; only rounding differs."""
    fused = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(parameter_groups(model, hp["weight_decay"]), lr=hp["learning_rate"],
                             eps=hp["adam_epsilon"], **fused)


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Trainable and total parameters of a model (a tied weight counted once)."""
    params = list(model.parameters())
    return {"trainable": sum(p.numel() for p in params if p.requires_grad), "total": sum(p.numel() for p in params)}


# --------------------------------------------------------------------------------------------
# The schedule


def steps_for(n_examples: int, hp: dict[str, Any]) -> int:
    """Optimizer steps of a task: epochs x ceil(N / effective batch) (jiant's max_steps)."""
    per_epoch = math.ceil(n_examples / (hp["batch_size"] * hp["grad_accum"]))
    return max(1, math.ceil(hp["epochs"] * per_epoch))


def total_steps(tasks: Sequence[TaskData], hp: dict[str, Any]) -> int:
    if hp.get("max_steps"):
        return int(hp["max_steps"])
    return sum(steps_for(len(t.train.features), t.hp) for t in tasks)


def schedule(tasks: Sequence[TaskData], seed: int, examples_cap: int | None = None,
             shares: Sequence[float] | None = None) -> Iterator[tuple[int, list[list[int]]]]:
    """Endless deterministic stream of (task index, micro-batches of example indices).

    Each step draws its task in proportion to the tasks' (capped) training sizes, or with the
    given ``shares`` (the +MLM variant's task/LM split)."""
    sizes = [len(t.train.features) for t in tasks]
    if shares is not None:
        weights = np.array(shares, dtype=float)
    else:
        weights = np.array([min(n, examples_cap) if examples_cap else n for n in sizes], dtype=float)
    probs = weights / weights.sum()
    task_rng = np.random.default_rng([seed, 1])
    streams = [_batches(n, t.hp["batch_size"], np.random.default_rng([seed, 2, i]), t.hp.get("length_grouping", 0),
                        t.train.features) for i, (n, t) in enumerate(zip(sizes, tasks))]
    while True:
        i = int(task_rng.choice(len(tasks), p=probs)) if len(tasks) > 1 else 0
        yield i, [next(streams[i]) for _ in range(tasks[i].hp["grad_accum"])]


def _batches(n: int, batch_size: int, rng: np.random.Generator, grouping: int = 0,
             features: Sequence[dict[str, Any]] = ()) -> Iterator[list[int]]:
    """Endless batches of example indices, a new random order each epoch.

    ``grouping`` > 1 (hparams ``length_grouping``) groups similar lengths, as transformers'
    ``LengthGroupedSampler`` does: each epoch's shuffled order is cut into groups of ``grouping``
    batches, each group is sorted by length (longest first; ties keep the shuffled order) and cut
    into batches, and the epoch's batches are shuffled. Every example is still seen once per
    epoch in a seeded order (so a resumed run replays it); a batch pads to its longest example,
    which is now close to its shortest.
    """
    sizes = feature_lengths(features) if grouping > 1 else None
    while True:
        order = rng.permutation(n)
        if sizes is None:
            for start in range(0, n, batch_size):
                yield order[start : start + batch_size].tolist()
            continue
        batches = []
        for start in range(0, n, grouping * batch_size):
            group = order[start : start + grouping * batch_size]
            group = group[np.argsort(-sizes[group], kind="stable")]
            batches += [group[i : i + batch_size] for i in range(0, len(group), batch_size)]
        for b in rng.permutation(len(batches)):
            yield batches[b].tolist()


def feature_lengths(features: Sequence[dict[str, Any]]) -> np.ndarray:
    """Tokens per training example: its input length, or its longest choice (multiple choice)."""
    def length(ids: Any) -> int:
        return max((len(c) for c in ids), default=0) if ids and isinstance(ids[0], list) else len(ids)

    return np.array([length(f["input_ids"]) for f in features], dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Forward passes of a step (hparams micro_batch_size)


def forward_passes(batches: list[list[int]], micro_batch_size: int, batch_size: int,
                   lengths: np.ndarray) -> list[list[int]]:
    """The forward passes of one optimizer step, drawn by ``schedule`` as ``batches``.

    When ``micro_batch_size`` is the schedule's ``batch_size`` (the default), the schedule's
    batches themselves. Otherwise the step's examples, longest first (ties in schedule order),
    cut into passes of ``micro_batch_size``: the same examples, so the same step, with each pass
    padded to about its own length. ``step_weights`` gives each pass its share of the step.
    """
    if micro_batch_size == batch_size:
        return batches
    examples = [i for b in batches for i in b]
    examples.sort(key=lambda i: -lengths[i])  # stable
    return [examples[start : start + micro_batch_size] for start in range(0, len(examples), micro_batch_size)]


def step_weights(passes: list[list[int]], regrouped: bool) -> list[float | None]:
    """Each pass's factor on its mean loss, so that the step's loss is a mean over the step.

    The schedule's own batches (``regrouped`` False) keep jiant's weighting, 1 / grad_accum each
    (None: the loss is divided by the number of passes, bit for bit as before). Regrouped passes
    weigh by their share of the step's examples: the mean over the step's examples for losses
    that are a mean over examples. The two agree except in a step holding an epoch's last,
    shorter batch, whose examples jiant's weighting counts more. For a loss that is a mean over
    tokens (tagging, language modelling), the mean of the passes' token means weighted by
    examples differs slightly from a split by the schedule's batches.
    """
    if not regrouped:
        return [None] * len(passes)
    n = sum(len(p) for p in passes)
    return [len(p) / n for p in passes]


#: ``micro_batch_size: auto`` on CUDA keeps the largest pass, optimizer state included, within
#: this share of the device's memory (the rest absorbs fragmentation and other batches' shapes).
AUTO_MEMORY_SHARE = 0.9


def largest_fitting(effective: int, fits: Callable[[int], bool]) -> int:
    """The largest forward-pass size that ``fits``, among the even splits of the effective batch
    (effective / k rounded up, k = 1, 2, 3, ...), largest first."""
    for size in sorted({math.ceil(effective / k) for k in range(1, effective + 1)}, reverse=True):
        if fits(size):
            return size
    raise TrainingError(f"not even one example fits in device memory ({effective} examples per step); use a "
                        "smaller max_seq_length, gradient_checkpointing or LoRA (README \"Large models\")")


#: ``micro_batch_size: auto`` without a GPU: passes of at most this many examples. A CPU's time
#: follows the FLOPs, padding included, and not the number of passes, so a step's examples,
#: sorted by length, are better cut small: the demo-sized encoder of scripts/bench_training.py
#: trained about 1.5 x faster in passes of 8 or 16 than in one pass of 32 (2026-12-07, 2-core
#: reference machine, busy).
CPU_AUTO_MICRO_BATCH = 8


def micro_batch_size(task: TaskData, fits: Callable[[int], bool] | None) -> int:
    """The forward-pass size of ``task`` (hparams ``micro_batch_size``).

    null: the schedule's batch_size. ``auto``: on CUDA (``fits`` given) the largest even split of
    the effective batch that ``fits``; elsewhere the effective batch up to ``CPU_AUTO_MICRO_BATCH``."""
    setting = task.hp["micro_batch_size"]
    effective = task.hp["batch_size"] * task.hp["grad_accum"]
    if setting is None:
        return task.hp["batch_size"]
    if setting != "auto":
        return int(setting)
    return min(effective, CPU_AUTO_MICRO_BATCH) if fits is None else largest_fitting(effective, fits)


def memory_probe(model: Any, task: TaskData, collate: Any, device: torch.device, autocast: Any,
                 optimizer: torch.optim.Optimizer) -> Callable[[int], bool]:
    """``fits(size)`` for ``micro_batch_size: auto`` on CUDA: a forward and backward pass over
    the task's ``size`` longest training examples (an epoch's costliest pass) runs without running
    out of memory, and its peak plus the AdamW state still to be allocated stays within
    ``AUTO_MEMORY_SHARE`` of the device. The probe leaves weights, gradients and RNG states as
    they were, so a job that probes trains exactly as one told the size."""
    lengths = feature_lengths(task.train.features)
    order = np.argsort(-lengths, kind="stable")
    trainable = [p for p in model.parameters() if p.requires_grad]
    # AdamW keeps two fp32 moments per trainable weight, allocated at the first step.
    state_bytes = 0 if optimizer.state else 2 * sum(p.numel() * 4 for p in trainable)
    budget = AUTO_MEMORY_SHARE * torch.cuda.get_device_properties(device).total_memory

    def fits(size: int) -> bool:
        rng = _rng_state()
        model.train()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            batch = collate([task.train.features[i] for i in order[:size].tolist()])
            with autocast():
                loss = model(task.name, **_to_device(batch, device)).loss
            loss.backward()
            peak = torch.cuda.max_memory_allocated(device)
        except torch.cuda.OutOfMemoryError:
            peak = None
        finally:
            model.zero_grad(set_to_none=True)
            _set_rng_state(rng)
        torch.cuda.empty_cache()
        ok = peak is not None and peak + state_bytes <= budget
        log.info("micro_batch_size auto, %s: %d examples of up to %d tokens %s", task.name, size,
                 int(lengths[order[0]]), "fit" if ok else "do not fit")
        return ok

    return fits


# --------------------------------------------------------------------------------------------
# Checkpoints


def fingerprint(**parts: Any) -> str:
    """Hash of everything that determines a training run; guards resuming from stale state."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state() -> dict[str, Any]:
    # Plain lists, tuples, numbers and tensors only, so the checkpoint loads with weights_only=True
    # (no pickled objects are ever executed on resume).
    name, keys, pos, has_gauss, cached = np.random.get_state()
    numpy_state = [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
    state = {"python": random.getstate(), "numpy": numpy_state, "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------------------------
# Prediction and evaluation


def _to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """A batch on ``device``. To CUDA, from page-locked memory without waiting: the copy overlaps
    the work queued before it, and the host goes on to collate the next batch."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}


@torch.no_grad()
def forward_all(model: Any, task: str, fmt: str, encoded: Encoded, tokenizer: Any, batch_size: int,
                device: torch.device, autocast: Any) -> list[Any]:
    """Run the model over all features (length-sorted batches); outputs in feature order."""
    model.eval()
    entry = task_format(fmt)
    collate = entry.predict_collator(tokenizer, {})
    inputs = set(tokenizer.model_input_names)
    lengths = [entry.feature_length(f) for f in encoded.features]
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    outputs: list[Any] = [None] * len(order)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = collate([{k: v for k, v in encoded.features[i].items() if k in inputs} for i in idx])
        batch.pop("labels", None)
        with autocast():
            out = model(task, **_to_device(batch, device))
        for i, row in zip(idx, entry.outputs(out)):
            outputs[i] = row
    return outputs


def decode(task: TaskData, records: list[dict[str, Any]], encoded: Encoded, outputs: list[Any]) -> list[Any] | dict[str, str]:
    """Model outputs to predictions: label strings, choice indices, tag lists or answer texts."""
    entry = task_format(task.format)
    if entry.decode is None:
        raise ValueError(f"cannot decode format {task.format!r}")
    return entry.decode(task, records, encoded, outputs)


def score(task: TaskData, records: list[dict[str, Any]], predictions: Any) -> dict[str, float]:
    """Dev metrics of predictions; ``score`` is the selection criterion (higher is better)."""
    if task.metric not in DEV_METRICS:
        raise ValueError(f"unknown dev metric {task.metric!r}; known: {', '.join(DEV_METRICS)}")
    return DEV_METRICS[task.metric](records, predictions)


@torch.no_grad()
def mlm_loss(model: Any, task: TaskData, dev: DevSet, tokenizer: Any, device: torch.device, autocast: Any) -> float:
    """Mean LM loss on dev, comparable across evals: masked LM with fixed masks (a seeded collator),
    or a causal LM's next-token loss (``task_formats.language_modeling_collator``)."""
    model.eval()
    collate = language_modeling_collator(tokenizer, task.hp, seed=0)
    bs = task.hp.get("eval_batch_size") or 2 * task.hp["batch_size"]
    total, count = 0.0, 0
    for start in range(0, len(dev.encoded.features), bs):
        batch = collate(dev.encoded.features[start : start + bs])
        with autocast():
            out = model(task.name, **_to_device(batch, device))
        n = int((batch["labels"] != IGNORE).sum())
        total += float(out.loss) * n
        count += n
    return total / max(count, 1)


def evaluate(model: Any, task: TaskData, tokenizer: Any, device: torch.device, autocast: Any,
             max_examples: int | None = None) -> dict[str, Any]:
    """Dev metrics of one task, averaged over its dev sets (each set's own metrics kept)."""
    if task.metric == "mlm_loss":
        losses = {d.name: mlm_loss(model, task, d, tokenizer, device, autocast) for d in task.dev}
        loss = float(np.mean(list(losses.values())))
        return {"score": -loss, "loss": loss, "sets": losses}
    bs = task.hp.get("eval_batch_size") or 2 * task.hp["batch_size"]
    per_set = {}
    for d in task.dev:
        records, encoded = d.records, d.encoded
        if max_examples and len(records) > max_examples:
            records, encoded = _subset(records, encoded, max_examples)
        outputs = forward_all(model, task.name, task.format, encoded, tokenizer, bs, device, autocast)
        per_set[d.name] = score(task, records, decode(task, records, encoded, outputs))
    return {"score": float(np.mean([s["score"] for s in per_set.values()])), "sets": per_set}


def _subset(records: list[dict[str, Any]], encoded: Encoded, n: int) -> tuple[list[dict[str, Any]], Encoded]:
    keep = [i for i, ex in enumerate(encoded.example_index) if ex < n]
    return records[:n], Encoded(
        [encoded.features[i] for i in keep],
        [encoded.example_index[i] for i in keep],
        [encoded.word_ids[i] for i in keep] if encoded.word_ids else [],
        [encoded.offsets[i] for i in keep] if encoded.offsets else [],
        [encoded.cls_index[i] for i in keep] if encoded.cls_index else [],
    )


# --------------------------------------------------------------------------------------------
# The loop


@dataclass
class Progress:
    """Throttled progress lines: step, share done, loss, learning rate, elapsed time, ETA."""

    total: int
    every_seconds: float = 15.0
    start: float = field(default_factory=time.time)
    last: float = 0.0

    def update(self, step: int, loss: float, lr: float, done_before: int = 0, force: bool = False) -> None:
        now = time.time()
        if not force and now - self.last < self.every_seconds and step not in (1, self.total):
            return
        self.last = now
        elapsed = now - self.start
        rate = (step - done_before) / elapsed if elapsed > 0 else 0.0
        eta = (self.total - step) / rate if rate > 0 else float("nan")
        log.info("step %d/%d (%.0f%%) loss %.4f lr %.2e elapsed %.0fs eta %.0fs",
                 step, self.total, 100 * step / self.total, loss, lr, elapsed, eta)


def train(model: Any, tasks: list[TaskData], tokenizer: Any, hp: dict[str, Any], seed: int,
          checkpoint_dir: str | Path, run_fingerprint: str, examples_cap: int | None = None,
          name: str | None = None, shares: Sequence[float] | None = None) -> dict[str, Any]:
    """Train ``model`` on ``tasks``; on return it holds the best dev checkpoint.

    ``hp`` holds the run-level settings (learning rate, schedule, precision, evaluation
    cadence, patience); each task's ``hp`` its batch size, sequence length and epochs.
    ``name`` names the job in errors (the rule and its output; default: the checkpoint dir).
    Returns the training history, the best checkpoint's dev metrics and the trainable and
    total parameter counts of the model as trained (with its adapters, if any).

    Raises ``TrainingError`` as soon as a training loss is not finite, before that step
    changes the weights or writes a checkpoint: the last checkpoint stays the last good state.
    """
    from accelerate import Accelerator

    checkpoint_dir = Path(checkpoint_dir)
    name = name or f"training in {checkpoint_dir}"
    set_seed(seed)
    accelerator = Accelerator(mixed_precision=mixed_precision(hp["mixed_precision"]), cpu=not torch.cuda.is_available())
    device = accelerator.device
    n_steps = total_steps(tasks, hp)
    optimizer = optimizer_for(model, hp, device)
    # Imported here: transformers.optimization pulls in its trainer utilities and peft (1.7 CPU-s),
    # which a prediction job, also a user of this module, never needs.
    from transformers import get_linear_schedule_with_warmup

    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp["warmup_ratio"] * n_steps), n_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    collators = {t.name: collator(t.format, tokenizer, t.hp) for t in tasks}
    epochs = max(t.hp["epochs"] for t in tasks)
    eval_every = hp["eval_every_steps"] or max(1, round(n_steps / max(1.0, epochs)))

    state = {"step": 0, "best_score": None, "best_step": 0, "bad_evals": 0, "history": [], "best_results": None,
             "micro_batch_size": None}
    state_file, best_file = checkpoint_dir / "state.pt", checkpoint_dir / "best.pt"
    if state_file.exists():
        saved = torch.load(state_file, map_location="cpu", weights_only=True)
        if saved.get("fingerprint") == run_fingerprint:
            accelerator.unwrap_model(model).load_state_dict(saved["model"])
            optimizer.load_state_dict(saved["optimizer"])
            scheduler.load_state_dict(saved["scheduler"])
            _set_rng_state(saved["rng"])
            state = saved["state"]
            log.info("resuming from %s at step %d/%d", state_file, state["step"], n_steps)
        else:
            log.warning("ignoring checkpoint %s: written for different settings", checkpoint_dir)
            shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    if state["micro_batch_size"] is None:  # a resumed job keeps the size it started with
        state["micro_batch_size"] = {
            t.name: micro_batch_size(t, memory_probe(model, t, collators[t.name], device, accelerator.autocast, optimizer)
                                     if device.type == "cuda" else None)
            for t in tasks}
    micro = state["micro_batch_size"]
    lengths = {t.name: feature_lengths(t.train.features) for t in tasks}

    log.info("forward passes of %s examples", ", ".join(f"{t.name}: {micro[t.name]}" for t in tasks))
    log.info("training %s for %d steps (%s), evaluating every %d steps on %s",
             "+".join(t.name for t in tasks), n_steps, ", ".join(f"{t.name}: {len(t.train.features)} examples" for t in tasks),
             eval_every, device)
    stream = schedule(tasks, seed, examples_cap, shares)
    for _ in range(state["step"]):  # replay the schedule up to the resumed position
        next(stream)
    progress = Progress(n_steps)
    resumed_at = state["step"]
    running = []
    stop = False
    while state["step"] < n_steps and not stop:
        task_i, batches = next(stream)
        task = tasks[task_i]
        passes = forward_passes(batches, micro[task.name], task.hp["batch_size"], lengths[task.name])
        losses = train_step(model, task, passes, collators[task.name], device, accelerator,
                            regrouped=passes is not batches)
        bad = next((v for v in losses if not math.isfinite(v)), None)
        if bad is not None:
            raise TrainingError(_non_finite_message(name, bad, state["step"] + 1, n_steps, task.name,
                                                    hp["learning_rate"], accelerator.mixed_precision, checkpoint_dir))
        optimizer_step(model, accelerator, optimizer, scheduler, hp["max_grad_norm"])
        state["step"] += 1
        running.append(sum(losses))
        progress.update(state["step"], float(np.mean(running[-50:])), scheduler.get_last_lr()[0], resumed_at)
        if state["step"] % eval_every == 0 or state["step"] == n_steps:
            unwrapped = accelerator.unwrap_model(model)
            results = {t.name: evaluate(unwrapped, t, tokenizer, device, accelerator.autocast, hp["eval_max_examples"])
                       for t in tasks}
            current = float(np.mean([results[t.name]["score"] for t in tasks if t.selects]))
            improved = state["best_score"] is None or current > state["best_score"]
            state["history"].append({"step": state["step"], "train_loss": float(np.mean(running)), "dev_score": current,
                                     "dev": {k: {m: v for m, v in r.items() if m != "sets"} for k, r in results.items()}})
            running = []
            log.info("eval at step %d: dev score %.3f%s", state["step"], current, " (best)" if improved else "")
            if improved:
                state.update(best_score=current, best_step=state["step"], bad_evals=0, best_results=results)
                _atomic_save(unwrapped.state_dict(), best_file)
            else:
                state["bad_evals"] += 1
                if hp["patience"] and state["bad_evals"] >= hp["patience"]:
                    log.info("early stopping: no dev improvement in %d evaluations", hp["patience"])
                    stop = True
            _atomic_save({"fingerprint": run_fingerprint, "model": unwrapped.state_dict(),
                          "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                          "rng": _rng_state(), "state": state}, state_file)
    unwrapped = accelerator.unwrap_model(model)
    unwrapped.load_state_dict(torch.load(best_file, map_location="cpu", weights_only=True))
    if hp["eval_max_examples"] is None and state["best_results"] is not None:
        final = state["best_results"]  # the best evaluation already used every dev example
    else:
        final = {t.name: evaluate(unwrapped, t, tokenizer, device, accelerator.autocast) for t in tasks}
    log.info("best checkpoint: step %d; full dev: %s", state["best_step"],
             ", ".join(f"{k} {v['score']:.3f}" for k, v in final.items()))
    return {"steps": state["step"], "best_step": state["best_step"], "history": state["history"],
            "dev": final, "device": str(device), "mixed_precision": accelerator.mixed_precision,
            "micro_batch_size": micro, "attention": attention_implementations(unwrapped),
            "parameters": parameter_counts(unwrapped)}


def train_step(model: Any, task: TaskData, passes: list[list[int]], collate: Any, device: torch.device,
               accelerator: Any, regrouped: bool) -> list[float]:
    """The forward and backward passes of one optimizer step; gradients accumulate in the model.

    Returns each pass's weighted loss (``step_weights``), read from the device once, after the
    last pass, so that on CUDA the host collates and copies the next pass while the device
    computes. The caller checks them before the optimizer step."""
    model.train()
    weighted = []
    for indices, weight in zip(passes, step_weights(passes, regrouped)):
        batch = collate([task.train.features[i] for i in indices])
        with accelerator.autocast():
            loss = model(task.name, **_to_device(batch, device)).loss
        loss = loss / len(passes) if weight is None else loss * weight
        accelerator.backward(loss)
        weighted.append(loss.detach().float())
    return torch.stack(weighted).tolist()


def optimizer_step(model: Any, accelerator: Any, optimizer: Any, scheduler: Any, max_grad_norm: float) -> None:
    """Clip the accumulated gradients, update the weights and the learning rate, clear the gradients."""
    if max_grad_norm:
        accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def attention_implementations(model: nn.Module) -> list[str]:
    """The attention implementations in use (``modeling.load_model``), for the metrics."""
    return sorted({m.config._attn_implementation for m in model.modules()
                   if getattr(getattr(m, "config", None), "_attn_implementation", None)})


def _non_finite_message(name: str, loss: float, step: int, n_steps: int, task: str, learning_rate: float,
                        precision: str, checkpoint_dir: Path) -> str:
    return (
        f"{name}: the training loss is {loss} at step {step}/{n_steps} (task {task}); stopping before this step "
        f"changes the weights (checkpoints in {checkpoint_dir} hold the last finite state, if any). Likely causes: "
        f"a damaged model or data file (run `xstilts verify`); a learning rate too high for this model "
        f"(learning_rate {learning_rate}); fp16 overflow (mixed precision: {precision!r}; try 'bf16' or 'no')."
    )


def predict(model: Any, task: TaskData, records: list[dict[str, Any]], encoded: Encoded, tokenizer: Any) -> Any:
    """Predictions for records (same decoding as dev evaluation)."""
    device = next(model.parameters()).device
    mp = mixed_precision(task.hp["mixed_precision"])
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mp)

    def autocast():
        return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)

    bs = task.hp.get("eval_batch_size") or 2 * task.hp["batch_size"]
    outputs = forward_all(model, task.name, task.format, encoded, tokenizer, bs, device, autocast)
    return decode(task, records, encoded, outputs)
