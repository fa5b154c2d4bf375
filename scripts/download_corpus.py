"""Rule download_corpus (a localrule): one language of a hub corpus at its pinned commit, verified."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import corpus, pipeline  # noqa: E402


def main() -> None:
    corpus.download(snakemake.params.job, snakemake.output[0])


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main, network=True)  # noqa: F821
