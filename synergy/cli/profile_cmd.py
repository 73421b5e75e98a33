"""``synergy profile``: a model read as the MAX7800x runs it, layer by layer, and where it fits.

    synergy profile MODEL [--board B] [--json]
    synergy profile --all [--board B] [--json]
    synergy profile --list

MODEL is a zoo name or an ``.onnx`` file. The table shows every hardware layer (op, input and
output shape, weight / bias / output bytes, cycles, microseconds at the board's CNN clock),
the totals, and for every known board whether the whole model fits and why not. ``--json``
prints one object for scripts (see :func:`profile_json`). ``--all`` profiles every zoo model
and prints one summary row each (with ``--json``: a list of the objects) plus the time taken.
The exit status is 0 whenever the model could be profiled, whatever the verdict; 2 for a model
or board that cannot be read.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from synergy.cli import exits
from synergy.errors import SynergyError
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import BOARD_PRESETS, BoardProfile, load_board
from synergy.hardware.checker import check_partition
from synergy.hardware.costs import layer_time_s, partition_times
from synergy.hardware.model import FitReport, HardwareModel
from synergy.tables import render_table

__all__ = ["profile_json", "register", "run"]

EXIT_OK = exits.EXIT_OK
EXIT_BAD_INPUT = exits.EXIT_USAGE
DEFAULT_BOARD = "max78000"
MICROSECONDS = 1e6
MILLISECONDS = 1e3


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "profile",
        help="per-layer weights, memory and cycles of a model, and which boards it fits",
        description=(
            "Read MODEL (a zoo name or an .onnx file) as the MAX7800x runs it: hardware layers, "
            "bytes, cycles and latency on --board, and whether it fits each known board."
        ),
    )
    parser.add_argument("model", nargs="?", metavar="MODEL", help="zoo name or path to an .onnx file")
    parser.add_argument(
        "--board", default=DEFAULT_BOARD, help=f"board preset or description file (default {DEFAULT_BOARD})"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    parser.add_argument("--list", action="store_true", help="print the zoo's model names and exit")
    parser.add_argument("--all", action="store_true", help="profile every zoo model: one summary row each")
    parser.set_defaults(func=run)


def _shape(shape: tuple[int, ...]) -> str:
    """A shape without its batch dimension, as people write it (C x H x W)."""
    return "x".join(str(d) for d in shape[1:]) or "1"


def _boards(selected: BoardProfile) -> list[BoardProfile]:
    boards = list(BOARD_PRESETS.values())
    if selected not in boards:
        boards.append(selected)
    return boards


def _whole(hw: HardwareModel, board: BoardProfile) -> FitReport:
    return check_partition(hw, 0, len(hw.layers) - 1, board)


def profile_json(hw: HardwareModel, board: BoardProfile) -> dict[str, Any]:
    """The ``--json`` object: model, board, layers, totals, CPU time and the fit verdict."""
    times = partition_times(hw, 0, len(hw.layers) - 1, board)
    report = _whole(hw, board)
    return {
        "model": hw.name,
        "board": board.name,
        "layers": [
            {
                "index": layer.index,
                "op": layer.op,
                "in_shape": list(layer.in_shape),
                "out_shape": list(layer.out_shape),
                "weights": layer.weights,
                "weight_bytes": layer.weight_bytes,
                "bias_bytes": layer.bias_bytes,
                "out_bytes": layer.out_bytes,
                "cycles": layer.cycles,
            }
            for layer in hw.layers
        ],
        "total_cycles": hw.total_cycles,
        "latency_us": times.accelerator_s * MICROSECONDS,
        "cpu_us": times.cpu_s * MICROSECONDS,
        "weights": sum(layer.weights for layer in hw.layers),
        "weight_bytes": hw.weight_bytes,
        "bias_bytes": sum(layer.bias_bytes for layer in hw.layers),
        "fits": report.fits,
        "reasons": list(report.reasons),
        "boards": [
            {"board": b.name, "fits": r.fits, "reasons": list(r.reasons)}
            for b in _boards(board)
            for r in (_whole(hw, b),)
        ],
    }


def _text(hw: HardwareModel, board: BoardProfile) -> str:
    rows = [
        (
            layer.index,
            layer.op,
            _shape(layer.in_shape),
            _shape(layer.out_shape),
            layer.weight_bytes,
            layer.bias_bytes,
            layer.out_bytes,
            layer.cycles,
            layer_time_s(layer, board) * MICROSECONDS,
        )
        for layer in hw.layers
    ]
    headers = ("#", "op", "in", "out", "weight B", "bias B", "output B", "cycles", "us")
    times = partition_times(hw, 0, len(hw.layers) - 1, board)
    weights = sum(layer.weights for layer in hw.layers)
    lines = [
        f"{hw.name} on {board.name} (CNN clock {board.cnn_clock_hz / MICROSECONDS:g} MHz)",
        render_table(headers, rows),
        "",
        f"layers {len(hw.layers)}, weights {weights} ({hw.weight_bytes} B), "
        f"bias {sum(layer.bias_bytes for layer in hw.layers)} B",
        f"cycles {hw.total_cycles} (incl. start), latency {times.accelerator_s * MICROSECONDS:.1f} us, "
        f"CPU {times.cpu_s * MICROSECONDS:.1f} us per frame "
        f"(load {times.input_load_s * MICROSECONDS:.1f}, unload {times.output_unload_s * MICROSECONDS:.1f}, "
        f"CPU ops {times.cpu_ops_s * MICROSECONDS:.1f})",
    ]
    if hw.cpu_ops:
        lines.append("CPU work: " + ", ".join(f"{op.op_type} after layer {op.after_layer}" for op in hw.cpu_ops))
    lines += ["", "fits:"]
    for candidate in _boards(board):
        report = _whole(hw, candidate)
        verdict = "yes" if report.fits else "no: " + "; ".join(report.reasons)
        lines.append(f"  {candidate.name}: {verdict}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if args.list:
        from synergy.models.zoo import ZOO_NAMES

        print("\n".join(ZOO_NAMES))
        return EXIT_OK
    if args.all:
        return _run_all(args)
    if not args.model:
        exits.report("profile", "MODEL is required (or --all, --list)")
        return EXIT_BAD_INPUT
    started = time.perf_counter()
    try:
        from synergy.models.loader import load_model

        board = load_board(args.board)
        model, name = load_model(args.model)
        hw = analyze_model(model, name)
        output = json.dumps(profile_json(hw, board), indent=2) if args.json else _text(hw, board)
    except SynergyError as exc:
        exits.report("profile", exc)
        return EXIT_BAD_INPUT
    print(output)
    elapsed_ms = (time.perf_counter() - started) * MILLISECONDS
    print(f"profiled in {elapsed_ms:.0f} ms", file=sys.stderr)
    return EXIT_OK


def _summary_row(hw: HardwareModel, board: BoardProfile) -> tuple[object, ...]:
    times = partition_times(hw, 0, len(hw.layers) - 1, board)
    report = _whole(hw, board)
    return (
        hw.name,
        len(hw.layers),
        sum(layer.weights for layer in hw.layers),
        hw.weight_bytes,
        hw.total_cycles,
        times.accelerator_s * MICROSECONDS,
        "yes" if report.fits else "no: " + "; ".join(report.reasons),
    )


def _run_all(args: argparse.Namespace) -> int:
    """Every zoo model on one board, timed as a whole (models built, analysed and checked)."""
    from synergy.models.zoo import ZOO_NAMES, build_model

    started = time.perf_counter()
    try:
        board = load_board(args.board)
        models = [analyze_model(build_model(name), name) for name in ZOO_NAMES]
        if args.json:
            output = json.dumps([profile_json(hw, board) for hw in models], indent=2)
        else:
            headers = ("model", "layers", "weights", "weight B", "cycles", "latency us", f"fits {board.name}")
            output = render_table(headers, [_summary_row(hw, board) for hw in models])
    except SynergyError as exc:
        exits.report("profile", exc)
        return EXIT_BAD_INPUT
    elapsed_ms = (time.perf_counter() - started) * MILLISECONDS
    print(output)
    print(f"profiled {len(models)} models in {elapsed_ms:.0f} ms", file=sys.stderr)
    return EXIT_OK
