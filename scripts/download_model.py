"""Rule download_model (a localrule): the hub encoder at its pinned commit, verified."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402

pipeline.setup_logging(snakemake.log[0], network=True)
pipeline.download_model(snakemake.params.job, snakemake.output[0])
