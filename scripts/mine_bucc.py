"""Rule mine_bucc: BUCC bitext mining with the dev-tuned threshold applied to test."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.mine_bucc(snakemake.params.job, Path(snakemake.input.data).parent, snakemake.input.embeddings,
                       Path(snakemake.output.predictions).parent, snakemake.output.details)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
