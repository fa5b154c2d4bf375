"""Tables from fixture score files with known numbers: means, sds, deltas, formats."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from conftest import ROOT
from xstilts import tables

CAPTIONS = tables.load_captions(ROOT / "paper" / "captions.yaml")


def score_file(tmp_path, encoder, seed, xnli, tydiqa):
    """A score file with XNLI accuracies and TyDiQA EM/F1 per language (en, de)."""
    def avg(d):
        return sum(d.values()) / len(d)

    scores = {
        "xnli": {"accuracy": xnli, "avg_accuracy": avg(xnli), "avg_metric": avg(xnli)},
        "tydiqa": {"f1": tydiqa[0], "exact_match": tydiqa[1], "avg_f1": avg(tydiqa[0]),
                   "avg_exact_match": avg(tydiqa[1]), "avg_metric": (avg(tydiqa[0]) + avg(tydiqa[1])) / 2},
    }
    path = tmp_path / f"{encoder}-{seed}.json"
    path.write_text(json.dumps({"model": "m", "encoder": encoder, "seed": seed, "scores": scores}))
    return str(path)


@pytest.fixture()
def runs(tmp_path):
    files = [
        score_file(tmp_path, "baseline", 0, {"en": 80.0, "de": 60.0}, ({"en": 70.0, "de": 50.0}, {"en": 60.0, "de": 40.0})),
        score_file(tmp_path, "baseline", 1, {"en": 82.0, "de": 62.0}, ({"en": 72.0, "de": 52.0}, {"en": 62.0, "de": 42.0})),
        score_file(tmp_path, "mnli", 0, {"en": 85.0, "de": 70.0}, ({"en": 70.0, "de": 60.0}, {"en": 60.0, "de": 50.0})),
        score_file(tmp_path, "mnli", 1, {"en": 87.0, "de": 74.0}, ({"en": 74.0, "de": 62.0}, {"en": 64.0, "de": 52.0})),
    ]
    return files, tables.load_scores(files)


def test_matrix_means_and_sds(runs):
    _, loaded = runs
    means, sds = tables.matrix(loaded, ["baseline", "mnli"], ["xnli", "tydiqa"], [0, 1])
    # baseline XNLI: seeds average 70 and 72 -> 71; TyDiQA: (EM+F1)/2 per seed 55 and 57 -> 56
    assert means.loc["baseline", "xnli"] == 71.0
    assert means.loc["baseline", "tydiqa"] == 56.0
    assert means.loc["baseline", "avg"] == 63.5
    assert means.loc["mnli", "xnli"] == 79.0  # seeds 77.5 and 80.5
    assert sds.loc["mnli", "xnli"] == pytest.approx(math.sqrt(2 * 1.5**2))
    delta = tables.deltas(means, "baseline")
    assert delta.loc["mnli", "xnli"] == 8.0 and delta.loc["baseline"].abs().sum() == 0


def test_per_target_languages(runs):
    _, loaded = runs
    means, _ = tables.per_target(loaded, ["baseline", "mnli"], "tydiqa", [0, 1])
    assert list(means.columns) == ["en", "de", "avg"]
    assert means.loc["mnli", "de"] == 56.0  # seed 0 (60+50)/2=55, seed 1 (62+52)/2=57
    assert means.loc["mnli", "avg"] == pytest.approx((67.0 + 56.0) / 2)


def test_missing_seed_is_an_error(runs):
    _, loaded = runs
    with pytest.raises(ValueError, match=r"no score file for encoder 'baseline' and seed\(s\) \[2\]"):
        tables.matrix(loaded, ["baseline", "mnli"], ["xnli"], [0, 1, 2])


def test_written_formats(runs, tmp_path):
    files, _ = runs
    record = tables.make_tables(files, ["baseline", "mnli"], ["xnli", "tydiqa"], [0, 1], tmp_path / "t", "baseline", {"preset": "x"},
                                CAPTIONS)
    csv = pd.read_csv(tmp_path / "t/matrix.csv", index_col=0)
    assert csv.loc["mnli", "xnli"] == 79.0 and "xnli_sd" in csv.columns
    md = (tmp_path / "t/matrix.md").read_text()
    assert "|                            MNLI | 79.0 ± 2.1 |" in md
    tex = (tmp_path / "t/matrix_delta.tex").read_text()
    assert r"\toprule" in tex and "+8.0 $\\pm$ 2.1" in tex
    assert set(record["score_files"]) == set(files)
    assert (tmp_path / "t/target_tydiqa.md").read_text().startswith("TyDiQA per language ((EM+F1)/2), mean over 2 seeds.")


def test_single_seed_cells_have_no_sd(runs, tmp_path):
    files, _ = runs
    tables.make_tables(files, ["baseline", "mnli"], ["xnli"], [0], tmp_path / "t", "baseline", {}, CAPTIONS)
    caption, _, table = (tmp_path / "t/matrix.md").read_text().partition("\n\n")
    assert "±" not in table and "mean over 1 seed;" in caption
    assert list(pd.read_csv(tmp_path / "t/matrix.csv", index_col=0).columns) == ["xnli", "avg"]


def test_captions_file_must_be_complete(tmp_path):
    path = tmp_path / "captions.yaml"
    path.write_text("matrix: M\ntypo: T\n")
    with pytest.raises(ValueError, match=r"missing captions \['matrix_delta'.*unknown keys \['typo'\]"):
        tables.load_captions(path)


def test_a_stored_average_that_its_languages_do_not_support_is_an_error(tmp_path):
    path = score_file(tmp_path, "baseline", 0, {"en": 80.0, "de": 60.0}, ({"en": 70.0, "de": 50.0}, {"en": 60.0, "de": 40.0}))
    record = json.loads(open(path).read())
    record["scores"]["xnli"]["avg_metric"] = 99.0  # edited by hand; per-language values say 70.0
    open(path, "w").write(json.dumps(record))
    with pytest.raises(tables.FormatError, match=r"xnli avg_metric is 99.0, but its per-language values average to 70.0"):
        tables.load_scores([path])


def test_tables_use_the_per_language_values(tmp_path):
    # A score file without any stored average still gives the table its average: (80 + 60) / 2.
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"encoder": "baseline", "seed": 0, "scores": {"xnli": {"accuracy": {"en": 80.0, "de": 60.0}}}}))
    means, _ = tables.matrix(tables.load_scores([path]), ["baseline"], ["xnli"], [0])
    assert means.loc["baseline", "xnli"] == 70.0
