"""What ``synergy status``, ``synergy top`` and ``synergy demo`` show: pure, state in, lines out.

A :class:`StatusSnapshot` holds what the coordinator answered (devices, apps, the deployed
joint plan) and what only comparing two answers gives: each device's accelerator utilisation
since the previous snapshot (the agents report their cumulative accelerator busy time with
every heartbeat; a first snapshot has none). :func:`render_status` turns it into lines cut to
a width (and a height), :func:`status_json` into the ``--json`` object. No I/O here: the
callers fetch and draw (:mod:`synergy.cli.status_cmd`, :mod:`synergy.demo`,
:class:`synergy.terminal.Screen`).

Bottlenecks. The plan names one resource for the whole system (``JointPlan.bottleneck``: the
first to saturate, e.g. ``watch.radio``, ``ble0.air``, or an app's cap); what limits each app
(the planner's per-app limits) does not travel to clients. :func:`app_bottleneck` derives it
from what does: an app whose predicted rate reached its source's cap is limited by that cap
(``max_rate_hz``, or ``<device>.<sensor>``, the names the planner uses); otherwise by the
system bottleneck when that resource is on the app's path; otherwise by another saturated
resource the plan does not name ("" here, shown as ``-``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from synergy.planning.links import AIR
from synergy.tables import plan_placements, render_table
from synergy.terminal import fit
from synergy.types import AppInfo, AppState, DeviceInfo, DeviceSpec, DeviceState, ExecutionPlan, JointPlan

__all__ = [
    "MAX_RATE_LIMIT",
    "StatusSnapshot",
    "app_bottleneck",
    "link_cell",
    "render_status",
    "snapshot",
    "status_json",
    "utilisation",
]

#: The name the planner gives an app's own rate cap (``AppSpec.max_rate_hz``).
MAX_RATE_LIMIT = "max_rate_hz"
#: Relative tolerance for "the predicted rate reached the cap" (rates are floats).
_AT_CAP = 1e-6
#: The tables' columns, the free text last (a narrow terminal cuts it first).
_DEVICE_COLUMNS = ("device", "kind", "state", "board", "accel", "link", "note")
_APP_COLUMNS = ("app", "name", "model", "state", "fps", "lat_ms", "done", "drop", "bottleneck", "where / why")
#: States counted in the headings, in this order.
_DEVICE_ORDER = (DeviceState.ONLINE.value, DeviceState.OFFLINE.value)
_APP_ORDER = (AppState.RUNNING.value, AppState.STALLED.value, AppState.WAITING.value)
#: Characters of the last (free-text) column a table keeps on screen before others are left out.
_FREE_TEXT_MIN = 12


@dataclass(frozen=True)
class StatusSnapshot:
    devices: tuple[DeviceInfo, ...] = ()
    apps: tuple[AppInfo, ...] = ()
    plan: JointPlan = field(default_factory=JointPlan)
    #: Device id -> accelerator busy share (0..1) between its last two heartbeats seen.
    utilisation: Mapping[str, float] = field(default_factory=dict)
    coordinator: str = ""
    taken_unix: float = 0.0


def snapshot(
    devices: Sequence[DeviceInfo],
    apps: Sequence[AppInfo],
    plan: JointPlan,
    *,
    previous: StatusSnapshot | None = None,
    coordinator: str = "",
    taken_unix: float | None = None,
) -> StatusSnapshot:
    """A snapshot of the coordinator's answers, with utilisation against ``previous``."""
    return StatusSnapshot(
        devices=tuple(devices),
        apps=tuple(apps),
        plan=plan,
        utilisation=utilisation(previous, devices),
        coordinator=coordinator,
        taken_unix=time.time() if taken_unix is None else taken_unix,
    )


def utilisation(previous: StatusSnapshot | None, devices: Sequence[DeviceInfo]) -> dict[str, float]:
    """Accelerator busy share per device between the heartbeats of ``previous`` and ``devices``.

    A device without a newer heartbeat keeps its previous figure; a device seen for the first
    time, or whose counter went back (its agent restarted), has none yet.
    """
    if previous is None:
        return {}
    before = {d.spec.device_id: d for d in previous.devices}
    out: dict[str, float] = {}
    for device in devices:
        device_id = device.spec.device_id
        old = before.get(device_id)
        if old is None:
            continue
        elapsed = device.last_seen_unix - old.last_seen_unix
        busy = device.telemetry.accelerator_busy_s - old.telemetry.accelerator_busy_s
        if elapsed <= 0:
            if device_id in previous.utilisation:
                out[device_id] = previous.utilisation[device_id]
        elif busy >= 0:
            out[device_id] = min(1.0, busy / elapsed)
    return out


