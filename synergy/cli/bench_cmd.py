"""``synergy bench``: run the planner benchmark and print its figures.

``synergy bench [--quick] [--json] [--out DIR]`` plans every benchmark workload
(:mod:`synergy.planning.workloads`) with Synergy's methods and the baselines on the same cost
model, writes bench.csv / bench.json / bench.png into DIR (default ``bench-out/``), reports
progress on stderr and prints a summary table (or, with ``--json``, the summary object).
``--quick`` runs a subset that finishes in well under a minute.

``synergy bench --random N --seed S`` plans N random spaces and app sets instead
(:mod:`synergy.planning.random_spaces`); the exact method runs on every space of at most
10 devices, over every stage count on spaces of at most 5 devices, within ``--node-budget``
branches.

``synergy bench --planning-time [--quick]`` measures the fast method's planning time on
random spaces of 8 devices x 6 apps and 32 x 16: cold, in a fresh ``synergy plan`` process
per run (per space one with an empty planning cache, then three with the cache it left), and
warm (re-planning in this process), and prints p50 / p95 of each side by side.

``synergy bench --serial-overhead [--baud 921600] [--model NAME ...] [--quick]`` prints, per
zoo model, what each tensor crossing a board's serial port costs: the exact frames and wire
bytes, their line time, the planner's link-model time (``uart_921600``) and the time measured
through a responder on a pseudo-terminal paced at the baud rate
(:mod:`synergy.serial.overhead_bench`; about a minute and a half for the eight models).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from synergy.errors import InvalidArgument, SynergyError
from synergy.planning import batch
from synergy.planning import compiled as planning_compiled
from synergy.planning.bench import load_models, run_bench, summarize
from synergy.planning.bench_report import format_summary, write_outputs
from synergy.planning.cost import CostModel
from synergy.planning.problem import DEFAULT_MAX_STAGES
from synergy.planning.random_spaces import MAX_DEVICES, RANDOM_MODELS, random_workloads, sized_workload
from synergy.planning.registry import MethodPlanner, PlanningOptions
from synergy.planning.space_files import apps_document, space_document
from synergy.planning.workloads import MODEL_NAMES, Workload
from synergy.progress import Progress
from synergy.serial import overhead_bench

__all__ = ["DEFAULT_OUT", "DESCRIPTION", "LEGEND", "register", "run"]

#: What `synergy bench --help` says (plain text: the module doc is for readers of the code).
DESCRIPTION = (
    "Plan every benchmark workload with Synergy's methods and the baselines on the same cost model, "
    "write bench.csv, bench.json and bench.png into --out, report progress on stderr and print a "
    "summary table (--json: the summary object). --quick runs a subset in under a minute; --random N "
    "plans N random spaces instead; --planning-time measures planning time cold and warm; --dataplane "
    "measures one data-plane hop; --serial-overhead what tensors cost on a board's serial port."
)
#: Printed under the summary table: what its columns mean.
LEGEND = (
    "legend: thr x geo = Synergy's throughput / the method's, geometric mean over workloads ((mean): "
    "arithmetic; 2.00 = twice the frames); latency, J/inf = Synergy's against the method's (-: Synergy lower)"
)

DEFAULT_OUT = "bench-out"
#: The exact method's node budget on random spaces (``--node-budget`` overrides it).
RANDOM_NODE_BUDGET = 200_000
#: Spaces of at most this many devices get the exact method over every stage count.
EXACT_ALL_STAGES_DEVICES = 5
#: Sizes (devices, apps) of the planning-time benchmark and their p95 targets (ms).
TIMING_SIZES = ((8, 6), (32, 16))
TIMING_TARGETS_MS = {"8 dev x 6 apps": 100.0, "32 dev x 16 apps": 2000.0}
#: Random spaces per size; fresh processes per space with the cache the first one (with an
#: empty cache) left; re-plans per space when warm. With one cold run per space a p95 over
#: eight figures would be their largest (any one pause of a shared machine decides it).
TIMING_RUNS = 8
QUICK_TIMING_RUNS = 3
COLD_REPEATS = 3
WARM_REPEATS = 5


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``bench`` subcommand to ``subparsers`` (from ``add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="benchmark the planner against the baselines (prints figures, writes bench-out/)",
        description=DESCRIPTION,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--quick", action="store_true", help="a subset of the workloads (under a minute)")
    parser.add_argument(
        "--dataplane",
        action="store_true",
        help="instead: one data-plane hop on loopback against raw TCP and plain gRPC, median of 3 "
        "(1 KB latency and throughput, 1 MB and 8 MB tensors; about a minute, --quick a few seconds)",
    )
    parser.add_argument("--random", type=int, default=0, metavar="N", help="plan N random spaces and app sets")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random spaces (default 1)")
    parser.add_argument(
        "--node-budget",
        type=int,
        default=None,
        metavar="NODES",
        help="branches the exact method may examine before it stops unproven",
    )
    parser.add_argument(
        "--planning-time",
        action="store_true",
        help="measure planning time cold (fresh `synergy plan` processes) and warm, by size",
    )
    parser.add_argument(
        "--serial-overhead",
        action="store_true",
        help="instead: each zoo model's cut tensors over the serial protocol at --baud, exact frames and "
        "line time against the planner's uart_921600 link model, measured on a paced pty "
        "(about 1.5 minutes; --quick: one repetition each)",
    )
    parser.add_argument(
        "--baud",
        type=int,
        default=overhead_bench.DEFAULT_BAUD,
        help="with --serial-overhead: the UART's baud rate, 10 bits per byte "
        f"(default {overhead_bench.DEFAULT_BAUD:,})",
    )
    parser.add_argument(
        "--model",
        action="append",
        metavar="NAME",
        help="with --serial-overhead: a zoo model (repeatable; default the eight zoo models: "
        + ", ".join(MODEL_NAMES)
        + ")",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    parser.add_argument("--out", default=DEFAULT_OUT, metavar="DIR", help=f"output directory (default {DEFAULT_OUT})")


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; exit status 0, or 1 when the models cannot be loaded."""

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    if args.dataplane:
        from agent import dataplane_bench  # the agent's runtime only for this benchmark

        return dataplane_bench.run_and_print(quick=args.quick)
    if args.planning_time:
        return _planning_time(args)
    if args.serial_overhead:
        return _serial_overhead(args)
    try:
        # Closed before the summary is printed: a bar still on screen would run into it.
        with Progress("bench") as bar:
            if args.random:
                if args.random < 1:
                    raise InvalidArgument("--random needs a positive number of spaces")
                models = load_models(RANDOM_MODELS)
                result = run_bench(
                    workloads=random_workloads(args.random, args.seed, models),
                    models=models,
                    clock=time.perf_counter,
                    progress=bar.report,
                    node_budget=args.node_budget if args.node_budget is not None else RANDOM_NODE_BUDGET,
                    repeats=1,
                    exact_max_devices=MAX_DEVICES,
                    exact_max_stages=_exact_stages,
                )
            else:
                result = run_bench(
                    quick=args.quick, clock=time.perf_counter, progress=bar.report, node_budget=args.node_budget
                )
    except SynergyError as exc:
        print(f"synergy bench: {exc}", file=sys.stderr)
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
        print(LEGEND)
    return 0


