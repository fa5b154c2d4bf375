"""Rule bootstrap_reasoning_gains: intermediate task vs baseline on the reasoning targets, with
a paired bootstrap over test examples; the significance tables and the analysis record."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline, reasoning_report, significance  # noqa: E402


def main() -> None:
    job = {**snakemake.params.job, "folders": snakemake.params.folders}
    record = significance.analyse(job, Path(snakemake.input.labels[0]).parent)
    if not reasoning_report.finite(record):
        raise ValueError(f"the reasoning analysis produced a non-finite number; see {snakemake.output.record}")
    pipeline.write_json(snakemake.output.record, record)
    reasoning_report.write_tables(record, Path(snakemake.output.table[0]).with_suffix(""), snakemake.output.languages)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
