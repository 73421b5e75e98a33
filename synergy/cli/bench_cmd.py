"""``synergy bench``: run the planner benchmark and print its figures.

``synergy bench [--quick] [--json] [--out DIR]`` plans every benchmark workload
(:mod:`synergy.planning.workloads`) with Synergy's methods and the baselines on the same cost
model, writes bench.csv / bench.json / bench.png into DIR (default ``bench-out/``), reports
progress on stderr and prints a summary table (or, with ``--json``, the summary object).
``--quick`` runs a subset that finishes in well under a minute.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from synergy.errors import SynergyError
from synergy.planning.bench import run_bench, summarize
from synergy.planning.bench_report import format_summary, write_outputs

__all__ = ["DEFAULT_OUT", "register", "run"]

DEFAULT_OUT = "bench-out"


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``subparsers`` (from ``add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark the planner against the baselines (prints figures, writes bench-out/)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a subset of the workloads (under a minute)")
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; exit status 0, or 1 when the models cannot be loaded."""

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    try:
        result = run_bench(quick=args.quick, clock=time.perf_counter, progress=progress)
    except SynergyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    summary = summarize(result)
    for note in write_outputs(result, summary, Path(args.out)):
        progress(note)
    if args.json:
        keys = ("ratio_vs_baseline", "min_ratio_vs_best_baseline", "max_gap_to_exact", "planning_ms_p95")
        out = {k: summary[k] for k in keys} | {k: v for k, v in summary.items() if k not in keys}
        print(json.dumps(_finite(out), indent=2))
    else:
        print(format_summary(summary))
    return 0


def _finite(value: Any) -> Any:
    """JSON has no NaN / infinity: print them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: ``python -m synergy.cli.bench_cmd [--quick] [--json] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="synergy bench", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
