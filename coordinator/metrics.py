"""The coordinator's Prometheus metrics: a collector that reads its state at scrape time.

Per app and per device, the figures are those ``synergy apps --json`` and ``synergy devices
--json`` show, read from the same calls (:meth:`ControlCore.list_apps`,
:meth:`ControlCore.list_devices`) at the moment of the scrape, so the two cannot disagree;
counters come from :class:`~synergy.reports.CoordinatorStats` (what the SDK's ``stats()`` answers);
what the state does not keep (latency histogram, drops by cause, planning time, re-plan
causes, predicted utilisation) from the driver's
:class:`~coordinator.observations.CoordinatorObservations`. Every metric, its labels and
meaning: docs/metrics.md.

Label values are bounded: apps and devices the coordinator knows (removed apps leave at the
next scrape), a fixed set of states, drop causes and re-plan causes, the rpc names of the
services.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from prometheus_client.core import Metric
from prometheus_client.registry import CollectorRegistry

from synergy.metrics.families import Families, add_outcomes, add_refusals
from synergy.security.audit import AuditLog
from synergy.types import AppState, DeviceState

if TYPE_CHECKING:
    from coordinator.service import Coordinator

__all__ = ["CoordinatorCollector", "coordinator_registry"]


class CoordinatorCollector:
    """``collect()`` builds every coordinator metric from the state at this moment."""

    def __init__(
        self,
        coordinator: Coordinator,
        audit: AuditLog | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._c = coordinator
        self._audit = audit
        self._clock = clock
        self._wall_clock = wall_clock

    def collect(self) -> Iterable[Metric]:
        f = Families()
        self._apps(f)
        self._devices(f)
        self._planner(f)
        self._counters(f)
        add_refusals(f, self._audit)
        return f.metrics

    def _apps(self, f: Families) -> None:
        core = self._c.core
        infos = core.list_apps(self._clock())
        plan = core.plan
        self._c.observations.outcomes.retain(a.app_id for a in infos)
        f.gauge(
            "synergy_app_info",
            "Always 1: an app the coordinator holds, with its name, model, sensor and output types.",
            labels=("app", "name", "model", "source", "target"),
            rows=[((a.app_id, a.spec.name, a.spec.model, a.spec.source_type, a.spec.target_type), 1) for a in infos],
        )
        f.gauge(
            "synergy_app_state",
            "1 for the app's state (waiting, running, stalled), 0 for the others.",
            labels=("app", "state"),
            rows=[((a.app_id, s.value), float(a.state is s)) for a in infos for s in AppState],
        )
        f.gauge(
            "synergy_app_placed",
            "1 when the deployed plan places the app (admitted), 0 while it waits.",
            labels=("app",),
            rows=[((a.app_id,), float(plan.plan_for(a.app_id) is not None)) for a in infos],
        )
        for name, doc, values in (
            ("synergy_app_frames_admitted_total", "Frames its sources admitted (as their agents last reported).",
             [a.stats.frames_admitted for a in infos]),
            ("synergy_app_frames_delivered_total", "Frames delivered, each counted once.",
             [a.stats.frames_delivered for a in infos]),
            ("synergy_app_frames_dropped_total", "Frames dropped, each counted once (the reasons: "
             "synergy_app_drop_reports_total).", [a.stats.frames_dropped for a in infos]),
            ("synergy_app_frames_skipped_total", "Captures skipped at the sensor because the pipeline had no room "
             "(not drops: they never entered).", [a.stats.frames_skipped for a in infos]),
        ):  # fmt: skip
            f.counter(name, doc, labels=("app",), rows=[((a.app_id,), v) for a, v in zip(infos, values, strict=True)])
        f.gauge(
            "synergy_app_frames_in_flight",
            "Frames admitted and not yet delivered or dropped.",
            labels=("app",),
            rows=[((a.app_id,), a.stats.frames_in_flight) for a in infos],
        )
        f.gauge(
            "synergy_app_rate_frames_per_second",
            "Delivered frames per second over the last 5 s (synergy apps: fps).",
            labels=("app",),
            rows=[((a.app_id,), a.stats.rate_hz) for a in infos],
        )
        f.gauge(
            "synergy_app_recent_latency_seconds",
            "Mean capture-to-delivery latency over the last 5 s (synergy apps: lat_ms).",
            labels=("app",),
            rows=[((a.app_id,), a.stats.latency_ms / 1000.0) for a in infos],
        )
        placed = [(a.app_id, p) for a in infos if (p := plan.plan_for(a.app_id)) is not None]
        f.gauge(
            "synergy_app_planned_rate_frames_per_second",
            "The rate the deployed plan predicts for the app.",
            labels=("app",),
            rows=[((app_id,), p.predicted_rate_hz) for app_id, p in placed],
        )
        f.gauge(
            "synergy_app_planned_latency_seconds",
            "The latency the deployed plan predicts for the app.",
            labels=("app",),
            rows=[((app_id,), p.predicted_latency_s) for app_id, p in placed],
        )
        add_outcomes(f, "synergy_app", self._c.observations.outcomes)

    def _devices(self, f: Families) -> None:
        core = self._c.core
        now = self._clock()
        infos = core.list_devices(now, self._wall_clock())
        ids = [d.spec.device_id for d in infos]
        f.gauge(
            "synergy_device_info",
            "Always 1: a device the coordinator knows, with its board, kind and link.",
            labels=("device", "board", "kind", "link"),
            rows=[((d.spec.device_id, d.spec.board.name, d.spec.kind, d.spec.link.name), 1) for d in infos],
        )
        f.gauge(
            "synergy_device_online",
            "1 while the device holds a live lease (synergy devices: online), 0 when offline.",
            labels=("device",),
            rows=[((d.spec.device_id,), float(d.state is DeviceState.ONLINE)) for d in infos],
        )
        f.gauge(
            "synergy_device_lease_remaining_seconds",
            "Seconds until the device's lease runs out unless a heartbeat renews it (0 when offline).",
            labels=("device",),
            rows=[((i,), _lease_left(core.devices[i].expires_at - now, core.devices[i].online)) for i in ids],
        )
        f.gauge(
            "synergy_device_quarantined",
            "1 while the planner leaves the device out after failed deployments.",
            labels=("device",),
            rows=[((d.spec.device_id,), float(bool(d.quarantine_reason))) for d in infos],
        )
        f.gauge(
            "synergy_device_calibration_factor",
            "Measured / modelled stage time the planner uses for the device (1: the cost model as is).",
            labels=("device",),
            rows=[((i,), core.planned_factors.get(i, 1.0)) for i in ids],
        )
        for name, doc, field in (
            ("synergy_device_frames_in_total", "Frames the device received from peers.", "frames_in"),
            ("synergy_device_frames_out_total", "Frames the device sent to peers.", "frames_out"),
            ("synergy_device_frames_dropped_total", "Frames the device dropped.", "frames_dropped"),
            ("synergy_device_frames_replayed_total", "Frames a retiring epoch replayed on the new path.",
             "frames_replayed"),
            ("synergy_device_peer_bytes_sent_total", "Activation bytes the device sent to peers.", "bytes_to_peers"),
            ("synergy_device_peer_bytes_received_total", "Activation bytes the device received from peers.",
             "bytes_from_peers"),
            ("synergy_device_coordinator_bytes_sent_total", "Result bytes the device sent to the coordinator.",
             "bytes_to_coordinator"),
            ("synergy_device_accelerator_busy_seconds_total", "Seconds the device's accelerator was busy "
             "(rate(): its utilisation).", "accelerator_busy_s"),
        ):  # fmt: skip
            f.counter(
                name,
                f"{doc} As of its last heartbeat.",
                labels=("device",),
                rows=[((d.spec.device_id,), float(getattr(d.telemetry, field))) for d in infos],
            )
        f.gauge(
            "synergy_device_planned_utilisation_ratio",
            "Busy fraction the deployed plan predicts for each resource (accelerator, cpu, radio; all: a "
            "device whose work serializes; air: a shared medium, named in the device label).",
            labels=("device", "resource"),
            rows=[((*_resource(name),), u) for name, u in sorted(self._c.observations.utilisation(core).items())],
        )

    def _planner(self, f: Families) -> None:
        core = self._c.core
        observations = self._c.observations
        f.gauge("synergy_epoch", "The epoch deployed now.", core.epoch)
        f.gauge("synergy_control_busy", "1 while a planning round or a deployment runs.", float(core.busy))
        plan = core.plan
        f.gauge(
            "synergy_plan_throughput_frames_per_second",
            "System throughput the deployed plan predicts (all apps).",
            plan.system_throughput,
        )
        f.gauge("synergy_plan_unplaced_apps", "Apps the deployed plan could not place.", len(plan.unplaced))
        f.histogram(
            "synergy_planning_duration_seconds",
            "Time of each planner call that produced a plan (in its worker thread).",
            rows=[((), observations.planning)],
        )
        f.counter(
            "synergy_replan_rounds_total",
            "Finished planning rounds by outcome (deployed, unchanged, void, plan_failed, deploy_failed, "
            "deploy_cancelled).",
            labels=("outcome",),
            rows=[((outcome,), n) for outcome, n in sorted(observations.round_outcomes.items())],
        )
        f.counter(
            "synergy_replan_causes_total",
            "Causes finished planning rounds took up, by kind (requests made while a round ran are coalesced "
            "into the next one; repeats of a pending cause count once).",
            labels=("cause",),
            rows=[((cause,), n) for cause, n in sorted(observations.round_causes.items())],
        )

    def _counters(self, f: Families) -> None:
        stats = self._c.stats
        for name, doc, value in (
            ("synergy_epochs_activated_total", "Epochs activated since the coordinator started.", stats.replans),
            ("synergy_deploy_failures_total", "Deployments that failed or timed out (rolled back).",
             stats.deploy_failures),
            ("synergy_deploys_cancelled_total", "Deployments cancelled (a device they needed left).",
             stats.deploys_cancelled),
            ("synergy_partitions_sent_total", "Partitions whose ONNX bytes were sent to an agent.",
             stats.partitions_sent),
            ("synergy_partitions_reused_total", "Partitions an agent already held (not sent again).",
             stats.partitions_reused),
            ("synergy_partition_bytes_sent_total", "ONNX bytes of partitions sent to agents.",
             stats.partition_bytes_sent),
            ("synergy_recalibrations_total", "Times measured stage times drifted from the cost model.",
             stats.recalibrations),
            ("synergy_quarantines_total", "Devices quarantined after failed deployments.", stats.quarantines),
            ("synergy_drift_repairs_total", "Redeployments to agents that drifted from what they were given.",
             stats.drift_repairs),
            ("synergy_results_received_total", "Frame outcomes target agents reported.", stats.results_received),
            ("synergy_result_bytes_received_total", "Bytes of final results received.",
             stats.result_bytes_received),
            ("synergy_activation_bytes_relayed_total", "Activation bytes the coordinator relayed (always 0).",
             stats.activation_bytes_relayed),
            ("synergy_input_bytes_forwarded_total", "Infer input bytes forwarded to source agents.",
             stats.input_bytes_forwarded),
        ):  # fmt: skip
            f.counter(name, doc, value)
        f.gauge("synergy_result_watchers", "Clients watching results.", self._c.results.watcher_count)


def _lease_left(seconds: float, online: bool) -> float:
    return max(0.0, seconds) if online else 0.0


def _resource(name: str) -> tuple[str, str]:
    """"watch.accelerator" -> ("watch", "accelerator"); "body.air" -> ("body", "air")."""
    device, _, resource = name.rpartition(".")
    return device, resource


def coordinator_registry(coordinator: Coordinator, audit: AuditLog | None = None) -> CollectorRegistry:
    """A registry of the coordinator's own (not the process-wide default: tests run several)."""
    registry = CollectorRegistry()
    registry.register(CoordinatorCollector(coordinator, audit))
    return registry
