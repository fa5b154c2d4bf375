"""XCOPA as a target and the reasoning analysis: converter, scorer, generator, DAG and a real run.

The workflow test runs tests/configs/reasoning.yaml (XNLI and XCOPA only, two intermediate tasks,
two seeds) through `snakemake reasoning` and checks the significance table against gains
recomputed here from the prediction and label files, and the XTREME-R scorer's group score.
"""

from __future__ import annotations

import copy
import json
import math
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from conftest import ROOT
from test_workflow import job_counts, snakemake
from xstilts import converters, formats, significance, synthetic, xtreme
from xstilts.config import ConfigError, resolve
from xstilts.languages import XTREME_R_TASK2LANGS
from xstilts.plan import Plan

REASONING = ROOT / "tests" / "configs" / "reasoning.yaml"

COPA_LINES = [
    {"premise": "The man turned on the faucet.", "choice1": "The toilet filled with water.",
     "choice2": "Water flowed from the spout.", "question": "effect", "label": 1, "idx": 1},
    {"premise": "The girl found a bug in her cereal.", "choice1": "She poured milk in the bowl.",
     "choice2": "She lost her appetite.", "question": "effect", "label": 1, "idx": 2},
    {"premise": "The woman retired.", "choice1": "She received her pension.", "choice2": "She paid off her mortgage.",
     "question": "cause", "label": 0, "idx": 3},
]


def _jsonl(rows) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


# ------------------------------------------------------------------------------ converters


def test_copa_converter_keeps_premise_choices_label_and_words_the_question_as_xtreme_r():
    records = converters.copa_jsonl(_jsonl(COPA_LINES), "val.et.jsonl")
    assert records[0] == {"id": "1", "context": "The man turned on the faucet.", "question": "What was the effect?",
                          "choices": ["The toilet filled with water.", "Water flowed from the spout."], "label": 1}
    assert records[2]["question"] == "What was the cause?" and records[2]["label"] == 0
    bad = dict(COPA_LINES[0], question="reason")
    with pytest.raises(converters.ConversionError, match=r"val.et.jsonl:1: question 'reason'"):
        converters.copa_jsonl(_jsonl([bad]), "val.et.jsonl")
    with pytest.raises(converters.ConversionError, match="label 2 is not 0 or 1"):
        converters.copa_jsonl(_jsonl([dict(COPA_LINES[0], label=2)]), "x.jsonl")


def test_siqa_converter_reads_the_separate_label_list():
    rows = [{"context": "Tracy didn't go home.", "question": "What does Tracy need to do before this?",
             "answerA": "make a new plan", "answerB": "Go home and see Riley", "answerC": "Find somewhere to go"},
            {"context": "Sydney walked past.", "question": "How would you describe Sydney?",
             "answerA": "sympathetic", "answerB": "like a person", "answerC": "cruel"}]
    records = converters.siqa_jsonl(_jsonl(rows), "3\n1\n", "dev.jsonl")
    assert [r["label"] for r in records] == [2, 0]
    assert records[0]["choices"] == ["make a new plan", "Go home and see Riley", "Find somewhere to go"]
    with pytest.raises(converters.ConversionError, match="2 examples but 1 labels"):
        converters.siqa_jsonl(_jsonl(rows), "3\n", "dev.jsonl")


