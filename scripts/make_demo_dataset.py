"""Rule make_demo_dataset: one dataset of the embedded synthetic benchmark."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821 (the workflow's own copy of xstilts)
from xstilts import pipeline  # noqa: E402

pipeline.setup_logging(snakemake.log[0])
pipeline.make_demo_dataset(snakemake.params.job, Path(snakemake.output[0]).parent)
