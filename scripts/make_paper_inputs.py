"""Rule make_paper_inputs: the paper's generated tables, macros and per-target appendix."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import paper, pipeline, tables  # noqa: E402


def main() -> None:
    p, i = snakemake.params, snakemake.input
    workflow_dir = Path(snakemake.scriptdir).parent  # params.captions / published: {path in the workflow: sha256}
    paper.make_paper_inputs(
        score_files=list(i.scores),
        target_metrics=[(e, t, path) for (e, t, _), path in zip(p.target_runs, i.target_metrics)],
        bucc_details=list(zip(p.bucc_encoders, i.bucc_details)),
        published_dir=(workflow_dir / next(iter(p.published))).parent, data_root=p.data_root, layout=p.layout, jobs=p.jobs,
        encoders=p.encoders, targets=p.targets, seeds=p.seeds, intermediate=p.intermediate, multitask=p.multitask,
        preset=p.preset, model=snakemake.wildcards.model, comparable=p.comparable,
        captions=tables.load_captions(workflow_dir / next(iter(p.captions))),
        generated_dir=Path(snakemake.output.macros).parent, out_dir=Path(snakemake.output.best).parent,
        extra_sections=p.extra_sections,
    )


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
