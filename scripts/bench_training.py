#!/usr/bin/env python
"""Benchmark training and prediction: xstilts' own loop against transformers' ``Trainer`` at jiant's settings.

Both sides train the same randomly initialised sequence-pair classifier (speed does not depend
on the weights) on the same synthetic MNLI-like data: random token ids whose lengths follow
``LENGTH_HISTOGRAM`` (an approximation, see there), 3 labels.

- **xstilts**: the real training step (``training.forward_passes``, ``train_step``,
  ``optimizer_step`` with the loop's schedule, collator, ``optimizer_for`` and model loading) at
  the paper preset's effective batch 4 x 8, with ``micro_batch_size: auto``, batches grouped by
  length (``--length-grouping``, also measured without), bf16 autocast on GPUs that support it,
  fused AdamW on CUDA and SDPA attention. Prediction: ``training.forward_all`` (length-sorted
  batches of ``--eval-batch-size``).
- **baseline**: ``transformers.Trainer`` with jiant's settings, as a user would set them: per-device
  batch 4, gradient accumulation 8, every input padded to 256 tokens (jiant's fixed-length
  features), bf16 on GPUs that support it, everything else the Trainer's defaults (its default
  optimizer and attention included). Prediction: ``Trainer.predict``, the same fixed padding,
  its default evaluation batch of 8.

Throughput counts real tokens (attention-mask ones), never padding, over ``--steps`` optimizer
steps after ``--warmup`` untimed ones. MFU = real tokens/s x model FLOPs per token / the device's
peak: 6 x non-embedding parameters + 12 x layers x hidden x sequence length per trained token
(2 x and 4 x for prediction), the sequence length being each example's own (the estimate of
``scripts/estimate_grid.py``). The peak comes from ``PEAK_TFLOPS`` by GPU name, or
``--peak-tflops``; on a CPU without it, MFU is n/a.

    python scripts/bench_training.py                                   # tiny model, CPU, < 1 min (CI)
    python scripts/bench_training.py --model xlmr-large --record       # on a GPU; writes the record to
                                                                       # benchmarks/training/<model>-<device-slug>.json
    python scripts/bench_training.py --model qwen2.5-0.5b --record out.json

``--record [PATH]`` writes {"date", "device", "model", "train": {...}, "predict": {...}, "settings",
"torch", "transformers"}; without PATH it goes to benchmarks/training/<model>-<device-slug>.json
of the repository (e.g. benchmarks/training/xlmr-large-nvidia-h100-80gb-hbm3.json), where
scripts/estimate_grid.py looks for it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import gc
import json
import platform
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

#: Token lengths of MNLI training pairs (premise + hypothesis, XLM-R's SentencePiece, special
#: tokens included, truncated at 256) as (lowest, highest + 1, share of pairs). NOT MEASURED: no
#: network and no MNLI copy were available when this was written (2026-12-07). The shape is an
#: approximation built from the MultiNLI paper's mean sentence lengths (Williams et al. 2018,
#: NAACL, corpus statistics table: premises about 22 words, hypotheses about 11, quoted from
#: memory), an assumed 1.25 SentencePiece pieces per English word plus 4 special tokens (mean
#: about 46), and a right tail of long spoken-genre premises. Its mean is 48.0 tokens, close
#: to estimate_grid.py's assumed 55 tokens per MNLI example padded to the longest of 4. Replace it
#: by a measured histogram (features.encode_pairs over the converted MNLI) when the data is at hand.
LENGTH_HISTOGRAM = [
    (8, 16, 0.03), (16, 24, 0.09), (24, 32, 0.16), (32, 40, 0.17), (40, 48, 0.16), (48, 56, 0.115),
    (56, 64, 0.08), (64, 80, 0.09), (80, 96, 0.05), (96, 128, 0.04), (128, 192, 0.012), (192, 257, 0.003),
]

#: Peak dense (no sparsity) bf16 tensor throughput in TFLOP/s, from NVIDIA's data sheets, by a
#: substring of torch.cuda.get_device_name() (the longest matching key wins).
PEAK_TFLOPS = {"H100 PCIe": 756.0, "H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}

PAD, BOS, EOS = 1, 0, 2  # XLM-R's ids; every model here is told to pad with PAD
MAX_LENGTH = 256  # jiant's max_seq_length for MNLI


def _xlmr(vocab: int, hidden: int, layers: int, heads: int, ffn: int) -> Any:
    from transformers import XLMRobertaConfig

    return XLMRobertaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=ffn, max_position_embeddings=MAX_LENGTH + 2 + 256, type_vocab_size=1,
                            layer_norm_eps=1e-5, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)


def _qwen25_05b() -> Any:
    # Qwen/Qwen2.5-0.5B config.json (hub, as of 2024-09): hidden 896, 24 layers, 14 heads with 2
    # key/value heads, feed-forward 4864, vocabulary 151936, tied embeddings, rope theta 1e6.
    # pad_token_id is this benchmark's PAD (the hub config names none; xstilts sets the tokenizer's).
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                       num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, pad_token_id=PAD,
                       bos_token_id=BOS, eos_token_id=EOS)


#: --model: a config factory (random initialisation).
MODELS: dict[str, Callable[[], Any]] = {
    # A small XLM-R-like encoder for CPUs and CI.
    "tiny": lambda: _xlmr(1000, 64, 2, 2, 256),
    # FacebookAI/xlm-roberta-large config.json: 24 layers x 1024 hidden x 4096 feed-forward, 16
    # heads, vocabulary 250002.
    "xlmr-large": lambda: _xlmr(250002, 1024, 24, 16, 4096),
    "qwen2.5-0.5b": _qwen25_05b,
}

LABELS = ("entailment", "neutral", "contradiction")


def sample_lengths(n: int, rng: np.random.Generator) -> np.ndarray:
    bins = np.array([(lo, hi) for lo, hi, _ in LENGTH_HISTOGRAM])
    shares = np.array([s for _, _, s in LENGTH_HISTOGRAM])
    which = rng.choice(len(bins), size=n, p=shares / shares.sum())
    return np.minimum(rng.integers(bins[which, 0], bins[which, 1]), MAX_LENGTH)


def make_features(n: int, vocab: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Pair-classification features as ``features.encode_pairs`` makes them (ids never PAD/BOS/EOS)."""
    out = []
    for length in sample_lengths(n, rng):
        ids = [BOS] + rng.integers(5, vocab, size=int(length) - 2).tolist() + [EOS]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids), "labels": int(rng.integers(len(LABELS)))})
    return out


