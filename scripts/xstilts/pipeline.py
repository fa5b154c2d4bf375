"""Job-level functions: what each Snakemake rule does, with explicit arguments.

Rule scripts in ``scripts/`` only unpack the ``snakemake`` object and call one function here,
so every job can also be run (and tested) without Snakemake. ``job`` arguments are the
per-job settings computed by ``Plan.*_job`` (passed to rules as params).

Importing this module stays light (no numpy, torch or transformers at module level): a job
process imports it, then hands itself to the local worker (``run_rule``), so everything heavy is
imported inside the functions that need it.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterable

from xstilts import formats
from xstilts.tasks import (
    DATASETS,
    TARGET_TASKS,
    TARGET_TRAININGS,
    TEXT,
    Source,
    TrainingTask,
)

log = logging.getLogger("xstilts")


# --------------------------------------------------------------------------------------------
# Plumbing


#: Logs of earlier attempts of a job kept beside its log (``<log>.1`` the last one, ``<log>.2`` ...).
LOG_ATTEMPTS_KEPT = 3



def setup_logging(log_file: str | Path | None, network: bool = False) -> None:
    """Log to the rule's log file (progress, metrics); warnings also go to stderr.

    Every rule script calls this first, before any Hugging Face import: unless the job is a
    download job (``network=True``), it also sets the Hugging Face offline switches
    (``offline_mode``), so no training, prediction or scoring job can reach the network.

    Snakemake deletes a job's log before it runs the job again, so each attempt's log is also
    hard-linked to a hidden name, and the next attempt renames that to ``<log>.1`` (shifting older
    ones up to ``<log>.{LOG_ATTEMPTS_KEPT}``): the log of a killed attempt survives its rerun.
    """
    if not network:
        offline_mode()
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        _rotate_attempts(Path(log_file))
        fh = logging.FileHandler(log_file, mode="w", encoding="utf-8")
        fh.setFormatter(fmt)
        root.addHandler(fh)
        _link_attempt(Path(log_file))
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.WARNING if log_file else logging.INFO)
    err.setFormatter(fmt)
    root.addHandler(err)


def _attempt_link(log_file: Path) -> Path:
    return log_file.with_name(f".{log_file.name}.attempt")


def _rotate_attempts(log_file: Path) -> None:
    previous = _attempt_link(log_file)
    if not previous.exists():
        return
    for n in range(LOG_ATTEMPTS_KEPT, 1, -1):
        older = log_file.with_name(f"{log_file.name}.{n - 1}")
        if older.exists():
            os.replace(older, log_file.with_name(f"{log_file.name}.{n}"))
    os.replace(previous, log_file.with_name(f"{log_file.name}.1"))


def _link_attempt(log_file: Path) -> None:
    try:
        os.link(log_file, _attempt_link(log_file))
    except OSError as e:  # a file system without hard links: the log of a killed attempt is not kept
        log.info("cannot keep this attempt's log beside %s (%s)", log_file, e.strerror)


def run_rule(rule: str, log_files: Iterable[str], inputs: Iterable[str], outputs: Iterable[str], params: Any,
             body: Any, network: bool = False, gpus: int = 0) -> int:
    """Run one rule job safely; every rule script calls this with its job as ``body`` (no arguments).

    First, unless the job has network access, hand the whole job to the local worker if there is
    one (``worker.delegate``: the fork runs this same script, and this function again, there). In
    order: set up logging (``setup_logging``); watch the workflow process that started the job
    and stop when it dies (``jobcontrol.watch_parent``); check every input against the manifest of
    the job that wrote it (``manifest.verify``); take the job's lock, so that no two processes run
    the same job at once (a second one waits, then finds the outputs finished and stops); take
    ``gpus`` GPUs of this machine that no other job holds (``gpu_slots.GpuSlots``: it sets
    ``CUDA_VISIBLE_DEVICES``, before anything starts CUDA; nothing under SLURM or without a GPU);
    run ``body``; release the GPUs; write the manifest of every output. A bad input or a stopped
    job ends the process with one line naming the file and the fix, in the log and on stderr, and
    exit status 1.
    """
    from xstilts import gpu_slots, jobcontrol, manifest, worker

    # A job without network access runs in a fork of the local worker when there is one
    # (xstilts.worker): the same script, minus seconds of imports.
    status, own_process = worker.delegate() if not network else (None, "")
    if status is not None:
        raise SystemExit(status)
    log_files, inputs, outputs = list(log_files), [str(p) for p in inputs], [str(p) for p in outputs]
    setup_logging(log_files[0] if log_files else None, network=network)
    if own_process:
        log.info("runs in its own process: %s", own_process)
    jobcontrol.watch_parent()
    job = manifest.job_digest({"rule": rule, "params": _plain(params), "outputs": outputs})
    try:
        manifest.verify(inputs)
        what = f"{rule} {outputs[0]}" if outputs else rule
        with jobcontrol.JobLock(manifest.lock_path(outputs[0]), what=what, log=log) if outputs else nullcontext():
            if outputs and all(manifest.complete(o, job) for o in outputs):
                log.info("%s: another process finished this job while this one waited; nothing to do", what)
                return 0
            with gpu_slots.GpuSlots(gpus, what=what, log=log):
                body()
            for output in outputs:
                manifest.write(output, rule, job)
    except (*_user_errors(), gpu_slots.GpuSlotError) as e:
        log.error("rule %s: %s", rule, e)  # to the log and to stderr
        raise SystemExit(1) from None
    return 0


def _plain(params: Any) -> Any:
    """Snakemake's params (a named list) as a plain dict, for the job digest."""
    items = getattr(params, "items", None)
    return {k: v for k, v in items()} if callable(items) else params


