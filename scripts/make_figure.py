"""Rule make_figure: heatmap of the gains over the baseline."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import figures, pipeline  # noqa: E402

pipeline.setup_logging(snakemake.log[0])
figures.delta_heatmap(snakemake.input.delta, list(snakemake.output),
                      style=Path(snakemake.scriptdir).parent / next(iter(snakemake.params.style)))
