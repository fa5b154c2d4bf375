"""Rule pretrain_mlm: the demo's phase-1 masked LM."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import formats, pipeline  # noqa: E402


def main() -> None:
    data_root = Path(snakemake.input.corpus).parent
    files = [formats.data_files(data_root, "mlm_corpus", lang, "train")["text"] for lang in snakemake.params.languages]
    pipeline.pretrain_mlm(snakemake.params.job, snakemake.input.tokenizer, files, snakemake.output.encoder,
                          snakemake.output.metrics, snakemake.params.checkpoint_dir, snakemake.threads)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main,  # noqa: F821
                  gpus=snakemake.resources.get("gpu", 0))  # noqa: F821
