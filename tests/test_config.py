"""Config resolution and validation: presets, overrides, and the errors users see."""

from __future__ import annotations

import copy
import os
import re
import shutil

import pytest

import snakemake_server
from conftest import ROOT

from xstilts.config import ConfigError, deep_merge, hparam_defaults, hparams_for, resolve, schema


def test_demo_resolves_with_preset_name(config):
    exp = resolve(config)
    assert exp["preset"] == "demo"
    assert [m["name"] for m in exp["models"]] == ["xlmr-demo", "qwen2-demo"]
    assert len(exp["intermediate"]["tasks"]) == 9
    assert len(exp["targets"]["tasks"]) == 10  # XTREME's nine and XTREME-R's XCOPA


def test_top_level_override_is_deep_merged(config):
    config["seeds"] = [0, 1, 2]
    config["targets"] = {"task_hparams": {"xnli": {"learning_rate": 2.0e-5}}}
    exp = resolve(config)
    assert exp["seeds"] == [0, 1, 2]
    assert hparams_for(exp, "target", "xnli")["learning_rate"] == 2.0e-5
    # the rest of the preset's targets section survives the partial override
    assert exp["targets"]["selection"] == "english_dev"
    assert hparams_for(exp, "target", "xnli")["epochs"] == config["presets"]["demo"]["targets"]["task_hparams"]["xnli"]["epochs"]


def test_hparams_precedence(config):
    config["presets"]["demo"]["targets"]["hparams"] = {"learning_rate": 0.5}
    config["presets"]["demo"]["targets"]["task_hparams"] = {"udpos": {"learning_rate": 0.25}}
    exp = resolve(config)
    assert hparams_for(exp, "target", "udpos")["learning_rate"] == 0.25
    assert hparams_for(exp, "target", "xnli")["learning_rate"] == 0.5
    # unset keys fall back to the schema default
    assert hparams_for(exp, "target", "xnli")["doc_stride"] == hparam_defaults()["doc_stride"] == 128


def test_deep_merge_replaces_lists_and_keeps_siblings():
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    assert deep_merge(base, {"a": {"c": [3]}}) == {"a": {"b": 1, "c": [3]}, "d": 1}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}  # not mutated


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.update(preset="dmo"), "preset 'dmo' is not defined (did you mean 'demo'?)"),
        (lambda c: c.update(intermediate={"hparams": {"lerning_rate": 1}}),
         "unknown key 'lerning_rate' (did you mean 'learning_rate'?) in intermediate.hparams"),
        (lambda c: c.update(targets={"tasks": ["xnli", "bucc"]}), "'bucc' is not allowed (did you mean 'bucc2018'?)"),
        (lambda c: c.update(seeds="0"), "seeds: '0' is not of type 'array'"),
        (lambda c: c.update(foo=1), "unknown key 'foo' in (top level)"),
        (lambda c: c.update(targets={"task_hparams": {"squad_v1": {}}}), "'squad_v1' is not allowed (did you mean 'squad'?)"),
        (lambda c: c.update(languages=["de", "fr"]), "must include 'en'"),
        (lambda c: c["presets"]["demo"]["intermediate"].update(tasks=["mnli", "mnil"]),
         "'mnil' is not allowed (did you mean 'mnli'?)"),
        (lambda c: c["presets"]["demo"]["models"][0]["pretrain"].update(num_attention_heads=5),
         "must be divisible by num_attention_heads"),
        (lambda c: c.update(intermediate={"tasks": ["mnli"]}), "multitask needs at least two"),
    ],
)
def test_errors_name_the_problem(config, mutate, message):
    mutate(config)
    with pytest.raises(ConfigError) as err:
        resolve(config)
    assert message in str(err.value)


def test_every_schema_property_is_described():
    missing = []

    def walk(node, path):
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                if "$ref" not in prop and "description" not in prop:
                    missing.append(f"{path}.{name}")
                walk(prop, f"{path}.{name}")
            for key in ("additionalProperties", "items"):
                if isinstance(node.get(key), dict):
                    walk(node[key], f"{path}[{key}]")
            for name, sub in node.get("$defs", {}).items():
                walk(sub, f"$defs.{name}")

    walk(schema(), "")
    assert missing == []


def test_command_line_strings_are_coerced_by_the_schema(config):
    # `snakemake --config seeds=[0,1,2]` hands over ['0', '1', '2']
    config["seeds"] = ["0", "1", "2"]
    config["targets"] = {"task_hparams": {"xnli": {"learning_rate": "2e-5", "max_steps": "null"}}}
    config["intermediate"] = {"multitask": {"enabled": "false"}}
    exp = resolve(config)
    assert exp["seeds"] == [0, 1, 2]
    assert exp["targets"]["task_hparams"]["xnli"] == {"epochs": 3, "learning_rate": 2e-5, "max_steps": None}
    assert exp["intermediate"]["multitask"]["enabled"] is False
    config["seeds"] = ["zero"]
    with pytest.raises(ConfigError, match="seeds.0: 'zero' is not of type 'integer'"):
        resolve(config)