def _user_errors() -> tuple[type[BaseException], ...]:
    from xstilts import jobcontrol, manifest
    from xstilts.config import ConfigError
    from xstilts.download import DownloadError
    from xstilts.errors import TrainingError

    return (manifest.DamagedError, formats.FormatError, DownloadError, ConfigError, jobcontrol.JobLockedError,
            TrainingError, FileNotFoundError)


class InputError(FileNotFoundError):
    """A job input that is missing or unusable (e.g. a model folder without weights); the message says which."""


def write_json(path: str | Path, obj: Any) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


def provenance(paths: list[str | Path]) -> dict[str, str]:
    """sha256 of every input file, so a number can be traced to the exact files that made it
    (reusing the digests of the job's input check: each file is read once)."""
    from xstilts.manifest import known_sha256

    return {p: known_sha256(p) or formats.sha256(p) for p in sorted(map(str, paths))}


def _load_tokenizer(model_dir: str | Path) -> Any:
    from transformers import AutoTokenizer

    from xstilts.features import ensure_pad_token, ensure_pair_separator, pad_right

    require_model_dir(model_dir, "tokenizer")
    return pad_right(ensure_pad_token(ensure_pair_separator(AutoTokenizer.from_pretrained(model_dir))))


def _model_files(model_dir: str | Path) -> list[str]:
    return sorted(str(p) for p in Path(model_dir).iterdir() if p.suffix in (".safetensors", ".json", ".model"))


def _sources(pairs: list[list[str]]) -> list[Source]:
    return [Source(dataset, split, lang) for dataset, split, lang in pairs]


# --------------------------------------------------------------------------------------------
# Data


def make_demo_dataset(job: dict[str, Any], data_root: str | Path) -> list[str]:
    """Generate one dataset of the embedded synthetic benchmark (all its languages and splits)."""
    from xstilts import synthetic

    spec = synthetic.SyntheticSpec(
        seed=job["seed"],
        layout={job["dataset"]: job["layout"]},
        sizes={job["dataset"]: job["sizes"]},
        bucc_distractor_ratio=job["bucc_distractor_ratio"],
        code_switch_rate=job["code_switch_rate"],
        translation_noise=job.get("translation_noise", 0.0),
        exclude=job.get("exclude", {}),
    )
    written = synthetic.generate(spec, data_root)
    log.info("wrote %d files of %s", len(written), job["dataset"])
    return written


def write_labels(target: str, languages: list[str], data_root: str | Path, label_dir: str | Path) -> list[str]:
    """Write XTREME label files ``<label_dir>/<target>/test-<lang>.<ext>`` from canonical data."""
    from xstilts.task_formats import task_format
    task = TARGET_TASKS[target]
    write = task_format(task.format).write_labels
    written = []
    for lang in languages:
        path = formats.xtreme_file(label_dir, target, lang, task.ext)
        write(path, data_root, target, lang)
        written.append(path)
    return written


def tokenize_dataset(job: dict[str, Any], tokenizer_dir: str | Path, data_root: str | Path,
                     out_dir: str | Path) -> dict[str, Any]:
    """Rule tokenize_dataset: one feature set (a dataset's files encoded with one model's tokenizer
    and one set of encoding settings) as memory-mapped Arrow folders (``xstilts.feature_cache``)."""
    from xstilts import feature_cache

    meta = feature_cache.write_feature_set(job, _load_tokenizer(tokenizer_dir), data_root, out_dir)
    for item in meta["items"]:
        log.info("%s/%s %s: %d examples, %d features", job["dataset"], job["key"], item["name"], item["examples"],
                 item["features"])
    return meta


