#!/usr/bin/env python
"""Benchmark the masked-LM training step: vocabulary logits at the masked positions only
(``modeling.masked_positions_loss``, what xstilts trains with) against the stock head, which
computes them at every position.

For each architecture (random initialisation: speed does not depend on the weights), one batch
of full blocks with 15 % of the positions masked is timed for forward + backward, alternating
the two paths; the minimum over the repeats is reported (other load on the machine only ever
adds time), with the two losses (equal up to rounding) and the speed-up.

    python scripts/bench_mlm_loss.py                        # the demo's model and a wide-vocabulary one, CPU
    python scripts/bench_mlm_loss.py --shapes xlmr-large    # XLM-R Large's shape (on a GPU if one is visible)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xstilts.modeling import hf_model, masked_lm_head, masked_positions_loss  # noqa: E402

#: name -> (vocabulary, hidden size, layers, heads, feed-forward size)
SHAPES = {
    "demo": (2000, 64, 2, 4, 256),            # config.yaml's xlmr-demo
    "wide-vocab": (250002, 128, 2, 2, 512),   # XLM-R's vocabulary on a small encoder
    "xlmr-base": (250002, 768, 12, 12, 3072),
    "xlmr-large": (250002, 1024, 24, 16, 4096),
}


def timed(step, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", nargs="+", default=["demo", "wide-vocab"], choices=list(SHAPES))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"device {device}, batch {args.batch} x {args.length} tokens, 15 % masked, forward + backward, "
          f"best of {args.repeats}")
    print("| shape | stock head (s) | masked positions only (s) | speed-up | loss stock / ours |")
    print("|---|---:|---:|---:|---|")
    for name in args.shapes:
        vocab, hidden, layers, heads, ffn = SHAPES[name]
        torch.manual_seed(0)
        config = XLMRobertaConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                                  num_attention_heads=heads, intermediate_size=ffn, max_position_embeddings=args.length + 2,
                                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)  # equal losses
        model = XLMRobertaForMaskedLM(config).to(device)
        ids = torch.randint(5, vocab, (args.batch, args.length), device=device)
        labels = torch.full_like(ids, -100)
        masked = torch.rand(ids.shape, device=device) < 0.15
        labels[masked] = ids[masked]
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        lm_head = masked_lm_head(model)
        losses = {}

        def stock():
            model.zero_grad(set_to_none=True)
            loss = model(**batch, labels=labels).loss
            loss.backward()
            losses["stock"] = float(loss.detach())

        def ours():
            model.zero_grad(set_to_none=True)
            loss = masked_positions_loss(hf_model(model), lm_head, labels=labels, **batch).loss
            loss.backward()
            losses["ours"] = float(loss.detach())

        stock(), ours()  # warm-up
        t_stock, t_ours = timed(stock, args.repeats), timed(ours, args.repeats)
        print(f"| {name} (vocab {vocab:,}, hidden {hidden}, {layers} layers) | {t_stock:.3f} | {t_ours:.3f} | "
              f"{t_stock / t_ours:.2f}x | {losses['stock']:.4f} / {losses['ours']:.4f} |")


if __name__ == "__main__":
    main()
