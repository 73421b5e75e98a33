"""``synergy plan --space SPACE --apps APPS``: plan offline from files, no cluster involved.

Reads a space file and an apps file (docs/space-files.md), analyses each app's model (zoo
name or ONNX file), runs one planning method and prints the joint plan: a table by default,
an object with ``--json``. An app that cannot be placed is reported as an error naming the
constraint (exit status 1), never as a traceback. ``--list-methods`` lists the methods.

The lead wires these functions into the ``synergy`` command::

    add_offline_arguments(plan_parser)   # --space --apps --method --list-methods --json --seed --objective
                                         # --node-budget --max-stages --no-cache
    status = run_offline(args)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from synergy.defaults import DEFAULT_PLANNER
from synergy.errors import SynergyError
from synergy.hardware.analysis import analyze_model
from synergy.hardware.model import HardwareModel
from synergy.models.loader import load_model
from synergy.planning.api import PlanningApp
from synergy.planning.cost import CostModel
from synergy.planning.disk_cache import PlanningCache
from synergy.planning.objectives import DEFAULT_OBJECTIVE, OBJECTIVES
from synergy.planning.problem import DEFAULT_MAX_STAGES
from synergy.planning.registry import METHODS, MethodPlanner, PlanningOptions, PlanOutcome
from synergy.planning.search import DEFAULT_NODE_BUDGET
from synergy.planning.space_files import AppEntry, load_apps, load_space

__all__ = ["add_offline_arguments", "outcome_to_json", "run_offline"]

#: Exit statuses: planned everything / some app could not be placed or bad input.
EXIT_OK = 0
EXIT_PROBLEM = 1


def add_offline_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the offline planning options to ``parser`` (the ``synergy plan`` subcommand)."""
    parser.add_argument("--space", metavar="FILE", help="space file: devices, boards, sensors, outputs, links")
    parser.add_argument("--apps", metavar="FILE", help="apps file: model, source and target of each app")
    parser.add_argument(
        "--method",
        default=DEFAULT_PLANNER,
        metavar="NAME",
        help=f"planning method (default: {DEFAULT_PLANNER}; see --list-methods)",
    )
    parser.add_argument("--list-methods", action="store_true", help="list the planning methods and exit")
    parser.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    parser.add_argument("--seed", type=int, default=0, help="seed of the 'random' baseline (default: 0)")
    parser.add_argument(
        "--node-budget",
        type=int,
        default=DEFAULT_NODE_BUDGET,
        metavar="NODES",
        help=f"branches the exact method examines before it stops unproven (default {DEFAULT_NODE_BUDGET})",
    )
    parser.add_argument(
        "--max-stages",
        type=int,
        default=DEFAULT_MAX_STAGES,
        metavar="N",
        help=f"devices one app may be split over (default {DEFAULT_MAX_STAGES}, more when a model needs it)",
    )
    parser.add_argument(
        "--no-cache",
        action="store_true",
        help="neither read nor write the planner's tables and solved cuts under $XDG_CACHE_HOME/synergy",
    )
    parser.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=DEFAULT_OBJECTIVE,
        help="what the plan maximises: throughput (default; no app below half its fair rate), fair "
        "(max-min), latency (worst app latency) or energy (power at the required rates)",
    )


def _analyse(entries: Sequence[AppEntry]) -> list[PlanningApp]:
    """Load and analyse each app's model; one model referenced twice is analysed once."""
    cache: dict[str, HardwareModel] = {}
    apps = []
    for entry in entries:
        model = cache.get(entry.model_ref)
        if model is None:
            proto, name = load_model(entry.model_ref)
            model = analyze_model(proto, name)
            cache[entry.model_ref] = model
        apps.append(PlanningApp(entry.spec, model))
    return apps


