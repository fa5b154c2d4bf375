"""Leakage between intermediate training data and target evaluation data.

An intermediate task's training set, a machine translation of it included, must hold no example
of any target task's dev or test sets: zero-shot scores would otherwise measure memory. Real
translations (XNLI-MT, MLQA translate-train) translate MNLI's and SQuAD's *training* sets, while
XNLI and XQuAD/MLQA evaluate on separately written and translated material, so a hit here means a
converter or generator error. ``overlap`` compares records of the same format by their text
fields (labels and ids ignored), after whitespace normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xstilts import formats
from xstilts.tasks import CHOICE, DATASETS, INTERMEDIATE_TRAINING_DATASETS, PAIR, SPAN, TARGET_TASKS, TAGGING

#: The text that identifies an example, by format.
TEXT_FIELDS: dict[str, tuple[str, ...]] = {
    PAIR: ("sentence1", "sentence2"),
    SPAN: ("context", "question"),
    CHOICE: ("context", "question", "choices"),
    TAGGING: ("tokens",),
}


def example_key(record: dict[str, Any], fmt: str) -> tuple[str, ...]:
    """An example's text, whitespace-normalised, as a hashable key."""
    def norm(value: Any) -> str:
        text = " ".join(value) if isinstance(value, list) else str(value)
        return " ".join(text.split())

    return tuple(norm(record[k]) for k in TEXT_FIELDS[fmt])


def overlap(data_root: str | Path) -> dict[str, list[str]]:
    """Target dev/test examples found in an intermediate training set, for the datasets present.

    Returns ``"<target>/<lang>/<split>" -> ids of the examples found`` ({} when there is no
    leakage); a dataset or split missing under ``data_root`` is skipped (the grid may not use it).
    """
    root = Path(data_root)
    seen: dict[str, set[tuple[str, ...]]] = {}
    for name in (d for d in DATASETS if d in INTERMEDIATE_TRAINING_DATASETS):
        fmt = DATASETS[name].format
        for lang in DATASETS[name].languages("train"):
            path = Path(formats.data_file(root, name, lang, "train"))
            if path.is_file():
                keys = seen.setdefault(fmt, set())
                keys.update(example_key(r, fmt) for r in formats.read_dataset(root, name, lang, "train"))
    found: dict[str, list[str]] = {}
    for target in TARGET_TASKS:
        fmt = DATASETS[target].format
        if fmt not in TEXT_FIELDS or fmt not in seen:
            continue
        for split in ("dev", "test"):
            for lang in DATASETS[target].languages(split):
                if not Path(formats.data_file(root, target, lang, split)).is_file():
                    continue
                hits = [r["id"] for r in formats.read_dataset(root, target, lang, split)
                        if example_key(r, fmt) in seen[fmt]]
                if hits:
                    found[f"{target}/{lang}/{split}"] = hits
    return found
