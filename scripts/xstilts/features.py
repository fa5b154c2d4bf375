"""Tokenisation of canonical records into model features, one encoder per task format.

Each ``encode_*`` returns an ``Encoded``: the features the model consumes plus, per feature,
what is needed to map model outputs back to the examples (word ids for tagging, character
offsets, example index and "no answer" position for span QA windows). Label ids follow the
order of ``labels``. Features hold exactly the inputs the tokenizer names in its
``model_input_names`` (``token_type_ids`` for BERT-family models, not for XLM-R), so every
model gets the inputs it was pretrained with. ``task_formats.TASK_FORMATS`` says which
encoder serves which format.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

IGNORE = -100  # label id ignored by the loss (non-first sub-words, padding)


@dataclass
class Encoded:
    """Model inputs for a list of examples and the bookkeeping to decode outputs."""

    features: list[dict[str, Any]]
    #: feature -> index of its example (span QA has several windows per example).
    example_index: list[int] = field(default_factory=list)
    #: tagging: per feature, the word index of each token (None for special/continuation tokens).
    word_ids: list[list[int | None]] = field(default_factory=list)
    #: span QA: per feature, the (start, end) character span of each context token, else None.
    offsets: list[list[tuple[int, int] | None]] = field(default_factory=list)
    #: span QA: per feature, the token position that stands for "no answer" (CLS, else BOS).
    cls_index: list[int] = field(default_factory=list)


def pad_right(tokenizer: Any) -> Any:
    """Set ``tokenizer`` to pad on the right (in place) and return it.

    Right padding is correct for every family here, because no phase generates text: a real
    token keeps its position from the row's start, so per-token outputs (tagging, span QA) line
    up with the features' word ids and offsets, and absolute positions (BERT's, GPT-2's) do not
    move; decoders attend causally, so a real token never sees a pad. Left padding, which some
    decoder tokenizers ship for generation, would misalign per-token outputs (tests/test_decoders.py
    fails with it). Sequence classifiers pool the last non-pad token on either side.
    """
    tokenizer.padding_side = "right"
    return tokenizer


def ensure_pad_token(tokenizer: Any) -> Any:
    """Give ``tokenizer`` its EOS token as pad where it defines no pad token (in place); return it.

    Hub decoders often ship without a pad token (Llama 3; Qwen2.5 sets its EOS ``<|endoftext|>``
    as pad itself, which is the same choice). Reusing EOS keeps the vocabulary and the weights as
    pretrained, and it is safe because of how each head reads a padded batch:

    - with right padding (``pad_right``) and the attention mask, no real token attends to a pad,
      and per-token heads (tagging, span QA) read only the feature's own positions;
    - transformers' decoder sequence classifiers (and so the choice scorer) pool the rightmost
      token whose id differs from ``config.pad_token_id``. With pad == EOS that is the last
      non-EOS token: the last real token, or, for a tokenizer that appends EOS itself, the token
      before that EOS. The rule compares ids, not positions, so it picks the same token whether an
      example is alone or padded in a batch (padding invariance), in training and in prediction;
    - retrieval pooling uses the attention mask only.

    The alternative, a new pad token, would resize the embeddings of a pretrained model for a row
    that is never attended. A tokenizer with neither a pad nor an EOS token is refused.
    """
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ValueError(f"{type(tokenizer).__name__} defines neither a pad nor an EOS token, so batches cannot "
                             "be padded; add a pad token to the model's tokenizer (tokenizer.add_special_tokens("
                             "{'pad_token': ...}) and resize the embeddings) before using it here")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


_PROBE = ("a", "b")  # two one-token segments; their framing is all the probe looks at
_ADDING = ("TemplateProcessing", "BertProcessing", "RobertaProcessing")  # post-processors that add tokens


def _layout(encoding: Any) -> list[dict[str, Any]]:
    """A probe encoding as template pieces: each special token, and each segment as ``$A`` / ``$B``."""
    pieces: list[dict[str, Any]] = []
    previous = object()
    for token, type_id, seq in zip(encoding.tokens, encoding.type_ids, encoding.sequence_ids):
        if seq is None:
            pieces.append({"SpecialToken": {"id": token, "type_id": type_id}})
        elif seq != previous:
            pieces.append({"Sequence": {"id": "AB"[seq], "type_id": type_id}})
        previous = seq
    return pieces


def _segment_at(pieces: list[dict[str, Any]], segment: str) -> int:
    return [p.get("Sequence", {}).get("id") for p in pieces].index(segment)


def ensure_pair_separator(tokenizer: Any) -> Any:
    """Put the tokenizer's EOS between the two segments of a pair where it puts nothing (in place); return it.

    Pairs (NLI, paraphrase; context + choice; question + context) rely on the tokenizer to mark
    where the second segment starts: encoders put SEP there (``[CLS] a [SEP] b [SEP]``,
    ``<s> a </s></s> b </s>``), the demo's Qwen2 ``BOS a EOS BOS b EOS``, Llama 3 a second BOS.
    Tokenizers that add no special tokens (Qwen2.5, BLOOM) glue the segments (``Where?Piara``),
    and so would a template that only opens with BOS (``BOS a b``). The rule reads the tokenizer
    itself, never the model name: encode a probe pair, and where no special token sits between
    its segments, rewrite the backend's pair template with EOS (what separates the documents a
    decoder was trained on) right after the first segment; the single-sequence template, and
    every token the pair template already adds, stay as they were. The separator is a special
    token outside both segments (``sequence_ids`` None, offsets (0, 0), word id None), so span QA
    still finds the context by ``sequence_ids`` and its characters by ``offset_mapping``; its
    type id is the first segment's. Offset-trimming post-processors (byte-level) are kept.

    The template is saved with the model (``save_pretrained`` writes it to ``tokenizer.json``, and
    transformers loads a folder's ``tokenizer.json`` post-processor as saved, ignoring
    ``add_bos_token`` / ``add_eos_token``), so phases 2, 3 and prediction encode pairs as phase 2
    trained on. It is also applied on every load (``pipeline._load_tokenizer``), where it changes
    nothing for a tokenizer that already separates its pairs, a saved one included.
    """
    import json

    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"{type(tokenizer).__name__} is not a fast (tokenizers) tokenizer, so its pair template "
                         "cannot be read or set (span QA needs one for offsets too); use a model folder with a "
                         "tokenizer.json")
    pair = tokenizer(*_PROBE, return_token_type_ids=True)
    pair_pieces = _layout(pair.encodings[0])
    at = _segment_at(pair_pieces, "A") + 1
    if _segment_at(pair_pieces, "B") > at:
        return tokenizer
    if tokenizer.eos_token is None:
        raise ValueError(f"{type(tokenizer).__name__} puts nothing between the two segments of a pair and has no "
                         "EOS token to put there; give the tokenizer an EOS token (or a pair template with a "
                         "separator in its tokenizer.json)")
    from tokenizers import Tokenizer, models

    single = tokenizer(_PROBE[0], return_token_type_ids=True)
    type_a = pair_pieces[at - 1]["Sequence"]["type_id"]
    pair_pieces.insert(at, {"SpecialToken": {"id": tokenizer.eos_token, "type_id": type_a}})
    single_pieces = _layout(single.encodings[0])
    specials = {p["SpecialToken"]["id"] for p in single_pieces + pair_pieces if "SpecialToken" in p}
    template = {"type": "TemplateProcessing", "single": single_pieces, "pair": pair_pieces,
                "special_tokens": {t: {"id": t, "ids": [tokenizer.convert_tokens_to_ids(t)], "tokens": [t]}
                                   for t in sorted(specials)}}
    backend = tokenizer.backend_tokenizer
    old = json.loads(backend.post_processor.__getstate__()) if backend.post_processor is not None else None
    # The derived template replaces every processor that adds tokens (it repeats their tokens);
    # the others (ByteLevel's offset trimming) keep their place before it.
    parts = [] if old is None else old["processors"] if old["type"] == "Sequence" else [old]
    kept = [p for p in parts if p["type"] not in _ADDING]
    processor = {"type": "Sequence", "processors": [*kept, template]} if kept else template
    # tokenizers builds a post-processor from JSON only as part of a tokenizer: an empty one carries it.
    carrier = json.loads(Tokenizer(models.WordLevel({}, unk_token=None)).to_str())
    carrier["post_processor"] = processor
    backend.post_processor = Tokenizer.from_str(json.dumps(carrier)).post_processor
    if tokenizer(_PROBE[0])["input_ids"] != single["input_ids"]:  # the promise above, checked once
        raise RuntimeError(f"{type(tokenizer).__name__}: adding a pair separator changed single-sequence encoding")
    return tokenizer


def model_inputs(tokenizer: Any, enc: Any, i: int) -> dict[str, Any]:
    """Feature i's model inputs: the tokenizer's ``model_input_names`` that it returned."""
    return {k: enc[k][i] for k in tokenizer.model_input_names if k in enc}


def no_answer_index(tokenizer: Any, input_ids: list[int], sequence_ids: list[int | None] | None = None) -> int:
    """Where a span-QA window says "no answer": its CLS token, else its BOS, else its first question token.

    Windows are question first, so CLS (encoders) or BOS (decoders whose tokenizer adds one: the
    demo's Qwen2, Llama 3) opens every window at the same place. Tokenizers that add no special
    tokens at all (Qwen2.5, BLOOM) open the window with the question itself; its first token
    (``sequence_ids`` 0) is then that place. It is never a context token, so it can never be an
    answer's start or end, and a decoder's BOS sees no more than it does (causal attention)."""
    for token_id in (tokenizer.cls_token_id, tokenizer.bos_token_id):
        if token_id is not None and token_id in input_ids:
            return input_ids.index(token_id)
    if sequence_ids is not None and 0 in sequence_ids:
        return sequence_ids.index(0)
    raise ValueError(f"{type(tokenizer).__name__} adds neither a CLS nor a BOS token to question/context pairs "
                     "and the window has no question token, so span QA has no 'no answer' position")


def encode_pairs(tokenizer: Any, records: list[dict[str, Any]], max_length: int, labels: tuple[str, ...]) -> Encoded:
    enc = tokenizer([r["sentence1"] for r in records], [r["sentence2"] for r in records],
                    truncation=True, max_length=max_length)
    label_id = {label: i for i, label in enumerate(labels)}
    features = [{**model_inputs(tokenizer, enc, i), "labels": label_id[r["label"]]} for i, r in enumerate(records)]
    return Encoded(features, list(range(len(records))))


def encode_choices(tokenizer: Any, records: list[dict[str, Any]], max_length: int) -> Encoded:
    """Each choice is paired with the context (or, without context, the question).

    With both a context and a question (Cosmos QA), the question is prefixed to every choice,
    as in the transformers multiple-choice example.
    """
    firsts, seconds = [], []
    for r in records:
        first = r["context"] if r["context"] else r["question"]
        prefix = r["question"] + " " if r["context"] and r["question"] else ""
        for choice in r["choices"]:
            firsts.append(first)
            seconds.append(prefix + choice)
    enc = tokenizer(firsts, seconds, truncation=True, max_length=max_length)
    features, k = [], 0
    for r in records:
        n = len(r["choices"])
        features.append({**{key: enc[key][k : k + n] for key in tokenizer.model_input_names if key in enc},
                         "labels": r["label"]})
        k += n
    return Encoded(features, list(range(len(records))))


def encode_tagging(tokenizer: Any, records: list[dict[str, Any]], max_length: int, labels: tuple[str, ...]) -> Encoded:
    """Label the first sub-word of every word; other sub-words are ignored by the loss."""
    enc = tokenizer([r["tokens"] for r in records], is_split_into_words=True, truncation=True, max_length=max_length)
    label_id = {label: i for i, label in enumerate(labels)}
    features, all_word_ids = [], []
    for i, r in enumerate(records):
        word_ids = enc.word_ids(i)
        first: list[int | None] = []
        previous = None
        for w in word_ids:
            first.append(w if w is not None and w != previous else None)
            previous = w
        tag_ids = [label_id.get(r["tags"][w], IGNORE) if w is not None else IGNORE for w in first]
        features.append({**model_inputs(tokenizer, enc, i), "labels": tag_ids})
        all_word_ids.append(first)
    return Encoded(features, list(range(len(records))), word_ids=all_word_ids)


def _truncate_question(tokenizer: Any, question: str, max_query_length: int) -> tuple[str, int]:
    """The question cut to ``max_query_length`` tokens, and its length in tokens."""
    question = question.lstrip()
    enc = tokenizer(question, add_special_tokens=False, return_offsets_mapping=True)
    if len(enc["input_ids"]) <= max_query_length:
        return question, len(enc["input_ids"])
    return question[: enc["offset_mapping"][max_query_length - 1][1]], max_query_length


def encode_spans(tokenizer: Any, records: list[dict[str, Any]], max_length: int, doc_stride: int,
                 max_query_length: int, train: bool) -> Encoded:
    """Sliding windows over the context (the transformers QA example's preprocessing).

    Training windows that do not contain the answer, and unanswerable questions, point at the
    "no answer" position: the window's CLS token (``<s>`` for XLM-R, ``[CLS]`` for BERT), or a
    decoder's BOS, or its first question token (``no_answer_index``).
    """
    truncated = [_truncate_question(tokenizer, r["question"], max_query_length) for r in records]
    questions = [q for q, _ in truncated]
    # Room for context in a window: what the longest question and <s> q </s></s> c </s> leave.
    room = max_length - max(n for _, n in truncated) - tokenizer.num_special_tokens_to_add(pair=True)
    if room < 8:
        raise ValueError(f"max_seq_length {max_length} leaves {room} context tokens per window after the "
                         f"questions (up to {max_query_length} tokens); raise max_seq_length or lower max_query_length")
    enc = tokenizer(questions, [r["context"] for r in records], truncation="only_second", max_length=max_length,
                    stride=min(doc_stride, room // 2), return_overflowing_tokens=True,
                    return_offsets_mapping=True)
    features, example_index, offsets, cls_index = [], [], [], []
    for i, ids in enumerate(enc["input_ids"]):
        ex = enc["overflow_to_sample_mapping"][i]
        seq = enc.sequence_ids(i)
        context_offsets = [tuple(o) if s == 1 else None for o, s in zip(enc["offset_mapping"][i], seq)]
        feature = model_inputs(tokenizer, enc, i)
        null = no_answer_index(tokenizer, ids, seq)
        if train:
            start_pos = end_pos = null
            answers = records[ex]["answers"]
            if answers["text"]:
                a_start = answers["answer_start"][0]
                a_end = a_start + len(answers["text"][0])
                tokens = [k for k, o in enumerate(context_offsets) if o is not None]
                if tokens and context_offsets[tokens[0]][0] <= a_start and context_offsets[tokens[-1]][1] >= a_end:
                    start_pos = next(k for k in tokens if context_offsets[k][1] > a_start)
                    end_pos = next(k for k in reversed(tokens) if context_offsets[k][0] < a_end)
            feature["start_positions"] = start_pos
            feature["end_positions"] = end_pos
        features.append(feature)
        example_index.append(ex)
        offsets.append(context_offsets)
        cls_index.append(null)
    return Encoded(features, example_index, offsets=offsets, cls_index=cls_index)


def encode_text(tokenizer: Any, lines: list[str], max_length: int) -> Encoded:
    """Pack tokenised lines into blocks of ``max_length`` tokens for MLM.

    Blocks are framed like a single sequence of the model (``<s> ... </s>`` for XLM-R,
    ``[CLS] ... [SEP]`` for BERT) and lines are separated by the closing token.
    """
    first = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    last = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if first is None or last is None:
        raise ValueError(f"{type(tokenizer).__name__} has no CLS/BOS or SEP/EOS token to frame MLM blocks with")
    ids = tokenizer(lines, add_special_tokens=False)["input_ids"]
    stream: list[int] = []
    for line_ids in ids:
        stream.extend(line_ids)
        stream.append(last)
    block = max_length - 2
    features = []
    for start in range(0, len(stream) - block + 1, block):
        chunk = [first, *stream[start : start + block], last]
        features.append({"input_ids": chunk, "attention_mask": [1] * len(chunk)})
    if not features and stream:
        chunk = [first, *stream[:block], last]
        features.append({"input_ids": chunk, "attention_mask": [1] * len(chunk)})
    return Encoded(features, list(range(len(features))))

