"""Job counts and a GPU-hour estimate of a preset's grid, computed from the config.

    python scripts/estimate_grid.py                     # the paper preset, Markdown tables
    python scripts/estimate_grid.py --tflops 120        # another sustained-throughput assumption
    python scripts/estimate_grid.py --configfile F      # a config with more models (e.g. the models axis)

The README's numbers come from this script, so they follow the config instead of being typed.

Cost model. A micro-batch takes the longer of (a) its FLOPs at a stated sustained throughput and
(b) a stated latency floor: with the paper's micro-batch of 4 short sentences, XLM-R Large's
~1,000 kernel launches per step, not its FLOPs, bound the time. FLOPs per token: forward
2 x N + 4 x layers x hidden x sequence length (N = non-embedding parameters, 302M for XLM-R
Large: 24 layers, hidden 1024, feed-forward 4096), training 3 x forward. Every model of the grid
is estimated with its own N, layers and hidden size (``HUB_SHAPES`` for hub models, the config for
locally pretrained ones); token counts are XLM-R's for every model. Tokens per example are
assumed means after SentencePiece and padding to the longest of a micro-batch (below). A job
= its training epochs, periodic and final dev evaluations, and its test predictions in every
language. Early stopping is ignored (with patience 30 at one evaluation per 1000 steps none of
the paper's target runs can stop early), so on that account the estimate is an upper bound.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xstilts.config import hparams_for, model_experiment, model_names, resolve  # noqa: E402
from xstilts.plan import Plan  # noqa: E402
from xstilts.tasks import DATASETS, INTERMEDIATE_TASKS, MULTITASK, TARGET_TRAININGS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

class Shape:
    """What the cost model needs of an architecture: non-embedding parameters, layers, hidden size."""

    def __init__(self, params: float, layers: int, hidden: int, vocab: int = 250002):
        self.params, self.layers, self.hidden, self.vocab = params, layers, hidden, vocab

    @classmethod
    def encoder(cls, layers: int, hidden: int, ffn: int, vocab: int = 250002) -> "Shape":
        """A BERT-style block: four attention projections and a two-matrix feed-forward."""
        return cls(layers * (4 * hidden * hidden + 2 * hidden * ffn), layers, hidden, vocab)


#: Hub models by repository id. XLM-R Large: paper.md section 3.1. The others from their hub
#: configs as recorded in notes of the models preset [R]: mDeBERTa-v3-base (12 x 768, ffn 3072),
#: BLOOM-560m (24 x 1024, ffn 4096); Qwen2.5-0.5B's model card states 0.36B non-embedding
#: parameters (24 layers, hidden 896); Llama-3.2-1B 1.24B parameters less its 128,256 x 2,048
#: embedding (16 layers, hidden 2048).
HUB_SHAPES = {
    "FacebookAI/xlm-roberta-large": Shape.encoder(24, 1024, 4096, 250002),
    "microsoft/mdeberta-v3-base": Shape.encoder(12, 768, 3072, 250105),
    "bigscience/bloom-560m": Shape.encoder(24, 1024, 4096, 250880),
    "Qwen/Qwen2.5-0.5B": Shape(0.36e9, 24, 896, 151936),
    "meta-llama/Llama-3.2-1B": Shape(1.24e9 - 128256 * 2048, 16, 2048, 128256),
}


def model_shape(model: dict) -> Shape:
    """The shape of one model of the grid (a resolved ``models`` entry)."""
    if model["source"] == "pretrain":
        p = model["pretrain"]
        return Shape.encoder(p["num_hidden_layers"], p["hidden_size"], p["intermediate_size"], p["vocab_size"])
    repo = model["hub"]["id"]
    if repo not in HUB_SHAPES:
        raise SystemExit(f"estimate_grid: no shape for hub model {repo!r}; add its non-embedding parameters, "
                         "layers and hidden size (from its config.json) to HUB_SHAPES")
    return HUB_SHAPES[repo]

#: Assumptions (A100-80GB-class GPU, bf16 autocast, HF transformers in eager mode, deterministic
#: kernels): sustained throughput when FLOPs dominate (16 % of an A100's dense bf16 peak of 312
#: TFLOP/s), and the least time of one training micro-batch (forward + backward + the optimizer
#: step amortised over grad_accum) and of one inference micro-batch.
DEFAULT_TFLOPS = 50.0
DEFAULT_TRAIN_FLOOR_MS = 40.0
DEFAULT_INFER_FLOOR_MS = 12.0

# Examples per split. Train/dev sizes of the intermediate tasks and XTREME sets: the split sizes
# recorded in the legacy Hugging Face dataset_infos.json files (huggingface/datasets@d7dfbc83),
# summed over XTREME's languages for test sets. [R] marks a number from memory (CCGbank sections,
# the TyDiQA English share, BUCC's full corpora), to check against a first run's conversion logs.
#: The translations (XNLI-MT, MLQA translate-train) have their English set's examples per language;
#: the +MLM variant's corpus, ``sentences_per_language`` per language (from the config).
TRAIN = {"anli_r1": 16946, "anli_r2": 45460, "anli_r3": 100459, "mnli": 392702, "snli": 549367,
         "qqp": 363846, "squad_v1": 87599, "squad_v2": 130319, "hellaswag": 39905, "cosmosqa": 25262,
         "commonsenseqa": 9741, "ccg": 39604,  # [R] CCGbank sections 02-21
         "pawsx": 49175, "udpos": 21253, "panx": 20000, "tydiqa": 3326,  # [R] 3,696 English, 90 % kept
         "siqa": 33410, "copa": 400}  # HF dataset_infos (social_i_qa, super_glue/copa)
DEV = {"anli_r1": 1000, "anli_r2": 1000, "anli_r3": 1200, "mnli": 9815, "snli": 9842, "qqp": 40430,
       "squad_v1": 10570, "squad_v2": 11873, "hellaswag": 10042, "cosmosqa": 2985, "commonsenseqa": 1221,
       "ccg": 1913,  # [R] section 00
       "pawsx": 2000, "udpos": 3974, "panx": 10000, "tydiqa": 370,  # [R] 10 % of English GoldP train
       "siqa": 1954, "copa": 100}
TEST = {"xnli": 75150, "pawsx": 13999, "udpos": 102119, "panx": 262300, "xquad": 13090, "mlqa": 42245,
        "tydiqa": 5077, "xcopa": 11 * 500}
#: Sentences embedded per encoder: BUCC's four comparable corpora, both sides, training + sample
#: [R] (about 2.66M + 0.27M), and Tatoeba's 36 language pairs (31,692 pairs, both sides).
RETRIEVAL_SENTENCES = 2_930_000 + 2 * 31692

# Assumed mean tokens per example after XLM-R's SentencePiece and padding to the longest of a
# micro-batch of 4 (multiple choice: all choices; span QA: all windows of at most 384 tokens).
TOKENS = {"anli_r1": 110, "anli_r2": 110, "anli_r3": 110, "mnli": 55, "snli": 35, "qqp": 40, "xnli": 60,
          "pawsx": 60, "squad_v1": 280, "squad_v2": 280, "xquad": 300, "mlqa": 350, "tydiqa": 400,
          "hellaswag": 4 * 70, "cosmosqa": 4 * 130, "commonsenseqa": 5 * 30, "ccg": 40, "udpos": 35,
          "panx": 20, "siqa": 3 * 40, "copa": 2 * 30, "xcopa": 2 * 35}
RETRIEVAL_TOKENS = 40
TOKENS.update(mnli_mt=TOKENS["mnli"], squad_v1_mt=TOKENS["squad_v1"])
TRAIN.update(mnli_mt=TRAIN["mnli"], squad_v1_mt=TRAIN["squad_v1"])


def forward_flops(tokens: float, seq: float, shape: Shape) -> float:
    return tokens * (2 * shape.params + 4 * shape.layers * shape.hidden * seq)


def _seq(dataset: str) -> float:
    per_choice = DATASETS[dataset].num_choices or 1  # a multiple-choice example is one sequence per choice
    return min(384, TOKENS[dataset] / per_choice)


class Cost:
    """Seconds of GPU time for micro-batches of given size, under the stated assumptions."""

    def __init__(self, tflops: float, train_floor_ms: float, infer_floor_ms: float, shape: Shape = HUB_SHAPES[
            "FacebookAI/xlm-roberta-large"]):
        self.flops_per_s = tflops * 1e12
        self.train_floor, self.infer_floor = train_floor_ms / 1000, infer_floor_ms / 1000
        self.shape = shape

    def of(self, shape: Shape) -> "Cost":
        """The same assumptions for another architecture."""
        return Cost(self.flops_per_s / 1e12, self.train_floor * 1000, self.infer_floor * 1000, shape)

    def train(self, dataset: str, examples: float, batch: int) -> float:
        micro = math.ceil(examples / batch)
        return micro * max(3 * forward_flops(batch * TOKENS[dataset], _seq(dataset), self.shape) / self.flops_per_s,
                           self.train_floor)

    def train_lm(self, steps: float, hp: dict) -> float:
        """Language-modelling steps of the +MLM variant: full blocks of max_seq_length tokens,
        and the LM head's vocabulary projection at every position (not only the masked ones)."""
        tokens = hp["batch_size"] * hp["max_seq_length"]
        flops = forward_flops(tokens, hp["max_seq_length"], self.shape) + 2 * tokens * self.shape.vocab * self.shape.hidden
        return steps * hp["grad_accum"] * max(3 * flops / self.flops_per_s, self.train_floor)

    def infer(self, dataset: str, examples: float, batch: int) -> float:
        micro = math.ceil(examples / batch)
        return micro * max(forward_flops(batch * TOKENS[dataset], _seq(dataset), self.shape) / self.flops_per_s,
                           self.infer_floor)


