"""The ``synergy`` command: daemons, client commands, the demo, profiling, planning, bench.

Errors and exit statuses follow one convention (:mod:`synergy.cli.exits`, docs/cli.md):
``synergy COMMAND: MESSAGE`` on stderr; 0 done, 1 the operation failed, 2 bad usage or input,
130 interrupted (Ctrl-C, quietly, in every command), 141 the reader of stdout went away
(``synergy profile --all | head``, quietly).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence

from synergy import __version__
from synergy.cli import (
    bench_cmd,
    board_sim_cmd,
    ca_cmd,
    client_cmds,
    container_cmd,
    daemons,
    demo_cmd,
    emulate_cmd,
    fidelity_cmd,
    health_cmd,
    mqtt_cmd,
    plan_offline,
    profile_cmd,
    status_cmd,
    synth_cmd,
)
from synergy.cli.daemon_main import add_global_options, run_parsed
from synergy.cli.exits import EXIT_INTERRUPTED, EXIT_PIPE
from synergy.cli.parsing import Parser

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = Parser(
        prog="synergy",
        description="Compose the tiny AI accelerators worn on one body into one virtual computer.",
    )
    parser.add_argument("--version", action="version", version=f"synergy {__version__}")
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    daemons.register(sub)
    demo_cmd.register(sub)
    client_cmds.register(sub)
    status_cmd.register(sub)
    _register_plan(sub)
    profile_cmd.register(sub)
    synth_cmd.register(sub)
    bench_cmd.register(sub)
    fidelity_cmd.register(sub)
    emulate_cmd.register(sub)
    ca_cmd.register(sub)
    mqtt_cmd.register(sub)
    health_cmd.register(sub)
    container_cmd.register(sub)
    board_sim_cmd.register(sub)
    return parser


def _register_plan(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "plan",
        help="show the running joint plan, or plan offline from a space file and an apps file",
        description=(
            "Without --space: print the coordinator's deployed joint plan. With --space and --apps: "
            "plan offline with the chosen method and print the result."
        ),
    )
    client_cmds.add_live_plan_arguments(p)
    plan_offline.add_offline_arguments(p)
    p.set_defaults(func=_plan)


def _plan(args: argparse.Namespace) -> int:
    if getattr(args, "space", None) or getattr(args, "list_methods", False) or getattr(args, "apps", None):
        return plan_offline.run_offline(args)
    plan_offline.refuse_offline_options(args)
    return client_cmds.run_live_plan(args)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``synergy`` command line; returns its exit status (see the module doc)."""
    try:
        code = run_parsed(build_parser().parse_args(argv))
        sys.stdout.flush()  # here, not at exit: a reader that went away is seen now
        return code
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _discard_stdout()
        return EXIT_PIPE


def _discard_stdout() -> None:
    """Point stdout at /dev/null: what is still buffered must not fail again at exit."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
