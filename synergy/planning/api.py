"""The orchestrator's contract: a pure function from the space and the apps to a joint plan.

DESIGN.md §4: the orchestrator is sans-IO. The coordinator snapshots its virtual computing
space, pairs every app with its analysed model and calls a :data:`Planner`; it never hands
the planner a socket, a clock or a lock. Planners are looked up by name in
:mod:`synergy.planning.registry`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from synergy.hardware.model import HardwareModel
from synergy.types import AppSpec, DeviceSpec, JointPlan

__all__ = ["Planner", "PlanningApp"]


@dataclass(frozen=True)
class PlanningApp:
    """An app as the planner sees it: the client's declaration and its model's hardware layers."""

    spec: AppSpec
    model: HardwareModel


#: ``planner(devices, apps) -> JointPlan`` with ``epoch`` 0 (the coordinator numbers epochs).
#: An app that cannot be placed appears in ``JointPlan.unplaced`` with the constraint that
#: stopped it; the planner raises only for malformed input.
Planner = Callable[[Sequence[DeviceSpec], Sequence[PlanningApp]], JointPlan]
