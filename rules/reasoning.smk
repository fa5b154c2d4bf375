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
            predictions=sorted(
                {f for e in PLAN.reasoning_folders().values() for s in e.values() for f in s.values()}
            ),
            labels=expand(f"{LABELS}/{{target}}", target=PLAN.reasoning_targets),
        output:
            table=multiext("results/tables/reasoning_significance", ".csv", ".md", ".tex"),
            languages="results/tables/reasoning_languages.csv",
            record="results/reasoning/significance.json",
        params:
            job=PLAN.reasoning_job(),
        log:
            "logs/bootstrap_reasoning_gains/bootstrap_reasoning_gains.log",
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
            table="results/tables/reasoning_significance.csv",
            languages=rules.bootstrap_reasoning_gains.output.languages,
        output:
            report(
                "results/figures/reasoning_gains.png",
                caption="../paper/report/reasoning_gains.rst",
                category="Reasoning (XTREME-R)",
            ),
            "results/figures/reasoning_gains.pdf",
        log:
            "logs/make_reasoning_figure/make_reasoning_figure.log",
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
            body="results/paper/generated/reasoning.tex",
            macros="results/paper/generated/reasoning_macros.tex",
        params:
            context={
                "preset": EXP["preset"],
                "synthetic": EXP["data"]["source"] == "synthetic",
                "xcopa_recipe": EXP["targets"].get("xcopa_recipe", "siqa_copa"),
            },
        log:
            "logs/make_reasoning_section/make_reasoning_section.log",
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
            rules.bootstrap_reasoning_gains.output,
            rules.make_reasoning_figure.output,
            rules.make_reasoning_section.output,


# What the default target adds: the whole analysis when every configured reasoning target is in
# targets.tasks (the demo and paper presets); reduced grids without XCOPA build it on request.
REASONING_OUTPUTS = rules.reasoning.input if PLAN.reasoning_complete else []