def app_bottleneck(app: AppInfo, plan: JointPlan, devices: Sequence[DeviceInfo]) -> str:
    """What limits ``app`` in ``plan`` (see the module doc); "" when the plan does not say."""
    placed = plan.plan_for(app.app_id)
    if placed is None:
        return ""
    specs = {d.spec.device_id: d.spec for d in devices}
    cap = _source_cap(app, placed, specs.get(placed.source_device))
    if cap is not None and placed.predicted_rate_hz >= cap[0] * (1 - _AT_CAP):
        return cap[1]
    owner = plan.bottleneck.rpartition(".")[0]
    if not owner:
        return ""
    on_path = set(placed.devices)
    if plan.bottleneck.endswith(f".{AIR}"):
        on_path = {specs[d].medium for d in on_path if d in specs and specs[d].medium}
    return plan.bottleneck if owner in on_path else ""


def _source_cap(app: AppInfo, placed: ExecutionPlan, source: DeviceSpec | None) -> tuple[float, str] | None:
    """(rate, name) of the app's source cap, as the planner names it; None when unknown here."""
    sensor = source.sensor(app.spec.source_type) if source is not None else None
    max_rate = app.spec.max_rate_hz
    if sensor is None:
        return (max_rate, MAX_RATE_LIMIT) if max_rate > 0 else None
    if 0 < max_rate < sensor.rate_hz:
        return max_rate, MAX_RATE_LIMIT
    return sensor.rate_hz, f"{placed.source_device}.{sensor.type}"


def link_cell(spec: DeviceSpec) -> str:
    """The device's link, and its real board's measured port rate when it has one."""
    port = spec.board_port
    if port is None:
        return spec.link.name
    return f"{spec.link.name}, board {port.measured_payload_bytes_per_s / 1000:.1f} kB/s"


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{100 * share:.0f}%"


def _counts(label: str, states: Sequence[str], order: Sequence[str]) -> str:
    """``apps (2 running, 1 waiting)``: how many are in each state."""
    parts = [f"{states.count(s)} {s}" for s in order if states.count(s)]
    return f"{label} ({', '.join(parts)})" if parts else label


def _plan_line(plan: JointPlan) -> str:
    if plan.epoch == 0:
        return "plan: no epoch deployed yet"
    method = f" ({plan.method})" if plan.method else ""
    bottleneck = f", bottleneck {plan.bottleneck}" if plan.bottleneck else ""
    return f"plan: epoch {plan.epoch}{method}, predicted {plan.system_throughput:.2f} frames/s{bottleneck}"


def _device_note(device: DeviceInfo, now_unix: float) -> str:
    if device.quarantine_reason:
        return f"quarantined: {device.quarantine_reason}"
    if device.state is DeviceState.OFFLINE and device.last_seen_unix > 0 and now_unix > 0:
        return f"last seen {max(0.0, now_unix - device.last_seen_unix):.0f}s ago"
    return ""


def _device_rows(snap: StatusSnapshot) -> list[list[object]]:
    return [
        [
            d.spec.device_id,
            d.spec.kind or "-",
            d.state.value,
            d.spec.board.accelerator,
            _percent(snap.utilisation.get(d.spec.device_id)),
            link_cell(d.spec),
            _device_note(d, snap.taken_unix),
        ]
        for d in snap.devices
    ]


def _app_rows(snap: StatusSnapshot) -> list[list[object]]:
    placements = plan_placements(snap.plan)
    rows: list[list[object]] = []
    for a in snap.apps:
        figures: list[object] = (
            ["hidden"] * 4
            if a.stats_hidden
            else [
                round(a.stats.rate_hz, 2),
                round(a.stats.latency_ms, 1),
                a.stats.frames_delivered,
                a.stats.frames_dropped,
            ]
        )
        # Running: where it runs; otherwise why not (a waiting app's reason is all there is).
        where = placements.get(a.app_id, "") if a.state is AppState.RUNNING else a.reason
        rows.append(
            [
                a.app_id,
                a.spec.name or "-",
                a.spec.model,
                a.state.value,
                *figures,
                app_bottleneck(a, snap.plan, snap.devices) or "-",
                where or a.reason or "-",
            ]
        )
    return rows


