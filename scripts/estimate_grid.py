"""Job counts and a GPU-hour estimate of a preset's grid, computed from the config.

    python scripts/estimate_grid.py                     # the paper preset, Markdown tables
    python scripts/estimate_grid.py --tflops 120        # another sustained-throughput assumption
    python scripts/estimate_grid.py --configfile F      # a config with more models (e.g. the models axis)
    python scripts/estimate_grid.py --bench-record R    # a benchmark record of scripts/bench_training.py
    python scripts/estimate_grid.py --requests          # and each job's memory and time limit

The README's numbers come from this script, so they follow the config instead of being typed.
The cost model is xstilts.cost's, the one the rules size their jobs' memory and time limits with
(its docstring states the assumptions). A model with a benchmark record (``--bench-record``, or
any record in benchmarks/training/) is estimated at its measured tokens per second; the output
says which models are, with each record's device and date, and which are estimates.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from xstilts.config import model_experiment, model_names, resolve  # noqa: E402
from xstilts.cost import (  # noqa: E402
    BENCH_DIR,
    DEFAULT_INFER_FLOOR_MS,
    DEFAULT_TFLOPS,
    DEFAULT_TRAIN_FLOOR_MS,
    BenchRecordError,
    Cost,
    Sizing,
    UnknownShape,
    bench_records,
    estimate,
    estimate_model,
    job_hours,
    read_bench_record,
    record_for,
)
from xstilts.plan import Plan  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


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
    parser.add_argument("--bench-record", action="append", default=None, metavar="PATH",
                        help="a benchmark record (scripts/bench_training.py) whose measured tokens/s replace the "
                             "assumptions for its model; repeatable (default: every record in "
                             f"{BENCH_DIR}/)")
    parser.add_argument("--no-bench", action="store_true", help="ignore benchmark records: estimates only")
    parser.add_argument("--requests", action="store_true",
                        help="also print each job's first-attempt memory and time limit (what the rules ask for)")
    args = parser.parse_args(argv)
    with open(args.configfile, encoding="utf-8") as f:
        raw = copy.deepcopy(yaml.safe_load(f))
    raw["preset"] = args.preset
    exp = resolve(raw)
    try:
        if args.no_bench:
            records = []
        elif args.bench_record:
            records = [read_bench_record(p) for p in args.bench_record]
        else:
            records = bench_records(ROOT / BENCH_DIR)
    except BenchRecordError as error:
        raise SystemExit(f"estimate_grid: {error}") from None
    try:
        report(args, exp, Cost(args.tflops, args.train_floor_ms, args.infer_floor_ms, records=records))
    except UnknownShape as error:
        raise SystemExit(f"estimate_grid: {error}") from None


def report(args: argparse.Namespace, exp: dict, cost: Cost) -> None:
    print(f"## Jobs of preset `{args.preset}`\n")
    print("| rule | jobs |\n|---|---:|")
    for rule, n in job_counts(exp).items():
        print(f"| `{rule}` | {n} |" if rule != "total" else f"| **total** | **{n}** |")
    rows = estimate(exp, cost)
    total = sum(r["gpu_hours"] for r in rows.values())
    print(f"\n## GPU-hours ({args.tflops:g} TFLOP/s sustained, micro-batch floors {args.train_floor_ms:g} ms "
          f"training / {args.infer_floor_ms:g} ms inference)\n")
    names = model_names(exp)
    measured = {n: record_for(model_experiment(exp, n)["model"], cost.records) for n in names}
    if any(measured.values()):
        print("Throughput of each model: **measured** where a benchmark record exists (its tokens/s replace the "
              "TFLOP/s and floors above), else **estimated**.\n")
        for name in names:
            record = measured[name]
            print(f"- `{name}`: " + (f"measured: {record.describe()}" if record else "estimated"))
        print()
    print("| rule | jobs | GPU-hours per job (mean) | GPU-hours |\n|---|---:|---:|---:|")
    for rule, r in rows.items():
        print(f"| `{rule}` | {r['jobs']:.0f} | {r['gpu_hours'] / r['jobs']:.2f} | {r['gpu_hours']:,.0f} |")
    print(f"| **total** | | | **{total:,.0f}** |")
    if len(names) > 1:
        print("\n## GPU-hours per model\n")
        print("| model | GPU-hours |\n|---|---:|")
        for name in names:
            hours = sum(r["gpu_hours"] for r in estimate_model(model_experiment(exp, name), cost).values())
            print(f"| `{name}` | {hours:,.0f} |")
    for name in names:
        how = f" (measured throughput, {measured[name].device}, {measured[name].date})" if measured[name] else ""
        print(f"\n## GPU-hours of one job of `{name}`{how}\n")
        print("| job | GPU-hours |\n|---|---:|")
        for job, hours in job_hours(model_experiment(exp, name), cost).items():
            print(f"| `{job}` | {hours:.2f} |")
    if args.requests:
        print_requests(exp, cost)


def print_requests(exp: dict, cost: Cost) -> None:
    """What each job of the grid asks the cluster for on its first attempt (rules/common.smk)."""
    sizing = Sizing(exp, cost)
    plan = Plan(exp)
    for name in model_names(exp):
        mp = plan.for_model(name)
        jobs = [("pretrain_mlm" if mp.exp["model"]["source"] == "pretrain" else "prepare_model", {})]
        jobs += [("finetune_intermediate", {"itask": i}) for i in mp.itasks]
        jobs += [(r, {"training": t}) for t in mp.trainings for r in ("finetune_target", "predict_target")]
        jobs += [("embed_sentences", {}), ("mine_bucc", {})]
        # Retrieval data is embedded, not tokenised by rule tokenize_dataset.
        jobs += [("tokenize_dataset", {"dataset": d}) for d in mp.datasets() if d not in ("bucc2018", "tatoeba")]
        print(f"\n## Requests of one job of `{name}` (first attempt; a retry asks for attempt x these)\n")
        print("| job | mem_mb | runtime (min) |\n|---|---:|---:|")
        for rule, wc in jobs:
            job = "/".join([rule, *wc.values()])
            print(f"| `{job}` | {sizing.mem_mb(rule, name, **wc):,} | {sizing.runtime(rule, name, **wc):,} |")


if __name__ == "__main__":
    main()
