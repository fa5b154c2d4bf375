"""``xstilts check-config``: validate config files as the workflow would, before running it.

Snakemake reads ``--configfile`` files itself, before the Snakefile, and reports a YAML syntax
error there as "Config file is not valid JSON or YAML" without the file or the line. This command
checks each file's YAML (file, line and column of a mistake; a key given twice), merges the files
over the workflow's ``config.yaml`` in the order given, as ``snakemake --configfile`` does, and
validates the result with the same checks as the workflow.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from xstilts.config import ConfigError, check_yaml_file, deep_merge, resolve

HELP = "Validate config files (YAML syntax with file and line, then the workflow's own checks) before a run."

_PROG = "xstilts check-config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", help="config files merged over config.yaml, in order (like --configfile)")
    parser.add_argument("--base", default=None,
                        help="the workflow's config.yaml (default: ./config.yaml, else the one of this checkout)")


def _base(path: str | None) -> Path:
    if path:
        return Path(path)
    here = Path("config.yaml")
    return here if here.is_file() else Path(__file__).resolve().parents[3] / "config.yaml"


def run(args: argparse.Namespace) -> int:
    """0 and a one-line summary when the merged config is valid; 1 and the problem otherwise."""
    paths = [_base(args.base), *map(Path, args.files)]
    try:
        merged: dict = {}
        for path in paths:
            check_yaml_file(path)
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            if not isinstance(loaded, dict):
                raise ConfigError(f"{path}: a config file must be a mapping of keys, not a {type(loaded).__name__}")
            merged = deep_merge(merged, loaded)
        exp = resolve(merged)
    except ConfigError as error:
        print(f"{_PROG}: error: {error}", file=sys.stderr)
        return 1
    intermediate = exp["intermediate"]["tasks"]
    print(f"ok: preset {exp['preset']}, run {exp['run']}, models {', '.join(m['name'] for m in exp['models'])}: "
          f"{len(intermediate)} intermediate task(s), {len(exp['targets']['tasks'])} target(s), "
          f"{len(exp['seeds'])} seed(s)")
    return 0
