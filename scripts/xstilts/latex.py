"""LaTeX helpers shared by the generated paper sections (kept apart so that each section's
code fingerprint reaches only what it uses)."""

from __future__ import annotations

import re

_DIGITS = dict(zip("0123456789", ["Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine"]))


def command_name(prefix: str, *parts: str) -> str:
    """A LaTeX command (letters only) from ``prefix`` and keys such as ``squad_v1`` or
    ``qwen2.5-0.5b``, digits spelled out: ``command_name("Reason", "squad_v1")`` is
    ``\\ReasonSquadVOne``."""
    words = []
    for part in parts:
        for piece in re.split(r"[^A-Za-z0-9]+", part):
            piece = "".join(_DIGITS.get(ch, ch) for ch in piece)
            words.append(piece[:1].upper() + piece[1:])
    return "\\" + prefix + "".join(words)
