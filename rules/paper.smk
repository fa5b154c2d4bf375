"""The paper: generated LaTeX inputs, the compute table, the per-language figure and the PDF.

Rules: make_paper_inputs (dataset, hyperparameter, summary and published-vs-reproduced tables
and the headline-number macros), make_compute_table (wall-clock and GPU-hours per rule from
the `benchmark:` files), make_language_figure, compile_paper (latexmk -> results/<run>/paper/
<model>/xstilts.pdf) and the target `paper`. Captions (paper/captions.yaml), the plot style
(paper/figures.mplstyle) and the paper's sources reach these presentation rules only (as
checksummed params), so editing them never re-runs training or scoring.
"""


rule make_paper_inputs:
    input:
        scores=matrix_scores,
        target_metrics=all_target_metrics,
        bucc_details=all_retrieval_details("bucc2018"),
        data=data_dirs(PLAN.datasets()),
        # The appendix \inputs these; listed so the paper depends on them.
        per_target=expand(f"{TABLES}/target_{{target}}.tex", target=PLAN.targets, allow_missing=True),
    output:
        macros=f"{PAPER}/generated/macros.tex",
        tex=expand(
            f"{PAPER}/generated/{{name}}.tex",
            name=["datasets", "hyperparameters", "summary", "published", "per_language", "extra_sections"],
            allow_missing=True,
        ),
        csv=expand(f"{PAPER}/{{name}}.csv", name=["datasets", "summary", "published_comparison"], allow_missing=True),
        best=f"{PAPER}/best_per_target.json",
    params:
        code=code_version("make_paper_inputs"),
        data_root=lambda w, input: os.path.dirname(input.data[0]),
        layout={d: PLAN.layout(d) for d in PLAN.datasets()},
        jobs=lambda w: training_hparams(w.model),
        target_runs=target_run_keys(PLAN.matrix_encoders),
        bucc_encoders=retrieval_detail_keys("bucc2018"),
        encoders=PLAN.matrix_encoders,
        targets=PLAN.targets,
        seeds=PLAN.seeds,
        intermediate=PLAN.intermediate_tasks,
        multitask=EXP["intermediate"]["multitask"]["enabled"],
        preset=EXP["preset"],
        # Published numbers are on the real XTREME data: only a run on it is comparable.
        comparable=EXP["data"]["source"] == "download",
        extra_sections=[s for s, _ in PAPER_EXTRA_SECTIONS],
        published=workflow_files(*PUBLISHED),
        captions=workflow_files(CAPTIONS),
    log:
        log_path("make_paper_inputs", "{model}"),
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_paper_inputs.py"


rule make_compute_table:
    input:
        benchmarks=lambda w: [path for _, path in all_benchmarks(w.model)],
    output:
        tex=f"{PAPER}/generated/compute.tex",
        csv=f"{PAPER}/compute.csv",
    params:
        code=code_version("make_compute_table"),
        benchmark_rules=lambda w: [name for name, _ in all_benchmarks(w.model)],
        gpu_rules=gpu_rules(),
        captions=workflow_files(CAPTIONS),
    log:
        log_path("make_compute_table", "{model}"),
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
        tables=expand(f"{TABLES}/target_{{target}}.csv", target=PLAN.targets, allow_missing=True),
    output:
        report(
            f"{FIGURES}/language_gains.png",
            caption="../paper/report/language_gains.rst",
            category="Figures",
        ),
        f"{FIGURES}/language_gains.pdf",
    params:
        code=code_version("make_language_figure"),
        targets=PLAN.targets,
        style=workflow_files(FIGURE_STYLE),
    log:
        log_path("make_language_figure", "{model}"),
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_language_figure.py"


rule compile_paper:
    input:
        # Every generated file the paper \inputs or \includegraphics: one that no rule produces
        # stops the DAG before anything runs (MissingInputException naming it).
        generated=lambda w: list(paper_generated(PAPER_GENERATED_NAMES, w.model).values()),
    output:
        pdf=report(f"{PAPER}/xstilts.pdf", caption="../paper/report/paper.rst", category="Paper"),
    params:
        code=code_version("compile_paper"),
        # The handwritten sources (main.tex first), checksummed: editing one recompiles.
        sources=workflow_files(*PAPER_SOURCES, *(f"paper/{s}" for s, _ in PAPER_EXTRA_SECTIONS)),
        generated=lambda w: paper_generated(PAPER_GENERATED_NAMES, w.model),
        build_dir=f"{PAPER}/build",
    log:
        log_path("compile_paper", "{model}"),
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        "../envs/paper.yaml"
    script:
        "../scripts/compile_paper.py"


rule paper:
    input:
        [for_model(rules.compile_paper.output.pdf, m) for m in MODELS],
