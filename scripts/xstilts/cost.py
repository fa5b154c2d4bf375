"""What the grid's jobs cost: GPU time, and the memory and time limit each job asks a cluster for.

One cost model serves two readers: ``scripts/estimate_grid.py`` (job counts and GPU-hours of a
preset, the README's numbers) and the rules' ``resources`` (``rules/common.smk`` ``job_mem_mb``
and ``job_runtime``), so a job's time limit is the time the estimate gives it, times a safety
factor.

Time. A micro-batch takes the longer of (a) its FLOPs at a stated sustained throughput and (b) a
stated latency floor: with the paper's micro-batch of 4 short sentences, XLM-R Large's ~1,000
kernel launches per step, not its FLOPs, bound the time. FLOPs per token: forward 2 x N + 4 x
layers x hidden x sequence length (N = non-embedding parameters, 302M for XLM-R Large: 24
layers, hidden 1024, feed-forward 4096), training 3 x forward (4 x with gradient checkpointing).
Every model of the grid is estimated with its own N, layers and hidden size (``HUB_SHAPES`` for
hub models, the config for locally pretrained ones); token counts are XLM-R's for every model.
Where a benchmark record of ``scripts/bench_training.py`` exists for a model
(``benchmarks/training/*.json``), its measured tokens per second replace (a) and (b) for that
model (``Throughput``). Tokens per example are assumed means after SentencePiece and padding to
the longest of a micro-batch (below). A job = its training epochs, periodic and final dev
evaluations, and its test predictions in every language. Early stopping is ignored (with
patience 30 at one evaluation per 1000 steps none of the paper's target runs can stop early), so
on that account the estimate is an upper bound.

Data. The paper's split sizes are those of the real datasets (``TRAIN``, ``DEV``, ``TEST``); a
synthetic grid's (the demo) are its config's ``data.synthetic.sizes``.

Memory (``Sizing``). ``mem_mb`` is host memory, what SLURM's ``--mem`` limits. It bounds a job's
whole state: a training job holds fp32 weights, gradients and AdamW's two moments (16 bytes a
parameter, embeddings included), the activations of one micro-batch at its full sequence length,
and its data (training features memory-mapped from rule tokenize_dataset's files, dev records
in Python); an inference job the weights and its data; every job a fixed base for Python, torch
and the CUDA context. The training state is counted in host memory although on a
GPU it lives in GPU memory, because the same job runs on the CPU where no GPU is lent (the demo,
the tests' fake GPU) and because a checkpoint of it passes through host memory when written.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts.config import hparams_for, model_experiment, model_names, pretrain_hparams
from xstilts.plan import Plan
from xstilts.tasks import DATASETS, INTERMEDIATE_TASKS, MULTITASK, SPAN, TARGET_TRAININGS, TEXT


class Shape:
    """What the cost model needs of an architecture: non-embedding parameters, layers, hidden
    size, vocabulary and (for activation memory) attention heads."""

    def __init__(self, params: float, layers: int, hidden: int, vocab: int = 250002, heads: int | None = None):
        self.params, self.layers, self.hidden, self.vocab = params, layers, hidden, vocab
        self.heads = heads or max(1, hidden // 64)

    @classmethod
    def encoder(cls, layers: int, hidden: int, ffn: int, vocab: int = 250002, heads: int | None = None) -> "Shape":
        """A BERT-style block: four attention projections and a two-matrix feed-forward."""
        return cls(layers * (4 * hidden * hidden + 2 * hidden * ffn), layers, hidden, vocab, heads)

    @classmethod
    def from_hf_config(cls, cfg: dict[str, Any]) -> "Shape":
        """The shape of a Hugging Face ``config.json`` (encoders, and decoders with gated
        feed-forwards and grouped-query attention)."""
        def first(*keys: str, default: Any = None) -> Any:
            return next((cfg[k] for k in keys if cfg.get(k) is not None), default)

        hidden = first("hidden_size", "n_embd", "d_model")
        layers = first("num_hidden_layers", "n_layer", "num_layers")
        if hidden is None or layers is None:
            raise UnknownShape(f"config.json of model type {cfg.get('model_type')!r} names no hidden size or layers")
        ffn = first("intermediate_size", "n_inner", "ffn_dim", default=4 * hidden)
        heads = first("num_attention_heads", "n_head", default=max(1, hidden // 64))
        kv = first("num_key_value_heads", default=heads) * (hidden // heads)
        matrices = 3 if cfg.get("model_type") in GATED_FEED_FORWARD else 2
        per_layer = 2 * hidden * hidden + 2 * hidden * kv + matrices * hidden * ffn
        return cls(layers * per_layer, layers, hidden, first("vocab_size", default=250002), heads)

    @property
    def embedding_params(self) -> float:
        """The token embedding matrix (tied with the LM head where a model has one)."""
        return self.vocab * self.hidden

    @property
    def total_params(self) -> float:
        return self.params + self.embedding_params


#: Model types whose feed-forward has three matrices (gate, up, down).
GATED_FEED_FORWARD = {"llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3"}


class UnknownShape(ValueError):
    """A hub model whose shape the cost model does not know."""


#: Hub models by repository id. XLM-R Large: paper.md section 3.1. The others from their hub
#: configs as recorded in notes of the models preset [R]: mDeBERTa-v3-base (12 x 768, ffn 3072),
#: BLOOM-560m (24 x 1024, ffn 4096); Qwen2.5-0.5B's model card states 0.36B non-embedding
#: parameters (24 layers, hidden 896); Llama-3.2-1B 1.24B parameters less its 128,256 x 2,048
#: embedding (16 layers, hidden 2048).
HUB_SHAPES = {
    "FacebookAI/xlm-roberta-large": Shape.encoder(24, 1024, 4096, 250002),
    "microsoft/mdeberta-v3-base": Shape.encoder(12, 768, 3072, 250105),
    "bigscience/bloom-560m": Shape.encoder(24, 1024, 4096, 250880),
    "Qwen/Qwen2.5-0.5B": Shape(0.36e9, 24, 896, 151936),
    "meta-llama/Llama-3.2-1B": Shape(1.24e9 - 128256 * 2048, 16, 2048, 128256),
}
PAPER_MODEL = "FacebookAI/xlm-roberta-large"


def model_shape(model: dict, models_dir: str | Path | None = None) -> Shape:
    """The shape of one model of the grid (a resolved ``models`` entry).

    A hub model missing from ``HUB_SHAPES`` is read from its downloaded ``config.json``
    (``<models_dir>/<name>/config.json``, rule download_model) when ``models_dir`` is given and
    the download exists; otherwise ``UnknownShape``."""
    if model["source"] == "pretrain":
        p = model["pretrain"]
        return Shape.encoder(p["num_hidden_layers"], p["hidden_size"], p["intermediate_size"], p["vocab_size"],
                             p.get("num_attention_heads"))
    repo = model["hub"]["id"]
    if repo in HUB_SHAPES:
        return HUB_SHAPES[repo]
    if models_dir is not None:
        path = Path(models_dir) / model["name"] / "config.json"
        if path.is_file():
            return Shape.from_hf_config(json.loads(path.read_text(encoding="utf-8")))
    raise UnknownShape(f"no shape for hub model {repo!r}; add its non-embedding parameters, layers and hidden size "
                       "(from its config.json) to HUB_SHAPES in scripts/xstilts/cost.py")


#: Assumptions (A100-80GB-class GPU, bf16 autocast, HF transformers in eager mode, deterministic
#: kernels): sustained throughput when FLOPs dominate (16 % of an A100's dense bf16 peak of 312
#: TFLOP/s), and the least time of one training micro-batch (forward + backward + the optimizer
#: step amortised over grad_accum) and of one inference micro-batch.
DEFAULT_TFLOPS = 50.0
DEFAULT_TRAIN_FLOOR_MS = 40.0
DEFAULT_INFER_FLOOR_MS = 12.0

# Examples per split. Train/dev sizes of the intermediate tasks and XTREME sets: the split sizes
# recorded in the legacy Hugging Face dataset_infos.json files (huggingface/datasets@d7dfbc83),
# summed over XTREME's languages for test sets. [R] marks a number from memory (CCGbank sections,
# the TyDiQA English share, BUCC's full corpora), to check against a first run's conversion logs.
#: The translations (XNLI-MT, MLQA translate-train) have their English set's examples per language;
#: the +MLM variant's corpus, ``sentences_per_language`` per language (from the config).
TRAIN = {"anli_r1": 16946, "anli_r2": 45460, "anli_r3": 100459, "mnli": 392702, "snli": 549367,
         "qqp": 363846, "squad_v1": 87599, "squad_v2": 130319, "hellaswag": 39905, "cosmosqa": 25262,
         "commonsenseqa": 9741, "ccg": 39604,  # [R] CCGbank sections 02-21
         "pawsx": 49175, "udpos": 21253, "panx": 20000, "tydiqa": 3326,  # [R] 3,696 English, 90 % kept
         "siqa": 33410, "copa": 400}  # HF dataset_infos (social_i_qa, super_glue/copa)
DEV = {"anli_r1": 1000, "anli_r2": 1000, "anli_r3": 1200, "mnli": 9815, "snli": 9842, "qqp": 40430,
       "squad_v1": 10570, "squad_v2": 11873, "hellaswag": 10042, "cosmosqa": 2985, "commonsenseqa": 1221,
       "ccg": 1913,  # [R] section 00
       "pawsx": 2000, "udpos": 3974, "panx": 10000, "tydiqa": 370,  # [R] 10 % of English GoldP train
       "siqa": 1954, "copa": 100}
TEST = {"xnli": 75150, "pawsx": 13999, "udpos": 102119, "panx": 262300, "xquad": 13090, "mlqa": 42245,
        "tydiqa": 5077, "xcopa": 11 * 500}
#: Sentences embedded per encoder: BUCC's four comparable corpora, both sides, training + sample
#: [R] (about 2.66M + 0.27M), and Tatoeba's 36 language pairs (31,692 pairs, both sides).
RETRIEVAL_SENTENCES = 2_930_000 + 2 * 31692
#: BUCC 2018's training corpora (XTREME's BUCC test), sentences of the (foreign, English) side
#: [R]; the sample (dev) is about a tenth of each. They sum to the 2.66M above.
BUCC_SIDES = {"de": (413869, 399337), "fr": (271874, 369810), "ru": (460853, 558401), "zh": (94637, 88860)}

# Assumed mean tokens per example after XLM-R's SentencePiece and padding to the longest of a
# micro-batch of 4 (multiple choice: all choices; span QA: all windows of at most 384 tokens).
TOKENS = {"anli_r1": 110, "anli_r2": 110, "anli_r3": 110, "mnli": 55, "snli": 35, "qqp": 40, "xnli": 60,
          "pawsx": 60, "squad_v1": 280, "squad_v2": 280, "xquad": 300, "mlqa": 350, "tydiqa": 400,
          "hellaswag": 4 * 70, "cosmosqa": 4 * 130, "commonsenseqa": 5 * 30, "ccg": 40, "udpos": 35,
          "panx": 20, "siqa": 3 * 40, "copa": 2 * 30, "xcopa": 2 * 35}
RETRIEVAL_TOKENS = 40
TOKENS.update(mnli_mt=TOKENS["mnli"], squad_v1_mt=TOKENS["squad_v1"])
TRAIN.update(mnli_mt=TRAIN["mnli"], squad_v1_mt=TRAIN["squad_v1"])
#: A corpus line (the +MLM corpus, the demo's phase-1 corpus): one sentence.
CORPUS_TOKENS = RETRIEVAL_TOKENS


class PaperSizes:
    """Examples per split of the real datasets (``TRAIN``, ``DEV``, ``TEST``): per language for
    training and dev sets, summed over XTREME's languages for test sets."""

    def train(self, dataset: str) -> float:
        return TRAIN[dataset]

    def dev(self, dataset: str) -> float:
        return DEV[dataset]

    def test(self, target: str) -> float:
        return TEST[target]

    def file(self, dataset: str, split: str, languages: int) -> float:
        """Examples of one file: a split in one of ``languages`` languages (a test set's mean
        over them); 0 where the sizes above do not say."""
        if split == "test":
            return TEST.get(dataset, 0) / languages
        return {"train": TRAIN, "dev": DEV}[split].get(dataset, 0)

    def corpus(self, plan: Plan, languages: list[str]) -> float:
        """Sentences of the corpus (mlm_corpus) in ``languages``."""
        return plan.exp["intermediate"]["variants"]["mlm"]["sentences_per_language"] * len(languages)

    def retrieval_sentences(self, plan: Plan) -> float:
        return RETRIEVAL_SENTENCES

    def bucc_splits(self, plan: Plan) -> list[tuple[float, float]]:
        """(source, target) sentences of every BUCC language and split that mine_bucc mines."""
        sides = [BUCC_SIDES[lang] for lang in plan.target_languages("bucc2018") if lang in BUCC_SIDES]
        return [s for src, trg in sides for s in ((src, trg), (src / 10, trg / 10))]