def test_convert_writes_canonical_xcopa_copa_and_siqa(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for split in ("val", "test"):
        for lang in ("et", "zh"):
            (raw / f"{split}.{lang}.jsonl").write_text(_jsonl(COPA_LINES), encoding="utf-8")
    layout = {"dev": ["et", "zh"], "test": ["et", "zh"]}
    counts = converters.convert("xcopa", raw, layout, tmp_path / "data")
    assert counts == {"et/dev": 3, "zh/dev": 3, "et/test": 3, "zh/test": 3}
    assert formats.read_dataset(tmp_path / "data", "xcopa", "zh", "test")[1]["label"] == 1
    with zipfile.ZipFile(raw / "COPA.zip", "w") as z:
        z.writestr("COPA/train.jsonl", _jsonl(COPA_LINES))
        z.writestr("COPA/val.jsonl", _jsonl(COPA_LINES[:2]))
    assert converters.convert("copa", raw, {"train": ["en"], "dev": ["en"]}, tmp_path / "data") == \
        {"en/train": 3, "en/dev": 2}
    siqa = {"context": "c", "question": "q", "answerA": "a", "answerB": "b", "answerC": "c"}
    with zipfile.ZipFile(raw / "socialiqa-train-dev.zip", "w") as z:
        for name in ("train", "dev"):
            z.writestr(f"socialiqa-train-dev/{name}.jsonl", _jsonl([siqa, siqa]))
            z.writestr(f"socialiqa-train-dev/{name}-labels.lst", "1\n3\n")
    converters.convert("siqa", raw, {"train": ["en"], "dev": ["en"]}, tmp_path / "data")
    assert [r["label"] for r in formats.read_dataset(tmp_path / "data", "siqa", "en", "dev")] == [0, 2]


def test_xcopa_sources_are_pinned_at_one_commit():
    from xstilts.sources import SOURCES, XCOPA_COMMIT, source_of

    files = SOURCES["xcopa"].files
    assert len(files) == 2 * len(XTREME_R_TASK2LANGS["xcopa"])
    assert all(f.sha256 and len(f.sha256) == 64 and f.size for f in files)
    assert all(f.url.startswith(f"https://raw.githubusercontent.com/cambridgeltl/xcopa/{XCOPA_COMMIT}/data/")
               for f in files)
    assert "/data/qu/test.qu.jsonl" in {f.url[-len("/data/qu/test.qu.jsonl"):] for f in files}
    assert [source_of(d) for d in ("siqa", "copa", "xcopa")] == ["siqa", "copa", "xcopa"]


# ------------------------------------------------------------------------------ scorer


def test_xcopa_predictions_and_labels_score_with_the_xtreme_r_scorer(tmp_path):
    gold = [1, 0, 1, 1]
    for lang in ("et", "qu"):
        formats.write_xtreme_choice(formats.xtreme_file(tmp_path / "labels", "xcopa", lang, "jsonl"), gold)
    formats.write_xtreme_choice(formats.xtreme_file(tmp_path / "pred", "xcopa", "et", "jsonl"), [1, 1, 1, 0])  # 50
    formats.write_xtreme_choice(formats.xtreme_file(tmp_path / "pred", "xcopa", "qu", "jsonl"), [1, 0, 1, 1])  # 100
    report = xtreme.evaluate(tmp_path / "pred", tmp_path / "labels", "xtreme-r", only_available_languages=True)
    assert report["xcopa"]["accuracy"] == {"et": 50.0, "qu": 100.0}
    assert report["xcopa"]["avg_metric"] == 75.0 and report["multi_choice"] == 75.0
    hits = significance.correct("xcopa", tmp_path / "pred/xcopa/test-et.jsonl", tmp_path / "labels/xcopa/test-et.jsonl")
    assert hits.tolist() == [1.0, 0.0, 1.0, 0.0]
    formats.write_xtreme_choice(formats.xtreme_file(tmp_path / "short", "xcopa", "et", "jsonl"), [1])
    with pytest.raises(xtreme.EvaluationError, match="has 1 examples but"):
        significance.correct("xcopa", tmp_path / "short/xcopa/test-et.jsonl", tmp_path / "labels/xcopa/test-et.jsonl")


# ------------------------------------------------------------------------------ embedded benchmark


def test_synthetic_copa_answers_follow_the_action_script(tmp_path):
    layout = {"xcopa": {"test": ["et", "zh"]}, "copa": {"train": ["en"]}, "siqa": {"train": ["en"]}}
    sizes = {"xcopa": {"test": 200}, "copa": {"train": 200}, "siqa": {"train": 90}}
    spec = synthetic.SyntheticSpec(seed=3, layout=layout, sizes=sizes)
    synthetic.generate(spec, tmp_path / "a")
    synthetic.generate(spec, tmp_path / "b")
    for path in sorted((tmp_path / "a").rglob("*.jsonl")):
        assert path.read_bytes() == (tmp_path / "b" / path.relative_to(tmp_path / "a")).read_bytes()
    records = formats.read_dataset(tmp_path / "a", "copa", "en", "train")
    verbs = {v for v, _ in synthetic.ACTIONS}
    for r in records:
        premise = next(w for w in r["context"].split() if w in verbs)
        answer = next(w for w in r["choices"][r["label"]].split() if w in verbs)
        expected = synthetic.SCRIPT[premise] if r["question"] == "What was the effect?" else synthetic.BEFORE[premise]
        assert answer == expected, r
    labels = [r["label"] for r in records]
    assert 0.35 < sum(labels) / len(labels) < 0.65  # no position bias to exploit
    zh = formats.read_dataset(tmp_path / "a", "xcopa", "zh", "test")
    assert len(zh) == 200 and all(len(r["choices"]) == 2 for r in zh)
    assert {r["question"] for r in zh} == {"What was the cause?", "What was the effect?"}
    assert all(len(r["choices"]) == 3 for r in formats.read_dataset(tmp_path / "a", "siqa", "en", "train"))


# ------------------------------------------------------------------------------ config and DAG


def test_plan_of_the_demo_and_paper_presets(raw_config):
    grid = Plan(resolve(copy.deepcopy(raw_config)))
    demo = grid.for_model("xlmr-demo")
    assert grid.reasoning_complete and grid.for_model("qwen2-demo").reasoning_targets == ["xnli", "xcopa"]
    assert "xcopa" in demo.evaluated_targets and "xcopa" not in demo.targets  # the matrix keeps XTREME's nine
    assert demo.target_languages("xcopa") == ["et", "id", "tr", "zh"]
    assert demo.reasoning_complete and demo.reasoning_targets == ["xnli", "xcopa"]
    assert [s["task"] for s in demo.target_job("xcopa")["stages"]] == ["siqa"]
    assert "stages" not in demo.target_job("xnli")
    assert {"et", "id", "tr"} <= set(demo.corpus_languages())
    config = copy.deepcopy(raw_config)
    config["preset"] = "paper"
    paper = Plan(resolve(config)).for_model("xlmr-large")
    assert paper.reasoning_job()["languages"] == {t: XTREME_R_TASK2LANGS[t] for t in ("xnli", "xcopa")}
    hp = paper.target_job("xcopa")
    assert [(s["hparams"]["learning_rate"], s["hparams"]["batch_size"] * s["hparams"]["grad_accum"],
             s["hparams"]["epochs"]) for s in hp["stages"]] == [(3e-5, 32, 5)]
    config["targets"] = {"xcopa_recipe": "copa"}
    assert "stages" not in Plan(resolve(config)).for_model("xlmr-large").target_job("xcopa")


def test_config_errors_of_the_reasoning_keys(raw_config):
    config = copy.deepcopy(raw_config)
    config["targets"] = {"xcopa_recipe": "siqa_only"}
    with pytest.raises(ConfigError, match=r"'siqa_only' is not allowed .*choose one of: siqa_copa, copa"):
        resolve(config)
    config = copy.deepcopy(raw_config)
    config["reasoning"] = {"bootstrap": {"resample": 10}}
    with pytest.raises(ConfigError, match=r"unknown key 'resample' \(did you mean 'resamples'\?\)"):
        resolve(config)
    config = copy.deepcopy(raw_config)
    config["targets"] = {"languages": {"xcopa": ["de"]}}
    with pytest.raises(ConfigError, match="targets.languages.xcopa: 'de' is not a language of xcopa; its languages are et"):
        resolve(config)
    config = copy.deepcopy(raw_config)
    config["languages"] = ["en", "de"]  # no XCOPA language, and no per-target filter for XCOPA
    config["presets"]["demo"]["targets"]["languages"] = {}
    config["targets"] = {"tasks": ["xnli", "xcopa"]}
    with pytest.raises(ConfigError, match="target xcopa .* no language left after the filter languages"):
        resolve(config)


def test_dry_run_of_the_reasoning_target_on_the_demo(tmp_path):
    counts = job_counts(snakemake("-n", "--directory", str(tmp_path), "reasoning").stdout)
    assert counts == {
        # 12 intermediate datasets, MNLI's translation, XNLI, SIQA, COPA, XCOPA, the MLM corpus:
        # nothing else; the model jobs once for each of the demo's two models, whose 13 rows
        # (the 11 of the matrix, mnli+mlm and mnli-translated) are all tested. Each model tokenises
        # those datasets but the corpus once (17), and the corpus's LM and dev lines (2).
        "make_demo_dataset": 18, "write_labels": 2, "train_tokenizer": 2, "pretrain_mlm": 2,
        "tokenize_dataset": 2 * (17 + 2),
        "finetune_intermediate": 2 * 12, "finetune_target": 2 * 13 * 2, "predict_target": 2 * 13 * 2,
        "bootstrap_reasoning_gains": 2, "make_reasoning_figure": 2, "make_reasoning_section": 2, "reasoning": 1,
        "total": 18 + 2 + 2 * (1 + 1 + 19 + 12 + 26 + 26 + 3) + 1,
    }


def test_dry_run_of_the_reasoning_target_on_real_data(tmp_path):
    counts = job_counts(snakemake("-n", "reasoning", "--directory", str(tmp_path), "--config", "preset=paper").stdout)
    assert counts["finetune_target"] == 16 * 2 * 3  # 16 rows (5 of them variants), XNLI and XCOPA, three seeds
    # Nine intermediate sources (ANLI R1-R3 share one archive, CCGbank is manual), the two
    # translations, XNLI, SIQA, COPA, XCOPA; the +MLM rows' corpus from the hub, one job per language.
    assert counts["download_source"] == 9 + 2 + 4 and counts["download_corpus"] == 42
    assert counts["convert_dataset"] == 16 + 3 and counts["write_labels"] == 2
    assert "score_run" not in counts and "embed_sentences" not in counts


def test_the_smoke_grid_does_not_build_the_analysis(tmp_path):
    counts = job_counts(snakemake("-n", "--directory", str(tmp_path), "--configfile",
                                  str(ROOT / "tests/configs/smoke.yaml")).stdout)
    assert "bootstrap_reasoning_gains" not in counts and counts["write_labels"] == 5


# ------------------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def reasoning_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reasoning")
    snakemake("--configfile", str(REASONING), "--cores", "2", "--directory", str(workdir), "reasoning")
    return workdir


def _accuracy(pred: Path, gold: Path, task: str) -> float:
    if task == "xcopa":
        p = [json.loads(line)["label"] for line in pred.read_text().splitlines()]
        g = [json.loads(line)["label"] for line in gold.read_text().splitlines()]
    else:
        p, g = pred.read_text().splitlines(), gold.read_text().splitlines()
    assert len(p) == len(g)
    return 100.0 * sum(a == b for a, b in zip(p, g)) / len(g)


@pytest.mark.workflow
def test_the_significance_table_matches_gains_recomputed_from_the_files(reasoning_run):
    table = pd.read_csv(reasoning_run / "results/reasoning/tables/xlmr-reasoning/reasoning_significance.csv")
    assert list(zip(table["target"], table["itask"])) == [
        ("xnli", "mnli"), ("xcopa", "mnli"), ("avg", "mnli"),
        ("xnli", "hellaswag"), ("xcopa", "hellaswag"), ("avg", "hellaswag")]
    langs = {"xnli": ["de", "en", "zh"], "xcopa": ["et", "tr", "zh"]}
    run = reasoning_run / "results/reasoning/target/xlmr-reasoning"

    def score(encoder: str, target: str, seed: int) -> float:
        return sum(_accuracy(run / f"{encoder}/{target}/seed{seed}/predictions/{target}/test-{lang}."
                             f"{'jsonl' if target == 'xcopa' else 'tsv'}",
                             reasoning_run / f"results/reasoning/labels/{target}/test-{lang}."
                             f"{'jsonl' if target == 'xcopa' else 'tsv'}", target)
                   for lang in langs[target]) / len(langs[target])

    for _, row in table[table["target"] != "avg"].iterrows():
        gains = [score(row["itask"], row["target"], s) - score("baseline", row["target"], s) for s in (0, 1)]
        assert row["gain"] == pytest.approx(sum(gains) / 2, abs=1e-3)
        assert row["gain_sd"] == pytest.approx(abs(gains[0] - gains[1]) / math.sqrt(2), abs=1e-3)
        assert row["baseline"] == pytest.approx((score("baseline", row["target"], 0)
                                                 + score("baseline", row["target"], 1)) / 2, abs=1e-3)
        assert row["ci_low"] <= row["gain"] + 1e-9 and row["gain"] - 1e-9 <= row["ci_high"]
        assert row["verdict"] == ("helps" if row["ci_low"] > 0 else "hurts" if row["ci_high"] < 0 else "n.s.")
        assert row["improved"] + row["hurt"] <= row["languages"] == 3
    for itask in ("mnli", "hellaswag"):
        rows = table[table["itask"] == itask].set_index("target")
        # The CSV keeps four decimals.
        assert rows.loc["avg", "gain"] == pytest.approx((rows.loc["xnli", "gain"] + rows.loc["xcopa", "gain"]) / 2,
                                                        abs=1e-3)
    per_language = pd.read_csv(reasoning_run / "results/reasoning/tables/xlmr-reasoning/reasoning_languages.csv")
    assert len(per_language) == 2 * (3 + 3)
    md = (reasoning_run / "results/reasoning/tables/xlmr-reasoning/reasoning_significance.md").read_text()
    assert "95% CI" in md and "HellaSwag" in md and "Reasoning avg." in md
    assert (reasoning_run / "results/reasoning/figures/xlmr-reasoning/reasoning_gains.pdf").stat().st_size > 0


@pytest.mark.workflow
def test_the_xtreme_r_scorer_gives_the_same_reasoning_scores(reasoning_run, tmp_path):
    # One XTREME-R submission folder per run: XNLI and XCOPA predictions side by side.
    record = json.loads((reasoning_run / "results/reasoning/reasoning/xlmr-reasoning/significance.json").read_text())
    run = reasoning_run / "results/reasoning/target/xlmr-reasoning/mnli"
    folder = tmp_path / "submission"
    folder.mkdir()
    os.symlink(run / "xnli/seed1/predictions/xnli", folder / "xnli")
    os.symlink(run / "xcopa/seed1/predictions/xcopa", folder / "xcopa")
    out = tmp_path / "out.json"
    proc = subprocess.run(["xstilts", "evaluate", "--prediction_folder", str(folder), "--label_folder",
                           str(reasoning_run / "results/reasoning/labels"), "--xtreme_version", "xtreme-r",
                           "--only_available_languages", "--output_file", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(out.read_text())
    assert report["classification"] == pytest.approx((report["xnli"]["avg_accuracy"] + report["xcopa"]["avg_accuracy"]) / 2)
    seed0 = json.loads((run / "xcopa/seed0/metrics.json").read_text())
    assert set(seed0["stages"]) == {"siqa"}  # XCOPA's recipe ran SIQA first, in the same job
    for target in ("xnli", "xcopa"):
        assert list(report[target]["accuracy"]) == record["languages"][target]


@pytest.mark.workflow
def test_the_paper_section_quotes_only_macros(reasoning_run):
    body = (reasoning_run / "results/reasoning/paper/xlmr-reasoning/generated/reasoning.tex").read_text()
    macros = (reasoning_run / "results/reasoning/paper/xlmr-reasoning/generated/reasoning_macros.tex").read_text()
    assert "Caveat: embedded demo" in body
    assert not any(ch.isdigit() for ch in body.split("\n", 2)[2].replace("XTREME-R", ""))  # numbers are macros
    defined = set(re.findall(r"\\newcommand\{(\\Reason[A-Za-z]+)\}", macros))
    used = set(re.findall(r"\\Reason[A-Za-z]+", body))
    assert used and used <= defined
    assert "\\newcommand{\\ReasonSeeds}{2}" in macros

