"""Phase 1: the multilingual encoder every later phase starts from.

Rules: train_tokenizer, pretrain_mlm (models with source pretrain: the demo's tiny models, of the
family pretrain.architecture, trained locally), download_model (a localrule: the hub model at its
pinned commit, e.g. XLM-R Large) and prepare_model (models with source hub). Either way the result
is a Hugging Face folder `results/encoders/{model}/baseline`, loaded by every later rule from disk.
A grid may mix both sources: each rule's {model} is constrained to the models of its source.
"""


if PLAN.models_from("pretrain"):

    rule train_tokenizer:
        wildcard_constraints:
            model=_alternatives(PLAN.models_from("pretrain")),
        input:
            corpus=f"{DATA}/mlm_corpus",
        output:
            directory(f"{RESULTS}/tokenizer/{{model}}"),
        params:
            code=code_version("train_tokenizer"),
            vocab_size=lambda w: model_plan(w).exp["model"]["pretrain"]["vocab_size"],
            architecture=lambda w: model_plan(w).exp["model"]["pretrain"]["architecture"],
            languages=PLAN.corpus_languages(),
        log:
            log_path("train_tokenizer", "{model}"),
        benchmark:
            benchmark_path("train_tokenizer", "{model}")
        threads: 1
        resources:
            mem_mb=lambda wildcards, attempt: 4000 * attempt,
            runtime=lambda wildcards, attempt: 30 * attempt,
        conda:
            CONDA_ENV
        script:
            "../scripts/train_tokenizer.py"

    rule pretrain_mlm:
        wildcard_constraints:
            model=_alternatives(PLAN.models_from("pretrain")),
        input:
            tokenizer=rules.train_tokenizer.output[0],
            corpus=f"{DATA}/mlm_corpus",
        output:
            encoder=directory(f"{ENCODERS}/{BASELINE}"),
            metrics=f"{RESULTS}/pretrain/{{model}}/metrics.json",
        params:
            # The code version is part of the job: recorded in metrics.json and the checkpoint fingerprint.
            job=lambda w: {**model_plan(w).pretrain_job(), "code": code_version("pretrain_mlm")},
            languages=PLAN.corpus_languages(),
            checkpoint_dir=checkpoint_path("pretrain_mlm", "{model}"),
        log:
            log_path("pretrain_mlm", "{model}"),
        benchmark:
            benchmark_path("pretrain_mlm", "{model}")
        threads: 1
        resources:
            gpu=1,
            cpus_per_gpu=lambda wildcards, threads: threads,
            mem_mb=job_mem_mb("pretrain_mlm"),
            runtime=job_runtime("pretrain_mlm"),
        conda:
            CONDA_ENV
        script:
            "../scripts/pretrain_mlm.py"


if PLAN.models_from("hub"):

    rule download_model:
        wildcard_constraints:
            model=_alternatives(PLAN.models_from("hub")),
        output:
            directory("resources/models/{model}"),
        params:
            job=lambda w: model_plan(w).model_job(),
        log:
            log_path("download_model", "{model}"),
        localrule: True
        conda:
            CONDA_ENV
        script:
            "../scripts/download_model.py"

    rule prepare_model:
        wildcard_constraints:
            model=_alternatives(PLAN.models_from("hub")),
        input:
            # ancient: the download is identified by its pinned commit (params), not its time stamp.
            download=ancient("resources/models/{model}"),
        output:
            directory(f"{ENCODERS}/{BASELINE}"),
        params:
            code=code_version("prepare_model"),
            job=lambda w: model_plan(w).model_job(),
        log:
            log_path("prepare_model", "{model}"),
        threads: 1
        resources:
            mem_mb=job_mem_mb("prepare_model"),
            runtime=job_runtime("prepare_model"),
        conda:
            CONDA_ENV
        script:
            "../scripts/prepare_model.py"
