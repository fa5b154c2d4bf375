"""The ``xstilts`` command line: one subcommand per module in ``xstilts.commands``.

Subcommand modules are imported only when chosen, so ``xstilts evaluate`` never pays for torch.
Each module provides ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "evaluate": "xstilts.commands.evaluate",
    "bucc": "xstilts.commands.bucc",
    "tatoeba": "xstilts.commands.tatoeba",
    "verify": "xstilts.commands.verify",
    "check-config": "xstilts.commands.check_config",
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="xstilts",
        description="X-STILTs reproduction tools: XTREME scoring, BUCC/Tatoeba retrieval and result checks.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, module_name in COMMANDS.items():
        if name == chosen:
            module = importlib.import_module(module_name)
            p = sub.add_parser(name, help=module.HELP, description=module.HELP)
            module.add_arguments(p)
            p.set_defaults(_run=module.run)
        else:
            sub.add_parser(name, help=f"(see `xstilts {name} --help`)", add_help=False)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


def _version() -> str:
    from xstilts import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