# --------------------------------------------------------------------------------------------
# Phase 1 (demo): tokenizer and MLM pretraining


def train_tokenizer(vocab_size: int, corpus_files: list[str], out_dir: str | Path,
                    architecture: str = "xlm-roberta") -> None:
    from xstilts.pretrain import train_tokenizer as train

    lines = [line for path in corpus_files for line in formats.read_lines(path)]
    tokenizer = train(lines, vocab_size, out_dir, architecture)
    log.info("tokenizer: %d pieces from %d lines", len(tokenizer), len(lines))


def pretrain_mlm(job: dict[str, Any], tokenizer_dir: str | Path, corpus_files: list[str], out_dir: str | Path,
                 metrics_path: str | Path, checkpoint_dir: str | Path, threads: int) -> None:
    """Train the tiny LM (the demo's phase-1 model; family model.pretrain.architecture) and save it.

    Masked LM for encoders, causal LM for decoders (the ``text`` format's head and collator)."""
    from xstilts import features, training
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.pretrain import model_config

    training.configure_determinism(threads, job["hparams"]["deterministic"])
    hp = job["hparams"]
    tokenizer = _load_tokenizer(tokenizer_dir)
    lines = [line for path in corpus_files for line in formats.read_lines(path)]
    # Every 20th line is held out to select the checkpoint by dev MLM loss.
    train_lines = [line for i, line in enumerate(lines) if i % 20]
    dev_lines = [line for i, line in enumerate(lines) if i % 20 == 0]
    task = training.TaskData(
        "mlm", TEXT, "mlm_loss", hp,
        train=features.encode_text(tokenizer, train_lines, hp["max_seq_length"]),
        dev=[training.DevSet("mlm_corpus", [], features.encode_text(tokenizer, dev_lines, hp["max_seq_length"]))],
    )
    training.set_seed(job["seed"])
    model = MultiTaskModel.build(model_config(tokenizer, job["architecture"]), {"mlm": HeadSpec(TEXT)})
    inputs = provenance(corpus_files + _model_files(tokenizer_dir))
    fp = training.fingerprint(phase="pretrain", job=job, inputs=inputs)
    result = training.train(model, [task], tokenizer, hp, job["seed"], checkpoint_dir, fp)
    model.save_head_model("mlm", out_dir, tokenizer)
    write_json(metrics_path, {"phase": "pretrain", "job": job, "result": result, "inputs": inputs})
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Phases 2 and 3: fine-tuning


def _task_data(task: TrainingTask, hp: dict[str, Any], data_root: str | Path, tokenizer: Any,
               dev_sources: list[Source] | tuple[Source, ...], features: Any = None) -> Any:
    """A training task's features (``features``: a ``feature_cache.Features``; default: encoded
    here) and its dev records, which decoding and the dev metric read."""
    from xstilts import feature_cache, training

    store = features if features is not None else feature_cache.EncodeHere(tokenizer, data_root)
    train, devs = feature_cache.task_requests(task, hp, dev_sources)
    dev_sets = [training.DevSet(f"{s.dataset}/{s.lang}/{s.split}",
                                formats.read_dataset(data_root, s.dataset, s.lang, s.split), store.encoded(request))
                for s, request in zip(dev_sources, devs)]
    return training.TaskData(
        task.name, task.format, task.metric, hp, store.labels(train),
        train=store.encoded(train),
        dev=dev_sets,
        allow_null=_allow_null(task),
    )


def _feature_store(features: list[str] | None, tokenizer: Any, data_root: str | Path) -> Any:
    """The job's feature folders (rule tokenize_dataset), or, without any, encoding in this process."""
    from xstilts import feature_cache

    if features is None:
        return feature_cache.EncodeHere(tokenizer, data_root)
    return feature_cache.FeatureCache(features, tokenizer)


def _feature_files(store: Any) -> list[str]:
    """The files of the feature folders a job read (for its provenance record)."""
    from xstilts import feature_cache

    return feature_cache.folder_files(store.folders()) if isinstance(store, feature_cache.FeatureCache) else []


def _allow_null(task: TrainingTask) -> bool:
    """Span QA trained on unanswerable questions (SQuAD v2.0) may predict "no answer"."""
    return any(DATASETS[s.dataset].unanswerable for s in task.train)


def _data_files(data_root: str | Path, sources: list[Source]) -> list[str]:
    return sorted({formats.data_file(data_root, s.dataset, s.lang, s.split) for s in sources})


