"""Shared helpers: the resolved experiment, wildcard constraints, paths and input functions.

The only .smk file with `def`. All experiment logic lives in the xstilts library
(xstilts.config, xstilts.plan); this file turns it into file names.
"""

import re
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from snakemake.exceptions import WorkflowError

from xstilts.config import ConfigError, resolve
from xstilts.plan import Plan
from xstilts.tasks import BASELINE, INTERMEDIATE_TASKS, TARGET_TASKS, TARGET_TRAININGS

try:
    EXP = resolve(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

PLAN = Plan(EXP)
MODEL = PLAN.model
DATA = "results/data"
LABELS = "results/labels"
CONDA_ENV = "../envs/xstilts.yaml"


def _alternatives(values):
    return "|".join(re.escape(v) for v in values)


wildcard_constraints:
    model=re.escape(MODEL),
    dataset=_alternatives(PLAN.datasets()),
    itask=_alternatives(PLAN.itasks),
    encoder=_alternatives(PLAN.encoders),
    training=_alternatives(PLAN.trainings),
    target=_alternatives(PLAN.evaluated_targets),
    seed=r"\d+",


def data_dirs(datasets):
    """Canonical dataset folders (one make_* / convert_* job each)."""
    return [f"{DATA}/{d}" for d in sorted(set(datasets))]


def encoder_dir(wildcards):
    """Phase-1 encoder for the baseline row, else the phase-2 (intermediate) encoder."""
    return f"results/encoders/{wildcards.model}/{getattr(wildcards, 'encoder', BASELINE)}"


def intermediate_data(wildcards):
    """Dataset folders an intermediate job trains and selects on."""
    job = PLAN.intermediate_job(wildcards.itask)
    return data_dirs(s.dataset for n in job["tasks"] for s in INTERMEDIATE_TASKS[n].train + INTERMEDIATE_TASKS[n].dev)


def target_data(wildcards):
    """Dataset folders a target job trains and selects on."""
    job = PLAN.target_job(wildcards.training)
    task = TARGET_TRAININGS[wildcards.training]
    stages = [d for stage in job.get("stages", []) for d, _, _ in stage["train"] + stage["dev"]]
    return data_dirs([s.dataset for s in task.train] + [d for d, _, _ in job["dev_sources"]] + stages)


def prediction_data(wildcards):
    """Dataset folders a prediction job reads test data from (every target the training serves)."""
    return data_dirs(PLAN.predict_job(wildcards.training)["predict"])


def run_folders(wildcards):
    """Target task -> the XTREME prediction folder holding `<task>/test-<lang>.*` for one run."""
    folders = {}
    for t in PLAN.targets:
        training = TARGET_TASKS[t].training
        if training is None:
            folders[t] = f"results/retrieval/{wildcards.model}/{wildcards.encoder}/predictions"
        else:
            folders[t] = f"results/target/{wildcards.model}/{wildcards.encoder}/{training}/seed{wildcards.seed}/predictions"
    return folders


def run_predictions(wildcards):
    """The prediction outputs a run's scores depend on (one folder per job)."""
    folders = run_folders(wildcards)
    return sorted({f"{folders[t]}/{t}" if TARGET_TASKS[t].retrieval else folders[t] for t in folders})


def all_scores():
    return [f"results/scores/{MODEL}/{e}/seed{s}.json" for e in PLAN.encoders for s in PLAN.seeds]


def all_target_metrics():
    """Dev/test metrics of every phase-3 run (checkpoint selection: best intermediate task)."""
    return [
        f"results/target/{MODEL}/{e}/{t}/seed{s}/metrics.json"
        for e in PLAN.encoders
        for t in PLAN.trainings
        for s in PLAN.seeds
    ]


def all_retrieval_details(task):
    return [f"results/retrieval/{MODEL}/{e}/{task}.json" for e in PLAN.encoders] if task in PLAN.targets else []


# ------------------------------------------------------------------------------------ the paper
PAPER = "results/paper"
PAPER_DIR = f"{workflow.basedir}/paper"
CAPTIONS = f"{PAPER_DIR}/captions.yaml"
FIGURE_STYLE = f"{PAPER_DIR}/figures.mplstyle"
PUBLISHED = [f"{PAPER_DIR}/published/{n}.csv" for n in ("xtreme_test", "categories", "claims")]


def training_hparams():
    """Display name -> effective hyperparameters of every training of the grid (paper table)."""
    from xstilts.tasks import DISPLAY_NAMES

    jobs = {}
    if EXP["model"]["source"] == "pretrain":
        jobs["MLM pretraining (phase 1)"] = PLAN.pretrain_job()["hparams"]
    for itask in PLAN.itasks:
        jobs[f"{DISPLAY_NAMES.get(itask, itask)} (intermediate)"] = PLAN.intermediate_job(itask)["hparams"]
    # Target trainings by what they train on: XQuAD and MLQA share the SQuAD v1.1 training.
    names = {"squad": "SQuAD v1.1 for XQuAD, MLQA"}
    for training in PLAN.trainings:
        name = names.get(training, DISPLAY_NAMES.get(training, training))
        jobs[f"{name} (target)"] = PLAN.target_job(training)["hparams"]
    return jobs


def _paper_files(main="main.tex"):
    from xstilts.paper import paper_files

    try:
        return paper_files(PAPER_DIR, main)
    except FileNotFoundError as error:
        raise WorkflowError(str(error)) from None


_sources, PAPER_GENERATED = _paper_files()
PAPER_SOURCES = [f"{PAPER_DIR}/{s}" for s in _sources]
# Sections \input through generated/extra_sections.tex only when the run has what they need:
# (section, the generated files it reads).
PAPER_EXTRA_SECTIONS = [
    (section, _paper_files(section)[1])
    for section, active in [("sections/reasoning.tex", PLAN.reasoning_complete)]
    if active
]


def all_benchmarks():
    """The `benchmark:` file of every compute job of the grid (the compute table's input)."""
    files = []
    if EXP["model"]["source"] == "pretrain":
        files += [f"benchmarks/{r}/{MODEL}.tsv" for r in ("train_tokenizer", "pretrain_mlm")]
    files += [f"benchmarks/finetune_intermediate/{MODEL}/{i}.tsv" for i in PLAN.itasks]
    files += [
        f"benchmarks/{rule}/{MODEL}/{e}/{t}/seed{s}.tsv"
        for rule in ("finetune_target", "predict_target")
        for e in PLAN.encoders
        for t in PLAN.trainings
        for s in PLAN.seeds
    ]
    retrieval = {"bucc2018": "mine_bucc", "tatoeba": "search_tatoeba"}
    if PLAN.retrieval_targets:
        files += [f"benchmarks/embed_sentences/{MODEL}/{e}.tsv" for e in PLAN.encoders]
    for task in PLAN.retrieval_targets:
        files += [f"benchmarks/{retrieval[task]}/{MODEL}/{e}.tsv" for e in PLAN.encoders]
    return files


def gpu_rules():
    """Rules that ask for a GPU (resources gpu=...): their jobs count as GPU-hours."""
    return sorted(r.name for r in workflow.rules if "gpu" in r.resources)