def render_status(snap: StatusSnapshot, width: int, height: int | None = None, *, title: str = "") -> list[str]:
    """The view: plan line, devices table, apps table, every line cut to ``width``.

    Columns run from the most to the least telling, the free text (notes, where an app runs
    or why it waits) last. Where the columns do not fit ``width``, the ones that repeat what
    others say (a device's kind and board, an app's name and model) are left out first, so
    that an 80-column terminal still shows every app's bottleneck; then lines are cut. With
    ``height``, at most that many lines (the last says how many more there are).
    """
    device_states = [d.state.value for d in snap.devices]
    app_states = [a.state.value for a in snap.apps]
    lines = [title] if title else []
    lines += [_plan_line(snap.plan), ""]
    lines.append(_counts("devices", device_states, _DEVICE_ORDER))
    lines += _table(_DEVICE_COLUMNS, _device_rows(snap), width, ("kind", "board"), "(no devices)")
    lines += ["", _counts("apps", app_states, _APP_ORDER)]
    lines += _table(_APP_COLUMNS, _app_rows(snap), width, ("model", "name"), "(no apps)")
    return fit(lines, width, height)


def _table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], width: int, optional: Sequence[str], empty: str
) -> list[str]:
    """:func:`render_table`, leaving out ``optional`` columns in turn until all but the last fit
    ``width`` with :data:`_FREE_TEXT_MIN` characters to spare for the last."""
    keep = list(range(len(headers)))
    for name in ("", *optional):
        if name:
            keep.remove(headers.index(name))
        fixed = render_table(
            [headers[i] for i in keep[:-1]], [[row[i] for i in keep[:-1]] for row in rows], max_width=max(width, 1)
        )
        if max(map(len, fixed.splitlines())) + 2 + _FREE_TEXT_MIN <= width:
            break
    # No cap on a cell's width here: the view is cut to the terminal's width as a whole.
    cells = [[row[i] for i in keep] for row in rows]
    return render_table([headers[i] for i in keep], cells, empty=empty, max_width=max(width, 1)).splitlines()


def status_json(snap: StatusSnapshot) -> dict[str, object]:
    """The ``--json`` object: snake_case keys, numbers as numbers, null where not known."""
    plan = snap.plan
    placements = plan_placements(plan)
    return {
        "coordinator": snap.coordinator,
        "taken_unix": snap.taken_unix,
        "plan": {
            "epoch": plan.epoch,
            "predicted_throughput_hz": _finite(plan.system_throughput),
            "bottleneck": plan.bottleneck or None,
            "method": plan.method,
            "quarantined": dict(plan.quarantined),
            "unplaced": dict(plan.unplaced),
        },
        "devices": [_device_json(d, snap.utilisation.get(d.spec.device_id)) for d in snap.devices],
        "apps": [_app_json(a, snap, placements.get(a.app_id)) for a in snap.apps],
    }


def _finite(value: float | None) -> float | None:
    """JSON has no infinity or NaN (e.g. the rate of an app with nothing to limit it): null."""
    return value if value is not None and math.isfinite(value) else None


def _device_json(device: DeviceInfo, busy_share: float | None) -> dict[str, object]:
    spec = device.spec
    return {
        "device_id": spec.device_id,
        "kind": spec.kind,
        "state": device.state.value,
        "board": spec.board.name,
        "accelerator": spec.board.accelerator,
        "accelerator_utilisation": _finite(busy_share),
        "accelerator_busy_s": device.telemetry.accelerator_busy_s,
        "link": spec.link.name,
        "link_bytes_per_s": spec.link.bandwidth_bytes_per_s,
        "board_port_bytes_per_s": None if spec.board_port is None else spec.board_port.measured_payload_bytes_per_s,
        "last_seen_unix": device.last_seen_unix,
        "quarantine_reason": device.quarantine_reason,
    }


def _app_json(app: AppInfo, snap: StatusSnapshot, where: str | None) -> dict[str, object]:
    placed = snap.plan.plan_for(app.app_id)
    # Another client's app: the coordinator leaves its figures out (zeros), so they are unknown.
    stats = None if app.stats_hidden else app.stats
    return {
        "app_id": app.app_id,
        "name": app.spec.name,
        "model": app.spec.model,
        "source_type": app.spec.source_type,
        "target_type": app.spec.target_type,
        "owner": app.owner,
        "state": app.state.value,
        "reason": app.reason,
        "stats_hidden": app.stats_hidden,
        "rate_hz": None if stats is None else _finite(stats.rate_hz),
        "latency_ms": None if stats is None else _finite(stats.latency_ms),
        "frames_delivered": None if stats is None else stats.frames_delivered,
        "frames_dropped": None if stats is None else stats.frames_dropped,
        "frames_in_flight": None if stats is None else stats.frames_in_flight,
        "frames_skipped": None if stats is None else stats.frames_skipped,
        "predicted_rate_hz": None if placed is None else _finite(placed.predicted_rate_hz),
        "predicted_latency_ms": None if placed is None else _finite(1000 * placed.predicted_latency_s),
        "bottleneck": app_bottleneck(app, snap.plan, snap.devices) or None,
        "where": where,
    }
