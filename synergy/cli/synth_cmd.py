"""``synergy synth``: cut a model into partitions and write each one for the vendor's tools.

    synergy synth MODEL --board B [--cuts 3,7] --out DIR

Writes ``partN.onnx``, ``partN.yaml`` (the ai8x-synthesis network description),
``partN_sample_input.npy`` and ``manifest.json`` into DIR (:func:`synergy.models.synth.synthesize`).
``--cuts 3,7`` cuts after layers 3 and 7 (three partitions); no cuts keeps the model whole.
Exit status: 0 when every partition fits the board; 1 when the files were written but some
partition does not fit (the reasons go to stderr); 2 for a model, board or cut list that cannot
be read.
"""

from __future__ import annotations

import argparse
import sys

from synergy.errors import InvalidArgument, SynergyError
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import load_board
from synergy.models.synth import synthesize

__all__ = ["parse_cuts", "register", "run"]

EXIT_OK = 0
EXIT_DOES_NOT_FIT = 1
EXIT_BAD_INPUT = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "synth",
        help="split a model into partitions and write ONNX, ai8x-synthesis YAML and sample inputs",
        description=(
            "Cut MODEL (a zoo name or an .onnx file) after the given hardware layers and write, per "
            "partition, its ONNX sub-model, its ai8x-synthesis network YAML and a sample input, "
            "plus manifest.json."
        ),
    )
    parser.add_argument("model", metavar="MODEL", help="zoo name or path to an .onnx file")
    parser.add_argument("--board", required=True, help="board preset or description file")
    parser.add_argument("--cuts", default="", help="comma-separated layers to cut after, e.g. 3,7")
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.set_defaults(func=run)


def parse_cuts(text: str) -> list[int]:
    """``"3,7"`` -> ``[3, 7]``; empty -> no cuts."""
    try:
        return [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        raise InvalidArgument(f"--cuts must be comma-separated layer indices, got {text!r}") from None


def run(args: argparse.Namespace) -> int:
    try:
        from synergy.models.loader import load_model

        board = load_board(args.board)
        cuts = parse_cuts(args.cuts)
        model, name = load_model(args.model)
        hw = analyze_model(model, name)
        manifest = synthesize(model, hw, cuts, board, args.out)
    except SynergyError as exc:
        print(f"synergy synth: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    status = EXIT_OK
    for part in manifest["partitions"]:
        verdict = "fits" if part["fits"] else "DOES NOT FIT"
        print(
            f"part{part['index']}: layers {part['first']}..{part['last']}, {part['weight_bytes']} weight B, "
            f"{part['cycles']} cycles, {part['latency_us']:.1f} us on {board.name}: {verdict}"
        )
        if not part["fits"]:
            status = EXIT_DOES_NOT_FIT
            for reason in part["reasons"]:
                print(f"synergy synth: part{part['index']}: {reason}", file=sys.stderr)
    print(f"wrote {len(manifest['partitions'])} partition(s) and manifest.json to {args.out}")
    return status
