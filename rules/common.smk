"""Shared helpers: the resolved experiment, wildcard constraints, paths and input functions.

The only .smk file with `def`. All experiment logic lives in the xstilts library
(xstilts.config, xstilts.plan); this file turns it into file names.
"""

import functools
import os
import re
import sys

sys.path.insert(0, str(Path(workflow.basedir) / "scripts"))

from snakemake.exceptions import WorkflowError

from xstilts.codehash import CachedPackage
from xstilts.config import ConfigError, resolve
from xstilts.feature_cache import KEY_CHARS
from xstilts.plan import Plan
from xstilts.tasks import BASELINE, INTERMEDIATE_TASKS, TARGET_TASKS, TARGET_TRAININGS

try:
    EXP = resolve(config)
except ConfigError as error:
    raise WorkflowError(str(error)) from None

PLAN = Plan(EXP)
# The grid's pretrained models (config `models`), in config order: the {model} wildcard.
MODELS = PLAN.models
CONDA_ENV = "../envs/xstilts.yaml"

# ------------------------------------------------------------------------------------- paths
# Every output path is built here, and only here. A run (config `run`, default: the preset's
# name) owns results/<run>/, logs/<run>/ and benchmarks/<run>/, so two presets or two run names
# in one working directory never touch each other's files; within a run, everything that
# depends on the model sits under its {model} folder. Downloads (resources/) are shared: they
# are identified by their pins, not by a run.
RUN = EXP["run"]

# Checks run once before the first job of a real run (not a dry run): rule files append to this
# list, the Snakefile's one `onstart` runs them (Snakemake keeps only one onstart handler).
ONSTART_CHECKS = []
_RUN_LOCKS = []


def hold_run_lock():
    """Refuse to start while another snakemake runs the same run in this directory.

    Snakemake's own lock is checked and then written, so two processes started at once can both
    pass it. This is a flock, held until this process exits (however it exits, kill -9 included),
    so exactly one of two simultaneous runs goes on; the other stops with a message naming it.
    """
    from xstilts.jobcontrol import JobLock, JobLockedError

    lock = JobLock(f".snakemake/xstilts/{RUN}.lock", what=f"the workflow run '{RUN}' in {os.getcwd()}", wait=False)
    try:
        lock.acquire()
    except JobLockedError as error:
        raise WorkflowError(str(error)) from None
    _RUN_LOCKS.append(lock)


_WORKERS = []


def start_worker():
    """A pre-imported worker for this run's local jobs (xstilts.worker), unless jobs run on other
    hosts (a cluster executor) or worker.why_not says otherwise (XSTILTS_NO_WORKER=1, a GPU
    machine); stopped by stop_worker or with this process."""
    import atexit

    from xstilts import worker

    if not (workflow.local_exec and workflow.is_main_process):
        return
    reason = worker.why_not()
    if reason:
        logger.info(f"No job worker ({reason}): every job runs in a process of its own")
        return
    handle = worker.start(log_path("worker"), Path(workflow.basedir) / "scripts")
    _WORKERS.append(handle)
    atexit.register(handle.stop)


def stop_worker():
    while _WORKERS:
        _WORKERS.pop().stop()


def check_manual_data():
    """Manual data (CCGbank) that the jobs about to run would convert, checked before the first one."""
    from xstilts.pipeline import manual_data_problems

    converting = [j.wildcards.dataset for j in workflow.dag.needrun_jobs() if j.rule.name == "convert_dataset"]
    problems = manual_data_problems(PLAN, DATA, converting)
    if problems:
        raise WorkflowError("\n".join(problems))