def finetune_intermediate(job: dict[str, Any], encoder_dir: str | Path, data_root: str | Path, out_dir: str | Path,
                          metrics_path: str | Path, checkpoint_dir: str | Path, threads: int,
                          features: list[str] | None = None) -> None:
    """Phase 2: train the encoder on one intermediate task (or all of them, multi-task); save it.

    ``features``: the job's feature folders (rule tokenize_dataset); without them the job encodes
    its data itself (``feature_cache.EncodeHere``), with the same result.

    ``job["adaptation"]`` (``xstilts.adaptation``): with LoRA the encoder trains adapters (heads in
    full), merged into its weights before saving, so the folder is a plain encoder either way."""
    from xstilts import adaptation, feature_cache, training
    from xstilts.modeling import HeadSpec, MultiTaskModel

    training.configure_determinism(threads, job["hparams"]["deterministic"])
    tokenizer = _load_tokenizer(encoder_dir)
    variant = job.get("variant")
    trainings = feature_cache.intermediate_trainings(job)
    store = _feature_store(features, tokenizer, data_root)
    tasks = [_task_data(t, job["task_hparams"][t.name], data_root, tokenizer, t.dev, store) for t in trainings]
    specs = {t.name: HeadSpec(t.format, t.labels) for t in tasks}
    hp, shares, corpus_files = job["hparams"], None, []
    if variant is not None and variant["name"] == "mlm":
        lm, corpus_files = _language_modeling_task(variant, data_root, tokenizer, store)
        tasks[0].selects = variant["selection"] == "task"
        lm.selects = not tasks[0].selects
        tasks.append(lm)
        # The model's own pretrained LM head, kept and trained (not a fresh one).
        specs[lm.name] = HeadSpec(TEXT, pretrained=True)
        # The task keeps exactly its plain run's steps; LM steps (share of all) come on top.
        own = hp.get("max_steps") or training.steps_for(len(tasks[0].train.features), tasks[0].hp)
        hp = {**hp, "max_steps": math.ceil(own / (1 - variant["share"]))}
        shares = [1 - variant["share"], variant["share"]]
        log.info("%s + language modelling: %d steps, %d of them (expected) %s steps", trainings[0].name,
                 hp["max_steps"], own, trainings[0].name)
    training.set_seed(job["seed"])
    model = MultiTaskModel.build(encoder_dir, specs, pad_token_id=tokenizer.pad_token_id)
    adaptation.adapt(model, job["adaptation"])
    sources = [s for t in trainings for s in t.train + t.dev]
    inputs = provenance(_data_files(data_root, sources) + corpus_files + _model_files(encoder_dir)
                        + _feature_files(store))
    fp = training.fingerprint(phase="intermediate", job=job, inputs=inputs)
    result = training.train(model, tasks, tokenizer, hp, job["seed"], checkpoint_dir, fp,
                            examples_cap=job["examples_cap"], shares=shares)
    adaptation.finish(model, job["adaptation"])
    model.save_encoder(out_dir, tokenizer)
    write_json(metrics_path, {"phase": "intermediate", "job": job, "result": result, "inputs": inputs})
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


def _language_modeling_task(variant: dict[str, Any], data_root: str | Path, tokenizer: Any,
                            features: Any = None) -> tuple[Any, list[str]]:
    """The +MLM variant's language-modelling task on the corpus languages, and its files.

    Masked LM for a tokenizer with a mask token, causal LM otherwise (the ``text`` format). Every
    language has the same number of corpus lines, so languages are sampled uniformly. Every
    ``feature_cache.LM_DEV_EVERY``-th line of a language is held out for the dev loss (at most
    ``LM_DEV_LINES`` per language); ``features`` as for ``_task_data``."""
    from xstilts import feature_cache, training

    store = features if features is not None else feature_cache.EncodeHere(tokenizer, data_root)
    train, dev = feature_cache.lm_requests(variant)
    files = [formats.data_files(data_root, s.dataset, s.lang, s.split)["text"] for s in train.sources]
    task = training.TaskData(
        "mlm", TEXT, "mlm_loss", variant["hparams"],
        train=store.encoded(train),
        dev=[training.DevSet("mlm_corpus", [], store.encoded(dev))],
    )
    return task, files


