"""From an execution plan to pipeline segments: grouping by device, inputs at every cut."""

from __future__ import annotations

import pytest

from coordinator.assignments import build_segments, segments_to_assignments
from coordinator.models import StoredPartition
from synergy.devices import preset_device
from synergy.errors import FailedPrecondition
from synergy.hardware.analysis import analyze_model
from synergy.models.partition import split_model
from synergy.models.zoo import build_model
from synergy.types import AppSpec, ExecutionPlan, Stage


def test_source_and_first_stage_on_one_device_form_one_segment() -> None:
    plan = ExecutionPlan("a", "glasses", (Stage("glasses", 0, 4), Stage("watch", 5, 13)), "watch")
    segments = build_segments(plan)
    assert [(s.device_id, s.senses, s.layers, s.delivers) for s in segments] == [
        ("glasses", True, (0, 4), False),
        ("watch", False, (5, 13), True),
    ]
    assert [s.last_layer_before for s in segments] == [-1, 4]


def test_remote_source_and_target_are_separate_segments() -> None:
    plan = ExecutionPlan("a", "earbud", (Stage("watch", 0, 8),), "ring")
    segments = build_segments(plan)
    assert [(s.device_id, s.senses, s.layers, s.delivers) for s in segments] == [
        ("earbud", True, None, False),
        ("watch", False, (0, 8), False),
        ("ring", False, None, True),
    ]
    assert segments[2].last_layer_before == 8


def test_target_back_on_the_source_device_is_a_new_segment() -> None:
    plan = ExecutionPlan("a", "glasses", (Stage("watch", 0, 13),), "glasses")
    assert [s.device_id for s in build_segments(plan)] == ["glasses", "watch", "glasses"]


def test_gap_between_stages_is_refused() -> None:
    plan = ExecutionPlan("a", "glasses", (Stage("glasses", 0, 3), Stage("watch", 5, 13)), "watch")
    with pytest.raises(FailedPrecondition, match="does not follow layer 3"):
        build_segments(plan)


@pytest.mark.parametrize("every_frame", [False, True])
def test_assignments_name_each_segments_upstream_and_the_sources_frame_policy(every_frame: bool) -> None:

    model = build_model("convnet5")
    hardware = analyze_model(model, "convnet5")
    last = len(hardware.layers) - 1
    plan = ExecutionPlan("a", "earbud", (Stage("watch", 0, 2), Stage("ring", 3, last)), "glasses")
    app = AppSpec("a", "a", "convnet5", "camera", "display", every_frame=every_frame)
    devices = {d: preset_device(d) for d in ("earbud", "watch", "ring", "glasses")}

    def partition_for(first: int, last_layer: int) -> StoredPartition:
        part = split_model(model, hardware, first, last_layer)
        return StoredPartition(part, f"{first:02d}{last_layer:02d}" * 16)

    out = segments_to_assignments(app, plan, hardware, devices, partition_for, 5.0, {})
    by_segment = {a.segment: (device, a) for device, items in out.items() for a in items}
    assert [(by_segment[i][0], by_segment[i][1].upstream) for i in range(4)] == [
        ("earbud", ""),
        ("watch", "earbud"),
        ("ring", "watch"),
        ("glasses", "ring"),
    ]
    assert [by_segment[i][1].every_frame for i in range(4)] == [every_frame, False, False, False]
