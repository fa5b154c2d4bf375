"""The real-data path end to end: the paper preset's rules on a reduced grid, fed by miniature
archives in each upstream format and a tiny model in the hub's layout, both served by a local
HTTP server (tests/hub_server.py), through download, conversion, training, prediction, scoring
and tables.

The archives cannot match the upstream pins, so the run replaces them with
``data.download.pins`` (a YAML file of url, sha256, size per upstream file). The grid wires every
task format: MNLI (intermediate; pair classification), XNLI (pair), PAN-X (tagging, the real tag
inventory), XQuAD (span QA via a SQuAD v1.1 training; real contexts and answer offsets) and
Tatoeba (retrieval), in English and German, one seed.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

import snakemake_server
from conftest import ROOT
from hub_server import Server
from test_converters import (MNLI_HEADER, XNLI_HEADER, mnli_row, qa, squad, tar_bytes, tsv, xnli_row,
                             zip_file)
from test_workflow import job_counts
from xstilts import sources
from xstilts.config import ConfigError, resolve
from xstilts.plan import Plan
from xstilts.tasks import NLI_LABELS

RUN, MODEL = "e2e", "tiny-hub"
REPO, COMMIT = "xstilts-test/tiny-xlmr", "0123456789abcdef0123456789abcdef01234567"
LANGS = ["en", "de"]
PANX_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
GOLD = ["entailment", "neutral", "contradiction"]  # MNLI's and XNLI's gold labels
assert set(GOLD) == set(NLI_LABELS)
# Tatoeba has English on one side; the other targets are scored in both languages.
SCORED = {"xnli": LANGS, "panx": LANGS, "xquad": LANGS, "tatoeba": ["de"]}

# --------------------------------------------------------------------------------------------
# Miniature upstream files (the layouts of tests/test_converters.py's dispatcher tests)

WORDS = {
    "en": "the a cat dog man woman city river house car sleeps runs eats reads big small old new red".split(),
    "de": "der die eine Katze Hund Mann Frau Stadt Fluss Haus Auto schläft läuft isst liest groß klein alt".split(),
}
PEOPLE, PLACES, ORGS = ["Anna", "Marie", "Paul"], ["Berlin", "Paris", "Rom"], ["Siemens", "Nokia"]


def sentence(lang: str, i: int, n: int = 5) -> str:
    words = WORDS[lang]
    return " ".join(words[(i * 7 + k * 3) % len(words)] for k in range(n)) + "."


def mnli_zip(path: Path) -> dict[str, int]:
    """MNLI.zip: train and dev_matched, with rows lacking a gold label ("-", dropped by the converter)."""
    counts = {}
    members = {}
    for split, member, n in (("train", "MNLI/train.tsv", 60), ("dev", "MNLI/dev_matched.tsv", 15)):
        rows = [mnli_row(i, sentence("en", i), sentence("en", i + 1, 4), GOLD[i % 3]) for i in range(n)]
        rows += [mnli_row(n + i, sentence("en", i), "no gold.", "-") for i in range(3)]
        members[member] = tsv(MNLI_HEADER, rows)
        counts[f"en/{split}"] = n
    zip_file(path, members)
    return counts


def xnli_zip(path: Path) -> dict[str, int]:
    """XNLI-1.0.zip: dev and test with English, German and French rows (French is not in the grid)."""
    members, counts = {}, {}
    for split, n in (("dev", 9), ("test", 12)):
        # German rows spell one label "contradictory", as some XNLI rows do (the converter maps it).
        rows = [xnli_row(lang, "contradictory" if i % 3 == 2 and lang == "de" else GOLD[i % 3], str(i))
                for i in range(n) for lang in ("en", "de", "fr")]
        members[f"XNLI-1.0/xnli.{split}.tsv"] = tsv(XNLI_HEADER, rows)
        counts.update({f"{lang}/{split}": n for lang in LANGS})
    zip_file(path, members)
    return counts


def panx_sentence(lang: str, i: int) -> str:
    person, place, org = PEOPLE[i % 3], PLACES[i % 3], ORGS[i % 2]
    tokens = [(person, "B-PER"), ("Schmidt", "I-PER"), (WORDS.get(lang, WORDS["en"])[10 + i % 5], "O"), (place, "B-LOC"),
              ("Nord", "I-LOC"), (org, "B-ORG"), ("AG", "I-ORG"), (".", "O")]
    return "".join(f"{lang}:{tok}\t{tag}\n" for tok, tag in tokens)


def panx_archive(path: Path) -> dict[str, int]:
    """panx_dataset.zip of per-language {lang}.tar.gz, each with ./train, ./dev, ./test."""
    sizes = {"train": 40, "dev": 8, "test": 10}
    inner = {f"{lang}.tar.gz": tar_bytes({f"./{split}": "\n".join(panx_sentence(lang, i) for i in range(n))
                                          for split, n in sizes.items()})
             for lang in ("en", "de", "fr")}
    zip_file(path, inner)
    return {"en/train": 40, "en/dev": 8, "de/dev": 8, "en/test": 10, "de/test": 10}


def qa_articles(lang: str, n: int, prefix: str) -> tuple[str, int]:
    """SQuAD JSON of n questions; each answer is a place whose offset is computed from the context."""
    articles = []
    for i in range(n):
        place = PLACES[i % 3]
        context = f"{sentence(lang, i)} {PEOPLE[i % 3]} lives in {place}. {sentence(lang, i + 2)}"
        start = context.index(place)
        articles.append((f"{prefix}-{i}", context, [qa(f"{prefix}-{lang}-{i}", f"Where does {PEOPLE[i % 3]} live?",
                                                      (place, start))]))
    return squad(articles), n


def upstream_files(tmp: Path) -> tuple[dict[str, Path], dict[str, dict[str, int]]]:
    """Every file of the grid's download sources (all files of a source are downloaded) and the
    example counts the converters must write from them."""
    tmp.mkdir(parents=True, exist_ok=True)
    files, counts = {}, {}
    counts["mnli"] = mnli_zip(files.setdefault("MNLI.zip", tmp / "MNLI.zip"))
    counts["xnli"] = xnli_zip(files.setdefault("XNLI-1.0.zip", tmp / "XNLI-1.0.zip"))
    counts["panx"] = panx_archive(files.setdefault("panx_dataset.zip", tmp / "panx_dataset.zip"))
    counts["squad_v1"] = {}
    for split, name, n in (("train", "train-v1.1.json", 40), ("dev", "dev-v1.1.json", 8)):
        text, counts["squad_v1"][f"en/{split}"] = qa_articles("en", n, split)
        files[name] = tmp / name
        files[name].write_text(text, encoding="utf-8")
    counts["xquad"] = {}
    for f in sources.SOURCES["xquad"].files:
        lang = f.name.split(".")[1]
        text, n = qa_articles(lang if lang in WORDS else "en", 6, f"xquad-{lang}")
        files[f.name] = tmp / f.name
        files[f.name].write_text(text, encoding="utf-8")
        if lang in LANGS:
            counts["xquad"][f"{lang}/test"] = n
    # Tatoeba: 8 pairs per language; the German side is the English side's translation in order.
    counts["tatoeba"] = {"de/test": 8}
    for f in sources.SOURCES["tatoeba"].files:
        side = f.name.rsplit(".", 1)[1]
        lines = [sentence("de" if side == "deu" else "en", i) + (f" {side}" if side not in ("eng", "deu") else "")
                 for i in range(8)]
        files[f.name] = tmp / f.name
        files[f.name].write_text("\n".join(lines) + "\n", encoding="utf-8")
    return files, counts


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------------------------
# The option itself


def test_replaced_pins_are_validated_and_reach_the_jobs(tmp_path, raw_config):
    upstream = {f.name: f for f in sources.SOURCES["squad_v1"].files}
    pins = tmp_path / "pins.yaml"
    pins.write_text(yaml.safe_dump({"dev-v1.1.json": {"url": "http://127.0.0.1:9/dev.json", "sha256": "a" * 64,
                                                      "size": 12}}))
    config = dict(raw_config, preset="paper", data={"download": {"pins": str(pins)}})
    plan = Plan(resolve(config))
    job = {f["name"]: f for f in plan.download_job("squad_v1")}
    assert job["dev-v1.1.json"] == {"name": "dev-v1.1.json", "url": "http://127.0.0.1:9/dev.json", "sha256": "a" * 64,
                                    "size": 12, "replaces": upstream["dev-v1.1.json"].sha256}
    train = upstream["train-v1.1.json"]
    assert job["train-v1.1.json"] == {"name": train.name, "url": train.url, "sha256": train.sha256, "size": train.size}
    assert plan.convert_job("squad_v1")["pins"] == {"squad_v1": {"train-v1.1.json": train.sha256,
                                                                 "dev-v1.1.json": "a" * 64}}
    # Unset, the params are those of the upstream pins exactly (no extra key).
    default = Plan(resolve(dict(raw_config, preset="paper")))
    assert default.download_job("squad_v1") == [{"name": f.name, "url": f.url, "sha256": f.sha256, "size": f.size}
                                                for f in sources.SOURCES["squad_v1"].files]
    for body, message in [
        ({"dev-v1.1.jsn": {"url": "http://x/y", "sha256": "a" * 64, "size": 1}},
         r"'dev-v1.1.jsn' is not a pinned file name \(did you mean 'dev-v1.1.json'\?\)"),
        ({"dev-v1.1.json": {"url": "http://x/y", "sha256": "A" * 64, "size": 1}}, r"is not 64 lower-case hex"),
        ({"dev-v1.1.json": {"url": "http://x/y", "sha256": "a" * 64, "size": "12"}}, r"size '12' is not a byte count"),
        ({"dev-v1.1.json": {"url": "ftp://x/y", "sha256": "a" * 64, "size": 1}}, r"is not an http\(s\)://"),
        ({"dev-v1.1.json": {"url": "http://x/y", "sha256": "a" * 64}}, r"expected exactly the keys sha256, size, url"),
    ]:
        pins.write_text(yaml.safe_dump(body))
        with pytest.raises(ConfigError, match=r"config: data.download.pins: .*pins.yaml: .*" + message):
            resolve(config)
    with pytest.raises(ConfigError, match=r"no such file"):
        resolve(dict(raw_config, preset="paper", data={"download": {"pins": str(tmp_path / "none.yaml")}}))


# --------------------------------------------------------------------------------------------
# The run


def tiny_model(out: Path, lines: list[str]) -> None:
    """A random 2-layer XLM-R and its tokenizer, saved as a hub repository's files (safetensors)."""
    from xstilts.modeling import HeadSpec, MultiTaskModel
    from xstilts.pretrain import model_config, train_tokenizer
    from xstilts.training import set_seed

    tokenizer = train_tokenizer(lines, 300, out)
    set_seed(0)
    arch = {"architecture": "xlm-roberta", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
            "intermediate_size": 64, "max_position_embeddings": 130, "hidden_dropout_prob": 0.1,
            "attention_probs_dropout_prob": 0.0}
    MultiTaskModel.build(model_config(tokenizer, arch), {"mlm": HeadSpec("text")}).save_head_model("mlm", out, tokenizer)


