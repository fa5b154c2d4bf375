"""The +MLM variant's real corpus: pinned Wikipedia parquet shards from the (fake) hub -> mlm_corpus.

Tiny parquet files for two languages (English in two shards, of which only the first is wanted,
and Chinese) are served as the dataset repository wikimedia/wikipedia at the pinned commit by
tests/hub_server.py; the download runs in a subprocess pointed at it (HF_ENDPOINT), exactly as
rule download_corpus runs it.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from hub_server import Server
from xstilts import converters, corpus, pipeline, sources
from xstilts.converters import ConversionError
from xstilts.plan import Plan

REPO, COMMIT = "wikimedia/wikipedia", sources.WIKIPEDIA_REVISION
EN_SHARD, EN_OTHER = "20231101.en/train-00000-of-00002.parquet", "20231101.en/train-00001-of-00002.parquet"
ZH_SHARD = "20231101.zh/train-00000-of-00001.parquet"
SHARED = "This boilerplate sentence is repeated in every English article."


def en_article(i: int) -> str:
    # A heading and "Yes." are too short; SHARED repeats: 3 distinct lines per article, plus SHARED once.
    return (f"Article {i}\n\nThe article number {i} is about subject {i * 7} in some detail. "
            f"It has a second   sentence numbered {i} here!\tDoes it ask question {i}? Yes.\n{SHARED}\n")


def zh_article(i: int) -> str:
    # Three sentences cut at 。！？ (no spaces in Chinese), the second the same in every article; the
    # heading is too short.
    return (f"条目{i}\n第{i}篇文章介绍了一个非常有趣而且相当重要的历史主题。它的第二句话同样足够长所以应该保留下来！"
            f"第三句话是否也在这里正确而且完整地结束了呢{i}？")


EN_ARTICLES, ZH_ARTICLES = 40, 30
EN_LINES, ZH_LINES = 3 * EN_ARTICLES + 1, 2 * ZH_ARTICLES + 1


def write_parquet(path: Path, texts: list[str], start: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    ids = [str(start + i) for i in range(len(texts))]
    table = pa.table({"id": ids, "url": [f"https://example.org/{i}" for i in ids],
                      "title": [f"T{i}" for i in ids], "text": texts})
    pq.write_table(table, path, row_group_size=16)


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    repo = tmp_path_factory.mktemp("wikipedia_repo")
    (repo / "README.md").write_text("---\nlicense: cc-by-sa-3.0\n---\n")
    write_parquet(repo / EN_SHARD, [en_article(i) for i in range(EN_ARTICLES)])
    write_parquet(repo / EN_OTHER, [en_article(i) for i in range(EN_ARTICLES, 2 * EN_ARTICLES)], EN_ARTICLES)
    write_parquet(repo / ZH_SHARD, [zh_article(i) for i in range(ZH_ARTICLES)])
    server = Server().start()
    server.add_dataset(REPO, COMMIT, repo)
    yield server
    server.stop()


def download(server: Server, job: dict, out: Path, home: Path) -> subprocess.CompletedProcess:
    """xstilts.corpus.download in a fresh process whose hub is ``server`` (as rule download_corpus)."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                                                           "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=server.url, HF_HOME=str(home), HF_HUB_DISABLE_TELEMETRY="1",
               PYTHONPATH=str(ROOT / "scripts"))
    code = "import json, sys\nfrom xstilts import corpus\ncorpus.download(json.loads(sys.argv[1]), sys.argv[2])"
    return subprocess.run([sys.executable, "-c", code, json.dumps(job), str(out)], env=env, capture_output=True,
                          text=True, timeout=300)


def job_for(lang: str) -> dict:
    wiki = sources.HUB_CORPORA["wikipedia"]
    return {"repo_id": wiki.repo_id, "revision": wiki.revision, "patterns": [wiki.pattern(lang)]}


@pytest.fixture(scope="module")
def downloads(hub, tmp_path_factory) -> Path:
    """resources/corpus/wikipedia/{en,zh}, downloaded once for the module."""
    root = tmp_path_factory.mktemp("resources") / "corpus" / "wikipedia"
    for lang in ("en", "zh"):
        proc = download(hub, job_for(lang), root / lang, root.parent / "hf_home")
        assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def settings(downloads: Path, n: int, seed: int = 0) -> dict:
    wiki = sources.HUB_CORPORA["wikipedia"]
    return {"source": "wikipedia", "repo_id": wiki.repo_id, "revision": wiki.revision, "column": "text",
            "files": {lang: wiki.pattern(lang) for lang in ("en", "zh")}, "sentences_per_language": n, "seed": seed,
            "folders": [str(downloads / "en"), str(downloads / "zh")]}