def finetune_target(job: dict[str, Any], seed: int, encoder_dir: str | Path, data_root: str | Path,
                    model_dir: str | Path, metrics_path: str | Path, checkpoint_dir: str | Path,
                    threads: int, features: list[str] | None = None) -> dict[str, Any]:
    """Phase 3: fine-tune on English target data, select on dev, save the selected model.

    ``model_dir`` becomes a plain ``AutoModelFor*`` folder with its tokenizer (label names in
    the config's ``id2label``); ``predict_target`` reads it. ``metrics_path`` gets the dev
    metrics, the job and the sha256 of every input.

    ``job["stages"]`` (XCOPA's recipe: SIQA) are English trainings run first on the same head,
    each from the previous stage's best checkpoint and selected on its own English dev set; the
    target training then continues from the last stage's best checkpoint.

    ``job["adaptation"]`` applies to the stages and the target training alike; LoRA adapters are
    merged before saving (``xstilts.adaptation``).

    ``features``: the job's feature folders (rule tokenize_dataset); without them the job encodes
    its data itself, with the same result.
    """
    from xstilts import adaptation, feature_cache, training
    from xstilts.modeling import HeadSpec, MultiTaskModel

    training.configure_determinism(threads, job["hparams"]["deterministic"])
    task = TARGET_TRAININGS[job["training"]]
    hp = job["hparams"]
    tokenizer = _load_tokenizer(encoder_dir)
    dev_sources = _sources(job["dev_sources"])
    store = _feature_store(features, tokenizer, data_root)
    data = _task_data(task, hp, data_root, tokenizer, dev_sources, store)
    training.set_seed(seed)
    model = MultiTaskModel.build(encoder_dir, {task.name: HeadSpec(task.format, data.labels)},
                                 pad_token_id=tokenizer.pad_token_id)
    adaptation.adapt(model, job["adaptation"])
    stage_sources = [s for st in job.get("stages", []) for s in _sources(st["train"] + st["dev"])]
    inputs = provenance(_data_files(data_root, list(task.train) + dev_sources + stage_sources)
                        + _model_files(encoder_dir) + _feature_files(store))
    fp = training.fingerprint(phase="target", job=job, seed=seed, inputs=inputs)
    stage_results = {}
    for stage in job.get("stages", []):
        # The stage trains the target's head (multiple choice scores each choice with one
        # output, so 3-way SIQA and 2-way COPA share it), as XTREME-R continues from SIQA.
        stage_task = feature_cache.stage_training(task, stage["task"])
        stage_data = _task_data(stage_task, stage["hparams"], data_root, tokenizer, stage_task.dev, store)
        log.info("stage %s before %s", stage["task"], task.name)
        stage_results[stage["task"]] = training.train(model, [stage_data], tokenizer, stage["hparams"], seed,
                                                      Path(checkpoint_dir) / f"stage-{stage['task']}",
                                                      training.fingerprint(run=fp, stage=stage["task"]))
    result = training.train(model, [data], tokenizer, hp, seed, checkpoint_dir, fp)
    adaptation.finish(model, job["adaptation"])
    model.save_head_model(task.name, model_dir, tokenizer)
    record = {"phase": "target", "job": job, "seed": seed, "result": result, "inputs": inputs}
    if stage_results:
        record["stages"] = stage_results
    write_json(metrics_path, record)
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return record


def predict_target(job: dict[str, Any], model_dir: str | Path, data_root: str | Path, prediction_dir: str | Path,
                   record_path: str | Path, threads: int, features: list[str] | None = None) -> dict[str, Any]:
    """Zero-shot predictions of a fine-tuned target model in every language of its targets.

    Writes ``<prediction_dir>/<target>/test-<lang>.<ext>`` (XTREME's layout) for each target in
    ``job["predict"]`` (SQuAD v1.1 serves XQuAD and MLQA), encoding as the model was trained
    (``job["hparams"]``) and decoding span QA with ``job["prediction"]``. ``record_path`` gets
    the predicted example counts, the job and the sha256 of the model and test files read.
    ``features``: the job's feature folders (rule tokenize_dataset), as for ``finetune_target``.
    """
    from xstilts.task_formats import task_format
    from xstilts import feature_cache, training
    from xstilts.modeling import MultiTaskModel, head_labels

    training.configure_determinism(threads, job["hparams"]["deterministic"])
    task = TARGET_TRAININGS[job["training"]]
    hp = job["hparams"]
    require_model_dir(model_dir)
    tokenizer = _load_tokenizer(model_dir)
    model = MultiTaskModel.load_head_model(model_dir, task.name, task.format)
    decoding = training.TaskData(task.name, task.format, task.metric, {**hp, **job["prediction"]},
                                 head_labels(model.heads[task.name], task.format), allow_null=_allow_null(task))
    write = task_format(task.format).write_predictions
    test_files = [formats.data_file(data_root, t, lang, "test") for t, langs in job["predict"].items() for lang in langs]
    store = _feature_store(features, tokenizer, data_root)
    inputs = provenance(test_files + _model_files(model_dir) + _feature_files(store))
    counts = {}
    for target, langs in job["predict"].items():
        ext = TARGET_TASKS[target].ext
        for lang in langs:
            records = formats.read_dataset(data_root, target, lang, "test")
            request = feature_cache.prediction_request(job, target, lang)
            if store.labels(request) != tuple(decoding.labels):
                raise feature_cache.FeatureCacheError(
                    f"{model_dir}: the model's labels {list(decoding.labels)} are not those its test features were "
                    f"encoded with ({list(store.labels(request))})")
            encoded = store.encoded(request)
            preds = training.predict(model, decoding, records, encoded, tokenizer)
            write(formats.xtreme_file(prediction_dir, target, lang, ext), preds)
            counts[f"{target}/{lang}"] = len(records)
        log.info("predicted %s in %d languages", target, len(langs))
    record = {"phase": "predict", "job": job, "predicted_examples": counts, "inputs": inputs}
    write_json(record_path, record)
    return record