def test_a_mirror_for_a_file_that_is_not_pinned_is_an_error(raw_config):
    config = copy.deepcopy(raw_config)
    config["preset"] = "paper"
    config["data"] = {"download": {"mirrors": {"xnli-test.tsv": "https://mirror.example/xnli"}}}
    with pytest.raises(ConfigError, match=r"data.download.mirrors: 'xnli-test.tsv' is not a pinned file name"):
        resolve(config)


def test_multitask_rejects_a_member_run_setting_it_would_ignore(config):
    # Multi-task trains every intermediate task with one optimizer: a member's own learning rate
    # cannot be honoured there, so it is an error while the multi-task row is in the grid.
    config["intermediate"] = {"task_hparams": {"qqp": {"learning_rate": 5.0e-4, "epochs": 1}}}
    with pytest.raises(ConfigError) as e:
        resolve(copy.deepcopy(config))
    message = str(e.value)
    assert "intermediate.task_hparams.qqp.learning_rate is 0.0005" in message
    assert "intermediate.hparams.learning_rate (0.002)" in message  # the demo's run-level rate
    assert "single-task qqp run" in message and "intermediate.multitask.enabled: false" in message
    for key, value in (("patience", 3), ("mixed_precision", "bf16"), ("warmup_ratio", 0.5)):
        config["intermediate"] = {"task_hparams": {"mnli": {key: value}}}
        with pytest.raises(ConfigError, match=rf"intermediate\.task_hparams\.mnli\.{key} is"):
            resolve(copy.deepcopy(config))

    # Without the multi-task row the single-task run honours it.
    config["intermediate"] = {"task_hparams": {"qqp": {"learning_rate": 5.0e-4}}, "multitask": {"enabled": False}}
    assert hparams_for(resolve(copy.deepcopy(config)), "intermediate", "qqp")["learning_rate"] == 5.0e-4
    # The same value as the run's, and per-task settings the multi-task run does honour, are fine.
    config["intermediate"] = {"task_hparams": {"qqp": {"learning_rate": 2.0e-3, "epochs": 1, "batch_size": 8,
                                                       "grad_accum": 2, "max_seq_length": 64}}}
    assert hparams_for(resolve(copy.deepcopy(config)), "intermediate", "qqp")["batch_size"] == 8


def test_both_presets_resolve_with_their_multitask_rows(config):
    for preset in ("demo", "paper"):
        config["preset"] = preset
        exp = resolve(copy.deepcopy(config))
        assert exp["intermediate"]["multitask"]["enabled"] is True


# ------------------------------------------------------------------------------------------
# Mistakes that used to pass validation (issue 13)


@pytest.mark.parametrize("override, message", [
    ({"languages": ["en", "de", "xx"]}, r"languages: 'xx' is not a language of any task; known languages: af, ar"),
    ({"targets": {"languages": {"xnli": ["en", "ja"]}}},
     r"targets.languages.xnli: 'ja' is not a language of xnli; its languages are ar, bg, de, el, en, es, fr, hi"),
    ({"languages": "en"}, r"languages: 'en' is not allowed; expected 'all' or a list of language codes \(e.g. \[en, de\]\)"),
    ({"intermediate": {"tasks": [], "multitask": {"enabled": False}}},
     r"intermediate.tasks is empty, .*name at least one intermediate task"),
    ({"targets": {"task_hparams": {"xnli": {"max_seq_length": 512}}}},
     r"targets.task_hparams.xnli.max_seq_length is 512, more than the 256 positions of the model"),
    ({"preset": "paper", "models": [{"name": "xlmr-large", "extends": "xlmr-large", "hub": {"revision": "main"}}]},
     r"model.hub.revision 'main' is not a commit id \(40 hex characters\).*record_revision: true.*model 'xlmr-large'"),
])
def test_config_mistakes_are_errors_before_any_job(config, override, message):
    config.update(override)
    with pytest.raises(ConfigError, match=message):
        resolve(config)


def test_a_branch_revision_passes_when_it_is_to_be_recorded(config):
    config.update({"preset": "paper", "models": [{"name": "xlmr-large", "extends": "xlmr-large",
                                                  "hub": {"revision": "main", "record_revision": True}}]})
    assert resolve(config)["models"][0]["hub"]["revision"] == "main"


# ------------------------------------------------------------------------------------------
# A YAML mistake in a config file names the file, the line and the column (issue 13)


