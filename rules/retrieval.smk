"""BUCC and Tatoeba: no target training; sentence embeddings of each encoder are retrieved.

Rules: embed_sentences (once per encoder, every BUCC/Tatoeba sentence), mine_bucc (threshold on
dev gold, applied to test), search_tatoeba (top-1 cosine). Both write XTREME predictions.
"""


rule embed_sentences:
    input:
        encoder=encoder_dir,
        data=data_dirs(PLAN.retrieval_targets),
    output:
        directory(f"{RESULTS}/embeddings/{{model}}/{{encoder}}"),
    params:
        code=code_version("embed_sentences"),
        job=lambda w: model_plan(w).retrieval_job(),
        data_root=lambda w, input: os.path.dirname(input.data[0]) if input.data else DATA,
    log:
        log_path("embed_sentences", "{model}", "{encoder}"),
    benchmark:
        benchmark_path("embed_sentences", "{model}", "{encoder}")
    threads: 1
    resources:
        gpu=1,
        cpus_per_gpu=lambda wildcards, threads: threads,
        mem_mb=job_mem_mb("embed_sentences"),
        runtime=job_runtime("embed_sentences"),
    conda:
        CONDA_ENV
    script:
        "../scripts/embed_sentences.py"


rule mine_bucc:
    input:
        embeddings=rules.embed_sentences.output[0],
        data=f"{DATA}/bucc2018",
    output:
        predictions=directory(f"{RETRIEVAL}/predictions/bucc2018"),
        details=f"{RETRIEVAL}/bucc2018.json",
    params:
        code=code_version("mine_bucc"),
        job=PLAN.bucc_job() if "bucc2018" in PLAN.targets else {},
    log:
        log_path("mine_bucc", "{model}", "{encoder}"),
    benchmark:
        benchmark_path("mine_bucc", "{model}", "{encoder}")
    threads: 1
    resources:
        mem_mb=job_mem_mb("mine_bucc"),
        runtime=job_runtime("mine_bucc"),
    conda:
        CONDA_ENV
    script:
        "../scripts/mine_bucc.py"


rule search_tatoeba:
    input:
        embeddings=rules.embed_sentences.output[0],
        # The English sentences give XTREME's order of the prediction files.
        data=f"{DATA}/tatoeba",
    output:
        predictions=directory(f"{RETRIEVAL}/predictions/tatoeba"),
        details=f"{RETRIEVAL}/tatoeba.json",
    params:
        code=code_version("search_tatoeba"),
        job=PLAN.tatoeba_job() if "tatoeba" in PLAN.targets else {},
    log:
        log_path("search_tatoeba", "{model}", "{encoder}"),
    benchmark:
        benchmark_path("search_tatoeba", "{model}", "{encoder}")
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: 4000 * attempt,
        runtime=lambda wildcards, attempt: 30 * attempt,
    conda:
        CONDA_ENV
    script:
        "../scripts/search_tatoeba.py"
