"""Data: canonical task datasets and XTREME label files.

Rules: make_demo_dataset (embedded synthetic benchmark, one job per dataset; data.source
synthetic), download_source (a localrule, the only jobs with network access: one pinned,
sha256-verified source), download_corpus (a localrule too: one language of a hub corpus, the
+MLM variant's Wikipedia shard, at a pinned commit) and convert_dataset (one real dataset to the
same canonical files; data.source download), write_labels (XTREME label files of each target, the `--label_folder` of
`xstilts evaluate`).
"""


if EXP["data"]["source"] == "synthetic":

    rule make_demo_dataset:
        output:
            directory(f"{DATA}/{{dataset}}"),
        params:
            code=code_version("make_demo_dataset"),
            job=lambda w: PLAN.data_job(w.dataset),
        log:
            log_path("make_demo_dataset", "{dataset}"),
        conda:
            CONDA_ENV
        script:
            "../scripts/make_demo_dataset.py"


if EXP["data"]["source"] == "download":

    rule download_source:
        output:
            directory("resources/downloads/{source}"),
        params:
            files=lambda w: PLAN.download_job(w.source),
            # Outside the output folder, so an interrupted transfer resumes on the next run.
            partial_dir="resources/partial/{source}",
        wildcard_constraints:
            source=_alternatives(PLAN.download_sources()),
        log:
            log_path("download_source", "{source}"),
        localrule: True
        conda:
            CONDA_ENV
        script:
            "../scripts/download_source.py"

    if PLAN.corpus_downloads():

        rule download_corpus:
            # One language of a hub corpus (mlm_corpus: Wikipedia's first parquet shard) at its
            # pinned commit, every file verified against the hub's metadata (LFS sha256).
            output:
                directory("resources/corpus/{corpus}/{lang}"),
            params:
                job=lambda w: PLAN.corpus_download_job(w.corpus, w.lang),
            wildcard_constraints:
                corpus=_alternatives(sorted({c for c, _ in PLAN.corpus_downloads()})),
                lang=_alternatives(sorted({lang for _, lang in PLAN.corpus_downloads()})),
            log:
                log_path("download_corpus", "{corpus}", "{lang}"),
            localrule: True
            conda:
                CONDA_ENV
            script:
                "../scripts/download_corpus.py"

    rule convert_dataset:
        input:
            # ancient: a download is identified by its pinned checksums (in params), not by its
            # time stamp, so fetching a source again never re-converts or retrains anything.
            raw=lambda w: [ancient(f"resources/downloads/{s}") for s in PLAN.dataset_sources(w.dataset)]
            + [ancient(f"resources/corpus/{c}/{lang}") for c, lang in PLAN.corpus_inputs(w.dataset)],
        output:
            directory(f"{DATA}/{{dataset}}"),
        params:
            code=code_version("convert_dataset"),
            job=lambda w: PLAN.convert_job(w.dataset),
        log:
            log_path("convert_dataset", "{dataset}"),
        threads: 1
        resources:
            mem_mb=16000,
            runtime=120,
        conda:
            CONDA_ENV
        script:
            "../scripts/convert_dataset.py"

    # Manual data (CCGbank) is checked before the first job of a real run, not hours into it, and
    # only when the DAG built for the requested targets converts it; a dry run (-n) skips this
    # and lists the whole grid.
    ONSTART_CHECKS.append(check_manual_data)


rule write_labels:
    input:
        data=f"{DATA}/{{target}}",
    output:
        directory(f"{LABELS}/{{target}}"),
    params:
        code=code_version("write_labels"),
        languages=lambda w: PLAN.target_languages(w.target),
    log:
        log_path("write_labels", "{target}"),
    conda:
        CONDA_ENV
    script:
        "../scripts/write_labels.py"
