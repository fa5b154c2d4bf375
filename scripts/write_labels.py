"""Rule write_labels: XTREME label files of one target from its canonical test data."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    data_root = Path(snakemake.input.data).parent
    pipeline.write_labels(snakemake.wildcards.target, snakemake.params.languages, data_root, Path(snakemake.output[0]).parent)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
