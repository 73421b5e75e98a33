"""Exact search against brute force, budgets, and the fast method's guarantees."""

from __future__ import annotations

import itertools

import pytest

from synergy.hardware.boards import MAX78002
from synergy.planning.api import PlanningApp
from synergy.planning.candidates import CandidateGenerator
from synergy.planning.cost import CostModel
from synergy.planning.fit import estimate_fit
from synergy.planning.problem import PlanningProblem
from synergy.planning.registry import BASELINES, MethodPlanner, PlanningOptions
from synergy.planning.search import exact_search
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.types import DeviceSpec

LIGHT = chain_model("light", [LayerSpec(20_000, 20_000, 256), LayerSpec(20_000, 20_000, 64)], input_bytes=1_024)
HEAVY = chain_model(
    "heavy",
    [LayerSpec(300_000, 200_000, 4_096), LayerSpec(300_000, 200_000, 512), LayerSpec(100_000, 100_000, 64)],
    input_bytes=3_072,
)


def tiny_spaces() -> list[tuple[list[DeviceSpec], list[PlanningApp]]]:
    return [
        (
            [
                device("glasses", sensors=[("camera", 1000.0)], outputs=["display"]),
                device("watch", outputs=["display"]),
            ],
            [app("a", HEAVY, "camera", "display"), app("b", LIGHT, "camera", "display")],
        ),
        (
            [
                device("glasses", sensors=[("camera", 1000.0)], outputs=["display"], link="ble5_2m"),
                device("watch", MAX78002, sensors=[("imu", 500.0)], outputs=["haptics"], link="ble5_2m"),
                device("ring", link="ble_48k"),
            ],
            [app("a", HEAVY, "camera", "display"), app("b", LIGHT, "imu", "haptics")],
        ),
        (
            [
                device("glasses", sensors=[("camera", 1000.0)], outputs=["display"]),
                device("watch", sensors=[("imu", 800.0)], outputs=["display"]),
                device("ring"),
            ],
            [
                app("a", HEAVY, "camera", "display"),
                app("b", LIGHT, "imu", "display"),
                app("c", LIGHT, "camera", "display"),
            ],
        ),
    ]


@pytest.mark.parametrize("space", range(3))
def test_exact_equals_brute_force_on_tiny_spaces(space: int) -> None:
    devices, apps = tiny_spaces()[space]
    problem = PlanningProblem(devices, apps, CostModel(checker=estimate_fit))
    gen = CandidateGenerator(problem)
    lists = [gen.concrete(i, prune=False) for i in range(len(apps))]
    brute = max(problem.objective(list(combo)) for combo in itertools.product(*lists))
    result = exact_search(problem, gen, node_budget=10**7)
    assert result.optimal
    chosen = [c for c in result.chosen if c is not None]
    assert problem.objective(chosen) == pytest.approx(brute, rel=1e-9)


def test_exact_without_budget_reports_not_optimal_and_still_plans() -> None:
    devices, apps = tiny_spaces()[2]
    cost = CostModel(checker=estimate_fit)
    planner = MethodPlanner("exact", PlanningOptions(node_budget=1), cost)
    outcome = planner.plan(devices, apps)
    assert not outcome.optimal
    assert len(outcome.plan.plans) == 3
    # It keeps at least what the fast method found (its seed).
    fast = MethodPlanner("synergy", PlanningOptions(), cost).plan(devices, apps)
    assert outcome.plan.system_throughput >= fast.plan.system_throughput * (1 - 1e-9)


@pytest.mark.parametrize("space", range(3))
def test_fast_method_never_below_a_baseline_and_exact_never_below_fast(space: int) -> None:
    devices, apps = tiny_spaces()[space]
    cost = CostModel(checker=estimate_fit)
    fast = MethodPlanner("synergy", PlanningOptions(), cost).plan(devices, apps).plan.system_throughput
    exact = MethodPlanner("exact", PlanningOptions(), cost).plan(devices, apps).plan.system_throughput
    for name in BASELINES:
        base = MethodPlanner(name, PlanningOptions(), cost).plan(devices, apps).plan.system_throughput
        assert fast >= base * (1 - 1e-9), name
    assert exact >= fast * (1 - 1e-9)


def test_planning_is_deterministic() -> None:
    devices, apps = tiny_spaces()[2]
    first = MethodPlanner("synergy", PlanningOptions(), CostModel(checker=estimate_fit)).plan(devices, apps)
    again = MethodPlanner("synergy", PlanningOptions(), CostModel(checker=estimate_fit)).plan(devices, apps)
    assert first.plan == again.plan


def test_joint_plan_records_predictions_per_app() -> None:
    devices, apps = tiny_spaces()[0]
    outcome = MethodPlanner("synergy", PlanningOptions(), CostModel(checker=estimate_fit)).plan(devices, apps)
    plan = outcome.plan
    assert plan.method == "synergy" and plan.epoch == 0
    assert sum(p.predicted_rate_hz for p in plan.plans) == pytest.approx(plan.system_throughput)
    assert all(p.predicted_latency_s > 0 for p in plan.plans)
    assert plan.bottleneck
    for p in plan.plans:
        layers = [(s.first_layer, s.last_layer) for s in p.stages]
        assert layers[0][0] == 0 and all(b[0] == a[1] + 1 for a, b in itertools.pairwise(layers))
        assert len({s.device_id for s in p.stages}) == len(p.stages)
