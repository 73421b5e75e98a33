"""Apps that cannot be placed end up in JointPlan.unplaced naming the constraint; bad input raises."""

from __future__ import annotations

import pytest

from synergy.errors import InvalidArgument, NotFound
from synergy.hardware.boards import MAX78002
from synergy.planning.cost import CostModel
from synergy.planning.fit import estimate_fit
from synergy.planning.registry import METHODS, MethodPlanner, PlanningOptions, get_planner
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.types import JointPlan

OK = chain_model("ok", [LayerSpec(10_000, 10_000, 64), LayerSpec(10_000, 10_000, 16)], input_bytes=256)
DEPTHWISE = chain_model(
    "dw", [LayerSpec(10_000, 10_000, 64), LayerSpec(10_000, 10_000, 16, depthwise=True)], input_bytes=256
)
HUGE = chain_model("huge", [LayerSpec(10_000, 400_000, 64) for _ in range(8)], input_bytes=256)


def plan(devices: list, apps: list, method: str = "synergy") -> JointPlan:
    return MethodPlanner(method, PlanningOptions(), CostModel(checker=estimate_fit))(devices, apps)


SPACE = [device("glasses", sensors=[("camera", 30.0)], outputs=["display"]), device("watch", outputs=["haptics"])]


def test_missing_sensor_is_named() -> None:
    result = plan(SPACE, [app("a", OK, "microphone", "display"), app("b", OK, "camera", "display")])
    assert result.unplaced["a"].startswith("sensor:") and "microphone" in result.unplaced["a"]
    assert [p.app_id for p in result.plans] == ["b"]


def test_missing_output_is_named() -> None:
    result = plan(SPACE, [app("a", OK, "camera", "speaker")])
    assert result.unplaced["a"].startswith("output:") and "speaker" in result.unplaced["a"]


def test_pinned_devices_must_exist_and_fit_the_role() -> None:
    result = plan(
        SPACE,
        [
            app("a", OK, "camera", "display", source_device="ring"),
            app("b", OK, "camera", "display", target_device="watch"),
        ],
    )
    assert result.unplaced["a"].startswith("source_device:") and "ring" in result.unplaced["a"]
    assert result.unplaced["b"].startswith("output:") and "watch" in result.unplaced["b"]


def test_pins_are_respected() -> None:
    result = plan([*SPACE, device("pendant", sensors=[("camera", 60.0)])], [
        app("a", OK, "camera", "haptics", source_device="glasses"),
    ])
    assert result.plans[0].source_device == "glasses"
    assert result.plans[0].target_device == "watch"


def test_a_layer_no_board_supports_names_the_operator() -> None:
    for method in METHODS:
        result = plan(SPACE, [app("a", DEPTHWISE, "camera", "display")], method)
        assert "a" in result.unplaced, method
    reason = plan(SPACE, [app("a", DEPTHWISE, "camera", "display")]).unplaced["a"]
    assert "layer 1" in reason and "depthwise" in reason
    # A MAX78002 in the space runs it.
    assert not plan([*SPACE, device("pendant", MAX78002)], [app("a", DEPTHWISE, "camera", "display")]).unplaced


def test_a_model_too_big_for_the_space_names_the_memory() -> None:
    reason = plan(SPACE, [app("a", HUGE, "camera", "display")]).unplaced["a"]
    assert reason.startswith("devices:") and "weight memory" in reason


def test_unknown_method_lists_the_known_ones() -> None:
    with pytest.raises(NotFound) as err:
        get_planner("magic")
    assert "synergy" in str(err.value) and "pipeedge" in str(err.value)


def test_unknown_option_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        get_planner("synergy", turbo=True)


def test_malformed_input_raises() -> None:
    with pytest.raises(InvalidArgument):
        plan([SPACE[0], SPACE[0]], [app("a", OK, "camera", "display")])
    with pytest.raises(InvalidArgument):
        plan(SPACE, [app("a", OK, "camera", "display"), app("a", OK, "camera", "display")])


def test_get_planner_is_a_planner_and_can_be_recalibrated() -> None:
    planner = get_planner("synergy", seed=1)
    result = planner(SPACE, [app("a", OK, "camera", "display")])
    assert result.method == "synergy" and result.plans
    slower = planner.calibrated({"glasses": 3.0})
    again = slower(SPACE, [app("a", OK, "camera", "display")])
    assert again.plans[0].predicted_latency_s >= result.plans[0].predicted_latency_s