class SyntheticSizes(PaperSizes):
    """Examples per split of a synthetic grid (``data.synthetic.sizes``, per language)."""

    def __init__(self, plan: Plan):
        self.plan = plan
        self.ratio = plan.exp["data"]["synthetic"]["bucc_distractor_ratio"]

    def _n(self, dataset: str, split: str) -> int:
        return self.plan.synthetic_sizes(dataset, [split])[split]

    def train(self, dataset: str) -> float:
        return self._n(dataset, "train")

    def dev(self, dataset: str) -> float:
        return self._n(dataset, "dev")

    def test(self, target: str) -> float:
        return self._n(target, "test") * len(self.plan.target_languages(target))

    def file(self, dataset: str, split: str, languages: int) -> float:
        return self._n(dataset, split)

    def corpus(self, plan: Plan, languages: list[str]) -> float:
        return self._n("mlm_corpus", "train") * len(languages)

    def retrieval_sentences(self, plan: Plan) -> float:
        bucc = sum(sum(pair) for pair in self.bucc_splits(plan))
        tatoeba = 2 * self._n("tatoeba", "test") * len(plan.target_languages("tatoeba")) \
            if "tatoeba" in plan.retrieval_targets else 0
        return bucc + tatoeba

    def bucc_splits(self, plan: Plan) -> list[tuple[float, float]]:
        if "bucc2018" not in plan.retrieval_targets:
            return []
        # Each side: the parallel pairs and bucc_distractor_ratio times as many one-sided sentences.
        side = [self._n("bucc2018", split) * (1 + self.ratio) for split in ("test", "dev")]
        return [(n, n) for _ in plan.target_languages("bucc2018") for n in side]