def training_seconds(cost: Cost, train: list[str], dev: list[str], hp: dict) -> float:
    """Training on the given datasets (concatenated) for hp epochs, with periodic and final dev evals."""
    examples = sum(TRAIN[d] for d in train)
    steps = hp["epochs"] * math.ceil(examples / (hp["batch_size"] * hp["grad_accum"]))
    eval_batch = hp["eval_batch_size"] or 2 * hp["batch_size"]
    seconds = sum(cost.train(d, hp["epochs"] * TRAIN[d], hp["batch_size"]) for d in train)
    evals = steps // hp["eval_every_steps"] if hp["eval_every_steps"] else math.ceil(hp["epochs"])
    subset = hp["eval_max_examples"] or 10**9
    seconds += sum(evals * cost.infer(d, min(subset, DEV[d]), eval_batch) + cost.infer(d, DEV[d], eval_batch)
                   for d in dev)
    return seconds


def job_hours(exp: dict, cost: Cost) -> dict[str, float]:
    """GPU-hours of one job of one model: each intermediate encoder, and each target training (one run).

    ``exp`` is one model's experiment (``config.model_experiment``): its hyperparameters."""
    plan = Plan(exp)
    cost = cost.of(model_shape(exp["model"]))
    hours: dict[str, float] = {}
    for itask in plan.itasks:
        seconds = 0.0
        job = plan.intermediate_job(itask)
        variant = job.get("variant")
        for name in job["tasks"]:
            hp = job["task_hparams"][name]
            if itask == MULTITASK:  # each task's batch and length, the mix's epochs and cadence
                mix = hparams_for(exp, "intermediate", None)
                hp = {**hp, **{k: mix[k] for k in ("epochs", "eval_every_steps", "eval_max_examples")}}
            task = INTERMEDIATE_TASKS[name]
            train, dev = [s.dataset for s in task.train], [s.dataset for s in task.dev]
            if variant is not None:  # a translated row trains on its translations (one set per language)
                train = [d for d, _, _ in variant["train"]]
            seconds += training_seconds(cost, train, dev, hp)
            if variant is not None and variant["name"] == "mlm":
                own = hp["epochs"] * math.ceil(sum(TRAIN[d] for d in train) / (hp["batch_size"] * hp["grad_accum"]))
                seconds += cost.train_lm(own * variant["share"] / (1 - variant["share"]), variant["hparams"])
        hours[f"finetune_intermediate/{itask}"] = seconds / 3600
    for training in plan.trainings:
        task = TARGET_TRAININGS[training]
        hp = hparams_for(exp, "target", training)
        seconds = training_seconds(cost, [s.dataset for s in task.train], [s.dataset for s in task.dev], hp)
        for stage in plan.target_job(training).get("stages", []):  # XCOPA's SIQA stage, same job
            seconds += training_seconds(cost, [d for d, _, _ in stage["train"]], [d for d, _, _ in stage["dev"]],
                                        stage["hparams"])
        hours[f"finetune_target/{training}"] = seconds / 3600
        # Rule predict_target: every served target's test set in every language, once per model.
        eval_batch = hp["eval_batch_size"] or 2 * hp["batch_size"]
        hours[f"predict_target/{training}"] = sum(cost.infer(t, TEST[t], eval_batch) for t in plan.served(training)) / 3600
    return hours


