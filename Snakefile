# xstilts: X-STILTs (Phang et al., AACL 2020) as one Snakemake DAG.
#
#   snakemake --cores all                         # the default preset (embedded demo)
#   snakemake --cores all --config preset=NAME    # another preset of config.yaml
#
# Data flows one way: canonical task data -> phase-1 encoder -> intermediate encoders ->
# target models + predictions / retrieval embeddings -> per-run scores -> tables and figure.

from snakemake.utils import min_version

min_version("9.0")


# The project's config.yaml, wherever the workflow runs (`--directory`); files passed with
# `--configfile` and values passed with `--config` are merged over it.
configfile: f"{workflow.basedir}/config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pretrain.smk"
include: "rules/intermediate.smk"
include: "rules/target.smk"
include: "rules/retrieval.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        rules.make_tables.output,
        rules.make_figure.output,
