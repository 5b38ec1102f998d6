"""The `tightfit` command: parse, call the library, turn bad input into one clear line and exit code 2."""

from __future__ import annotations

import argparse
import sys

from tightfit import __version__
from tightfit.cli import cmd_arch, cmd_data, cmd_export, cmd_profile, cmd_prune, cmd_quantize, cmd_run, cmd_search
from tightfit.errors import TightfitError

COMMANDS = (cmd_run, cmd_search, cmd_prune, cmd_quantize, cmd_profile, cmd_data, cmd_arch, cmd_export)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tightfit", description="Make neural networks fit the hardware "
                                     "they will run on.")
    parser.add_argument("--version", action="version", version=f"tightfit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TightfitError as err:
        print(f"tightfit: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tightfit: interrupted; what was written is kept (`tightfit run --resume` continues a run)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
