"""The dashboard's snapshot: a pure function from the coordinator's state to JSON-ready data.

:class:`SpaceView` holds what the coordinator knows, in its own types, read in one go on the
event loop (:func:`coordinator.dashboard.server.view_of`); :func:`build_snapshot` turns it into
plain dicts, lists, strings and numbers with snake_case keys — what ``/api/snapshot`` answers
and ``/api/events`` streams. No I/O and no clock here: the view carries ``now``, so a unit test
builds a view by hand and checks the dict.

Times: the core keeps monotonic seconds; they leave here as Unix times (``*_unix``) computed
from the view's pair of clocks, since a browser knows only wall time. Numbers that are not
finite (an unbounded predicted rate) leave as ``null``: JSON has no infinity.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from coordinator.replans import ReplanCause, ReplanRound
from synergy.reports import CoordinatorStats, DeviceTelemetry
from synergy.types import AppInfo, BoardPort, DeviceInfo, DeviceSpec, ExecutionPlan, JointPlan

__all__ = ["SNAPSHOT_VERSION", "SpaceView", "build_snapshot"]

#: Bumped when a key changes meaning or disappears (new keys do not bump it).
SNAPSHOT_VERSION = 1
#: Finished re-plan rounds a snapshot lists (newest first).
RECENT_ROUNDS = 20


@dataclass(frozen=True)
class SpaceView:
    """The coordinator's state as the dashboard needs it (see the module docstring)."""

    devices: Sequence[DeviceInfo]
    apps: Sequence[AppInfo]
    plan: JointPlan
    stats: CoordinatorStats
    #: Re-plan rounds finished (oldest first), the one running, causes waiting for the next.
    rounds: Sequence[ReplanRound] = ()
    current_round: ReplanRound | None = None
    pending_causes: Sequence[ReplanCause] = ()
    #: False while the coordinator restores its state (it answers no request yet).
    ready: bool = True
    #: The core's monotonic clock and the wall clock, read at the same moment.
    now: float = 0.0
    now_unix: float = 0.0
    #: What the coordinator runs with (address, planner, objective, ...), shown as given.
    about: Mapping[str, str | bool] = field(default_factory=dict)


def build_snapshot(view: SpaceView) -> dict[str, Any]:
    """The snapshot of ``view`` (see the module docstring and docs/dashboard.md)."""
    plan = view.plan

    def unix(monotonic: float) -> float | None:
        return _time(view.now_unix - (view.now - monotonic))

    def round_dict(r: ReplanRound) -> dict[str, Any]:
        return {
            "round_id": r.round_id,
            "epoch": r.epoch,
            "outcome": r.outcome.value if r.outcome is not None else "running",
            "phase": _phase(r),
            "detail": r.detail,
            "started_at_unix": unix(r.started_at),
            "finished_at_unix": unix(r.finished_at) if r.outcome is not None else None,
            "causes": [cause_dict(c) for c in r.causes],
            "causes_dropped": r.causes_dropped,
        }

    def cause_dict(c: ReplanCause) -> dict[str, Any]:
        return {"kind": c.kind.value, "subject": c.subject, "detail": c.detail, "text": c.text, "at_unix": unix(c.at)}

    return {
        "version": SNAPSHOT_VERSION,
        "generated_at_unix": _time(view.now_unix),
        "ready": view.ready,
        "coordinator": dict(view.about),
        "epoch": plan.epoch,
        "plan": {
            "epoch": plan.epoch,
            "method": plan.method,
            "system_throughput": _num(plan.system_throughput),
            "bottleneck": plan.bottleneck,
            "unplaced": dict(plan.unplaced),
            "quarantined": dict(plan.quarantined),
        },
        "devices": [_device(d) for d in sorted(view.devices, key=lambda d: d.spec.device_id)],
        "apps": [_app(a, plan.plan_for(a.app_id), plan.epoch) for a in sorted(view.apps, key=_app_order)],
        "replans": {
            "current": round_dict(view.current_round) if view.current_round is not None else None,
            "pending": [cause_dict(c) for c in view.pending_causes],
            "recent": [round_dict(r) for r in reversed(view.rounds[-RECENT_ROUNDS:])],
        },
        "stats": _stats(view.stats),
    }


def _phase(r: ReplanRound) -> str:
    if r.outcome is not None:
        return "finished"
    return f"deploying epoch {r.epoch}" if r.epoch else "planning"


def _app_order(app: AppInfo) -> tuple[int, str]:
    """app-2 before app-10: ids are app-N."""
    number = app.app_id.rsplit("-", 1)[-1]
    return (int(number), app.app_id) if number.isdigit() else (1 << 62, app.app_id)


