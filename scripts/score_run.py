"""Rule score_run: XTREME scores of one run (an encoder and a seed)."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline  # noqa: E402


def main() -> None:
    w = snakemake.wildcards
    pipeline.score_run(snakemake.params.folders, snakemake.params.languages, Path(snakemake.input.labels[0]).parent,
                       snakemake.output[0], {"model": w.model, "encoder": w.encoder, "seed": int(w.seed)})


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
