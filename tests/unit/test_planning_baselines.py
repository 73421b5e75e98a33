"""Each baseline and ablation does what its documentation says."""

from __future__ import annotations

import pytest

from synergy.hardware.boards import MAX78000, MAX78002
from synergy.planning.candidates import CandidateGenerator
from synergy.planning.cost import CostModel
from synergy.planning.fit import estimate_fit
from synergy.planning.problem import PlanningProblem
from synergy.planning.registry import METHODS, MethodPlanner, PlanningOptions, PlanOutcome
from synergy.planning.search import resource_loads, standalone_rate
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.types import DeviceSpec, ExecutionPlan

SMALL = chain_model("small", [LayerSpec(50_000, 40_000, 512) for _ in range(4)], input_bytes=3_072)
#: 12 layers of 100 KB: needs 3 MAX78000 (442 KB each) or one MAX78002.
BIG = chain_model("big", [LayerSpec(80_000, 100_000, 256) for _ in range(12)], input_bytes=3_072)


def space() -> list[DeviceSpec]:
    return [
        device("glasses", sensors=[("camera", 200.0)], outputs=["display"]),
        device("watch", outputs=["display"]),
        device("ring"),
        device("pendant", MAX78002),
    ]


def plan(method: str, devices: list[DeviceSpec], apps: list, **options: object) -> PlanOutcome:
    return MethodPlanner(method, PlanningOptions(**options), CostModel(checker=estimate_fit)).plan(devices, apps)  # type: ignore[arg-type]


def one(outcome: PlanOutcome) -> ExecutionPlan:
    assert len(outcome.plan.plans) == 1
    return outcome.plan.plans[0]


def test_every_method_is_registered_with_a_doc() -> None:
    expected = {
        "synergy", "exact", "source_only", "best_single_device", "neurosurgeon", "pipeedge", "exo",
        "greedy_first_fit", "random", "synergy_no_joint", "synergy_no_parallel", "spread",
    }
    assert expected <= set(METHODS)
    assert all(info.doc and info.name == name for name, info in METHODS.items())


def test_source_only_runs_everything_on_the_source() -> None:
    p = one(plan("source_only", space(), [app("a", SMALL, "camera", "display")]))
    assert p.source_device == "glasses"
    assert [(s.device_id, s.first_layer, s.last_layer) for s in p.stages] == [("glasses", 0, 3)]
    assert p.target_device == "glasses"  # the source has the output


def test_source_only_cannot_place_a_model_too_big_for_its_source() -> None:
    outcome = plan("source_only", space(), [app("a", BIG, "camera", "display")])
    assert "weight memory" in outcome.plan.unplaced["a"]


def test_best_single_device_picks_the_fastest_single_device() -> None:
    devices = space()
    p = one(plan("best_single_device", devices, [app("a", BIG, "camera", "display")]))
    assert [s.device_id for s in p.stages] == ["pendant"]  # the only one that holds it
    problem = PlanningProblem(devices, [app("a", SMALL, "camera", "display")], CostModel(checker=estimate_fit))
    best = max(
        standalone_rate(resource_loads(problem.candidate(0, "glasses", [st], t), False), 200.0)
        for d in devices
        for t in ("glasses", "watch")
        for st in [type(p.stages[0])(d.device_id, 0, 3)]
    )
    small = one(plan("best_single_device", devices, [app("a", SMALL, "camera", "display")]))
    assert len(small.stages) == 1
    assert small.predicted_rate_hz == pytest.approx(best)


def test_neurosurgeon_splits_at_most_once_with_the_head_on_the_source() -> None:
    p = one(plan("neurosurgeon", space(), [app("a", BIG, "camera", "display")]))
    assert len(p.stages) <= 2
    if len(p.stages) == 2:
        assert p.stages[0].device_id == p.source_device


def test_pipeedge_takes_the_min_bottleneck_pipeline_of_each_app() -> None:
    devices = space()
    apps = [app("a", BIG, "camera", "display"), app("b", BIG, "camera", "display")]
    outcome = plan("pipeedge", devices, apps)
    # Each app is planned alone: both pick a pipeline of the same devices and contend (only
    # the order among equally fast pipelines follows the load the first app left).
    stages = [sorted(s.device_id for s in p.stages) for p in outcome.plan.plans]
    assert stages[0] == stages[1]
    problem = PlanningProblem(devices, apps[:1], CostModel(checker=estimate_fit))
    gen = CandidateGenerator(problem)
    best = min(t.serial_bottleneck_s for t in gen.templates(0))
    alone = plan("pipeedge", devices, apps[:1]).plan.plans[0]
    assert alone.predicted_rate_hz == pytest.approx(min(200.0, 1 / best))


def test_exo_splits_in_proportion_to_weight_memory() -> None:
    devices = [
        device("glasses", sensors=[("camera", 30.0)], outputs=["display"]),
        device("watch"),
        device("ring"),
    ]
    p = one(plan("exo", devices, [app("a", BIG, "camera", "display")]))
    # Three equal boards: four 100 KB layers each.
    assert [(s.device_id, s.first_layer, s.last_layer) for s in p.stages] == [
        ("glasses", 0, 3),
        ("watch", 4, 7),
        ("ring", 8, 11),
    ]


