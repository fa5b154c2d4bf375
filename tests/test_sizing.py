"""What the jobs ask a cluster for (xstilts.cost.Sizing, rules/common.smk job_mem_mb and
job_runtime): small for the demo, more for XLM-R Large, more still for a bigger model; growing
with the attempt; the time that scripts/estimate_grid.py estimates; measured throughput where a
benchmark record exists."""

from __future__ import annotations

import copy
import io
import json
import math
import re
import subprocess
import sys
from contextlib import redirect_stdout

import pytest
import yaml

from conftest import ROOT
from xstilts import cost
from xstilts.config import model_experiment, resolve
from xstilts.cost import (
    HUB_SHAPES,
    BenchRecordError,
    Cost,
    Shape,
    Sizing,
    UnknownShape,
    job_hours,
    model_shape,
    read_bench_record,
)
from xstilts.plan import Plan

sys.path.insert(0, str(ROOT / "scripts"))
import estimate_grid  # noqa: E402

#: What a modest cluster node offers (tests/slurm/local_cluster.sh gives its node as much).
MODEST_NODE_MB = 16000
RETRIES = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())["retries"]
LLAMA = {"name": "llama-3.2-1b", "source": "hub",
         "hub": {"id": "meta-llama/Llama-3.2-1B", "revision": "4e20de362430cd3b72f300e6b0f18e50e7166e08",
                 "files": ["config.json"]}}
DEFAULTS = (cost.DEFAULT_TFLOPS, cost.DEFAULT_TRAIN_FLOOR_MS, cost.DEFAULT_INFER_FLOOR_MS)


def experiment(raw_config: dict, preset: str, **overrides) -> dict:
    config = copy.deepcopy(raw_config)
    config["preset"] = preset
    config.update(overrides)
    return resolve(config)


@pytest.fixture(scope="module")
def paper(raw_config) -> dict:
    return experiment(raw_config, "paper")


@pytest.fixture(scope="module")
def bigger(raw_config) -> dict:
    """The paper's grid for Llama-3.2-1B (1.24B parameters), fully fine-tuned."""
    return experiment(raw_config, "paper", models=[LLAMA])


def jobs(exp: dict) -> list[tuple[str, str, dict]]:
    """(rule, model, wildcards) of every sized job of a grid (one per distinct request)."""
    plan = Plan(exp)
    out = []
    for model in plan.models:
        mp = plan.for_model(model)
        first = "pretrain_mlm" if mp.exp["model"]["source"] == "pretrain" else "prepare_model"
        out += [(first, model, {}), ("embed_sentences", model, {}), ("mine_bucc", model, {})]
        out += [("finetune_intermediate", model, {"itask": i}) for i in mp.itasks]
        out += [(r, model, {"training": t}) for t in mp.trainings for r in ("finetune_target", "predict_target")]
        # Retrieval data is embedded, not tokenised by rule tokenize_dataset.
        out += [("tokenize_dataset", model, {"dataset": d}) for d in mp.datasets() if d not in ("bucc2018", "tatoeba")]
    return out


#: Rules whose requests depend on the model (tokenize_dataset's on the data only).
MODEL_RULES = set(Sizing.RULES) - {"tokenize_dataset"}


def test_the_demo_asks_for_little_and_fits_a_modest_node_on_every_attempt(demo_exp):
    sizing = Sizing(demo_exp)
    for rule, model, wc in jobs(demo_exp):
        first = sizing.mem_mb(rule, model, **wc)
        # The fixed base (interpreter, torch, CUDA context) and almost nothing for a 64-wide model.
        assert 3000 < first <= 4000, (rule, model, wc, first)
        assert sizing.mem_mb(rule, model, attempt=1 + RETRIES, **wc) < MODEST_NODE_MB
        assert sizing.runtime(rule, model, **wc) == cost.RUNTIME_FLOOR_MIN  # seconds of GPU work


