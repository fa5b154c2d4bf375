"""The config schema's task-name lists are the registries' (tasks.py), in registry order.

A task added to the registry but not to the schema (or the reverse) would be rejected by, or
slip through, config validation; this test names the list to fix.
"""

from __future__ import annotations

import pytest

from xstilts.config import schema
from xstilts.tasks import (
    DATASETS,
    INTERMEDIATE_TASKS,
    REASONING_TARGETS,
    STAGE_TASKS,
    TARGET_TASKS,
    TARGET_TRAININGS,
    TRAINING_RECIPES,
    TRANSLATIONS,
    XTREME_TARGETS,
)


def _experiment(*path: str):
    node = schema()["$defs"]["experiment"]["properties"]
    for i, key in enumerate(path):
        node = node[key]
        if i < len(path) - 1:
            node = node["properties"]
    return node


LISTS = [
    # A translation has its source's examples, so its size is the source's (Plan.synthetic_sizes).
    ("data.synthetic.sizes (names)", _experiment("data", "synthetic", "sizes")["propertyNames"]["enum"],
     ["default", *(d for d in DATASETS if not DATASETS[d].translation_of)]),
    ("intermediate.variants.mlm.tasks", _experiment("intermediate", "variants", "mlm", "tasks")["items"]["enum"],
     list(INTERMEDIATE_TASKS)),
    ("intermediate.variants.translated.tasks",
     _experiment("intermediate", "variants", "translated", "tasks")["items"]["enum"], list(TRANSLATIONS)),
    ("intermediate.tasks", _experiment("intermediate", "tasks")["items"]["enum"], list(INTERMEDIATE_TASKS)),
    ("intermediate.tasks (default)", _experiment("intermediate", "tasks")["default"], list(INTERMEDIATE_TASKS)),
    ("intermediate.task_hparams (names)", _experiment("intermediate", "task_hparams")["propertyNames"]["enum"],
     list(INTERMEDIATE_TASKS)),
    ("targets.tasks", _experiment("targets", "tasks")["items"]["enum"], list(TARGET_TASKS)),
    ("targets.tasks (default)", _experiment("targets", "tasks")["default"], list(XTREME_TARGETS)),
    ("targets.languages (names)", _experiment("targets", "languages")["propertyNames"]["enum"], list(TARGET_TASKS)),
    ("targets.task_hparams (names)", _experiment("targets", "task_hparams")["propertyNames"]["enum"],
     [*TARGET_TRAININGS, *STAGE_TASKS]),
    ("reasoning.targets", _experiment("reasoning", "targets")["items"]["enum"], list(REASONING_TARGETS)),
    ("reasoning.targets (default)", _experiment("reasoning", "targets")["default"], list(REASONING_TARGETS)),
]


@pytest.mark.parametrize("where,in_schema,in_registry", LISTS, ids=[w for w, _, _ in LISTS])
def test_schema_name_lists_are_the_registries(where, in_schema, in_registry):
    assert in_schema == in_registry, f"scripts/xstilts/schemas/config.schema.yaml {where} differs from tasks.py"


@pytest.mark.parametrize("training", list(TRAINING_RECIPES))
def test_every_recipe_choice_has_its_schema_key(training):
    node = _experiment("targets", f"{training}_recipe")
    recipes = list(TRAINING_RECIPES[training])
    assert node["enum"] == recipes and node["default"] == recipes[0]
