"""Rule make_paper_inputs: the paper's generated tables, macros and per-target appendix."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import paper, pipeline, tables  # noqa: E402

pipeline.setup_logging(snakemake.log[0])
p, i = snakemake.params, snakemake.input
paper.make_paper_inputs(
    score_files=list(i.scores), target_metrics=list(i.target_metrics), bucc_details=list(i.bucc_details),
    published_dir=Path(i.published[0]).parent, data_root=p.data_root, layout=p.layout, jobs=p.jobs,
    encoders=p.encoders, targets=p.targets, seeds=p.seeds, intermediate=p.intermediate, multitask=p.multitask,
    preset=p.preset, model=p.model, comparable=p.comparable, captions=tables.load_captions(i.captions),
    generated_dir=Path(snakemake.output.macros).parent, out_dir=Path(snakemake.output.best).parent,
    extra_sections=p.extra_sections,
)
