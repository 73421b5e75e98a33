"""The benchmark's random spaces, the space / apps documents that carry them to a fresh
``synergy plan`` process, and what the exact method says it proved."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from synergy.hardware.boards import MAX78002
from synergy.hardware.model import HardwareModel
from synergy.planning.bench import load_models
from synergy.planning.random_spaces import (
    MAX_APPS,
    MAX_DEVICES,
    MIN_DEVICES,
    RANDOM_MODELS,
    random_workloads,
    sized_workload,
)
from synergy.planning.registry import MethodPlanner, PlanningOptions, get_planner
from synergy.planning.space_files import apps_document, load_apps, load_space, space_document
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.planning.workloads import NEEDS_MAX78002


@pytest.fixture(scope="module")
def models() -> dict[str, HardwareModel]:
    # The generator only reads the models' names: small stand-ins keep this test fast.
    return {
        name: chain_model(name, [LayerSpec(10_000, 1_000, 100)], input_bytes=1_000) for name in RANDOM_MODELS
    }


def test_random_spaces_are_reproducible_and_within_bounds(models: dict[str, HardwareModel]) -> None:
    first = random_workloads(30, 5, models)
    assert first == random_workloads(30, 5, models)
    assert first != random_workloads(30, 6, models)
    for w in first:
        assert MIN_DEVICES <= len(w.devices) <= MAX_DEVICES
        assert 1 <= len(w.apps) <= MAX_APPS
        assert len({d.device_id for d in w.devices}) == len(w.devices)
        for a in w.apps:
            # Every app has a sensor and an output somewhere, and a chip that can run it.
            assert any(d.sensor(a.spec.source_type) for d in w.devices)
            assert any(d.has_output(a.spec.target_type) for d in w.devices)
            if a.spec.model in NEEDS_MAX78002:
                assert any(d.board == MAX78002 for d in w.devices)
    # Mixed boards and links show up across the draws.
    assert {d.board.name for w in first for d in w.devices} == {"max78000", "max78002"}
    assert len({d.link.name for w in first for d in w.devices}) >= 4
    assert {a.spec.model for w in first for a in w.apps} == set(RANDOM_MODELS)


def test_sized_workload_has_the_size_asked_for(models: dict[str, HardwareModel]) -> None:
    w = sized_workload(32, 16, 3, models)
    assert (len(w.devices), len(w.apps)) == (32, 16)
    assert w == sized_workload(32, 16, 3, models)


def test_space_and_apps_documents_read_back_equal(models: dict[str, HardwareModel], tmp_path: Path) -> None:
    for w in random_workloads(5, 11, models):
        space, apps = tmp_path / f"{w.name}-space.yaml", tmp_path / f"{w.name}-apps.yaml"
        space.write_text(yaml.safe_dump(space_document(w.devices)), encoding="utf-8")
        apps.write_text(yaml.safe_dump(apps_document([a.spec for a in w.apps])), encoding="utf-8")
        assert load_space(space).devices == w.devices
        assert tuple(e.spec for e in load_apps(apps)) == tuple(a.spec for a in w.apps)


def test_exact_says_what_it_proved() -> None:
    model = chain_model(
        "m", [LayerSpec(100_000, 50_000, 2_000), LayerSpec(100_000, 50_000, 100)], input_bytes=1_000
    )
    devices = [
        device("a", sensors=[("camera", 30.0)], outputs=["display"], link="ble5_2m"),
        device("b", link="ble5_2m"),
    ]
    apps = [app("x", model, "camera", "display")]
    proved = MethodPlanner("exact", PlanningOptions()).plan(devices, apps)
    assert proved.optimal
    assert proved.proof.startswith("optimal over every joint plan in which each app runs on at most 2 of the 2 devices")
    assert "(every stage count)" in proved.proof
    stopped = MethodPlanner("exact", PlanningOptions(node_budget=1)).plan(devices, apps)
    assert not stopped.optimal and stopped.proof.startswith("not proven: the search stopped at its node budget (1")
    assert MethodPlanner("synergy", PlanningOptions()).plan(devices, apps).proof == ""


def test_many_device_classes_keep_the_fastest_linked_helpers_of_each_board() -> None:
    from synergy.hardware.boards import MAX78000
    from synergy.planning.candidates import CandidateGenerator
    from synergy.planning.cost import CostModel
    from synergy.planning.problem import MAX_SEQUENCES, PlanningProblem, sequence_count

    links = ["ble_10k", "ble_24k", "ble_48k", "ble5_2m", "uart_115200", "uart_921600", "usb_hs"]
    devices = [device("cam", sensors=[("camera", 30.0)], outputs=["display"], link="ble_24k")]
    devices += [device(f"{board.name}-{link}", board, link=link) for link in links for board in (MAX78000, MAX78002)]
    model = chain_model("m", [LayerSpec(10_000, 1_000, 100)] * 3, input_bytes=1_000)
    problem = PlanningProblem(devices, [app("x", model, "camera", "display")], CostModel())
    gen = CandidateGenerator(problem)
    assert len(problem.classes) == 14  # the camera shares a class with the other MAX78000 on ble_24k
    assert gen.helper_classes(2, 1) == tuple(range(14))  # short sequences, one pair: every class helps
    helpers = gen.helper_classes(3, 16)
    assert sequence_count(len(helpers), 3) <= MAX_SEQUENCES / 16 < sequence_count(len(helpers) + 1, 3)
    chosen = [problem.classes[c] for c in helpers]
    assert {c.board for c in chosen} == {MAX78000, MAX78002}
    assert all(c.link.name in ("usb_hs", "ble5_2m", "uart_921600") for c in chosen)
    from synergy.planning.registry import proof_statement

    # What the exact method would claim over this candidate space names the limit.
    assert f"drawn from the {len(gen.helper_classes(3, 1))} of 14 device classes with the fastest links" in (
        proof_statement(problem, gen, True, 1)
    )


def test_retreats_find_the_optimum_where_three_apps_share_one_slow_radio() -> None:
    # Random space r3-00: three camera apps whose only camera is on a ring with a slow BLE
    # radio. The optimum gives one app the radio and throttles the other two at their floors
    # through a slow link they share: all three change at once, which only a retreat finds
    # (the fast method stayed 45% below the optimum without it).
    workload = random_workloads(1, 3, load_models(RANDOM_MODELS), shared_media=False)[0]
    assert [a.model.name for a in workload.apps] == ["simplenet", "ressimplenet", "simplenet"]
    ours = get_planner("synergy").plan(workload.devices, workload.apps)
    exact = get_planner("exact", node_budget=100_000).plan(workload.devices, workload.apps)
    assert exact.optimal
    assert ours.evaluation.system_throughput >= 0.98 * exact.evaluation.system_throughput