def data_sizes(exp: dict) -> PaperSizes:
    """The split sizes of an experiment's data source."""
    return SyntheticSizes(Plan(exp)) if exp["data"]["source"] == "synthetic" else PaperSizes()


def forward_flops(tokens: float, seq: float, shape: Shape) -> float:
    return tokens * (2 * shape.params + 4 * shape.layers * shape.hidden * seq)


def _seq(dataset: str) -> float:
    per_choice = DATASETS[dataset].num_choices or 1  # a multiple-choice example is one sequence per choice
    return min(384, TOKENS[dataset] / per_choice)


# ------------------------------------------------------------------------ measured throughput
#: Where scripts/bench_training.py writes its records (relative to the workflow folder).
BENCH_DIR = Path("benchmarks") / "training"


class BenchRecordError(ValueError):
    """A benchmark record that cannot be read."""


@dataclass(frozen=True)
class Throughput:
    """Measured tokens per second of xstilts' training and prediction for one model on one device:
    a record of ``scripts/bench_training.py`` (``{"date", "device", "model", "train":
    {"xstilts_tokens_per_s", ...}, "predict": {"xstilts_tokens_per_s", ...}}``). A record counts
    real tokens (no padding) of MNLI-like pairs; the estimate divides ``TOKENS``' counts, which
    include the padding of a micro-batch, by that rate, so it errs long by the padding share."""

    model: str
    device: str
    date: str
    train_tokens_per_s: float
    predict_tokens_per_s: float
    path: str

    def describe(self) -> str:
        return (f"training {self.train_tokens_per_s:,.0f} tokens/s, inference {self.predict_tokens_per_s:,.0f} "
                f"tokens/s ({self.device}, {self.date}, {self.path})")


