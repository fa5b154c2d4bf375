"""Every trained head of the task-format registry learns, and decodes to valid predictions, for both families.

For each format with a head (``task_formats.TASK_FORMATS``: pair classification, tagging, span QA,
multiple choice, and phase 1's ``text`` LM), on the tiny XLM-R and the tiny Qwen2 decoder of
test_decoders.py: a short run of the project's own loop (``training.train``, on the ``TaskData``
that ``pipeline.finetune_target`` builds from a synthetic benchmark) must lower the loss on the
training data by a margin (measured before and after on the same fixed batch, in eval mode: no noise
from sampling or masking), and the test-set predictions decoded by the format's own decoding
(``training.predict``, as ``pipeline.predict_target`` calls it) must be valid: labels within the
label set, one tag per word, answers that are slices of their contexts, choices within range.
"""

from __future__ import annotations

import pytest

from test_decoders import FAMILIES, config
from xstilts.tasks import CHOICE, PAIR, SPAN, TAGGING, TEXT

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: Format -> (target training in tasks.TARGET_TRAININGS, target test set predicted zero-shot), or
#: None for the text LM (phase 1 trains it on the MLM corpus, as pipeline.pretrain_mlm does).
CASES = {PAIR: ("xnli", "xnli"), TAGGING: ("udpos", "udpos"), SPAN: ("squad", "xquad"),
         CHOICE: ("xcopa", "xcopa"), TEXT: None}
TEST_LANG = "de"
N_TRAIN = 16
STEPS = 100
#: The least fall of the training loss, in nats: ten times the wobble of an untrained model's loss,
#: and below the falls seen (0.6 for XLM-R pairs, 1.1 for its masked LM, which first learns the
#: unigram distribution; 2 to 4 for the others).
FALL = 0.4


def test_every_head_format_is_covered():
    """A format added to the registry with a head must be added here too."""
    from xstilts.task_formats import TASK_FORMATS

    assert {name for name, entry in TASK_FORMATS.items() if entry.head} == set(CASES)


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """A small synthetic benchmark with every case's train/dev sets and test sets, and a tokenizer per family."""
    from xstilts import formats, synthetic
    from xstilts.pretrain import train_tokenizer

    root = tmp_path_factory.mktemp("heads_bench")
    layout = {"mlm_corpus": {"train": ["en", TEST_LANG]}, "mnli": {"train": ["en"], "dev": ["en"]},
              "xnli": {"test": [TEST_LANG]}, "udpos": {"train": ["en"], "dev": ["en"], "test": [TEST_LANG]},
              "squad_v1": {"train": ["en"], "dev": ["en"]}, "xquad": {"test": [TEST_LANG]},
              "copa": {"train": ["en"], "dev": ["en"]}, "xcopa": {"test": [TEST_LANG]}}
    sizes = {name: {split: N_TRAIN for split in splits} for name, splits in layout.items()}
    sizes["mlm_corpus"] = {"train": 150}
    synthetic.generate(synthetic.SyntheticSpec(seed=7, layout=layout, sizes=sizes), root)
    lines = [line for lang in layout["mlm_corpus"]["train"]
             for line in formats.read_lines(formats.data_files(root, "mlm_corpus", lang, "train")["text"])]
    tokenizers = {}
    for family in FAMILIES:
        train_tokenizer(lines, 400, root / family, family)
        tokenizers[family] = root / family
    return root, lines, tokenizers


def hparams():
    from xstilts.config import hparam_defaults

    # One evaluation, at the last step: the loop's best checkpoint is the trained model.
    return {**hparam_defaults(), "batch_size": 4, "grad_accum": 1, "max_seq_length": 64, "doc_stride": 16,
            "max_query_length": 16, "learning_rate": 3e-3, "warmup_ratio": 0.0, "max_steps": STEPS,
            "eval_every_steps": STEPS, "mixed_precision": "no", "max_train_examples": N_TRAIN}


def task_data(fmt, tokenizer, root, lines, hp):
    """The TaskData the pipeline trains: pipeline._task_data for targets, pretrain_mlm's for the LM."""
    from xstilts import features, pipeline, training
    from xstilts.tasks import TARGET_TRAININGS

    if fmt == TEXT:
        return training.TaskData("mlm", TEXT, "mlm_loss", hp,
                                 train=features.encode_text(tokenizer, lines[:N_TRAIN * 4], hp["max_seq_length"]),
                                 dev=[training.DevSet("mlm", [], features.encode_text(tokenizer, lines[-20:],
                                                                                   hp["max_seq_length"]))])
    task = TARGET_TRAININGS[CASES[fmt][0]]
    return pipeline._task_data(task, hp, root, tokenizer, task.dev)