@pytest.mark.parametrize("text, where, problem", [
    ("seeds: [0, 1\ntargets:\n  x: 1\n", "line 2, column 8", "expected ',' or ']', but got ':' (while parsing a flow "
                                                            "sequence at line 1, column 8)"),
    ("seeds: [0]\n\trun: a\n", "line 2, column 1", "found character '\\t' that cannot start any token (YAML indents "
                                                   "with spaces, never tabs)"),
    ("targets:\n  tasks: [xnli]\n  tasks: [udpos]\n", "line 3, column 3",
     "duplicate key 'tasks' (first at line 2); only the last would count"),
    ("run: 'a\n", "line 2, column 1", "found unexpected end of stream"),
])
def test_a_yaml_mistake_names_file_line_and_column(tmp_path, text, where, problem):
    from xstilts.config import check_yaml_file

    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        check_yaml_file(path)
    first, *shown = str(error.value).split("\n")
    assert first.startswith(f"{path} {where}: {problem}")
    line, column = (int(n) for n in re.match(r"line (\d+), column (\d+)", where).groups())
    if line <= len(text.splitlines()):  # the offending line, with a caret under the column
        assert shown[0].strip() == f"{line} | {text.splitlines()[line - 1]}".strip()
        assert shown[1].index("^") - shown[1].index("|") - 2 == column - 1


def test_the_shipped_config_files_have_no_yaml_mistakes():
    from xstilts.config import check_yaml_file

    for path in [ROOT / "config.yaml", *sorted((ROOT / "tests" / "configs").glob("*.yaml"))]:
        check_yaml_file(path)


