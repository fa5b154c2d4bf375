"""Phase 2: English intermediate-task training (each task, and the multi-task mix).

Rules: finetune_intermediate -> results/encoders/{model}/{itask} (a Hugging Face encoder
folder) and its dev metrics.
"""


rule finetune_intermediate:
    input:
        encoder=f"results/encoders/{{model}}/{BASELINE}",
        data=intermediate_data,
    output:
        encoder=directory("results/encoders/{model}/{itask}"),
        metrics="results/intermediate/{model}/{itask}/metrics.json",
    params:
        job=lambda w: PLAN.intermediate_job(w.itask),
        checkpoint_dir="results/checkpoints/finetune_intermediate/{model}/{itask}",
    log:
        "logs/finetune_intermediate/{model}/{itask}.log",
    benchmark:
        "benchmarks/finetune_intermediate/{model}/{itask}.tsv"
    threads: 1
    resources:
        gpu=1,
        cpus_per_gpu=lambda wildcards, threads: threads,
        mem_mb=lambda wildcards, attempt: 32000 * attempt,
        runtime=lambda wildcards, attempt: 960 * attempt,
    conda:
        CONDA_ENV
    script:
        "../scripts/finetune_intermediate.py"
