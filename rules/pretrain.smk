"""Phase 1 stand-in for the demo: a tokenizer and a tiny XLM-R-architecture MLM trained locally.

Rules: train_tokenizer, pretrain_mlm. The resulting folder is loaded by every later rule
exactly as a downloaded `xlm-roberta-large` would be.
"""


if EXP["model"]["source"] == "pretrain":

    rule train_tokenizer:
        input:
            corpus=f"{DATA}/mlm_corpus",
        output:
            directory("results/tokenizer/{model}"),
        params:
            vocab_size=EXP["model"]["pretrain"]["vocab_size"],
            languages=PLAN.corpus_languages(),
        log:
            "logs/train_tokenizer/{model}.log",
        conda:
            CONDA_ENV
        script:
            "../scripts/train_tokenizer.py"

    rule pretrain_mlm:
        input:
            tokenizer=rules.train_tokenizer.output[0],
            corpus=f"{DATA}/mlm_corpus",
        output:
            encoder=directory(f"results/encoders/{{model}}/{BASELINE}"),
            metrics="results/pretrain/{model}/metrics.json",
        params:
            job=PLAN.pretrain_job(),
            languages=PLAN.corpus_languages(),
            checkpoint_dir="results/checkpoints/pretrain_mlm/{model}",
        log:
            "logs/pretrain_mlm/{model}.log",
        benchmark:
            "benchmarks/pretrain_mlm/{model}.tsv"
        threads: 1
        resources:
            gpu=1,
            mem_mb=16000,
            runtime=240,
        conda:
            CONDA_ENV
        script:
            "../scripts/pretrain_mlm.py"
