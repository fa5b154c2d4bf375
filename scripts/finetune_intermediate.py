"""Rule finetune_intermediate: phase-2 training of one intermediate encoder."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402

pipeline.setup_logging(snakemake.log[0])
pipeline.finetune_intermediate(snakemake.params.job, snakemake.input.encoder, snakemake.params.data_root, snakemake.output.encoder,
                               snakemake.output.metrics, snakemake.params.checkpoint_dir, snakemake.threads)