LAYOUT = {"train": ["en", "zh"]}


# --------------------------------------------------------------------------------------------
# Sources and the plan


def test_mlm_corpus_comes_from_pinned_wikipedia():
    wiki = sources.HUB_CORPORA[sources.source_of("mlm_corpus")]
    assert (wiki.repo_id, wiki.revision) == ("wikimedia/wikipedia", "b04c8d1ceb2f5cd4588862100d08de323dccfbaa")
    assert wiki.pattern("en") == "20231101.en/train-00000-of-*.parquet"
    from xstilts.tasks import DATASETS

    # Every XTREME / XTREME-R language has a Wikipedia under its own code.
    assert all(sources.wikipedia_code(lang) == lang for lang in DATASETS["mlm_corpus"].splits["train"])


def test_plan_downloads_and_converts_the_corpus_per_language(raw_config):
    from xstilts.config import resolve

    config = copy.deepcopy(raw_config)
    config.update(preset="paper", languages=["en", "zh"])
    plan = Plan(resolve(config))
    assert plan.corpus_downloads() == [("wikipedia", "en"), ("wikipedia", "zh")]
    assert "wikipedia" not in plan.download_sources() and plan.dataset_sources("mlm_corpus") == []
    assert plan.corpus_download_job("wikipedia", "zh") == job_for("zh")
    job = plan.convert_job("mlm_corpus")
    assert job["pins"] == {} and job["layout"] == LAYOUT
    assert job["corpus"] == {k: v for k, v in settings(Path("x"), 100000).items() if k != "folders"}
    # The sample's size and seed are the job's: changing either re-runs the conversion.
    config["intermediate"] = {"seed": 3, "variants": {"mlm": {"sentences_per_language": 500}}}
    other = Plan(resolve(config)).convert_job("mlm_corpus")["corpus"]
    assert (other["seed"], other["sentences_per_language"]) == (3, 500)
    assert "corpus" not in plan.convert_job("xnli")  # other conversions' params are unchanged


# --------------------------------------------------------------------------------------------
# Download


def test_download_fetches_the_first_shard_only_and_verifies_it(hub, downloads):
    record = json.loads((downloads / "en" / "source.json").read_text())
    data = (downloads / "en" / EN_SHARD).read_bytes()
    assert record["revision"] == COMMIT and record["repo_type"] == "dataset"
    assert record["sha256"] == {EN_SHARD: hashlib.sha256(data).hexdigest()}
    assert not (downloads / "en" / EN_OTHER).exists() and hub.gets(f"/datasets/{REPO}/resolve/{COMMIT}/{EN_OTHER}") == 0
    assert hub.gets(f"/datasets/{REPO}/resolve/{COMMIT}/{EN_SHARD}") == 1
    assert sorted(p.name for p in (downloads / "zh").iterdir()) == ["20231101.zh", "source.json"]
    assert not (downloads / "en.staging").exists()


def test_a_corrupted_hub_file_is_refused(hub, tmp_path):
    hub.corrupt.add(ZH_SHARD)
    try:
        proc = download(hub, job_for("zh"), tmp_path / "zh", tmp_path / "hf_home")
    finally:
        hub.corrupt.discard(ZH_SHARD)
    assert proc.returncode != 0
    assert f"{ZH_SHARD}: sha256" in proc.stderr and "does not match the hub's" in proc.stderr, proc.stderr[-3000:]
    assert not (tmp_path / "zh").exists() and not (tmp_path / "zh.staging").exists()


def test_a_pattern_matching_no_file_is_an_error_naming_it(hub, tmp_path):
    proc = download(hub, job_for("de"), tmp_path / "de", tmp_path / "hf_home")
    assert proc.returncode != 0 and "no file matches the pattern '20231101.de/train-00000-of-*.parquet'" in proc.stderr


# --------------------------------------------------------------------------------------------
# Conversion


def test_lines_are_paragraphs_then_sentences_normalised_and_filtered():
    text = ("Heading\n  The first   sentence is long enough.  Second one ends here!\tThird one asks why it matters?"
            " ok.\n12345678901234567890123\n" + "x" * (corpus.MAX_CHARS + 1) + "\n"
            "第一句话写得足够长所以会被保留在语料中。第二句话也写得足够长所以同样会被保留下来！")
    assert list(corpus.lines_of(text)) == [
        "The first sentence is long enough.", "Second one ends here!", "Third one asks why it matters?",
        "第一句话写得足够长所以会被保留在语料中。", "第二句话也写得足够长所以同样会被保留下来！"]


