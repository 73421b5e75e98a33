"""What changes between two joint plans, so a re-plan moves only what changed (DESIGN.md §4.4).

:func:`diff_plans` is pure: it compares stages by identity — (app, device, first layer,
last layer). A stage present in both plans is *unchanged* (its partition stays loaded);
if its upstream or downstream device changed it is also *rerouted* (same weights, new
peers). Stages only in the new plan must be *deployed* on their device, stages only in
the old plan *undeployed*.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from synergy.types import ExecutionPlan, JointPlan

__all__ = ["PlanDiff", "StageRef", "diff_plans"]


@dataclass(frozen=True, order=True)
class StageRef:
    """One partition of one app on one device."""

    app_id: str
    device_id: str
    first_layer: int
    last_layer: int


@dataclass(frozen=True)
class PlanDiff:
    """Deployment steps from an old joint plan to a new one."""

    unchanged: tuple[StageRef, ...] = ()
    #: Unchanged stages whose previous or next hop (device) differs.
    rerouted: tuple[StageRef, ...] = ()
    #: device -> stages to load there / to unload from there.
    deploy: Mapping[str, tuple[StageRef, ...]] = field(default_factory=dict)
    undeploy: Mapping[str, tuple[StageRef, ...]] = field(default_factory=dict)
    added_apps: tuple[str, ...] = ()
    removed_apps: tuple[str, ...] = ()
    #: Apps in both plans whose source, stages or target differ.
    changed_apps: tuple[str, ...] = ()
    unchanged_apps: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing to deploy, undeploy or reroute."""
        return not (self.deploy or self.undeploy or self.rerouted)

    @property
    def devices_touched(self) -> frozenset[str]:
        """Devices that must do something (load, unload or rewire)."""
        return frozenset(self.deploy) | frozenset(self.undeploy) | {s.device_id for s in self.rerouted}


def _stages(plan: ExecutionPlan) -> dict[StageRef, tuple[str, str]]:
    """Each stage with its (previous hop, next hop) devices."""
    out: dict[StageRef, tuple[str, str]] = {}
    hops = [plan.source_device, *(s.device_id for s in plan.stages), plan.target_device]
    for k, stage in enumerate(plan.stages):
        ref = StageRef(plan.app_id, stage.device_id, stage.first_layer, stage.last_layer)
        out[ref] = (hops[k], hops[k + 2])
    return out


def _group(refs: list[StageRef]) -> dict[str, tuple[StageRef, ...]]:
    out: dict[str, list[StageRef]] = {}
    for ref in sorted(refs):
        out.setdefault(ref.device_id, []).append(ref)
    return {device: tuple(items) for device, items in sorted(out.items())}


def diff_plans(old: JointPlan, new: JointPlan) -> PlanDiff:
    """The steps that take the cluster from ``old`` to ``new`` (pure, no I/O)."""
    old_plans = {p.app_id: p for p in old.plans}
    new_plans = {p.app_id: p for p in new.plans}
    before: dict[StageRef, tuple[str, str]] = {}
    after: dict[StageRef, tuple[str, str]] = {}
    for p in old.plans:
        before.update(_stages(p))
    for p in new.plans:
        after.update(_stages(p))
    unchanged = sorted(ref for ref in after if ref in before)
    rerouted = [ref for ref in unchanged if after[ref] != before[ref]]
    deploy = [ref for ref in after if ref not in before]
    undeploy = [ref for ref in before if ref not in after]
    both = sorted(set(old_plans) & set(new_plans))
    changed = [
        a
        for a in both
        if (old_plans[a].source_device, old_plans[a].stages, old_plans[a].target_device)
        != (new_plans[a].source_device, new_plans[a].stages, new_plans[a].target_device)
    ]
    return PlanDiff(
        unchanged=tuple(unchanged),
        rerouted=tuple(rerouted),
        deploy=_group(deploy),
        undeploy=_group(undeploy),
        added_apps=tuple(sorted(set(new_plans) - set(old_plans))),
        removed_apps=tuple(sorted(set(old_plans) - set(new_plans))),
        changed_apps=tuple(changed),
        unchanged_apps=tuple(a for a in both if a not in changed),
    )
