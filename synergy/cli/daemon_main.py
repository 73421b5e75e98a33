"""``python -m synergy.cli.daemon_main {coordinator,agent} ...``: the two daemons without the rest of the CLI.

The same arguments and behaviour as ``synergy coordinator`` / ``synergy agent`` (the parsers
are :mod:`synergy.cli.daemons`'s), in a lighter process: the full ``synergy`` command imports
every subcommand (the planner bench, ONNX tooling, ...) before parsing, about 8 MB of memory a
daemon never uses. :class:`~synergy.cluster.LocalCluster` starts its daemons this way, so many
emulated agents fit on one host.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from synergy.cli import daemons
from synergy.cli.exits import EXIT_INTERRUPTED, exit_status, report
from synergy.errors import SynergyError
from synergy.logs import configure_logging

__all__ = ["add_global_options", "build_parser", "main", "run_parsed"]


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The options every ``synergy`` command line takes before its command."""
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--log-format", choices=["json", "console"], help="default: json unless on a terminal")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synergy", description="Run a Synergy daemon.")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    daemons.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_parsed(build_parser().parse_args(argv))


def run_parsed(args: argparse.Namespace) -> int:
    """Configure logging and run the parsed command: a SynergyError is one line on stderr and
    its exit status (:mod:`synergy.cli.exits`), Ctrl-C is 130."""
    json_logs = None if args.log_format is None else args.log_format == "json"
    configure_logging(args.log_level, json=json_logs, process=args.command)
    try:
        code: int = args.func(args)
    except SynergyError as exc:
        report(args.command, exc)
        return exit_status(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
