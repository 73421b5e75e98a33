"""diff_plans: only what changed is deployed or undeployed."""

from __future__ import annotations

from synergy.planning.diff import StageRef, diff_plans
from synergy.types import ExecutionPlan, JointPlan, Stage


def plan(*plans: ExecutionPlan) -> JointPlan:
    return JointPlan(plans=plans)


A = ExecutionPlan("a", "glasses", (Stage("glasses", 0, 4), Stage("watch", 5, 9)), "watch")
B = ExecutionPlan("b", "earbud", (Stage("earbud", 0, 8),), "earbud")


def test_identical_plans_change_nothing() -> None:
    diff = diff_plans(plan(A, B), plan(A, B))
    assert diff.empty
    assert diff.unchanged_apps == ("a", "b") and not diff.changed_apps
    assert len(diff.unchanged) == 3
    assert not diff.devices_touched


def test_moving_one_cut_redeploys_only_the_two_stages() -> None:
    moved = ExecutionPlan("a", "glasses", (Stage("glasses", 0, 5), Stage("watch", 6, 9)), "watch")
    diff = diff_plans(plan(A, B), plan(moved, B))
    assert diff.deploy == {
        "glasses": (StageRef("a", "glasses", 0, 5),),
        "watch": (StageRef("a", "watch", 6, 9),),
    }
    assert diff.undeploy == {
        "glasses": (StageRef("a", "glasses", 0, 4),),
        "watch": (StageRef("a", "watch", 5, 9),),
    }
    assert diff.unchanged == (StageRef("b", "earbud", 0, 8),)
    assert diff.changed_apps == ("a",) and diff.unchanged_apps == ("b",)
    assert diff.devices_touched == frozenset({"glasses", "watch"})


def test_new_and_removed_apps() -> None:
    diff = diff_plans(plan(A), plan(B))
    assert diff.added_apps == ("b",) and diff.removed_apps == ("a",)
    assert diff.deploy == {"earbud": (StageRef("b", "earbud", 0, 8),)}
    assert set(diff.undeploy) == {"glasses", "watch"}


def test_same_stage_with_a_new_neighbour_is_rerouted_not_redeployed() -> None:
    retarget = ExecutionPlan("a", "glasses", A.stages, "ring")
    diff = diff_plans(plan(A), plan(retarget))
    assert not diff.deploy and not diff.undeploy
    assert diff.rerouted == (StageRef("a", "watch", 5, 9),)
    assert diff.changed_apps == ("a",)
    assert not diff.empty


def test_diff_is_pure() -> None:
    old, new = plan(A, B), plan(B)
    first = diff_plans(old, new)
    assert diff_plans(old, new) == first
    assert old == plan(A, B)
