"""Rule make_figure: heatmap of the gains over the baseline."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import figures, pipeline  # noqa: E402


def main() -> None:
    figures.delta_heatmap(snakemake.input.delta, list(snakemake.output),
                          style=Path(snakemake.scriptdir).parent / next(iter(snakemake.params.style)))


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