def read_bench_record(path: str | Path) -> Throughput:
    """One benchmark record; ``BenchRecordError`` names the file and what is wrong."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise BenchRecordError(f"{path}: not a readable JSON benchmark record ({error})") from None

    def value(*keys: str) -> Any:
        node: Any = record
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                raise BenchRecordError(f"{path}: benchmark record without {'.'.join(keys)} "
                                       "(scripts/bench_training.py writes it)")
            node = node[key]
        return node

    rates = {}
    for phase in ("train", "predict"):
        rate = value(phase, "xstilts_tokens_per_s")
        if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not rate > 0:
            raise BenchRecordError(f"{path}: {phase}.xstilts_tokens_per_s is {rate!r}, not a positive number")
        rates[phase] = float(rate)
    return Throughput(model=str(value("model")), device=str(value("device")), date=str(value("date")),
                      train_tokens_per_s=rates["train"], predict_tokens_per_s=rates["predict"], path=str(path))


def bench_records(folder: str | Path) -> list[Throughput]:
    """Every record in a folder of benchmark records (none when it does not exist)."""
    folder = Path(folder)
    return [read_bench_record(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def record_for(model: dict, records: list[Throughput]) -> Throughput | None:
    """The newest record of one model of the grid (matched by its name or hub repository id)."""
    keys = {model["name"]}
    if model["source"] == "hub":
        keys.add(model["hub"]["id"])
    mine = [r for r in records if r.model in keys]
    return max(mine, key=lambda r: r.date) if mine else None


class Cost:
    """Seconds of GPU time for micro-batches of given size, under the stated assumptions, or at
    the measured throughput of a benchmark record (``measured``)."""

    def __init__(self, tflops: float, train_floor_ms: float, infer_floor_ms: float, shape: Shape = HUB_SHAPES[
            PAPER_MODEL], measured: Throughput | None = None, records: list[Throughput] | None = None):
        self.flops_per_s = tflops * 1e12
        self.train_floor, self.infer_floor = train_floor_ms / 1000, infer_floor_ms / 1000
        self.shape = shape
        self.measured = measured
        self.records = list(records or [])
        #: Training FLOPs per forward FLOP: 3 (forward + backward), 4 when activations are recomputed.
        self.train_factor = 3

    def of(self, shape: Shape, measured: Throughput | None = None) -> "Cost":
        """The same assumptions for another architecture."""
        return Cost(self.flops_per_s / 1e12, self.train_floor * 1000, self.infer_floor * 1000, shape, measured,
                    self.records)

    def for_model(self, exp: dict, models_dir: str | Path | None = None) -> "Cost":
        """The assumptions for one model's experiment: its shape, its measured throughput if a
        record exists, its gradient checkpointing."""
        cost = self.of(model_shape(exp["model"], models_dir), record_for(exp["model"], self.records))
        if exp["model"]["adaptation"]["gradient_checkpointing"]:
            cost.train_factor = 4
        return cost

    def train(self, dataset: str, examples: float, batch: int) -> float:
        micro = math.ceil(examples / batch)
        if self.measured:
            return micro * batch * TOKENS[dataset] / self.measured.train_tokens_per_s
        return micro * max(self.train_factor * forward_flops(batch * TOKENS[dataset], _seq(dataset), self.shape)
                           / self.flops_per_s, self.train_floor)

    def train_lm(self, steps: float, hp: dict) -> float:
        """Language-modelling steps of the +MLM variant: full blocks of max_seq_length tokens,
        and the LM head's vocabulary projection at every position (not only the masked ones)."""
        tokens = hp["batch_size"] * hp["max_seq_length"]
        if self.measured:
            return steps * hp["grad_accum"] * tokens / self.measured.train_tokens_per_s
        flops = forward_flops(tokens, hp["max_seq_length"], self.shape) + 2 * tokens * self.shape.vocab * self.shape.hidden
        return steps * hp["grad_accum"] * max(self.train_factor * flops / self.flops_per_s, self.train_floor)

    def infer(self, dataset: str, examples: float, batch: int) -> float:
        micro = math.ceil(examples / batch)
        return self.infer_tokens(micro, batch * TOKENS[dataset], _seq(dataset))

    def infer_tokens(self, micro: float, tokens: float, seq: float) -> float:
        """``micro`` inference micro-batches of ``tokens`` tokens in sequences of ``seq``."""
        if self.measured:
            return micro * tokens / self.measured.predict_tokens_per_s
        return micro * max(forward_flops(tokens, seq, self.shape) / self.flops_per_s, self.infer_floor)


def training_seconds(cost: Cost, train: list[str], dev: list[str], hp: dict, sizes: PaperSizes | None = None) -> float:
    """Training on the given datasets (concatenated) for hp epochs, with periodic and final dev evals."""
    sizes = sizes or PaperSizes()
    examples = sum(sizes.train(d) for d in train)
    steps = hp["epochs"] * math.ceil(examples / (hp["batch_size"] * hp["grad_accum"]))
    eval_batch = hp["eval_batch_size"] or 2 * hp["batch_size"]
    seconds = sum(cost.train(d, hp["epochs"] * sizes.train(d), hp["batch_size"]) for d in train)
    evals = steps // hp["eval_every_steps"] if hp["eval_every_steps"] else math.ceil(hp["epochs"])
    subset = hp["eval_max_examples"] or 10**9
    seconds += sum(evals * cost.infer(d, min(subset, sizes.dev(d)), eval_batch)
                   + cost.infer(d, sizes.dev(d), eval_batch) for d in dev)
    return seconds


