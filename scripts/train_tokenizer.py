"""Rule train_tokenizer: the demo's tokenizer, trained and saved the way its model family does it."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import formats, pipeline  # noqa: E402


def main() -> None:
    data_root = Path(snakemake.input.corpus).parent
    files = [formats.data_files(data_root, "mlm_corpus", lang, "train")["text"] for lang in snakemake.params.languages]
    pipeline.train_tokenizer(snakemake.params.vocab_size, files, snakemake.output[0], snakemake.params.architecture)


pipeline.run_rule(snakemake.rule, snakemake.log, snakemake.input, snakemake.output, snakemake.params, main)  # noqa: F821
