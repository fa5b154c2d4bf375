"""Task-format registry: everything that depends on a task's format, in one entry per format.

An entry says how to encode canonical records into model features, how to collate them for
training and for inference, which ``AutoModelFor*`` head the format trains, how to read that
head's outputs and decode them into predictions, and how to write XTREME prediction and label
files. Dev metrics are a registry of their own (``DEV_METRICS``), chosen by name in the task
registry (``tasks.py``). Code elsewhere looks entries up here instead of branching on formats.

Retrieval formats (BUCC's bitext, Tatoeba's parallel sentences) train no head: their entries
write predictions and labels only. The MLM corpus (``text``) has a head and a collator but is
never decoded or scored with a dev metric (checkpoint selection uses the dev MLM loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from xstilts import features, formats, metrics, qa
from xstilts.features import IGNORE, Encoded
from xstilts.tasks import BITEXT, CHOICE, PAIR, PARALLEL, SPAN, TAGGING, TEXT

# --------------------------------------------------------------------------------------------
# Encoders: (tokenizer, records, hp, labels, train) -> Encoded


def _encode_pairs(tokenizer: Any, records: list[dict[str, Any]], hp: dict[str, Any], labels: tuple[str, ...],
                  train: bool) -> Encoded:
    return features.encode_pairs(tokenizer, records, hp["max_seq_length"], labels)


def _encode_choices(tokenizer: Any, records: list[dict[str, Any]], hp: dict[str, Any], labels: tuple[str, ...],
                    train: bool) -> Encoded:
    return features.encode_choices(tokenizer, records, hp["max_seq_length"])


def _encode_tagging(tokenizer: Any, records: list[dict[str, Any]], hp: dict[str, Any], labels: tuple[str, ...],
                    train: bool) -> Encoded:
    return features.encode_tagging(tokenizer, records, hp["max_seq_length"], labels)


def _encode_spans(tokenizer: Any, records: list[dict[str, Any]], hp: dict[str, Any], labels: tuple[str, ...],
                  train: bool) -> Encoded:
    return features.encode_spans(tokenizer, records, hp["max_seq_length"], hp["doc_stride"], hp["max_query_length"],
                                 train)


def _encode_text(tokenizer: Any, lines: list[str], hp: dict[str, Any], labels: tuple[str, ...],
                 train: bool) -> Encoded:
    return features.encode_text(tokenizer, lines, hp["max_seq_length"])


# --------------------------------------------------------------------------------------------
# Collators: (tokenizer, hp) -> a callable from a list of features to a batch of tensors


def _pad(tokenizer: Any, hp: dict[str, Any]) -> Any:
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def _pad_choices(tokenizer: Any, hp: dict[str, Any]) -> Any:
    from transformers import DataCollatorForMultipleChoice

    return DataCollatorForMultipleChoice(tokenizer)


def _pad_choices_unlabelled(tokenizer: Any, hp: dict[str, Any]) -> Any:
    """The multiple-choice collator needs a label per example; inference has none to give."""
    collate = _pad_choices(tokenizer, hp)

    def call(feats: list[dict[str, Any]]) -> Any:
        batch = collate([{**f, "labels": 0} for f in feats])
        batch.pop("labels", None)
        return batch

    return call


def _pad_tags(tokenizer: Any, hp: dict[str, Any]) -> Any:
    from transformers import DataCollatorForTokenClassification

    return DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE)


def language_modeling_collator(tokenizer: Any, hp: dict[str, Any], seed: int | None = None) -> Any:
    """Masked LM for tokenizers with a mask token, else next-token prediction (causal LM).

    A mask token is what masked-LM families (the ones whose ``text`` head is the stock masked-LM
    one) have and decoders lack, so this matches ``modeling.head_class``'s choice of head."""
    from transformers import DataCollatorForLanguageModeling

    if tokenizer.mask_token is None:
        return DataCollatorForLanguageModeling(tokenizer, mlm=False)
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=hp["mlm_probability"], seed=seed)