def intermediate_parts(exp: dict, itask: str) -> list[tuple[list[str], list[str], dict]]:
    """(training sets, dev sets, hparams) of each task an intermediate job trains on."""
    plan = Plan(exp)
    job = plan.intermediate_job(itask)
    variant = job.get("variant")
    parts = []
    for name in job["tasks"]:
        hp = job["task_hparams"][name]
        if itask == MULTITASK:  # each task's batch and length, the mix's epochs and cadence
            mix = hparams_for(exp, "intermediate", None)
            hp = {**hp, **{k: mix[k] for k in ("epochs", "eval_every_steps", "eval_max_examples")}}
        task = INTERMEDIATE_TASKS[name]
        train, dev = [s.dataset for s in task.train], [s.dataset for s in task.dev]
        if variant is not None:  # a translated row trains on its translations (one set per language)
            train = [d for d, _, _ in variant["train"]]
        parts.append((train, dev, hp))
    return parts


def target_parts(exp: dict, training: str) -> list[tuple[list[str], list[str], dict]]:
    """(training sets, dev sets, hparams) of a target job: the training, then its stages (XCOPA's SIQA)."""
    task = TARGET_TRAININGS[training]
    parts = [([s.dataset for s in task.train], [s.dataset for s in task.dev], hparams_for(exp, "target", training))]
    for stage in Plan(exp).target_job(training).get("stages", []):
        parts.append(([d for d, _, _ in stage["train"]], [d for d, _, _ in stage["dev"]], stage["hparams"]))
    return parts


def job_hours(exp: dict, cost: Cost, models_dir: str | Path | None = None) -> dict[str, float]:
    """GPU-hours of one job of one model: each intermediate encoder, and each target training (one run).

    ``exp`` is one model's experiment (``config.model_experiment``): its hyperparameters."""
    plan = Plan(exp)
    sizes = data_sizes(exp)
    cost = cost.for_model(exp, models_dir)
    hours: dict[str, float] = {}
    if exp["model"]["source"] == "pretrain":
        hours["pretrain_mlm"] = pretrain_seconds(exp, cost, sizes) / 3600
    for itask in plan.itasks:
        seconds = 0.0
        variant = plan.intermediate_job(itask).get("variant")
        for train, dev, hp in intermediate_parts(exp, itask):
            seconds += training_seconds(cost, train, dev, hp, sizes)
            if variant is not None and variant["name"] == "mlm":
                examples = sum(sizes.train(d) for d in train)
                own = hp["epochs"] * math.ceil(examples / (hp["batch_size"] * hp["grad_accum"]))
                seconds += cost.train_lm(own * variant["share"] / (1 - variant["share"]), variant["hparams"])
        hours[f"finetune_intermediate/{itask}"] = seconds / 3600
    for training in plan.trainings:
        hp = hparams_for(exp, "target", training)
        seconds = sum(training_seconds(cost, train, dev, part_hp, sizes)
                      for train, dev, part_hp in target_parts(exp, training))
        hours[f"finetune_target/{training}"] = seconds / 3600
        # Rule predict_target: every served target's test set in every language, once per model.
        eval_batch = hp["eval_batch_size"] or 2 * hp["batch_size"]
        hours[f"predict_target/{training}"] = sum(cost.infer(t, sizes.test(t), eval_batch)
                                                  for t in plan.served(training)) / 3600
    return hours


def pretrain_seconds(exp: dict, cost: Cost, sizes: PaperSizes) -> float:
    """Rule pretrain_mlm (a locally pretrained model): its corpus packed into blocks of
    max_seq_length tokens, for its epochs, with the LM head at every position."""
    hp = pretrain_hparams(exp)
    plan = Plan(exp)
    tokens = sizes.corpus(plan, plan.corpus_languages()) * CORPUS_TOKENS
    blocks = tokens / (hp["max_seq_length"] - 2)
    steps = hp["epochs"] * math.ceil(blocks / (hp["batch_size"] * hp["grad_accum"]))
    return cost.train_lm(steps, hp)


def embed_seconds(exp: dict, cost: Cost, models_dir: str | Path | None = None) -> float:
    """Rule embed_sentences: every BUCC and Tatoeba sentence of the grid, once per encoder."""
    plan = Plan(exp)
    cost = cost.for_model(exp, models_dir)
    batch = exp["retrieval"]["batch_size"]
    micro = math.ceil(data_sizes(exp).retrieval_sentences(plan) / batch)
    return cost.infer_tokens(micro, batch * RETRIEVAL_TOKENS, RETRIEVAL_TOKENS)


def estimate(exp: dict, cost: Cost) -> dict[str, dict[str, float]]:
    """GPU rule -> {jobs, gpu_hours} of a resolved experiment, every model of the grid summed."""
    rows: dict[str, dict[str, float]] = {}
    for name in model_names(exp):
        for rule, row in estimate_model(model_experiment(exp, name), cost).items():
            total = rows.setdefault(rule, {"jobs": 0, "gpu_hours": 0.0})
            total["jobs"] += row["jobs"]
            total["gpu_hours"] += row["gpu_hours"]
    return rows


def estimate_model(exp: dict, cost: Cost) -> dict[str, dict[str, float]]:
    """GPU rule -> {jobs, gpu_hours} of one model's experiment."""
    plan = Plan(exp)
    hours = job_hours(exp, cost)
    rows: dict[str, dict[str, float]] = {}
    if "pretrain_mlm" in hours:
        rows["pretrain_mlm"] = {"jobs": 1, "gpu_hours": hours["pretrain_mlm"]}
    rows["finetune_intermediate"] = {"jobs": len(plan.itasks),
                                     "gpu_hours": sum(h for k, h in hours.items() if k.startswith("finetune_inter"))}
    runs = len(plan.encoders) * len(plan.seeds)
    for rule in ("finetune_target", "predict_target"):
        rows[rule] = {"jobs": runs * len(plan.trainings),
                      "gpu_hours": runs * sum(h for k, h in hours.items() if k.startswith(f"{rule}/"))}
    embed = embed_seconds(exp, cost)
    rows["embed_sentences"] = {"jobs": len(plan.encoders), "gpu_hours": embed * len(plan.encoders) / 3600}
    return rows


