"""Configuration: resolve a preset plus overrides, validate it, and report mistakes clearly.

``resolve(raw)`` is what the Snakefile calls first: it checks the whole file against
``schemas/config.schema.yaml`` (every preset as a complete experiment, top-level overrides as a
partial one), deep-merges the overrides over the chosen preset, validates the result, and
returns it. Any problem raises ``ConfigError`` with the key path, what is wrong and how to fix
it, before a single job starts.
"""

from __future__ import annotations

import copy
import difflib
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from xstilts.tasks import DATASETS, INTERMEDIATE_TASKS, MULTITASK, STAGE_TASKS, TARGET_TRAININGS

OVERRIDABLE = ("description", "languages", "data", "models", "intermediate", "targets", "seeds", "retrieval", "reasoning")


class ConfigError(ValueError):
    """The configuration is invalid; the message says where and how to fix it."""


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key repeated in one mapping (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                first = seen.setdefault(key, key_node.start_mark)
            except TypeError:  # an unhashable key: let SafeLoader report it
                continue
            if first is not key_node.start_mark:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r} (first at line {first.line + 1}); only the last would count",
                    key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def check_yaml_file(path: str | Path) -> None:
    """Raise ``ConfigError`` naming the file, line and column of a YAML syntax error or duplicate key.

    Snakemake's own message for a broken config file ("Config file is not valid JSON or YAML")
    names neither the file nor the line, so the Snakefile checks its config files with this first.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read the config file ({error})") from None
    try:
        yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader subclass)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = error.problem or error.context or "invalid YAML"
        if error.context and error.problem and error.context_mark:
            problem += f" ({error.context} at line {error.context_mark.line + 1}, column {error.context_mark.column + 1})"
        shown = ""
        if mark is not None and mark.line < len(text.splitlines()):
            line = text.splitlines()[mark.line]
            shown = f"\n    {mark.line + 1} | {line}\n    {' ' * len(str(mark.line + 1))} | {' ' * mark.column}^"
        hint = " (YAML indents with spaces, never tabs)" if "\t" in problem or "'\\t'" in problem else ""
        raise ConfigError(f"{path}{where}: {problem}{hint}{shown}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: invalid YAML: {error}") from None


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The config JSON schema (parsed once)."""
    text = resources.files("xstilts").joinpath("schemas/config.schema.yaml").read_text(encoding="utf-8")
    sch = yaml.safe_load(text)
    # A per-model override names some hyperparameters: the same keys without defaults, so that
    # filling defaults never turns an absent key into the schema's value over the phase's own.
    override = copy.deepcopy(sch["$defs"]["hparams"])
    for prop in override["properties"].values():
        prop.pop("default", None)
    sch["$defs"]["hparams_override"] = {**override, "description": sch["$defs"]["hparams_override"]["description"]}
    return sch


def _strip_required(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_required(v) for k, v in node.items() if k != "required"}
    if isinstance(node, list):
        return [_strip_required(v) for v in node]
    return node


def _path(error: jsonschema.ValidationError, root: str) -> str:
    parts = [root] if root else []
    parts += [str(p) for p in error.absolute_path]
    return ".".join(parts) or "(top level)"


