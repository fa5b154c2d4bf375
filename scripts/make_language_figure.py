"""Rule make_language_figure: per-language gains of each target's best intermediate task."""
import json
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import figures, pipeline  # noqa: E402
from xstilts.tasks import BASELINE  # noqa: E402


def main() -> None:
    with open(snakemake.input.best, encoding="utf-8") as f:
        best = json.load(f)["best_per_target"]
    figures.language_gains(dict(zip(snakemake.params.targets, snakemake.input.tables)), best, BASELINE,
                           list(snakemake.output), style=Path(snakemake.scriptdir).parent / next(iter(snakemake.params.style)))


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
