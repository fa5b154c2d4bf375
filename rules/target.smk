"""Phase 3: target-task training on English data, then zero-shot prediction in every language.

Rules: finetune_target -> the selected model (a plain AutoModelFor* folder) and its dev metrics;
predict_target -> XTREME-layout predictions (`predictions/<target>/test-<lang>.<ext>`) for every
target the training serves. Prediction languages and test-time decoding are params of
predict_target only, so changing them never retrains. With `targets.keep_models: false` the model
is temp(): Snakemake deletes it once its predictions exist.
"""

TARGET_MODEL = "results/target/{model}/{encoder}/{training}/seed{seed}/model"


rule finetune_target:
    input:
        encoder=encoder_dir,
        data=target_data,
    output:
        model=directory(TARGET_MODEL) if PLAN.keep_models else temp(directory(TARGET_MODEL)),
        metrics="results/target/{model}/{encoder}/{training}/seed{seed}/metrics.json",
    params:
        job=lambda w: PLAN.target_job(w.training),
        checkpoint_dir="results/checkpoints/finetune_target/{model}/{encoder}/{training}/seed{seed}",
    log:
        "logs/finetune_target/{model}/{encoder}/{training}/seed{seed}.log",
    benchmark:
        "benchmarks/finetune_target/{model}/{encoder}/{training}/seed{seed}.tsv"
    threads: 1
    resources:
        gpu=1,
        cpus_per_gpu=lambda wildcards, threads: threads,
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 720 * attempt,
    conda:
        CONDA_ENV
    script:
        "../scripts/finetune_target.py"


rule predict_target:
    input:
        model=TARGET_MODEL,
        data=prediction_data,
    output:
        predictions=directory("results/target/{model}/{encoder}/{training}/seed{seed}/predictions"),
        record="results/target/{model}/{encoder}/{training}/seed{seed}/predict.json",
    params:
        job=lambda w: PLAN.predict_job(w.training),
    log:
        "logs/predict_target/{model}/{encoder}/{training}/seed{seed}.log",
    benchmark:
        "benchmarks/predict_target/{model}/{encoder}/{training}/seed{seed}.tsv"
    threads: 1
    resources:
        gpu=1,
        cpus_per_gpu=lambda wildcards, threads: threads,
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 120 * attempt,
    conda:
        CONDA_ENV
    script:
        "../scripts/predict_target.py"
