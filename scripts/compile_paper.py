"""Rule compile_paper: latexmk on paper/main.tex; the PDF is copied to the rule's output."""
import sys

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import paper_build, pipeline  # noqa: E402

pipeline.setup_logging(snakemake.log[0])
p = snakemake.params
paper_build.compile_pdf(snakemake.input.sources[0], p.generated_roots, p.build_dir, snakemake.output.pdf)
