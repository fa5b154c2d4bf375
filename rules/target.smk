"""Phase 3: target-task training on English data and zero-shot prediction in every language.

Rules: finetune_target -> the selected model, its dev metrics and XTREME-layout predictions
(`predictions/<target>/test-<lang>.<ext>`) for every target the training serves.
"""


rule finetune_target:
    input:
        encoder=encoder_dir,
        data=target_data,
    output:
        model=directory("results/target/{model}/{encoder}/{training}/seed{seed}/model"),
        predictions=directory("results/target/{model}/{encoder}/{training}/seed{seed}/predictions"),
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
