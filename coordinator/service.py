"""The coordinator's driver: performs what the control core decides and feeds back outcomes.

DESIGN.md §4. The :class:`~coordinator.core.ControlCore` decides; this module does the I/O:
it turns RPCs, the clock and MQTT messages into core events, and performs the core's
instructions — the planner and model analysis in worker threads, deployments through the
:class:`~coordinator.deployer.Deployer`, state writes on one writer thread, MQTT events.
Every task it starts ends by feeding its outcome back as an event, including cancellation
and its own crash, so the core can never wait forever. Its long-running loops (the clock,
the state writer, MQTT) are supervised: a crash is logged with its traceback and the loop
restarted; a loop that keeps crashing makes the daemon NOT_SERVING and exit non-zero.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import secrets
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import structlog

from coordinator.assignments import segments_to_assignments
from coordinator.core import CLIENT_SOURCE_RATE_HZ, ControlCore, CoreConfig, RestoredState
from coordinator.deployer import Deployer, DeployFailed, DeviceDeployment
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
from coordinator.models import LoadedModel, ModelStore, check_runnable_somewhere
from coordinator.observations import CoordinatorObservations
from coordinator.results import ResultsHub
from coordinator.store import StateStore
from synergy.defaults import DEFAULT_COORDINATOR, DEFAULT_MQTT_PREFIX, DEFAULT_PLANNER
from synergy.deployment import AgentState
from synergy.errors import FailedPrecondition, ResourceExhausted, SynergyError, Unavailable
from synergy.events import EventPublisher, MqttConfig, Topics
from synergy.hardware.model import TensorSpec
from synergy.planning.api import PlanningApp
from synergy.planning.objectives import DEFAULT_OBJECTIVE
from synergy.planning.registry import MethodPlanner, get_planner
from synergy.reports import CoordinatorStats, DeviceTelemetry, Result
from synergy.security.tls import TlsConfig
from synergy.tasks import TaskOwner
from synergy.types import CLIENT_SOURCE, AppInfo, AppSpec, DeviceInfo, DeviceSpec, JointPlan
from synergy.wire.agent_client import AgentClients
from synergy.wire.tensors import check_matches

__all__ = ["Coordinator", "CoordinatorConfig", "Lease", "ModelSource"]

log = structlog.get_logger(__name__)

#: How often the clock ticks into the core (lease expiry, quarantines, watchdogs).
TICK_S = 0.25
#: A supervised loop that crashes more often than this within the window is fatal.
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
#: Undeploying a stale epoch is cheap on the agent.
UNDEPLOY_TIMEOUT_S = 5.0

_T = TypeVar("_T")


@dataclass(frozen=True)
class CoordinatorConfig:
    bind: str = DEFAULT_COORDINATOR
    lease_ttl_s: float = 5.0
    heartbeat_s: float = 1.0
    planner: str = DEFAULT_PLANNER
    #: What the planner maximises (synergy.planning.objectives): throughput by default.
    objective: str = DEFAULT_OBJECTIVE
    mqtt_url: str = ""
    mqtt_prefix: str = DEFAULT_MQTT_PREFIX
    infer_timeout_s: float = 30.0
    #: A submit or remove answers once the new plan is deployed, or after this long with the
    #: app's state at that moment (the deployment goes on; `synergy apps` shows it).
    submit_wait_s: float = 3.0
    #: Re-plan when measured stage times drift from the cost model (online estimation).
    calibrate: bool = True
    #: Where the state survives restarts; None keeps nothing (an ephemeral coordinator).
    state_dir: Path | None = None
    #: The coordinator's identity for mutual TLS (its server and its channels to agents);
    #: None speaks plain text.
    tls: TlsConfig | None = None
    #: host:port of the read-only web dashboard (docs/dashboard.md); "" serves none.
    http_bind: str = ""
    #: host:port of the Prometheus metrics endpoint (docs/metrics.md); "" serves none.
    metrics_bind: str = ""


@dataclass(frozen=True)
class Lease:
    lease_id: str
    heartbeat_period_s: float
    lease_ttl_s: float


@dataclass(frozen=True)
class ModelSource:
    """How a client gave the model: a zoo name, or ONNX bytes with a display name."""

    zoo_name: str = ""
    onnx: bytes = b""
    display_name: str = ""


class Coordinator:
    def __init__(self, config: CoordinatorConfig) -> None:
        self.config = config
        self.core = ControlCore(
            CoreConfig(lease_ttl_s=config.lease_ttl_s, heartbeat_s=config.heartbeat_s, calibrate=config.calibrate)
        )
        self.models = ModelStore()
        self.results = ResultsHub()
        self.clients = AgentClients(config.tls)
        self.deployer = Deployer(self.clients)
        self._planner: MethodPlanner = get_planner(config.planner, objective=config.objective)
        self.events: EventPublisher | None = None
        self.store: StateStore | None = None
        #: Set (with the reason) when a vital loop kept crashing: the daemon must exit non-zero.
        self.fatal = asyncio.Event()
        self.fatal_reason = ""
        #: Set once the state is restored: until then every request is UNAVAILABLE.
        self.ready = asyncio.Event()
        self._tasks = TaskOwner("coordinator")
        #: What the metrics show beyond the core's state (coordinator/observations.py).
        self.observations = CoordinatorObservations()
        self._writer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="state-writer")
        self._settled = asyncio.Condition()
        self._submits = asyncio.Lock()
        self._deploy_task: asyncio.Task[None] | None = None
        self._deploy_epoch = 0
        self._undeploying: set[tuple[str, int]] = set()
        self._infer_base = 0
        self._stopped = False

    @property
    def stats(self) -> CoordinatorStats:
        return self.core.stats

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        now, now_unix = time.monotonic(), time.time()
        if self.config.state_dir is not None:
            self.store = await self._write(StateStore.open, self.config.state_dir)
            restored = await self._restore(self.store)
            boots = await self._write(self.store.next_boot)
        else:
            # Nothing survives. Epochs are never reused all the same: the core numbers past
            # every epoch an agent reports holding, and no agent is deployed to unreported.
            restored = RestoredState()
            boots = secrets.randbelow(1 << 16)
            log.warning("state_not_persisted", hint="give --state-dir to keep apps across restarts")
        # Infer inputs are numbered per run in the high bits: targets de-duplicate by seq.
        self._infer_base = (boots & 0xFFFF) << 32
        if self.config.mqtt_url:
            # mqtts:// uses the daemon's own TLS directory: its certificate is its MQTT identity.
            tls_dir = self.config.tls.directory if self.config.tls is not None else None
            mqtt = MqttConfig.from_url(self.config.mqtt_url, self.config.mqtt_prefix, tls_dir=tls_dir)
            self.events = EventPublisher(
                mqtt,
                client_id=f"synergy-coordinator-{id(self):x}",
                will_topic=Topics(mqtt.prefix).coordinator_state(),
                will_payload={"state": "offline", "reason": "last_will"},
                on_device_state=self._on_device_state,
            )
            self._supervise("mqtt", self.events.run)
            self.events.publish(self.events.topics.coordinator_state(), {"state": "online"}, retain=True)
        self._perform(self.core.restore(restored, now, now_unix))
        self._supervise("clock", self._clock)

    async def _restore(self, store: StateStore) -> RestoredState:
        stored = await self._write(store.load)
        apps: list[tuple[AppSpec, LoadedModel]] = []
        for app in stored.apps:
            try:
                model = await asyncio.to_thread(self.models.load, onnx_bytes=app.onnx, display_name=app.model_name)
            except SynergyError as exc:
                log.error("stored_app_unusable", app=app.spec.app_id, error=str(exc))
                continue
            apps.append((app.spec, model))
        now_unix = time.time()
        quarantines = {d: (r, until, n) for d, (r, until, n) in stored.quarantines.items() if until > now_unix}
        return RestoredState(
            next_app=stored.next_app,
            next_epoch=stored.next_epoch,
            apps=apps,
            devices=stored.devices,
            plan=stored.plan,
            expected=stored.expected,
            quarantines=quarantines,
            owners={app.spec.app_id: app.owner for app in stored.apps},
        )

    async def shutdown(self) -> None:
        """Stop background work, close channels and the state store. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.results.close()
        if self.events is not None:
            self.events.publish(self.events.topics.coordinator_state(), {"state": "offline"}, retain=True)
            await self.events.flush()
        await self._tasks.close()
        await self.clients.close()
        if self.store is not None:
            await self._write(self.store.close)
        self._writer.shutdown(wait=True)

    def _supervise(self, name: str, loop: Callable[[], Coroutine[Any, Any, None]]) -> None:
        async def run() -> None:
            crashes: list[float] = []
            while True:
                try:
                    await loop()
                    log.error("loop_returned", loop=name)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("loop_crashed", loop=name)
                now = time.monotonic()
                crashes = [t for t in crashes if now - t < RESTART_WINDOW_S] + [now]
                if len(crashes) > MAX_RESTARTS:
                    self.fatal_reason = f"the {name} loop crashed {len(crashes)} times in {RESTART_WINDOW_S:.0f}s"
                    log.critical("coordinator_unhealthy", reason=self.fatal_reason)
                    self.fatal.set()
                    return
                await asyncio.sleep(min(5.0, 0.1 * 2 ** len(crashes)))
                log.info("loop_restarted", loop=name)

        self._tasks.spawn(run(), name)

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            self._feed(Tick(time.monotonic(), time.time()))

    # -- the core's events and instructions ------------------------------------------------

    def _feed(self, event: Event) -> None:
        self._perform(self.core.handle(event))
        if not isinstance(event, ResultReported):  # a round never ends on a result: the per-frame path stays lean
            self.observations.handled(self.core)

    def _perform(self, instructions: Sequence[Instruction]) -> None:
        for instruction in instructions:
            match instruction:
                case StartPlanning():
                    self._tasks.spawn(self._plan(instruction), f"plan{instruction.plan_id}")
                case StartDeploy():
                    self._deploy_epoch = instruction.epoch
                    self._deploy_task = self._tasks.spawn(self._deploy(instruction), f"deploy{instruction.epoch}")
                case CancelDeploy():
                    if self._deploy_task is not None and self._deploy_epoch == instruction.epoch:
                        log.warning("deploy_cancelling", epoch=instruction.epoch, reason=instruction.reason)
                        self._deploy_task.cancel()
                case UndeployStale():
                    key = (instruction.device_id, instruction.epoch)
                    if key not in self._undeploying:
                        self._undeploying.add(key)
                        self._tasks.spawn(self._undeploy_stale(instruction), f"undeploy:{instruction.device_id}")
                case CloseChannel():
                    self._tasks.spawn(self.clients.drop(instruction.address), "close-channel")
                case FanOutResult():
                    self._fan_out(instruction.result)
                case PublishPlan():
                    if self.events is not None:
                        self.events.publish(self.events.topics.plan(), _plan_payload(instruction.plan), retain=True)
                case ReplanSettled():
                    self._tasks.spawn(self._notify_settled(), "settled")
                case SaveDevice() | SaveCounters() | SaveDeployment() | SaveQuarantines() | DeleteApp():
                    self._save(instruction)

    async def _notify_settled(self) -> None:
        async with self._settled:
            self._settled.notify_all()

    async def _plan(self, instruction: StartPlanning) -> None:
        try:
            planner = self._planner.calibrated(instruction.factors) if instruction.factors else self._planner
            started = time.perf_counter()
            # plan(), not the bare call: the evaluation carries the predicted utilisation (metrics).
            outcome = await asyncio.to_thread(planner.plan, instruction.devices, instruction.apps)
        except asyncio.CancelledError:
            if not self._stopped:
                self._feed(PlanFailed(instruction.plan_id, "planning was cancelled", time.monotonic()))
            raise
        except Exception as exc:
            log.exception("planner_crashed", plan_id=instruction.plan_id)
            self._feed(PlanFailed(instruction.plan_id, f"{type(exc).__name__}: {exc}", time.monotonic()))
            return
        plan = outcome.plan
        self.observations.planned(time.perf_counter() - started, plan.plans, outcome.evaluation.utilisation)
        self._feed(PlanComputed(instruction.plan_id, plan, time.monotonic()))

    async def _deploy(self, instruction: StartDeploy) -> None:
        """Deploy, activate, then retire the previous epoch. The core hears ACTIVE as soon as
        every agent runs the new epoch: the retirement (which waits, bounded, for frames of
        the old epoch to drain) goes on in this task without holding up the next round."""
        epoch = instruction.epoch
        reported = False

        def activated(expected: Mapping[str, frozenset[tuple[str, int, str]]], counts: _MoveCounts) -> None:
            nonlocal reported
            reported = True
            if self._deploy_epoch == epoch:
                self._deploy_task = None  # a late CancelDeploy must not cut the retirement short
            self._feed(
                DeployFinished(
                    epoch,
                    DeployOutcome.ACTIVE,
                    time.monotonic(),
                    expected=expected,
                    partitions_sent=counts.sent,
                    partitions_reused=counts.reused,
                    partition_bytes_sent=counts.bytes_sent,
                )
            )

        finished: DeployFinished | None = None
        try:
            deployments, counts = await asyncio.to_thread(self._build_deployments, instruction)
            expected = {
                d.device_id: frozenset((a.app_id, a.segment, a.digest) for a in d.assignments) for d in deployments
            }
            await self.deployer.deploy(
                epoch,
                deployments,
                instruction.previous_epoch,
                instruction.previous,
                on_active=functools.partial(activated, expected, counts),
            )
        except DeployFailed as failure:
            outcome = DeployOutcome.TIMED_OUT if failure.timed_out else DeployOutcome.FAILED
            reasons = {d: str(c) for d, c in failure.failures.items()}
            finished = DeployFinished(epoch, outcome, time.monotonic(), failures=reasons, detail=str(failure))
        except asyncio.CancelledError:
            if self._stopped:
                raise
            finished = DeployFinished(epoch, DeployOutcome.CANCELLED, time.monotonic(), detail="cancelled")
        except Exception as exc:
            log.exception("deploy_crashed", epoch=epoch)
            finished = DeployFinished(
                epoch, DeployOutcome.CRASHED, time.monotonic(), detail=f"{type(exc).__name__}: {exc}"
            )
        finally:
            if self._deploy_epoch == epoch:
                self._deploy_task = None
        if not reported:
            self._feed(finished or DeployFinished(epoch, DeployOutcome.CRASHED, time.monotonic(), detail="no outcome"))

    def _build_deployments(self, instruction: StartDeploy) -> tuple[list[DeviceDeployment], _MoveCounts]:
        """Every device's segments for the epoch (cuts ONNX partitions: runs in a thread)."""
        per_device: dict[str, list[Any]] = {}
        for exec_plan in instruction.plan.plans:
            spec, model = instruction.apps[exec_plan.app_id]
            rate = _source_rate(spec, instruction.devices[exec_plan.source_device], exec_plan.predicted_rate_hz)
            assignments = segments_to_assignments(
                spec,
                exec_plan,
                model.hardware,
                instruction.devices,
                functools.partial(self.models.partition, model),
                rate,
                instruction.held,
            )
            for device_id, items in assignments.items():
                per_device.setdefault(device_id, []).extend(items)
        deployments = [
            DeviceDeployment(
                d,
                instruction.devices[d].address,
                tuple(items),
                link_bytes_per_s=instruction.devices[d].link.bandwidth_bytes_per_s,
            )
            for d, items in per_device.items()
        ]
        counts = _MoveCounts()
        for deployment in deployments:
            for a in deployment.assignments:
                if a.partition is None:
                    continue
                if a.partition.onnx:
                    counts.sent += 1
                    counts.bytes_sent += len(a.partition.onnx)
                else:
                    counts.reused += 1
        return deployments, counts

    async def _undeploy_stale(self, instruction: UndeployStale) -> None:
        try:
            await self.clients.undeploy(instruction.address, instruction.epoch, UNDEPLOY_TIMEOUT_S)
            log.info("stale_epoch_undeployed", device=instruction.device_id, epoch=instruction.epoch)
        except SynergyError as exc:
            log.info("stale_undeploy_failed", device=instruction.device_id, epoch=instruction.epoch, reason=str(exc))
        finally:
            self._undeploying.discard((instruction.device_id, instruction.epoch))

    def _save(self, instruction: Instruction) -> None:
        store = self.store
        if store is None:
            return
        call: Callable[[], None]
        match instruction:
            case SaveDevice():
                call = functools.partial(store.save_device, instruction.spec, instruction.lease_id)
            case SaveCounters():
                call = functools.partial(store.save_counters, instruction.next_app, instruction.next_epoch)
            case SaveDeployment():
                call = functools.partial(store.save_deployment, instruction.plan, instruction.expected)
            case SaveQuarantines():
                now_unix = time.time()
                deadlines = {d: (r, now_unix + left, n) for d, (r, left, n) in instruction.quarantines.items()}
                call = functools.partial(store.save_quarantines, deadlines)
            case DeleteApp():
                return  # removed durably before the core saw the event
            case _:
                return
        future = asyncio.get_running_loop().run_in_executor(self._writer, call)
        future.add_done_callback(_log_write_failure)

    async def _write(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a state-store call on the single writer thread (writes stay in order)."""
        return await asyncio.get_running_loop().run_in_executor(self._writer, functools.partial(fn, *args))

    def _fan_out(self, result: Result) -> None:
        self.observations.outcomes.observe(result)
        self.results.publish(result)
        if self.events is not None:
            self.events.publish(
                self.events.topics.results(result.app_id),
                {
                    "app_id": result.app_id,
                    "epoch": result.epoch,
                    "seq": result.seq,
                    "device": result.device_id,
                    "output": result.output_type,
                    "dropped": result.dropped,
                    "drop_reason": result.drop_reason,
                    "summary": result.summary,
                    "latency_ms": 1000.0 * result.latency_s,
                },
            )

    async def _on_device_state(self, device_id: str, payload: dict[str, Any]) -> None:
        """MQTT: an agent's last will (or clean goodbye) marks it offline at once."""
        if payload.get("state") != "offline":
            return
        address = payload.get("address")
        if isinstance(address, str):
            reason = str(payload.get("reason", "offline"))[:200]
            self._feed(DeviceWentOffline(device_id, address, f"MQTT: {reason}", time.monotonic()))

    async def wait_settled(self, ticket: int, timeout_s: float) -> bool:
        """Until every replan requested up to ``ticket`` has settled; False on timeout."""
        async with self._settled:
            try:
                await asyncio.wait_for(
                    self._settled.wait_for(lambda: self.core.settled_ticket >= ticket), timeout=timeout_s
                )
            except TimeoutError:
                return False
        return True

    # -- requests (called by the servicers) -------------------------------------------------

    def require_ready(self) -> None:
        if not self.ready.is_set():
            raise Unavailable("the coordinator is starting (restoring its state); try again in a moment")

    def register(self, spec: DeviceSpec, state: AgentState, connection: str = "") -> Lease:
        self._feed(DeviceRegistered(spec, state, time.monotonic(), time.time(), connection))
        lease_id = self.core.devices[spec.device_id].lease_id
        return Lease(lease_id, self.config.heartbeat_s, self.config.lease_ttl_s)

    def heartbeat(
        self, device_id: str, lease_id: str, telemetry: DeviceTelemetry, state: AgentState, connection: str = ""
    ) -> None:
        self._feed(HeartbeatReceived(device_id, lease_id, telemetry, state, time.monotonic(), time.time(), connection))

    def deregister(self, device_id: str, lease_id: str) -> None:
        self._feed(DeviceDeregistered(device_id, lease_id, time.monotonic()))

    async def forget_device(self, device_id: str) -> None:
        """Forget an offline device, durably (``synergy devices --remove``); an online one is refused."""
        self._feed(DeviceForgotten(device_id, time.monotonic()))
        if self.store is not None:
            await self._write(self.store.forget_device, device_id)

    def report_result(self, lease_id: str, result: Result) -> None:
        self._feed(ResultReported(lease_id, result, time.monotonic()))

    def report_results(self, lease_id: str, results: Sequence[Result]) -> None:
        """A batch (ReportResults), already authorized result by result; one clock read for all."""
        now = time.monotonic()
        for result in results:
            self._feed(ResultReported(lease_id, result, now))

    async def submit(self, spec: AppSpec, source: ModelSource, owner: str = "") -> AppInfo:
        """Accept an app (durably) for ``owner`` and wait, bounded, for the plan that includes it."""
        async with self._submits:
            model = await asyncio.to_thread(
                self.models.load, zoo_name=source.zoo_name, onnx_bytes=source.onnx, display_name=source.display_name
            )
            now = time.monotonic()
            boards = [d.board for d in self.core.online_devices()]
            await asyncio.to_thread(check_runnable_somewhere, model.hardware, boards)
            app_id = self.core.peek_app_id()
            spec = replace(spec, app_id=app_id, name=spec.name or app_id, model=spec.model or model.name)
            self.core.check_submission(spec)
            devices = self.core.planning_devices([spec], now)
            alone = await asyncio.to_thread(self._planner, devices, [PlanningApp(spec, model.hardware)])
            if app_id in alone.unplaced:
                raise ResourceExhausted(f"model {model.name!r} cannot run on this space: {alone.unplaced[app_id]}")
            if self.store is not None:
                next_app = int(app_id.rsplit("-", 1)[1])
                await self._write(
                    self.store.add_app, spec, model.name, model.digest, model.onnx_bytes, next_app, owner
                )
            self._feed(AppSubmitted(spec, model, time.monotonic(), owner))
            ticket = self.core.wanted_ticket
        await self.wait_settled(ticket, self.config.submit_wait_s)
        return self.core.app_info(self.core.app(app_id), time.monotonic())

    async def remove(self, app_id: str) -> None:
        async with self._submits:
            record = self.core.app(app_id)
            if self.store is not None:
                await self._write(self.store.remove_app, app_id)
            self._feed(AppRemoved(app_id, time.monotonic()))
            if all(a.model.digest != record.model.digest for a in self.core.apps.values()):
                self.models.forget(record.model.digest)
            ticket = self.core.wanted_ticket
        await self.wait_settled(ticket, self.config.submit_wait_s)

    def list_apps(self) -> list[AppInfo]:
        return self.core.list_apps(time.monotonic())

    def list_devices(self) -> list[DeviceInfo]:
        return self.core.list_devices(time.monotonic(), time.time())

    def plan(self) -> JointPlan:
        return self.core.current_plan(time.monotonic())

    async def infer(self, app_id: str, inputs: Mapping[TensorSpec, bytes], timeout_s: float) -> Result:
        """Feed one input into a client-fed app and wait for its result."""
        record = self.core.app(app_id)
        if record.spec.source_type != CLIENT_SOURCE:
            raise FailedPrecondition(
                f"app {app_id} senses {record.spec.source_type!r}; Infer feeds only apps "
                f"submitted with source type {CLIENT_SOURCE!r}"
            )
        check_matches(list(inputs), record.model.hardware.inputs)
        device = self.core.source_device(app_id)
        seq = self._infer_base | self.core.next_infer_seq(app_id)
        timeout = timeout_s or self.config.infer_timeout_s
        waiter = self.results.expect(app_id, seq)
        try:
            await self.clients.inject(device.address, app_id, seq, inputs, timeout)
            self.stats.input_bytes_forwarded += sum(len(b) for b in inputs.values())
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError as exc:
            raise Unavailable(f"app {app_id}: no result for input {seq & 0xFFFFFFFF} within {timeout}s") from exc
        finally:
            self.results.forget(app_id, seq)


@dataclass
class _MoveCounts:
    """Partitions whose bytes travel, and those an agent already holds (only changes move)."""

    sent: int = 0
    reused: int = 0
    bytes_sent: int = 0


def _source_rate(spec: AppSpec, device: DeviceSpec, planned_hz: float = 0.0) -> float:
    """The rate a source captures at: the rate the plan gives the app (a faster source would
    only make frames queue, or be skipped), within the sensor's rate and the app's maximum."""
    if spec.source_type == CLIENT_SOURCE:
        return CLIENT_SOURCE_RATE_HZ  # Infer calls set the real pace
    sensor = device.sensor(spec.source_type)
    if sensor is None:
        raise FailedPrecondition(f"app {spec.app_id}: source device has no {spec.source_type} sensor")
    rate = sensor.rate_hz
    if spec.max_rate_hz > 0:
        rate = min(rate, spec.max_rate_hz)
    if planned_hz > 0:
        rate = min(rate, planned_hz)
    return rate


def _plan_payload(plan: JointPlan) -> dict[str, Any]:
    payload = dataclasses.asdict(plan)
    payload["unplaced"] = dict(plan.unplaced)
    payload["quarantined"] = dict(plan.quarantined)
    return payload


def _log_write_failure(future: asyncio.Future[None]) -> None:
    if future.cancelled():
        return
    exc = future.exception()
    if exc is not None:
        # Memory still holds the truth; only durability is lost until the next write.
        log.error("state_write_failed", error=str(exc))
