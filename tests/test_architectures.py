"""The other phase-1 architectures through the workflow: BERT, DeBERTa-v2 and a decoder (Qwen2)
side by side on a minimal grid (tests/configs/smoke_models.yaml), in one run: each model's own
results, the comparison across them, and a per-model override that reruns only that model's jobs.

A module of its own (not part of tests/test_workflow.py, whose smoke runs take minutes too), so
that pytest-xdist can run the two on different processes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT
from test_workflow import TEX, rerun_jobs, snakemake

# The other phase-1 architectures (a model's pretrain.architecture) side by side on a minimal grid,
# in one run (tests/configs/smoke_models.yaml): two encoders and a decoder through the real DAG.
MODELS_CONFIG = ROOT / "tests" / "configs" / "smoke_models.yaml"
MODELS_RUN = "results/smoke-models"
# model -> (architecture, family, tokenizer class), in the config's order
ARCHITECTURE_MODELS = {
    "bert-smoke": ("bert", "encoder", "BertTokenizer"),
    "deberta-smoke": ("deberta-v2", "encoder", "DebertaV2Tokenizer"),
    "qwen2-smoke": ("qwen2", "decoder", "Qwen2Tokenizer"),
}


@pytest.fixture(scope="module")
def models_run(tmp_path_factory) -> Path:
    """The working directory of one run of tests/configs/smoke_models.yaml."""
    workdir = tmp_path_factory.mktemp("smoke_models")
    snakemake("--configfile", str(MODELS_CONFIG), "--cores", "2", "--directory", str(workdir))
    return workdir


@pytest.mark.workflow
def test_models_side_by_side(models_run):
    """Encoders and a decoder on the same grid: own results each, one comparison across them."""
    from itertools import combinations

    from xstilts.modeling import model_family
    from transformers import AutoConfig

    run = models_run / MODELS_RUN
    matrices = {m: pd.read_csv(run / f"tables/{m}/matrix.csv", index_col=0) for m in ARCHITECTURE_MODELS}
    for a, b in combinations(matrices, 2):
        assert matrices[a].index.equals(matrices[b].index) and matrices[a].columns.equals(matrices[b].columns)
        assert not matrices[a].equals(matrices[b]), (a, b)  # different models, not one twice
    # Each model's jobs ran with its own settings: the decoder's sentence embeddings pool the last
    # token (its entry's retrieval.pooling), the encoders' the mean (the experiment's).
    for model, (_, family, _) in ARCHITECTURE_MODELS.items():
        pooling = "last pooling" if family == "decoder" else "mean pooling"
        log = (models_run / f"logs/smoke-models/embed_sentences/{model}/baseline.log").read_text()
        assert f"encoders/{model}/baseline: " in log and pooling in log, (model, log)
    families = {m: model_family(AutoConfig.from_pretrained(run / f"encoders/{m}/baseline", local_files_only=True))
                for m in matrices}
    assert families == {m: family for m, (_, family, _) in ARCHITECTURE_MODELS.items()}

    # The comparison: every gain is the model's own matrix cell minus its own baseline.
    frame = pd.read_csv(run / "comparison/models.csv")
    assert list(dict.fromkeys(frame["model"])) == list(ARCHITECTURE_MODELS)
    assert dict(zip(frame["model"], frame["family"])) == families
    for model, matrix in matrices.items():
        rows = frame[(frame["model"] == model) & (frame["row"] == "intermediate")]
        assert len(rows) == len(matrix.columns)  # mnli, on every target and the average
        for row in rows.itertuples():
            expected = matrix.at[row.encoder, row.target] - matrix.at["baseline", row.target]
            assert row.gain == pytest.approx(expected, abs=1e-9), (model, row.target)
    verdicts = pd.read_csv(run / "comparison/reasoning_verdicts.csv")
    assert set(verdicts["model"]) == set(matrices) and set(verdicts["target"]) >= {"xnli", "xcopa"}
    assert set(verdicts["verdict"]) <= {"helps", "hurts", "n.s."}
    for model in matrices:
        record = json.loads((run / f"reasoning/{model}/significance.json").read_text())
        mine = verdicts[verdicts["model"] == model]
        assert sorted(mine["verdict"]) == sorted(c["verdict"] for c in record["comparisons"])
    macros = (run / "comparison/generated/models_macros.tex").read_text()
    assert macros.count("\\newcommand") > 10
    assert (run / "comparison/model_gains.png").stat().st_size > 1000
    # Each model's paper has the cross-model section.
    for model in matrices:
        assert "sections/models" in (run / f"paper/{model}/generated/extra_sections.tex").read_text()


@pytest.mark.workflow
@pytest.mark.parametrize("model", ARCHITECTURE_MODELS)
def test_other_architectures_run_end_to_end(models_run, model):
    from transformers import AutoConfig, AutoTokenizer

    architecture, _, tokenizer_class = ARCHITECTURE_MODELS[model]
    run = models_run / MODELS_RUN
    matrix = pd.read_csv(run / f"tables/{model}/matrix.csv", index_col=0)
    assert list(matrix.index) == ["baseline", "mnli"]
    assert list(matrix.columns) == ["xnli", "xquad", "tatoeba", "avg"]
    assert all(math.isfinite(v) for v in matrix.values.ravel())
    assert (matrix.values >= 0).all() and (matrix.values <= 100).all()
    metrics = json.loads((run / f"target/{model}/baseline/xnli/seed0/metrics.json").read_text())
    accuracy = metrics["result"]["dev"]["xnli"]["sets"]["mnli/en/dev"]["accuracy"]
    assert accuracy > 40.0, f"{architecture}: English XNLI dev accuracy {accuracy:.1f} is not above chance (33.3)"

    encoder = run / f"encoders/{model}/baseline"
    assert AutoConfig.from_pretrained(encoder, local_files_only=True).model_type == architecture
    tokenizer = AutoTokenizer.from_pretrained(encoder, local_files_only=True)
    assert type(tokenizer).__name__ == tokenizer_class
    if architecture == "bert":
        assert "token_type_ids" in tokenizer.model_input_names
        assert (tokenizer.cls_token, tokenizer.sep_token) == ("[CLS]", "[SEP]")


@pytest.mark.workflow
def test_one_models_override_reruns_only_that_models_jobs(models_run, tmp_path):
    # The decoder's phase-3 learning rate: its fine-tuning jobs and what depends on them, and the
    # comparison; of the other models only their papers, which show the comparison.
    config = yaml.safe_load(MODELS_CONFIG.read_text())
    decoder = next(m for m in config["models"] if m["name"] == "qwen2-smoke")
    decoder["targets"] = {"hparams": {"learning_rate": 1.0e-3}}
    override = tmp_path / "override.yaml"
    override.write_text(yaml.safe_dump({"models": config["models"]}))
    proc = snakemake("--configfile", str(MODELS_CONFIG), str(override), "-n", "--directory", str(models_run))
    jobs = rerun_jobs(proc.stdout)
    outputs = [o for rule, paths in jobs.items() if rule != "compile_paper" for o in paths]
    assert outputs and not any(m in o for o in outputs for m in ARCHITECTURE_MODELS if m != "qwen2-smoke"), outputs
    assert len(jobs.get("compile_paper", [])) == (len(ARCHITECTURE_MODELS) if TEX else 0)
    # xnli and squad for the baseline and mnli encoders; not xcopa, whose own task_hparams (the
    # demo's) set its learning rate and that of its SIQA stage.
    trainings = 2 * 2
    assert len(jobs["finetune_target"]) == len(jobs["predict_target"]) == trainings
    assert "finetune_intermediate" not in jobs and "pretrain_mlm" not in jobs
    assert len(jobs["make_model_comparison"]) == 1