def estimate(exp: dict, cost: Cost) -> dict[str, dict[str, float]]:
    """GPU rule -> {jobs, gpu_hours} of a resolved experiment, every model of the grid summed."""
    rows: dict[str, dict[str, float]] = {}
    for name in model_names(exp):
        for rule, row in estimate_model(model_experiment(exp, name), cost).items():
            total = rows.setdefault(rule, {"jobs": 0, "gpu_hours": 0.0})
            total["jobs"] += row["jobs"]
            total["gpu_hours"] += row["gpu_hours"]
    return rows


def estimate_model(exp: dict, cost: Cost) -> dict[str, dict[str, float]]:
    """GPU rule -> {jobs, gpu_hours} of one model's experiment."""
    plan = Plan(exp)
    hours = job_hours(exp, cost)
    cost = cost.of(model_shape(exp["model"]))
    rows: dict[str, dict[str, float]] = {}
    rows["finetune_intermediate"] = {"jobs": len(plan.itasks),
                                     "gpu_hours": sum(h for k, h in hours.items() if k.startswith("finetune_inter"))}
    runs = len(plan.encoders) * len(plan.seeds)
    for rule in ("finetune_target", "predict_target"):
        rows[rule] = {"jobs": runs * len(plan.trainings),
                      "gpu_hours": runs * sum(h for k, h in hours.items() if k.startswith(f"{rule}/"))}

    batch = exp["retrieval"]["batch_size"]
    micro = math.ceil(RETRIEVAL_SENTENCES / batch)
    embed = micro * max(forward_flops(batch * RETRIEVAL_TOKENS, RETRIEVAL_TOKENS, cost.shape) / cost.flops_per_s,
                        cost.infer_floor)
    rows["embed_sentences"] = {"jobs": len(plan.encoders), "gpu_hours": embed * len(plan.encoders) / 3600}
    return rows


