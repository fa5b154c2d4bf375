"""Cross-lingual reasoning (XTREME-R): does English intermediate training improve it, significantly?

Rules: bootstrap_reasoning_gains (each intermediate task vs the baseline on XNLI and XCOPA:
gains over seeds, paired bootstrap intervals over test examples, languages improved/hurt ->
results/tables/reasoning_significance.*), make_reasoning_figure (forest plot), make_reasoning_section
(the paper's generated section and its number macros) and the target `reasoning`, which builds
only these and what they need (no other target, no retrieval, no score files):

    snakemake --cores all reasoning
"""


if PLAN.reasoning_targets:

    rule bootstrap_reasoning_gains:
        input:
            # The prediction folders of every encoder, reasoning training and seed.
            predictions=reasoning_predictions,
            labels=expand(f"{LABELS}/{{target}}", target=PLAN.reasoning_targets),
        output:
            table=multiext(f"{TABLES}/reasoning_significance", ".csv", ".md", ".tex"),
            languages=f"{TABLES}/reasoning_languages.csv",
            record=f"{REASONING}/significance.json",
        params:
            code=code_version("bootstrap_reasoning_gains"),
            job=PLAN.reasoning_job(),
            folders=reasoning_folders,
        log:
            log_path("bootstrap_reasoning_gains", "{model}"),
        localrule: True
        threads: 1
        resources:
            mem_mb=4000,
        conda:
            CONDA_ENV
        script:
            "../scripts/bootstrap_reasoning_gains.py"

    rule make_reasoning_figure:
        input:
            table=rules.bootstrap_reasoning_gains.output.table[0],
            languages=rules.bootstrap_reasoning_gains.output.languages,
        output:
            report(
                f"{FIGURES}/reasoning_gains.png",
                caption="../paper/report/reasoning_gains.rst",
                category="Reasoning (XTREME-R)",
            ),
            f"{FIGURES}/reasoning_gains.pdf",
        params:
            code=code_version("make_reasoning_figure"),
        log:
            log_path("make_reasoning_figure", "{model}"),
        localrule: True
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            CONDA_ENV
        script:
            "../scripts/make_reasoning_figure.py"

    rule make_reasoning_section:
        input:
            record=rules.bootstrap_reasoning_gains.output.record,
        output:
            body=f"{PAPER}/generated/reasoning.tex",
            macros=f"{PAPER}/generated/reasoning_macros.tex",
        params:
            code=code_version("make_reasoning_section"),
            context={
                "preset": EXP["preset"],
                "synthetic": EXP["data"]["source"] == "synthetic",
                "xcopa_recipe": EXP["targets"]["xcopa_recipe"],
            },
        log:
            log_path("make_reasoning_section", "{model}"),
        localrule: True
        threads: 1
        resources:
            mem_mb=2000,
        conda:
            CONDA_ENV
        script:
            "../scripts/make_reasoning_section.py"

    rule reasoning:
        input:
            expand(rules.bootstrap_reasoning_gains.output, model=MODELS),
            expand(rules.make_reasoning_figure.output, model=MODELS),
            expand(rules.make_reasoning_section.output, model=MODELS),


# What the default target adds: the whole analysis when every configured reasoning target is in
# targets.tasks (the demo and paper presets); reduced grids without XCOPA build it on request.
REASONING_OUTPUTS = rules.reasoning.input if PLAN.reasoning_complete else []
