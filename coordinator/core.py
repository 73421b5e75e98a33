"""The coordinator's control core: a pure state machine, events in, instructions out.

DESIGN.md §4. The core holds the virtual computing space (devices with leases and what they
really hold, apps, the deployed joint plan, quarantines, counters) and decides; it performs
no I/O and reads no clock. :meth:`ControlCore.handle` takes one event from
:mod:`coordinator.messages` and returns the instructions the driver must perform. Every
instruction that starts work (planning, deploying) is answered by exactly one outcome event,
so no failure of I/O can leave the core waiting: a deployment that a departed device would
block is cancelled, and a watchdog cancels anything in flight for too long.

One operation runs at a time: plan, then (when the plan changed or an agent drifted from it)
deploy the next epoch. Requests that arrive meanwhile are coalesced into the next round.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import structlog

from coordinator.calibration import Calibrator
from coordinator.messages import (
    AppRemoved,
    AppSubmitted,
    CancelDeploy,
    CloseChannel,
    DeleteApp,
    DeployFinished,
    DeployOutcome,
    DeviceDeregistered,
    DeviceForgotten,
    DeviceRegistered,
    DeviceWentOffline,
    Event,
    Expected,
    FanOutResult,
    HeartbeatReceived,
    Instruction,
    PlanComputed,
    PlanFailed,
    PublishPlan,
    ReplanSettled,
    ResultReported,
    SaveCounters,
    SaveDeployment,
    SaveDevice,
    SaveQuarantines,
    StartDeploy,
    StartPlanning,
    Tick,
    UndeployStale,
)
from coordinator.models import LoadedModel
from coordinator.replans import CauseKind, ReplanCause, ReplanLog, ReplanOutcome
from coordinator.vcs import AppRecord, DeviceRecord, Quarantine
from synergy.deployment import AgentState
from synergy.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from synergy.planning.api import PlanningApp
from synergy.planning.diff import diff_plans
from synergy.reports import CoordinatorStats
from synergy.types import (
    CLIENT_SOURCE,
    AppInfo,
    AppSpec,
    AppState,
    AppStats,
    DeviceInfo,
    DeviceSpec,
    DeviceState,
    ExecutionPlan,
    JointPlan,
    SensorSpec,
)

__all__ = ["ControlCore", "CoreConfig", "RestoredState"]

log = structlog.get_logger(__name__)

#: The rate a client-fed app's virtual sensor allows (Infer calls are the real limit).
CLIENT_SOURCE_RATE_HZ = 1000.0
#: Retired plans whose targets may still report (a retiring epoch drains for up to 10 s, and
#: re-plans can follow each other faster than that).
RETIRED_PLANS_KEPT = 4


@dataclass(frozen=True)
class CoreConfig:
    lease_ttl_s: float = 5.0
    heartbeat_s: float = 1.0
    #: First quarantine of a device whose deployment failed; doubles per repeated failure.
    quarantine_s: float = 5.0
    quarantine_max_s: float = 300.0
    #: After a failed deployment that no device is to blame for, plan again after this long.
    retry_s: float = 2.0
    #: Anything in flight longer than this is cancelled (a stuck thread, a lost outcome).
    watchdog_s: float = 120.0
    #: Heartbeats in a row that must disagree with the deployment before it is repaired.
    drift_heartbeats: int = 2
    #: A deployed app with no frame outcome for this long (and 3 frame periods) is STALLED.
    stall_after_s: float = 5.0
    #: Re-plan when measured stage times drift from the cost model (online estimation).
    calibrate: bool = True
    calibration_check_s: float = 2.0


@dataclass(frozen=True)
class RestoredState:
    """What a restarted coordinator read back from its state store."""

    next_app: int = 0
    next_epoch: int = 0
    apps: Sequence[tuple[AppSpec, LoadedModel]] = ()
    devices: Sequence[tuple[DeviceSpec, str]] = ()  # (spec, lease id)
    plan: JointPlan = field(default_factory=JointPlan)
    expected: Expected = field(default_factory=dict)
    #: device -> (reason, until unix time, consecutive failures)
    quarantines: Mapping[str, tuple[str, float, int]] = field(default_factory=dict)
    #: app -> who submitted it
    owners: Mapping[str, str] = field(default_factory=dict)


@dataclass
class _Deployed:
    """The joint plan that is active on the agents, and what each of them should hold."""

    plan: JointPlan = field(default_factory=JointPlan)
    key: tuple[object, ...] = ()
    expected: Expected = field(default_factory=dict)
    activated_at: float = 0.0


@dataclass
class _Deploying:
    epoch: int
    plan: JointPlan
    key: tuple[object, ...]
    devices: frozenset[str]
    started_at: float
    ticket: int
    cancelled: bool = False


class ControlCore:
    """The decision-making part of the coordinator. See the module docstring."""

    def __init__(self, config: CoreConfig | None = None) -> None:
        self.config = config or CoreConfig()
        if self.config.heartbeat_s >= self.config.lease_ttl_s:
            raise InvalidArgument(
                f"heartbeat period {self.config.heartbeat_s}s must be shorter than the lease TTL "
                f"{self.config.lease_ttl_s}s"
            )
        self.devices: dict[str, DeviceRecord] = {}
        self.apps: dict[str, AppRecord] = {}
        self.quarantines: dict[str, Quarantine] = {}
        self.stats = CoordinatorStats()
        self.calibrator = Calibrator()
        #: The calibration factors the current plan was made with.
        self.planned_factors: dict[str, float] = {}
        self._deployed = _Deployed()
        #: Plans deployed before the current one: their targets' last results still arrive.
        self._retired_plans: deque[JointPlan] = deque(maxlen=RETIRED_PLANS_KEPT)
        self._next_app = 0
        self._next_epoch = 0
        self._next_plan_id = 0
        self._wanted = 0  # replan tickets handed out
        self._settled = 0  # tickets whose round has finished
        self._planning: tuple[int, int, float] | None = None  # (plan id, ticket, started at)
        self._deploying: _Deploying | None = None
        #: A deployment must happen even if the plan is unchanged (an agent drifted).
        self._force_deploy = False
        self._retry_at: float | None = None
        self._last_calibration_check = 0.0
        self._infer_seq: dict[str, int] = {}
        #: app -> (device, epoch) -> (admitted, skipped): what each source last reported.
        self._source_counts: dict[str, dict[tuple[str, int], tuple[int, int]]] = {}
        #: Why each planning round ran and what came of it (read by the dashboard).
        self.replans = ReplanLog()

    # -- queries (pure, read-only) -------------------------------------------------------

    @property
    def plan(self) -> JointPlan:
        return self._deployed.plan

    @property
    def epoch(self) -> int:
        return self._deployed.plan.epoch

    @property
    def busy(self) -> bool:
        return self._planning is not None or self._deploying is not None

    @property
    def settled_ticket(self) -> int:
        return self._settled

    @property
    def wanted_ticket(self) -> int:
        """The ticket of the latest replan request (wait until it is settled)."""
        return self._wanted

    def peek_app_id(self) -> str:
        """The id the next accepted app will get (a refused submit consumes none)."""
        return f"app-{self._next_app + 1}"

    def online_devices(self) -> list[DeviceSpec]:
        return [d.spec for d in self.devices.values() if d.online]

    def plannable_devices(self, now: float) -> list[DeviceSpec]:
        return [d.spec for d in self.devices.values() if d.online and not self._quarantined(d.spec.device_id, now)]

    def app(self, app_id: str) -> AppRecord:
        record = self.apps.get(app_id)
        if record is None:
            raise NotFound(f"unknown app id {app_id!r}; known: {sorted(self.apps) or 'none'}")
        return record

    def check_submission(self, spec: AppSpec) -> None:
        """Refuse an app this space can never run (unknown types, bad pins); changes nothing."""
        devices = {d.device_id: d for d in self.online_devices()}
        sensors = {s.type for d in devices.values() for s in d.sensors}
        outputs = {o.type for d in devices.values() for o in d.outputs}
        if spec.source_type != CLIENT_SOURCE and spec.source_type not in sensors:
            raise InvalidArgument(
                f"app.source_type: unknown sensor type {spec.source_type!r}; the space has: "
                f"{sorted(sensors) or 'none'} (or {CLIENT_SOURCE!r} for apps fed through Infer)"
            )
        if spec.target_type not in outputs:
            raise InvalidArgument(
                f"app.target_type: unknown output type {spec.target_type!r}; the space has: {sorted(outputs) or 'none'}"
            )
        for role, pinned in (("source", spec.source_device), ("target", spec.target_device)):
            if pinned and pinned not in devices:
                raise NotFound(
                    f"app.{role}_device: pinned to device {pinned!r}, which is not online: {sorted(devices)}"
                )
        if (
            spec.source_device
            and spec.source_type != CLIENT_SOURCE
            and devices[spec.source_device].sensor(spec.source_type) is None
        ):
            raise InvalidArgument(
                f"app.source_device: device {spec.source_device!r} has no {spec.source_type!r} sensor"
            )
        if spec.target_device and not devices[spec.target_device].has_output(spec.target_type):
            raise InvalidArgument(
                f"app.target_device: device {spec.target_device!r} has no {spec.target_type!r} output"
            )

    def planning_devices(self, apps: Sequence[AppSpec], now: float) -> list[DeviceSpec]:
        """Plannable devices; each gets a virtual 'client' sensor when a client-fed app exists."""
        devices = self.plannable_devices(now)
        if any(a.source_type == CLIENT_SOURCE for a in apps):
            virtual = SensorSpec(CLIENT_SOURCE, CLIENT_SOURCE_RATE_HZ)
            devices = [replace(d, sensors=(*d.sensors, virtual)) for d in devices]
        return devices

    def app_info(self, record: AppRecord, now: float) -> AppInfo:
        state, reason = self._app_state(record, now)
        window = record.stats
        sources = self._source_counts.get(record.spec.app_id, {})
        return AppInfo(
            app_id=record.spec.app_id,
            spec=record.spec,
            state=state,
            reason=reason,
            layers=len(record.model.hardware.layers),
            stats=AppStats(
                window.delivered,
                window.dropped,
                window.rate_hz(now),
                window.latency_ms(now),
                frames_admitted=sum(a for a, _ in sources.values()),
                frames_skipped=sum(s for _, s in sources.values()),
            ),
            owner=record.owner,
            inputs=tuple(record.model.hardware.inputs),
        )

    def _app_state(self, record: AppRecord, now: float) -> tuple[AppState, str]:
        app_id = record.spec.app_id
        plan = self._deployed.plan.plan_for(app_id)
        if plan is None:
            return AppState.WAITING, record.reason or self._waiting_reason()
        gone = [d for d in plan.devices if d not in self.devices or not self.devices[d].online]
        if gone:
            return AppState.WAITING, f"device {', '.join(gone)} left; {record.reason or self._waiting_reason()}"
        if record.spec.source_type == CLIENT_SOURCE:
            return AppState.RUNNING, ""  # idle until a client calls Infer
        since = max(self._deployed.activated_at, record.stats.last_outcome_at)
        rate = plan.predicted_rate_hz
        silent_for = now - since
        if silent_for > max(self.config.stall_after_s, 3.0 / rate if rate > 0 else 0.0):
            return AppState.STALLED, (
                f"no frame outcome for {silent_for:.0f}s on epoch {self.epoch} (devices {', '.join(plan.devices)})"
            )
        return AppState.RUNNING, ""

    def _waiting_reason(self) -> str:
        if self._deploying is not None:
            return f"deploying epoch {self._deploying.epoch}"
        if self._planning is not None:
            return "planning"
        return "not planned yet"

    def list_apps(self, now: float) -> list[AppInfo]:
        return [self.app_info(r, now) for r in self.apps.values()]

    def list_devices(self, now: float, now_unix: float) -> list[DeviceInfo]:
        out = []
        for record in self.devices.values():
            quarantine = self.quarantines.get(record.spec.device_id)
            active = quarantine is not None and quarantine.until > now
            out.append(
                DeviceInfo(
                    spec=record.spec,
                    state=DeviceState.ONLINE if record.online else DeviceState.OFFLINE,
                    last_seen_unix=record.last_seen_unix,
                    telemetry=record.telemetry,
                    quarantine_reason=quarantine.reason if active and quarantine else "",
                    quarantined_until_unix=now_unix + (quarantine.until - now) if active and quarantine else 0.0,
                )
            )
        return out

    def current_plan(self, now: float) -> JointPlan:
        quarantined = {d: q.reason for d, q in self.quarantines.items() if q.until > now}
        return replace(self._deployed.plan, quarantined=quarantined)

    def pipeline_of(self, app_id: str, epoch: int) -> ExecutionPlan | None:
        """``app_id``'s plan in ``epoch``, for the epochs whose results may still arrive: the
        deployed one, the one deploying and the last few retired (None for any other)."""
        plans = [self._deployed.plan, *self._retired_plans]
        if self._deploying is not None:
            plans.append(self._deploying.plan)
        for plan in plans:
            if plan.epoch == epoch and epoch > 0:
                return plan.plan_for(app_id)
        return None

    def live_holder(self, device_id: str, now: float) -> str | None:
        """The connection holding ``device_id`` while its lease is live (None: nobody holds it).

        A lease restored after a restart is held by a connection not known yet until the
        agent's next heartbeat says which.
        """
        record = self.devices.get(device_id)
        if record is None or not record.online or record.expires_at <= now:
            return None
        return record.connection or "a connection not seen since the coordinator restarted"

    def lease_device(self, lease_id: str) -> str | None:
        """The device that holds (or last held) ``lease_id``; None for a lease never given."""
        return next((d for d, r in self.devices.items() if r.lease_id == lease_id), None)

    def next_infer_seq(self, app_id: str) -> int:
        seq = self._infer_seq.get(app_id, 0) + 1
        self._infer_seq[app_id] = seq
        return seq

    def source_device(self, app_id: str) -> DeviceSpec:
        record = self.app(app_id)
        plan = self._deployed.plan.plan_for(app_id)
        if plan is None:
            raise FailedPrecondition(f"app {app_id} is not running: {record.reason or self._waiting_reason()}")
        device = self.devices.get(plan.source_device)
        if device is None or not device.online:
            raise FailedPrecondition(f"app {app_id}: its source device {plan.source_device} is offline")
        return device.spec

    # -- restart ---------------------------------------------------------------------------

    def restore(self, state: RestoredState, now: float, now_unix: float) -> list[Instruction]:
        """Take back what a previous run persisted. Devices come back with their leases, on
        probation: an agent that is still alive keeps heartbeating with its lease and carries
        on; one that is gone lets its lease expire like any other."""
        self._next_app = state.next_app
        self._next_epoch = max(state.next_epoch, state.plan.epoch)
        for spec, lease_id in state.devices:
            self.devices[spec.device_id] = DeviceRecord(
                spec=spec, lease_id=lease_id, expires_at=now + self.config.lease_ttl_s, last_seen=now
            )
        for app_spec, model in state.apps:
            self.apps[app_spec.app_id] = AppRecord(
                app_spec, model, reason="restored; waiting for its devices", owner=state.owners.get(app_spec.app_id, "")
            )
        for device_id, (reason, until_unix, failures) in state.quarantines.items():
            self.quarantines[device_id] = Quarantine(reason, now + (until_unix - now_unix), failures)
        plans = tuple(p for p in state.plan.plans if p.app_id in self.apps)
        plan = replace(state.plan, plans=plans)
        self._deployed = _Deployed(plan, self._plan_key(plan), dict(state.expected), activated_at=now)
        self.stats.epoch = plan.epoch
        log.info("state_restored", apps=len(self.apps), devices=len(self.devices), epoch=plan.epoch)
        return self._request_replan(now, CauseKind.STARTED)

    # -- the state machine -----------------------------------------------------------------

    def handle(self, event: Event) -> list[Instruction]:
        """Apply one event; returns what the driver must do. Raises SynergyError for a request
        the current state refuses (the state is then unchanged)."""
        match event:
            case DeviceRegistered():
                return self._registered(event)
            case HeartbeatReceived():
                return self._heartbeat(event)
            case DeviceDeregistered():
                record = self._live(event.device_id, event.lease_id)
                log.info("device_deregistered", device=event.device_id)
                return self._offline(record, "deregistered", event.now)
            case DeviceWentOffline():
                gone = self.devices.get(event.device_id)
                if gone is None or not gone.online or gone.spec.address != event.address:
                    return []
                log.warning("device_offline_by_event", device=event.device_id, reason=event.reason)
                return self._offline(gone, event.reason, event.now)
            case DeviceForgotten():
                return self._forgotten(event)
            case AppSubmitted():
                return self._submitted(event)
            case AppRemoved():
                return self._removed(event)
            case ResultReported():
                return self._result(event)
            case PlanComputed():
                return self._plan_computed(event)
            case PlanFailed():
                return self._plan_failed(event)
            case DeployFinished():
                return self._deploy_finished(event)
            case Tick():
                return self._tick(event)
        raise InvalidArgument(f"unknown event {type(event).__name__}")

    # devices

    def _registered(self, event: DeviceRegistered) -> list[Instruction]:
        spec, now = event.spec, event.now
        existing = self.devices.get(spec.device_id)
        if (
            existing is not None
            and existing.online
            and existing.expires_at > now
            and existing.spec.address != spec.address
        ):
            raise AlreadyExists(
                f"device {spec.device_id!r} is already live (registered from {existing.spec.address}); "
                "a device id is held by one agent at a time: give this agent another --device-id"
            )
        lease_id = secrets.token_hex(8)
        record = DeviceRecord(
            spec=spec,
            lease_id=lease_id,
            expires_at=now + self.config.lease_ttl_s,
            last_seen=now,
            last_seen_unix=event.now_unix,
            state=event.state,
            state_at=now,
            connection=event.connection,
        )
        changed = existing is None or not existing.online or existing.spec != spec
        self.devices[spec.device_id] = record
        self._number_past(event.state)
        log.info("device_registered", device=spec.device_id, address=spec.address, board=spec.board.name)
        out: list[Instruction] = [SaveDevice(spec, lease_id)]
        if existing is not None and existing.spec.address != spec.address:
            out.append(CloseChannel(existing.spec.address))
        out += self._compare_state(record, now, threshold=1)
        if changed:
            joined = existing is None or not existing.online
            kind = CauseKind.DEVICE_JOINED if joined else CauseKind.DEVICE_CHANGED
            out += self._request_replan(now, kind, spec.device_id)
        return out

    def _forgotten(self, event: DeviceForgotten) -> list[Instruction]:
        """Forget an offline device (its record, its quarantine); an online one is refused."""
        record = self.devices.get(event.device_id)
        if record is None:
            raise NotFound(f"unknown device id {event.device_id!r}; known: {sorted(self.devices) or 'none'}")
        if record.online:
            raise FailedPrecondition(
                f"device {event.device_id!r} is online: only an offline device can be forgotten (stop its agent, "
                "which deregisters it, or wait for its lease to expire)"
            )
        del self.devices[event.device_id]
        log.info("device_forgotten", device=event.device_id)
        if self.quarantines.pop(event.device_id, None) is not None:
            return [self._save_quarantines(event.now)]
        return []

    def _heartbeat(self, event: HeartbeatReceived) -> list[Instruction]:
        record = self._live(event.device_id, event.lease_id)
        record.expires_at = event.now + self.config.lease_ttl_s
        record.last_seen, record.last_seen_unix = event.now, event.now_unix
        record.telemetry = event.telemetry
        record.state, record.state_at = event.state, event.now
        if event.connection:
            record.connection = event.connection
        self._number_past(event.state)
        self.calibrator.observe(event.device_id, event.telemetry.stage_timings)
        for source in event.telemetry.sources:
            if source.app_id in self.apps:
                counts = self._source_counts.setdefault(source.app_id, {})
                key = (event.device_id, source.epoch)
                before = counts.get(key, (0, 0))
                # Monotonic: an agent that restarted reports its new epochs from zero.
                counts[key] = (max(before[0], source.admitted), max(before[1], source.skipped))
        return self._compare_state(record, event.now, threshold=self.config.drift_heartbeats)

    def _live(self, device_id: str, lease_id: str) -> DeviceRecord:
        record = self.devices.get(device_id)
        if record is None or not record.online or record.lease_id != lease_id:
            raise NotFound(f"device {device_id!r} holds no live lease {lease_id[:16]!r}; register again")
        return record

    def _offline(self, record: DeviceRecord, reason: str, now: float) -> list[Instruction]:
        record.online = False
        record.mismatches = 0
        device_id = record.spec.device_id
        self.calibrator.forget(device_id)
        out: list[Instruction] = [CloseChannel(record.spec.address)]
        deploying = self._deploying
        if deploying is not None and device_id in deploying.devices and not deploying.cancelled:
            deploying.cancelled = True
            out.append(CancelDeploy(deploying.epoch, f"device {device_id} left: {reason}"))
        return out + self._request_replan(now, CauseKind.DEVICE_LEFT, device_id, reason)

    def _compare_state(self, record: DeviceRecord, now: float, threshold: int) -> list[Instruction]:
        """Reconcile what the agent says it holds with what was deployed to it."""
        if self.busy or record.state is None:
            return []  # mid-deployment, the agent's report may predate the last step
        device_id = record.spec.device_id
        epoch = self.epoch
        expected = self._deployed.expected.get(device_id, frozenset())
        state = record.state
        stale = [e for e in state.loaded_epochs if e != epoch or not expected]
        missing = bool(expected) and (state.holds(epoch) != expected or state.active_epoch != epoch)
        if not stale and not missing:
            record.mismatches = 0
            return []
        record.mismatches += 1
        if record.mismatches < threshold:
            return []
        record.mismatches = 0
        out: list[Instruction] = [UndeployStale(device_id, record.spec.address, e) for e in stale]
        if stale:
            log.warning("agent_holds_stale_epochs", device=device_id, epochs=stale, deployed=epoch)
        if missing:
            log.warning(
                "agent_drifted_from_deployment",
                device=device_id,
                epoch=epoch,
                active=state.active_epoch,
                holds=len(state.holds(epoch)),
                expected=len(expected),
            )
            self.stats.drift_repairs += 1
            self._force_deploy = True
            out += self._request_replan(now, CauseKind.DEVICE_DRIFTED, device_id)
        return out

    # apps

    def _submitted(self, event: AppSubmitted) -> list[Instruction]:
        spec = event.spec
        if spec.app_id != self.peek_app_id():
            raise FailedPrecondition(f"app id {spec.app_id} is not the next one ({self.peek_app_id()})")
        self._next_app += 1
        self.apps[spec.app_id] = AppRecord(spec, event.model, reason="not planned yet", owner=event.owner)
        log.info(
            "app_submitted", app=spec.app_id, model=event.model.name, source=spec.source_type, target=spec.target_type
        )
        return [self._save_counters(), *self._request_replan(event.now, CauseKind.APP_SUBMITTED, spec.app_id)]

    def _removed(self, event: AppRemoved) -> list[Instruction]:
        self.app(event.app_id)
        del self.apps[event.app_id]
        self._infer_seq.pop(event.app_id, None)
        self._source_counts.pop(event.app_id, None)
        log.info("app_removed", app=event.app_id)
        return [DeleteApp(event.app_id), *self._request_replan(event.now, CauseKind.APP_REMOVED, event.app_id)]

    def _result(self, event: ResultReported) -> list[Instruction]:
        # Any lease the device still holds counts, live or not: a target drains its last
        # reports right after it deregistered, and they are real outcomes.
        if not any(d.lease_id == event.lease_id for d in self.devices.values()):
            raise NotFound("unknown lease; register again")
        result = event.result
        self.stats.results_received += 1
        self.stats.result_bytes_received += result.nbytes
        record = self.apps.get(result.app_id)
        if record is not None and not record.stats.record(
            event.now, None if result.dropped else result.latency_s, result.seq
        ):
            log.debug("result_repeated", app=result.app_id, seq=result.seq, dropped=result.dropped)
            return []  # a replayed copy of a frame already counted: the client saw it once
        return [FanOutResult(result)]

    # planning and deployment

    def _request_replan(self, now: float, kind: CauseKind, subject: str = "", detail: str = "") -> list[Instruction]:
        self._want(now, kind, subject, detail)
        return self._maybe_start(now)

    def _want(self, now: float, kind: CauseKind, subject: str = "", detail: str = "") -> None:
        """One more replan ticket, and why (the round that takes it up records the cause)."""
        self._wanted += 1
        self.replans.request(ReplanCause(kind, subject, now, detail))

    def _maybe_start(self, now: float) -> list[Instruction]:
        if self.busy or self._settled >= self._wanted:
            return []
        if self._retry_at is not None and now < self._retry_at:
            return []
        self._retry_at = None
        self._next_plan_id += 1
        self._planning = (self._next_plan_id, self._wanted, now)
        self.replans.started(self._next_plan_id, now)
        specs = [a.spec for a in self.apps.values()]
        devices = self.planning_devices(specs, now)
        apps = tuple(PlanningApp(a.spec, a.model.hardware) for a in self.apps.values())
        quarantined = {d: q.reason for d, q in self.quarantines.items() if q.until > now}
        return [StartPlanning(self._next_plan_id, tuple(devices), apps, dict(self.planned_factors), quarantined)]

    def _plan_computed(self, event: PlanComputed) -> list[Instruction]:
        if self._planning is None or self._planning[0] != event.plan_id:
            return []  # an answer to a round that was abandoned
        _, ticket, _ = self._planning
        self._planning = None
        now = event.now
        plan = event.plan
        quarantined = {d: q.reason for d, q in self.quarantines.items() if q.until > now}
        for app_id, record in self.apps.items():
            reason = plan.unplaced.get(app_id, "")
            if reason and quarantined:
                reason += f" (left out: {', '.join(f'{d} quarantined: {r}' for d, r in quarantined.items())})"
            record.reason = reason
        known = {p.app_id for p in plan.plans} | set(plan.unplaced)
        for app_id in set(self.apps) - known:
            self.apps[app_id].reason = "submitted while planning; next round"
        involved = {d for p in plan.plans for d in p.devices}
        plannable = {d.device_id for d in self.plannable_devices(now)}
        if not involved <= plannable:
            # A device left while the planner ran: that plan is void, make another.
            self.replans.finished(ReplanOutcome.VOID, now)
            self._want(now, CauseKind.PLAN_VOID)
            return self._settle(ticket, now)
        key = self._plan_key(plan)
        diff = diff_plans(self._deployed.plan, plan)
        if diff.empty and key == self._deployed.key and not self._force_deploy:
            # Same stages on the same agents: keep the epoch, refresh the predictions.
            self._deployed.plan = replace(plan, epoch=self.epoch)
            self.replans.finished(ReplanOutcome.UNCHANGED, now, epoch=self.epoch)
            return self._settle(ticket, now)
        self._force_deploy = False
        self._next_epoch = max(self._next_epoch, self.epoch) + 1
        epoch = self._next_epoch
        planning = {d.device_id: d for d in self.planning_devices([a.spec for a in self.apps.values()], now)}
        devices = {d: planning[d] for d in involved}
        previous = {
            d: self.devices[d].spec.address
            for p in self._deployed.plan.plans
            for d in p.devices
            if d in self.devices and self.devices[d].online
        }
        previous.update(
            {
                d: self.devices[d].spec.address
                for d in self._deployed.expected
                if d in self.devices and self.devices[d].online
            }
        )
        held = {d: self._held_digests(d) for d in involved}
        apps = {p.app_id: (self.apps[p.app_id].spec, self.apps[p.app_id].model) for p in plan.plans}
        self._deploying = _Deploying(epoch, replace(plan, epoch=epoch), key, frozenset(involved), now, ticket)
        self.replans.deploying(epoch)
        log.info(
            "deploying",
            epoch=epoch,
            apps=len(plan.plans),
            devices=sorted(involved),
            stages_kept=len(diff.unchanged),
            stages_moved=sum(len(v) for v in diff.deploy.values()),
            stages_dropped=sum(len(v) for v in diff.undeploy.values()),
            repair=diff.empty and key == self._deployed.key,
        )
        return [
            self._save_counters(),
            StartDeploy(epoch, replace(plan, epoch=epoch), devices, apps, self.epoch, previous, held),
        ]

    def _plan_failed(self, event: PlanFailed) -> list[Instruction]:
        if self._planning is None or self._planning[0] != event.plan_id:
            return []
        _, ticket, _ = self._planning
        self._planning = None
        log.error("planning_failed", error=event.error, retry_in_s=self.config.retry_s)
        for record in self.apps.values():
            if self._deployed.plan.plan_for(record.spec.app_id) is None:
                record.reason = f"planning failed: {event.error}"
        self._retry_at = event.now + self.config.retry_s
        self.replans.finished(ReplanOutcome.PLAN_FAILED, event.now, detail=event.error)
        self._want(event.now, CauseKind.PLAN_FAILED, detail=event.error)  # plan again once the retry time has come
        return self._settle(ticket, event.now)

    def _deploy_finished(self, event: DeployFinished) -> list[Instruction]:
        deploying = self._deploying
        if deploying is None or deploying.epoch != event.epoch:
            return []
        self._deploying = None
        now = event.now
        self.stats.partitions_sent += event.partitions_sent
        self.stats.partitions_reused += event.partitions_reused
        self.stats.partition_bytes_sent += event.partition_bytes_sent
        out: list[Instruction] = []
        if event.outcome is DeployOutcome.ACTIVE:
            self._retired_plans.append(self._deployed.plan)
            self._deployed = _Deployed(deploying.plan, deploying.key, dict(event.expected), activated_at=now)
            self.stats.epoch = deploying.epoch
            self.stats.replans += 1
            for device_id in event.expected:
                quarantine = self.quarantines.get(device_id)
                if quarantine is not None and quarantine.until <= now:
                    del self.quarantines[device_id]  # served its time and deployed fine
                    out.append(self._save_quarantines(now))
            for record in self.devices.values():
                record.mismatches = 0
            log.info(
                "plan_deployed",
                epoch=deploying.epoch,
                method=deploying.plan.method,
                apps=len(deploying.plan.plans),
                unplaced=dict(deploying.plan.unplaced),
                throughput=round(deploying.plan.system_throughput, 3),
            )
            out += [SaveDeployment(deploying.plan, dict(event.expected)), PublishPlan(self.current_plan(now))]
            self.replans.finished(ReplanOutcome.DEPLOYED, now, epoch=deploying.epoch)
            return out + self._settle(deploying.ticket, now)
        # The previous epoch stays active; plan again without whatever failed.
        cancelled = event.outcome is DeployOutcome.CANCELLED
        why = event.detail or "; ".join(f"{d}: {r}" for d, r in sorted(event.failures.items()))
        if cancelled:
            self.replans.finished(ReplanOutcome.DEPLOY_CANCELLED, now, detail=why)
        else:  # failed, timed out or crashed: the detail says which
            detail = f"{event.outcome.value}: {why}" if why else event.outcome.value
            self.replans.finished(ReplanOutcome.DEPLOY_FAILED, now, detail=detail)
        retry = CauseKind.DEPLOY_CANCELLED if cancelled else CauseKind.DEPLOY_FAILED
        self._want(now, retry, str(event.epoch))
        if cancelled:
            self.stats.deploys_cancelled += 1
            log.warning("deploy_cancelled", epoch=event.epoch, detail=event.detail)
        else:
            self.stats.deploy_failures += 1
            blamed = {d: r for d, r in event.failures.items() if d in self.devices and self.devices[d].online}
            log.warning(
                "deploy_failed",
                epoch=event.epoch,
                outcome=event.outcome.value,
                failures=dict(event.failures),
                detail=event.detail,
            )
            for device_id, reason in blamed.items():
                self._quarantine(device_id, f"{event.outcome.value} deploying epoch {event.epoch}: {reason}", now)
            if blamed:
                out.append(self._save_quarantines(now))
            else:
                self._retry_at = now + self.config.retry_s
        return out + self._settle(deploying.ticket, now)

    def _quarantine(self, device_id: str, reason: str, now: float) -> None:
        previous = self.quarantines.get(device_id)
        failures = (previous.failures if previous is not None else 0) + 1
        backoff = min(self.config.quarantine_max_s, self.config.quarantine_s * 2 ** (failures - 1))
        self.quarantines[device_id] = Quarantine(reason, now + backoff, failures)
        self.stats.quarantines += 1
        log.warning("device_quarantined", device=device_id, reason=reason, for_s=backoff, failures=failures)

    def _settle(self, ticket: int, now: float) -> list[Instruction]:
        self._settled = max(self._settled, ticket)
        return [ReplanSettled(self._settled), *self._maybe_start(now)]

    # the clock

    def _tick(self, event: Tick) -> list[Instruction]:
        now = event.now
        out: list[Instruction] = []
        for record in list(self.devices.values()):
            if record.online and record.expires_at <= now:
                log.warning("device_lease_expired", device=record.spec.device_id)
                out += self._offline(record, "lease expired", now)
        for device_id, quarantine in list(self.quarantines.items()):
            if quarantine.until <= now and not quarantine.released:
                quarantine.released = True  # on probation: planned again; cleared by a good deploy
                log.info("device_quarantine_over", device=device_id)
                out += self._request_replan(now, CauseKind.QUARANTINE_OVER, device_id)
        deploying = self._deploying
        if deploying is not None and not deploying.cancelled and now - deploying.started_at > self.config.watchdog_s:
            deploying.cancelled = True
            out.append(CancelDeploy(deploying.epoch, f"deployment still running after {self.config.watchdog_s}s"))
        if self._planning is not None and now - self._planning[2] > self.config.watchdog_s:
            log.error("planning_watchdog", plan_id=self._planning[0])
            out += self._plan_failed(PlanFailed(self._planning[0], "planner did not answer in time", now))
        if self.config.calibrate and now - self._last_calibration_check >= self.config.calibration_check_s:
            self._last_calibration_check = now
            drifted = self.calibrator.drifted(self.planned_factors)
            if drifted:
                self.planned_factors = {**self.planned_factors, **drifted}
                self.stats.calibration = dict(self.planned_factors)
                self.stats.recalibrations += 1
                log.info("calibration_drift_replanning", factors={d: round(f, 3) for d, f in drifted.items()})
                out += self._request_replan(now, CauseKind.CALIBRATION, ", ".join(sorted(drifted)))
        return out + self._maybe_start(now)

    # helpers

    def _number_past(self, state: AgentState) -> None:
        """Never hand out an epoch an agent already holds (e.g. from before a restart that
        kept no state): agents refuse a second deployment under one epoch number."""
        self._next_epoch = max(self._next_epoch, state.active_epoch, *state.loaded_epochs)

    def _quarantined(self, device_id: str, now: float) -> bool:
        quarantine = self.quarantines.get(device_id)
        return quarantine is not None and quarantine.until > now

    def _held_digests(self, device_id: str) -> frozenset[str]:
        """Partitions a device holds: deployed to it, unless a later report says otherwise."""
        record = self.devices.get(device_id)
        if record is None or not record.online:
            return frozenset()
        deployed = {d for _, _, d in self._deployed.expected.get(device_id, frozenset()) if d}
        if record.state is None or record.state_at < self._deployed.activated_at:
            return frozenset(deployed)
        reported = {s.digest for s in record.state.segments if s.digest}
        return frozenset(deployed & reported)

    def _plan_key(self, plan: JointPlan) -> tuple[object, ...]:
        """What must be equal for a deployed plan to still be right: stages and agent addresses."""
        parts: list[object] = []
        for p in sorted(plan.plans, key=lambda p: p.app_id):
            addresses = tuple(self.devices[d].spec.address if d in self.devices else "" for d in p.devices)
            parts.append((p.app_id, p.source_device, p.stages, p.target_device, addresses))
        return tuple(parts)

    def _save_counters(self) -> SaveCounters:
        return SaveCounters(self._next_app, self._next_epoch)

    def _save_quarantines(self, now: float) -> SaveQuarantines:
        # Persisted as wall-clock deadlines; the driver converts (it knows now_unix).
        return SaveQuarantines({d: (q.reason, q.until - now, q.failures) for d, q in self.quarantines.items()})
