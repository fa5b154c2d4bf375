"""Rule make_reasoning_section: the paper's reasoning section body and its number macros."""
import json
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import pipeline, reasoning_report  # noqa: E402


def main() -> None:
    with open(snakemake.input.record, encoding="utf-8") as f:
        record = json.load(f)
    reasoning_report.write_section(record, dict(snakemake.params.context), snakemake.output.body, snakemake.output.macros)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
