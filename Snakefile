# xstilts: X-STILTs (Phang et al., AACL 2020) as one Snakemake DAG.
#
#   snakemake --cores all                         # the default preset (embedded demo)
#   snakemake --cores all --config preset=NAME    # another preset of config.yaml
#
# Data flows one way: canonical task data -> phase-1 encoder (and, with its tokenizer, the
# tokenised features every training and prediction job reads) -> intermediate encoders ->
# target models + predictions / retrieval embeddings -> per-run scores -> tables and figure.

from snakemake.utils import min_version

min_version("9.0")

sys.path.insert(0, f"{workflow.basedir}/scripts")

from snakemake.exceptions import WorkflowError

from xstilts.config import ConfigError, check_yaml_file

# Snakemake reports a YAML mistake in a config file without the file or the line; say both.
# (A broken --configfile fails inside snakemake's command line, before this file is read:
# `xstilts check-config FILE` names its file and line.)
try:
    for path in [f"{workflow.basedir}/config.yaml", *workflow.overwrite_configfiles]:
        check_yaml_file(path)
except ConfigError as error:
    raise WorkflowError(str(error)) from None


# The project's config.yaml, wherever the workflow runs (`--directory`); files passed with
# `--configfile` and values passed with `--config` are merged over it.
configfile: f"{workflow.basedir}/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pretrain.smk"
include: "rules/features.smk"
include: "rules/intermediate.smk"
include: "rules/target.smk"
include: "rules/retrieval.smk"
include: "rules/report.smk"
include: "rules/paper.smk"
include: "rules/reasoning.smk"
include: "rules/comparison.smk"


# Before the first job of a real run: one run at a time per run name and directory, then the
# rule files' checks (ONSTART_CHECKS, e.g. the manual CCGbank download), then the worker that
# local jobs fork from (xstilts.worker: torch and transformers imported once, not once per job).
onstart:
    hold_run_lock()
    for check in ONSTART_CHECKS:
        check()
    start_worker()


# The local jobs' worker (rules/common.smk start_worker) ends with the run.
onsuccess:
    stop_worker()


onerror:
    stop_worker()


# Cheap jobs (data generation, label files, scoring, tables) run on the submit host under a
# cluster profile (profiles/slurm); the rest is submitted as cluster jobs.
localrules:
    write_labels,
    score_run,
    make_tables,
    make_variant_tables,
    make_figure,
    make_paper_inputs,
    make_compute_table,
    make_language_figure,
    compile_paper,


if EXP["data"]["source"] == "synthetic":

    localrules: make_demo_dataset


from xstilts.paper_build import INSTALL_HINT, toolchain_available

# The PDF needs a TeX toolchain: without one, the default target stops at the paper's generated
# inputs and says so; `snakemake paper` then fails with the same advice.
PAPER_PDF = [for_model(rules.compile_paper.output.pdf, m) for m in MODELS] if toolchain_available() else []
if not PAPER_PDF:
    logger.warning(
        "No TeX toolchain (latexmk, pdflatex): the default target builds the tables, figures and the "
        f"paper's generated inputs, but not the PDF. To compile it, {INSTALL_HINT}; then run `snakemake paper`."
    )


rule all:
    default_target: True
    input:
        expand(rules.make_tables.output, model=MODELS),
        expand(rules.make_variant_tables.output, model=MODELS),
        expand(rules.make_figure.output, model=MODELS),
        expand(rules.make_paper_inputs.output, model=MODELS),
        expand(rules.make_compute_table.output, model=MODELS),
        expand(rules.make_language_figure.output, model=MODELS),
        REASONING_OUTPUTS,
        rules.make_model_comparison.output if COMPARE_MODELS else [],
        PAPER_PDF,
