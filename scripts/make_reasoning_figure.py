"""Rule make_reasoning_figure: forest plot of the reasoning gains and their intervals."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline, reasoning_report  # noqa: E402


def main() -> None:
    reasoning_report.gains_figure(snakemake.input.table, snakemake.input.languages, list(snakemake.output))


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