def _exact_stages(workload: Workload) -> int:
    """Every stage count on small spaces; elsewhere the fast method's candidate space."""
    n = len(workload.devices)
    return n if n <= EXACT_ALL_STAGES_DEVICES else DEFAULT_MAX_STAGES


# -- serial overhead ----------------------------------------------------------------------


def _serial_overhead(args: argparse.Namespace) -> int:
    try:
        if args.baud <= 0:
            raise InvalidArgument(f"--baud must be positive, not {args.baud}")
        models = load_models(args.model or MODEL_NAMES)
        # Closed before the report is printed: a bar still on screen would run into it.
        with Progress("serial overhead") as bar:
            report = overhead_bench.serial_overhead_report(
                models, baud=args.baud, quick=args.quick, progress=bar.report
            )
    except SynergyError as exc:
        print(f"synergy bench: {exc}", file=sys.stderr)
        return 1
    print(report)
    return 0


# -- planning time ----------------------------------------------------------------------------


def _plan_in_fresh_process(space: Path, apps: Path, cache_home: Path) -> tuple[float, float, float]:
    """(planning ms, planning CPU ms, whole process ms) of one ``synergy plan`` process."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home)}
    command = [sys.executable, "-m", "synergy.cli.main", "plan", "--space", str(space), "--apps", str(apps), "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False, timeout=600)
    wall = (time.perf_counter() - start) * 1000
    try:
        out = json.loads(done.stdout)
    except json.JSONDecodeError as exc:
        raise SynergyError(f"synergy plan failed ({done.returncode}): {done.stderr.strip()[-500:]}") from exc
    return float(out["planning_ms"]), float(out["planning_cpu_ms"]), wall


#: Additions in the reference loop printed beside the planning times.
REFERENCE_LOOP = 1_000_000


def reference_loop_ms() -> float:
    """Milliseconds a fixed pure-Python loop takes now (the fastest of three).

    Printed at the start and the end of the planning-time run: on a shared machine the
    same work takes up to twice as long from one minute to the next, and this says how
    fast the machine was while the figures were taken.
    """
    best = math.inf
    for _ in range(3):
        start = time.perf_counter()
        total = 0
        for k in range(REFERENCE_LOOP):
            total += k
        best = min(best, (time.perf_counter() - start) * 1000)
    return best


def _planning_time(args: argparse.Namespace) -> int:
    runs = QUICK_TIMING_RUNS if args.quick else TIMING_RUNS
    reference_before = reference_loop_ms()
    models = load_models(RANDOM_MODELS)
    columns = ("cold, empty cache", "cold, disk cache", "warm")
    figures: dict[str, dict[str, list[float]]] = {}
    cpu: dict[str, dict[str, list[float]]] = {}
    process: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="synergy-bench-") as tmp, Progress("planning time") as bar:
        root = Path(tmp)
        for size_index, (devices, apps) in enumerate(TIMING_SIZES):
            size = f"{devices} dev x {apps} apps"
            figures[size] = {c: [] for c in columns}
            cpu[size] = {c: [] for c in columns}
            process[size] = []
            for run in range(runs):
                workload = sized_workload(devices, apps, args.seed + run, models)
                what = f"{size}: run {run + 1}/{runs} ({workload.name})"
                bar.update(size_index * runs + run, len(TIMING_SIZES) * runs, what)
                space, apps_file = root / f"{workload.name}-space.yaml", root / f"{workload.name}-apps.yaml"
                space.write_text(yaml.safe_dump(space_document(workload.devices)), encoding="utf-8")
                apps_file.write_text(yaml.safe_dump(apps_document([a.spec for a in workload.apps])), encoding="utf-8")
                cache_home = root / f"cache-{workload.name}"
                # The first run fills the cache the others read.
                for column in (columns[0], *[columns[1]] * COLD_REPEATS):
                    ms, cpu_ms, wall = _plan_in_fresh_process(space, apps_file, cache_home)
                    figures[size][column].append(ms)
                    cpu[size][column].append(cpu_ms)
                    process[size].append(wall)
                planner = MethodPlanner("synergy", PlanningOptions(), CostModel())
                planner.plan(workload.devices, workload.apps)
                for _ in range(WARM_REPEATS):
                    t0, c0 = time.perf_counter(), time.process_time()
                    planner.plan(workload.devices, workload.apps)
                    figures[size]["warm"].append((time.perf_counter() - t0) * 1000)
                    cpu[size]["warm"].append((time.process_time() - c0) * 1000)
    print(f"planning time of the fast method (ms, p50 / p95 over {runs} random spaces per size, seed {args.seed};")
    print(
        f"cold: a fresh `synergy plan` process per run (per space: one with an empty cache, then {COLD_REPEATS} "
        "with the cache it left), timed from reading the cache to the plan;"
    )
    print(f"warm: {WARM_REPEATS} re-plans per space in one process; CPU: the planning process's own CPU time;")
    print(f"scoring and ranking: {evaluation_kernel()}; planner modules: {planner_modules()})")
    print(f"{'size':<20}" + "".join(f"{c:>24}" for c in columns) + f"{'target p95':>12}")
    for size in figures:
        target = TIMING_TARGETS_MS[size]
        wall_row = "".join(f"{_p(figures[size][c], 0.5):>11.1f} /{_p(figures[size][c], 0.95):>9.1f}  " for c in columns)
        cpu_row = "".join(f"{_p(cpu[size][c], 0.5):>11.1f} /{_p(cpu[size][c], 0.95):>9.1f}  " for c in columns)
        print(f"{size:<20}{wall_row}{target:>10.0f}")
        print(f"{'  (CPU)':<20}{cpu_row}")
        print(f"{'  (whole process)':<20}{_p(process[size], 0.5):>11.1f} /{_p(process[size], 0.95):>9.1f}")
    print(
        f"machine speed: a fixed Python loop of {REFERENCE_LOOP:,} additions took {reference_before:.0f} ms "
        f"before the run and {reference_loop_ms():.0f} ms after it (lower is faster)"
    )
    return 0


def evaluation_kernel() -> str:
    """Which code scores and ranks candidate plans: the C extension, or its Python and numpy
    fallback (the same plans, several times slower) where the package was built without it."""
    if batch.NATIVE:
        return "C extension synergy.planning._fill"
    return "Python and numpy (the C extension synergy.planning._fill was not built)"


def planner_modules() -> str:
    """Whether the planner's modules run compiled (mypyc) or as Python, and why
    (:mod:`synergy.planning.compiled`); the fresh `synergy plan` processes run the same."""
    if planning_compiled.STATE == "compiled":
        return "compiled with mypyc"
    return f"Python ({planning_compiled.STATE.removeprefix('sources: ')})"


def _p(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def _finite(value: Any) -> Any:
    """JSON has no NaN / infinity: print them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def main(argv: list[str] | None = None) -> int:
    """Standalone entry: ``python -m synergy.cli.bench_cmd [--quick] [--json] [--out DIR]``."""
    parser = argparse.ArgumentParser(prog="synergy bench", description=DESCRIPTION)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