def _snakefile_copy(tmp_path):
    copy = tmp_path / "workflow"
    copy.mkdir()
    shutil.copy(ROOT / "Snakefile", copy)
    shutil.copy(ROOT / "config.yaml", copy)
    shutil.copytree(ROOT / "scripts", copy / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _dry_run(copy, *args):
    proc = snakemake_server.run(["-s", str(copy / "Snakefile"), "-n", "--directory", str(copy.parent / "run"), *args],
                                cwd=os.getcwd(), env={**os.environ, "HF_HUB_OFFLINE": "1"}, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_syntax_error_in_config_yaml_stops_the_workflow_naming_file_and_line(tmp_path):
    copy = _snakefile_copy(tmp_path)
    config = copy / "config.yaml"
    lines = config.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("preset:"))
    lines[at] = "preset: [demo\n"  # an unclosed flow sequence
    config.write_text("".join(lines))
    status, output = _dry_run(copy)
    assert status != 0
    # YAML notices at the next key (the first non-blank, non-comment line after it)
    found = next(i for i in range(at + 1, len(lines)) if lines[i].strip() and not lines[i].lstrip().startswith("#"))
    assert re.search(rf"{re.escape(str(config))} line {found + 1}, column \d+: expected ',' or ']'", output), output
    assert f"while parsing a flow sequence at line {at + 1}, column 9" in output


def test_a_duplicate_key_in_a_configfile_stops_the_workflow_naming_file_and_line(tmp_path):
    copy = _snakefile_copy(tmp_path)
    extra = tmp_path / "extra.yaml"
    extra.write_text("seeds: [0, 1]\nrun: mine\nseeds: [2]\n")
    status, output = _dry_run(copy, "--configfile", str(extra))
    assert status != 0
    assert f"{extra} line 3, column 1: duplicate key 'seeds' (first at line 1)" in output, output


@pytest.mark.xfail(strict=True, reason="snakemake 9 reads --configfile files in its command line, before the "
                                       "Snakefile, and reports a syntax error there without file or line")
def test_a_syntax_error_in_a_configfile_names_file_and_line(tmp_path):
    copy = _snakefile_copy(tmp_path)
    extra = tmp_path / "extra.yaml"
    extra.write_text("seeds: [0, 1\nrun: mine\n")
    status, output = _dry_run(copy, "--configfile", str(extra))
    assert status != 0 and "not valid JSON or YAML" in output  # today's message: neither file nor line
    assert f"{extra} line 2" in output


def test_check_config_command_names_the_file_and_line_and_runs_the_workflows_checks(tmp_path):
    import subprocess
    import sys

    def check(*files):
        return subprocess.run([sys.executable, "-m", "xstilts.cli", "check-config", *map(str, files)], cwd=ROOT,
                              capture_output=True, text=True)

    ok = check(ROOT / "tests" / "configs" / "smoke.yaml")
    assert ok.returncode == 0 and ok.stdout.strip() == (
        "ok: preset demo, run smoke, models xlmr-smoke: 2 intermediate task(s), 5 target(s), 1 seed(s)")
    broken = tmp_path / "broken.yaml"
    broken.write_text("run: x\nlanguages: [en,\nseeds: [1]\n")
    bad = check(broken)
    assert bad.returncode == 1
    assert f"{broken} line 4, column 1: expected ',' or ']'" in bad.stderr and "flow sequence at line 2, column 12" in bad.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("targets: {languages: {xnli: [en, ja]}}\n")
    mistake = check(ROOT / "tests" / "configs" / "smoke.yaml", wrong)
    assert mistake.returncode == 1 and "'ja' is not a language of xnli" in mistake.stderr


# ------------------------------------------------------------------------------------------
# The models axis (issue 14)

QWEN = {"name": "qwen2-demo", "extends": "xlmr-demo", "pretrain": {"architecture": "qwen2"}}


def test_models_share_the_grid_and_keep_their_own_overrides(config):
    from xstilts.config import model_experiment
    from xstilts.plan import Plan

    config["models"] = [{"name": "xlmr-demo", "extends": "xlmr-demo"},
                        {**QWEN, "targets": {"hparams": {"learning_rate": 5.0e-3}, "task_hparams": {"xnli": {"epochs": 1}}},
                         "retrieval": {"pooling": "last"}, "gradient_checkpointing": True,
                         "lora": {"r": 4, "phases": ["intermediate"]}}]
    exp = resolve(config)
    plan = Plan(exp)
    assert plan.models == ["xlmr-demo", "qwen2-demo"]
    xlmr, qwen = plan.for_model("xlmr-demo"), plan.for_model("qwen2-demo")
    # The extended entry is the demo's model with the architecture changed, every other key kept.
    assert qwen.exp["model"]["pretrain"] == {**xlmr.exp["model"]["pretrain"], "architecture": "qwen2"}
    assert qwen.target_job("xnli")["hparams"]["learning_rate"] == 5.0e-3
    assert qwen.target_job("xnli")["hparams"]["epochs"] == 1  # over the demo's xnli epochs (3)
    assert qwen.target_job("pawsx")["hparams"] == {**xlmr.target_job("pawsx")["hparams"], "learning_rate": 5.0e-3}
    assert xlmr.target_job("xnli")["hparams"]["epochs"] == 3
    # An absent override key keeps the phase's value, never the schema default.
    assert qwen.intermediate_job("mnli")["hparams"] == xlmr.intermediate_job("mnli")["hparams"]
    assert (qwen.retrieval_job()["pooling"], xlmr.retrieval_job()["pooling"]) == ("last", "mean")
    # LoRA covers the phases it names; gradient checkpointing every training phase of the model.
    assert qwen.intermediate_job("mnli")["adaptation"] == {
        "lora": {"r": 4, "alpha": 16, "dropout": 0.05, "target_modules": None}, "gradient_checkpointing": True}
    assert qwen.target_job("xnli")["adaptation"] == {"lora": None, "gradient_checkpointing": True}
    assert xlmr.target_job("xnli")["adaptation"] == {"lora": None, "gradient_checkpointing": False}
    # What every model shares is the grid's.
    assert qwen.encoders == xlmr.encoders and qwen.trainings == xlmr.trainings and qwen.seeds == xlmr.seeds
    assert model_experiment(exp, "qwen2-demo")["languages"] == exp["languages"]


@pytest.mark.parametrize("models, message", [
    ([{"name": "a", "extends": "xlmr-demo"}, {"name": "a", "extends": "xlmr-demo"}],
     r"models: the name 'a' is given to more than one model; names are result folders"),
    ([{"name": "x", "source": "hub", "hub": {"id": "Qwen/Qwen2.5-0.5B"}}],
     r"models.0.hub: 'revision' is a required property"),
    ([{"name": "x", "source": "hub"}], r"models.0: 'hub' is a required property"),
    ([{"name": "x", "extends": "xlmr-demo", "family": "decoder"}], r"unknown key 'family' in models.0"),
    ([{"name": "x", "extends": "xlmr-demo", "targets": {"hparams": {"learning_rat": 1}}}],
     r"unknown key 'learning_rat' \(did you mean 'learning_rate'\?\) in models.0.targets.hparams"),
    ([{"name": "x", "extends": "xlmr"}], r"models\[0\].extends: no model named 'xlmr' in the preset \(did you mean 'xlmr-demo'\?\)"),
    ([{"name": "x", "extends": "xlmr-demo", "lora": {"alpha": 8}}], r"models.0.lora: 'r' is a required property"),
    ([{"name": "x", "extends": "xlmr-demo", "targets": {"task_hparams": {"xnli": {"max_seq_length": 512}}}}],
     r"max_seq_length is 512, more than the 256 positions of the model.*\(model 'x' of preset 'demo'\)"),
    ([], r"models: \[\] should be non-empty"),
])
def test_model_mistakes_are_config_errors(config, models, message):
    config["models"] = models
    with pytest.raises(ConfigError, match=message):
        resolve(config)