RESULTS = f"results/{RUN}"
LOGS = f"logs/{RUN}"
BENCHMARKS = f"benchmarks/{RUN}"
DATA = f"{RESULTS}/data"
LABELS = f"{RESULTS}/labels"
CHECKPOINTS = f"{RESULTS}/checkpoints"
ENCODERS = f"{RESULTS}/encoders/{{model}}"
TARGET_RUN = f"{RESULTS}/target/{{model}}/{{encoder}}/{{training}}/seed{{seed}}"
TARGET_MODEL = f"{TARGET_RUN}/model"
RETRIEVAL = f"{RESULTS}/retrieval/{{model}}/{{encoder}}"
# One feature set, written by tokenize_dataset: a dataset's files encoded with the model's
# tokenizer under one set of encoding settings, named by their digest (feature_cache.settings_key).
FEATURES = f"{RESULTS}/features/{{model}}/{{dataset}}/{{settings}}"
SCORES = f"{RESULTS}/scores/{{model}}/{{encoder}}/seed{{seed}}.json"
TABLES = f"{RESULTS}/tables/{{model}}"
FIGURES = f"{RESULTS}/figures/{{model}}"
PAPER = f"{RESULTS}/paper/{{model}}"
REASONING = f"{RESULTS}/reasoning/{{model}}"
# Across the models of the run: one folder beside the per-model ones (rules/comparison.smk).
COMPARISON = f"{RESULTS}/comparison"


def log_path(name, *parts):
    """logs/<run>/<name>/<parts>.log"""
    return f"{os.path.join(LOGS, name, *parts)}.log"


def benchmark_path(name, *parts):
    """benchmarks/<run>/<name>/<parts>.tsv (the compute table reads these)."""
    return f"{os.path.join(BENCHMARKS, name, *parts)}.tsv"


def checkpoint_path(name, *parts):
    """Resume checkpoints: outside Snakemake's outputs, so a failed job's are kept."""
    return os.path.join(CHECKPOINTS, name, *parts)


def for_model(template, model, **wildcards):
    """A path template with {model} (and any other given wildcards) filled in."""
    return template.format(model=model, **wildcards) if wildcards else template.replace("{model}", model)


def model_plan(wildcards):
    """The plan of a job's model (its hyperparameters, adapters, pooling, source)."""
    return PLAN.for_model(wildcards.model)


# ------------------------------------------------------------------------------ code versions
# Snakemake tracks a rule's script, not the library it imports: each job's params carry the
# fingerprint of the library code its script can reach (xstilts.codehash), so editing a function
# re-runs exactly the jobs that may execute it; comments and docstrings re-run nothing. The
# fingerprints are cached between processes (~/.cache/xstilts/codehash, keyed by the package's
# bytes): a Snakemake start, a dry run or a cluster job, reads them instead of parsing the package.
_LIBRARY = CachedPackage(Path(workflow.basedir) / "scripts" / "xstilts")


@functools.cache  # per script, for this process: every job of a rule asks (hundreds of jobs, a dozen scripts)
def code_version(script):
    """Fingerprint of the xstilts code that scripts/<script>.py can execute."""
    return _LIBRARY.fingerprint(Path(workflow.basedir) / "scripts" / f"{script}.py")


def _alternatives(values):
    return "|".join(re.escape(v) for v in values)


wildcard_constraints:
    model=_alternatives(MODELS),
    dataset=_alternatives(PLAN.datasets()),
    itask=_alternatives(PLAN.itasks),
    encoder=_alternatives(PLAN.encoders),
    training=_alternatives(PLAN.trainings),
    target=_alternatives(PLAN.evaluated_targets),
    seed=r"\d+",
    settings=rf"[0-9a-f]{{{KEY_CHARS}}}",


def data_dirs(datasets):
    """Canonical dataset folders (one make_* / convert_* job each)."""
    return [f"{DATA}/{d}" for d in sorted(set(datasets))]


def encoder_dir(wildcards):
    """Phase-1 encoder for the baseline row, else the phase-2 (intermediate) encoder."""
    return f"{ENCODERS.format(model=wildcards.model)}/{getattr(wildcards, 'encoder', BASELINE)}"


def intermediate_data(wildcards):
    """Dataset folders an intermediate job trains and selects on (a variant's translations or corpus too)."""
    train, dev = model_plan(wildcards).intermediate_sources(wildcards.itask)
    return data_dirs(s.dataset for s in train + dev)


def target_data(wildcards):
    """Dataset folders a target job trains and selects on."""
    job = model_plan(wildcards).target_job(wildcards.training)
    task = TARGET_TRAININGS[wildcards.training]
    stages = [d for stage in job.get("stages", []) for d, _, _ in stage["train"] + stage["dev"]]
    return data_dirs([s.dataset for s in task.train] + [d for d, _, _ in job["dev_sources"]] + stages)


