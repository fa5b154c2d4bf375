"""Across models: does English intermediate training help each model of the run?

Rule: make_model_comparison (from every model's matrix, best-on-dev picks, phase-1 config and,
when the run has the reasoning analysis, significance record -> the cross-model table
results/<run>/comparison/models.*, the reasoning verdicts reasoning_verdicts.*, the figure
model_gains.{png,pdf} and the paper section's generated body and macros). A presentation step:
it reads per-model results only, so a caption or style edit never re-runs training.

    snakemake --cores all results/<run>/comparison/models.csv
"""


rule make_model_comparison:
    input:
        # The phase-1 model folder: its config.json names the family (encoder or decoder).
        encoders=expand(f"{ENCODERS}/{BASELINE}", model=MODELS),
        matrix=expand(f"{TABLES}/matrix.csv", model=MODELS),
        best=expand(f"{PAPER}/best_per_target.json", model=MODELS),
        significance=expand(f"{REASONING}/significance.json", model=MODELS) if PLAN.reasoning_complete else [],
    output:
        table=[
            report(f"{COMPARISON}/models.csv", caption="../paper/report/models.rst", category="Models"),
            f"{COMPARISON}/models.md",
            f"{COMPARISON}/models.tex",
        ],
        verdicts=multiext(f"{COMPARISON}/reasoning_verdicts", ".csv", ".md", ".tex"),
        figure=[
            report(f"{COMPARISON}/model_gains.png", caption="../paper/report/model_gains.rst", category="Models"),
            f"{COMPARISON}/model_gains.pdf",
        ],
        body=f"{COMPARISON}/generated/models.tex",
        macros=f"{COMPARISON}/generated/models_macros.tex",
    params:
        code=code_version("make_model_comparison"),
        models=MODELS,
        context={
            "preset": EXP["preset"],
            "seeds": PLAN.seeds,
            "synthetic": EXP["data"]["source"] == "synthetic",
        },
        captions=workflow_files(CAPTIONS),
        style=workflow_files(FIGURE_STYLE),
    log:
        log_path("make_model_comparison", "all"),
    localrule: True
    threads: 1
    resources:
        mem_mb=2000,
    conda:
        CONDA_ENV
    script:
        "../scripts/make_model_comparison.py"
