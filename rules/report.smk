"""Scores, tables and figures: cheap presentation steps, separate from training.

Rules: score_run (XTREME scorer over one run's predictions: an encoder and a seed),
make_tables (matrix, deltas, per-target tables as CSV/Markdown/LaTeX), make_variant_tables (each
variant beside its plain tasks, and the paper's generated Variants text), make_figure (heatmap).
"""


rule score_run:
    input:
        predictions=run_predictions,
        labels=expand(f"{LABELS}/{{target}}", target=PLAN.targets),
    output:
        SCORES,
    params:
        code=code_version("score_run"),
        folders=run_folders,
        languages={t: PLAN.target_languages(t) for t in PLAN.targets},
    log:
        log_path("score_run", "{model}", "{encoder}", "seed{seed}"),
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/score_run.py"


rule make_tables:
    input:
        scores=matrix_scores,
    output:
        matrix=[
            report(f"{TABLES}/matrix.csv", caption="../paper/report/matrix.rst", category="Tables"),
            f"{TABLES}/matrix.md",
            f"{TABLES}/matrix.tex",
        ],
        delta=[
            report(f"{TABLES}/matrix_delta.csv", caption="../paper/report/matrix_delta.rst", category="Tables"),
            f"{TABLES}/matrix_delta.md",
            f"{TABLES}/matrix_delta.tex",
        ],
        per_target=[f"{TABLES}/target_{t}{ext}" for t in PLAN.targets for ext in (".csv", ".md", ".tex")],
        provenance=f"{TABLES}/provenance.json",
    params:
        code=code_version("make_tables"),
        encoders=PLAN.matrix_encoders,
        targets=PLAN.targets,
        seeds=PLAN.seeds,
        preset=EXP["preset"],
        run=RUN,
        captions=workflow_files(CAPTIONS),
    log:
        log_path("make_tables", "{model}"),
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_tables.py"


rule make_variant_tables:
    input:
        scores=variant_scores,
    output:
        tables=[f"{TABLES}/variant_{v}{ext}" for v in PLAN.variants for ext in (".csv", ".md", ".tex")],
        # The paper's Variants section \inputs it (a sentence saying so when the grid has no variant).
        tex=f"{PAPER}/generated/variants.tex",
    params:
        code=code_version("make_variant_tables"),
        variants={v: [list(row) for row in PLAN.variant_rows(v)] for v in PLAN.variants},
        targets=PLAN.targets,
        seeds=PLAN.seeds,
        tables_dir=lambda w: for_model(TABLES, w.model),
        captions=workflow_files(CAPTIONS),
    log:
        log_path("make_variant_tables", "{model}"),
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_variant_tables.py"


rule make_figure:
    input:
        delta=rules.make_tables.output.delta[0],
    output:
        report(f"{FIGURES}/delta_heatmap.png", caption="../paper/report/delta_heatmap.rst", category="Figures"),
        f"{FIGURES}/delta_heatmap.pdf",
    params:
        code=code_version("make_figure"),
        style=workflow_files(FIGURE_STYLE),
    log:
        log_path("make_figure", "{model}"),
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_figure.py"
