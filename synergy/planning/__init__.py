"""The orchestrator: cost model, throughput model, candidate search, baselines, plan diffs.

Sans-IO (DESIGN.md §4): a planner is a pure function from devices and apps to a joint plan.

    from synergy.planning import get_planner, diff_plans
    planner = get_planner("synergy")            # or "exact", a baseline, an ablation
    plan = planner(devices, planning_apps)      # JointPlan, unplaced apps name the constraint
    steps = diff_plans(old_plan, plan)          # what to deploy / undeploy per device

See docs/orchestrator.md.
"""

# First of all: the compiled modules (synergy.planning.compiled), or their sources if those
# changed since they were compiled.
from synergy.planning import compiled as _compiled

_compiled.STATE = _compiled.activate()

from synergy.planning.api import Planner, PlanningApp  # noqa: E402 - after the check above
from synergy.planning.cost import CostModel, CostParameters, FrameCost  # noqa: E402
from synergy.planning.diff import PlanDiff, StageRef, diff_plans  # noqa: E402
from synergy.planning.registry import (  # noqa: E402
    METHODS,
    MethodInfo,
    MethodPlanner,
    PlanningOptions,
    PlanOutcome,
    get_planner,
)
from synergy.planning.throughput import Evaluation, evaluate  # noqa: E402

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
