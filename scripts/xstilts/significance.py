"""Is a gain real? Paired bootstrap over test examples for intermediate task vs baseline.

The question: does English intermediate-task training improve zero-shot cross-lingual
reasoning (XTREME-R's XNLI and XCOPA)? For every intermediate task, every reasoning target and
every language, compared with the baseline encoder on the *same* test examples:

* **gain over seeds**: per seed, the target's score (mean over languages of accuracy, XTREME's
  task score) of the intermediate row minus the baseline's, both from the same seed; reported
  as mean and sample standard deviation over seeds (the spread of training randomness);
* **paired bootstrap** over test examples, seeds pooled: each example's score is its accuracy
  averaged over seeds, and the difference between the two systems is resampled example by
  example (the same resampled examples for both: paired). Per language the interval is the
  percentile interval of the resampled mean difference; for the target score, each language is
  resampled on its own (stratified) and the resampled gains are averaged over languages, as the
  score is. The resamples of a (target, language) are drawn from a generator seeded by the
  configured seed and the names only, so every intermediate task sees the same resamples;
* **languages improved vs hurt**: point gains above / below zero, and how many of them have an
  interval that excludes zero.

Intervals are per comparison, not corrected for the number of comparisons made.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: Resamples drawn at a time (bounds memory: chunk x examples indices).
_CHUNK = 250


def correct(task: str, prediction_file: str | Path, label_file: str | Path) -> np.ndarray:
    """Per-example correctness (0/1) of one language's predictions, read by the XTREME scorer.

    Only accuracy tasks (XNLI, XCOPA, PAWS-X, Tatoeba) have per-example scores that average to
    the task metric; the scorer's own accuracy is checked against their mean.
    """
    from xstilts import xtreme

    fmt = xtreme.TASKS[task]
    predictions, labels = fmt.read_predictions(str(prediction_file)), fmt.read_labels(str(label_file))
    if len(predictions) != len(labels):
        raise xtreme.EvaluationError(f"{prediction_file} has {len(predictions)} examples but {label_file} has "
                                     f"{len(labels)}")
    hits = np.array([p == g for p, g in zip(predictions, labels)], dtype=float)
    official = xtreme.score_language(task, prediction_file, label_file, Path(label_file).stem[len("test-"):])
    if "accuracy" not in official or not math.isclose(official["accuracy"], 100.0 * hits.mean(), abs_tol=1e-9):
        raise ValueError(f"{task}: per-example scores of {prediction_file} do not reproduce the scorer's accuracy")
    return hits


def _rng(seed: int, *names: str) -> np.random.Generator:
    return np.random.default_rng([seed, *(zlib.crc32(n.encode("utf-8")) for n in names)])


def resampled_means(diff: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``diff`` over ``resamples`` bootstrap resamples of its examples (with replacement)."""
    n = len(diff)
    out = np.empty(resamples)
    for start in range(0, resamples, _CHUNK):
        stop = min(resamples, start + _CHUNK)
        out[start:stop] = diff[rng.integers(0, n, size=(stop - start, n))].mean(axis=1)
    return out


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap samples."""
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail])
    return float(low), float(high)


def p_value(samples: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "no difference": twice the smaller tail beyond zero."""
    return float(min(1.0, 2.0 * min(np.mean(samples <= 0), np.mean(samples >= 0))))


def verdict(low: float, high: float) -> str:
    """helps / hurts when the interval excludes zero, else n.s."""
    return "helps" if low > 0 else "hurts" if high < 0 else "n.s."


@dataclass(frozen=True)
class Comparison:
    """One intermediate task vs the baseline on one target (or on the average of targets)."""

    target: str
    itask: str
    baseline: float  # score, mean over seeds (points)
    system: float
    gain: float  # mean over seeds of per-seed gains (= system - baseline)
    gain_sd: float  # sample sd of per-seed gains (nan with one seed)
    low: float
    high: float
    p: float
    languages: dict[str, dict[str, float]]  # lang -> baseline, system, gain, low, high, p

    @property
    def verdict(self) -> str:
        return verdict(self.low, self.high)

    def counts(self) -> dict[str, int]:
        gains = [v["gain"] for v in self.languages.values()]
        return {
            "improved": sum(g > 0 for g in gains),
            "hurt": sum(g < 0 for g in gains),
            "sig_improved": sum(verdict(v["low"], v["high"]) == "helps" for v in self.languages.values()),
            "sig_hurt": sum(verdict(v["low"], v["high"]) == "hurts" for v in self.languages.values()),
        }

    def hurt_languages(self, significant: bool) -> list[str]:
        return [lang for lang, v in self.languages.items()
                if (verdict(v["low"], v["high"]) == "hurts" if significant else v["gain"] < 0)]


def _mean_sd(values: list[float]) -> tuple[float, float]:
    mean = math.fsum(values) / len(values)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else float("nan")
    return mean, sd