def test_greedy_first_fit_packs_in_arrival_order() -> None:
    devices = [
        device("glasses", sensors=[("camera", 30.0)], outputs=["display"]),
        device("watch"),
        device("ring"),
        device("pendant", MAX78002),
    ]
    apps = [app("a", BIG, "camera", "display"), app("b", SMALL, "camera", "display")]
    first, second = plan("greedy_first_fit", devices, apps).plan.plans
    # a fills glasses with four 100 KB layers, then watch, then ring; b's 40 KB layers
    # then take the ~42 KB left on each, in device order.
    assert [(s.device_id, s.first_layer, s.last_layer) for s in first.stages] == [
        ("glasses", 0, 3),
        ("watch", 4, 7),
        ("ring", 8, 11),
    ]
    assert [(s.device_id, s.first_layer, s.last_layer) for s in second.stages] == [
        ("glasses", 0, 0),
        ("watch", 1, 1),
        ("ring", 2, 2),
        ("pendant", 3, 3),
    ]
    # In the other arrival order b fits whole on its source.
    b_first = plan("greedy_first_fit", devices, apps[::-1]).plan.plans[0]
    assert [s.device_id for s in b_first.stages] == ["glasses"]


def test_random_is_seeded_and_feasible() -> None:
    devices = space()
    apps = [app("a", BIG, "camera", "display"), app("b", SMALL, "camera", "display")]
    same = [plan("random", devices, apps, seed=3).plan for _ in range(2)]
    assert same[0] == same[1]
    assert not same[0].unplaced
    plans = {tuple(p.stages for p in plan("random", devices, apps, seed=s).plan.plans) for s in range(6)}
    assert len(plans) > 1


def test_spread_splits_evenly_over_up_to_three_devices() -> None:
    devices = space()
    p = one(plan("spread", devices, [app("a", BIG, "camera", "display", target_device="watch")]))
    assert [(s.first_layer, s.last_layer) for s in p.stages] == [(0, 3), (4, 7), (8, 11)]
    assert len({s.device_id for s in p.stages}) == 3
    # Source first, target last.
    assert p.stages[0].device_id == p.source_device == "glasses"
    assert p.stages[-1].device_id == p.target_device == "watch"


def test_spread_uses_fewer_devices_when_the_space_is_small() -> None:
    devices = [device("solo", MAX78002, sensors=[("camera", 30.0)], outputs=["display"])]
    p = one(plan("spread", devices, [app("a", SMALL, "camera", "display")]))
    assert [(s.device_id, s.first_layer, s.last_layer) for s in p.stages] == [("solo", 0, 3)]


def test_ablation_without_parallelization_overlaps_nothing() -> None:
    outcome = plan("synergy_no_parallel", space(), [app("a", BIG, "camera", "display")])
    assert outcome.evaluation.parallel_devices == frozenset()
    assert all(not p.parallel_devices for p in outcome.plan.plans)


def test_ablation_without_joint_planning_places_each_app_as_if_alone() -> None:
    devices = space()
    apps = [app("a", SMALL, "camera", "display"), app("b", SMALL, "camera", "display")]
    outcome = plan("synergy_no_joint", devices, apps)
    alone = plan("synergy_no_joint", devices, apps[:1]).plan.plans[0]
    for p in outcome.plan.plans:
        assert p.stages == alone.stages


def test_joint_synergy_beats_the_independent_ablation_when_apps_contend() -> None:
    devices = space()
    apps = [app(n, BIG, "camera", "display") for n in "abc"]
    joint = plan("synergy", devices, apps).plan.system_throughput
    alone = plan("synergy_no_joint", devices, apps).plan.system_throughput
    assert joint >= alone


def test_baselines_fit_every_partition_on_its_board() -> None:
    devices = space()
    apps = [app("a", BIG, "camera", "display"), app("b", SMALL, "camera", "display")]
    by_id = {d.device_id: d for d in devices}
    for name in METHODS:
        for p in plan(name, devices, apps).plan.plans:
            for s in p.stages:
                model = BIG if p.app_id == "a" else SMALL
                assert estimate_fit(model, s.first_layer, s.last_layer, by_id[s.device_id].board).fits, name
    assert MAX78000.weight_bytes < BIG.weight_bytes <= MAX78002.weight_bytes


def twin_cameras() -> list[DeviceSpec]:
    return [
        device("left", sensors=[("camera", 200.0)], outputs=["display"]),
        device("right", sensors=[("camera", 200.0)], outputs=["display"]),
        device("belt"),
        device("patch"),
    ]


@pytest.mark.parametrize("method", ["source_only", "best_single_device", "neurosurgeon", "pipeedge"])
def test_baselines_break_ties_to_the_least_loaded_device(method: str) -> None:
    apps = [app("a", SMALL, "camera", "display"), app("b", SMALL, "camera", "display")]
    outcome = plan(method, twin_cameras(), apps)
    assert len(outcome.plan.plans) == 2
    first, second = outcome.plan.plans
    # Identical apps with identical choices: the second does not pile onto the first's devices.
    assert first.source_device != second.source_device
    if method != "pipeedge":  # pipeedge's 3-device pipelines cannot be disjoint on 4 devices
        assert not {s.device_id for s in first.stages} & {s.device_id for s in second.stages}
    assert first.predicted_rate_hz == pytest.approx(second.predicted_rate_hz)