def test_sample_is_seeded_and_independent_of_order():
    lines = [f"line number {i} of the corpus" for i in range(200)]
    first, enough = corpus.sample(lines + lines[:50], 20, seed=1)
    assert enough and len(first) == len(set(first)) == 20
    assert corpus.sample(list(reversed(lines)), 20, seed=1) == (first, True)
    assert set(corpus.sample(lines, 20, seed=2)[0]) != set(first)


def test_conversion_draws_exactly_n_lines_deterministically(downloads, tmp_path):
    counts = converters.convert("mlm_corpus", None, LAYOUT, tmp_path / "a", corpus=settings(downloads, 25))
    assert counts == {"en/train": 25, "zh/train": 25}
    # The rule's way in: the job of Plan.convert_job and the download folders (rule convert_dataset).
    job_settings = settings(downloads, 25)
    folders = job_settings.pop("folders")
    again = pipeline.convert_dataset({"dataset": "mlm_corpus", "layout": LAYOUT, "pins": {}, "corpus": job_settings},
                                     folders, tmp_path / "b")
    assert again == counts
    for lang in ("en", "zh"):
        a = (tmp_path / "a" / "mlm_corpus" / lang / "train.txt").read_text(encoding="utf-8")
        assert a == (tmp_path / "b" / "mlm_corpus" / lang / "train.txt").read_text(encoding="utf-8")
        lines = a.splitlines()
        assert len(set(lines)) == 25 and all(corpus.MIN_CHARS <= len(line) <= corpus.MAX_CHARS for line in lines)
    en = (tmp_path / "a" / "mlm_corpus" / "en" / "train.txt").read_text(encoding="utf-8").splitlines()
    assert all(" " * 2 not in line and "\t" not in line for line in en)
    # Only the first shard is read: no article of the second one.
    assert not any(f"number {i} " in line for i in range(EN_ARTICLES, 2 * EN_ARTICLES) for line in en)
    converters.convert("mlm_corpus", None, LAYOUT, tmp_path / "c", corpus=settings(downloads, 25, seed=1))
    other = (tmp_path / "c" / "mlm_corpus" / "en" / "train.txt").read_text(encoding="utf-8").splitlines()
    assert set(other) != set(en) and len(other) == 25
    # Every usable line at once: the whole first shard, each line once.
    converters.convert("mlm_corpus", None, LAYOUT, tmp_path / "d", corpus=settings(downloads, ZH_LINES))
    assert len((tmp_path / "d" / "mlm_corpus" / "zh" / "train.txt").read_text(encoding="utf-8").splitlines()) == ZH_LINES


def test_too_small_a_corpus_is_a_clear_error(downloads, tmp_path):
    with pytest.raises(ConversionError, match=rf"wikipedia \(zh\): only {ZH_LINES} usable distinct lines .* fewer "
                                              rf"than the {ZH_LINES + 1} sentences per language asked for; lower "
                                              rf"intermediate.variants.mlm.sentences_per_language to at most {ZH_LINES}"):
        converters.convert("mlm_corpus", None, LAYOUT, tmp_path, corpus=settings(downloads, ZH_LINES + 1))
    counts = converters.convert("mlm_corpus", None, {"train": ["en"]}, tmp_path, corpus=settings(downloads, EN_LINES))
    assert counts == {"en/train": EN_LINES}


def test_conversion_rechecks_the_downloaded_files(downloads, tmp_path):
    copy_root = tmp_path / "wikipedia"
    shutil.copytree(downloads, copy_root)
    shard = copy_root / "zh" / ZH_SHARD
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 1
    shard.write_bytes(bytes(data))
    bad = settings(copy_root, 10)
    with pytest.raises(ConversionError, match=r"train-00000-of-00001.parquet: sha256 .* does not match the pin"):
        converters.convert("mlm_corpus", None, LAYOUT, tmp_path / "out", corpus=bad)
    record = json.loads((copy_root / "en" / "source.json").read_text())
    record["revision"] = "0" * 40
    (copy_root / "en" / "source.json").write_text(json.dumps(record))
    with pytest.raises(ConversionError, match=r"downloaded from wikimedia/wikipedia@0{40}, but the pin is"):
        converters.convert("mlm_corpus", None, {"train": ["en"]}, tmp_path / "out", corpus=bad)
