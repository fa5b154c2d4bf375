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
        captions=CAPTIONS,
    output:
        matrix=[
            report("results/tables/matrix.csv", caption="../paper/report/matrix.rst", category="Tables"),
            "results/tables/matrix.md",
            "results/tables/matrix.tex",
        ],
        delta=[
            report("results/tables/matrix_delta.csv", caption="../paper/report/matrix_delta.rst", category="Tables"),
            "results/tables/matrix_delta.md",
            "results/tables/matrix_delta.tex",
        ],
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
        style=FIGURE_STYLE,
    output:
        report("results/figures/delta_heatmap.png", caption="../paper/report/delta_heatmap.rst", category="Figures"),
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