# --------------------------------------------------------------------------------------------
# Retrieval: embeddings, BUCC mining, Tatoeba search


def retrieval_texts(data_root: str | Path, languages: dict[str, list[str]]) -> dict[str, list[str]]:
    """Sentence files to embed, keyed by the name of their embedding file (without .npy)."""
    from xstilts.task_formats import task_format
    texts: dict[str, list[str]] = {}
    for target, langs in languages.items():
        dataset = DATASETS[target]
        read = task_format(dataset.format).read_sentences
        for lang in langs:
            for split in dataset.embed_splits:
                files = formats.data_files(data_root, target, lang, split)
                for side in ("source", "target"):
                    texts[f"{target}/{lang}/{split}.{side}"] = read(files[side])
    return texts


def embed_sentences(job: dict[str, Any], encoder_dir: str | Path, data_root: str | Path, out_dir: str | Path,
                    threads: int) -> dict[str, Any]:
    """Embed every BUCC/Tatoeba sentence once per encoder: ``<out_dir>/<task>/<lang>/<split>.<side>.npy``."""
    import numpy as np
    import torch

    from xstilts import embeddings

    torch.set_num_threads(max(1, threads))
    require_model_dir(encoder_dir)
    texts = retrieval_texts(data_root, job["languages"])
    with open(Path(encoder_dir) / "config.json", encoding="utf-8") as f:
        depth = json.load(f)["num_hidden_layers"]
    layer = job["layer"] or embeddings.default_layer(depth)
    model = embeddings.load_encoder(encoder_dir, layer=layer, pooling=job["pooling"], max_length=job["max_length"])
    info = {"layer": layer, "depth": depth, "files": {}}
    for key, sentences in texts.items():
        emb = embeddings.encode(model, sentences, batch_size=job["batch_size"])
        path = Path(out_dir) / f"{key}.npy"
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, emb.astype(np.float32))
        info["files"][key] = list(emb.shape)
    log.info("embedded %d files with %s", len(texts), encoder_dir)
    return info


def mine_bucc(job: dict[str, Any], data_root: str | Path, embedding_dir: str | Path, prediction_dir: str | Path,
              details_path: str | Path) -> dict[str, Any]:
    """BUCC: mine dev, choose the F1-optimal threshold on dev gold, apply it to test.

    Writes XTREME predictions ``<prediction_dir>/bucc2018/test-<lang>.tsv`` (test pairs) and a
    details file with each language's dev threshold and dev/test precision, recall and F1.
    """
    import numpy as np

    from xstilts import retrieval

    details: dict[str, Any] = {"k": job["k"], "margin": job["margin"], "languages": {}}
    for lang in job["languages"]:
        per_split = {}
        for split in ("dev", "test"):
            files = formats.data_files(data_root, "bucc2018", lang, split)
            src_ids, src = formats.read_id_sentences(files["source"])
            trg_ids, trg = formats.read_id_sentences(files["target"])
            src_emb = np.load(Path(embedding_dir) / "bucc2018" / lang / f"{split}.source.npy")
            trg_emb = np.load(Path(embedding_dir) / "bucc2018" / lang / f"{split}.target.npy")
            per_split[split] = (retrieval.mine_bitext(src_ids, src, trg_ids, trg, src_emb, trg_emb,
                                                      k=job["k"], margin=job["margin"]),
                                formats.read_pairs(files["gold"]))
        dev_candidates, dev_gold = per_split["dev"]
        dev = retrieval.optimize_threshold(dev_candidates, dev_gold)
        test_candidates, test_gold = per_split["test"]
        kept = retrieval.extract(test_candidates, dev["threshold"])
        test = retrieval.score_pairs([(s, t) for s, t, _ in kept], test_gold)
        formats.write_xtreme_classification(formats.xtreme_file(prediction_dir, "bucc2018", lang, "tsv"),
                                            [f"{s}\t{t}" for s, t, _ in kept])
        details["languages"][lang] = {"threshold": dev["threshold"], "dev": dev, "test": test,
                                      "test_pairs": len(kept), "test_candidates": len(test_candidates)}
        log.info("bucc %s: dev F1 %.2f at threshold %.4f; test F1 %.2f", lang, dev["f1"], dev["threshold"], test["f1"])
    write_json(details_path, details)
    return details


