"""One planning path: device classes are formed by value, so equal boards decoded apart plan alike.

The live coordinator builds one board object per agent (decoded from its registration),
``synergy plan`` shares one preset object between devices; both must give the same problem
and the same plan.
"""

from __future__ import annotations

import dataclasses

from synergy.hardware.boards import MAX78000, MAX78002, board_from_dict
from synergy.planning.api import PlanningApp
from synergy.planning.candidates import CandidateGenerator
from synergy.planning.cost import CostModel
from synergy.planning.problem import PlanningProblem
from synergy.planning.registry import get_planner
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.types import DeviceSpec
from synergy.wire.convert import device_from_proto, device_to_proto

MODEL = chain_model(
    "chain",
    [LayerSpec(200_000, 150_000, 2_048), LayerSpec(200_000, 150_000, 512), LayerSpec(50_000, 60_000, 64)],
    input_bytes=3_072,
)
OTHER = chain_model("small", [LayerSpec(30_000, 20_000, 256), LayerSpec(30_000, 20_000, 32)], input_bytes=1_024)


def shared_space() -> list[DeviceSpec]:
    """Devices sharing the preset board objects, as a space file gives them."""
    return [
        device("glasses", sensors=[("camera", 1000.0)], outputs=["display"], link="ble5_2m"),
        device("watch", outputs=["display", "haptics"], link="ble5_2m"),
        device("ring", sensors=[("imu", 200.0)], outputs=["haptics"], link="ble5_2m"),
        device("patch", link="ble5_2m"),
        device("pendant", MAX78002, link="ble5_2m"),
        device("belt", MAX78002, link="ble5_2m"),
    ]


def apps() -> list[PlanningApp]:
    return [app("vision", MODEL, "camera", "display"), app("gesture", OTHER, "imu", "haptics")]


def test_equal_boards_as_distinct_objects_form_the_same_classes_and_plan() -> None:
    shared = shared_space()
    # A fresh board object per device, equal by value (what decoding one record per agent gives).
    distinct = [dataclasses.replace(d, board=board_from_dict(d.board.to_dict())) for d in shared]
    assert all(a.board == b.board and a.board is not b.board for a, b in zip(shared, distinct, strict=True))
    assert distinct[0].board is not distinct[1].board

    one = PlanningProblem(shared, apps(), CostModel())
    two = PlanningProblem(distinct, apps(), CostModel())
    assert len(one.classes) == len(two.classes) == 2  # MAX78000 x 4, MAX78002 x 2
    assert one.class_of == two.class_of
    assert [len(CandidateGenerator(one).templates(i)) for i in range(2)] == [
        len(CandidateGenerator(two).templates(i)) for i in range(2)
    ]

    planner = get_planner("synergy")
    assert planner(shared, apps()) == get_planner("synergy")(distinct, apps())


def test_wire_round_trip_plans_like_the_space_file() -> None:
    shared = shared_space()
    decoded = [device_from_proto(device_to_proto(d)) for d in shared]
    assert decoded[0].board is not decoded[1].board
    offline = get_planner("synergy")(shared, apps())
    live = get_planner("synergy")(decoded, apps())
    assert live == offline
    assert len(PlanningProblem(decoded, apps(), CostModel()).classes) == 2


def test_boards_that_differ_in_value_stay_apart() -> None:
    slower = dataclasses.replace(MAX78000, cnn_clock_hz=MAX78000.cnn_clock_hz / 2)
    space = shared_space()
    space[3] = dataclasses.replace(space[3], board=slower)
    problem = PlanningProblem(space, apps(), CostModel())
    assert len(problem.classes) == 3
    assert problem.class_of["patch"] != problem.class_of["glasses"]


def test_one_cost_model_builds_one_table_per_board_value() -> None:
    cost = CostModel()
    copy = board_from_dict(MAX78000.to_dict())
    assert cost.table(MODEL, MAX78000) is cost.table(MODEL, copy)
