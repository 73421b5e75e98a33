"""Objectives, the no-starvation floor and admission control, on a hand-computed space.

Two devices on 115,200-baud UART links (11,520 B/s, 2 B per message). ``hub`` has the
camera; both have a display. ``light`` needs 1 ms of accelerator per frame and a 1,000 B
input; ``heavy`` needs 0.1 s and a 50,000 B input. By hand (parallel devices):

- heavy on hub alone: 1 / ((5,000,000 + 1) / 50 MHz) = 9.999998/s;
- light on ring: its input crosses the link, 1 / (1,002 / 11,520 B/s) = 11.497/s;
- heavy on ring: 1 / (50,002 / 11,520) = 0.2304/s — while light runs on hub at its
  1,000/s camera cap: the highest sum of rates (1,000.2/s), and heavy starves.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from synergy.errors import InvalidArgument
from synergy.planning.api import PlanningApp
from synergy.planning.cost import CostModel
from synergy.planning.objectives import OBJECTIVES, Goal, placed_scorer, score_of_placed_rates
from synergy.planning.problem import PlanningProblem
from synergy.planning.registry import get_planner
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.planning.throughput import evaluate
from synergy.types import DeviceSpec, JointPlan, Stage

LIGHT = chain_model("light", [LayerSpec(50_000, 10_000, 64)], input_bytes=1_000)
HEAVY = chain_model("heavy", [LayerSpec(5_000_000, 10_000, 64)], input_bytes=50_000)
HEAVY_ON_HUB = 1 / ((5_000_000 + 1) / 50e6)
LIGHT_ON_RING = 11_520 / 1_002
HEAVY_ON_RING = 11_520 / 50_002


def space() -> list[DeviceSpec]:
    return [
        device("hub", sensors=[("camera", 1000.0)], outputs=["display"], link="uart_115200"),
        device("ring", outputs=["display"], link="uart_115200"),
    ]


def with_min(a: PlanningApp, minimum: float) -> PlanningApp:
    return PlanningApp(dataclasses.replace(a.spec, min_rate_hz=minimum), a.model)


def rates(plan: JointPlan) -> dict[str, tuple[float, str]]:
    return {p.app_id: (p.predicted_rate_hz, p.stages[0].device_id) for p in plan.plans}


def test_the_starving_plan_has_the_highest_sum_but_the_default_objective_refuses_it() -> None:
    apps = [app("light", LIGHT, "camera", "display"), app("heavy", HEAVY, "camera", "display")]
    problem = PlanningProblem(space(), apps, CostModel())
    starving = [
        problem.candidate(0, "hub", [Stage("hub", 0, 0)], "hub"),
        problem.candidate(1, "hub", [Stage("ring", 0, 0)], "ring"),
    ]
    ev = evaluate([c.cost for c in starving], problem.by_id)
    assert ev.rates_hz == pytest.approx((1000.0, HEAVY_ON_RING), rel=1e-3)

    for method in ("synergy", "exact"):
        got = rates(get_planner(method)(space(), apps))
        assert got["light"] == (pytest.approx(LIGHT_ON_RING, rel=1e-3), "ring")
        assert got["heavy"] == (pytest.approx(HEAVY_ON_HUB, rel=1e-3), "hub")


def test_fair_maximises_the_smallest_rate() -> None:
    apps = [app("light", LIGHT, "camera", "display"), app("heavy", HEAVY, "camera", "display")]
    got = rates(get_planner("synergy", objective="fair")(space(), apps))
    # Both on hub would give each 1 / (0.001 + 0.1) = 9.9/s; the min is higher apart.
    assert min(r for r, _ in got.values()) == pytest.approx(HEAVY_ON_HUB, rel=1e-3)


def test_latency_objective_keeps_the_worst_latency_lowest() -> None:
    apps = [app("light", LIGHT, "camera", "display"), app("heavy", HEAVY, "camera", "display")]
    plan = get_planner("synergy", objective="latency")(space(), apps)
    # heavy's 0.1 s of inference on hub is the least any plan can give the worst app.
    assert max(p.predicted_latency_s for p in plan.plans) == pytest.approx(0.1 + 0.0008, abs=0.001)


def test_an_app_whose_minimum_exceeds_what_it_could_ever_get_waits_with_the_reason() -> None:
    heavy = with_min(app("heavy", HEAVY, "camera", "display"), 50.0)
    plan = get_planner("synergy")(space(), [app("light", LIGHT, "camera", "display"), heavy])
    assert [p.app_id for p in plan.plans] == ["light"]
    assert plan.unplaced["heavy"] == "admission: needs 50 frames/s, reaches at most 10 even alone in this space"


def test_minimums_that_cannot_hold_together_leave_the_latest_app_waiting() -> None:
    # light needs 995/s: only hub's camera path gives it, and it leaves hub's accelerator
    # 1 - 995 x 0.001 = 0.005 s per second, i.e. 0.05/s for heavy there (0.23/s on ring).
    apps = [
        with_min(app("light", LIGHT, "camera", "display"), 995.0),
        with_min(app("heavy", HEAVY, "camera", "display"), 5.0),
    ]
    plan = get_planner("synergy")(space(), apps)
    assert [p.app_id for p in plan.plans] == ["light"]
    assert plan.plans[0].predicted_rate_hz >= 995.0
    assert plan.unplaced["heavy"].startswith("admission: needs 5 frames/s, the plan gives it ")


def test_unknown_objectives_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown objective 'speed'"):
        get_planner("synergy", objective="speed")


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_the_batch_scorer_gives_the_scores_of_the_plain_one(objective: str) -> None:
    rng = random.Random(objective)
    for _ in range(500):
        n = rng.randint(1, 7)
        goal = Goal(
            objective,
            weights=tuple(rng.choice([1.0, 2.5, 0.5]) for _ in range(n)),
            minimums=tuple(rng.choice([0.0, 0.0, rng.uniform(0.1, 20)]) for _ in range(n)),
            floors=tuple(rng.choice([0.0, rng.uniform(0.1, 20)]) for _ in range(n)),
            alone=(10.0,) * n,
        )
        apps = rng.sample(range(n), rng.randint(0, n))
        scorer = placed_scorer(goal, n, apps)
        for _ in range(5):
            figures = tuple([rng.uniform(0, top) for _ in apps] for top in (30.0, 0.1, 1e-3))
            result = None if rng.random() < 0.1 else figures
            assert scorer(result) == score_of_placed_rates(goal, n, apps, result)
