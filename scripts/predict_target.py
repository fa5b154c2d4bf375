"""Rule predict_target: zero-shot XTREME predictions of a fine-tuned target model."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.predict_target(snakemake.params.job, snakemake.input.model, snakemake.params.data_root, snakemake.output.predictions,
                            snakemake.output.record, snakemake.threads, features=list(snakemake.input.features))


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main,  # noqa: F821
                  gpus=snakemake.resources.get("gpu", 0))  # noqa: F821