def _mask_tokens(tokenizer: Any, hp: dict[str, Any]) -> Any:
    # seed=None: masking draws from torch's global RNG, which checkpoints save and restore.
    return language_modeling_collator(tokenizer, hp)


# --------------------------------------------------------------------------------------------
# Head outputs -> one array (or tuple) per feature, and decoders to predictions


def _logits(out: Any) -> list[Any]:
    return list(out.logits.float().cpu().numpy())


def _start_end(out: Any) -> list[Any]:
    starts, ends = out.start_logits.float().cpu().numpy(), out.end_logits.float().cpu().numpy()
    return list(zip(starts, ends))


def _decode_labels(task: Any, records: list[dict[str, Any]], encoded: Encoded, outputs: list[Any]) -> list[str]:
    return [task.labels[int(np.argmax(o))] for o in outputs]


def _decode_choices(task: Any, records: list[dict[str, Any]], encoded: Encoded, outputs: list[Any]) -> list[int]:
    return [int(np.argmax(o)) for o in outputs]


def _decode_tags(task: Any, records: list[dict[str, Any]], encoded: Encoded, outputs: list[Any]) -> list[list[str]]:
    fallback = "O" if "O" in task.labels else task.labels[0]
    predictions = []
    for record, word_ids, logits in zip(records, encoded.word_ids, outputs):
        tags = [fallback] * len(record["tokens"])  # words cut off by max_seq_length
        for position, word in enumerate(word_ids):
            if word is not None:
                tags[word] = task.labels[int(np.argmax(logits[position]))]
        predictions.append(tags)
    return predictions


def _decode_spans(task: Any, records: list[dict[str, Any]], encoded: Encoded, outputs: list[Any]) -> dict[str, str]:
    return qa.best_answers(records, encoded.example_index, encoded.offsets,
                           [o[0] for o in outputs], [o[1] for o in outputs],
                           task.hp["n_best_size"], task.hp["max_answer_length"], task.allow_null,
                           null_index=encoded.cls_index or None)


def _sorted_tags(records: list[dict[str, Any]]) -> tuple[str, ...]:
    return tuple(sorted({t for r in records for t in r["tags"]}))


# --------------------------------------------------------------------------------------------
# XTREME label files from canonical test data: (path, data_root, dataset, lang)


def _label_column(path: str, data_root: str | Path, dataset: str, lang: str) -> None:
    formats.write_xtreme_classification(path, [r["label"] for r in formats.read_dataset(data_root, dataset, lang, "test")])


def _label_choices(path: str, data_root: str | Path, dataset: str, lang: str) -> None:
    formats.write_xtreme_choice(path, [r["label"] for r in formats.read_dataset(data_root, dataset, lang, "test")])


def _label_tags(path: str, data_root: str | Path, dataset: str, lang: str) -> None:
    formats.write_xtreme_tagging(path, [r["tags"] for r in formats.read_dataset(data_root, dataset, lang, "test")])


def _label_answers(path: str, data_root: str | Path, dataset: str, lang: str) -> None:
    formats.write_xtreme_qa_labels(path, formats.read_dataset(data_root, dataset, lang, "test"))


def _label_bitext(path: str, data_root: str | Path, dataset: str, lang: str) -> None:
    gold = formats.data_files(data_root, dataset, lang, "test")["gold"]
    formats.write_xtreme_classification(path, [f"{s}\t{t}" for s, t in formats.read_pairs(gold)])


def _label_parallel(path: str, data_root: str | Path, dataset: str, lang: str) -> None:
    # XTREME's label file: its English side is sorted, so line k names the LASER line of the k-th
    # sorted English sentence (canonical files are LASER's, line-aligned).
    from xstilts.retrieval import xtreme_tatoeba_order

    target = formats.data_files(data_root, dataset, lang, "test")["target"]
    formats.write_xtreme_classification(path, [str(int(i)) for i in xtreme_tatoeba_order(formats.read_lines(target))])