TINY = {"epochs": 1, "batch_size": 8, "grad_accum": 1, "max_seq_length": 64, "eval_every_steps": 0,
        "patience": 0, "eval_max_examples": 20, "doc_stride": 32, "max_query_length": 16}


def run_config(pins: Path) -> dict:
    return {
        "run": RUN,
        "languages": LANGS,
        "data": {"download": {"pins": str(pins)}},
        "models": [{"name": MODEL, "source": "hub",
                    "hub": {"id": REPO, "revision": COMMIT, "files": ["*.json", "*.safetensors", "*.model"]}}],
        # The paper preset's variant rows need tasks and data this miniature grid lacks
        # (tests/test_translations.py and tests/test_corpus.py convert their upstream formats).
        "intermediate": {"tasks": ["mnli"], "multitask": {"enabled": False}, "hparams": TINY, "task_hparams": {},
                         "variants": {"mlm": {"tasks": []}, "translated": {"tasks": []}}},
        "targets": {"tasks": ["xnli", "panx", "xquad", "tatoeba"], "hparams": TINY,
                    "task_hparams": {name: TINY for name in ("xnli", "panx", "squad")},
                    "prediction": {"n_best_size": 5, "max_answer_length": 10}},
        "seeds": [0],
        "retrieval": {"max_length": 64, "batch_size": 8},
    }


