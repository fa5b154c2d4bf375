"""Rule finetune_target: phase-3 training on English data; the selected model and its dev metrics."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.finetune_target(snakemake.params.job, int(snakemake.wildcards.seed), snakemake.input.encoder,
                             snakemake.params.data_root, snakemake.output.model, snakemake.output.metrics,
                             snakemake.params.checkpoint_dir, snakemake.threads,
                             features=list(snakemake.input.features))


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main,  # noqa: F821
                  gpus=snakemake.resources.get("gpu", 0))  # noqa: F821
