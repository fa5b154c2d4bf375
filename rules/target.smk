"""Phase 3: target-task training on English data and zero-shot prediction in every language.

Rules: finetune_target -> the selected model, its dev metrics and XTREME-layout predictions
(`predictions/<target>/test-<lang>.<ext>`) for every target the training serves.
"""


rule finetune_target:
    input:
        encoder=encoder_dir,
        data=target_data,
    output:
        model=directory(f"{TARGET_RUN}/model"),
        predictions=directory(f"{TARGET_RUN}/predictions"),
        metrics=f"{TARGET_RUN}/metrics.json",
    params:
        code=code_version("finetune_target"),
        job=lambda w: PLAN.target_job(w.training),
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
        mem_mb=lambda wildcards, attempt: 16000 * attempt,
        runtime=lambda wildcards, attempt: 720 * attempt,
    conda:
        CONDA_ENV
    script:
        "../scripts/finetune_target.py"
