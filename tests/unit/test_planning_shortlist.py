"""The ranker's arrays say what the templates say: its proxy equals one computed template by template."""

from __future__ import annotations

import math
import random

import pytest

from synergy.planning.bench import load_models
from synergy.planning.candidates import CandidateGenerator
from synergy.planning.cost import CostModel
from synergy.planning.problem import PlanningProblem
from synergy.planning.random_spaces import RANDOM_MODELS, sized_workload
from synergy.planning.registry import MethodPlanner, PlanningOptions
from synergy.planning.shortlist import Load, Ranker


def _proxy(cand_work: list[tuple[str, tuple[float, float, float]]], load: Load, cap: float) -> float:
    """The rate the app gets from what the load leaves, device by device (the ranker's proxy)."""
    rate = cap
    for device, work in cand_work:
        free = [max(1.0 - u, 0.0) for u in load.util.get(device, (0.0, 0.0, 0.0))]
        if device in load.serial:
            total = sum(work)
            if total > 0:
                rate = min(rate, free[0] / total)
            continue
        for f, w in zip(free, work, strict=True):
            if w > 0:
                rate = min(rate, f / w)
    return rate


@pytest.mark.parametrize("seed", [1, 4, 6])
def test_ranked_best_is_the_best_proxy_over_every_template(seed: int) -> None:
    models = load_models(RANDOM_MODELS)
    workload = sized_workload(8, 6, seed, models)
    problem = PlanningProblem(workload.devices, workload.apps, CostModel())
    gen = CandidateGenerator(problem)
    ranker = Ranker(gen)
    rng = random.Random(seed)
    ids = [d.device_id for d in workload.devices]
    for app in range(len(workload.apps)):
        templates = gen.templates(app)
        if not templates:
            continue
        for _ in range(3):
            busy = rng.sample(ids, 3)
            load = Load(
                util={d: (rng.random(), rng.random(), rng.random()) for d in busy},
                serial={busy[0]} if rng.random() < 0.5 else set(),
            )
            load.device = {d: max(u) for d, u in load.util.items()}
            top, _ = ranker.rank(app, load, True, 1, 0, 1.5)
            best = -math.inf
            for t in templates:
                devices = iter(gen.choose_devices(t, load.device))
                placed = [
                    (t.source if s == -1 else t.target if s == -2 else next(devices), w)
                    for s, w in zip(t.slots, t.slot_work, strict=True)
                ]
                placed += list(t.endpoint_work)
                best = max(best, _proxy(placed, load, t.cap_hz))
            got = top[0]
            template_work = [(w.device_id, (w.accel_s, w.cpu_s, w.radio_s)) for w in got.cost.work]
            assert _proxy(template_work, load, got.cost.cap_hz) == pytest.approx(best, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("seed", [2, 6])
def test_replans_after_the_memo_is_cleared_plan_as_a_fresh_planner(seed: int) -> None:
    """Re-plans reuse candidates and device choices by object id; when the memo is cleared
    (its entry limit) the templates and arrays are made again, and nothing stale may be used."""
    models = load_models(RANDOM_MODELS)
    workload = sized_workload(8, 6, seed, models)
    fresh = MethodPlanner("synergy", PlanningOptions(), CostModel()).plan(workload.devices, workload.apps)
    planner = MethodPlanner("synergy", PlanningOptions(), CostModel())
    planner.plan(workload.devices, workload.apps)
    for _ in range(3):
        planner.cost_model._caches.memo.clear()  # as at the memo's entry limit
        again = planner.plan(workload.devices, workload.apps)
        assert again.plan.plans == fresh.plan.plans
        assert again.evaluation.rates_hz == fresh.evaluation.rates_hz