def prediction_data(wildcards):
    """Dataset folders a prediction job reads test data from (every target the training serves)."""
    return data_dirs(model_plan(wildcards).predict_job(wildcards.training)["predict"])


def tokenizer_dir(wildcards):
    """The folder a model's tokenizer is read from: train_tokenizer's (model source pretrain, so
    tokenisation runs beside phase-1 pretraining), else the phase-1 model folder (prepare_model).
    Every later model folder saves the same tokenizer; the jobs reading features check that."""
    if model_plan(wildcards).exp["model"]["source"] == "pretrain":
        return for_model(rules.train_tokenizer.output[0], wildcards.model)
    return f"{ENCODERS.format(model=wildcards.model)}/{BASELINE}"


def feature_job(wildcards):
    """Params of a tokenize_dataset job: the feature set's settings and items."""
    try:
        return model_plan(wildcards).feature_job(wildcards.dataset, wildcards.settings)
    except KeyError:
        folder = FEATURES.format(model=wildcards.model, dataset=wildcards.dataset, settings=wildcards.settings)
        raise WorkflowError(f"{folder}: no job of this run reads a feature set "
                            f"{wildcards.dataset}/{wildcards.settings} of model {wildcards.model}") from None


def feature_data(wildcards):
    """Dataset folders a tokenize_dataset job reads."""
    from xstilts.feature_cache import job_datasets

    return data_dirs(job_datasets(feature_job(wildcards)))


def feature_dirs(kind):
    """Input function: the feature folders (rule tokenize_dataset) a job of ``kind`` (intermediate,
    target, predict) reads."""

    def folders(wildcards):
        name = wildcards.itask if kind == "intermediate" else wildcards.training
        return [FEATURES.format(model=wildcards.model, dataset=d, settings=k)
                for d, k in model_plan(wildcards).feature_inputs(kind, name)]

    return folders


def prediction_folder(model, encoder, target, seed):
    """The XTREME prediction folder holding `<target>/test-<lang>.*` of one run of one target."""
    training = TARGET_TASKS[target].training
    if training is None:
        return f"{RETRIEVAL.format(model=model, encoder=encoder)}/predictions"
    return f"{TARGET_RUN.format(model=model, encoder=encoder, training=training, seed=seed)}/predictions"


def run_folders(wildcards):
    """Target task -> the XTREME prediction folder holding `<task>/test-<lang>.*` for one run."""
    return {t: prediction_folder(wildcards.model, wildcards.encoder, t, wildcards.seed) for t in PLAN.targets}


def run_predictions(wildcards):
    """The prediction outputs a run's scores depend on (one folder per job)."""
    folders = run_folders(wildcards)
    return sorted({f"{folders[t]}/{t}" if TARGET_TASKS[t].retrieval else folders[t] for t in folders})


def reasoning_folders(wildcards):
    """encoder -> seed -> reasoning target -> its prediction folder (the significance analysis)."""
    return {
        e: {str(s): {t: prediction_folder(wildcards.model, e, t, s) for t in PLAN.reasoning_targets} for s in PLAN.seeds}
        for e in PLAN.encoders
    }


def reasoning_predictions(wildcards):
    return sorted({f for e in reasoning_folders(wildcards).values() for s in e.values() for f in s.values()})


def run_keys(encoders=None):
    """(encoder, seed) of every scored run (of ``encoders``; default every row of the grid), in table order."""
    return [(e, s) for e in (PLAN.encoders if encoders is None else encoders) for s in PLAN.seeds]


def all_scores(wildcards):
    return [SCORES.format(model=wildcards.model, encoder=e, seed=s) for e, s in run_keys()]


def matrix_scores(wildcards):
    """Score files of the paper's matrix rows (baseline, intermediate tasks, multi-task)."""
    return [SCORES.format(model=wildcards.model, encoder=e, seed=s) for e, s in run_keys(PLAN.matrix_encoders)]


