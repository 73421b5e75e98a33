"""Templates as arrays say what the solved cuts say, and re-plans reuse what they may."""

from __future__ import annotations

import pytest

from synergy.planning.bench import load_models
from synergy.planning.candidates import SOURCE_SLOT, CandidateGenerator, Template
from synergy.planning.cost import CostModel
from synergy.planning.problem import PlanningProblem
from synergy.planning.random_spaces import RANDOM_MODELS, random_workloads, sized_workload
from synergy.planning.registry import MethodPlanner, PlanningOptions
from synergy.planning.workloads import Workload


def _templates_from_cuts(gen: CandidateGenerator, app: int) -> list[Template]:
    """An app's templates made one by one from the solved cuts, in the documented order."""
    p = gen.problem
    out: list[Template] = []
    for pair in gen.templates(app).pairs:
        for slots in pair.table.slots:
            for cut in gen._cuts(app, pair.source, pair.target, slots):
                ends = tuple((pair.source if role == SOURCE_SLOT else pair.target, w) for role, w in cut.endpoint_work)
                out.append(
                    Template(
                        app, pair.source, pair.target, slots, cut.ranges, cut.bottleneck_s, cut.latency_s,
                        cut.slot_work, ends, cut.slot_parts, pair.cap_hz, cut.serial_s,
                    )
                )
        # Every slot sequence with cuts is in the table, none other.
        every = [s for s in gen._slot_sequences(pair.source, pair.target, p.stage_limit(app), gen.pairs(app))]
        assert list(pair.table.slots) == [s for s in every if gen._cuts(app, pair.source, pair.target, s)]
    out.sort(key=lambda t: (t.bottleneck_s, t.latency_s, len(t.slots)))
    return out


@pytest.mark.parametrize("seed", [1, 3, 6])
def test_a_template_set_holds_the_templates_of_the_cuts_in_order(seed: int) -> None:
    models = load_models(RANDOM_MODELS)
    workload = sized_workload(8, 6, seed, models)
    gen = CandidateGenerator(PlanningProblem(workload.devices, workload.apps, CostModel()))
    for app in range(len(workload.apps)):
        templates = gen.templates(app)
        expected = _templates_from_cuts(gen, app)
        assert list(templates) == expected
        assert templates.bottleneck.tolist() == [t.bottleneck_s for t in expected]
        assert templates.latency.tolist() == [t.latency_s for t in expected]
        assert templates.serial.tolist() == [t.serial_bottleneck_s for t in expected]
        assert templates.cap.tolist() == [t.cap_hz for t in expected]
        assert templates.lengths.tolist() == [len(t.slots) for t in expected]
        assert templates.first_slot.tolist() == [t.slots[0] for t in expected]
        if len(templates):
            assert templates[0] is templates[0] and templates[-1] is templates[len(templates) - 1]


def test_the_kinds_of_a_space_share_their_tables_across_apps_of_one_model() -> None:
    models = load_models(RANDOM_MODELS)
    for workload in random_workloads(6, 9, models):
        gen = CandidateGenerator(PlanningProblem(workload.devices, workload.apps, CostModel()))
        p = gen.problem
        seen: dict[tuple[object, ...], object] = {}
        for app in range(len(workload.apps)):
            for pair in gen.templates(app).pairs:
                kind = (
                    id(workload.apps[app].model), p.class_of[pair.source], p.class_of[pair.target],
                    pair.source == pair.target, p.stage_limit(app), gen.pairs(app),
                )
                assert seen.setdefault(kind, pair.table) is pair.table


def _replan_counting_frame_costs(workload: Workload) -> int:
    """Plan twice with one planner; the frame costs the second plan computed (its plan must
    be the first's)."""
    cost = CostModel()
    planner = MethodPlanner("synergy", PlanningOptions(), cost)
    first = planner.plan(workload.devices, workload.apps)
    assert cost.frame_costs_made > 0
    before = cost.frame_costs_made
    again = planner.plan(workload.devices, workload.apps)
    assert again.plan.plans == first.plan.plans
    return cost.frame_costs_made - before


def test_a_replan_reuses_the_baselines_candidates_with_plain_links() -> None:
    workload = sized_workload(8, 6, 2, load_models(RANDOM_MODELS))
    assert _replan_counting_frame_costs(workload) == 0  # every candidate came from the first plan


def test_a_replan_makes_candidates_anew_on_pair_links_and_shared_air() -> None:
    models = load_models(RANDOM_MODELS)
    shared = [
        w for w in random_workloads(24, 3, models)
        if not PlanningProblem(w.devices, w.apps, CostModel()).plain_links and len(w.apps) > 1
    ]
    assert shared, "the generator makes some spaces with a shared medium"
    # Costs there depend on more than the templates' signature.
    assert _replan_counting_frame_costs(shared[0]) > 0


def test_a_plan_leaves_no_cycle_for_the_collector() -> None:
    """The candidate generator and its problem refer to each other (the problem reuses the
    generator's candidates); the planner drops that reference when done, so reference counting
    frees them as the plan returns, not the cyclic collector, which a plan keeps paused."""
    import gc

    def alive() -> int:
        return sum(isinstance(x, PlanningProblem | CandidateGenerator) for x in gc.get_objects())

    workload = random_workloads(1, 4, load_models(RANDOM_MODELS))[0]
    planner = MethodPlanner("synergy", PlanningOptions(), CostModel())
    planner.plan(workload.devices, workload.apps)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        before = alive()
        for _ in range(2):
            planner.plan(workload.devices, workload.apps)
            assert alive() == before
        # And the check can fail: a problem still holding its generator outlives its name.
        problem = PlanningProblem(workload.devices, workload.apps, planner.cost_model)
        CandidateGenerator(problem)
        del problem
        assert alive() == before + 2
    finally:
        if was_enabled:
            gc.enable()
