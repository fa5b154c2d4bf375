"""Rule compile_paper: latexmk on paper/main.tex; the PDF is copied to the rule's output."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import paper_build, pipeline  # noqa: E402


def main() -> None:
    p = snakemake.params
    workflow_dir = Path(snakemake.scriptdir).parent  # params.sources: {path in the workflow: sha256}, main.tex first
    paper_build.compile_pdf(workflow_dir / next(iter(p.sources)), dict(p.generated), p.build_dir, snakemake.output.pdf)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