# ------------------------------------------------------------------------------- job requests
#: Host memory of every job before its model and data: the interpreter, torch, transformers and,
#: on a GPU node, the CUDA context and its libraries (a CPU-only job uses about a fifth of it).
HOST_BASE_MB = 3000
#: fp32 weights (4 bytes), their gradients (4) and AdamW's two moments (8).
TRAIN_BYTES_PER_PARAM = 16
WEIGHT_BYTES_PER_PARAM = 4
#: Activations are counted in fp32 (the CPU, and what autocast keeps in fp32): twice the
#: 16-bit figure of Korthikanti et al. 2022, s x b x h x (34 + 5 x heads x s / h) bytes a layer.
ACTIVATION_PRECISION = 2
#: Host bytes per token of an example held in Python: its record and its features as lists
#: (measured 2026-12-07: about 17 + 51 bytes for sentence pairs, rounded up for span QA's offsets
#: and the records' other fields). Rule tokenize_dataset holds its features so before saving
#: them, and evaluation and prediction hold their dev and test records.
DATA_BYTES_PER_TOKEN = 100
#: Host bytes per token of training features read from tokenize_dataset's memory-mapped Arrow
#: files (token ids and attention mask as 64-bit columns), resident as the pages are read.
MAPPED_BYTES_PER_TOKEN = 16
#: Tokens per second of rule tokenize_dataset on one core (fast tokenizer, Python lists, Arrow
#: written): an assumption, not a measurement.
TOKENIZE_TOKENS_PER_S = 200_000
#: Host bytes per sentence of a retrieval corpus held as Python strings.
SENTENCE_BYTES = 200
#: Memory requests are rounded up to this many MB.
MEM_STEP_MB = 500
#: Time limit = estimated hours x this factor, at least RUNTIME_FLOOR_MIN, at most RUNTIME_CAP_MIN.
RUNTIME_SAFETY = 1.5
RUNTIME_FLOOR_MIN = 10
#: Two days, a common partition limit (MaxTime). A job estimated longer still finishes: its
#: retries resume from its checkpoint (training jobs write one at every dev evaluation).
RUNTIME_CAP_MIN = 2880
#: Sustained float32 throughput of one CPU core in exact nearest-neighbour search (BLAS sgemm),
#: for rule mine_bucc.
CPU_GFLOPS = 50.0

MB = 2**20


def _activation_bytes(shape: Shape, sequences: float, seq: float, checkpointing: bool = False) -> float:
    """Activations that backpropagation keeps for ``sequences`` sequences of ``seq`` tokens."""
    sbh = sequences * seq * shape.hidden
    layer = sbh * (34 + 5 * shape.heads * seq / shape.hidden) * ACTIVATION_PRECISION
    if checkpointing:  # each layer's input, and one layer's activations while it is recomputed
        return shape.layers * sbh * 4 + layer
    return shape.layers * layer


def _inference_bytes(shape: Shape, sequences: float, seq: float) -> float:
    """Activations of one inference micro-batch: every layer's hidden states (retrieval reads
    one of them) and one layer's attention and feed-forward."""
    sbh = sequences * seq * shape.hidden
    return 4 * (shape.layers * sbh + 4 * sbh + sequences * shape.heads * seq * seq)


def _round_mb(nbytes: float) -> int:
    return int(math.ceil(nbytes / MB / MEM_STEP_MB) * MEM_STEP_MB)


def _part_bytes(part: tuple[list[str], list[str], dict], sizes: PaperSizes) -> float:
    """Host bytes of one training part's data: mapped training features, dev records in Python."""
    train, dev, _ = part
    return (sum(sizes.train(d) * TOKENS[d] for d in train) * MAPPED_BYTES_PER_TOKEN
            + sum(sizes.dev(d) * TOKENS[d] for d in dev) * DATA_BYTES_PER_TOKEN)


def _micro_batch(part: tuple[list[str], list[str], dict]) -> tuple[float, float]:
    """(sequences, sequence length) of a training micro-batch at its longest."""
    train, _, hp = part
    choices = max(DATASETS[d].num_choices or 1 for d in train)
    return hp["batch_size"] * choices, hp["max_seq_length"]


@dataclass
class Request:
    """What one job asks the cluster for on its first attempt, and why."""

    mem_mb: int
    runtime: int
    hours: float | None = None  # estimated GPU-hours (None: a CPU job)
    measured: Throughput | None = None


