"""Rule make_tables: the matrix, its deltas and per-target tables from per-run score files."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline, tables  # noqa: E402
from xstilts.tasks import BASELINE  # noqa: E402


def main() -> None:
    p = snakemake.params
    workflow_dir = Path(snakemake.scriptdir).parent  # params.captions: {path in the workflow: sha256}
    record = tables.make_tables(snakemake.input.scores, p.encoders, p.targets, p.seeds, Path(snakemake.output.provenance).parent,
                                BASELINE, {"preset": p.preset, "run": p.run, "model": snakemake.wildcards.model,
                                           "encoders": p.encoders, "targets": p.targets, "seeds": p.seeds},
                                tables.load_captions(workflow_dir / next(iter(p.captions))))
    pipeline.write_json(snakemake.output.provenance, record)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
