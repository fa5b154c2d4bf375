"""Rule compile_paper: latexmk on paper/main.tex; the PDF is copied to the rule's output."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import paper_build, pipeline  # noqa: E402

pipeline.setup_logging(snakemake.log[0])
p = snakemake.params
workflow_dir = Path(snakemake.scriptdir).parent  # params.sources: {path in the workflow: sha256}, main.tex first
paper_build.compile_pdf(workflow_dir / next(iter(p.sources)), dict(p.generated), p.build_dir, snakemake.output.pdf)