def test_xlmr_large_asks_for_what_it_needs(paper, demo_exp):
    sizing = Sizing(paper)
    # Weights loaded and saved again: 3000 MB + 2 x 4 bytes x 557,991,936 parameters = 7,257 MB.
    assert HUB_SHAPES[cost.PAPER_MODEL].total_params == 557_991_936
    assert sizing.mem_mb("prepare_model", "xlmr-large") == 7500
    # XNLI: 16 bytes a parameter (8,514 MB), 24 layers of 4 x 256-token activations in fp32
    # (2,592 MB), MNLI's 21.6M training tokens memory-mapped at 16 bytes (330 MB) and its dev
    # records (56 MB), the 3,000 MB base: 14,492 MB.
    assert sizing.mem_mb("finetune_target", "xlmr-large", training="xnli") == 14500
    # The multi-task mix: every task's data, and CommonsenseQA's 4 x 5 choices of 256 tokens.
    assert sizing.mem_mb("finetune_intermediate", "xlmr-large", itask="multitask") == 29000
    # Tokenising the +MLM corpus (42 languages x 100k sentences) holds it in Python lists.
    assert sizing.mem_mb("tokenize_dataset", "xlmr-large", dataset="mlm_corpus") == 19500
    demo = Sizing(demo_exp)
    shared = [(rule, wc) for rule, _, wc in jobs(paper) if (rule, "xlmr-demo", wc) in jobs(demo.exp)]
    shared = [(rule, wc) for rule, wc in shared if rule in MODEL_RULES]
    assert len(shared) == 2 + 12 + 2 * 7  # retrieval, 12 intermediate encoders, 7 trainings
    for rule, wc in shared:
        assert sizing.mem_mb(rule, "xlmr-large", **wc) > demo.mem_mb(rule, "xlmr-demo", **wc) + 1500, (rule, wc)


def test_a_bigger_model_asks_for_more_than_xlmr_large(paper, bigger):
    large, llama = Sizing(paper), Sizing(bigger)
    for rule, _, wc in jobs(paper):
        if rule in MODEL_RULES:
            assert llama.mem_mb(rule, "llama-3.2-1b", **wc) > large.mem_mb(rule, "xlmr-large", **wc), (rule, wc)
    # 1.24B parameters at 16 bytes are 18.5 GB on their own: more than a modest node.
    assert llama.mem_mb("finetune_target", "llama-3.2-1b", training="xnli") == 26000


def test_lora_and_gradient_checkpointing_ask_for_less_memory(raw_config, bigger):
    lora = experiment(raw_config, "paper", models=[{**LLAMA, "lora": {"r": 16}, "gradient_checkpointing": True}])
    full, adapters = Sizing(bigger), Sizing(lora)
    for training in ("xnli", "squad"):
        assert adapters.mem_mb("finetune_target", "llama-3.2-1b", training=training) < \
            full.mem_mb("finetune_target", "llama-3.2-1b", training=training) - 10000
    # Recomputing activations costs a forward pass more: 4 x forward instead of 3 where FLOPs bound.
    assert adapters.runtime("finetune_target", "llama-3.2-1b", training="squad") > \
        full.runtime("finetune_target", "llama-3.2-1b", training="squad")


def test_retries_ask_for_attempt_times_the_first_request(paper):
    sizing = Sizing(paper)
    for rule, model, wc in jobs(paper):
        mem, minutes = sizing.mem_mb(rule, model, **wc), sizing.runtime(rule, model, **wc)
        for attempt in range(2, 2 + RETRIES):
            assert sizing.mem_mb(rule, model, attempt=attempt, **wc) == attempt * mem
            assert sizing.runtime(rule, model, attempt=attempt, **wc) == min(cost.RUNTIME_CAP_MIN, attempt * minutes)
    # A job estimated longer than the cap asks for the cap; its retries resume from its checkpoint,
    # so the attempts together cover the estimate.
    hours = sizing.request("finetune_intermediate", "xlmr-large", itask="mnli-translated").hours
    assert sizing.runtime("finetune_intermediate", "xlmr-large", itask="mnli-translated") == cost.RUNTIME_CAP_MIN
    assert (1 + RETRIES) * cost.RUNTIME_CAP_MIN > hours * 60 * cost.RUNTIME_SAFETY


def job_wildcards(rule: str, key: str) -> dict[str, str]:
    """The wildcards of a job printed as `rule/key` (estimate_grid's tables)."""
    name = {"finetune_intermediate": "itask", "tokenize_dataset": "dataset"}.get(rule, "training")
    return {name: key} if key else {}


def estimate_output(*args: str) -> str:
    out = io.StringIO()
    with redirect_stdout(out):
        estimate_grid.main(list(args))
    return out.getvalue()


def printed_job_hours(output: str, model: str) -> dict[str, str]:
    section = output.split(f"## GPU-hours of one job of `{model}`")[1].split("\n## ")[0]
    return dict(re.findall(r"^\| `([^`]+)` \| ([0-9.]+) \|$", section, re.M))


