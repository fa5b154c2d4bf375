"""Rule make_model_comparison: the cross-model table, verdicts, figure and paper section."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import comparison, pipeline, tables  # noqa: E402


def main() -> None:
    p, i = snakemake.params, snakemake.input
    workflow_dir = Path(snakemake.scriptdir).parent  # params.captions / style: {path in the workflow: sha256}
    significance = list(i.significance) or [None] * len(p.models)
    models = [comparison.ModelInput(name, comparison.read_family(encoder), matrix, best, record)
              for name, encoder, matrix, best, record in zip(p.models, i.encoders, i.matrix, i.best, significance)]
    comparison.make_comparison(models, Path(snakemake.output.table[0]).parent,
                               tables.load_captions(workflow_dir / next(iter(p.captions))), dict(p.context),
                               style=workflow_dir / next(iter(p.style)))


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
