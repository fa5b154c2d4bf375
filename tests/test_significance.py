"""The paired bootstrap of the reasoning analysis on cases with a known answer."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xstilts import significance
from xstilts.significance import compare


def _scores(n: int, correct: range | list[int], seeds: int = 1) -> np.ndarray:
    row = np.zeros(n)
    row[list(correct)] = 1.0
    return np.tile(row, (seeds, 1))


def test_identical_systems_give_an_interval_of_zero():
    base = {"de": _scores(400, range(0, 400, 3), seeds=2)}
    c, samples = compare(base, {k: v.copy() for k, v in base.items()}, "xnli", "mnli", 1000, 0.95, 0)
    assert c.gain == 0 and c.low == 0 and c.high == 0 and c.p == 1.0
    assert c.verdict == "n.s." and c.low <= 0 <= c.high
    assert c.counts() == {"improved": 0, "hurt": 0, "sig_improved": 0, "sig_hurt": 0}
    assert np.all(samples == 0)


def test_a_systematic_ten_point_gain_excludes_zero_with_the_normal_width():
    n = 1000
    base = {"de": _scores(n, range(0, 500))}
    system = {"de": _scores(n, range(0, 600))}  # right on the same 500 and 100 more: +10 points
    c, _ = compare(system, base, "xnli", "mnli", 2000, 0.95, 0)
    assert c.gain == pytest.approx(10.0) and c.baseline == pytest.approx(50.0) and c.system == pytest.approx(60.0)
    assert c.verdict == "helps" and c.low > 0 and c.low < 10 < c.high
    # Per-example differences are 100 on 10 % of the examples, 0 elsewhere: standard error
    # 100 * sqrt(0.1 * 0.9 / n) = 0.949, so the 95 % interval is about 10 +- 1.86.
    se = 100 * math.sqrt(0.1 * 0.9 / n)
    assert c.low == pytest.approx(10 - 1.96 * se, abs=0.35)
    assert c.high == pytest.approx(10 + 1.96 * se, abs=0.35)
    assert c.p == 0.0  # no resample at or below zero


def test_a_systematic_loss_is_reported_as_hurting_that_language():
    base = {"de": _scores(500, range(0, 300)), "zh": _scores(500, range(0, 300))}
    system = {"de": _scores(500, range(0, 250)), "zh": _scores(500, range(0, 300))}
    c, _ = compare(system, base, "xcopa", "qqp", 1000, 0.95, 0)
    assert c.languages["de"]["gain"] == pytest.approx(-10.0) and c.languages["zh"]["gain"] == 0
    assert c.gain == pytest.approx(-5.0)  # the target score is the mean over languages
    assert c.counts() == {"improved": 0, "hurt": 1, "sig_improved": 0, "sig_hurt": 1}
    assert c.hurt_languages(significant=True) == ["de"] and c.verdict == "hurts"


def test_gain_over_seeds_has_mean_and_sample_sd_of_per_seed_gains():
    n = 100
    base = {"de": np.stack([_scores(n, range(0, 50))[0], _scores(n, range(0, 50))[0]])}
    # Seed 0 gains 8 points, seed 1 gains 12.
    system = {"de": np.stack([_scores(n, range(0, 58))[0], _scores(n, range(0, 62))[0]])}
    c, _ = compare(system, base, "xnli", "mnli", 500, 0.95, 0)
    assert c.gain == pytest.approx(10.0)
    assert c.gain_sd == pytest.approx(math.sqrt(((8 - 10) ** 2 + (12 - 10) ** 2) / 1))
    single, _ = compare({"de": system["de"][:1]}, {"de": base["de"][:1]}, "xnli", "mnli", 500, 0.95, 0)
    assert single.gain == pytest.approx(8.0) and math.isnan(single.gain_sd)


def test_resamples_are_paired_and_the_same_for_every_intermediate_task():
    rng = np.random.default_rng(1)
    base = {"de": (rng.random((1, 300)) < 0.5).astype(float)}
    a = {"de": (rng.random((1, 300)) < 0.6).astype(float)}
    _, first = compare(a, base, "xnli", "mnli", 300, 0.95, 4)
    _, again = compare(a, base, "xnli", "qqp", 300, 0.95, 4)
    assert np.array_equal(first, again)  # seeded by target and language only
    _, other_seed = compare(a, base, "xnli", "mnli", 300, 0.95, 5)
    assert not np.array_equal(first, other_seed)
    # Paired: shifting both systems by the same examples changes nothing.
    diff = 100 * (a["de"].mean(0) - base["de"].mean(0))
    rng2 = significance._rng(4, "xnli", "de")
    assert np.allclose(first, significance.resampled_means(diff, 300, rng2))


def test_average_over_targets_resamples_jointly():
    base = {"de": _scores(400, range(0, 200))}
    up = {"de": _scores(400, range(0, 240))}  # +10
    c1, s1 = compare(up, base, "xnli", "mnli", 800, 0.95, 0)
    c2, s2 = compare(base, {"de": base["de"].copy()}, "xcopa", "mnli", 800, 0.95, 0)  # 0
    avg = significance.average([c1, c2], [s1, s2], 0.95, [[10.0], [0.0]])
    assert avg.gain == pytest.approx(5.0) and avg.target == "avg"
    assert avg.low == pytest.approx(c1.low / 2) and avg.high == pytest.approx(c1.high / 2)


def test_shapes_and_languages_must_match():
    with pytest.raises(ValueError, match="languages differ"):
        compare({"de": _scores(5, [0])}, {"fr": _scores(5, [0])}, "xnli", "mnli", 100, 0.95, 0)
    with pytest.raises(ValueError, match="seeds x examples"):
        compare({"de": _scores(5, [0])}, {"de": _scores(6, [0])}, "xnli", "mnli", 100, 0.95, 0)