# --------------------------------------------------------------------------------------------
# The registry


@dataclass(frozen=True)
class TaskFormat:
    """What xstilts does with one task format, from canonical records to XTREME files."""

    name: str
    #: transformers ``AutoModelFor*`` class name of the trained head (None: no head, retrieval).
    head: str | None = None
    #: The head for model types that ``head`` does not support (``modeling.head_class``): an
    #: ``AutoModelFor*`` name, or ``choice_scoring`` (``modeling.ChoiceScoringModel``).
    fallback_head: str | None = None
    #: The head classifies into named labels, kept in its config's id2label / label2id.
    labelled: bool = False
    encode: Callable[..., Encoded] | None = None
    #: Training collator: (tokenizer, hp) -> collate function.
    collator: Callable[[Any, dict[str, Any]], Any] | None = None
    #: Inference collator (no labels): (tokenizer, hp) -> collate function.
    predict_collator: Callable[[Any, dict[str, Any]], Any] | None = None
    #: The head's output -> one entry per feature of the batch.
    outputs: Callable[[Any], list[Any]] | None = None
    #: (task, records, encoded, outputs) -> predictions in the XTREME writer's shape.
    decode: Callable[..., Any] | None = None
    #: The label inventory from training records, for datasets without a closed one (CCG).
    collect_labels: Callable[[list[dict[str, Any]]], tuple[str, ...]] | None = None
    #: (path, predictions) -> the XTREME prediction file.
    write_predictions: Callable[[str, Any], None] | None = None
    #: (path, data_root, dataset, lang) -> the XTREME label file from canonical test data.
    write_labels: Callable[[str, str | Path, str, str], None] | None = None
    #: Retrieval: a canonical sentence file (one side of a split) -> its sentences, to embed.
    read_sentences: Callable[[str], list[str]] | None = None
    #: Keys of ``targets.prediction`` (test-time decoding) that ``decode`` reads.
    decoding: tuple[str, ...] = ()
    #: Hyperparameters ``encode`` reads: the settings a cached feature set is keyed by
    #: (``feature_cache``; empty = the format is not encoded into model features).
    encoding_keys: tuple[str, ...] = ()
    #: A record's features depend on that record alone, so each source file is cached on its own
    #: (span QA's window stride depends on every question encoded together; LM text packs lines).
    per_record: bool = False
    #: ``encode`` reads ``train`` (span QA: answer positions of training windows).
    train_flag: bool = False

    def head_class(self) -> Any:
        """The transformers Auto class of the head (imported on first use)."""
        if self.head is None:
            raise ValueError(f"format {self.name!r} trains no task head")
        import transformers

        return getattr(transformers, self.head)

    def feature_length(self, feature: dict[str, Any]) -> int:
        """Tokens of a feature (its longest choice for multiple choice), to batch by length."""
        ids = feature["input_ids"]
        return max(map(len, ids)) if ids and isinstance(ids[0], list) else len(ids)