def make_tokenizer() -> Any:
    """A word-level tokenizer that only pads (with XLM-R's PAD id); the data is token ids already."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<s>": BOS, "<pad>": PAD, "</s>": EOS, "<unk>": 3}
    return PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")), bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                                   model_input_names=["input_ids", "attention_mask"])


def non_embedding_parameters(model: torch.nn.Module) -> int:
    embedded = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedded)


def flops_per_token(params: int, layers: int, hidden: int, lengths: np.ndarray, training: bool) -> float:
    """Model FLOPs per real token (estimate_grid.py's formula); training = 3 x forward."""
    seq = float((lengths.astype(float) ** 2).sum() / lengths.sum())  # attention span, weighted per token
    forward = 2 * params + 4 * layers * hidden * seq
    return 3 * forward if training else forward


def device_name() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def peak_flops(name: str, override: float | None, gpu: bool = True) -> float | None:
    """FLOP/s: ``override`` (TFLOP/s), else ``PEAK_TFLOPS`` for a GPU named ``name``; None if unknown."""
    if override:
        return override * 1e12
    if not gpu:
        return None
    matches = [k for k in PEAK_TFLOPS if k in name]
    return PEAK_TFLOPS[max(matches, key=len)] * 1e12 if matches else None


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def bench_xstilts(config: Any, tokenizer: Any, train_features: list[dict[str, Any]], predict_features: list[dict[str, Any]],
                  args: argparse.Namespace, grouping: int) -> dict[str, Any]:
    """Tokens/s of xstilts' training step and of its prediction, at the paper preset's effective batch."""
    from accelerate import Accelerator
    from transformers import get_linear_schedule_with_warmup

    from xstilts import training
    from xstilts.config import hparam_defaults
    from xstilts.features import Encoded
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.tasks import PAIR

    hp = {**hparam_defaults(), "batch_size": 4, "grad_accum": 8, "max_seq_length": MAX_LENGTH, "learning_rate": 1e-5,
          "micro_batch_size": args.micro_batch_size, "length_grouping": grouping, "mixed_precision": "auto",
          "eval_batch_size": args.eval_batch_size}
    task = training.TaskData("bench", PAIR, "accuracy", hp, LABELS, train=Encoded(train_features))
    training.set_seed(0)
    accelerator = Accelerator(mixed_precision=training.mixed_precision(hp["mixed_precision"]),
                              cpu=not torch.cuda.is_available())
    device = accelerator.device
    with torch.device(device) if device.type == "cuda" else contextlib.nullcontext():
        model = MultiTaskModel.build(config, {"bench": HeadSpec(PAIR, LABELS)}, pad_token_id=PAD)
    n_steps = args.warmup + args.steps
    optimizer = training.optimizer_for(model, hp, device)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(hp["warmup_ratio"] * n_steps), n_steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    collate = training.collator(PAIR, tokenizer, hp)
    fits = (training.memory_probe(model, task, collate, device, accelerator.autocast, optimizer)
            if device.type == "cuda" else None)
    micro = training.micro_batch_size(task, fits)
    lengths = training.feature_lengths(train_features)
    stream = training.schedule([task], 0)
    tokens = 0
    start = 0.0
    for step in range(n_steps):
        if step == args.warmup:
            _sync()
            start = time.perf_counter()
        _, batches = next(stream)
        passes = training.forward_passes(batches, micro, hp["batch_size"], lengths)
        training.train_step(model, task, passes, collate, device, accelerator, regrouped=passes is not batches)
        training.optimizer_step(model, accelerator, optimizer, scheduler, hp["max_grad_norm"])
        if step >= args.warmup:
            tokens += int(sum(lengths[i] for b in batches for i in b))
    _sync()
    train_s = time.perf_counter() - start
    unwrapped = accelerator.unwrap_model(model)
    encoded = Encoded(predict_features, list(range(len(predict_features))))
    _sync()
    start = time.perf_counter()
    training.forward_all(unwrapped, "bench", PAIR, encoded, tokenizer, hp["eval_batch_size"], device, accelerator.autocast)
    _sync()
    predict_s = time.perf_counter() - start
    result = {"train_tokens_per_s": tokens / train_s, "predict_tokens_per_s": _real(predict_features) / predict_s,
              "micro_batch_size": micro, "mixed_precision": accelerator.mixed_precision,
              "attention": training.attention_implementations(unwrapped), "optimizer": type(optimizer.optimizer).__name__
              + (" (fused)" if optimizer.optimizer.defaults.get("fused") else "")}
    del model, optimizer, unwrapped
    _free()
    return result


def _real(features: list[dict[str, Any]]) -> int:
    return sum(len(f["input_ids"]) for f in features)


def bench_trainer(config: Any, tokenizer: Any, train_features: list[dict[str, Any]],
                  predict_features: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """Tokens/s of transformers' Trainer at jiant's settings (fixed padding to 256)."""
    from transformers import (AutoModelForSequenceClassification, DataCollatorWithPadding, Trainer, TrainerCallback,
                              TrainingArguments)

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    n_steps = args.warmup + args.steps
    marks: dict[str, float] = {}

    class Counting(Trainer):
        real_tokens = torch.zeros((), dtype=torch.long)

        def compute_loss(self, model, inputs, *rest, **kwargs):  # type: ignore[no-untyped-def]
            if model.training:
                Counting.real_tokens = Counting.real_tokens.to(inputs["attention_mask"].device) + inputs["attention_mask"].sum()
            return super().compute_loss(model, inputs, *rest, **kwargs)

    class Clock(TrainerCallback):
        def on_step_end(self, targs, state, control, **kwargs):  # type: ignore[no-untyped-def]
            if state.global_step in (args.warmup, n_steps):
                _sync()
                key = "start" if state.global_step == args.warmup else "end"
                marks[key], marks[key + "_tokens"] = time.perf_counter(), float(Counting.real_tokens)

    torch.manual_seed(0)
    config = copy.deepcopy(config)
    config.id2label, config.label2id = dict(enumerate(LABELS)), {label: i for i, label in enumerate(LABELS)}
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with torch.device(device) if device.type == "cuda" else contextlib.nullcontext():
        model = AutoModelForSequenceClassification.from_config(config)
    attention = model.config._attn_implementation
    with tempfile.TemporaryDirectory() as out:
        targs = TrainingArguments(
            output_dir=out, per_device_train_batch_size=4, gradient_accumulation_steps=8, max_steps=n_steps,
            learning_rate=1e-5, weight_decay=0.01, warmup_steps=0.1, max_grad_norm=1.0, adam_epsilon=1e-8,
            bf16=bf16, use_cpu=not torch.cuda.is_available(), save_strategy="no", logging_strategy="no",
            report_to="none", disable_tqdm=True, remove_unused_columns=False, seed=0, per_device_eval_batch_size=8)
        collate = DataCollatorWithPadding(tokenizer, padding="max_length", max_length=MAX_LENGTH)
        trainer = Counting(model=model, args=targs, train_dataset=train_features, data_collator=collate,
                           callbacks=[Clock()])
        trainer.train()
        train_s = marks["end"] - marks["start"]
        train_tokens = marks["end_tokens"] - marks["start_tokens"]
        unlabelled = [{k: v for k, v in f.items() if k != "labels"} for f in predict_features]
        _sync()
        start = time.perf_counter()
        trainer.predict(unlabelled)
        _sync()
        predict_s = time.perf_counter() - start
        optimizer = str(getattr(targs.optim, "value", targs.optim))
    result = {"train_tokens_per_s": train_tokens / train_s, "predict_tokens_per_s": _real(predict_features) / predict_s,
              "attention": [attention], "optimizer": optimizer, "mixed_precision": "bf16" if bf16 else "no"}
    del trainer, model
    _free()
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=list(MODELS), default="tiny")
    parser.add_argument("--steps", type=int, default=None, help="timed optimizer steps (default: 4 on CPU, 20 on GPU)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed optimizer steps first (at least 1)")
    parser.add_argument("--predict-examples", type=int, default=None, help="default: 512 on CPU, 4096 on GPU")
    parser.add_argument("--eval-batch-size", type=int, default=128, help="xstilts' prediction batch (hparams eval_batch_size)")
    parser.add_argument("--micro-batch-size", default="auto", help="xstilts' hparams micro_batch_size (auto, or a number)")
    parser.add_argument("--length-grouping", type=int, default=50, help="xstilts' hparams length_grouping (also measured at 0)")
    parser.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: PEAK_TFLOPS by GPU name)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads on CPU (1: a tiny model gains nothing from more, and on a busy machine spinning threads slow it many times over)")
    parser.add_argument("--record", nargs="?", const="", default=None, metavar="PATH",
                        help="write the JSON record (no PATH: benchmarks/training/<model>-<device-slug>.json)")
    args = parser.parse_args(argv)
    if args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first step pays set-up costs)")
    gpu = torch.cuda.is_available()
    args.steps = args.steps or (20 if gpu else 4)
    args.predict_examples = args.predict_examples or (4096 if gpu else 512)
    if args.micro_batch_size != "auto":
        args.micro_batch_size = int(args.micro_batch_size)
    if not gpu:
        torch.set_num_threads(args.threads)

    import transformers

    from xstilts.modeling import quiet_transformers

    config = MODELS[args.model]()
    tokenizer = make_tokenizer()
    rng = np.random.default_rng(0)
    train_features = make_features((args.warmup + args.steps) * 32, config.vocab_size, rng)
    predict_features = make_features(args.predict_examples, config.vocab_size, rng)
    lengths = np.array([len(f["input_ids"]) for f in train_features + predict_features])
    with quiet_transformers():
        ours = bench_xstilts(config, tokenizer, train_features, predict_features, args, args.length_grouping)
        plain = (bench_xstilts(config, tokenizer, train_features, predict_features, args, 0)
                 if args.length_grouping > 1 else ours)
        base = bench_trainer(config, tokenizer, train_features, predict_features, args)

    from transformers import AutoModelForSequenceClassification

    with torch.device("meta"):
        shape = AutoModelForSequenceClassification.from_config(config)
    params = non_embedding_parameters(shape)
    name = device_name()
    peak = peak_flops(name, args.peak_tflops, gpu)

    def mfu(tokens_per_s: float, training: bool) -> float | None:
        if peak is None:
            return None
        per_token = flops_per_token(params, config.num_hidden_layers, config.hidden_size, lengths, training)
        return tokens_per_s * per_token / peak

    train = {"xstilts_tokens_per_s": ours["train_tokens_per_s"], "baseline_tokens_per_s": base["train_tokens_per_s"],
             "ratio": ours["train_tokens_per_s"] / base["train_tokens_per_s"],
             "mfu": mfu(ours["train_tokens_per_s"], True), "baseline_mfu": mfu(base["train_tokens_per_s"], True),
             "xstilts_plain_batches_tokens_per_s": plain["train_tokens_per_s"],
             "plain_batches_ratio": plain["train_tokens_per_s"] / base["train_tokens_per_s"],
             "micro_batch_size": ours["micro_batch_size"]}
    predict = {"xstilts_tokens_per_s": ours["predict_tokens_per_s"], "baseline_tokens_per_s": base["predict_tokens_per_s"],
               "ratio": ours["predict_tokens_per_s"] / base["predict_tokens_per_s"],
               "mfu": mfu(ours["predict_tokens_per_s"], False), "baseline_mfu": mfu(base["predict_tokens_per_s"], False)}
    record = {
        "date": datetime.date.today().isoformat(), "device": name, "model": args.model, "train": train, "predict": predict,
        "settings": {"steps": args.steps, "warmup": args.warmup, "effective_batch": 32, "max_seq_length": MAX_LENGTH,
                     "predict_examples": args.predict_examples, "mean_tokens": float(lengths.mean()),
                     "non_embedding_parameters": params, "peak_tflops": peak / 1e12 if peak else None,
                     "threads": None if gpu else args.threads,
                     "xstilts": {"micro_batch_size": args.micro_batch_size, "length_grouping": args.length_grouping,
                                 "eval_batch_size": args.eval_batch_size, "mixed_precision": ours["mixed_precision"],
                                 "attention": ours["attention"], "optimizer": ours["optimizer"]},
                     "baseline": {"per_device_train_batch_size": 4, "gradient_accumulation_steps": 8,
                                  "padding": f"max_length {MAX_LENGTH}", "per_device_eval_batch_size": 8,
                                  "mixed_precision": base["mixed_precision"], "attention": base["attention"],
                                  "optimizer": base["optimizer"]}},
        "torch": torch.__version__, "transformers": transformers.__version__,
    }
    _print(record)
    if args.record is not None:
        path = Path(args.record or ROOT / "benchmarks" / "training" / f"{args.model}-{slug(name)}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        print(f"record: {path}")
    return record


def _print(record: dict[str, Any]) -> None:
    s = record["settings"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.1f} %"

    print(f"{record['model']} on {record['device']} (torch {record['torch']}, transformers {record['transformers']}); "
          f"{s['steps']} timed steps of 32 examples after {s['warmup']}, {s['predict_examples']} predicted examples, "
          f"mean {s['mean_tokens']:.1f} real tokens per example")
    x, b = s["xstilts"], s["baseline"]
    print(f"xstilts: micro_batch_size {x['micro_batch_size']} -> {record['train']['micro_batch_size']}, length_grouping "
          f"{x['length_grouping']}, {x['mixed_precision']}, {'/'.join(x['attention'])}, {x['optimizer']}, "
          f"eval batch {x['eval_batch_size']} (length-sorted)")
    print(f"baseline: Trainer 4 x 8, padding to {MAX_LENGTH}, {b['mixed_precision']}, {'/'.join(b['attention'])}, "
          f"{b['optimizer']}, eval batch 8")
    print("| | xstilts (real tokens/s) | baseline (real tokens/s) | ratio | MFU xstilts | MFU baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    t, p = record["train"], record["predict"]
    print(f"| train | {t['xstilts_tokens_per_s']:,.0f} | {t['baseline_tokens_per_s']:,.0f} | {t['ratio']:.2f} | "
          f"{pct(t['mfu'])} | {pct(t['baseline_mfu'])} |")
    if x["length_grouping"] > 1:
        print(f"| train, plain batches | {t['xstilts_plain_batches_tokens_per_s']:,.0f} | {t['baseline_tokens_per_s']:,.0f} "
              f"| {t['plain_batches_ratio']:.2f} | | |")
    print(f"| predict | {p['xstilts_tokens_per_s']:,.0f} | {p['baseline_tokens_per_s']:,.0f} | {p['ratio']:.2f} | "
          f"{pct(p['mfu'])} | {pct(p['baseline_mfu'])} |")


if __name__ == "__main__":
    main()
