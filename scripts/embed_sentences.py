"""Rule embed_sentences: BUCC and Tatoeba sentence embeddings of one encoder."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    pipeline.embed_sentences(snakemake.params.job, snakemake.input.encoder, snakemake.params.data_root, snakemake.output[0],
                             snakemake.threads)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main,  # noqa: F821
                  gpus=snakemake.resources.get("gpu", 0))  # noqa: F821
