"""Rule tokenize_dataset: one dataset's files tokenised once per model and encoding settings (Arrow)."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.tokenize_dataset(snakemake.params.job, snakemake.input.tokenizer, snakemake.params.data_root,  # noqa: F821
                              snakemake.output[0])  # noqa: F821


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
