"""The paper preset: the whole grid offline (dry run), its settings, and the manual CCGbank step."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

from conftest import ROOT
from test_workflow import job_counts, snakemake
from xstilts.config import ConfigError, hparams_for, resolve
from xstilts.languages import XTREME_TASK2LANGS
from xstilts.plan import Plan

# The grid of paper.md, written out independently of the registry and the planner.
INTERMEDIATE = ["anli_plus", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag", "ccg", "cosmosqa", "commonsenseqa"]
MATRIX = 1 + len(INTERMEDIATE) + 1                      # baseline + nine tasks + multi-task = 11
# The variants (README "Variants"): +MLM for MNLI, SQuAD v1.1, HellaSwag; translated MNLI, SQuAD v1.1.
VARIANTS = ["mnli+mlm", "squad_v1+mlm", "hellaswag+mlm", "mnli-translated", "squad_v1-translated"]
ENCODERS = MATRIX + len(VARIANTS)                       # 16 rows, each with phase 3 and retrieval
# XTREME's seven trained targets and XTREME-R's XCOPA (trained on SIQA then COPA, one job).
TRAINED_TARGETS = ["xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa", "xcopa"]
TRAININGS = len(TRAINED_TARGETS) - 1                    # XQuAD and MLQA share one SQuAD v1.1 training
SEEDS = 3
DATASETS = ["anli_r1", "anli_r2", "anli_r3", "snli", "mnli", "qqp", "squad_v1", "squad_v2", "hellaswag",
            "cosmosqa", "commonsenseqa", "ccg", "xnli", "pawsx", "udpos", "panx", "xquad", "mlqa", "tydiqa",
            "bucc2018", "tatoeba", "siqa", "copa", "xcopa", "mnli_mt", "squad_v1_mt", "mlm_corpus"]
# ANLI R1-R3 share one archive; CCGbank is manual; the corpus comes from the hub (download_corpus).
DOWNLOADS = len(DATASETS) - 3 + 1 - 1 - 1
#: The corpus: English and every language a target evaluates (XTREME's 40, XCOPA's ht, qu), one
#: Wikipedia shard each.
CORPUS_LANGUAGES = 42


@pytest.fixture(scope="module")
def paper(raw_config):
    config = copy.deepcopy(raw_config)
    config["preset"] = "paper"
    return resolve(config)


def test_dry_run_lists_the_whole_grid_offline(tmp_path):
    counts = job_counts(snakemake("-n", "--directory", str(tmp_path), "--config", "preset=paper").stdout)
    expected = {
        "download_source": DOWNLOADS,
        "download_corpus": CORPUS_LANGUAGES,
        "convert_dataset": len(DATASETS),
        "download_model": 1,
        "prepare_model": 1,
        "write_labels": 10,                             # nine XTREME targets and XCOPA
        # Every dataset a job encodes, once (23: all but BUCC, Tatoeba, the corpus and SQuAD's
        # translation), SQuAD v1.1 in English and translated (its windows are encoded as one set),
        # and the corpus's LM and dev lines.
        "tokenize_dataset": 23 + 1 + 2,
        "finetune_intermediate": ENCODERS - 1,
        "finetune_target": ENCODERS * TRAININGS * SEEDS,
        "embed_sentences": ENCODERS,
        "mine_bucc": ENCODERS,
        "search_tatoeba": ENCODERS,
        "score_run": ENCODERS * SEEDS,
    }
    # Presentation rules (tables, figures, paper) may be added without changing the grid.
    assert {rule: counts.get(rule) for rule in expected} == expected
    assert counts["finetune_target"] == 336 and sum(expected.values()) == 551 + 26
    assert counts["predict_target"] == 336  # one prediction job per fine-tuned model
    assert counts["make_variant_tables"] == 1
    # The reasoning analysis (XNLI and XCOPA) is part of the paper grid.
    assert counts["bootstrap_reasoning_gains"] == counts["make_reasoning_section"] == 1
    assert not (tmp_path / "resources").exists()  # a dry run downloads nothing


def test_estimate_script_counts_the_same_jobs(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "estimate_grid.py")], capture_output=True,
                          text=True, check=True)
    assert "| `finetune_target` | 336 |" in proc.stdout and "| `convert_dataset` | 27 |" in proc.stdout
    assert "| `download_corpus` | 42 |" in proc.stdout and "| `finetune_intermediate/mnli-translated` |" in proc.stdout
    assert "GPU-hours" in proc.stdout


def test_every_xtreme_language_of_every_target(paper):
    plan = Plan(paper)
    for target in plan.targets:
        assert plan.target_languages(target) == XTREME_TASK2LANGS[target], target
    job = plan.convert_job("udpos")
    assert len(job["layout"]["test"]) == 33 and len(job["layout"]["dev"]) == 29 and job["layout"]["train"] == ["en"]
    assert len(plan.convert_job("panx")["layout"]["dev"]) == 40
    assert len(plan.convert_job("tatoeba")["layout"]["test"]) == 36
    assert plan.convert_job("tydiqa")["layout"] == {"train": ["en"], "dev": ["en"],
                                                    "test": XTREME_TASK2LANGS["tydiqa"]}
    # The +MLM rows' corpus: every language the grid evaluates, and English.
    assert plan.convert_job("mlm_corpus")["layout"]["train"] == plan.corpus_languages()
    assert len(plan.corpus_languages()) == CORPUS_LANGUAGES
    assert plan.encoders[MATRIX:] == VARIANTS


def test_hyperparameters_follow_the_paper(paper):
    table = {"xnli": (2, 8, 256), "pawsx": (5, 8, 256), "udpos": (10, 8, 256), "panx": (10, 8, 256),
             "squad": (2, 4, 384), "tydiqa": (2, 4, 384)}  # paper.md section 3.2
    for training, (epochs, accum, length) in table.items():
        hp = hparams_for(paper, "target", training)
        assert (hp["epochs"], hp["batch_size"], hp["grad_accum"], hp["max_seq_length"]) == (epochs, 4, accum, length)
        assert (hp["learning_rate"], hp["warmup_ratio"], hp["eval_every_steps"], hp["patience"],
                hp["eval_max_examples"], hp["mixed_precision"]) == (1e-5, 0.1, 1000, 30, 500, "auto")
    for name in INTERMEDIATE:  # paper.md section 9
        hp = hparams_for(paper, "intermediate", name)
        qa = name.startswith("squad")
        assert (hp["learning_rate"], hp["epochs"], hp["batch_size"] * hp["grad_accum"], hp["max_seq_length"]) == \
            (1e-5, 3, 16 if qa else 32, 384 if qa else 256)
        assert (hp["warmup_ratio"], hp["weight_decay"], hp["max_grad_norm"]) == (0.1, 0.01, 1.0)
    assert paper["seeds"] == [0, 1, 2] and paper["targets"]["selection"] == "english_dev"
    assert paper["retrieval"]["layer"] is None and paper["retrieval"]["max_length"] == 512
    assert [m["name"] for m in paper["models"]] == ["xlmr-large"]
    assert paper["models"][0]["hub"] == {"id": "FacebookAI/xlm-roberta-large",
                                     "revision": "c23d21b0620b635a76227c604d44e43a9f0ee389",
                                     "record_revision": False,
                                     "files": ["config.json", "model.safetensors", "tokenizer.json",
                                               "sentencepiece.bpe.model"]}


def test_config_errors_of_the_new_keys(raw_config):
    config = copy.deepcopy(raw_config)
    config["preset"] = "paper"
    config["data"] = {"download": {"ccgbnk": "x"}}
    with pytest.raises(ConfigError, match=r"unknown key 'ccgbnk' \(did you mean 'ccgbank'\?\) in data.download"):
        resolve(config)
    config = copy.deepcopy(raw_config)
    del config["presets"]["demo"]["data"]["synthetic"]
    config["presets"]["demo"]["data"]["source"] = "download"
    with pytest.raises(ConfigError, match=r"'download' is a required property"):
        resolve(config)
    config = copy.deepcopy(raw_config)
    config["preset"] = "paper"
    config["models"] = [{"name": "xlmr-large", "source": "pretrain"}]
    with pytest.raises(ConfigError, match=r"'pretrain' is a required property"):
        resolve(config)


def test_a_real_run_without_ccgbank_stops_before_any_job(tmp_path):
    proc = snakemake("--cores", "1", "--directory", str(tmp_path), "--config", "preset=paper", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "CCGbank not found at 'resources/manual/ccgbank_1_1'" in out
    assert "data.download.ccgbank" in out and '"commonsenseqa"]}' in out  # how to fix or drop it
    assert not (tmp_path / "logs").exists() and not (tmp_path / "resources").exists()


def convert_outputs(output: str) -> dict[str, str]:
    """dataset -> output folder of each convert_dataset job listed in a dry run's output."""
    outputs = {}
    for block in output.split("rule convert_dataset:\n")[1:]:
        lines = block.splitlines()
        fields = dict(line.strip().split(": ", 1) for line in lines[:next(
            (n for n, line in enumerate(lines) if not line.startswith("    ")), len(lines))])
        outputs[fields["wildcards"].removeprefix("dataset=")] = fields["output"]
    return outputs