def search_tatoeba(job: dict[str, Any], data_root: str | Path, embedding_dir: str | Path, prediction_dir: str | Path,
                   details_path: str | Path) -> dict[str, Any]:
    """Tatoeba: top-1 cosine retrieval; predictions ``<prediction_dir>/tatoeba/test-<lang>.tsv``
    in XTREME's order (English side sorted), the order of the label files."""
    import numpy as np

    from xstilts import retrieval

    details: dict[str, Any] = {"direction": job["direction"], "languages": {}}
    for lang in job["languages"]:
        src = np.load(Path(embedding_dir) / "tatoeba" / lang / "test.source.npy")
        trg = np.load(Path(embedding_dir) / "tatoeba" / lang / "test.target.npy")
        predictions = retrieval.tatoeba_predict(src, trg, direction=job["direction"])
        english = formats.read_lines(formats.data_files(data_root, "tatoeba", lang, "test")["target"])
        # Line-aligned rows, so row i's answer is its prediction; XTREME's line k is row order[k].
        order = retrieval.xtreme_tatoeba_order(english)
        formats.write_xtreme_classification(formats.xtreme_file(prediction_dir, "tatoeba", lang, "tsv"),
                                            [str(int(p)) for p in predictions[order]])
        details["languages"][lang] = {"accuracy": retrieval.tatoeba_accuracy(predictions), "queries": len(predictions)}
    write_json(details_path, details)
    return details


# --------------------------------------------------------------------------------------------
# Scoring


def score_run(folders: dict[str, str], languages: dict[str, list[str]], label_dir: str | Path,
              out_path: str | Path, context: dict[str, Any]) -> dict[str, Any]:
    """Score one run's predictions with the XTREME scorer (``xstilts evaluate`` semantics).

    ``folders`` maps each target task to the prediction folder holding its
    ``<task>/test-<lang>.<ext>`` files. The score file holds, per task, the official entry
    (per-language metrics, their averages, ``avg_metric``) and the sha256 of every prediction
    and label file read, so each number traces back to the exact files that made it.
    """
    from xstilts import xtreme

    scores: dict[str, Any] = {}
    files: list[str] = []
    for task, folder in folders.items():
        langs = languages[task]
        scores[task] = xtreme.score_task(task, folder, label_dir, langs)
        files += [xtreme.task_file(folder, task, lang) for lang in langs]
        files += [xtreme.task_file(label_dir, task, lang) for lang in langs]
        log.info("%s: %s = %.2f", task, "avg_metric", scores[task]["avg_metric"])
    result = {**context, "scores": scores, "inputs": provenance(files)}
    write_json(out_path, result)
    return result


# --------------------------------------------------------------------------------------------
# Offline jobs, downloads and conversion of the real datasets (data.source = download)

#: The environment switches that keep transformers, datasets and huggingface_hub off the network.
OFFLINE_SWITCHES = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def offline_mode() -> None:
    """Set the Hugging Face offline switches for this process (before any HF import)."""
    os.environ.update(OFFLINE_SWITCHES)


#: Files that make a local folder a model (config.json) or a tokenizer (any of the others).
_LOCAL_FILES = {"model": ("config.json",),
                "tokenizer": ("tokenizer.json", "tokenizer_config.json", "sentencepiece.bpe.model", "spm.model",
                              "vocab.txt", "vocab.json")}


def require_model_dir(model_dir: str | Path, kind: str = "model") -> None:
    """Fail fast, naming the path and its producing rule, when a local model (or tokenizer)
    folder is missing or incomplete. Jobs never download: a hub id instead of a folder is an error.
    """
    if not any((Path(model_dir) / name).is_file() for name in _LOCAL_FILES[kind]):
        raise InputError(
            f"{model_dir}: no local Hugging Face {kind} here (none of {', '.join(_LOCAL_FILES[kind])}). Jobs run "
            "offline (HF_HUB_OFFLINE=1) and never download; this folder is written by rule prepare_model "
            "(model.source hub), train_tokenizer / pretrain_mlm (model.source pretrain) or finetune_intermediate "
            "(an intermediate encoder)."
        )


