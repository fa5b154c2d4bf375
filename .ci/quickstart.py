"""Print command N (1 or 2) of the README's `## Quick start` block, so CI runs what users run."""

import re
import sys
from pathlib import Path

readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
section = re.search(r"^##\s+Quick start\s*$(.*?)(?=^##\s|\Z)", readme, re.M | re.S)
block = section and re.search(r"```[a-z]*\n(.*?)```", section.group(1), re.S)
if not block:
    sys.exit("README.md has no fenced code block under '## Quick start'")
commands = [line.split(" #")[0].strip() for line in block.group(1).splitlines()]
commands = [c for c in commands if c and not c.startswith("#")]
if len(commands) != 2:
    sys.exit(f"README.md's quick start should hold exactly two commands, found {len(commands)}")
print(commands[int(sys.argv[1]) - 1])