def job_counts(exp: dict) -> dict[str, int]:
    """Jobs per rule of a resolved experiment (what `snakemake -n` lists)."""
    plan = Plan(exp)
    counts: dict[str, int] = {}
    if exp["data"]["source"] == "download":
        counts["download_source"] = len(plan.download_sources())
        counts["download_corpus"] = len(plan.corpus_downloads())
        counts["convert_dataset"] = len(plan.datasets())
    else:
        counts["make_demo_dataset"] = len(plan.datasets())
    hub, pretrained = len(plan.models_from("hub")), len(plan.models_from("pretrain"))
    counts.update(download_model=hub, prepare_model=hub, train_tokenizer=pretrained, pretrain_mlm=pretrained)
    models = len(plan.models)
    encoders = len(plan.encoders) * models
    counts.update({
        "write_labels": len(plan.evaluated_targets),
        "finetune_intermediate": len(plan.itasks) * models,
        "finetune_target": encoders * len(plan.trainings) * len(plan.seeds),
        "predict_target": encoders * len(plan.trainings) * len(plan.seeds),
        "embed_sentences": encoders if plan.retrieval_targets else 0,
        "mine_bucc": encoders if "bucc2018" in plan.targets else 0,
        "search_tatoeba": encoders if "tatoeba" in plan.targets else 0,
        "score_run": encoders * len(plan.seeds),
        "make_tables": models, "make_figure": models, "make_variant_tables": models if plan.variants else 0, "all": 1,
    })
    counts = {k: v for k, v in counts.items() if v}
    counts["total"] = sum(counts.values())
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper", help="preset of config.yaml (default: paper)")
    parser.add_argument("--configfile", default=str(ROOT / "config.yaml"))
    parser.add_argument("--tflops", type=float, default=DEFAULT_TFLOPS,
                        help=f"sustained throughput per GPU in TFLOP/s (default {DEFAULT_TFLOPS:g})")
    parser.add_argument("--train-floor-ms", type=float, default=DEFAULT_TRAIN_FLOOR_MS,
                        help=f"least time of a training micro-batch (default {DEFAULT_TRAIN_FLOOR_MS:g} ms)")
    parser.add_argument("--infer-floor-ms", type=float, default=DEFAULT_INFER_FLOOR_MS,
                        help=f"least time of an inference micro-batch (default {DEFAULT_INFER_FLOOR_MS:g} ms)")
    args = parser.parse_args(argv)
    with open(args.configfile, encoding="utf-8") as f:
        raw = copy.deepcopy(yaml.safe_load(f))
    raw["preset"] = args.preset
    exp = resolve(raw)

    print(f"## Jobs of preset `{args.preset}`\n")
    print("| rule | jobs |\n|---|---:|")
    for rule, n in job_counts(exp).items():
        print(f"| `{rule}` | {n} |" if rule != "total" else f"| **total** | **{n}** |")
    rows = estimate(exp, Cost(args.tflops, args.train_floor_ms, args.infer_floor_ms))
    total = sum(r["gpu_hours"] for r in rows.values())
    print(f"\n## GPU-hours ({args.tflops:g} TFLOP/s sustained, micro-batch floors {args.train_floor_ms:g} ms "
          f"training / {args.infer_floor_ms:g} ms inference)\n")
    print("| rule | jobs | GPU-hours per job (mean) | GPU-hours |\n|---|---:|---:|---:|")
    for rule, r in rows.items():
        print(f"| `{rule}` | {r['jobs']:.0f} | {r['gpu_hours'] / r['jobs']:.2f} | {r['gpu_hours']:,.0f} |")
    print(f"| **total** | | | **{total:,.0f}** |")
    cost = Cost(args.tflops, args.train_floor_ms, args.infer_floor_ms)
    names = model_names(exp)
    if len(names) > 1:
        print("\n## GPU-hours per model\n")
        print("| model | GPU-hours |\n|---|---:|")
        for name in names:
            hours = sum(r["gpu_hours"] for r in estimate_model(model_experiment(exp, name), cost).values())
            print(f"| `{name}` | {hours:,.0f} |")
    for name in names:
        print(f"\n## GPU-hours of one job of `{name}`\n")
        print("| job | GPU-hours |\n|---|---:|")
        for job, hours in job_hours(model_experiment(exp, name), cost).items():
            print(f"| `{job}` | {hours:.2f} |")


if __name__ == "__main__":
    main()