TASK_FORMATS: dict[str, TaskFormat] = {
    f.name: f
    for f in [
        TaskFormat(PAIR, "AutoModelForSequenceClassification", labelled=True, encode=_encode_pairs,
                   encoding_keys=("max_seq_length",), per_record=True, collator=_pad, predict_collator=_pad, outputs=_logits, decode=_decode_labels,
                   write_predictions=formats.write_xtreme_classification, write_labels=_label_column),
        TaskFormat(CHOICE, "AutoModelForMultipleChoice", fallback_head="choice_scoring", encode=_encode_choices,
                   encoding_keys=("max_seq_length",), per_record=True, collator=_pad_choices,
                   predict_collator=_pad_choices_unlabelled, outputs=_logits, decode=_decode_choices,
                   write_predictions=formats.write_xtreme_choice, write_labels=_label_choices),
        TaskFormat(SPAN, "AutoModelForQuestionAnswering", encode=_encode_spans,
                   encoding_keys=("max_seq_length", "doc_stride", "max_query_length"), train_flag=True, collator=_pad,
                   predict_collator=_pad, outputs=_start_end, decode=_decode_spans,
                   write_predictions=formats.write_xtreme_qa_predictions, write_labels=_label_answers,
                   decoding=("n_best_size", "max_answer_length")),
        TaskFormat(TAGGING, "AutoModelForTokenClassification", labelled=True, encode=_encode_tagging,
                   encoding_keys=("max_seq_length",), per_record=True, collator=_pad_tags, predict_collator=_pad_tags, outputs=_logits, decode=_decode_tags,
                   collect_labels=_sorted_tags, write_predictions=formats.write_xtreme_tagging,
                   write_labels=_label_tags),
        TaskFormat(TEXT, "AutoModelForMaskedLM", fallback_head="AutoModelForCausalLM", encode=_encode_text,
                   encoding_keys=("max_seq_length",), collator=_mask_tokens, predict_collator=_pad,
                   outputs=_logits),
        # Retrieval: predictions are written by mine_bucc / search_tatoeba, one line per pair or query.
        TaskFormat(BITEXT, write_predictions=formats.write_xtreme_classification, write_labels=_label_bitext,
                   read_sentences=lambda path: formats.read_id_sentences(path)[1]),
        TaskFormat(PARALLEL, write_predictions=formats.write_xtreme_classification, write_labels=_label_parallel,
                   read_sentences=formats.read_lines),
    ]
}


def encode(fmt: str, tokenizer: Any, records: list[dict[str, Any]], hp: dict[str, Any],
           labels: tuple[str, ...] = (), train: bool = False) -> Encoded:
    """Encode records of format ``fmt`` (see formats.py) for training or prediction."""
    entry = task_format(fmt)
    if entry.encode is None:
        raise ValueError(f"format {fmt!r} is not encoded into model features (it trains no head)")
    return entry.encode(tokenizer, records, hp, labels, train)


def task_format(name: str) -> TaskFormat:
    """The registry entry of a format, with an error naming the known ones."""
    try:
        return TASK_FORMATS[name]
    except KeyError:
        raise KeyError(f"unknown task format {name!r}; known formats: {', '.join(TASK_FORMATS)}") from None


# --------------------------------------------------------------------------------------------
# Dev metrics for checkpoint selection: (records, predictions) -> metrics, ``score`` the criterion


def _accuracy(records: list[dict[str, Any]], predictions: Any) -> dict[str, float]:
    acc = metrics.accuracy([str(p) for p in predictions], [str(r["label"]) for r in records])
    return {"accuracy": acc, "score": acc}


def _seqeval_f1(records: list[dict[str, Any]], predictions: Any) -> dict[str, float]:
    result = metrics.seqeval_f1(predictions, [r["tags"] for r in records])
    return {**result, "score": result["f1"]}


def _token_accuracy(records: list[dict[str, Any]], predictions: Any) -> dict[str, float]:
    pairs = [(p, g) for pred, r in zip(predictions, records) for p, g in zip(pred, r["tags"])]
    acc = 100.0 * sum(p == g for p, g in pairs) / len(pairs)
    return {"token_accuracy": acc, "score": acc}


def _squad(records: list[dict[str, Any]], predictions: Any) -> dict[str, float]:
    result = metrics.squad_em_f1(predictions, {r["id"]: r["answers"]["text"] or [""] for r in records})
    return {**result, "score": (result["exact_match"] + result["f1"]) / 2}


#: Dev metric name (``TrainingTask.metric``) -> its function; higher ``score`` is better.
DEV_METRICS: dict[str, Callable[[list[dict[str, Any]], Any], dict[str, float]]] = {
    "accuracy": _accuracy,
    "seqeval_f1": _seqeval_f1,
    "token_accuracy": _token_accuracy,
    "squad": _squad,
}
