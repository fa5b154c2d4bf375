"""Rule download_model (a localrule): the hub encoder at its pinned commit, verified."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.download_model(snakemake.params.job, snakemake.output[0])


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main, network=True)  # noqa: F821
