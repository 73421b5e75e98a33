"""The orchestrator: cost model, throughput model, candidate search, baselines, plan diffs.

Sans-IO (DESIGN.md §4): a planner is a pure function from devices and apps to a joint plan.

    from synergy.planning import get_planner, diff_plans
    planner = get_planner("synergy")            # or "exact", a baseline, an ablation
    plan = planner(devices, planning_apps)      # JointPlan, unplaced apps name the constraint
    steps = diff_plans(old_plan, plan)          # what to deploy / undeploy per device

See docs/orchestrator.md.
"""

from synergy.planning.api import Planner, PlanningApp
from synergy.planning.cost import CostModel, CostParameters, FrameCost
from synergy.planning.diff import PlanDiff, StageRef, diff_plans
from synergy.planning.registry import METHODS, MethodInfo, MethodPlanner, PlanningOptions, PlanOutcome, get_planner
from synergy.planning.throughput import Evaluation, evaluate

__all__ = [
    "METHODS",
    "CostModel",
    "CostParameters",
    "Evaluation",
    "FrameCost",
    "MethodInfo",
    "MethodPlanner",
    "PlanDiff",
    "PlanOutcome",
    "Planner",
    "PlanningApp",
    "PlanningOptions",
    "StageRef",
    "diff_plans",
    "evaluate",
    "get_planner",
]