def compare(system: dict[str, np.ndarray], baseline: dict[str, np.ndarray], target: str, itask: str,
            resamples: int, confidence: float, seed: int) -> tuple[Comparison, np.ndarray]:
    """One intermediate task vs the baseline on one target.

    ``system`` and ``baseline`` map each language to an array (seeds x examples) of per-example
    scores (0/1), seeds in the same order on both sides. Returns the comparison (points) and
    the bootstrap samples of the target-level gain (for averages over targets).
    """
    if list(system) != list(baseline):
        raise ValueError(f"{target}: languages differ between {itask} and the baseline")
    languages: dict[str, dict[str, float]] = {}
    per_lang_samples = []
    for lang in system:
        sys_scores, base_scores = np.asarray(system[lang], float), np.asarray(baseline[lang], float)
        if sys_scores.shape != base_scores.shape or sys_scores.ndim != 2:
            raise ValueError(f"{target}/{lang}: expected two (seeds x examples) arrays of one shape, got "
                             f"{sys_scores.shape} and {base_scores.shape}")
        diff = 100.0 * (sys_scores.mean(axis=0) - base_scores.mean(axis=0))
        samples = resampled_means(diff, resamples, _rng(seed, target, lang))
        per_lang_samples.append(samples)
        low, high = interval(samples, confidence)
        languages[lang] = {"baseline": 100.0 * float(base_scores.mean()), "system": 100.0 * float(sys_scores.mean()),
                           "gain": float(diff.mean()), "low": low, "high": high, "p": p_value(samples)}
    n_seeds = next(iter(system.values())).shape[0]
    per_seed = [
        100.0 * float(np.mean([system[lang][s].mean() - baseline[lang][s].mean() for lang in system]))
        for s in range(n_seeds)
    ]
    gain, gain_sd = _mean_sd(per_seed)
    samples = np.mean(per_lang_samples, axis=0)
    low, high = interval(samples, confidence)
    comparison = Comparison(
        target, itask,
        baseline=float(np.mean([v["baseline"] for v in languages.values()])),
        system=float(np.mean([v["system"] for v in languages.values()])),
        gain=gain, gain_sd=gain_sd, low=low, high=high, p=p_value(samples), languages=languages,
    )
    return comparison, samples


def average(comparisons: list[Comparison], samples: list[np.ndarray], confidence: float,
            per_seed_gains: list[list[float]], name: str = "avg") -> Comparison:
    """The mean over targets of several comparisons of one intermediate task (resampled jointly)."""
    joint = np.mean(samples, axis=0)
    low, high = interval(joint, confidence)
    gain, gain_sd = _mean_sd([float(np.mean(g)) for g in zip(*per_seed_gains)])
    return Comparison(name, comparisons[0].itask,
                      baseline=float(np.mean([c.baseline for c in comparisons])),
                      system=float(np.mean([c.system for c in comparisons])),
                      gain=gain, gain_sd=gain_sd, low=low, high=high, p=p_value(joint), languages={})


def analyse(job: dict[str, Any], label_dir: str | Path) -> dict[str, Any]:
    """The whole analysis of a run (``Plan.reasoning_job``): every comparison, as plain data."""
    from xstilts import xtreme
    from xstilts.tasks import BASELINE

    boot = job["bootstrap"]
    seeds = [str(s) for s in job["seeds"]]
    scores: dict[str, dict[str, dict[str, np.ndarray]]] = {}  # encoder -> target -> lang -> seeds x n
    official: dict[str, dict[str, dict[str, float]]] = {}  # encoder -> target -> lang -> mean accuracy
    for encoder in job["encoders"]:
        scores[encoder] = {}
        for target in job["targets"]:
            langs = job["languages"][target]
            scores[encoder][target] = {
                lang: np.stack([correct(target, xtreme.task_file(job["folders"][encoder][s][target], target, lang),
                                        xtreme.task_file(label_dir, target, lang)) for s in seeds])
                for lang in langs
            }
            # The XTREME scorer's task entry (XTREME-R language list of the run) for each seed.
            entries = [xtreme.score_task(target, job["folders"][encoder][s][target], label_dir, langs) for s in seeds]
            official.setdefault(encoder, {})[target] = {
                lang: float(np.mean([e["accuracy"][lang] for e in entries])) for lang in langs}
    comparisons: list[Comparison] = []
    for itask in [e for e in job["encoders"] if e != BASELINE]:
        mine, samples, per_seed = [], [], []
        for target in job["targets"]:
            c, s = compare(scores[itask][target], scores[BASELINE][target], target, itask,
                           boot["resamples"], boot["confidence"], boot["seed"])
            mine.append(c)
            samples.append(s)
            per_seed.append([100.0 * float(np.mean([scores[itask][target][lang][k].mean()
                                                    - scores[BASELINE][target][lang][k].mean()
                                                    for lang in scores[itask][target]]))
                             for k in range(len(seeds))])
        comparisons += mine
        if len(mine) > 1:
            comparisons.append(average(mine, samples, boot["confidence"], per_seed))
    return {"targets": job["targets"], "languages": job["languages"], "seeds": job["seeds"], "bootstrap": boot,
            "official": official, "comparisons": [as_dict(c) for c in comparisons]}


def as_dict(c: Comparison) -> dict[str, Any]:
    return {"target": c.target, "itask": c.itask, "baseline": c.baseline, "system": c.system, "gain": c.gain,
            "gain_sd": None if math.isnan(c.gain_sd) else c.gain_sd, "low": c.low, "high": c.high, "p": c.p,
            "verdict": c.verdict, **({"counts": c.counts(), "hurt_languages": c.hurt_languages(False),
                                      "significantly_hurt_languages": c.hurt_languages(True)} if c.languages else {}),
            "languages": c.languages}
