"""The experiment grid of a resolved config: encoders, trainings, targets, languages, data layout.

``rules/common.smk`` turns this into file lists; keeping the logic here makes it unit-testable
and keeps the rules free of task-specific branching.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xstilts.config import hparams_for, keep_languages, model_experiment, model_names, pretrain_hparams
from xstilts.tasks import (
    BASELINE,
    DATASETS,
    INTERMEDIATE_TASKS,
    INTERMEDIATE_TRAINING_DATASETS,
    MULTITASK,
    REASONING_TARGETS,
    STAGE_TASKS,
    TARGET_TASKS,
    TARGET_TRAININGS,
    TRAINING_RECIPES,
    TRANSLATIONS,
    VARIANTS,
    XTREME_TARGETS,
    Source,
    encoder_variant,
    served_targets,
    variant_encoder,
)


@dataclass
class Plan:
    """The grid of a resolved config (``Plan(exp)``), or one model's part of it (``for_model``).

    The grid plan answers what every model shares (tasks, languages, data, seeds); the settings of
    a job that trains or runs a model (hyperparameters, adapters, pooling, its download or
    pretraining) come from that model's plan, whose experiment has the model's overrides merged
    in (``config.model_experiment``).
    """

    exp: dict[str, Any]

    # ---------------------------------------------------------------- grid axes
    @property
    def models(self) -> list[str]:
        """The models of the grid, in config order."""
        return model_names(self.exp)

    def for_model(self, name: str) -> "Plan":
        """The plan of one model of the grid (its overrides merged in)."""
        cache = self.__dict__.setdefault("_model_plans", {})
        if name not in cache:
            cache[name] = Plan(model_experiment(self.exp, name))
        return cache[name]

    def model_sources(self) -> set[str]:
        """Where the grid's models come from (pretrain, hub)."""
        return {m["source"] for m in self.exp["models"]}

    def models_from(self, source: str) -> list[str]:
        """The grid's models of one source, in config order."""
        return [m["name"] for m in self.exp["models"] if m["source"] == source]

    @property
    def intermediate_tasks(self) -> list[str]:
        return list(self.exp["intermediate"]["tasks"])

    @property
    def plain_itasks(self) -> list[str]:
        """The intermediate encoders of the paper's matrix: each task, then the multi-task mix if enabled."""
        extra = [MULTITASK] if self.exp["intermediate"]["multitask"]["enabled"] else []
        return self.intermediate_tasks + extra

    @property
    def itasks(self) -> list[str]:
        """Every trained intermediate encoder: the matrix's, then each variant's (``variant_encoders``)."""
        return self.plain_itasks + self.variant_encoders

    @property
    def matrix_encoders(self) -> list[str]:
        """Rows of the paper's matrix (and its summary, best-on-dev picks and per-language
        appendix): the baseline (phase-1 encoder) and the plain intermediate encoders."""
        return [BASELINE, *self.plain_itasks]

    @property
    def encoders(self) -> list[str]:
        """Every row of the grid: the matrix's, then the variant encoders. Each gets phase 3 on
        every target, retrieval and a score file; the reasoning analysis tests them all."""
        return [*self.matrix_encoders, *self.variant_encoders]

    # ---------------------------------------------------------------- variants (tasks.VARIANTS)
    def variant_tasks(self, variant: str) -> list[str]:
        """The intermediate tasks that get a ``variant`` encoder (``intermediate.variants.<variant>.tasks``)."""
        return list(self.exp["intermediate"]["variants"][variant]["tasks"])

    def variant_rows(self, variant: str) -> list[tuple[str, str]]:
        """(variant encoder, plain task) of one variant, in ``intermediate.tasks`` order."""
        wanted = set(self.variant_tasks(variant))
        return [(variant_encoder(t, variant), t) for t in self.intermediate_tasks if t in wanted]

    @property
    def variants(self) -> list[str]:
        """The variants this grid trains (registry order)."""
        return [v for v in VARIANTS if self.variant_tasks(v)]

    @property
    def variant_encoders(self) -> list[str]:
        return [e for v in VARIANTS for e, _ in self.variant_rows(v)]

    def translated_languages(self, task: str) -> list[str]:
        """Languages of a task's machine-translated training data that the translated variant trains on."""
        settings = self.exp["intermediate"]["variants"]["translated"]
        langs = self.keep(DATASETS[TRANSLATIONS[task]].languages("train"))
        wanted = settings["languages"]
        return [lang for lang in langs if wanted is None or lang in wanted]

    def mlm_languages(self) -> list[str]:
        """Corpus languages the +MLM variant trains on."""
        wanted = self.exp["intermediate"]["variants"]["mlm"]["languages"]
        return [lang for lang in self.corpus_languages() if wanted is None or lang in wanted]

    def intermediate_sources(self, itask: str) -> tuple[list[Source], list[Source]]:
        """(training sources, dev sources) of one intermediate encoder's task data.

        A plain task's (or the multi-task mix's members') registry sources; a translated
        variant's translations (and the English original if ``include_english``), selected on
        the task's English dev; a +MLM variant's task sources plus the corpus languages."""
        task, variant = encoder_variant(itask)
        names = self.multitask_members() if itask == MULTITASK else [task]
        train = [s for n in names for s in INTERMEDIATE_TASKS[n].train]
        dev = [s for n in names for s in INTERMEDIATE_TASKS[n].dev]
        if variant == "translated":
            english = self.exp["intermediate"]["variants"]["translated"]["include_english"]
            translated = [Source(TRANSLATIONS[task], "train", lang) for lang in self.translated_languages(task)]
            train = (train if english else []) + translated
        elif variant == "mlm":
            train = train + [Source("mlm_corpus", "train", lang) for lang in self.mlm_languages()]
        return train, dev

    @property
    def evaluated_targets(self) -> list[str]:
        """Every target of ``targets.tasks``: trained (or retrieved), predicted and labelled."""
        return list(self.exp["targets"]["tasks"])

    @property
    def targets(self) -> list[str]:
        """The paper's (XTREME) targets among them: columns of the matrix, scored per run.

        XTREME-R-only targets (XCOPA) are left out, so the matrix, its average and the paper's
        tables keep the paper's definition; the reasoning analysis reports them.
        """
        return [t for t in self.evaluated_targets if t in XTREME_TARGETS]

    @property
    def trained_targets(self) -> list[str]:
        return [t for t in self.evaluated_targets if not TARGET_TASKS[t].retrieval]

    @property
    def retrieval_targets(self) -> list[str]:
        return [t for t in self.evaluated_targets if TARGET_TASKS[t].retrieval]

    @property
    def trainings(self) -> list[str]:
        """Target trainings needed by the trained targets, in registry order."""
        needed = {TARGET_TASKS[t].training for t in self.trained_targets}
        return [name for name in TARGET_TRAININGS if name in needed]

    @property
    def seeds(self) -> list[int]:
        return list(self.exp["seeds"])

    def served(self, training: str) -> list[str]:
        return served_targets(training, self.trained_targets)

    def multitask_members(self) -> list[str]:
        return self.intermediate_tasks

    # ---------------------------------------------------------------- languages and data
    def keep(self, langs: tuple[str, ...] | list[str], target: str | None = None) -> list[str]:
        """Filter an official language list by ``languages`` (or ``targets.languages[target]``)."""
        return keep_languages(self.exp, langs, target)

    def languages(self, dataset: str, split: str) -> list[str]:
        return self.keep(DATASETS[dataset].languages(split), dataset if dataset in TARGET_TASKS else None)

    def target_languages(self, target: str) -> list[str]:
        """Languages a target is evaluated (and predicted) on."""
        return self.languages(target, "test")

    def corpus_languages(self) -> list[str]:
        langs = {"en"}
        for target in self.evaluated_targets:
            langs.update(self.target_languages(target))
        return sorted(langs)

    def datasets(self) -> list[str]:
        """Every dataset the grid reads, in registry order."""
        needed: set[str] = set(self.evaluated_targets)
        for name in self.intermediate_tasks:
            task = INTERMEDIATE_TASKS[name]
            needed.update(s.dataset for s in task.train + task.dev)
        for name in self.trainings:
            for task in (*(STAGE_TASKS[n] for n in self.stages(name)), TARGET_TRAININGS[name]):
                needed.update(s.dataset for s in task.train + task.dev)
        for itask in self.variant_encoders:
            train, dev = self.intermediate_sources(itask)
            needed.update(s.dataset for s in train + dev)
        if "pretrain" in self.model_sources():
            needed.update(d for d, ds in DATASETS.items() if ds.corpus)
        return [d for d in DATASETS if d in needed]

    def layout(self, dataset: str) -> dict[str, list[str]]:
        """split -> languages of one dataset as the grid needs it (all registry splits)."""
        if DATASETS[dataset].corpus:
            return {split: self.corpus_languages() for split in DATASETS[dataset].splits}
        out = {}
        for split in ("train", "dev", "test"):
            langs = self.languages(dataset, split)
            if langs:
                out[split] = langs
        return out

    def synthetic_sizes(self, dataset: str, splits: list[str] | None = None) -> dict[str, int]:
        """Examples per split of a synthetic dataset (``splits``: default, those of its layout)."""
        sizes = self.exp["data"]["synthetic"]["sizes"]
        default = sizes["default"]
        # A translation has exactly the examples of the dataset it translates.
        own = sizes.get(DATASETS[dataset].translation_of or dataset, {})
        return {split: own.get(split, default[split]) for split in (self.layout(dataset) if splits is None else splits)}

    def stages(self, training: str) -> tuple[str, ...]:
        """English stages trained before a target training in the same job (XCOPA's recipe)."""
        recipes = TRAINING_RECIPES.get(training)
        if not recipes:
            return ()
        return recipes[self.exp["targets"][f"{training}_recipe"]]

    def selection_sources(self, training: str) -> list[Source]:
        """Dev data for checkpoint selection of a target training (config targets.selection)."""
        task = TARGET_TRAININGS[training]
        if self.exp["targets"]["selection"] == "all_languages_dev":
            sources = [
                Source(target, "dev", lang)
                for target in self.served(training)
                for lang in self.languages(target, "dev")
            ]
            if sources:
                return sources
        return list(task.dev)

    # ---------------------------------------------------------------- per-job settings
    # Each rule receives exactly the settings its job depends on (as Snakemake params), so a
    # config change re-runs only the jobs it affects.
    def data_job(self, dataset: str) -> dict[str, Any]:
        syn = self.exp["data"]["synthetic"]
        job = {
            "dataset": dataset,
            "seed": syn["seed"],
            "layout": self.layout(dataset),
            "sizes": self.synthetic_sizes(dataset),
            "bucc_distractor_ratio": syn["bucc_distractor_ratio"],
            "code_switch_rate": syn["code_switch_rate"],
        }
        if DATASETS[dataset].translation_of:  # only translations read it: the others' params stay
            job["translation_noise"] = syn["translation_noise"]
        if dataset in INTERMEDIATE_TRAINING_DATASETS:
            # The targets of the same format whose dev/test examples the training set must not
            # hold (synthetic.generate drops chance repeats: xstilts.leakage).
            # Every language the run could evaluate them in (``languages``, not a target's own
            # filter), so narrowing a target's languages re-runs its predictions, never training.
            fmt = DATASETS[dataset].format
            job["exclude"] = {}
            for t in self.evaluated_targets:
                if DATASETS[t].format == fmt:
                    layout = {split: self.keep(DATASETS[t].languages(split)) for split in ("dev", "test")}
                    layout = {split: langs for split, langs in layout.items() if langs}
                    job["exclude"][t] = {"layout": layout, "sizes": self.synthetic_sizes(t, list(layout))}
        return job

    def pretrain_job(self) -> dict[str, Any]:
        pre = self.exp["model"]["pretrain"]
        return {
            "architecture": {k: v for k, v in pre.items() if k not in ("hparams", "seed", "vocab_size")},
            "hparams": pretrain_hparams(self.exp),
            "seed": pre["seed"],
        }

    def intermediate_job(self, itask: str) -> dict[str, Any]:
        task, variant = encoder_variant(itask)
        names = self.multitask_members() if itask == MULTITASK else [task]
        multitask = self.exp["intermediate"]["multitask"]
        job = {
            "itask": itask,
            "tasks": names,
            "hparams": hparams_for(self.exp, "intermediate", None if itask == MULTITASK else task),
            "task_hparams": {n: hparams_for(self.exp, "intermediate", n) for n in names},
            "seed": self.exp["intermediate"]["seed"],
            "examples_cap": multitask["examples_cap"] if itask == MULTITASK else None,
            "adaptation": self.adaptation("intermediate"),
        }
        # Only variant jobs get the key: the plain jobs' params stay as they were.
        if variant is not None:
            own = self.exp["intermediate"]["variants"][variant]["hparams"]
            job["hparams"] = {**job["hparams"], **own}
            job["task_hparams"] = {task: {**job["task_hparams"][task], **own}}
            train, dev = self.intermediate_sources(itask)
            job["variant"] = {"name": variant, "task": task,
                              "train": [[s.dataset, s.split, s.lang] for s in train if s.dataset != "mlm_corpus"],
                              "dev": [[s.dataset, s.split, s.lang] for s in dev]}
            if variant == "mlm":
                mlm = self.exp["intermediate"]["variants"]["mlm"]
                job["variant"].update(
                    share=mlm["share"], selection=mlm["selection"], languages=self.mlm_languages(),
                    hparams={**job["hparams"], **mlm["lm_hparams"]})
        return job

    def adaptation(self, phase: str) -> dict[str, Any]:
        """How a phase trains this model: LoRA adapters (or None: every weight) and gradient checkpointing."""
        settings = self.exp["model"]["adaptation"]
        lora = settings["lora"]
        if lora is not None and phase in lora["phases"]:
            lora = {k: v for k, v in lora.items() if k != "phases"}
        else:
            lora = None
        return {"lora": lora, "gradient_checkpointing": settings["gradient_checkpointing"]}

    def target_job(self, training: str) -> dict[str, Any]:
        job = {
            "training": training,
            "hparams": hparams_for(self.exp, "target", training),
            "dev_sources": [[s.dataset, s.split, s.lang] for s in self.selection_sources(training)],
            "adaptation": self.adaptation("targets"),
        }
        stages = self.stages(training)
        if stages:
            # Only jobs with stages get the key: the other trainings' params stay as they were.
            job["stages"] = [
                {"task": name, "hparams": hparams_for(self.exp, "target", name),
                 "train": [[s.dataset, s.split, s.lang] for s in STAGE_TASKS[name].train],
                 "dev": [[s.dataset, s.split, s.lang] for s in STAGE_TASKS[name].dev]}
                for name in stages
            ]
        return job

    @property
    def prediction(self) -> dict[str, Any]:
        """Test-time decoding settings (``targets.prediction``, schema defaults filled in)."""
        return self.exp["targets"]["prediction"]

    @property
    def keep_models(self) -> bool:
        """Whether fine-tuned target models are kept after prediction (``targets.keep_models``)."""
        return bool(self.exp["targets"]["keep_models"])

    def predict_job(self, training: str) -> dict[str, Any]:
        """What prediction with one fine-tuned target model depends on.

        The encoding settings the model was trained with (its effective hparams), the test-time
        decoding settings its format reads (``targets.prediction``; span QA's) and the languages
        of every target it serves; none of these but the hparams is a param of training, so a
        new language or decoding setting re-runs prediction only.
        """
        from xstilts.config import hparams_for
        from xstilts.task_formats import task_format

        reads = task_format(TARGET_TRAININGS[training].format).decoding
        return {
            "training": training,
            "hparams": hparams_for(self.exp, "target", training),
            "prediction": {k: v for k, v in self.prediction.items() if k in reads},
            "predict": {t: self.target_languages(t) for t in self.served(training)},
        }

    # ---------------------------------------------------------------- tokenised features
    # (rule tokenize_dataset, xstilts.feature_cache): derived from the job params above, so a
    # job reads exactly the feature sets its own settings call for.
    def feature_requests(self, kind: str, name: str) -> list[Any]:
        """The encode calls of one job: ``kind`` intermediate (``name`` an itask), target or
        predict (``name`` a training)."""
        from xstilts.feature_cache import job_requests

        jobs = {"intermediate": self.intermediate_job, "target": self.target_job, "predict": self.predict_job}
        return job_requests(kind, jobs[kind](name))

    def feature_inputs(self, kind: str, name: str) -> list[tuple[str, str]]:
        """(dataset, settings key) of every feature set one job reads."""
        from xstilts.feature_cache import feature_inputs

        return feature_inputs(self.feature_requests(kind, name))

    def feature_sets(self) -> dict[tuple[str, str], dict[str, Any]]:
        """(dataset, settings key) -> the tokenize_dataset job of every feature set this model's jobs read."""
        if "_feature_sets" not in self.__dict__:
            from xstilts.feature_cache import feature_sets

            requests = [r for itask in self.itasks for r in self.feature_requests("intermediate", itask)]
            for training in self.trainings:
                requests += self.feature_requests("target", training) + self.feature_requests("predict", training)
            self.__dict__["_feature_sets"] = feature_sets(requests)
        return self.__dict__["_feature_sets"]

    def feature_job(self, dataset: str, key: str) -> dict[str, Any]:
        """What tokenising one feature set depends on: its settings and items (a KeyError if no job reads it)."""
        return self.feature_sets()[(dataset, key)]

    # ---------------------------------------------------------------- reasoning (XTREME-R)
    @property
    def reasoning(self) -> dict[str, Any]:
        return self.exp["reasoning"]

    @property
    def reasoning_targets(self) -> list[str]:
        """The configured reasoning targets that the grid evaluates (in registry order)."""
        wanted = set(self.reasoning["targets"])
        return [t for t in REASONING_TARGETS if t in wanted and t in self.evaluated_targets]

    @property
    def reasoning_complete(self) -> bool:
        """Whether every configured reasoning target is in the grid (then `all` builds the analysis)."""
        return bool(self.reasoning_targets) and set(self.reasoning_targets) == set(self.reasoning["targets"])

    def reasoning_job(self) -> dict[str, Any]:
        """What the significance analysis depends on: runs, languages (XTREME-R lists), bootstrap.

        The prediction folder of each run is a path, so rules/common.smk adds it (``folders``).
        """
        from xstilts.languages import XTREME_R_TASK2LANGS

        return {
            "targets": self.reasoning_targets,
            "languages": {t: self.keep(XTREME_R_TASK2LANGS[t], t) for t in self.reasoning_targets},
            "encoders": self.encoders,
            "seeds": self.seeds,
            "bootstrap": self.reasoning["bootstrap"],
        }

    def retrieval_job(self) -> dict[str, Any]:
        r = self.exp["retrieval"]
        return {
            "layer": r["layer"],
            "pooling": r["pooling"],
            "max_length": r["max_length"],
            "batch_size": r["batch_size"],
            "languages": {t: self.target_languages(t) for t in self.retrieval_targets},
        }

    def bucc_job(self) -> dict[str, Any]:
        bucc = self.exp["retrieval"]["bucc"]
        return {"languages": self.target_languages("bucc2018"), "k": bucc["k"], "margin": bucc["margin"]}

    def tatoeba_job(self) -> dict[str, Any]:
        direction = self.exp["retrieval"]["tatoeba"]["direction"]
        return {"languages": self.target_languages("tatoeba"), "direction": direction}

    # ---------------------------------------------------------------- real data and hub models
    # (data.source = download, model.source = hub: the paper preset)
    def dataset_sources(self, dataset: str) -> list[str]:
        """Download sources a dataset is converted from ([] for the manual CCGbank, and for a
        corpus downloaded from the hub per language: ``corpus_inputs``)."""
        from xstilts.sources import HUB_CORPORA, source_of

        source = source_of(dataset)
        return [source] if source and source not in HUB_CORPORA else []

    def corpus_inputs(self, dataset: str) -> list[tuple[str, str]]:
        """(hub corpus, language) downloads a dataset is converted from (rule download_corpus):
        one per language of its layout for a hub corpus (mlm_corpus), else []."""
        from xstilts.sources import HUB_CORPORA, source_of

        source = source_of(dataset)
        if source not in HUB_CORPORA:
            return []
        return [(source, lang) for lang in sorted({lang for langs in self.layout(dataset).values() for lang in langs})]

    def corpus_downloads(self) -> list[tuple[str, str]]:
        """Every (hub corpus, language) download the grid's datasets need, sorted."""
        return sorted({item for d in self.datasets() for item in self.corpus_inputs(d)})

    def corpus_download_job(self, source: str, lang: str) -> dict[str, Any]:
        """One language of a hub corpus: repository, pinned commit, file patterns (a change re-downloads)."""
        from xstilts.sources import HUB_CORPORA

        corpus = HUB_CORPORA[source]
        return {"repo_id": corpus.repo_id, "revision": corpus.revision, "patterns": [corpus.pattern(lang)]}

    def download_sources(self) -> list[str]:
        """Every download source the grid's datasets need, sorted by name."""
        return sorted({s for d in self.datasets() for s in self.dataset_sources(d)})

    def download_job(self, source: str) -> list[dict[str, Any]]:
        """The pinned files of one download job (a change of URL or pin re-downloads)."""
        from xstilts.sources import download_job

        return download_job(source, self.exp["data"]["download"]["mirrors"], self.replaced_pins())

    def replaced_pins(self) -> dict[str, Any]:
        """The pins of ``data.download.pins`` (file name -> RemoteFile; {} when unset)."""
        from xstilts.sources import load_pins

        path = self.exp["data"]["download"]["pins"]
        return load_pins(path) if path else {}

    def convert_job(self, dataset: str) -> dict[str, Any]:
        """What a conversion depends on: the layout to write and the pins of its inputs."""
        from xstilts.sources import pins

        job: dict[str, Any] = {
            "dataset": dataset,
            "layout": self.layout(dataset),
            "pins": {s: pins(s, self.replaced_pins()) for s in self.dataset_sources(dataset)},
        }
        manual = DATASETS[dataset].manual
        if manual:
            job[manual] = self.exp["data"]["download"][manual]
        inputs = self.corpus_inputs(dataset)
        if inputs:
            # Only hub corpora get the key (the other conversions' params stay as they were): the
            # pinned commit, the sample size and its seed, so a change of any re-runs conversion.
            from xstilts.sources import HUB_CORPORA

            corpus = HUB_CORPORA[inputs[0][0]]
            job["corpus"] = {
                "source": corpus.name, "repo_id": corpus.repo_id, "revision": corpus.revision,
                "column": corpus.column, "files": {lang: corpus.pattern(lang) for _, lang in inputs},
                "sentences_per_language": self.exp["intermediate"]["variants"]["mlm"]["sentences_per_language"],
                "seed": self.exp["intermediate"]["seed"],
            }
        return job

    def model_job(self) -> dict[str, Any]:
        """The hub model to download: repository, pinned commit, file patterns."""
        hub = self.exp["model"]["hub"]
        return {
            "repo_id": hub["id"],
            "revision": hub["revision"],
            "record_revision": hub["record_revision"],
            "files": list(hub["files"]),
        }

