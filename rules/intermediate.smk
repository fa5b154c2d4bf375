"""Phase 2: English intermediate-task training (each task, and the multi-task mix).

Rules: finetune_intermediate -> results/encoders/{model}/{itask} (a Hugging Face encoder
folder) and its dev metrics.
"""


rule finetune_intermediate:
    input:
        encoder=f"{ENCODERS}/{BASELINE}",
        data=intermediate_data,
        features=feature_dirs("intermediate"),
    output:
        encoder=directory(f"{ENCODERS}/{{itask}}"),
        metrics=f"{RESULTS}/intermediate/{{model}}/{{itask}}/metrics.json",
    params:
        # The code version is part of the job: recorded in metrics.json and the checkpoint fingerprint.
        job=lambda w: {**model_plan(w).intermediate_job(w.itask), "code": code_version("finetune_intermediate")},
        data_root=lambda w, input: os.path.dirname(input.data[0]),
        checkpoint_dir=checkpoint_path("finetune_intermediate", "{model}", "{itask}"),
    log:
        log_path("finetune_intermediate", "{model}", "{itask}"),
    benchmark:
        benchmark_path("finetune_intermediate", "{model}", "{itask}")
    threads: 1
    resources:
        gpu=1,
        cpus_per_gpu=lambda wildcards, threads: threads,
        mem_mb=job_mem_mb("finetune_intermediate"),
        runtime=job_runtime("finetune_intermediate"),
    conda:
        CONDA_ENV
    script:
        "../scripts/finetune_intermediate.py"
