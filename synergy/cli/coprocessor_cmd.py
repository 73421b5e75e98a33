"""``python -m synergy.cli.coprocessor_cmd``: the CNN coprocessor the firmware's host build runs.

    python -m synergy.cli.coprocessor_cmd --board max78000 [--chip emulated|echo] [--no-chip-timing]

Started by ``firmware/build/host-<board>/synergy-board`` as its child; speaks the link of
:mod:`synergy.serial.coprocessor` on stdin/stdout. ``--chip emulated`` (the default) is the
board simulator's backend, :class:`synergy.cli.board_sim_cmd.EmulatedBackend` on an
:class:`agent.board.EmulatedBoard` of the board's profile, imported rather than repeated so
that the firmware carries whatever partition format that backend reads; ``--chip echo`` is
:class:`synergy.serial.coprocessor.EchoBackend`, for protocol tests.

It lives in the CLI because it wires the CLI's backend: library code never imports the CLI
(tests/unit/test_layering.py).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from agent.board import EmulatedBoard
from synergy.cli.board_sim_cmd import EmulatedBackend
from synergy.errors import SynergyError
from synergy.hardware.boards import load_board
from synergy.serial.coprocessor import EchoBackend, serve_stdio
from synergy.serial.responder import BoardBackend

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m synergy.cli.coprocessor_cmd",
        description="The CNN coprocessor of the firmware's host build (a child process; stdin/stdout).",
    )
    parser.add_argument("--board", default="max78000", help="board preset (max78000, max78002) or board file")
    parser.add_argument("--chip", choices=("emulated", "echo"), default="emulated", help="what runs the partitions")
    parser.add_argument("--no-chip-timing", action="store_true", help="do not wait the modelled chip time per run")
    args = parser.parse_args(argv)
    try:
        profile = load_board(args.board)
    except SynergyError as exc:
        print(f"coprocessor: {exc}", file=sys.stderr)
        return 2
    backend: BoardBackend
    if args.chip == "echo":
        backend = EchoBackend()
    else:
        backend = EmulatedBackend(EmulatedBoard(profile, chip_timing=not args.no_chip_timing))
    return asyncio.run(serve_stdio(backend, profile.name))


if __name__ == "__main__":
    sys.exit(main())