@pytest.mark.parametrize("preset", ["paper", "demo"])
def test_the_time_limits_are_estimate_grids_hours_times_the_safety_factor(raw_config, preset):
    exp = experiment(raw_config, preset)
    output = estimate_output("--preset", preset, "--no-bench")
    sizing = Sizing(exp)
    for model in Plan(exp).models:
        printed = printed_job_hours(output, model)
        hours = job_hours(model_experiment(exp, model), Cost(*DEFAULTS))
        assert printed == {job: f"{h:.2f}" for job, h in hours.items()}
        for job, h in hours.items():
            rule, _, key = job.partition("/")
            wc = job_wildcards(rule, key)
            request = sizing.request(rule, model, **wc)
            assert request.hours == h
            expected = max(cost.RUNTIME_FLOOR_MIN, math.ceil(h * 60 * cost.RUNTIME_SAFETY))
            assert request.runtime == expected
            assert sizing.runtime(rule, model, **wc) == min(cost.RUNTIME_CAP_MIN, expected)
    printed = estimate_output("--preset", preset, "--no-bench", "--requests")
    for model in Plan(exp).models:
        table = printed.split(f"## Requests of one job of `{model}`")[1].split("\n## ")[0]
        rows = re.findall(r"^\| `([^`]+)` \| ([0-9,]+) \| ([0-9,]+) \|$", table, re.M)
        assert len(rows) == len([job for job in jobs(exp) if job[1] == model])
        for job, mem, minutes in rows:
            rule, _, key = job.partition("/")
            wc = job_wildcards(rule, key)
            assert (int(mem.replace(",", "")), int(minutes.replace(",", ""))) == \
                (sizing.mem_mb(rule, model, **wc), sizing.runtime(rule, model, **wc))
    if preset == "paper":  # 2.19 GPU-hours of XNLI training (and its evaluations) -> 198 minutes at 1.5 x
        assert printed_job_hours(output, "xlmr-large")["finetune_target/xnli"] == "2.19"
        assert sizing.runtime("finetune_target", "xlmr-large", training="xnli") == 198


# ----------------------------------------------------------------------- measured throughput


def bench_record(path, model="xlmr-large", train=20000.0, predict=80000.0, **extra) -> str:
    record = {"date": "2026-12-08", "device": "NVIDIA H100 80GB HBM3", "model": model,
              "train": {"xstilts_tokens_per_s": train, "baseline_tokens_per_s": train / 1.1, "ratio": 1.1,
                        "mfu": 0.2},
              "predict": {"xstilts_tokens_per_s": predict, "baseline_tokens_per_s": predict, "ratio": 1.0},
              **extra}
    path.write_text(json.dumps(record))
    return str(path)


def test_a_benchmark_record_replaces_the_assumed_throughput(paper, tmp_path):
    record = read_bench_record(bench_record(tmp_path / "xlmr-large-h100.json"))
    measured = Cost(*DEFAULTS, records=[record]).for_model(model_experiment(paper, "xlmr-large"))
    assert measured.measured == record
    # 100 micro-batches of 4 MNLI pairs (55 tokens each) at 20,000 tokens/s; inference at 80,000.
    assert measured.train("mnli", 400, 4) == pytest.approx(400 * 55 / 20000)
    assert measured.infer("xnli", 800, 8) == pytest.approx(800 * 60 / 80000)
    hours = job_hours(model_experiment(paper, "xlmr-large"), Cost(*DEFAULTS, records=[record]))
    # MNLI (392,702 pairs) for 2 epochs, and the dev evaluations of 500 + 9,815 examples.
    evals = 2 * math.ceil(392702 / 32) // 1000
    expected = (math.ceil(2 * 392702 / 4) * 4 * 55 / 20000
                + (evals * math.ceil(500 / 8) + math.ceil(9815 / 8)) * 8 * 55 / 80000) / 3600
    assert hours["finetune_target/xnli"] == pytest.approx(expected)
    sized = Sizing(paper, Cost(*DEFAULTS, records=[record]))
    assert sized.request("finetune_target", "xlmr-large", training="xnli").measured == record
    assert sized.runtime("finetune_target", "xlmr-large", training="xnli") == math.ceil(expected * 60 * 1.5)


def test_estimate_grid_says_which_numbers_are_measured(tmp_path):
    path = bench_record(tmp_path / "xlmr-large-h100.json")
    output = estimate_output("--preset", "models", "--bench-record", path)
    assert "- `xlmr-large`: measured: training 20,000 tokens/s, inference 80,000 tokens/s " \
           f"(NVIDIA H100 80GB HBM3, 2026-12-08, {path})" in output
    for other in ("mdeberta-v3-base", "qwen2.5-0.5b", "bloom-560m"):
        assert f"- `{other}`: estimated" in output
    assert "## GPU-hours of one job of `xlmr-large` (measured throughput, NVIDIA H100 80GB HBM3, 2026-12-08)" in output
    assert "## GPU-hours of one job of `mdeberta-v3-base`\n" in output
    # The other models' numbers are the estimate's, as without the record.
    plain = estimate_output("--preset", "models", "--no-bench")
    assert printed_job_hours(output, "bloom-560m") == printed_job_hours(plain, "bloom-560m")
    assert printed_job_hours(output, "xlmr-large") != printed_job_hours(plain, "xlmr-large")
    assert "measured" not in plain