def variant_scores(wildcards):
    """Score files of the variant tables: each variant row, its plain task's row and the baseline."""
    rows = [BASELINE] + [e for v in PLAN.variants for pair in PLAN.variant_rows(v) for e in pair]
    return [SCORES.format(model=wildcards.model, encoder=e, seed=s) for e, s in run_keys(list(dict.fromkeys(rows)))]


def target_run_keys(encoders=None):
    """(encoder, training, seed) of every phase-3 run (of ``encoders``; default every row)."""
    return [(e, t, s) for e in (PLAN.encoders if encoders is None else encoders) for t in PLAN.trainings
            for s in PLAN.seeds]


def all_target_metrics(wildcards):
    """Dev metrics of the matrix rows' phase-3 runs (checkpoint selection: best intermediate task)."""
    return [f"{TARGET_RUN.format(model=wildcards.model, encoder=e, training=t, seed=s)}/metrics.json"
            for e, t, s in target_run_keys(PLAN.matrix_encoders)]


def all_retrieval_details(task):
    def files(wildcards):
        return [f"{RETRIEVAL.format(model=wildcards.model, encoder=e)}/{task}.json" for e in retrieval_detail_keys(task)]

    return files


def retrieval_detail_keys(task):
    return list(PLAN.matrix_encoders) if task in PLAN.targets else []


# ---------------------------------------------------------------------- workflow source files
# Files of the workflow itself (captions, plot style, published numbers, the paper's sources)
# are not inputs: as inputs they would be recorded by absolute path, so moving or copying a
# finished working directory would re-run every rule reading them. A rule gets instead, as a
# param, each file's path relative to the workflow folder and its sha256: editing a file
# re-runs exactly the rules that read it, moving the checkout re-runs nothing. Scripts open
# them relative to the workflow folder (the parent of snakemake.scriptdir).
PAPER_DIR = f"{workflow.basedir}/paper"


def workflow_files(*names):
    """{relative path: sha256} of files of the workflow folder (a param of the rules reading them)."""
    import hashlib

    out = {}
    for name in names:
        path = Path(workflow.basedir) / name
        if not path.is_file():
            raise WorkflowError(f"{path}: missing from the workflow (a source file the rules read)")
        out[name] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


CAPTIONS = "paper/captions.yaml"
FIGURE_STYLE = "paper/figures.mplstyle"
PUBLISHED = [f"paper/published/{n}.csv" for n in ("xtreme_test", "categories", "claims")]


def training_hparams(model):
    """Display name -> effective hyperparameters of every training of one model (paper table)."""
    from xstilts.tasks import DISPLAY_NAMES, display_name

    plan = PLAN.for_model(model)
    jobs = {}
    if plan.exp["model"]["source"] == "pretrain":
        jobs["MLM pretraining (phase 1)"] = plan.pretrain_job()["hparams"]
    for itask in PLAN.itasks:
        job = plan.intermediate_job(itask)
        jobs[f"{display_name(itask)} (intermediate)"] = job["hparams"]
        if job.get("variant", {}).get("name") == "mlm":
            jobs[f"{display_name(itask)}: its LM batches"] = job["variant"]["hparams"]
    # Target trainings by what they train on: XQuAD and MLQA share the SQuAD v1.1 training.
    names = {"squad": "SQuAD v1.1 for XQuAD, MLQA"}
    for training in PLAN.trainings:
        name = names.get(training, DISPLAY_NAMES.get(training, training))
        jobs[f"{name} (target)"] = plan.target_job(training)["hparams"]
    return jobs


# Where the paper's generated references (\input{generated/...}, tables/..., figures/...) live
# in this run; compile_paper lays them out under those names for TeX.
PAPER_ROOTS = {"generated": f"{PAPER}/generated", "tables": TABLES, "figures": FIGURES, "comparison": COMPARISON}


def _paper_files(main="main.tex"):
    from xstilts.paper import paper_files

    try:
        return paper_files(PAPER_DIR, main)
    except FileNotFoundError as error:
        raise WorkflowError(str(error)) from None


def paper_generated(names, model):
    """TeX name (e.g. `tables/matrix.tex`) -> the output path of this run that provides it."""
    out = {}
    for name in names:
        root, rest = name.split("/", 1)
        out[name] = os.path.join(for_model(PAPER_ROOTS[root], model), rest)
    return out