def outcome_to_json(
    outcome: PlanOutcome, apps: Sequence[PlanningApp], planning_ms: float, planning_cpu_ms: float | None = None
) -> dict[str, Any]:
    """The ``--json`` object: method, throughput, bottleneck, timing, optimality, proof, apps."""
    plan = outcome.plan
    by_id = {a.spec.app_id: a for a in apps}
    rows = []
    for p in plan.plans:
        rows.append(
            {
                "name": by_id[p.app_id].spec.name,
                "rate": p.predicted_rate_hz,
                "latency_ms": 1000.0 * p.predicted_latency_s,
                "stages": [{"device": s.device_id, "layers": [s.first_layer, s.last_layer]} for s in p.stages],
                "source": p.source_device,
                "target": p.target_device,
                "parallel_devices": list(p.parallel_devices),
            }
        )
    return {
        "method": plan.method,
        "system_throughput": plan.system_throughput,
        "bottleneck": plan.bottleneck,
        "planning_ms": planning_ms,
        "planning_cpu_ms": planning_cpu_ms if planning_cpu_ms is not None else planning_ms,
        "optimal": outcome.optimal,
        "proof": outcome.proof,
        "power_w": outcome.evaluation.power_w,
        "apps": rows,
        "unplaced": {by_id[a].spec.name: why for a, why in plan.unplaced.items()},
    }


def _print_table(outcome: PlanOutcome, apps: Sequence[PlanningApp], planning_ms: float, out: TextIO) -> None:
    plan = outcome.plan
    names = {a.spec.app_id: a.spec.name for a in apps}
    proof = outcome.proof or ("proven optimal" if outcome.optimal else "not proven optimal")
    print(
        f"method {plan.method}: {plan.system_throughput:.2f} inferences/s, bottleneck {plan.bottleneck or '-'}, "
        f"{outcome.evaluation.power_w * 1000:.1f} mW, planned in {planning_ms:.1f} ms ({proof})",
        file=out,
    )
    for p in plan.plans:
        stages = " -> ".join(f"{s.device_id}[{s.first_layer}-{s.last_layer}]" for s in p.stages)
        print(
            f"  {names[p.app_id]:<20} {p.predicted_rate_hz:9.2f}/s {1000 * p.predicted_latency_s:9.1f} ms  "
            f"{p.source_device} => {stages} => {p.target_device}",
            file=out,
        )


def run_offline(args: argparse.Namespace, *, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run ``synergy plan --space ... --apps ...`` (or ``--list-methods``); returns the exit status."""
    out = out or sys.stdout
    err = err or sys.stderr
    if getattr(args, "list_methods", False):
        if args.json:
            print(json.dumps([{"name": m.name, "kind": m.kind, "doc": m.doc} for m in METHODS.values()]), file=out)
        else:
            for m in METHODS.values():
                print(f"{m.name:<22} {m.kind:<9} {m.doc}", file=out)
        return EXIT_OK
    if not args.space or not args.apps:
        print("error: offline planning needs both --space FILE and --apps FILE", file=err)
        return EXIT_PROBLEM
    try:
        if args.method not in METHODS:
            raise SynergyError(f"unknown planning method {args.method!r}; known: {', '.join(METHODS)}")
        space = load_space(args.space)
        apps = _analyse(load_apps(args.apps))
        options = PlanningOptions(
            seed=args.seed,
            calibration=space.calibration,
            objective=getattr(args, "objective", DEFAULT_OBJECTIVE),
            node_budget=getattr(args, "node_budget", DEFAULT_NODE_BUDGET),
            max_stages=getattr(args, "max_stages", DEFAULT_MAX_STAGES),
        )
        cost = CostModel(options.parameters, options.calibration)
        planner = MethodPlanner(args.method, options, cost)
        cache = None if getattr(args, "no_cache", False) else PlanningCache()
        models = [a.model for a in apps]
        # Reading the cache is part of planning in a fresh process: it is timed too.
        start, start_cpu = time.perf_counter(), time.process_time()
        if cache is not None:
            cache.load(cost, models)
        outcome = planner.plan(space.devices, apps)
        planning_ms = (time.perf_counter() - start) * 1000
        planning_cpu_ms = (time.process_time() - start_cpu) * 1000
        if cache is not None:
            cache.save(cost, models)
            for note in cache.notes:
                print(f"note: planning cache: {note}", file=err)
    except SynergyError as exc:
        print(f"error: {exc}", file=err)
        return EXIT_PROBLEM
    if args.json:
        print(json.dumps(outcome_to_json(outcome, apps, planning_ms, planning_cpu_ms), indent=2), file=out)
    else:
        _print_table(outcome, apps, planning_ms, out)
    names = {a.spec.app_id: a.spec.name for a in apps}
    for app_id, reason in outcome.plan.unplaced.items():
        print(f"error: app {names[app_id]!r} cannot be placed: {reason}", file=err)
    return EXIT_PROBLEM if outcome.plan.unplaced else EXIT_OK
