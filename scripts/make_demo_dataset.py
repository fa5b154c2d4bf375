"""Rule make_demo_dataset: one dataset of the embedded synthetic benchmark."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (the workflow's own copy of xstilts)
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.make_demo_dataset(snakemake.params.job, Path(snakemake.output[0]).parent)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
