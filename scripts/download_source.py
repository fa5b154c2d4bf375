"""Rule download_source (a localrule: the only jobs with network access): one pinned source."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.download_source(snakemake.params.files, snakemake.output[0], snakemake.params.partial_dir)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main, network=True)  # noqa: F821
