"""Rule make_compute_table: wall-clock and GPU-hours per rule from Snakemake benchmark files."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import paper, pipeline, tables  # noqa: E402


def main() -> None:
    p = snakemake.params
    captions = tables.load_captions(Path(snakemake.scriptdir).parent / next(iter(p.captions)))
    latex, frame = paper.compute_table(zip(p.benchmark_rules, snakemake.input.benchmarks), set(p.gpu_rules),
                                       captions["compute"])
    with open(snakemake.output.tex, "w", encoding="utf-8") as f:
        f.write(latex)
    frame.to_csv(snakemake.output.csv, index=False, float_format="%.4f", lineterminator="\n")


# Its inputs are Snakemake's own benchmark records, which no job writes a manifest for.
pipeline.run_rule(snakemake.rule, snakemake.log, [], snakemake.output, snakemake.params, main)  # noqa: F821
