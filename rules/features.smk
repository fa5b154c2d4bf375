"""Tokenised features: every dataset file a training or prediction job encodes, tokenised once.

Rules: tokenize_dataset -> results/features/{model}/{dataset}/{settings} (one job per model,
dataset and encoding settings, covering every split and language the model's jobs read; the
settings, a digest, are the format's encoding hyperparameters and labels: xstilts.feature_cache).
finetune_intermediate, finetune_target and predict_target read these memory-mapped Arrow folders
instead of tokenising the canonical files themselves.
"""


rule tokenize_dataset:
    input:
        tokenizer=tokenizer_dir,
        data=feature_data,
    output:
        directory(FEATURES),
    params:
        code=code_version("tokenize_dataset"),
        job=feature_job,
        data_root=lambda w, input: os.path.dirname(input.data[0]),
    log:
        log_path("tokenize_dataset", "{model}", "{dataset}", "{settings}"),
    benchmark:
        benchmark_path("tokenize_dataset", "{model}", "{dataset}", "{settings}")
    threads: 1
    resources:
        mem_mb=job_mem_mb("tokenize_dataset"),
        runtime=job_runtime("tokenize_dataset"),
    conda:
        CONDA_ENV
    script:
        "../scripts/tokenize_dataset.py"
