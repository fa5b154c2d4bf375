"""Phase 3: target-task training on English data, then zero-shot prediction in every language.

Rules: finetune_target -> the selected model (a plain AutoModelFor* folder) and its dev metrics;
predict_target -> XTREME-layout predictions (`predictions/<target>/test-<lang>.<ext>`) for every
target the training serves. Prediction languages and test-time decoding are params of
predict_target only, so changing them never retrains. With `targets.keep_models: false` the model
is temp(): Snakemake deletes it once its predictions exist.
"""


rule finetune_target:
    input:
        encoder=encoder_dir,
        data=target_data,
        features=feature_dirs("target"),
    output:
        model=directory(TARGET_MODEL) if PLAN.keep_models else temp(directory(TARGET_MODEL)),
        metrics=f"{TARGET_RUN}/metrics.json",
    params:
        # The code version is part of the job: recorded in metrics.json and the checkpoint fingerprint.
        job=lambda w: {**model_plan(w).target_job(w.training), "code": code_version("finetune_target")},
        data_root=lambda w, input: os.path.dirname(input.data[0]),
        checkpoint_dir=checkpoint_path("finetune_target", "{model}", "{encoder}", "{training}", "seed{seed}"),
    log:
        log_path("finetune_target", "{model}", "{encoder}", "{training}", "seed{seed}"),
    benchmark:
        benchmark_path("finetune_target", "{model}", "{encoder}", "{training}", "seed{seed}")
    threads: 1
    resources:
        gpu=1,
        cpus_per_gpu=lambda wildcards, threads: threads,
        mem_mb=job_mem_mb("finetune_target"),
        runtime=job_runtime("finetune_target"),
    conda:
        CONDA_ENV
    script:
        "../scripts/finetune_target.py"


rule predict_target:
    input:
        model=TARGET_MODEL,
        data=prediction_data,
        features=feature_dirs("predict"),
    output:
        predictions=directory(f"{TARGET_RUN}/predictions"),
        record=f"{TARGET_RUN}/predict.json",
    params:
        # The code version is part of the job: recorded in predict.json.
        job=lambda w: {**model_plan(w).predict_job(w.training), "code": code_version("predict_target")},
        data_root=lambda w, input: os.path.dirname(input.data[0]),
    log:
        log_path("predict_target", "{model}", "{encoder}", "{training}", "seed{seed}"),
    benchmark:
        benchmark_path("predict_target", "{model}", "{encoder}", "{training}", "seed{seed}")
    threads: 1
    resources:
        gpu=1,
        cpus_per_gpu=lambda wildcards, threads: threads,
        mem_mb=job_mem_mb("predict_target"),
        runtime=job_runtime("predict_target"),
    conda:
        CONDA_ENV
    script:
        "../scripts/predict_target.py"
