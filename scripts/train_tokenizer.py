"""Rule train_tokenizer: the demo's tokenizer, trained and saved the way its model family does it."""
import sys
from pathlib import Path

sys.path.insert(0, snakemake.scriptdir)  # noqa: F821
from xstilts import formats, pipeline  # noqa: E402

pipeline.setup_logging(snakemake.log[0])
data_root = Path(snakemake.input.corpus).parent
files = [formats.data_files(data_root, "mlm_corpus", lang, "train")["text"] for lang in snakemake.params.languages]
pipeline.train_tokenizer(snakemake.params.vocab_size, files, snakemake.output[0], snakemake.params.architecture)
