"""Rule make_reasoning_figure: forest plot of the reasoning gains and their intervals."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline, reasoning_report  # noqa: E402

pipeline.setup_logging(snakemake.log[0])
reasoning_report.gains_figure(snakemake.input.table, snakemake.input.languages, list(snakemake.output))
