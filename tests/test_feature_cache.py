"""Tokenised features cached by rule tokenize_dataset (xstilts.feature_cache).

The features a job reads from the Arrow folders must be exactly what it computed itself before
the cache existed (``reference_task_data`` below is that code, as it was): every format, with
label alignment, span windows and their stride, multiple choice, LM blocks, multi-file training
sets and ``max_train_examples`` cuts. Also: settings name their folder, a damaged or missing
cache is a clear error, and the demo plan's jobs read exactly the sets it tokenises.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from xstilts import feature_cache, formats, manifest, pipeline, task_formats
from xstilts.feature_cache import EncodeHere, FeatureCache, FeatureCacheError, Request
from xstilts.tasks import CHOICE, NLI_LABELS, PAIR, SPAN, TAGGING, TEXT, Source, TrainingTask

# Short windows over the tiny benchmark's contexts: several windows per example, and a stride
# that the longest question of the encoded set clamps (48 - question - specials leaves < 2 x 16).
HP = {"max_seq_length": 48, "doc_stride": 16, "max_query_length": 64, "learning_rate": 1e-3, "epochs": 2,
      "max_train_examples": None}


@pytest.fixture(scope="module", params=["xlm-roberta", "qwen2"])
def tokenizer_dir(request, tiny_encoder, tiny_bench, tmp_path_factory):
    """The demo's two tokenizer families: XLM-R's (the tiny encoder's) and a byte-level Qwen2 one."""
    if request.param == "xlm-roberta":
        return tiny_encoder
    from xstilts.pretrain import train_tokenizer

    out = tmp_path_factory.mktemp("qwen2_tokenizer")
    lines = [line for lang in ("en", "de", "zh")
             for line in formats.read_lines(tiny_bench / "mlm_corpus" / lang / "train.txt")]
    train_tokenizer(lines, 400, out, "qwen2")
    return out


@pytest.fixture(scope="module")
def tokenizer(tokenizer_dir):
    return pipeline._load_tokenizer(tokenizer_dir)


def reference_task_data(task, hp, data_root, tokenizer, dev_sources):
    """``pipeline._task_data`` before the feature cache: (labels, train features, dev features)."""
    train_records = []
    for s in task.train:
        train_records += formats.read_dataset(data_root, s.dataset, s.lang, s.split)
    if hp.get("max_train_examples"):
        train_records = train_records[: hp["max_train_examples"]]
    if task.dataset.labels_from_train:
        labels = task_formats.task_format(task.format).collect_labels(train_records)
    else:
        labels = task.dataset.labels
    dev = [task_formats.encode(task.format, tokenizer, formats.read_dataset(data_root, s.dataset, s.lang, s.split),
                               hp, labels) for s in dev_sources]
    return labels, task_formats.encode(task.format, tokenizer, train_records, hp, labels, train=True), dev


def reference_lm(variant, data_root, tokenizer):
    """``pipeline._language_modeling_task`` before the feature cache: (train, dev) features."""
    from xstilts import features

    train_lines, dev_lines = [], []
    for lang in variant["languages"]:
        lines = formats.read_lines(formats.data_files(data_root, "mlm_corpus", lang, "train")["text"])
        train_lines += [line for i, line in enumerate(lines) if i % 20]
        dev_lines += [line for i, line in enumerate(lines) if i % 20 == 0][:200]
    length = variant["hparams"]["max_seq_length"]
    return features.encode_text(tokenizer, train_lines, length), features.encode_text(tokenizer, dev_lines, length)


def assert_same(got, want):
    """Every field of two ``Encoded``, the lazy Arrow columns read out in full."""
    assert len(got.features) == len(want.features) > 0
    assert list(got.features) == want.features
    assert list(got.example_index) == want.example_index
    assert list(got.word_ids) == want.word_ids
    assert list(got.offsets) == want.offsets
    assert list(got.cls_index) == want.cls_index


def write_sets(requests, tokenizer, data_root, out):
    """Run rule tokenize_dataset's body for every feature set the requests need; their folders."""
    folders = []
    for (dataset, key), job in feature_cache.feature_sets(requests).items():
        folder = out / dataset / key
        feature_cache.write_feature_set(job, tokenizer, data_root, folder)
        folders.append(folder)
    return folders


def task(name, fmt, train, dev, metric="accuracy"):
    return TrainingTask(name, fmt, tuple(Source(*s) for s in train), tuple(Source(*s) for s in dev), metric)


# Training tasks over the tiny benchmark, one or more per format: several training files, cuts
# inside the second file, collected labels (CCG) cut with the training set.
CASES = {
    "pairs": (task("nli", PAIR, [("mnli", "train", "en"), ("xnli", "test", "de")],
                   [("mnli", "dev", "en"), ("xnli", "test", "zh")]), {"max_train_examples": 90}),
    "choices": (task("hellaswag", CHOICE, [("hellaswag", "train", "en")], [("hellaswag", "dev", "en")]),
                {"max_train_examples": 40}),
    "tagging": (task("udpos", TAGGING, [("udpos", "train", "en")], [("udpos", "dev", "en"), ("udpos", "test", "de")],
                     "seqeval_f1"), {}),
    "tagging, labels from training": (task("ccg", TAGGING, [("ccg", "train", "en")], [("ccg", "dev", "en")],
                                           "token_accuracy"), {"max_train_examples": 7}),
    "spans": (task("squad", SPAN, [("squad_v1", "train", "en")], [("squad_v1", "dev", "en"), ("squad_v2", "dev", "en")],
                   "squad"), {}),
    "spans, two files cut": (task("squads", SPAN, [("squad_v2", "train", "en"), ("squad_v1", "train", "en")],
                                  [("squad_v2", "dev", "en")], "squad"), {"max_train_examples": 75}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_cached_features_are_todays_features(case, tokenizer, tiny_bench, tmp_path):
    training_task, overrides = CASES[case]
    hp = {**HP, **overrides}
    labels, train, dev = reference_task_data(training_task, hp, tiny_bench, tokenizer, training_task.dev)
    train_request, dev_requests = feature_cache.task_requests(training_task, hp, training_task.dev)
    folders = write_sets([train_request, *dev_requests], tokenizer, tiny_bench, tmp_path)
    for store in (FeatureCache(folders, tokenizer), EncodeHere(tokenizer, tiny_bench)):
        data = pipeline._task_data(training_task, hp, tiny_bench, tokenizer, training_task.dev, store)
        assert data.labels == tuple(labels)
        assert_same(data.train, train)
        assert len(data.dev) == len(dev)
        for got, want in zip(data.dev, dev):
            assert_same(got.encoded, want)
    if case == "tagging, labels from training":
        assert 0 < len(labels) < len(task_formats.task_format(TAGGING).collect_labels(
            formats.read_dataset(tiny_bench, "ccg", "en", "train")))  # the cut drops some labels
    if case == "spans":
        assert len(train.features) > 1.5 * 60  # several windows per example
        assert any(f["start_positions"] != c for f, c in zip(train.features, train.cls_index))


def test_the_cut_span_set_is_a_set_of_its_own_and_strides_follow_the_whole_set(tokenizer, tiny_bench):
    # Span windows depend on the longest question of everything encoded together, so two files
    # and a cut are encoded as one item, not as two items concatenated.
    training_task, overrides = CASES["spans, two files cut"]
    train, _ = feature_cache.task_requests(training_task, {**HP, **overrides}, training_task.dev)
    (dataset, settings, item), = feature_cache.parts(train)
    assert dataset == "squad_v2" and settings["item"] == item and item["max_examples"] == 75
    assert feature_cache.item_name(item) == "combined"
    pairs, _ = feature_cache.task_requests(CASES["pairs"][0], {**HP, "max_train_examples": 90}, [])
    assert [(d, i["sources"], s["item"]) for d, s, i in feature_cache.parts(pairs)] == [
        ("mnli", [["mnli", "train", "en"]], None), ("xnli", [["xnli", "test", "de"]], None)]


def test_language_modelling_features_are_todays(tokenizer, tiny_bench, tmp_path):
    variant = {"languages": ["de", "en", "zh"], "hparams": {**HP, "max_seq_length": 32}}
    train, dev = reference_lm(variant, tiny_bench, tokenizer)
    folders = write_sets(feature_cache.lm_requests(variant), tokenizer, tiny_bench, tmp_path)
    assert len(folders) == 2  # held-out and training lines: a set each, in mlm_corpus
    for store in (FeatureCache(folders, tokenizer), EncodeHere(tokenizer, tiny_bench)):
        task, files = pipeline._language_modeling_task(variant, tiny_bench, tokenizer, store)
        assert task.format == TEXT and len(files) == 3
        assert_same(task.train, train)
        assert_same(task.dev[0].encoded, dev)


def test_prediction_features_are_todays(tokenizer, tiny_bench, tmp_path):
    job = {"training": "xnli", "hparams": HP, "prediction": {}, "predict": {"xnli": ["de", "en", "zh"]}}
    requests = feature_cache.job_requests("predict", job)
    store = FeatureCache(write_sets(requests, tokenizer, tiny_bench, tmp_path), tokenizer)
    assert len(store.sets) == 1  # one set: XNLI's test files, one item per language
    for request, lang in zip(requests, ["de", "en", "zh"]):
        records = formats.read_dataset(tiny_bench, "xnli", lang, "test")
        assert_same(store.encoded(request), task_formats.encode(PAIR, tokenizer, records, HP, store.labels(request)))


def test_lazy_columns_index_slice_and_iterate_like_lists(tokenizer, tiny_bench, tmp_path):
    request = Request(SPAN, feature_cache.encoding_settings(SPAN, HP), None, [Source("squad_v1", "dev", "en")])
    want = EncodeHere(tokenizer, tiny_bench).encoded(request)
    got = FeatureCache(write_sets([request], tokenizer, tiny_bench, tmp_path), tokenizer).encoded(request)
    assert isinstance(got.features, feature_cache.Column) and isinstance(got.offsets, feature_cache.Column)
    n = len(want.features)
    assert got.features[0] == want.features[0] and got.features[-1] == want.features[-1]
    assert got.features[3:9] == want.features[3:9] and got.features[::7] == want.features[::7]
    assert got.offsets[n - 2] == want.offsets[n - 2] and isinstance(got.offsets[0][-2], tuple)
    with pytest.raises(IndexError):
        got.features[n]
    # Two items read as one column, cut inside the second: indices and slices across the seam.
    pairs = Request(PAIR, {"max_seq_length": 48}, list(NLI_LABELS),
                    [Source("mnli", "dev", "en"), Source("xnli", "test", "de")], max_examples=100)
    want = EncodeHere(tokenizer, tiny_bench).encoded(pairs)
    got = FeatureCache(write_sets([pairs], tokenizer, tiny_bench, tmp_path / "pairs"), tokenizer).encoded(pairs)
    assert len(got.features) == len(want.features) == 100 and len(got.features.tables) == 2
    assert got.features[55:65] == want.features[55:65] and got.features[59] == want.features[59]
    assert got.features[60] == want.features[60] and got.example_index == list(range(100))


# --------------------------------------------------------------------------------------------
# Settings and paths


def demo_plan(raw_config, **edits):
    from xstilts.config import resolve
    from xstilts.plan import Plan

    raw = copy.deepcopy(raw_config)
    demo = raw["presets"]["demo"]
    for path, value in edits.items():
        *keys, last = path.split(".")
        node = demo
        for key in keys:
            node = node.setdefault(key, {})
        node[last] = value
    return Plan(resolve(raw)).for_model("xlmr-demo")


def test_the_demo_tokenises_each_dataset_once_per_model(raw_config):
    plan = demo_plan(raw_config)
    sets = plan.feature_sets()
    # 26 demo datasets less the two retrieval ones (no features) and the corpus, which has two
    # sets of its own (mnli+mlm's training and held-out lines); every other dataset one set.
    assert len(sets) == 26 - 2 - 1 + 2 == 25
    datasets = [d for d, _ in sets]
    assert datasets.count("mnli") == 1 and datasets.count("mlm_corpus") == 2
    # MNLI's training file serves 6 jobs of each model: 5 intermediate runs and XNLI's training.
    mnli = next(k for d, k in sets if d == "mnli")
    readers = [i for i in plan.itasks if ("mnli", mnli) in plan.feature_inputs("intermediate", i)]
    readers += [t for t in plan.trainings if ("mnli", mnli) in plan.feature_inputs("target", t)]
    assert readers == ["anli_plus", "mnli", "multitask", "mnli+mlm", "mnli-translated", "xnli"]


def test_every_job_reads_items_its_sets_hold(raw_config):
    plan = demo_plan(raw_config)
    sets = plan.feature_sets()
    jobs = [("intermediate", i) for i in plan.itasks]
    jobs += [(kind, t) for t in plan.trainings for kind in ("target", "predict")]
    for kind, name in jobs:
        for request in plan.feature_requests(kind, name):
            for dataset, settings, item in feature_cache.parts(request):
                entry = sets[(dataset, feature_cache.settings_key(settings))]
                assert entry["settings"] == settings and item in entry["items"], (kind, name, dataset)


def test_a_settings_change_gives_another_folder_and_nothing_else_does(raw_config):
    base = demo_plan(raw_config).feature_sets()
    # XNLI's training reads MNLI at its own length: MNLI now has two sets, the intermediate
    # runs' one unchanged.
    longer = demo_plan(raw_config, **{"targets.task_hparams.xnli": {"epochs": 3, "max_seq_length": 96}}).feature_sets()
    mnli = sorted(k for d, k in longer if d == "mnli")
    assert len(mnli) == 2 and [k for d, k in base if d == "mnli"][0] in mnli
    assert {d for d, k in set(longer) - set(base)} == {"mnli", "xnli"}
    # Span QA's stride is an encoding setting; a learning rate, epochs or decoding setting is not.
    stride = demo_plan(raw_config, **{"intermediate.hparams.doc_stride": 64}).feature_sets()
    assert {d for d, k in set(stride) - set(base)} == {"squad_v1", "squad_v2"}
    same = demo_plan(raw_config, **{"targets.hparams.learning_rate": 1e-4, "intermediate.hparams.epochs": 1,
                                    "targets.prediction": {"n_best_size": 5, "max_answer_length": 30}})
    assert same.feature_sets() == base
    # A training cut is applied when reading for pairs (the set is unchanged), but it changes
    # CCG's labels (collected from the cut training set), so CCG gets another set.
    cut = demo_plan(raw_config, **{"intermediate.hparams.max_train_examples": 100}).feature_sets()
    assert {d for d, k in set(cut) - set(base)} == {"ccg", "squad_v1", "squad_v2"}


def test_settings_keys_are_stable_digests():
    settings = {"format": PAIR, "encoding": {"max_seq_length": 128}, "labels": ["a", "b"], "item": None}
    key = feature_cache.settings_key(settings)
    assert len(key) == 12 and int(key, 16) >= 0
    assert feature_cache.settings_key(dict(reversed(list(settings.items())))) == key
    assert feature_cache.settings_key({**settings, "labels": ["b", "a"]}) != key
    assert feature_cache.settings_key({**settings, "encoding": {"max_seq_length": 64}}) != key


# --------------------------------------------------------------------------------------------
# Errors


@pytest.fixture()
def one_set(tokenizer, tiny_bench, tmp_path):
    request = Request(PAIR, {"max_seq_length": 48}, list(NLI_LABELS), [Source("mnli", "dev", "en")])
    (folder,) = write_sets([request], tokenizer, tiny_bench, tmp_path)
    manifest.write(folder, "tokenize_dataset", "job")
    return request, folder


def test_a_missing_folder_is_a_clear_error(one_set, tmp_path):
    with pytest.raises(FeatureCacheError, match=r"no feature set here \(features.json is missing\); rule "
                                                r"tokenize_dataset rebuilds it"):
        FeatureCache([tmp_path / "nowhere"])


def test_a_set_missing_from_the_inputs_is_a_clear_error(one_set, tokenizer):
    request, folder = one_set
    other = Request(PAIR, {"max_seq_length": 64}, request.labels, request.sources)
    with pytest.raises(FeatureCacheError, match=r"no feature set mnli/[0-9a-f]{12} among this job's feature folders "
                                                r"\(it has: mnli/[0-9a-f]{12}\); rule tokenize_dataset writes it"):
        FeatureCache([folder], tokenizer).encoded(other)
    wrong_file = Request(PAIR, request.encoding, request.labels, [Source("mnli", "train", "en")])
    with pytest.raises(FeatureCacheError, match=r"holds no item .*its items: dev.en"):
        FeatureCache([folder], tokenizer).encoded(wrong_file)


def test_a_damaged_arrow_file_is_a_clear_error(one_set, tokenizer):
    request, folder = one_set
    arrow = next((folder / "dev.en").glob("*.arrow"))
    arrow.write_bytes(arrow.read_bytes()[:200])
    # The job's input check (run_rule) finds it first, naming the rule that rebuilds it ...
    with pytest.raises(manifest.DamagedError, match=r"dev.en/data-00000-of-00001.arrow has 200 bytes, its manifest "
                                                    r"says \d+ \(truncated\); rule tokenize_dataset rebuilds it"):
        manifest.verify([folder])
    # ... and a cache read without that check fails as clearly.
    with pytest.raises(FeatureCacheError, match=r"dev.en: cannot read the features .*rule tokenize_dataset rebuilds"):
        FeatureCache([folder], tokenizer).encoded(request)


def test_features_of_another_tokenizer_are_refused(one_set, tiny_bench, tmp_path):
    from xstilts.pretrain import train_tokenizer

    request, folder = one_set
    lines = formats.read_lines(tiny_bench / "mlm_corpus" / "en" / "train.txt")
    train_tokenizer(lines, 300, tmp_path / "other", "bert")
    with pytest.raises(FeatureCacheError, match="was tokenised with another tokenizer"):
        FeatureCache([folder], pipeline._load_tokenizer(tmp_path / "other")).encoded(request)


@pytest.mark.parametrize("architecture", ["xlm-roberta", "bert", "deberta-v2", "qwen2"])
def test_a_saved_and_reloaded_tokenizer_keeps_its_fingerprint(architecture, tiny_bench, tmp_path):
    # Phase 1's tokenizer is saved with every later model; the jobs check the fingerprint of
    # their model's tokenizer against the one the features were made with.
    from xstilts.pretrain import train_tokenizer

    lines = [line for lang in ("en", "de")
             for line in formats.read_lines(tiny_bench / "mlm_corpus" / lang / "train.txt")]
    train_tokenizer(lines, 300, tmp_path / "trained", architecture)
    first = pipeline._load_tokenizer(tmp_path / "trained")
    fingerprint = feature_cache.tokenizer_fingerprint(first)
    first("a b", "c d", truncation=True, max_length=8)  # per-call settings are not part of it
    assert feature_cache.tokenizer_fingerprint(first) == fingerprint
    first.save_pretrained(tmp_path / "saved")
    assert feature_cache.tokenizer_fingerprint(pipeline._load_tokenizer(tmp_path / "saved")) == fingerprint
    train_tokenizer(lines[::2], 300, tmp_path / "another", architecture)
    assert feature_cache.tokenizer_fingerprint(pipeline._load_tokenizer(tmp_path / "another")) != fingerprint


def test_the_rule_writes_the_settings_and_provenance(one_set, tiny_bench):
    import json

    request, folder = one_set
    meta = json.loads((folder / "features.json").read_text())
    assert meta["dataset"] == "mnli" and meta["key"] == folder.name
    assert meta["labels"] == list(request.labels) and meta["settings"]["encoding"] == {"max_seq_length": 48}
    (item,) = meta["items"]
    assert item["name"] == "dev.en" and item["examples"] == item["features"] == 60
    data = formats.data_file(tiny_bench, "mnli", "en", "dev")
    assert meta["inputs"] == {data: formats.sha256(data)}
    assert Path(folder / "dev.en" / "state.json").is_file()
