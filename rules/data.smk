"""Data: canonical task datasets and XTREME label files.

Rules: make_demo_dataset (embedded synthetic benchmark, one job per dataset), write_labels
(XTREME label files of each target, the `--label_folder` of `xstilts evaluate`).
"""


if EXP["data"]["source"] == "synthetic":

    rule make_demo_dataset:
        output:
            directory(f"{DATA}/{{dataset}}"),
        params:
            job=lambda w: PLAN.data_job(w.dataset),
        log:
            "logs/make_demo_dataset/{dataset}.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/make_demo_dataset.py"


rule write_labels:
    input:
        data=f"{DATA}/{{target}}",
    output:
        directory(f"{LABELS}/{{target}}"),
    params:
        languages=lambda w: PLAN.target_languages(w.target),
    log:
        "logs/write_labels/{target}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/write_labels.py"
