"""Rule prepare_model: the phase-1 encoder folder from the verified hub download (offline)."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.prepare_model(snakemake.input.download, snakemake.output[0])


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
