"""Domain types <-> protos: lossless round trips and refusal of incomplete records."""

from __future__ import annotations

import dataclasses

import pytest

from synergy.devices import preset_device
from synergy.errors import InvalidArgument
from synergy.hardware.boards import BOARD_PRESETS, BoardProfile
from synergy.types import AppSpec, ExecutionPlan, JointPlan, Stage
from synergy.v1 import common_pb2
from synergy.wire import convert


def test_every_board_field_has_a_proto_field() -> None:
    proto_fields = set(common_pb2.Board.DESCRIPTOR.fields_by_name)
    missing = {f.name for f in dataclasses.fields(BoardProfile)} - proto_fields
    assert not missing, f"add these BoardProfile fields to common.proto Board: {missing}"


@pytest.mark.parametrize("name", sorted(BOARD_PRESETS))
def test_board_round_trip(name: str) -> None:
    board = BOARD_PRESETS[name]
    assert convert.board_from_proto(convert.board_to_proto(board)) == board


@pytest.mark.parametrize("preset", ["earbud", "glasses", "watch", "ring"])
def test_device_round_trip(preset: str) -> None:
    device = dataclasses.replace(preset_device(preset), address="127.0.0.1:5000")
    assert convert.device_from_proto(convert.device_to_proto(device)) == device


def test_device_without_board_or_id_is_refused() -> None:
    msg = convert.device_to_proto(preset_device("ring"))
    msg.ClearField("board")
    with pytest.raises(InvalidArgument, match="board is missing"):
        convert.device_from_proto(msg)
    msg = convert.device_to_proto(preset_device("ring"))
    msg.device_id = ""
    with pytest.raises(InvalidArgument, match="device_id is empty"):
        convert.device_from_proto(msg)


def test_app_spec_round_trip_and_validation() -> None:
    spec = AppSpec("a1", "kws", "kws20_v3", "microphone", "haptics", "earbud", "ring", 5.0)
    assert convert.app_spec_from_proto(convert.app_spec_to_proto(spec), "a1") == spec
    with pytest.raises(InvalidArgument, match="source_type is empty"):
        convert.app_spec_from_proto(common_pb2.AppSpec(target_type="display"), "a2")
    with pytest.raises(InvalidArgument, match="max_rate_hz"):
        convert.app_spec_from_proto(
            common_pb2.AppSpec(source_type="camera", target_type="display", max_rate_hz=-1), "a3"
        )


def test_app_spec_carries_minimum_rate_and_weight() -> None:
    spec = AppSpec("a1", "cam", "simplenet", "camera", "display", max_rate_hz=20.0, min_rate_hz=5.0, weight=3.0)
    msg = convert.app_spec_to_proto(spec)
    assert (msg.min_rate_hz, msg.weight) == (5.0, 3.0)
    assert convert.app_spec_from_proto(msg, "a1") == spec
    # An older client sends neither field: no minimum, and weight 0 on the wire means 1.
    old = common_pb2.AppSpec(name="cam", model="simplenet", source_type="camera", target_type="display")
    decoded = convert.app_spec_from_proto(old, "a2")
    assert (decoded.min_rate_hz, decoded.weight) == (0.0, convert.DEFAULT_APP_WEIGHT)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"min_rate_hz": -1.0}, r"spec\.min_rate_hz must be a finite number in \[0, 100000\]"),
        ({"min_rate_hz": float("nan")}, r"spec\.min_rate_hz must be a finite number"),
        ({"weight": float("inf")}, r"spec\.weight must be a finite number in \[0, 1000\]"),
        ({"weight": 1e6}, r"spec\.weight must be a finite number in \[0, 1000\]"),
        ({"max_rate_hz": 10.0, "min_rate_hz": 12.0}, r"spec\.min_rate_hz must be at most spec\.max_rate_hz \(10\)"),
    ],
)
def test_app_spec_rate_needs_are_refused_naming_field_and_bound(fields: dict[str, float], message: str) -> None:
    msg = common_pb2.AppSpec(source_type="camera", target_type="display", **fields)
    with pytest.raises(InvalidArgument, match=message):
        convert.app_spec_from_proto(msg, "a1")


def test_joint_plan_round_trip() -> None:
    plan = JointPlan(
        epoch=4,
        plans=(ExecutionPlan("a", "glasses", (Stage("glasses", 0, 3), Stage("watch", 4, 13)), "watch", 7.5, 0.2),),
        system_throughput=7.5,
        bottleneck="glasses.radio",
        method="synergy",
        unplaced={"b": "no camera"},
    )
    assert convert.joint_plan_from_proto(convert.joint_plan_to_proto(plan)) == plan