def download_source(files: list[dict[str, Any]], out_dir: str | Path, partial_dir: str | Path) -> dict[str, str]:
    """Rule download_source: fetch and verify the pinned files of one source."""
    from xstilts import download

    sums = download.download_files(files, out_dir, partial_dir=partial_dir)
    log.info("downloaded %d verified file(s) to %s", len(sums), out_dir)
    return sums


def convert_dataset(job: dict[str, Any], raw_dirs: list[str], data_root: str | Path) -> dict[str, int]:
    """Rule convert_dataset: re-verify the raw files' pins, then write the canonical dataset."""
    from xstilts import converters, download

    if "corpus" in job:  # a hub corpus: one folder per language, re-verified by xstilts.corpus
        return converters.convert(job["dataset"], None, job["layout"], data_root,
                                  corpus={**job["corpus"], "folders": list(raw_dirs)})
    for raw_dir in raw_dirs:
        source = Path(raw_dir).name
        for name, sha256 in job["pins"][source].items():
            download.verify_file(Path(raw_dir) / name, sha256)
    raw = raw_dirs[0] if raw_dirs else None
    # Only the canonical files go into the dataset folder; the example counts go to the log.
    return converters.convert(job["dataset"], raw, job["layout"], data_root, ccgbank=job.get("ccgbank"))


def download_model(job: dict[str, Any], out_dir: str | Path) -> dict[str, Any]:
    """Rule download_model: the hub encoder at its pinned commit, every file verified."""
    from xstilts import download

    return download.download_hub_model(job["repo_id"], job["revision"], job["files"], out_dir,
                                       record_revision=job["record_revision"])


def prepare_model(download_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Rule prepare_model: the phase-1 encoder folder from the verified download (hard links).

    Re-checks the sha256 recorded at download time, then loads the config and tokenizer
    offline, so a broken model fails here, not hours into a training job.
    """
    from transformers import AutoConfig, AutoTokenizer

    from xstilts import download, features

    download_dir, out = Path(download_dir), Path(out_dir)
    record = json.loads((download_dir / "source.json").read_text(encoding="utf-8"))
    out.mkdir(parents=True, exist_ok=True)
    for name, sha256 in sorted(record["sha256"].items()):
        download.verify_file(download_dir / name, sha256)
        target = out / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(download_dir / name, target)
        except OSError:
            shutil.copyfile(download_dir / name, target)
    config = AutoConfig.from_pretrained(out, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(out, local_files_only=True)
    own_pad = tokenizer.pad_token
    # Every phase pads with the tokenizer's pad token, or its EOS where it has none; a tokenizer
    # with neither fails here, not in a training job.
    features.ensure_pad_token(tokenizer)
    # Pairs get a separator where the tokenizer puts none; one that cannot be given one fails here too.
    features.ensure_pair_separator(tokenizer)
    if not getattr(config, "num_hidden_layers", 0):
        raise ValueError(f"{out}: the config names no num_hidden_layers; is {record['repo_id']} an encoder?")
    info = {"repo_id": record["repo_id"], "revision": record["revision"], "num_hidden_layers": config.num_hidden_layers,
            "hidden_size": getattr(config, "hidden_size", None), "vocab_size": len(tokenizer),
            "pad_token": tokenizer.pad_token, "pad_is_eos": own_pad is None, "bos_token": tokenizer.bos_token}
    log.info("encoder %s@%s: %s", record["repo_id"], record["revision"], info)
    return info


def manual_data_problems(plan: Any, data_root: str | Path, converting: Iterable[str] | None = None) -> list[str]:
    """Manual inputs a real run would miss (CCGbank), checked before any job starts.

    ``converting``: the datasets the run will convert (by default every dataset of the grid);
    only those are checked."""
    from xstilts import converters

    problems = []
    wanted = plan.datasets() if converting is None else [d for d in plan.datasets() if d in set(converting)]
    for name in wanted:
        key = DATASETS[name].manual
        if key and not (Path(data_root) / name).is_dir():
            try:
                # CCGbank is the only manual input so far; its converter knows its layout.
                converters.ccgbank_auto_dir(plan.convert_job(name)[key])
            except converters.ConversionError as e:
                problems.append(str(e))
    return problems