def test_records_are_found_in_a_folder_and_matched_by_model_name_or_hub_id(paper, tmp_path):
    bench_record(tmp_path / "a.json", model="FacebookAI/xlm-roberta-large", train=1000.0)
    bench_record(tmp_path / "b.json", model="xlmr-large", train=3000.0, date="2026-12-09")
    bench_record(tmp_path / "c.json", model="bloom-560m", train=5000.0)
    records = cost.bench_records(tmp_path)
    assert len(records) == 3 and cost.bench_records(tmp_path / "missing") == []
    xlmr = model_experiment(paper, "xlmr-large")["model"]
    assert cost.record_for(xlmr, records).train_tokens_per_s == 3000.0  # the newer of the two


@pytest.mark.parametrize(("phase", "value", "message"), [
    ("predict", {}, "without predict.xstilts_tokens_per_s"),
    ("train", {"xstilts_tokens_per_s": 0}, "train.xstilts_tokens_per_s is 0, not a positive number"),
])
def test_a_broken_record_is_named_with_what_is_wrong(tmp_path, phase, value, message):
    path = bench_record(tmp_path / "r.json")
    record = json.loads((tmp_path / "r.json").read_text())
    (tmp_path / "r.json").write_text(json.dumps({**record, phase: value}))
    with pytest.raises(BenchRecordError, match=re.escape(message)):
        read_bench_record(path)
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "estimate_grid.py"), "--bench-record", path],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and path in proc.stderr and message in proc.stderr


# ----------------------------------------------------------------------------- unknown models


def test_an_unknown_hub_model_is_sized_from_its_download(raw_config, tmp_path):
    tiny = {"name": "tiny", "source": "hub",
            "hub": {"id": "org/tiny", "revision": "0" * 40, "files": ["config.json"]}}
    exp = experiment(raw_config, "paper", models=[tiny])
    with pytest.raises(UnknownShape, match="HUB_SHAPES in scripts/xstilts/cost.py"):
        model_shape(exp["models"][0])
    sizing = Sizing(exp, models_dir=tmp_path)
    # Before the download: sized as the paper's model (Snakemake asks again when the job is ready).
    provisional = sizing.mem_mb("finetune_target", "tiny", training="xnli")
    assert provisional == Sizing(experiment(raw_config, "paper")).mem_mb("finetune_target", "xlmr-large",
                                                                         training="xnli")
    (tmp_path / "tiny").mkdir()
    (tmp_path / "tiny" / "config.json").write_text(json.dumps(
        {"model_type": "xlm-roberta", "hidden_size": 32, "num_hidden_layers": 2, "intermediate_size": 64,
         "vocab_size": 300, "num_attention_heads": 2}))
    assert model_shape(exp["models"][0], tmp_path).params == Shape.encoder(2, 32, 64).params
    assert sizing.mem_mb("finetune_target", "tiny", training="xnli") < provisional - 8000


def test_a_decoders_config_gives_its_shape():
    # Llama-3.2-1B's config.json: gated feed-forward, 8 key-value heads of 64.
    shape = Shape.from_hf_config({"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 16,
                                  "intermediate_size": 8192, "num_attention_heads": 32, "num_key_value_heads": 8,
                                  "vocab_size": 128256})
    assert shape.total_params == pytest.approx(1.236e9, rel=0.01)
    assert shape.total_params == pytest.approx(HUB_SHAPES["meta-llama/Llama-3.2-1B"].total_params, rel=0.01)


# ------------------------------------------------------------------------------ the rules


def test_the_rules_ask_for_what_sizing_gives(raw_config, tmp_path):
    """A dry run of the smoke grid: every sized job's mem_mb and runtime are Sizing's."""
    from test_slurm import check, jobs_in, resources_of, snakemake

    smoke = ROOT / "tests" / "configs" / "smoke.yaml"
    output = check(snakemake("--configfile", str(smoke), "-n", "--directory", str(tmp_path)))
    with open(smoke, encoding="utf-8") as f:
        exp = resolve({**copy.deepcopy(raw_config), **yaml.safe_load(f)})
    sizing = Sizing(exp)
    seen = set()
    for _, rule, _, fields in jobs_in(output):
        if rule not in Sizing.RULES:
            continue
        wc = dict(pair.split("=", 1) for pair in fields["wildcards"].split(", "))
        resources = resources_of(fields)
        model = wc.pop("model")
        assert int(resources["mem_mb"]) == sizing.mem_mb(rule, model, **wc), (rule, wc)
        assert int(resources["runtime"]) == sizing.runtime(rule, model, **wc), (rule, wc)
        seen.add(rule)
    assert seen == set(Sizing.RULES) - {"prepare_model"}  # no hub model in the smoke grid
