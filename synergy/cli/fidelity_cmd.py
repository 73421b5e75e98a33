"""``synergy fidelity``: the planner's predicted rate and latency against an emulated cluster's."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from synergy.fidelity import WORKLOADS, FidelityOptions, format_report, report_json, run_fidelity
from synergy.progress import Progress

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "fidelity",
        help="run workloads on an emulated cluster and compare measured rate and latency with the plan's",
        description=(
            "For each workload, start a coordinator and emulated devices on this machine (chip timing and "
            "link shaping on), submit its apps, wait for the plan to settle, and measure every app's "
            "delivered frames per second and mean latency against the planner's prediction. The host's CPU "
            "use over the window is shown; a saturated host is flagged instead of counted as a miss."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="only the first workload, short windows (a smoke run)")
    p.add_argument(
        "--workload",
        action="append",
        default=[],
        choices=[w.name for w in WORKLOADS],
        help="run only this workload (repeatable; default: all)",
    )
    p.add_argument("--settle", type=float, default=8.0, help="seconds the plan must stay the same before measuring")
    p.add_argument("--window", type=float, default=15.0, help="seconds measured per workload")
    p.add_argument("--log-dir", type=Path, default=Path("fidelity-logs"), help="where the daemons' logs go")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    options = FidelityOptions(
        quick=args.quick,
        workloads=tuple(args.workload),
        settle_s=args.settle,
        window_s=args.window,
        log_dir=args.log_dir,
    )
    with Progress("fidelity") as bar:
        figures = asyncio.run(run_fidelity(options, bar.report))
    if args.json:
        print(json.dumps(report_json(figures), indent=2))
    else:
        print(format_report(figures))
    return 0
