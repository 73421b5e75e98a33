"""From an execution plan to pipeline segments: grouping by device, inputs at every cut."""

from __future__ import annotations

import pytest

from coordinator.assignments import build_segments
from synergy.errors import FailedPrecondition
from synergy.types import ExecutionPlan, Stage


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
