"""Hub decoders' tokenizer framings: no pad token, no BOS, no special tokens at all.

Tiny random Qwen2-architecture decoders saved as hub folders (config.json without a
pad_token_id, as Qwen2.5 and Llama 3 ship) with byte-level BPE tokenizers imitating each case:

- ``qwen2.5``: pad == EOS == ``<|endoftext|>``, no BOS, adds no special tokens (Qwen2.5 base);
- ``llama3``: no pad token, adds BOS only (Llama 3 base), so a pair is ``BOS a BOS b``;
- ``llama3-glued``: the same, behind a byte-level post-processor as Llama 3's ``tokenizer.json``,
  with a pair template that opens with BOS only (``BOS a b``);
- ``bloom``: its own pad token, a BOS it does not add (BLOOM);
- ``eos-no-pad``: no pad token, no BOS, appends EOS (the case where pad == EOS meets an EOS).

Where a pair's segments would be glued (Qwen2.5, BLOOM, ``llama3-glued``), loading puts EOS
between them (``features.ensure_pair_separator``); the other framings are left as they are.

Every head must be padding invariant (an example alone equals it batched with longer ones), span
QA's "no answer" position must be a valid non-context position, and the classifiers must pool
the position ``features.ensure_pad_token`` documents.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest

from xstilts.tasks import CHOICE, PAIR, SPAN, TAGGING

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ENDOFTEXT, BOS, EOS = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
CASES = {
    "qwen2.5": {"eos_token": ENDOFTEXT, "pad_token": ENDOFTEXT, "bos_token": None},
    "llama3": {"bos_token": BOS, "eos_token": EOS, "pad_token": None, "add_bos_token": True},
    "llama3-glued": {"bos_token": BOS, "eos_token": EOS, "pad_token": None, "add_bos_token": True,
                     "pair_template": f"{BOS} $A $B:1"},
    "bloom": {"bos_token": BOS, "eos_token": EOS, "pad_token": ENDOFTEXT},
    "eos-no-pad": {"bos_token": None, "eos_token": EOS, "pad_token": None, "add_eos_token": True},
}
HP = {"max_seq_length": 48, "doc_stride": 16, "max_query_length": 16}
TOL = {"rtol": 0, "atol": 1e-5}
SHORT = "Piara lives in Topo ."
LONG = "der Hund of Piara lives in the big city of Topo , near the river , and the Hund is happy there ."

RECORDS = {
    PAIR: ([{"sentence1": SHORT, "sentence2": "der Hund", "label": "a"},
            {"sentence1": LONG, "sentence2": LONG, "label": "b"},
            {"sentence1": LONG, "sentence2": SHORT, "label": "a"}], ("a", "b", "c")),
    TAGGING: ([{"tokens": SHORT.split(), "tags": ["B-PER", "O", "O", "B-LOC", "O"]},
               {"tokens": LONG.split(), "tags": ["O"] * len(LONG.split())}], ("B-LOC", "B-PER", "O")),
    SPAN: ([{"id": "q1", "question": "Where ?", "context": SHORT, "answers": {"text": [], "answer_start": []}},
            {"id": "q2", "question": "Who lives in the big city ?", "context": LONG + " " + LONG,
             "answers": {"text": [], "answer_start": []}}], ()),
    CHOICE: ([{"context": SHORT, "question": "", "choices": ["yes", "no"], "label": 0},
              {"context": LONG, "question": "Where ?", "choices": ["in Topo", LONG], "label": 1}], ()),
}


@pytest.fixture(scope="module")
def hub_dirs(tmp_path_factory):
    """One saved hub-like folder per case: random tiny decoder + tokenizer, config without pad id."""
    from transformers import Qwen2Config, Qwen2Model, Qwen2Tokenizer

    from xstilts import pretrain

    root = tmp_path_factory.mktemp("hub_tokenizers")
    lines = [SHORT, LONG, "Where ? Who lives in the big city ?", "yes no in Topo"] * 20
    # The vocabulary and merges of a trained byte-level BPE; each case re-frames them.
    trained = json.loads(pretrain._qwen2_tokenizer(lines, 300).backend_tokenizer.to_str())["model"]
    dirs = {}
    for name, framing in CASES.items():
        framing = dict(framing)
        pair_template = framing.pop("pair_template", None)
        tok = Qwen2Tokenizer(vocab=trained["vocab"], merges=[tuple(m) for m in trained["merges"]], unk_token=None,
                             **framing)
        if pair_template:
            from tokenizers import processors

            template = processors.TemplateProcessing(single=f"{BOS} $A", pair=pair_template,
                                                     special_tokens=[(BOS, tok.bos_token_id)])
            tok.backend_tokenizer.post_processor = processors.Sequence(
                [processors.ByteLevel(trim_offsets=False), template])
        cfg = Qwen2Config(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                          num_key_value_heads=2, intermediate_size=64, max_position_embeddings=128,
                          bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
        assert cfg.pad_token_id is None
        torch.manual_seed(0)
        dirs[name] = root / name
        Qwen2Model(cfg).save_pretrained(dirs[name])
        tok.save_pretrained(dirs[name])
    return dirs


def load(hub_dirs, case):
    from xstilts.pipeline import _load_tokenizer

    return _load_tokenizer(hub_dirs[case])


def plain(hub_dirs, case):
    """The case's tokenizer as transformers loads it, without this project's adjustments."""
    return transformers.AutoTokenizer.from_pretrained(hub_dirs[case])


def framing(tok, case, a_ids, b_ids):
    """What each case's pair must encode to, built from the two segments' own ids: (ids, sequence ids).

    Glued framings get EOS between the segments; a framing with a separator of its own keeps it."""
    bos, eos = tok.bos_token_id, tok.eos_token_id
    a, b = [(i, 0) for i in a_ids], [(i, 1) for i in b_ids]
    layout = {"qwen2.5": [*a, (eos, None), *b], "bloom": [*a, (eos, None), *b],
              "llama3": [(bos, None), *a, (bos, None), *b], "llama3-glued": [(bos, None), *a, (eos, None), *b],
              "eos-no-pad": [*a, (eos, None), *b, (eos, None)]}[case]
    return [i for i, _ in layout], [s for _, s in layout]


def build(hub_dirs, tok, case, fmt, labels):
    from xstilts.modeling import HeadSpec, MultiTaskModel

    torch.manual_seed(0)
    return MultiTaskModel.build(hub_dirs[case], {"t": HeadSpec(fmt, labels)}, pad_token_id=tok.pad_token_id).eval()


def run(model, tok, fmt, encoded, batch_size):
    from xstilts.training import forward_all

    return forward_all(model, "t", fmt, encoded, tok, batch_size, torch.device("cpu"), contextlib.nullcontext)


def test_the_cases_frame_as_their_hub_models(hub_dirs):
    """The imitations hold: which special tokens each adds, and the pad each ends up with."""
    toks = {case: load(hub_dirs, case) for case in CASES}
    ids = {case: tok(SHORT)["input_ids"] for case, tok in toks.items()}
    bare = toks["bloom"](SHORT)["input_ids"]
    assert ids["qwen2.5"] == bare and toks["qwen2.5"].bos_token is None
    assert ids["llama3"] == ids["llama3-glued"] == [toks["llama3"].bos_token_id, *bare]
    assert ids["eos-no-pad"] == [*bare, toks["eos-no-pad"].eos_token_id]
    # As transformers loads them, these glue a pair's segments: nothing between a and b.
    for case in ("qwen2.5", "bloom", "llama3-glued"):
        tok = plain(hub_dirs, case)
        a, b = (tok(t, add_special_tokens=False)["input_ids"] for t in ("Where ?", SHORT))
        assert tok("Where ?", SHORT)["input_ids"] == [*tok("Where ?")["input_ids"], *b]
    # No pad token of their own: EOS pads (Qwen2.5 ships that choice itself).
    for case in ("qwen2.5", "llama3", "llama3-glued", "eos-no-pad"):
        assert toks[case].pad_token_id == toks[case].eos_token_id
    assert toks["bloom"].pad_token == ENDOFTEXT != toks["bloom"].eos_token
    assert all(tok.padding_side == "right" for tok in toks.values())


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("fmt", list(RECORDS))
def test_every_head_is_padding_invariant(hub_dirs, case, fmt):
    from xstilts.task_formats import encode, task_format

    tok = load(hub_dirs, case)
    records, labels = RECORDS[fmt]
    encoded = encode(fmt, tok, records, HP, labels)
    lengths = [task_format(fmt).feature_length(f) for f in encoded.features]
    assert len(set(lengths)) > 1, "the examples must differ in length, or nothing is padded"
    model = build(hub_dirs, tok, case, fmt, labels)
    alone = run(model, tok, fmt, encoded, 1)
    together = run(model, tok, fmt, encoded, len(encoded.features))
    for i, (a, b) in enumerate(zip(alone, together)):
        if fmt in (TAGGING, SPAN):  # one output per token: compare the feature's own positions
            n = lengths[i]
            a, b = (np.stack(a)[..., :n], np.stack(b)[..., :n]) if fmt == SPAN else (a[:n], b[:n])
        np.testing.assert_allclose(b, a, **TOL, err_msg=f"{case} {fmt}: feature {i} changes when batched")


@pytest.mark.parametrize("case", list(CASES))
def test_span_qa_no_answer_position_is_valid(hub_dirs, case):
    """Every window (several per long context) says "no answer" at the same non-context position:
    BOS where the tokenizer adds one, else the first question token."""
    from xstilts.task_formats import encode

    tok = load(hub_dirs, case)
    records, _ = RECORDS[SPAN]
    encoded = encode(SPAN, tok, records, HP, ())
    assert len(encoded.features) > len(records), "the long context must need several windows"
    expected = 0  # BOS (llama3) or the first question token (every other case) opens each window
    for feature, offsets, null in zip(encoded.features, encoded.offsets, encoded.cls_index):
        assert null == expected and offsets[null] is None
        ids = feature["input_ids"]
        if case.startswith("llama3"):
            assert ids[null] == tok.bos_token_id
        else:
            question = tok(records[encoded.example_index[encoded.cls_index.index(null)]]["question"],
                           add_special_tokens=False)["input_ids"]
            assert ids[null] in question


def test_span_qa_without_any_question_token_is_refused(hub_dirs):
    from xstilts.features import no_answer_index

    tok = load(hub_dirs, "qwen2.5")
    with pytest.raises(ValueError, match="neither a CLS nor a BOS"):
        no_answer_index(tok, [5, 6, 7], [1, 1, 1])


@pytest.mark.parametrize("case", list(CASES))
def test_a_pair_encodes_as_first_separator_second(hub_dirs, case):
    """Pairs, choices and the segments' offsets, against ids and offsets computed independently;
    single sequences (and so tagging's word ids) are exactly what transformers' own tokenizer gives."""
    from xstilts.task_formats import encode

    tok, own = load(hub_dirs, case), plain(hub_dirs, case)
    first, second = "Where ?", SHORT
    seg = [tok(t, add_special_tokens=False)["input_ids"] for t in (first, second)]
    ids, seq = framing(tok, case, *seg)
    enc = tok(first, second, return_offsets_mapping=True)
    assert enc["input_ids"] == ids and enc.sequence_ids() == seq
    assert all(o == (0, 0) for o, s in zip(enc["offset_mapping"], seq) if s is None)
    # The segments' offsets are the tokenizer's own.
    before = own(first, second, return_offsets_mapping=True)
    assert ([o for o, s in zip(enc["offset_mapping"], seq) if s is not None]
            == [o for o, s in zip(before["offset_mapping"], before.sequence_ids()) if s is not None])
    if ids == before["input_ids"]:  # a framing with its own separator is left exactly as it was
        assert case in ("llama3", "eos-no-pad")
        state = tok.backend_tokenizer.post_processor.__getstate__()
        assert state == own.backend_tokenizer.post_processor.__getstate__()
    else:
        assert case in ("qwen2.5", "bloom", "llama3-glued")
    for text in (SHORT, LONG):
        assert tok(text, return_offsets_mapping=True).data == own(text, return_offsets_mapping=True).data
    words = LONG.split()
    assert (tok(words, is_split_into_words=True).word_ids()
            == own(words, is_split_into_words=True).word_ids())
    # The features of the pair and choice formats carry the same framing.
    records, labels = RECORDS[PAIR]
    pair = encode(PAIR, tok, records[:1], HP, labels).features[0]["input_ids"]
    assert pair == framing(tok, case, *(tok(records[0][k], add_special_tokens=False)["input_ids"]
                                         for k in ("sentence1", "sentence2")))[0]
    choice = encode(CHOICE, tok, RECORDS[CHOICE][0][:1], HP).features[0]["input_ids"]
    assert choice == [framing(tok, case, *(tok(t, add_special_tokens=False)["input_ids"] for t in (SHORT, c)))[0]
                      for c in ("yes", "no")]


@pytest.mark.parametrize("case", list(CASES))
def test_span_qa_windows_map_answers_back_to_the_context(hub_dirs, case):
    """Every window is question, separator, a slice of the context; the slice's ids and offsets are
    those of the context tokenised alone; the answer (far into a long context, so in a later
    window) maps back to exactly the context characters its tokens cover."""
    from xstilts.task_formats import encode

    tok = load(hub_dirs, case)
    question, context = "Who lives in the big city ?", LONG + " " + LONG
    answer = "the big city of Topo"
    start = context.rindex(answer)
    record = {"id": "q", "question": question, "context": context,
              "answers": {"text": [answer], "answer_start": [start]}}
    encoded = encode(SPAN, tok, [record], HP, (), train=True)
    assert len(encoded.features) > 2
    q_ids = tok(question, add_special_tokens=False)["input_ids"]
    alone = tok(context, add_special_tokens=False, return_offsets_mapping=True)
    pieces = list(zip(alone["input_ids"], map(tuple, alone["offset_mapping"])))
    # The tokens that cover the answer in the context tokenised alone, and the characters they span.
    covering = [o for _, o in pieces if o[1] > start and o[0] < start + len(answer)]
    covered = context[covering[0][0] : covering[-1][1]]
    assert covered.strip() == answer
    found = []
    for k, (feature, offsets, null) in enumerate(zip(encoded.features, encoded.offsets, encoded.cls_index)):
        ids = feature["input_ids"]
        assert len(ids) <= HP["max_seq_length"]
        window = [(i, o) for i, o in zip(ids, offsets) if o is not None]
        n = len(window)
        assert any(pieces[j : j + n] == window for j in range(len(pieces) - n + 1)), f"window {k} is no slice"
        assert ids == framing(tok, case, q_ids, [i for i, _ in window])[0]
        s, e = feature["start_positions"], feature["end_positions"]
        if (s, e) != (null, null):
            assert context[offsets[s][0] : offsets[e][1]] == covered
            found.append(k)
    assert found and found[0] > 0, "the answer must lie in a later window"


def test_the_saved_tokenizer_keeps_the_separator(hub_dirs, tmp_path):
    """Phase 2 saves the pair template with the model: transformers loads it as saved, so phase 3
    and prediction encode pairs as training did, and loading it again changes nothing."""
    from xstilts.features import ensure_pair_separator

    tok = load(hub_dirs, "llama3-glued")
    model = build(hub_dirs, tok, "llama3-glued", PAIR, ("a", "b"))
    model.save_encoder(tmp_path, tok)
    saved = transformers.AutoTokenizer.from_pretrained(tmp_path)
    template = tok.backend_tokenizer.post_processor.__getstate__()
    assert saved.backend_tokenizer.post_processor.__getstate__() == template
    assert saved("Where ?", SHORT)["input_ids"] == tok("Where ?", SHORT)["input_ids"]
    assert ensure_pair_separator(saved).backend_tokenizer.post_processor.__getstate__() == template
    assert tok("Where ?", SHORT)["input_ids"][len(tok("Where ?")["input_ids"])] == tok.eos_token_id


def test_an_offset_trimming_post_processor_is_kept(hub_dirs):
    """A byte-level post-processor that trims offsets (``" ?"`` -> the ``?`` alone) keeps trimming
    once the separator template joins it; the single-sequence encoding stays as it was."""
    from tokenizers import processors

    from xstilts.features import ensure_pair_separator

    tok = plain(hub_dirs, "qwen2.5")
    tok.backend_tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    first, second = "Where ?", SHORT
    before = tok(first, second, return_offsets_mapping=True)
    single = tok(second, return_offsets_mapping=True).data
    assert (5, 7) not in before["offset_mapping"], "the trimming must show in the offsets"
    ensure_pair_separator(tok)
    after = tok(first, second, return_offsets_mapping=True)
    n = len(tok(first, add_special_tokens=False)["input_ids"])
    assert after["input_ids"] == [*before["input_ids"][:n], tok.eos_token_id, *before["input_ids"][n:]]
    assert after["offset_mapping"] == [*before["offset_mapping"][:n], (0, 0), *before["offset_mapping"][n:]]
    assert tok(second, return_offsets_mapping=True).data == single


def test_a_glued_pair_without_eos_is_refused(hub_dirs):
    from xstilts.features import ensure_pair_separator

    tok = plain(hub_dirs, "bloom")
    tok.eos_token = None
    with pytest.raises(ValueError, match="nothing between the two segments.*no EOS token"):
        ensure_pair_separator(tok)


@pytest.mark.parametrize("family", ["xlm-roberta", "bert", "deberta-v2", "qwen2"])
def test_encoder_and_demo_tokenizers_are_unchanged(tmp_path, family):
    """The demo's tokenizers separate pairs themselves (SEP, </s></s>, EOS BOS): loading them for a
    job leaves every encoding exactly as transformers gives it."""
    from xstilts.pipeline import _load_tokenizer
    from xstilts.pretrain import train_tokenizer

    lines = [SHORT, LONG, "Where ? Who lives in the big city ?", "yes no in Topo"] * 20
    train_tokenizer(lines, 300, tmp_path, family)
    tok, own = _load_tokenizer(tmp_path), transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert tok.backend_tokenizer.post_processor.__getstate__() == own.backend_tokenizer.post_processor.__getstate__()
    kwargs = {"return_offsets_mapping": True, "return_token_type_ids": True}
    assert tok(SHORT, LONG, **kwargs).data == own(SHORT, LONG, **kwargs).data
    assert tok(SHORT, **kwargs).data == own(SHORT, **kwargs).data
    question, context = ["Where ?"], [LONG + " " + LONG]
    windows = {"truncation": "only_second", "max_length": 32, "stride": 8, "return_overflowing_tokens": True}
    assert tok(question, context, **windows, **kwargs).data == own(question, context, **windows, **kwargs).data


@pytest.mark.parametrize("case", ["qwen2.5", "eos-no-pad"])
def test_the_classifier_pools_the_last_token_that_is_not_eos(hub_dirs, case):
    """With pad == EOS, a decoder's classifier pools the last non-EOS token: the last real token, or
    the one before an EOS the tokenizer appends; computed here independently from the body."""
    from xstilts.task_formats import encode

    tok = load(hub_dirs, case)
    records, labels = RECORDS[PAIR]
    model = build(hub_dirs, tok, case, PAIR, labels)
    ids = encode(PAIR, tok, records[:1], HP, labels).features[0]["input_ids"]
    pooled = len(ids) - 1 - (ids[-1] == tok.eos_token_id)
    assert (pooled == len(ids) - 2) == (case == "eos-no-pad")
    with torch.no_grad():
        hidden = model.encoder(input_ids=torch.tensor([ids])).last_hidden_state[0, pooled]
        expected = model.heads["t"].score(hidden)
        got = run(model, tok, PAIR, encode(PAIR, tok, records, HP, labels), 3)[0]
    np.testing.assert_allclose(got, expected.numpy(), **TOL)


def test_the_saved_phase_2_folder_names_its_pad(hub_dirs, tmp_path):
    """Phase 2 saves the pad it chose, so phase 3 and prediction read it from the folder."""
    from xstilts.modeling import HeadSpec, MultiTaskModel

    tok = load(hub_dirs, "llama3")
    model = build(hub_dirs, tok, "llama3", PAIR, ("a", "b"))
    model.save_encoder(tmp_path, tok)
    assert transformers.AutoConfig.from_pretrained(tmp_path).pad_token_id == tok.eos_token_id
    assert transformers.AutoTokenizer.from_pretrained(tmp_path).pad_token == EOS
    MultiTaskModel.build(tmp_path, {"t": HeadSpec(PAIR, ("a", "b"))})  # no pad id needed any more


def test_a_config_whose_pad_differs_from_the_tokenizers_is_refused(hub_dirs, tmp_path):
    from xstilts.modeling import HeadSpec, MultiTaskModel

    tok = load(hub_dirs, "bloom")
    cfg = transformers.AutoConfig.from_pretrained(hub_dirs["bloom"])
    cfg.pad_token_id = tok.eos_token_id
    with pytest.raises(ValueError, match="names pad_token_id .* tokenizer pads with id"):
        MultiTaskModel.build(cfg, {"t": HeadSpec(PAIR, ("a", "b"))}, pad_token_id=tok.pad_token_id)


def test_a_tokenizer_without_pad_or_eos_is_refused(hub_dirs):
    from xstilts.features import ensure_pad_token

    tok = transformers.AutoTokenizer.from_pretrained(hub_dirs["llama3"])
    tok.eos_token = None
    with pytest.raises(ValueError, match="neither a pad nor an EOS token.*add a pad token"):
        ensure_pad_token(tok)


@pytest.mark.parametrize("case,pooling", [("llama3", "mean"), ("llama3", "last"), ("eos-no-pad", "last"),
                                          ("qwen2.5", "mean")])
def test_retrieval_embeddings_without_a_pad_token(hub_dirs, case, pooling):
    from xstilts import embeddings

    model = embeddings.load_encoder(hub_dirs[case], layer=1, pooling=pooling, max_length=64, device="cpu")
    sentences = [SHORT, LONG, "der Hund", LONG + " " + SHORT]
    alone = np.stack([embeddings.encode(model, [s], batch_size=1)[0] for s in sentences])
    together = embeddings.encode(model, sentences, batch_size=len(sentences))
    np.testing.assert_allclose(together, alone, **TOL)
    if pooling == "last":  # the last attended token (EOS included where appended), independently
        tok = load(hub_dirs, case)
        encoder = transformers.AutoModel.from_pretrained(hub_dirs[case]).eval()
        with torch.no_grad():
            expected = encoder(input_ids=torch.tensor([tok(SHORT)["input_ids"]]),
                               output_hidden_states=True).hidden_states[1][0, -1]
        np.testing.assert_allclose(alone[0], expected.numpy(), **TOL)
