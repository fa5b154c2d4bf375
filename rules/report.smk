"""Scores, tables and figures: cheap presentation steps, separate from training.

Rules: score_run (XTREME scorer over one run's predictions: an encoder and a seed),
make_tables (matrix, deltas, per-target tables as CSV/Markdown/LaTeX), make_figure (heatmap).
"""


rule score_run:
    input:
        predictions=run_predictions,
        labels=expand(f"{LABELS}/{{target}}", target=PLAN.targets),
    output:
        "results/scores/{model}/{encoder}/seed{seed}.json",
    params:
        folders=run_folders,
        languages={t: PLAN.target_languages(t) for t in PLAN.targets},
    log:
        "logs/score_run/{model}/{encoder}/seed{seed}.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/score_run.py"


rule make_tables:
    input:
        scores=all_scores(),
    output:
        matrix=multiext("results/tables/matrix", ".csv", ".md", ".tex"),
        delta=multiext("results/tables/matrix_delta", ".csv", ".md", ".tex"),
        per_target=[
            f"results/tables/target_{t}{ext}" for t in PLAN.targets for ext in (".csv", ".md", ".tex")
        ],
        provenance="results/tables/provenance.json",
    params:
        encoders=PLAN.encoders,
        targets=PLAN.targets,
        seeds=PLAN.seeds,
        model=MODEL,
        preset=EXP["preset"],
    log:
        "logs/make_tables/make_tables.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_tables.py"


rule make_figure:
    input:
        delta="results/tables/matrix_delta.csv",
    output:
        "results/figures/delta_heatmap.png",
        "results/figures/delta_heatmap.pdf",
    log:
        "logs/make_figure/make_figure.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_figure.py"