# A run of several models compares them (rules/comparison.smk), and each model's paper has the section.
COMPARE_MODELS = len(MODELS) > 1
_sources, _generated = _paper_files()
PAPER_SOURCES = [f"paper/{s}" for s in _sources]  # main.tex first
# Sections \input through generated/extra_sections.tex only when the run has what they need:
# (section, the generated files it reads).
PAPER_EXTRA_SECTIONS = [
    (section, _paper_files(section)[1])
    for section, active in [("sections/reasoning.tex", PLAN.reasoning_complete),
                            ("sections/models.tex", COMPARE_MODELS)]
    if active
]
# Generated files \input by generated files: the per-language appendix reads each target's table,
# generated/variants.tex each variant's table.
PAPER_GENERATED_NAMES = sorted(set(_generated) | {f for _, files in PAPER_EXTRA_SECTIONS for f in files}
                               | {f"tables/target_{t}.tex" for t in PLAN.targets}
                               | {f"tables/variant_{v}.tex" for v in PLAN.variants})


def all_benchmarks(model):
    """(rule name, benchmark file) of every compute job of one model's grid (its compute table's input)."""
    jobs = []
    if PLAN.for_model(model).exp["model"]["source"] == "pretrain":
        jobs += [(r, benchmark_path(r, model)) for r in ("train_tokenizer", "pretrain_mlm")]
    jobs += [("tokenize_dataset", benchmark_path("tokenize_dataset", model, d, k))
             for d, k in PLAN.for_model(model).feature_sets()]
    jobs += [("finetune_intermediate", benchmark_path("finetune_intermediate", model, i)) for i in PLAN.itasks]
    for name in ("finetune_target", "predict_target"):
        jobs += [(name, benchmark_path(name, model, e, t, f"seed{s}")) for e, t, s in target_run_keys()]
    retrieval = {"bucc2018": "mine_bucc", "tatoeba": "search_tatoeba"}
    if PLAN.retrieval_targets:
        jobs += [("embed_sentences", benchmark_path("embed_sentences", model, e)) for e in PLAN.encoders]
    for task in PLAN.retrieval_targets:
        jobs += [(retrieval[task], benchmark_path(retrieval[task], model, e)) for e in PLAN.encoders]
    return jobs


def gpu_rules():
    """Rules that ask for a GPU (resources gpu=...): their jobs count as GPU-hours."""
    return sorted(r.name for r in workflow.rules if "gpu" in r.resources)


# ------------------------------------------------------------------------- resource requests
# Each model-dependent job asks for the memory and time its model and data need (xstilts.cost:
# the cost model of scripts/estimate_grid.py, measured throughput where benchmarks/training/
# holds a record for the model), times the attempt. A profile's `set-resources` overrides them.
def _sizing():
    from xstilts.cost import BENCH_DIR, BenchRecordError, Cost, Sizing, bench_records
    from xstilts.cost import DEFAULT_INFER_FLOOR_MS, DEFAULT_TFLOPS, DEFAULT_TRAIN_FLOOR_MS

    try:
        records = bench_records(Path(workflow.basedir) / BENCH_DIR)
    except BenchRecordError as error:
        raise WorkflowError(str(error)) from None
    cost = Cost(DEFAULT_TFLOPS, DEFAULT_TRAIN_FLOOR_MS, DEFAULT_INFER_FLOOR_MS, records=records)
    # A hub model without a known shape is read from its download once rule download_model has run.
    return Sizing(EXP, cost, models_dir="resources/models")


SIZING = _sizing()


def job_mem_mb(rule):
    """resources mem_mb of a rule's jobs: host memory for the job's model and data, x attempt."""
    return lambda wildcards, attempt: SIZING.mem_mb(rule, attempt=attempt, **dict(wildcards.items()))


def job_runtime(rule):
    """resources runtime (minutes) of a rule's jobs: estimated time x a safety factor, x attempt."""
    return lambda wildcards, attempt: SIZING.runtime(rule, attempt=attempt, **dict(wildcards.items()))
