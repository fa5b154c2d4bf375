"""Rule convert_dataset: one real dataset from its verified downloads to the canonical files."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.convert_dataset(snakemake.params.job, list(snakemake.input.raw), Path(snakemake.output[0]).parent)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
