"""``xstilts verify``: check a results tree against the manifests its jobs wrote.

Every rule job writes a manifest beside each output (``xstilts.manifest``); this command checks
every output under the given folders against them and prints, for each damaged one, what is wrong
and the command that rebuilds it. An output whose manifest remains but which is gone (a
``temp()`` model Snakemake deleted after use, or a folder the user removed) is listed as absent,
not damaged: Snakemake rebuilds it when something needs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xstilts import manifest

HELP = "Check results (and data, models, downloads) against the manifests their jobs wrote; exit 1 if anything is damaged."

_PROG = "xstilts verify"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("folders", nargs="*", default=["results"],
                        help="folders to check, recursively (default: results, the workflow's output tree)")
    parser.add_argument("--quiet", action="store_true", help="print only damaged outputs")


def run(args: argparse.Namespace) -> int:
    """0 when every output with a manifest is intact, 1 when any is damaged (or a folder is absent)."""
    checked = absent = 0
    damaged: list[manifest.Problem] = []
    for folder in args.folders:
        if not Path(folder).is_dir():
            print(f"{_PROG}: error: {folder} is not a folder", file=sys.stderr)
            return 1
        for output in manifest.find(folder):
            checked += 1
            try:
                problems = manifest.check(output)
            except manifest.DamagedError as e:
                print(f"damaged: {e}")
                damaged.append(manifest.Problem(output, "damaged manifest", None))
                continue
            if problems and problems[0].what == "missing":
                absent += 1
                if not args.quiet:
                    print(f"absent:  {output} (rule {problems[0].rule}; deleted or temporary, rebuilt when needed)")
                continue
            for problem in problems:
                print(f"damaged: {problem.message()}")
            damaged += problems
    outputs = len({p.output for p in damaged})
    print(f"{_PROG}: {checked} outputs checked under {', '.join(args.folders)}: {outputs} damaged, {absent} absent",
          file=sys.stderr)
    return 1 if damaged else 0
