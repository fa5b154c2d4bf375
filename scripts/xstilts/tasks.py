"""Task registry: every dataset, intermediate task, target training and target task of the grid.

Three layers, kept apart on purpose:

* a **dataset** is a set of canonical files on disk (``results/data/<dataset>/<lang>/<split>``),
  written either by the embedded benchmark generator or by a download+convert rule;
* a **training task** (intermediate task or target training) says which dataset splits to train
  and select on, in which format, with which dev metric;
* a **target task** is what XTREME scores: which training serves it (none for retrieval), which
  dataset and languages it is evaluated on, and the metric.

Rules, scripts and tables look tasks up here instead of branching on task names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xstilts.languages import UDPOS_TEST_ONLY, XTREME_R_TASK2LANGS, XTREME_TASK2LANGS

# Canonical task formats; formats.py documents the on-disk schema of each.
PAIR = "pair_classification"
CHOICE = "multiple_choice"
SPAN = "span_qa"
TAGGING = "tagging"
BITEXT = "bitext_mining"
PARALLEL = "parallel_sentences"
TEXT = "text"
FORMATS = (PAIR, CHOICE, SPAN, TAGGING, BITEXT, PARALLEL, TEXT)

NLI_LABELS = ("contradiction", "entailment", "neutral")
BINARY_LABELS = ("0", "1")
UPOS_TAGS = (
    "ADJ ADP ADV AUX CCONJ DET INTJ NOUN NUM PART PRON PROPN PUNCT SCONJ SYM VERB X".split()
)
NER_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")


@dataclass(frozen=True)
class Dataset:
    """A canonical dataset: its format, label inventory and which languages have which split."""

    name: str
    format: str
    #: Closed label/tag inventory; empty means "collected from the training split" (CCG).
    labels: tuple[str, ...] = ()
    num_choices: int = 0
    #: split -> languages that have that split (before any preset language filter).
    splits: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: Span QA only: whether some questions have no answer (SQuAD v2.0).
    unanswerable: bool = False
    #: No closed inventory: the labels are those seen in the training split (CCG's supertags).
    labels_from_train: bool = False
    #: Converted from a licensed local copy, not downloaded: the ``data.download`` key naming it.
    manual: str = ""
    #: Unlabelled text in every language the grid evaluates (the MLM corpus of a pretrained
    #: stand-in model), whatever the split table says.
    corpus: bool = False
    #: Retrieval: the splits whose sentences are embedded (BUCC tunes its threshold on dev).
    embed_splits: tuple[str, ...] = ("test",)
    #: Machine-translated training data: the English dataset it translates (same format, labels).
    translation_of: str = ""

    def languages(self, split: str) -> tuple[str, ...]:
        return self.splits.get(split, ())


def _en(*splits: str) -> dict[str, tuple[str, ...]]:
    return {s: ("en",) for s in splits}


def _x(task: str, dev: bool = True, exclude_dev: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    langs = tuple(XTREME_TASK2LANGS[task])
    splits = {"test": langs}
    if dev:
        splits["dev"] = tuple(lang for lang in langs if lang not in exclude_dev)
    return splits


def _xr(task: str) -> dict[str, tuple[str, ...]]:
    """An XTREME-R-only target: test and dev in every language of its XTREME-R list."""
    langs = tuple(XTREME_R_TASK2LANGS[task])
    return {"test": langs, "dev": langs}


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in [
        # English intermediate-task data.
        Dataset("anli_r1", PAIR, NLI_LABELS, splits=_en("train", "dev")),
        Dataset("anli_r2", PAIR, NLI_LABELS, splits=_en("train", "dev")),
        Dataset("anli_r3", PAIR, NLI_LABELS, splits=_en("train", "dev")),
        Dataset("snli", PAIR, NLI_LABELS, splits=_en("train", "dev")),
        Dataset("mnli", PAIR, NLI_LABELS, splits=_en("train", "dev")),
        Dataset("qqp", PAIR, BINARY_LABELS, splits=_en("train", "dev")),
        Dataset("squad_v1", SPAN, splits=_en("train", "dev")),
        Dataset("squad_v2", SPAN, splits=_en("train", "dev"), unanswerable=True),
        Dataset("hellaswag", CHOICE, num_choices=4, splits=_en("train", "dev")),
        Dataset("cosmosqa", CHOICE, num_choices=4, splits=_en("train", "dev")),
        Dataset("commonsenseqa", CHOICE, num_choices=5, splits=_en("train", "dev")),
        Dataset("ccg", TAGGING, splits=_en("train", "dev"), labels_from_train=True, manual="ccgbank"),
        # English training data of XTREME-R's XCOPA recipe (google-research/xtreme
        # scripts/train_xcopa.sh): Social IQa (3 answers), then COPA (2 alternatives).
        Dataset("siqa", CHOICE, num_choices=3, splits=_en("train", "dev")),
        Dataset("copa", CHOICE, num_choices=2, splits=_en("train", "dev")),
        # XTREME targets. English training data for XNLI is MNLI and for XQuAD/MLQA SQuAD v1.1.
        Dataset("xnli", PAIR, NLI_LABELS, splits=_x("xnli")),
        Dataset("pawsx", PAIR, BINARY_LABELS, splits={**_x("pawsx"), "train": ("en",)}),
        Dataset("udpos", TAGGING, tuple(UPOS_TAGS),
                splits={**_x("udpos", exclude_dev=UDPOS_TEST_ONLY), "train": ("en",)}),
        Dataset("panx", TAGGING, NER_TAGS, splits={**_x("panx"), "train": ("en",)}),
        Dataset("xquad", SPAN, splits=_x("xquad", dev=False)),
        Dataset("mlqa", SPAN, splits=_x("mlqa")),
        # TyDiQA-GoldP: XTREME's test set is the official dev set; our English dev is held out
        # from English train so that model selection never sees test data.
        Dataset("tydiqa", SPAN, splits={**_x("tydiqa", dev=False), "train": ("en",), "dev": ("en",)}),
        Dataset("bucc2018", BITEXT, splits=_x("bucc2018"), embed_splits=("dev", "test")),
        Dataset("tatoeba", PARALLEL, splits=_x("tatoeba", dev=False)),
        # XTREME-R's XCOPA: COPA translated into 11 languages (dev = translated COPA val).
        Dataset("xcopa", CHOICE, num_choices=2, splits=_xr("xcopa")),
        # Machine translations of English intermediate-task training sets (the translated-data
        # variant): MNLI's training set in XNLI's 14 other languages (XNLI-MT 1.0, by XNLI's
        # authors) and SQuAD v1.1's in MLQA's 6 other languages (MLQA's translate-train release).
        Dataset("mnli_mt", PAIR, NLI_LABELS, translation_of="mnli",
                splits={"train": tuple(lang for lang in XTREME_TASK2LANGS["xnli"] if lang != "en")}),
        Dataset("squad_v1_mt", SPAN, translation_of="squad_v1",
                splits={"train": tuple(lang for lang in XTREME_TASK2LANGS["mlqa"] if lang != "en")}),
        # Unlabelled multilingual text (phase-1 stand-in pretraining, MLM variants).
        Dataset("mlm_corpus", TEXT, splits={"train": tuple(sorted(
            {lang for table in (XTREME_TASK2LANGS, XTREME_R_TASK2LANGS) for langs in table.values() for lang in langs}
            | {"en"}))}, corpus=True),
    ]
}


@dataclass(frozen=True)
class Source:
    """One dataset split used for training or selection."""

    dataset: str
    split: str
    lang: str = "en"


@dataclass(frozen=True)
class TrainingTask:
    """A task a model is fine-tuned on: an intermediate task or a target training.

    ``train`` may list several sources that share one head (ANLI+ = ANLI R1-R3 + MNLI + SNLI),
    concatenated, which is examples-proportional sampling over them.
    """

    name: str
    format: str
    train: tuple[Source, ...]
    dev: tuple[Source, ...]
    #: dev metric used for checkpoint selection: accuracy, seqeval_f1, token_accuracy, squad.
    metric: str

    @property
    def dataset(self) -> Dataset:
        """The dataset that defines labels/choices (all sources share one inventory)."""
        return DATASETS[self.train[0].dataset]


def _task(name: str, metric: str, *, train: list[str] | None = None, dev: list[str] | None = None) -> TrainingTask:
    train = train or [name]
    dev = dev or train
    fmt = DATASETS[train[0]].format
    return TrainingTask(
        name, fmt, tuple(Source(d, "train") for d in train), tuple(Source(d, "dev") for d in dev), metric
    )


INTERMEDIATE_TASKS: dict[str, TrainingTask] = {
    t.name: t
    for t in [
        # ANLI+ (Nie et al. 2020; jiant guide): ANLI R1-R3 + MNLI + SNLI through one NLI head;
        # checkpoints are selected on the adversarial rounds' dev sets.
        _task("anli_plus", "accuracy", train=["anli_r1", "anli_r2", "anli_r3", "mnli", "snli"],
              dev=["anli_r1", "anli_r2", "anli_r3"]),
        _task("mnli", "accuracy"),
        _task("qqp", "accuracy"),
        _task("squad_v1", "squad"),
        _task("squad_v2", "squad"),
        _task("hellaswag", "accuracy"),
        _task("ccg", "token_accuracy"),
        _task("cosmosqa", "accuracy"),
        _task("commonsenseqa", "accuracy"),
    ]
}

#: Every dataset an intermediate encoder trains on: the tasks' own and their translations (kept
#: free of target evaluation text: xstilts.leakage, and the synthetic generator).
INTERMEDIATE_TRAINING_DATASETS: frozenset[str] = frozenset(
    {s.dataset for t in INTERMEDIATE_TASKS.values() for s in t.train}
    | {d.name for d in DATASETS.values() if d.translation_of})

#: Intermediate task -> the dataset holding its machine-translated training set (the
#: translated-data variant; a task missing here has no public translation and no such variant).
TRANSLATIONS: dict[str, str] = {d.translation_of: d.name for d in DATASETS.values() if d.translation_of}


@dataclass(frozen=True)
class Variant:
    """A way of training an intermediate task other than on its English data alone.

    Each variant of a task is one more intermediate encoder, named ``<task><suffix>`` (e.g.
    ``mnli+mlm``): a row of the grid that gets phase 3, retrieval and scoring like any other,
    reported in the variant's own table beside the plain task's row. Config:
    ``intermediate.variants.<name>``.
    """

    name: str
    suffix: str
    #: Table label, ``{task}`` replaced by the task's display name.
    display: str
    #: Column heading of the variant's table for the kind of data a row trains on.
    caption: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        # Continued multilingual language modelling (masked LM, or causal LM for a decoder) on an
        # unlabelled corpus, in the same run as the task: shared encoder, the model's own
        # pretrained LM head kept and trained (paper.md section 3.6).
        Variant("mlm", "+mlm", "{task} + MLM", "intermediate task vs intermediate task + multilingual MLM"),
        # The task's training set machine-translated into other languages (TRANSLATIONS), with
        # or without the English original (paper.md section 3.7).
        Variant("translated", "-translated", "{task} (translated)", "English vs machine-translated intermediate data"),
    ]
}


def variant_encoder(task: str, variant: str) -> str:
    """The encoder (grid row) name of an intermediate task trained as a variant: ``mnli+mlm``."""
    return f"{task}{VARIANTS[variant].suffix}"


def encoder_variant(encoder: str) -> tuple[str, str | None]:
    """(intermediate task, variant name or None) of an encoder name: the inverse of ``variant_encoder``."""
    for v in VARIANTS.values():
        if encoder.endswith(v.suffix) and encoder[: -len(v.suffix)] in INTERMEDIATE_TASKS:
            return encoder[: -len(v.suffix)], v.name
    return encoder, None


def display_name(encoder: str) -> str:
    """Table label of an encoder (grid row), variants included."""
    task, variant = encoder_variant(encoder)
    if variant is None:
        return DISPLAY_NAMES.get(encoder, encoder)
    return VARIANTS[variant].display.format(task=DISPLAY_NAMES[task])


#: Name of the multi-task intermediate "task" (all selected intermediate tasks, one head each).
MULTITASK = "multitask"
#: Name of the no-intermediate-task baseline row (the phase-1 encoder used directly).
BASELINE = "baseline"

# Target trainings: one fine-tuning per English training set. SQuAD v1.1 serves XQuAD and MLQA.
TARGET_TRAININGS: dict[str, TrainingTask] = {
    t.name: t
    for t in [
        TrainingTask("xnli", PAIR, (Source("mnli", "train"),), (Source("mnli", "dev"),), "accuracy"),
        _task("pawsx", "accuracy"),
        _task("udpos", "seqeval_f1"),
        _task("panx", "seqeval_f1"),
        TrainingTask("squad", SPAN, (Source("squad_v1", "train"),), (Source("squad_v1", "dev"),), "squad"),
        _task("tydiqa", "squad"),
        # XCOPA's final stage: English COPA; an earlier SIQA stage depends on the recipe below.
        TrainingTask("xcopa", CHOICE, (Source("copa", "train"),), (Source("copa", "dev"),), "accuracy"),
    ]
}

#: English training stages that run before a target training inside the same phase-3 job
#: (same multiple-choice head, continued), selected on their own English dev set.
STAGE_TASKS: dict[str, TrainingTask] = {t.name: t for t in [_task("siqa", "accuracy")]}

#: XCOPA's English training recipe (config ``targets.xcopa_recipe``) -> stages before COPA.
#: ``siqa_copa`` is XTREME-R's (google-research/xtreme scripts/train_xcopa.sh, after Ponti et
#: al. 2020): SIQA is itself an English intermediate task, so every XCOPA row, the baseline
#: included, has one; ``copa`` trains on COPA alone.
XCOPA_RECIPES: dict[str, tuple[str, ...]] = {"siqa_copa": ("siqa",), "copa": ()}

#: Target trainings with a choice of English recipe: training -> recipe name -> the stages
#: (STAGE_TASKS) trained before it. The config key is ``targets.<training>_recipe``; the first
#: recipe is the default.
TRAINING_RECIPES: dict[str, dict[str, tuple[str, ...]]] = {"xcopa": XCOPA_RECIPES}


@dataclass(frozen=True)
class TargetTask:
    """An XTREME target as scored: prediction file layout, metric and the training serving it."""

    name: str
    format: str
    #: Name in TARGET_TRAININGS, or None for retrieval tasks evaluated on the encoder directly.
    training: str | None
    #: File extension of XTREME prediction/label files.
    ext: str
    #: The XTREME category it is averaged into.
    group: str

    @property
    def dataset(self) -> Dataset:
        return DATASETS[self.name]

    @property
    def retrieval(self) -> bool:
        return self.training is None


TARGET_TASKS: dict[str, TargetTask] = {
    t.name: t
    for t in [
        TargetTask("xnli", PAIR, "xnli", "tsv", "classification"),
        TargetTask("pawsx", PAIR, "pawsx", "tsv", "classification"),
        TargetTask("udpos", TAGGING, "udpos", "tsv", "tagging"),
        TargetTask("panx", TAGGING, "panx", "tsv", "tagging"),
        TargetTask("xquad", SPAN, "squad", "json", "qa"),
        TargetTask("mlqa", SPAN, "squad", "json", "qa"),
        TargetTask("tydiqa", SPAN, "tydiqa", "json", "qa"),
        TargetTask("bucc2018", BITEXT, None, "tsv", "retrieval"),
        TargetTask("tatoeba", PARALLEL, None, "tsv", "retrieval"),
        TargetTask("xcopa", CHOICE, "xcopa", "jsonl", "multi_choice"),
    ]
}

#: The paper's targets (XTREME): the columns of the matrix and of the paper's tables. Targets of
#: XTREME-R only (XCOPA) are trained and predicted by the same rules but reported separately.
XTREME_TARGETS: tuple[str, ...] = tuple(t for t in TARGET_TASKS if t in XTREME_TASK2LANGS)

#: XTREME-R's reasoning targets (its sentence classification group): the reasoning analysis.
REASONING_TARGETS: tuple[str, ...] = ("xnli", "xcopa")

#: Display names used in tables (paper order).
DISPLAY_NAMES = {
    BASELINE: "Baseline (no intermediate task)",
    "anli_plus": "ANLI+",
    "mnli": "MNLI",
    "qqp": "QQP",
    "squad_v1": "SQuAD v1.1",
    "squad_v2": "SQuAD v2.0",
    "hellaswag": "HellaSwag",
    "ccg": "CCG",
    "cosmosqa": "Cosmos QA",
    "commonsenseqa": "CommonsenseQA",
    MULTITASK: "Multi-task",
    "xnli": "XNLI",
    "pawsx": "PAWS-X",
    "udpos": "UD-POS",
    "panx": "PAN-X",
    "xquad": "XQuAD",
    "mlqa": "MLQA",
    "tydiqa": "TyDiQA",
    "bucc2018": "BUCC",
    "tatoeba": "Tatoeba",
    "xcopa": "XCOPA",
    "siqa": "SIQA",
    "copa": "COPA",
    "mnli_mt": "MNLI (machine-translated)",
    "squad_v1_mt": "SQuAD v1.1 (machine-translated)",
    "mlm_corpus": "Multilingual corpus (MLM)",
}


def training_for(name: str) -> TrainingTask:
    """Look up an intermediate task or target training by name, with a helpful error."""
    if name in INTERMEDIATE_TASKS:
        return INTERMEDIATE_TASKS[name]
    if name in TARGET_TRAININGS:
        return TARGET_TRAININGS[name]
    if name in STAGE_TASKS:
        return STAGE_TASKS[name]
    known = sorted(INTERMEDIATE_TASKS) + sorted(TARGET_TRAININGS) + sorted(STAGE_TASKS)
    raise KeyError(f"unknown training task {name!r}; known tasks: {', '.join(known)}")


def served_targets(training: str, targets: list[str] | tuple[str, ...]) -> list[str]:
    """The target tasks (among ``targets``) whose predictions a target training produces."""
    return [t for t in targets if TARGET_TASKS[t].training == training]