class Sizing:
    """Memory and time limits of the jobs of one resolved experiment (what rules/common.smk's
    ``job_mem_mb`` and ``job_runtime`` give the rules), at ``attempt`` times the first attempt's.

    ``cost`` gives the throughput assumptions (default: ``DEFAULT_*`` and no records);
    ``models_dir`` is where rule download_model puts hub models, for a hub model missing from
    ``HUB_SHAPES`` (until it is downloaded, such a model is sized as XLM-R Large; Snakemake
    evaluates the requests again when the job is ready to run)."""

    RULES = ("pretrain_mlm", "prepare_model", "tokenize_dataset", "finetune_intermediate", "finetune_target",
             "predict_target", "embed_sentences", "mine_bucc")

    def __init__(self, exp: dict, cost: Cost | None = None, models_dir: str | Path | None = None):
        self.exp = exp
        self.cost = cost or Cost(DEFAULT_TFLOPS, DEFAULT_TRAIN_FLOOR_MS, DEFAULT_INFER_FLOOR_MS)
        self.models_dir = models_dir
        self._hours: dict[str, dict[str, float]] = {}
        self._plans: dict[str, dict] = {}
        self._requests: dict[tuple, Request] = {}

    # ------------------------------------------------------------------ public
    def mem_mb(self, rule: str, model: str, attempt: int = 1, **wildcards: str) -> int:
        """Host memory (MB) of a job's ``attempt``-th try."""
        return self.request(rule, model, **wildcards).mem_mb * attempt

    def runtime(self, rule: str, model: str, attempt: int = 1, **wildcards: str) -> int:
        """Time limit (minutes) of a job's ``attempt``-th try (at most ``RUNTIME_CAP_MIN``)."""
        return min(RUNTIME_CAP_MIN, self.request(rule, model, **wildcards).runtime * attempt)

    def request(self, rule: str, model: str, **wildcards: str) -> Request:
        """The first attempt's request of one job (``wildcards``: itask, training, dataset; others ignored)."""
        if rule not in self.RULES:
            raise KeyError(f"rule {rule!r} is not sized by xstilts.cost (sized: {', '.join(self.RULES)})")
        # Only these wildcards change a job's work; encoder and seed do not.
        key = (rule, model, wildcards.get("itask"), wildcards.get("training"), wildcards.get("dataset"))
        if key not in self._requests:
            exp = self._exp(model)
            request = getattr(self, f"_{rule}")(exp, self._shape(exp), wildcards)
            if self._known(exp):  # a provisional size is computed again once the download exists
                self._requests[key] = request
            return request
        return self._requests[key]

    def hours(self, model: str) -> dict[str, float]:
        """``job_hours`` of one model (as scripts/estimate_grid.py prints them)."""
        if model not in self._hours:
            exp = self._exp(model)
            try:
                self._hours[model] = job_hours(exp, self.cost, self.models_dir)
            except UnknownShape:
                return job_hours(self._provisional(exp), self.cost)
        return self._hours[model]

    # ------------------------------------------------------------------ internals
    def _exp(self, model: str) -> dict:
        if model not in self._plans:
            self._plans[model] = model_experiment(self.exp, model)
        return self._plans[model]

    @staticmethod
    def _provisional(exp: dict) -> dict:
        return {**exp, "model": {**exp["model"], "source": "hub", "hub": {**exp["model"]["hub"], "id": PAPER_MODEL}}}

    def _known(self, exp: dict) -> bool:
        try:
            model_shape(exp["model"], self.models_dir)
        except UnknownShape:
            return False
        return True

    def _shape(self, exp: dict) -> Shape:
        try:
            return model_shape(exp["model"], self.models_dir)
        except UnknownShape:
            return HUB_SHAPES[PAPER_MODEL]

    def _time(self, hours: float) -> int:
        return max(RUNTIME_FLOOR_MIN, math.ceil(hours * 60 * RUNTIME_SAFETY))

    def _measured(self, exp: dict) -> Throughput | None:
        return record_for(exp["model"], self.cost.records)

    def _training(self, exp: dict, shape: Shape, parts: list, phase: str, extra_tokens: float = 0.0,
                  lm_positions: float = 0.0) -> float:
        """Host bytes of a training job: state, the largest micro-batch's activations, data."""
        adaptation = Plan(exp).adaptation(phase)
        lora, checkpointing = adaptation["lora"], adaptation["gradient_checkpointing"]
        if lora:  # frozen fp32 weights; adapters (A and B on two projections a layer) trained in full
            trainable = shape.layers * 2 * 2 * lora["r"] * shape.hidden
            state = WEIGHT_BYTES_PER_PARAM * shape.total_params + TRAIN_BYTES_PER_PARAM * trainable
        else:
            state = TRAIN_BYTES_PER_PARAM * shape.total_params
        sizes = data_sizes(exp)
        activations = max(_activation_bytes(shape, *_micro_batch(p), checkpointing) for p in parts)
        # An LM head's logits (and their gradient and softmax) at the positions it predicts.
        activations += lm_positions * shape.vocab * 4 * 3
        data = sum(_part_bytes(p, sizes) for p in parts) + extra_tokens * MAPPED_BYTES_PER_TOKEN
        return HOST_BASE_MB * MB + state + activations + data

    def _pretrain_mlm(self, exp: dict, shape: Shape, wildcards: dict) -> Request:
        hp = pretrain_hparams(exp)
        plan = Plan(exp)
        tokens = data_sizes(exp).corpus(plan, plan.corpus_languages()) * CORPUS_TOKENS
        sequences = hp["batch_size"]
        causal = exp["model"]["pretrain"].get("architecture") in CAUSAL_ARCHITECTURES
        positions = sequences * hp["max_seq_length"] * (1 if causal else hp["mlm_probability"])
        nbytes = (HOST_BASE_MB * MB + TRAIN_BYTES_PER_PARAM * shape.total_params
                  + _activation_bytes(shape, sequences, hp["max_seq_length"])
                  + positions * shape.vocab * 4 * 3 + tokens * DATA_BYTES_PER_TOKEN)
        hours = self.hours(exp["model"]["name"])["pretrain_mlm"]
        return Request(_round_mb(nbytes), self._time(hours), hours, self._measured(exp))

    def _prepare_model(self, exp: dict, shape: Shape, wildcards: dict) -> Request:
        # The weights as loaded and as saved again (CPU only, minutes).
        return Request(_round_mb(HOST_BASE_MB * MB + 2 * WEIGHT_BYTES_PER_PARAM * shape.total_params), 30)

    def _tokenize_dataset(self, exp: dict, shape: Shape, wildcards: dict) -> Request:
        """CPU: one dataset's features, encoded in Python and saved. A format whose features
        depend on each record alone is encoded one file (split and language) at a time; span QA
        and text (LM blocks) may encode several files as one set: all of them, at most."""
        dataset = wildcards["dataset"]
        plan = Plan(exp)
        sizes = data_sizes(exp)
        if DATASETS[dataset].format == TEXT:
            tokens = sizes.corpus(plan, plan.corpus_languages()) * CORPUS_TOKENS
        elif dataset not in TOKENS:  # retrieval data, embedded by embed_sentences instead
            tokens = 0
        else:
            layout = plan.layout(dataset)
            files = [sizes.file(dataset, split, len(langs)) for split, langs in layout.items() for _ in langs]
            tokens = (sum(files) if DATASETS[dataset].format == SPAN else max(files, default=0)) * TOKENS[dataset]
        nbytes = HOST_BASE_MB * MB + tokens * DATA_BYTES_PER_TOKEN
        return Request(_round_mb(nbytes), self._time(tokens / TOKENIZE_TOKENS_PER_S / 3600))

    def _finetune_intermediate(self, exp: dict, shape: Shape, wildcards: dict) -> Request:
        itask = wildcards["itask"]
        parts = intermediate_parts(exp, itask)
        variant = Plan(exp).intermediate_job(itask).get("variant")
        extra, positions = 0.0, 0.0
        if variant is not None and variant["name"] == "mlm":
            # The corpus, and the LM head's logits at every position of an LM batch (a decoder's;
            # a masked LM's are fewer, so an upper bound).
            lm = variant["hparams"]
            extra = data_sizes(exp).corpus(Plan(exp), variant["languages"]) * CORPUS_TOKENS
            positions = lm["batch_size"] * lm["max_seq_length"]
        nbytes = self._training(exp, shape, parts, "intermediate", extra, positions)
        hours = self.hours(exp["model"]["name"])[f"finetune_intermediate/{itask}"]
        return Request(_round_mb(nbytes), self._time(hours), hours, self._measured(exp))

    def _finetune_target(self, exp: dict, shape: Shape, wildcards: dict) -> Request:
        training = wildcards["training"]
        nbytes = self._training(exp, shape, target_parts(exp, training), "targets")
        hours = self.hours(exp["model"]["name"])[f"finetune_target/{training}"]
        return Request(_round_mb(nbytes), self._time(hours), hours, self._measured(exp))

    def _predict_target(self, exp: dict, shape: Shape, wildcards: dict) -> Request:
        training = wildcards["training"]
        plan = Plan(exp)
        hp = hparams_for(exp, "target", training)
        eval_batch = hp["eval_batch_size"] or 2 * hp["batch_size"]
        sizes = data_sizes(exp)
        served = plan.served(training)
        tokens = sum(sizes.test(t) * TOKENS[t] for t in served)
        choices = max(DATASETS[t].num_choices or 1 for t in served)
        nbytes = (HOST_BASE_MB * MB + WEIGHT_BYTES_PER_PARAM * shape.total_params
                  + _inference_bytes(shape, eval_batch * choices, hp["max_seq_length"])
                  + tokens * DATA_BYTES_PER_TOKEN)
        hours = self.hours(exp["model"]["name"])[f"predict_target/{training}"]
        return Request(_round_mb(nbytes), self._time(hours), hours, self._measured(exp))

    def _embed_sentences(self, exp: dict, shape: Shape, wildcards: dict) -> Request:
        plan = Plan(exp)
        sizes = data_sizes(exp)
        sentences = sizes.retrieval_sentences(plan)
        # The largest file's float32 embeddings, as computed and as converted for saving.
        largest = max((n for pair in sizes.bucc_splits(plan) for n in pair), default=0)
        r = exp["retrieval"]
        nbytes = (HOST_BASE_MB * MB + WEIGHT_BYTES_PER_PARAM * shape.total_params
                  + _inference_bytes(shape, r["batch_size"], r["max_length"])
                  + sentences * SENTENCE_BYTES + 2 * largest * shape.hidden * 4)
        try:
            hours = embed_seconds(exp, self.cost, self.models_dir) / 3600
        except UnknownShape:
            hours = embed_seconds(self._provisional(exp), self.cost) / 3600
        return Request(_round_mb(nbytes), self._time(hours), hours, self._measured(exp))

    def _mine_bucc(self, exp: dict, shape: Shape, wildcards: dict) -> Request:
        """CPU: exact k-nearest-neighbour search in both directions, one language and split at a time."""
        splits = data_sizes(exp).bucc_splits(Plan(exp))
        largest = max((src + trg for src, trg in splits), default=0)
        # Both sides' embeddings, their normalised copies and the search's blocks of scores.
        nbytes = HOST_BASE_MB * MB + 3 * largest * shape.hidden * 4 + largest * SENTENCE_BYTES
        flops = sum(2 * 2 * src * trg * shape.hidden for src, trg in splits)
        return Request(_round_mb(nbytes), self._time(flops / (CPU_GFLOPS * 1e9) / 3600))


#: Demo architectures (pretrain.ARCHITECTURES) trained as causal LMs: logits at every position.
CAUSAL_ARCHITECTURES = {"qwen2"}