@torch.no_grad()
def training_loss(model, task, tokenizer):
    """Loss on all training features in one batch; LM masks fixed by a seeded collator (as dev MLM loss is)."""
    from xstilts import training
    from xstilts.task_formats import language_modeling_collator

    model.eval()
    collate = (language_modeling_collator(tokenizer, task.hp, seed=0) if task.format == TEXT
               else training.collator(task.format, tokenizer, task.hp))
    return model(task.name, **collate(task.train.features)).loss.item()


def assert_valid(task, records, predictions):
    """Predictions in the XTREME writer's shape of ``task.format``, each within what its record allows."""
    fmt = task.format
    if fmt == PAIR:
        assert len(predictions) == len(records) and set(predictions) <= set(task.labels)
    elif fmt == TAGGING:
        assert len(predictions) == len(records)
        for record, tags in zip(records, predictions):
            assert len(tags) == len(record["tokens"]) and set(tags) <= set(task.labels)
    elif fmt == CHOICE:
        assert len(predictions) == len(records)
        for record, choice in zip(records, predictions):
            assert isinstance(choice, int) and 0 <= choice < len(record["choices"])
    elif fmt == SPAN:
        assert set(predictions) == {r["id"] for r in records}
        for record in records:
            answer = predictions[record["id"]]
            assert answer or task.allow_null, f"{record['id']}: an empty answer, but the task has no null answers"
            assert answer in record["context"], f"{record['id']}: {answer!r} is not in its context"


def assert_spans_are_context_slices(task, records, encoded, predictions):
    """Independently of qa.best_answers: every token offset lies inside its context, and each
    answer is the context slice from some token's start to a later token's end, in one window."""
    slices = {}
    for feature, ex in enumerate(encoded.example_index):
        context = records[ex]["context"]
        spans = [o for o in encoded.offsets[feature] if o is not None]
        assert spans, "a window without context tokens"
        for start, end in spans:
            assert 0 <= start < end <= len(context), f"offset {(start, end)} outside a context of {len(context)} chars"
        slices.setdefault(ex, set()).update(context[s[0]:e[1]] for i, s in enumerate(spans) for e in spans[i:])
    for ex, record in enumerate(records):
        assert predictions[record["id"]] in slices[ex] | ({""} if task.allow_null else set())


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("fmt", list(CASES))
def test_every_head_trains_and_predicts_validly(bench, tmp_path, family, fmt):
    from xstilts import formats, training
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.pipeline import _load_tokenizer
    from xstilts.task_formats import encode

    root, lines, tokenizer_dirs = bench
    tokenizer = _load_tokenizer(tokenizer_dirs[family])
    hp = hparams()
    task = task_data(fmt, tokenizer, root, lines, hp)
    assert len(task.train.features) >= 8
    training.set_seed(0)
    model = MultiTaskModel.build(config(tokenizer, family), {task.name: HeadSpec(task.format, task.labels)},
                                 pad_token_id=tokenizer.pad_token_id)
    before = training_loss(model, task, tokenizer)
    result = training.train(model, [task], tokenizer, hp, 0, tmp_path / "ck", "fp")
    after = training_loss(model, task, tokenizer)
    assert result["steps"] == STEPS and result["best_step"] == STEPS
    assert after < before - FALL, f"{family} {fmt}: training loss {before:.3f} -> {after:.3f}"

    if fmt == TEXT:
        return  # the LM is never decoded: phase 1 selects on the dev LM loss
    target = CASES[fmt][1]
    records = formats.read_dataset(root, target, TEST_LANG, "test")
    encoded = encode(fmt, tokenizer, records, hp, task.labels)
    predictions = training.predict(model, task, records, encoded, tokenizer)
    assert_valid(task, records, predictions)
    if fmt == SPAN:
        assert_spans_are_context_slices(task, records, encoded, predictions)


def test_the_validity_checks_refuse_invalid_predictions():
    """The checks above can fail: each kind of invalid prediction is caught."""
    from xstilts.training import TaskData

    pair = TaskData("t", PAIR, "accuracy", {}, ("a", "b"))
    tags = TaskData("t", TAGGING, "seqeval_f1", {}, ("O", "B-LOC"))
    span, choice = TaskData("t", SPAN, "squad", {}), TaskData("t", CHOICE, "accuracy", {})
    records = {TAGGING: [{"tokens": ["x", "y"]}], CHOICE: [{"choices": ["p", "q"]}],
               SPAN: [{"id": "q1", "context": "Piara lives in Topo ."}], PAIR: [{}]}
    bad = [(pair, ["c"]), (tags, [["O"]]), (tags, [["O", "B-PER"]]), (choice, [2]), (choice, [-1]),
           (span, {"q1": "Topo lives"}), (span, {"q1": ""}), (span, {})]
    for task, predictions in bad:
        with pytest.raises(AssertionError):
            assert_valid(task, records[task.format], predictions)
    assert_valid(span, records[SPAN], {"q1": "in Topo"})