def test_only_a_run_that_converts_ccg_demands_ccgbank(tmp_path):
    folders = convert_outputs(snakemake("-n", "--directory", str(tmp_path), "--config", "preset=paper").stdout)
    assert {"tatoeba", "ccg"} <= set(folders)
    # --touch makes a real run (onstart runs, unlike -n) whose jobs only touch their outputs:
    # nothing is downloaded.
    tatoeba, ccg = tmp_path / "tatoeba", tmp_path / "ccg"
    proc = snakemake("--cores", "1", "--touch", "--directory", str(tatoeba), "--config", "preset=paper",
                     "--", folders["tatoeba"], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "CCGbank" not in out and "2 of 2 steps (100%) done" in out  # download_source, convert_dataset
    assert not (tatoeba / "resources").exists()
    proc = snakemake("--cores", "1", "--touch", "--directory", str(ccg), "--config", "preset=paper",
                     "--", folders["ccg"], check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "CCGbank not found at 'resources/manual/ccgbank_1_1'" in out and "Finished jobid" not in out
    assert not (ccg / "logs").exists() and not (ccg / "resources").exists()


def test_dropping_ccg_removes_its_jobs(tmp_path):
    tasks = '", "'.join(t for t in INTERMEDIATE if t != "ccg")
    counts = job_counts(snakemake("-n", "--directory", str(tmp_path), "--config", "preset=paper",
                                  f'intermediate={{"tasks": ["{tasks}"]}}').stdout)
    assert counts["convert_dataset"] == len(DATASETS) - 1
    assert counts["finetune_intermediate"] == ENCODERS - 2
    assert counts["finetune_target"] == (ENCODERS - 1) * TRAININGS * SEEDS

