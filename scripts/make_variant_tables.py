"""Rule make_variant_tables: each variant's table beside its plain tasks, and the paper's Variants body."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline, tables, variants_report  # noqa: E402
from xstilts.tasks import BASELINE  # noqa: E402


def main() -> None:
    p = snakemake.params
    workflow_dir = Path(snakemake.scriptdir).parent  # params.captions: {path in the workflow: sha256}
    variants_report.make_variant_tables(
        list(snakemake.input.scores), {v: [tuple(r) for r in rows] for v, rows in p.variants.items()}, p.targets,
        p.seeds, p.tables_dir, snakemake.output.tex, tables.load_captions(workflow_dir / next(iter(p.captions))),
        BASELINE)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
