"""The paper: generated LaTeX inputs, the compute table, the per-language figure and the PDF.

Rules: make_paper_inputs (dataset, hyperparameter, summary and published-vs-reproduced tables
and the headline-number macros), make_compute_table (wall-clock and GPU-hours per rule from
the `benchmark:` files), make_language_figure, compile_paper (latexmk -> results/paper/xstilts.pdf)
and the target `paper`. Captions (paper/captions.yaml) and the plot style
(paper/figures.mplstyle) are inputs of these presentation rules only, so editing them never
re-runs training or scoring.
"""


rule make_paper_inputs:
    input:
        scores=all_scores(),
        target_metrics=all_target_metrics(),
        bucc_details=all_retrieval_details("bucc2018"),
        data=data_dirs(PLAN.datasets()),
        # The appendix \inputs these; listed so the paper depends on them.
        per_target=expand("results/tables/target_{target}.tex", target=PLAN.targets),
        published=PUBLISHED,
        captions=CAPTIONS,
    output:
        macros=f"{PAPER}/generated/macros.tex",
        tex=expand(
            f"{PAPER}/generated/{{name}}.tex",
            name=["datasets", "hyperparameters", "summary", "published", "per_language", "extra_sections"],
        ),
        csv=expand(f"{PAPER}/{{name}}.csv", name=["datasets", "summary", "published_comparison"]),
        best=f"{PAPER}/best_per_target.json",
    params:
        data_root=lambda w, input: os.path.dirname(input.data[0]),
        layout={d: PLAN.layout(d) for d in PLAN.datasets()},
        jobs=training_hparams(),
        encoders=PLAN.encoders,
        targets=PLAN.targets,
        seeds=PLAN.seeds,
        intermediate=PLAN.intermediate_tasks,
        multitask=EXP["intermediate"]["multitask"]["enabled"],
        preset=EXP["preset"],
        model=MODEL,
        # Published numbers are on the real XTREME data: only a run on it is comparable.
        comparable=EXP["data"]["source"] == "download",
        extra_sections=[s for s, _ in PAPER_EXTRA_SECTIONS],
    log:
        "logs/make_paper_inputs/make_paper_inputs.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_paper_inputs.py"


rule make_compute_table:
    input:
        benchmarks=all_benchmarks(),
        captions=CAPTIONS,
    output:
        tex=f"{PAPER}/generated/compute.tex",
        csv=f"{PAPER}/compute.csv",
    params:
        gpu_rules=gpu_rules(),
    log:
        "logs/make_compute_table/make_compute_table.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_compute_table.py"


rule make_language_figure:
    input:
        best=rules.make_paper_inputs.output.best,
        tables=expand("results/tables/target_{target}.csv", target=PLAN.targets),
        style=FIGURE_STYLE,
    output:
        report(
            "results/figures/language_gains.png",
            caption="../paper/report/language_gains.rst",
            category="Figures",
        ),
        "results/figures/language_gains.pdf",
    params:
        targets=PLAN.targets,
    log:
        "logs/make_language_figure/make_language_figure.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_language_figure.py"


rule compile_paper:
    input:
        # Every file the paper \inputs or \includegraphics: a generated one no rule produces
        # stops the DAG before anything runs (MissingInputException naming it).
        sources=PAPER_SOURCES + [f"{PAPER_DIR}/{s}" for s, _ in PAPER_EXTRA_SECTIONS],  # main.tex first
        generated=PAPER_GENERATED + [f for _, files in PAPER_EXTRA_SECTIONS for f in files],
    output:
        pdf=report(f"{PAPER}/xstilts.pdf", caption="../paper/report/paper.rst", category="Paper"),
    params:
        generated_roots=[PAPER, "results"],
        build_dir=f"{PAPER}/build",
    log:
        "logs/compile_paper/compile_paper.log",
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/paper.yaml"
    script:
        "../scripts/compile_paper.py"


rule paper:
    input:
        rules.compile_paper.output.pdf,
