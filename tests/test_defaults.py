"""One source of defaults: the schema. resolve() returns a complete config; code never supplies
a default of its own (no `.get(key, default)` on the config's records)."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT
from xstilts import config as config_module
from xstilts.config import resolve, schema
from xstilts.plan import Plan

_NO_DEFAULT = object()


class StrictRecord(dict):
    """A config record whose `.get(key, default)` is an error: code must read `[key]`."""

    def __init__(self, items, where):
        super().__init__(items)
        self.where = where

    def get(self, key, default=_NO_DEFAULT):
        if default is not _NO_DEFAULT:
            raise AssertionError(f"code supplies its own default for {self.where}.{key} ({default!r}); "
                                 "put the default in the schema and read the key with [ ]")
        return super().get(key)


def strict(value, node, root, where="config"):
    """Wrap every record (an object with named properties only) of a resolved config in StrictRecord.

    Maps (objects with `additionalProperties` entries: task_hparams, sizes, per-target languages)
    are looked up by names the user chooses, so `.get` on them is fine."""
    node = config_module._resolve_ref(node, root)
    if isinstance(value, list) and isinstance(node.get("items"), dict):
        return [strict(v, node["items"], root, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict) and "properties" in node and not isinstance(node.get("additionalProperties"), dict):
        return StrictRecord({k: strict(v, node["properties"].get(k, {}), root, f"{where}.{k}")
                             for k, v in value.items()}, where)
    return value


def experiments():
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    out = {name: resolve({**copy.deepcopy(raw), "preset": name}) for name in raw["presets"]}
    for extra in sorted((ROOT / "tests" / "configs").glob("*.yaml")):
        merged = config_module.deep_merge(raw, yaml.safe_load(extra.read_text()))
        out[extra.stem] = resolve(merged)
    return out


EXPERIMENTS = experiments()


def test_resolve_fills_every_default_that_code_used_to_supply():
    demo = EXPERIMENTS["demo"]
    # The drift of issue 12: the schema listed 11 hub file patterns, plan.py 4. A preset that names
    # no files gets the schema's list, in the config and in the download job.
    raw = yaml.safe_load((ROOT / "config.yaml").read_text())
    del raw["presets"]["paper"]["models"][0]["hub"]["files"]
    paper = resolve({**raw, "preset": "paper"})
    files = paper["models"][0]["hub"]["files"]
    assert Plan(paper).for_model("xlmr-large").model_job()["files"] == files == schema()["$defs"]["model"][
        "properties"]["hub"]["properties"]["files"]["default"]
    assert len(files) == 11 and "tokenizer_config.json" in files
    assert demo["retrieval"]["bucc"] == {"k": 4, "margin": "ratio"}
    assert demo["retrieval"]["tatoeba"] == {"direction": "xx2en"}
    assert demo["reasoning"]["bootstrap"] == {"resamples": 1000, "confidence": 0.95, "seed": 0}
    assert demo["targets"]["hparams"]["doc_stride"] == 128  # not in config.yaml: the schema's
    assert demo["run"] == "demo" and EXPERIMENTS["smoke"]["run"] == "smoke"


def _missing_defaults(value, node, root, where):
    node = config_module._resolve_ref(node, root)
    if not isinstance(value, dict) or "properties" not in node:
        return []
    missing = []
    for key, prop in node["properties"].items():
        prop = config_module._resolve_ref(prop, root)
        if key not in value:
            if "default" in prop:
                missing.append(f"{where}.{key}")
        else:
            missing += _missing_defaults(value[key], prop, root, f"{where}.{key}")
    return missing


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_the_resolved_config_is_complete(name):
    sch = schema()
    exp = {k: v for k, v in EXPERIMENTS[name].items() if k not in ("preset", "run")}
    assert _missing_defaults(exp, sch["$defs"]["experiment"], sch, "config") == []


def _exercise(plan: Plan) -> int:
    """Call every job-settings method of the plan for every value of its axes; return the calls."""
    calls = 0
    for name in ("intermediate_tasks", "itasks", "encoders", "evaluated_targets", "targets", "trained_targets",
                 "retrieval_targets", "trainings", "seeds", "reasoning_targets", "reasoning_complete"):
        getattr(plan, name)
        calls += 1
    plan.corpus_languages()
    for dataset in plan.datasets():
        plan.layout(dataset)
        if plan.exp["data"]["source"] == "synthetic":
            plan.data_job(dataset)
            plan.synthetic_sizes(dataset)
        else:
            plan.convert_job(dataset)
        calls += 1
    if plan.exp["data"]["source"] == "download":
        for source in plan.download_sources():
            plan.download_job(source)
            calls += 1
    for name in plan.models:
        model = plan.for_model(name)
        if model.exp["model"]["source"] == "pretrain":
            model.pretrain_job()
        else:
            model.model_job()
        for itask in plan.itasks:
            model.intermediate_job(itask)
            calls += 1
        for training in plan.trainings:
            model.target_job(training)
            model.predict_job(training)
            calls += 1
        if plan.retrieval_targets:
            model.retrieval_job()
    for target in plan.evaluated_targets:
        plan.target_languages(target)
    if plan.reasoning_targets:
        plan.reasoning_job()
    if "bucc2018" in plan.targets:
        plan.bucc_job()
    if "tatoeba" in plan.targets:
        plan.tatoeba_job()
    return calls + 1


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_no_code_supplies_a_default_of_its_own(name):
    sch = schema()
    exp = strict(EXPERIMENTS[name], {"$defs": sch["$defs"], **sch["$defs"]["experiment"]}, sch)
    assert isinstance(exp["retrieval"], StrictRecord)
    assert _exercise(Plan(exp)) > 10


def test_the_strict_record_catches_a_code_default():
    sch = schema()
    exp = strict(EXPERIMENTS["demo"], {"$defs": sch["$defs"], **sch["$defs"]["experiment"]}, sch)
    with pytest.raises(AssertionError, match=r"config.retrieval.bucc.k \(4\)"):
        exp["retrieval"]["bucc"].get("k", 4)
    assert exp["retrieval"]["bucc"]["k"] == 4


# The rules cannot be run with a strict config, so their source is checked: every value they read
# from the resolved config (EXP) is read with [ ].
@pytest.mark.parametrize("path", sorted((ROOT / "rules").glob("*.smk")) + [ROOT / "Snakefile"], ids=lambda p: p.name)
def test_rules_read_the_config_without_defaults(path: Path):
    offending = [line.strip() for line in path.read_text().splitlines()
                 if re.search(r"\b(EXP|config)\b[^#\n]*\.get\(", line)]
    assert offending == []


def test_config_and_plan_import_in_one_direction():
    # plan builds on config; config never imports plan (the old import circle).
    source = (ROOT / "scripts/xstilts/config.py").read_text()
    assert "xstilts.plan" not in source
    assert "from xstilts.config import" in (ROOT / "scripts/xstilts/plan.py").read_text()
