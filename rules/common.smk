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
    target=_alternatives(PLAN.targets),
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
    """Dataset folders a target job trains, selects and predicts on."""
    job = PLAN.target_job(wildcards.training)
    task = TARGET_TRAININGS[wildcards.training]
    return data_dirs([s.dataset for s in task.train] + [d for d, _, _ in job["dev_sources"]] + list(job["predict"]))


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