def snakemake(workdir: Path, configfile: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return snakemake_server.run(["-s", str(ROOT / "Snakefile"), "--directory", str(workdir), "--configfile",
                                 str(configfile), "--config", "preset=paper", "--cores", "2", *args], cwd=ROOT, env=env)


@pytest.mark.workflow
@pytest.mark.usefixtures("one_torch_thread")
def test_paper_rules_on_real_format_data_end_to_end(tmp_path):
    raw, counts = upstream_files(tmp_path / "upstream")
    model = tmp_path / "model"
    tiny_model(model, [sentence(lang, i) for lang in WORDS for i in range(200)] + PEOPLE + PLACES + ORGS)
    server = Server().start()
    try:
        served = server.add_model(REPO, COMMIT, model)
        pins = {name: {"url": server.add_file(name, path.read_bytes()), "sha256": sha256(path),
                       "size": path.stat().st_size} for name, path in raw.items()}
        (tmp_path / "pins.yaml").write_text(yaml.safe_dump(pins), encoding="utf-8")
        configfile = tmp_path / "e2e.yaml"
        configfile.write_text(yaml.safe_dump(run_config(tmp_path / "pins.yaml")), encoding="utf-8")
        work = tmp_path / "work"
        # The download rules alone reach the network (here the local server); every other job
        # switches huggingface_hub offline itself (pipeline.setup_logging), so the environment does not.
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE",
                                                               "TRANSFORMERS_OFFLINE")}
        env.update(HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf_home"), HF_HUB_DISABLE_TELEMETRY="1",
                   OMP_NUM_THREADS="1")
        tables = f"results/{RUN}/tables/{MODEL}"
        proc = snakemake(work, configfile, env, f"{tables}/provenance.json")
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out[-6000:]
        requests_after_first = list(server.requests)
        again = snakemake(work, configfile, env, "-n", f"{tables}/provenance.json")
        assert again.returncode == 0 and "Nothing to be done" in again.stdout + again.stderr, again.stdout[-3000:]
    finally:
        server.stop()

    counts_run = job_counts(out)
    assert {rule: counts_run.get(rule) for rule in ("download_source", "convert_dataset", "download_model",
                                                   "prepare_model", "finetune_intermediate", "finetune_target",
                                                   "predict_target", "embed_sentences", "search_tatoeba",
                                                   "score_run", "make_tables")} == {
        "download_source": 6, "convert_dataset": 6, "download_model": 1, "prepare_model": 1,
        "finetune_intermediate": 1, "finetune_target": 2 * 3, "predict_target": 2 * 3, "embed_sentences": 2,
        "search_tatoeba": 2, "score_run": 2, "make_tables": 1}

    # Downloads: each file fetched exactly once, verified against the pins written here.
    downloads = work / "resources" / "downloads"
    fetched = sorted(p.name for p in downloads.iterdir() if not p.name.startswith("."))  # not manifests, locks
    assert fetched == ["mnli", "panx", "squad_v1", "tatoeba", "xnli", "xquad"]
    for source in ("mnli", "panx", "squad_v1", "tatoeba", "xnli", "xquad"):
        sums = dict(reversed(line.split("  ")) for line in (downloads / source / "SHA256SUMS").read_text().splitlines())
        assert sums == {f.name: pins[f.name]["sha256"] for f in sources.SOURCES[source].files}, source
    assert all(server.gets(f"/files/{name}") == 1 for name in raw), \
        {name: server.gets(f"/files/{name}") for name in raw if server.gets(f"/files/{name}") != 1}
    assert {server.gets(f"/{REPO}/resolve/{COMMIT}/{name}") for name in served} == {1}
    assert requests_after_first == server.requests  # the second run asked the server nothing
    log = (work / "logs" / RUN / "download_source" / "xquad.log").read_text()
    assert log.count("pin replaced by data.download.pins") == 11 and sources.SOURCES["xquad"].files[0].sha256 in log
    source_json = json.loads((work / "resources" / "models" / MODEL / "source.json").read_text())
    assert source_json["revision"] == COMMIT and set(source_json["sha256"]) == set(served)

    # Conversion: the counts written here (MNLI without its unlabelled rows), real label sets.
    data = work / "results" / RUN / "data"
    for dataset, expected in counts.items():
        got = {}
        for key in expected:
            lang, split = key.split("/")
            folder = data / dataset / lang
            files = sorted(folder.glob(f"{split}*"))
            assert files, f"{folder}: no {split} file"
            got[key] = sum(1 for line in files[0].read_text(encoding="utf-8").splitlines() if line.strip())
        assert got == expected, dataset
    labels = work / "results" / RUN / "labels"
    for lang in LANGS:
        assert set((labels / "xnli" / f"test-{lang}.tsv").read_text().split()) == set(NLI_LABELS)
        tags = {t for line in (labels / "panx" / f"test-{lang}.tsv").read_text().splitlines() for t in line.split()}
        assert tags == set(PANX_TAGS), tags

    # Scores: every target and language; tables carry the same numbers.
    score_files = sorted((work / "results" / RUN / "scores" / MODEL).rglob("seed0.json"))
    assert [p.parent.name for p in score_files] == ["baseline", "mnli"]
    table = {row[0]: row[1:] for row in csv.reader((work / tables / "matrix.csv").open())}
    header = table.pop(next(iter(table)))
    for path in score_files:
        scores = json.loads(path.read_text())["scores"]
        assert sorted(scores) == sorted(SCORED)
        for target, score in scores.items():
            per_language = {k: v for k, v in score.items() if isinstance(v, dict)}
            assert per_language and all(sorted(v) == sorted(SCORED[target]) for v in per_language.values()), score
        encoder = path.parent.name
        row = next(v for k, v in table.items() if k.startswith(encoder))
        for target in scores:
            column = next(i for i, h in enumerate(header) if h.startswith(target))
            assert float(row[column]) == pytest.approx(scores[target]["avg_metric"], abs=0.01), (encoder, target)