def _device(info: DeviceInfo) -> dict[str, Any]:
    spec = info.spec
    return {
        "device_id": spec.device_id,
        "kind": spec.kind,
        "state": info.state.value,
        "address": spec.address,
        "last_seen_unix": _time(info.last_seen_unix) if info.last_seen_unix else None,
        "quarantine_reason": info.quarantine_reason,
        "quarantined_until_unix": _time(info.quarantined_until_unix) if info.quarantine_reason else None,
        "board": _board(spec),
        "board_port": _board_port(spec.board_port),
        "sensors": [{"type": s.type, "rate_hz": _num(s.rate_hz)} for s in spec.sensors],
        "outputs": [o.type for o in spec.outputs],
        "link": {
            "name": spec.link.name,
            "bandwidth_bytes_per_s": _num(spec.link.bandwidth_bytes_per_s),
            "latency_ms": _num(1000.0 * spec.link.latency_s),
        },
        "medium": spec.medium,
        "central": spec.central,
        "peer_links": [
            {"peer": p.peer, "name": p.link.name, "bandwidth_bytes_per_s": _num(p.link.bandwidth_bytes_per_s)}
            for p in spec.peer_links
        ],
        "telemetry": _telemetry(info.telemetry),
    }


def _board(spec: DeviceSpec) -> dict[str, Any]:
    board = spec.board
    return {
        "name": board.name,
        "accelerator": board.accelerator,
        "cnn_clock_hz": _num(board.cnn_clock_hz),
        # 72-bit weight words; 4 processors share one data-memory instance.
        "weight_bytes": 9 * sum(board.weight_words_per_processor),
        "data_bytes": board.data_instances * board.data_instance_bytes,
        "max_layers": board.max_layers,
    }


def _board_port(port: BoardPort | None) -> dict[str, Any] | None:
    if port is None:
        return None
    return {
        "transport": port.transport,
        "path": port.path,
        "baud": port.baud,
        "firmware": port.firmware,
        "protocol_version": port.protocol_version,
        "measured_wire_bytes_per_s": _num(port.measured_wire_bytes_per_s),
        "measured_payload_bytes_per_s": _num(port.measured_payload_bytes_per_s),
    }


def _telemetry(t: DeviceTelemetry) -> dict[str, Any]:
    return {
        "frames_in": t.frames_in,
        "frames_out": t.frames_out,
        "frames_dropped": t.frames_dropped,
        "frames_replayed": t.frames_replayed,
        "bytes_to_peers": t.bytes_to_peers,
        "bytes_from_peers": t.bytes_from_peers,
        "bytes_to_coordinator": t.bytes_to_coordinator,
        "accelerator_busy_s": _num(t.accelerator_busy_s),
    }


def _app(info: AppInfo, plan: ExecutionPlan | None, epoch: int) -> dict[str, Any]:
    spec, stats = info.spec, info.stats
    return {
        "app_id": info.app_id,
        "name": spec.name,
        "model": spec.model,
        "layers": info.layers,
        "source_type": spec.source_type,
        "target_type": spec.target_type,
        "source_device": spec.source_device,
        "target_device": spec.target_device,
        "max_rate_hz": _num(spec.max_rate_hz),
        "min_rate_hz": _num(spec.min_rate_hz),
        "weight": _num(spec.weight),
        "owner": info.owner,
        "state": info.state.value,
        "reason": info.reason,
        "stats": {
            "rate_hz": _num(stats.rate_hz),
            "latency_ms": _num(stats.latency_ms),
            "frames_delivered": stats.frames_delivered,
            "frames_dropped": stats.frames_dropped,
            "frames_admitted": stats.frames_admitted,
            "frames_skipped": stats.frames_skipped,
            "frames_in_flight": stats.frames_in_flight,
        },
        "pipeline": _pipeline(plan, epoch) if plan is not None else None,
    }


def _pipeline(plan: ExecutionPlan, epoch: int) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "source_device": plan.source_device,
        "stages": [
            {"device_id": s.device_id, "first_layer": s.first_layer, "last_layer": s.last_layer} for s in plan.stages
        ],
        "target_device": plan.target_device,
        "devices": list(plan.devices),
        "parallel_devices": list(plan.parallel_devices),
        "predicted_rate_hz": _num(plan.predicted_rate_hz),
        "predicted_latency_ms": _num(1000.0 * plan.predicted_latency_s),
    }


def _stats(stats: CoordinatorStats) -> dict[str, Any]:
    return {
        "replans": stats.replans,
        "deploy_failures": stats.deploy_failures,
        "deploys_cancelled": stats.deploys_cancelled,
        "quarantines": stats.quarantines,
        "drift_repairs": stats.drift_repairs,
        "recalibrations": stats.recalibrations,
        "results_received": stats.results_received,
        "result_bytes_received": stats.result_bytes_received,
        "activation_bytes_relayed": stats.activation_bytes_relayed,
        "partitions_sent": stats.partitions_sent,
        "partitions_reused": stats.partitions_reused,
        "calibration": {d: _num(f) for d, f in sorted(stats.calibration.items())},
    }


def _num(value: float) -> float | None:
    """A finite measure rounded to 6 significant digits (display, smaller diffs), else None."""
    if not math.isfinite(value):
        return None
    return float(f"{value:.6g}")


def _time(value: float) -> float | None:
    """A Unix time to the millisecond (significant digits would round away the seconds)."""
    return round(value, 3) if math.isfinite(value) else None
