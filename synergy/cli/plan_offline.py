"""``synergy plan --space SPACE --apps APPS``: plan offline from files, no cluster involved.

Reads a space file and an apps file (docs/space-files.md), analyses each app's model (zoo
name or ONNX file), runs one planning method and prints the joint plan: a table by default,
an object with ``--json`` (the schema of :func:`synergy.documents.plan_document`, the same as
``synergy plan --json`` against a live coordinator). An app that cannot be placed is reported
as an error naming the constraint (exit status 1), never as a traceback; bad input (files,
method, models) is exit status 2. ``--list-methods`` lists the methods. The options that only
offline planning takes are refused against a live coordinator (:func:`refuse_offline_options`).

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
from typing import Any, TextIO, TypeVar, cast

from synergy.cli.exits import EXIT_FAILED, EXIT_OK, EXIT_USAGE, exit_status
from synergy.defaults import DEFAULT_PLANNER
from synergy.documents import plan_document
from synergy.errors import InvalidArgument, SynergyError
from synergy.gc_pause import gc_paused, heap_frozen, refreeze
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

__all__ = ["OFFLINE_ONLY", "add_offline_arguments", "outcome_to_json", "refuse_offline_options", "run_offline"]

#: Options of offline planning alone (dest -> flag): unset (None, False) unless given.
OFFLINE_ONLY = {
    "method": "--method",
    "seed": "--seed",
    "node_budget": "--node-budget",
    "max_stages": "--max-stages",
    "no_cache": "--no-cache",
    "objective": "--objective",
}


def add_offline_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the offline planning options to ``parser`` (the ``synergy plan`` subcommand)."""
    parser.add_argument("--space", metavar="FILE", help="space file: devices, boards, sensors, outputs, links")
    parser.add_argument("--apps", metavar="FILE", help="apps file: model, source and target of each app")
    parser.add_argument(
        "--method",
        metavar="NAME",
        help=f"planning method of offline planning (default: {DEFAULT_PLANNER}; see --list-methods); a live "
        "coordinator plans with its own (`synergy coordinator --planner`)",
    )
    parser.add_argument("--list-methods", action="store_true", help="list the planning methods and exit")
    parser.add_argument("--json", action="store_true", help="print the plan as one JSON object")
    parser.add_argument("--seed", type=int, help="seed of the 'random' baseline (default: 0)")
    parser.add_argument(
        "--node-budget",
        type=int,
        metavar="NODES",
        help=f"branches the exact method examines before it stops unproven (default {DEFAULT_NODE_BUDGET})",
    )
    parser.add_argument(
        "--max-stages",
        type=int,
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
        help="what the plan maximises: throughput (default; no app below half its fair rate), fair "
        "(max-min), latency (worst app latency) or energy (power at the required rates); a live "
        "coordinator's is `synergy coordinator --objective`",
    )


def refuse_offline_options(args: argparse.Namespace) -> None:
    """``synergy plan`` against a live coordinator: offline-only options are an error, not ignored."""
    given = [flag for dest, flag in OFFLINE_ONLY.items() if getattr(args, dest, None) not in (None, False)]
    if given:
        raise InvalidArgument(
            f"{', '.join(given)} {'applies' if len(given) == 1 else 'apply'} to offline planning: give "
            "--space FILE and --apps FILE with it (a live coordinator plans with its own method and "
            "objective: `synergy coordinator --planner NAME --objective NAME`)"
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
    """The ``--json`` object: :func:`~synergy.documents.plan_document` with the planning figures."""
    return plan_document(
        outcome.plan,
        {a.spec.app_id: a.spec.name for a in apps},
        planning_ms=planning_ms,
        planning_cpu_ms=planning_cpu_ms if planning_cpu_ms is not None else planning_ms,
        optimal=outcome.optimal,
        proof=outcome.proof,
        power_w=outcome.evaluation.power_w,
    )


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
        print("synergy plan: offline planning needs both --space FILE and --apps FILE", file=err)
        return EXIT_USAGE
    method = args.method or DEFAULT_PLANNER
    try:
        if method not in METHODS:
            raise InvalidArgument(f"unknown planning method {method!r}; known: {', '.join(METHODS)}")
        space = load_space(args.space)
        apps = _analyse(load_apps(args.apps))
        options = PlanningOptions(
            seed=_given(args, "seed", 0),
            calibration=space.calibration,
            objective=_given(args, "objective", DEFAULT_OBJECTIVE),
            node_budget=_given(args, "node_budget", DEFAULT_NODE_BUDGET),
            max_stages=_given(args, "max_stages", DEFAULT_MAX_STAGES),
        )
        cost = CostModel(options.parameters, options.calibration)
        planner = MethodPlanner(method, options, cost)
        cache = None if getattr(args, "no_cache", False) else PlanningCache()
        models = [a.model for a in apps]
        # Everything made so far (modules, analysed models) lives while we plan: the cyclic
        # collector need not walk it again; nor the tens of thousands of entries the cache
        # loads (without that, the first young collection after the load walked them all,
        # as long as the load took). The collector stays off until the plan is timed: its
        # first collection afterwards walks the tables and candidates the plan made and
        # keeps (a few ms; frees nothing), which in this one-shot process is exit work.
        with heap_frozen(), gc_paused():
            # Reading the cache is part of planning in a fresh process: it is timed too.
            start, start_cpu = time.perf_counter(), time.process_time()
            if cache is not None:
                cache.load(cost, models)
                refreeze()
            outcome = planner.plan(space.devices, apps)
            planning_ms = (time.perf_counter() - start) * 1000
            planning_cpu_ms = (time.process_time() - start_cpu) * 1000
        if cache is not None:
            cache.save(cost, models)
            for note in cache.notes:
                print(f"synergy plan: note: planning cache: {note}", file=err)
    except SynergyError as exc:
        print(f"synergy plan: {exc}", file=err)
        return exit_status(exc)
    if args.json:
        print(json.dumps(outcome_to_json(outcome, apps, planning_ms, planning_cpu_ms), indent=2), file=out)
    else:
        _print_table(outcome, apps, planning_ms, out)
    names = {a.spec.app_id: a.spec.name for a in apps}
    for app_id, reason in outcome.plan.unplaced.items():
        print(f"synergy plan: app {names[app_id]!r} cannot be placed: {reason}", file=err)
    return EXIT_FAILED if outcome.plan.unplaced else EXIT_OK


_T = TypeVar("_T")


def _given(args: argparse.Namespace, dest: str, default: _T) -> _T:
    """An offline option's value: as given, else its default (the parser leaves it None)."""
    value = getattr(args, dest, None)
    return default if value is None else cast(_T, value)