def _describe(error: jsonschema.ValidationError, root: str) -> str:
    where = _path(error, root)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        unexpected = [k for k in error.instance if k not in allowed]
        hints = []
        for key in unexpected:
            close = difflib.get_close_matches(key, allowed, n=1)
            hints.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        return f"unknown key {', '.join(hints)} in {where}; allowed keys: {', '.join(allowed)}"
    if error.validator == "propertyNames":
        allowed = error.validator_value.get("enum", [])
        close = difflib.get_close_matches(str(error.instance), [str(a) for a in allowed], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"unknown name '{error.instance}' in {where}{hint}; allowed: {', '.join(map(str, allowed))}"
    if error.validator == "enum":
        close = difflib.get_close_matches(str(error.instance), [str(a) for a in error.validator_value], n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return (f"{where}: {error.instance!r} is not allowed{hint}; "
                f"choose one of: {', '.join(map(str, error.validator_value))}")
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def _validate(instance: Any, sch: dict[str, Any], root: str) -> None:
    validator = jsonschema.Draft202012Validator(sch)
    errors = sorted(validator.iter_errors(instance), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        # The deepest error is usually the most specific; oneOf errors are reported by context.
        error = errors[0]
        if error.context:
            deepest = max(error.context, key=lambda e: len(e.absolute_path))
            if error.validator == "oneOf" and len(deepest.absolute_path) == len(error.absolute_path):
                # The value fits none of the alternatives as a whole (`languages: en`): name them.
                raise ConfigError(f"config: {_path(error, root)}: {error.instance!r} is not allowed; expected "
                                  f"{' or '.join(_alternative(o, sch) for o in error.validator_value)}")
            error = deepest
        raise ConfigError(f"config: {_describe(error, root)}")


def _alternative(option: dict[str, Any], root: dict[str, Any]) -> str:
    """A oneOf alternative in words: a constant, or a list (of what), or its type."""
    option = _resolve_ref(option, root)
    if "const" in option:
        return repr(option["const"])
    if option.get("type") == "array":
        languages = option.get("items", {}).get("$ref") == "#/$defs/language"
        return "a list of language codes (e.g. [en, de])" if languages else "a list"
    return str(option.get("type", "a value"))


def _resolve_ref(node: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def coerce(value: Any, node: dict[str, Any], root: dict[str, Any]) -> Any:
    """Convert strings to the numbers, booleans or nulls the schema expects there.

    ``snakemake --config key=value`` parses nested values (``seeds=[0,1,2]``) with every scalar
    as a string; this restores their types. Strings that do not parse stay strings, so the
    validator reports them.
    """
    node = _resolve_ref(node, root)
    if isinstance(value, dict):
        props = node.get("properties", {})
        extra = node.get("additionalProperties")
        return {k: coerce(v, props.get(k, extra if isinstance(extra, dict) else {}), root) for k, v in value.items()}
    if isinstance(value, list):
        items = node.get("items", {})
        if not items:
            for option in node.get("oneOf", []):
                option = _resolve_ref(option, root)
                if option.get("type") == "array":
                    items = option.get("items", {})
        return [coerce(v, items, root) for v in value]
    if isinstance(value, str):
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        text = value.strip()
        if "null" in types and text.lower() in ("null", "none", "~"):
            return None
        if "boolean" in types and text.lower() in ("true", "false"):
            return text.lower() == "true"
        for kind, convert in (("integer", int), ("number", float)):
            if kind in types:
                try:
                    number = convert(text)
                except ValueError:
                    continue
                return int(number) if kind == "number" and number.is_integer() and "." not in text and "e" not in text.lower() else number
    return value


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in recursively (override wins; lists replace)."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def hparam_defaults() -> dict[str, Any]:
    """Default value of every hyperparameter, from the schema."""
    props = schema()["$defs"]["hparams"]["properties"]
    return {k: v.get("default") for k, v in props.items()}


def resolve(raw: dict[str, Any]) -> dict[str, Any]:
    """Validate the raw config and return the effective experiment (preset + overrides)."""
    if not isinstance(raw, dict) or not raw:
        raise ConfigError("config: empty configuration; pass config.yaml with --configfile")
    sch = schema()
    # 1. The file's shape, with every preset a complete experiment.
    top = copy.deepcopy(sch)
    for key in OVERRIDABLE:
        top["properties"][key] = {}  # checked in step 2
    overrides = {k: coerce(raw[k], sch["$defs"]["experiment"]["properties"][k], sch) for k in OVERRIDABLE if k in raw}
    # 2. Overrides: any subset of experiment keys, at any depth.
    partial = _strip_required({"$defs": sch["$defs"], **sch["$defs"]["experiment"]})
    _validate(overrides, partial, "")
    presets = _expand_presets(raw.get("presets"))
    raw = {**raw, "presets": presets}
    _validate({k: v for k, v in raw.items() if k not in OVERRIDABLE}, top, "")
    name = raw["preset"]
    if name not in presets:
        close = difflib.get_close_matches(name, list(presets), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"config: preset '{name}' is not defined{hint}; defined presets: {', '.join(presets)}")
    exp = deep_merge(presets[name], overrides)
    if "models" in overrides:
        exp["models"] = _expand_models(overrides["models"], presets[name]["models"], "models")
    experiment = {"$defs": sch["$defs"], **sch["$defs"]["experiment"]}
    _validate(exp, experiment, "")
    exp = fill_defaults(exp, experiment, sch)
    _check_semantics(exp, name)
    exp["preset"] = name
    # The run names the result tree (results/<run>/...); by default the preset's name, so two
    # presets never share, and never overwrite, each other's files.
    exp["run"] = raw.get("run") or name
    return exp


def _expand_models(entries: Any, base: Any, where: str) -> Any:
    """``models`` with every ``extends: NAME`` entry deep-merged over the model NAME of ``base``.

    Malformed input is returned as it is, for the schema to report."""
    if not isinstance(entries, list) or not isinstance(base, list):
        return entries
    known = {m["name"]: m for m in base if isinstance(m, dict) and isinstance(m.get("name"), str)}
    out = []
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and "extends" in entry:
            parent = known.get(entry["extends"])
            if parent is None:
                close = difflib.get_close_matches(str(entry["extends"]), list(known), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"config: {where}[{i}].extends: no model named {entry['extends']!r} in the preset{hint}; "
                                  f"its models: {', '.join(known) or '(none)'}")
            if "extends" in parent:
                raise ConfigError(f"config: {where}[{i}].extends: {entry['extends']!r} extends another model itself; "
                                  "extend the model it is based on")
            entry = deep_merge(parent, {k: v for k, v in entry.items() if k != "extends"})
        out.append(entry)
    return out


def _expand_presets(presets: Any) -> Any:
    """Presets with ``extends`` resolved: a preset deep-merged over the preset it names, and
    ``models`` entries deep-merged over the model they name (one of the preset's own entries
    without ``extends``, or one of the extended preset's models)."""
    if not isinstance(presets, dict):
        return presets
    out = {}
    for name, preset in presets.items():
        base_models: list[Any] = []
        if isinstance(preset, dict) and "extends" in preset:
            parent = presets.get(preset["extends"])
            if not isinstance(parent, dict) or "extends" in parent:
                close = difflib.get_close_matches(str(preset["extends"]), list(presets), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"config: presets.{name}.extends: {preset['extends']!r} is not a preset without "
                                  f"`extends` of its own{hint}; presets: {', '.join(presets)}")
            base_models = parent.get("models") if isinstance(parent.get("models"), list) else []
            preset = deep_merge(parent, {k: v for k, v in preset.items() if k != "extends"})
        if isinstance(preset, dict) and isinstance(preset.get("models"), list):
            plain = [m for m in preset["models"] if not (isinstance(m, dict) and "extends" in m)]
            preset = {**preset, "models": _expand_models(preset["models"], plain + base_models, f"presets.{name}.models")}
        out[name] = preset
    return out


_MISSING = object()


def _default(node: dict[str, Any], root: dict[str, Any]) -> Any:
    """The first ``default`` along a chain of ``$ref``s (a referring node's own default wins)."""
    while True:
        if "default" in node:
            return node["default"]
        if "$ref" not in node:
            return _MISSING
        target: Any = root
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target


def fill_defaults(instance: Any, node: dict[str, Any], root: dict[str, Any]) -> Any:
    """``instance`` with every absent schema property that has a ``default`` filled in, recursively.

    Only the named ``properties`` of an object are filled (a default that is an object is then
    filled in turn); entries of maps (``additionalProperties``, e.g. ``task_hparams.<task>``) are
    partial overrides by design and stay as written. The schema is the only place defaults live:
    code reads the resolved config with ``[key]``, never ``.get(key, default)``.
    """
    node = _resolve_ref(node, root)
    if isinstance(instance, list) and isinstance(node.get("items"), dict):
        return [fill_defaults(item, node["items"], root) for item in instance]  # e.g. each of `models`
    if not isinstance(instance, dict) or "properties" not in node:
        return instance
    out = dict(instance)
    for key, prop in node["properties"].items():
        default = _default(prop, root)
        if key not in out and default is not _MISSING:
            out[key] = copy.deepcopy(default)
        if key in out:
            out[key] = fill_defaults(out[key], prop, root)
    return out


#: The keys of a `models` entry that describe the model itself (the rest are its training options).
MODEL_KEYS = ("name", "source", "hub", "pretrain")
#: Per-model options merged over the experiment's section of the same name.
MODEL_SECTIONS = ("intermediate", "targets", "retrieval")


def model_names(exp: dict[str, Any]) -> list[str]:
    """The models of the grid, in config order."""
    return [m["name"] for m in exp["models"]]


def model_experiment(exp: dict[str, Any], name: str) -> dict[str, Any]:
    """The experiment as one model of the grid sees it.

    ``model`` is that entry's description of the model (name, source, hub or pretrain);
    ``intermediate``, ``targets`` and ``retrieval`` have the entry's overrides deep-merged in;
    ``model["adaptation"]`` holds its LoRA and gradient-checkpointing settings. Everything else
    (tasks, languages, seeds, data) is the grid's, shared by every model.
    """
    entries = {m["name"]: m for m in exp["models"]}
    if name not in entries:
        raise ConfigError(f"config: no model named {name!r} in models (models: {', '.join(entries)})")
    entry = entries[name]
    out = {k: v for k, v in exp.items() if k not in MODEL_SECTIONS}
    for section in MODEL_SECTIONS:
        out[section] = deep_merge(exp[section], entry[section])
    out["model"] = {k: copy.deepcopy(entry[k]) for k in MODEL_KEYS if k in entry}
    out["model"]["adaptation"] = {"lora": copy.deepcopy(entry["lora"]),
                                  "gradient_checkpointing": entry["gradient_checkpointing"]}
    return out


def _check_models(exp: dict[str, Any], name: str) -> None:
    """Model names are unique (they name result folders); each model's experiment is valid."""
    names = model_names(exp)
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"config: models: the name {', '.join(map(repr, twice))} is given to more than one model; "
                          "names are result folders (results/<run>/.../<name>/), so each model needs its own")
    for model in names:
        view = model_experiment(exp, model)
        try:
            _check_model(view)
        except ConfigError as error:
            raise ConfigError(f"{error} (model {model!r} of preset '{name}')") from None


def _check_model(exp: dict[str, Any]) -> None:
    """Checks of one model's experiment (``model_experiment``)."""
    if exp["model"]["source"] == "pretrain":
        if "pretrain" not in exp["model"]:
            raise ConfigError("config: model.source is 'pretrain' but model.pretrain is missing")
        p = exp["model"]["pretrain"]
        if p["hidden_size"] % p["num_attention_heads"]:
            raise ConfigError(
                f"config: model.pretrain.hidden_size ({p['hidden_size']}) must be divisible by "
                f"num_attention_heads ({p['num_attention_heads']})"
            )
    layer = exp["retrieval"]["layer"]
    if layer is not None and exp["model"]["source"] == "pretrain":
        depth = exp["model"]["pretrain"]["num_hidden_layers"]
        if layer > depth:
            raise ConfigError(f"config: retrieval.layer {layer} exceeds the model's {depth} layers")
    _check_multitask_hparams(exp)
    _check_hub_revision(exp)
    _check_sequence_lengths(exp)


def _check_semantics(exp: dict[str, Any], name: str) -> None:
    """Checks JSON schema cannot express (on the resolved config, every default filled in)."""
    langs = exp["languages"]
    if langs != "all" and "en" not in langs:
        raise ConfigError(f"config: languages of preset '{name}' must include 'en', the training language")
    if exp["data"]["source"] == "synthetic" and "synthetic" not in exp["data"]:
        raise ConfigError("config: data.source is 'synthetic' but data.synthetic is missing")
    mirrors = exp["data"]["download"]["mirrors"]
    if mirrors:
        from xstilts.sources import SOURCES

        names = {f.name for source in SOURCES.values() for f in source.files}
        for name in mirrors:
            if name not in names:
                close = difflib.get_close_matches(name, sorted(names), n=1)
                hint = f" (did you mean '{close[0]}'?)" if close else ""
                raise ConfigError(f"config: data.download.mirrors: {name!r} is not a pinned file name{hint}; "
                                  "keys are file names as listed in scripts/xstilts/sources.py")
    if exp["data"]["download"]["pins"]:
        from xstilts.sources import load_pins

        try:
            load_pins(exp["data"]["download"]["pins"])
        except ValueError as e:
            raise ConfigError(f"config: {e}") from None
    if not exp["intermediate"]["tasks"]:
        raise ConfigError("config: intermediate.tasks is empty, so the grid has no intermediate-task row to compare "
                          "with the baseline; name at least one intermediate task (the paper's nine: "
                          f"{', '.join(INTERMEDIATE_TASKS)})")
    if exp["intermediate"]["multitask"]["enabled"] and len(exp["intermediate"]["tasks"]) < 2:
        raise ConfigError("config: intermediate.multitask needs at least two intermediate tasks (or set enabled: false)")
    _check_variants(exp)
    _check_language_codes(exp)
    _check_target_languages(exp, name)
    _check_models(exp, name)


def _check_variants(exp: dict[str, Any]) -> None:
    """Each variant's task is a plain row of the grid too, and its languages exist."""
    from xstilts.tasks import TRANSLATIONS

    variants = exp["intermediate"]["variants"]
    tasks = exp["intermediate"]["tasks"]
    for variant, settings in variants.items():
        missing = [t for t in settings["tasks"] if t not in tasks]
        if missing:
            raise ConfigError(f"config: intermediate.variants.{variant}.tasks: {', '.join(missing)} is not in "
                              f"intermediate.tasks ({', '.join(tasks)}); a variant row is compared with its plain "
                              "task's row, so add the task there or drop it from the variant")
    translated = variants["translated"]
    for task in translated["tasks"]:
        dataset = DATASETS[TRANSLATIONS[task]]
        available = keep_languages(exp, dataset.languages("train"))
        wanted = translated["languages"]
        if wanted is not None:
            unknown = [lang for lang in wanted if lang not in dataset.languages("train")]
            if unknown:
                raise ConfigError(f"config: intermediate.variants.translated.languages: {', '.join(unknown)} has no "
                                  f"translation of {task} ({dataset.name}: {', '.join(dataset.languages('train'))})")
            available = [lang for lang in available if lang in wanted]
        if not available:
            raise ConfigError(f"config: intermediate.variants.translated: no translation of {task} is left after the "
                              f"language filters (its languages: {', '.join(dataset.languages('train'))})")


def language_filter(exp: dict[str, Any], target: str | None = None) -> str | list[str]:
    """The language filter of a target: ``targets.languages[target]`` if set, else ``languages``."""
    if target is not None and target in exp["targets"]["languages"]:
        return exp["targets"]["languages"][target]
    return exp["languages"]


def keep_languages(exp: dict[str, Any], langs: tuple[str, ...] | list[str], target: str | None = None) -> list[str]:
    """Filter an official language list by the config's language filter (see ``language_filter``)."""
    allowed = language_filter(exp, target)
    return [lang for lang in langs if allowed == "all" or lang in allowed]


# Multi-task training steps one optimizer over every task (training.train): these settings come
# from intermediate.hparams alone; a task's own hparams give only its batch size, sequence length,
# epochs and data settings.
MULTITASK_RUN_HPARAMS = ("learning_rate", "max_steps", "warmup_ratio", "weight_decay", "adam_epsilon",
                         "max_grad_norm", "eval_every_steps", "patience", "eval_max_examples", "mixed_precision",
                         "deterministic")


def _check_multitask_hparams(exp: dict[str, Any]) -> None:
    """A member's run-level override would be silently ignored by the multi-task run: reject it."""
    intermediate = exp["intermediate"]
    if not intermediate["multitask"]["enabled"]:
        return
    run = hparams_for(exp, "intermediate")
    for task in intermediate["tasks"]:
        own = intermediate["task_hparams"].get(task, {})  # a map of partial overrides
        for key in MULTITASK_RUN_HPARAMS:
            if key in own and own[key] != run[key]:
                raise ConfigError(
                    f"config: intermediate.task_hparams.{task}.{key} is {own[key]!r}, but the multi-task run trains "
                    f"all intermediate tasks with one optimizer and uses intermediate.hparams.{key} ({run[key]!r}) "
                    f"for every task; only the single-task {task} run would honour it. Remove it (or set the same "
                    "value), set it in intermediate.hparams for every run, or set intermediate.multitask.enabled: "
                    "false. Per task, the multi-task run honours batch_size, grad_accum, max_seq_length and epochs."
                )


def _check_language_codes(exp: dict[str, Any]) -> None:
    """Every language named in a filter is a language of some task (or of the target it filters).

    An unknown code would otherwise be dropped silently, and a target filter naming a language
    the target lacks would silently narrow the target (XNLI scored on English alone, say)."""
    known = sorted({lang for d in DATASETS.values() for langs in d.splits.values() for lang in langs})
    if exp["languages"] != "all":
        unknown = [lang for lang in exp["languages"] if lang not in known]
        if unknown:
            raise ConfigError(f"config: languages: {', '.join(map(repr, unknown))} is not a language of any task; "
                              f"known languages: {', '.join(known)}")
    for target, langs in exp["targets"]["languages"].items():
        official = DATASETS[target].languages("test")
        if langs != "all":
            missing = [lang for lang in langs if lang not in official]
            if missing:
                raise ConfigError(f"config: targets.languages.{target}: {', '.join(map(repr, missing))} is not a "
                                  f"language of {target}; its languages are {', '.join(official)}")


def _check_hub_revision(exp: dict[str, Any]) -> None:
    """A hub revision is a commit id, checked now rather than when the download runs."""
    hub = exp["model"]["hub"]
    if exp["model"]["source"] == "hub" and not hub["record_revision"] and not re.fullmatch(r"[0-9a-f]{40}", hub["revision"]):
        raise ConfigError(f"config: model.hub.revision {hub['revision']!r} is not a commit id (40 hex characters); "
                          "pin the commit of the hub repository, or set model.hub.record_revision: true to resolve a "
                          "branch or tag at download time and record the commit it names")


def _check_sequence_lengths(exp: dict[str, Any]) -> None:
    """No training asks for more tokens than the locally pretrained model has positions.

    (A hub model's positions are known only once it is downloaded; prepare_model reports them.)"""
    if exp["model"]["source"] != "pretrain":
        return
    positions = exp["model"]["pretrain"]["max_position_embeddings"]
    sections = {"model.pretrain.hparams": exp["model"]["pretrain"]["hparams"]}
    for phase in ("intermediate", "targets"):
        sections[f"{phase}.hparams"] = exp[phase]["hparams"]
        sections.update({f"{phase}.task_hparams.{t}": hp for t, hp in exp[phase]["task_hparams"].items()})
    for where, hp in sections.items():
        length = hp.get("max_seq_length")  # task_hparams entries are partial overrides
        if length is not None and length > positions:
            raise ConfigError(f"config: {where}.max_seq_length is {hp['max_seq_length']}, more than the "
                              f"{positions} positions of the model (model.pretrain.max_position_embeddings); "
                              "lower it or raise max_position_embeddings")


def _check_target_languages(exp: dict[str, Any], name: str) -> None:
    """Every target of the grid keeps at least one language of its official list."""
    for target in exp["targets"]["tasks"]:
        official = DATASETS[target].languages("test")
        if not keep_languages(exp, official, target):
            where = f"targets.languages.{target}" if target in exp["targets"]["languages"] else "languages"
            raise ConfigError(
                f"config: target {target} of preset '{name}' has no language left after the filter {where}; "
                f"its official languages are {', '.join(official)}")


def hparams_for(exp: dict[str, Any], phase: str, task: str | None = None) -> dict[str, Any]:
    """Effective hyperparameters: schema defaults < phase hparams < task_hparams[task]."""
    section = exp["intermediate"] if phase == "intermediate" else exp["targets"]
    if phase == "target" and task is not None and task not in TARGET_TRAININGS and task not in STAGE_TASKS:
        raise ConfigError(f"config: unknown target training {task!r}")
    if phase == "intermediate" and task is not None and task not in INTERMEDIATE_TASKS and task != MULTITASK:
        raise ConfigError(f"config: unknown intermediate task {task!r}")
    # section["hparams"] is complete (resolve fills the schema defaults); task_hparams entries
    # are partial overrides.
    hp = dict(section["hparams"])
    if task is not None and task in section["task_hparams"]:
        hp.update(section["task_hparams"][task])
    return hp


def pretrain_hparams(exp: dict[str, Any]) -> dict[str, Any]:
    """Phase-1 hyperparameters of a model's experiment (``model_experiment``)."""
    return dict(exp["model"]["pretrain"]["hparams"])
