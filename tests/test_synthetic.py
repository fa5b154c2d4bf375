"""The embedded benchmark: deterministic, valid canonical files, labels that follow the frames."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from xstilts import formats, synthetic
from xstilts.plan import Plan
from xstilts.tasks import DATASETS, INTERMEDIATE_TRAINING_DATASETS

LANGS = ["en", "de", "ru", "zh", "ko", "ar"]


def small_spec(seed: int = 3, n: int = 40) -> synthetic.SyntheticSpec:
    layout = {}
    for name, ds in DATASETS.items():
        splits = {s: [lang for lang in langs if lang in LANGS] for s, langs in ds.splits.items()}
        layout[name] = {s: langs for s, langs in splits.items() if langs}
    sizes = {name: {s: n for s in layout[name]} for name in layout}
    return synthetic.SyntheticSpec(seed=seed, layout=layout, sizes=sizes)


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench")
    synthetic.generate(small_spec(), root)
    return root


def digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            h.update(str(path.relative_to(root)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def test_byte_identical_across_runs(tmp_path, bench):
    synthetic.generate(small_spec(), tmp_path)
    assert digest(tmp_path) == digest(bench)


def test_seed_changes_data(tmp_path, bench):
    synthetic.generate(small_spec(seed=4), tmp_path)
    assert digest(tmp_path) != digest(bench)


def test_resizing_one_dataset_leaves_others_unchanged(tmp_path, bench):
    spec = small_spec()
    spec.sizes["qqp"] = {"train": 10, "dev": 10}
    synthetic.generate(spec, tmp_path)
    assert (tmp_path / "mnli/en/train.jsonl").read_bytes() == (bench / "mnli/en/train.jsonl").read_bytes()
    assert (tmp_path / "qqp/en/train.jsonl").read_bytes() != (bench / "qqp/en/train.jsonl").read_bytes()


def test_every_file_validates_against_its_format(bench):
    for name, ds in DATASETS.items():
        for split, langs in small_spec().layout[name].items():
            for lang in langs:
                files = formats.data_files(bench, name, lang, split)
                if "records" in files:
                    records = formats.read_dataset(bench, name, lang, split)
                    if split == "train" and name in INTERMEDIATE_TRAINING_DATASETS:
                        # Less chance repeats of a target's evaluation examples (the leakage test).
                        assert 36 <= len(records) <= 40, (name, lang, split)
                    else:
                        assert len(records) == 40, (name, lang, split)
                else:
                    for path in files.values():
                        assert Path(path).stat().st_size > 0


def test_nli_labels_follow_the_frames(bench):
    records = formats.read_dataset(bench, "mnli", "en", "train")
    labels = {r["label"] for r in records}
    assert labels == {"entailment", "neutral", "contradiction"}
    for r in records:
        premise_sentences = [s.strip() + " ." for s in r["sentence1"].split(" .") if s.strip()]
        person = r["sentence2"].split()[0]
        if r["label"] == "entailment":
            # the hypothesis is a premise sentence, possibly without an adjective
            assert any(set(r["sentence2"].split()) <= set(p.split()) for p in premise_sentences)
        elif r["label"] == "contradiction":
            assert person in r["sentence1"] and r["sentence2"] not in premise_sentences


def test_span_answers_are_spans_and_v2_has_unanswerable(bench):
    v1 = formats.read_dataset(bench, "squad_v1", "en", "train")
    v2 = formats.read_dataset(bench, "squad_v2", "en", "train")
    assert all(r["answers"]["text"] for r in v1)
    assert any(not r["answers"]["text"] for r in v2) and any(r["answers"]["text"] for r in v2)
    # read_dataset already checks context[start:start+len] == text; answers are frame slots
    zh = formats.read_dataset(bench, "xquad", "zh", "test")
    assert all(r["answers"]["text"][0] in r["context"] for r in zh)


def test_languages_share_anchors_but_not_words(bench):
    en = formats.read_dataset(bench, "udpos", "en", "test")
    ko = formats.read_dataset(bench, "udpos", "ko", "test")
    en_words = {t for r in en for t, tag in zip(r["tokens"], r["tags"]) if tag not in ("PROPN", "NUM", "PUNCT")}
    ko_words = {t for r in ko for t, tag in zip(r["tokens"], r["tags"]) if tag not in ("PROPN", "NUM", "PUNCT")}
    assert not en_words & ko_words  # content and function words are language-specific
    en_names = {t for r in en for t, tag in zip(r["tokens"], r["tags"]) if tag == "PROPN"}
    ko_names = {t for r in ko for t, tag in zip(r["tokens"], r["tags"]) if tag == "PROPN"}
    assert en_names & ko_names  # named entities are shared anchors
    # Korean is verb-final: the token before the final "." is a verb or auxiliary in every sentence
    assert all(r["tags"][-2] in ("VERB",) for r in ko)


def anchors(text: str) -> list[str]:
    """Names and numbers: written identically in every language (org suffixes are translated)."""
    return sorted(w for w in text.split() if (w[0].isupper() and w not in synthetic.ORG_SUFFIXES) or w.isdigit())


def test_bucc_gold_pairs_are_translations(bench):
    files = formats.data_files(bench, "bucc2018", "de", "dev")
    src = dict(zip(*formats.read_id_sentences(files["source"])))
    trg = dict(zip(*formats.read_id_sentences(files["target"])))
    gold = formats.read_pairs(files["gold"])
    assert len(gold) == 40 and len(src) == len(trg) == 80  # 40 pairs + 40 one-sided per side
    for s, t in gold:
        assert anchors(src[s]) == anchors(trg[t])


def test_tatoeba_is_line_aligned(bench):
    files = formats.data_files(bench, "tatoeba", "ru", "test")
    src, trg = formats.read_lines(files["source"]), formats.read_lines(files["target"])
    assert len(src) == len(trg) == 40
    assert all(anchors(s) == anchors(t) for s, t in zip(src, trg))


def test_unsupported_language_is_a_clear_error(tmp_path):
    spec = synthetic.SyntheticSpec(seed=1, layout={"xnli": {"test": ["ur"]}}, sizes={"xnli": {"test": 5}})
    with pytest.raises(ValueError, match="cannot generate language"):
        synthetic.generate(spec, tmp_path)


def test_demo_data_job_generates_its_layout(tmp_path, demo_exp):
    from xstilts import pipeline

    job = Plan(demo_exp).data_job("pawsx")
    job["sizes"] = {k: 5 for k in job["sizes"]}
    written = pipeline.make_demo_dataset(job, tmp_path)
    assert len(written) == sum(len(langs) for langs in job["layout"].values())
    assert json.loads((tmp_path / "pawsx/en/train.jsonl").read_text().splitlines()[0])["label"] in ("0", "1")


def test_translations_are_the_english_examples_rendered_in_each_language(bench):
    english = {r["id"].rsplit("-", 1)[1]: r for r in formats.read_dataset(bench, "mnli", "en", "train")}
    for lang in ["de", "ru", "zh", "ar"]:
        translated = formats.read_dataset(bench, "mnli_mt", lang, "train")
        # The English examples (matched by index), less at most a few chance repeats of evaluation text.
        assert len(translated) >= 36
        for t in translated:
            assert t["id"].startswith(f"mnli_mt-{lang}-train-")
            e = english[t["id"].rsplit("-", 1)[1]]
            assert t["label"] == e["label"] and t["sentence2"] != e["sentence2"]
            # Numbers are the shared anchors a translation keeps.
            assert [w for w in t["sentence1"].split() if w.isdigit()] == [w for w in e["sentence1"].split() if w.isdigit()]
    squad = formats.read_dataset(bench, "squad_v1", "en", "train")
    for lang in ["de", "ar", "zh"]:
        translated = formats.read_dataset(bench, "squad_v1_mt", lang, "train")
        assert len(translated) == len(squad)
        for t in translated:
            for text, start in zip(t["answers"]["text"], t["answers"]["answer_start"]):
                assert t["context"][start:start + len(text)] == text


def test_translation_noise_leaves_that_share_of_content_words_in_english(tmp_path):
    rate = 0.3
    spec = synthetic.SyntheticSpec(seed=5, layout={"mnli_mt": {"train": ["de"]}, "squad_v1_mt": {"train": ["de"]}},
                                   sizes={"mnli_mt": {"train": 300}, "squad_v1_mt": {"train": 100}})
    clean_root, noisy_root = tmp_path / "clean", tmp_path / "noisy"
    synthetic.generate(spec, clean_root)
    synthetic.generate(synthetic.SyntheticSpec(**{**spec.__dict__, "translation_noise": rate}), noisy_root)
    lexicon = synthetic._lexicon(5, "de")
    content = {lexicon[w]: w for w in synthetic.CONTENT_WORDS if w in lexicon}
    clean = formats.read_dataset(clean_root, "mnli_mt", "de", "train")
    noisy = formats.read_dataset(noisy_root, "mnli_mt", "de", "train")
    changed = total = 0
    for c, n in zip(clean, noisy):
        assert c["label"] == n["label"]
        for key in ("sentence1", "sentence2"):
            for cw, nw in zip(c[key].split(" "), n[key].split(" ")):
                if cw in content:
                    total += 1
                    changed += nw == content[cw]  # left in English
                else:
                    assert cw == nw  # names, numbers and function words untouched
    assert total > 500 and abs(changed / total - rate) < 0.05
    # Span QA: only questions are noised, so every answer still sits at its offset.
    for record in formats.read_dataset(noisy_root, "squad_v1_mt", "de", "train"):
        for text, start in zip(record["answers"]["text"], record["answers"]["answer_start"]):
            assert record["context"][start:start + len(text)] == text


def test_no_target_evaluation_example_is_in_any_intermediate_training_set(bench):
    """Leakage: intermediate training data, translations included, holds no target dev/test text."""
    from xstilts.leakage import overlap

    found = overlap(bench)
    assert found == {}
