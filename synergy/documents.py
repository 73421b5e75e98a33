"""JSON documents of our dataclasses, for scripts: what every ``--json`` prints.

Built from the dataclasses (:mod:`synergy.types`, :mod:`synergy.reports`), never from
protobuf's JSON mapping, which prints 64-bit integers as strings (``"frames_delivered":
"163"``): here numbers stay numbers, enums become their values (``"running"``), bytes become
base64 text and floats that JSON cannot hold (NaN, infinity) become null.

The joint plan has one schema wherever it comes from — a live coordinator (``synergy plan
--json``) or offline planning (``synergy plan --space FILE --apps FILE --json``):
:func:`plan_document`, whose keys are :data:`PLAN_KEYS`.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import math
from collections.abc import Mapping
from typing import Any

from synergy.types import JointPlan

__all__ = ["PLAN_APP_KEYS", "PLAN_KEYS", "plan_document", "to_json"]

#: The keys of a plan document (the same online and offline; null where one side has no figure).
PLAN_KEYS = (
    "epoch",
    "method",
    "system_throughput",
    "bottleneck",
    "apps",
    "unplaced",
    "quarantined",
    "planning_ms",
    "planning_cpu_ms",
    "optimal",
    "proof",
    "power_w",
)
#: The keys of each entry of a plan document's ``apps``.
PLAN_APP_KEYS = ("app_id", "name", "rate", "latency_ms", "source", "stages", "target", "parallel_devices")


def to_json(value: object) -> Any:
    """``value`` (dataclasses, enums, mappings, sequences, bytes, numbers) as JSON-ready data."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return to_json(value.value)
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [to_json(v) for v in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def plan_document(
    plan: JointPlan,
    names: Mapping[str, str] | None = None,
    *,
    planning_ms: float | None = None,
    planning_cpu_ms: float | None = None,
    optimal: bool | None = None,
    proof: str = "",
    power_w: float | None = None,
) -> dict[str, Any]:
    """The plan as one JSON object (see the module doc); ``names``: app id -> name (default: the id).

    The planning figures exist only where the plan was made in this process (offline).
    """
    names = names or {}
    apps = [
        {
            "app_id": p.app_id,
            "name": names.get(p.app_id, p.app_id),
            "rate": p.predicted_rate_hz,
            "latency_ms": 1000.0 * p.predicted_latency_s,
            "source": p.source_device,
            "stages": [{"device": s.device_id, "layers": [s.first_layer, s.last_layer]} for s in p.stages],
            "target": p.target_device,
            "parallel_devices": list(p.parallel_devices),
        }
        for p in plan.plans
    ]
    document = {
        "epoch": plan.epoch,
        "method": plan.method,
        "system_throughput": plan.system_throughput,
        "bottleneck": plan.bottleneck,
        "apps": apps,
        "unplaced": [
            {"app_id": app_id, "name": names.get(app_id, app_id), "reason": reason}
            for app_id, reason in plan.unplaced.items()
        ],
        "quarantined": dict(plan.quarantined),
        "planning_ms": planning_ms,
        "planning_cpu_ms": planning_cpu_ms,
        "optimal": optimal,
        "proof": proof,
        "power_w": power_w,
    }
    return dict(to_json(document))
