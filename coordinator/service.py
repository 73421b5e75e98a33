"""The coordinator daemon: the virtual computing space, re-planning and deployment.

One :class:`Coordinator` owns the VCS, the model store, the results hub, the deployer and
its background tasks (lease expiry, the reconcile loop, the MQTT publisher). Every change of
the space or the apps asks the reconcile loop for a new plan; the loop coalesces requests,
calls the pure planner, and deploys the next epoch when the plan changed.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import structlog
from google.protobuf.json_format import MessageToDict

from coordinator.assignments import segments_to_assignments
from coordinator.calibration import Calibrator
from coordinator.deployer import AgentClients, Deployer, DeployFailed, DeviceDeployment
from coordinator.models import LoadedModel, ModelStore, check_runnable_somewhere
from coordinator.results import ResultsHub
from coordinator.vcs import CLIENT_SOURCE, AppRecord, VirtualComputingSpace
from synergy.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PlanningError,
    ResourceExhausted,
    Unavailable,
)
from synergy.events import EventPublisher, MqttConfig
from synergy.planning.api import Planner, PlanningApp
from synergy.planning.registry import get_planner
from synergy.tasks import TaskOwner
from synergy.types import AppSpec, DeviceSpec, JointPlan, SensorSpec
from synergy.v1 import apps_pb2, common_pb2
from synergy.wire.convert import joint_plan_to_proto

__all__ = ["Coordinator", "CoordinatorConfig"]

log = structlog.get_logger(__name__)

#: How often leases are checked for expiry.
LEASE_CHECK_S = 0.25
#: After a failed deployment, try again after this long (the failing device may be dying).
REDEPLOY_BACKOFF_S = 2.0
#: How often measured stage times are compared with the cost model.
CALIBRATION_CHECK_S = 2.0
#: The rate a client-fed app's virtual sensor allows (Infer calls are the real limit).
CLIENT_SOURCE_RATE_HZ = 1000.0


@dataclass(frozen=True)
class CoordinatorConfig:
    bind: str = "127.0.0.1:50051"
    lease_ttl_s: float = 5.0
    heartbeat_s: float = 1.0
    planner: str = "synergy"
    mqtt_url: str = ""
    mqtt_prefix: str = "synergy"
    infer_timeout_s: float = 30.0
    submit_timeout_s: float = 60.0
    #: Re-plan when measured stage times drift from the cost model (online estimation).
    calibrate: bool = True


class Coordinator:
    def __init__(self, config: CoordinatorConfig) -> None:
        if config.heartbeat_s >= config.lease_ttl_s:
            raise InvalidArgument(
                f"heartbeat period {config.heartbeat_s}s must be shorter than the lease TTL {config.lease_ttl_s}s"
            )
        self.config = config
        self.vcs = VirtualComputingSpace(config.lease_ttl_s)
        self.models = ModelStore()
        self.results = ResultsHub()
        self.clients = AgentClients()
        self.deployer = Deployer(self.clients)
        self._base_planner = get_planner(config.planner)
        self.planner: Planner = self._base_planner
        self.calibrator = Calibrator()
        #: The calibration factors the current planner uses.
        self.planned_factors: dict[str, float] = {}
        self.stats = apps_pb2.CoordinatorStats()
        self.events: EventPublisher | None = None
        self._tasks = TaskOwner("coordinator")
        self._wanted = 0
        self._done = 0
        self._changed = asyncio.Condition()
        self._dirty = asyncio.Event()
        self._deployed_key: tuple[Any, ...] = ()
        #: Per device: (lease id, partition digests) of the deployed epoch — what it holds.
        self._held: dict[str, tuple[str, frozenset[str]]] = {}
        self._infer_seq: dict[str, int] = {}
        self._stopped = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self.config.mqtt_url:
            mqtt = MqttConfig.from_url(self.config.mqtt_url, self.config.mqtt_prefix)
            self.events = EventPublisher(
                mqtt,
                client_id=f"synergy-coordinator-{id(self):x}",
                will_topic=f"{mqtt.prefix}/coordinator/state",
                will_payload={"state": "offline", "reason": "last_will"},
                on_device_state=self._on_device_state,
            )
            self._tasks.spawn(self.events.run(), "mqtt")
            self.events.publish(self.events.topics.coordinator_state(), {"state": "online"}, retain=True)
        self._tasks.spawn(self._expire_leases(), "leases")
        self._tasks.spawn(self._reconcile_loop(), "reconcile")
        if self.config.calibrate:
            self._tasks.spawn(self._watch_calibration(), "calibration")

    async def shutdown(self) -> None:
        """Stop background work and close channels. Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self.results.close()
        if self.events is not None:
            self.events.publish(self.events.topics.coordinator_state(), {"state": "offline"}, retain=True)
            await self.events.flush()
        await self._tasks.close()
        await self.clients.close()

    # -- devices ---------------------------------------------------------------------------

    def register(self, spec: DeviceSpec) -> tuple[str, float]:
        lease = self.vcs.register(spec, time.monotonic(), time.time())
        log.info("device_registered", device=spec.device_id, address=spec.address, board=spec.board.name)
        self.request_replan()
        return lease.lease_id, self.config.lease_ttl_s

    def heartbeat(self, device_id: str, lease_id: str, telemetry: common_pb2.DeviceTelemetry) -> None:
        self.vcs.heartbeat(device_id, lease_id, time.monotonic(), time.time(), telemetry)
        self.calibrator.observe(device_id, telemetry.stage_timings)

    async def _watch_calibration(self) -> None:
        while True:
            await asyncio.sleep(CALIBRATION_CHECK_S)
            drifted = self.calibrator.drifted(self.planned_factors)
            if not drifted:
                continue
            self.planned_factors = {**self.planned_factors, **drifted}
            self.planner = self._base_planner.calibrated(self.planned_factors)
            self.stats.recalibrations += 1
            log.info("calibration_drift_replanning", factors={d: round(f, 3) for d, f in drifted.items()})
            self.request_replan()

    async def _expire_leases(self) -> None:
        while True:
            await asyncio.sleep(LEASE_CHECK_S)
            gone = self.vcs.expire(time.monotonic())
            for device_id in gone:
                log.warning("device_lease_expired", device=device_id)
                self.calibrator.forget(device_id)
            if gone:
                await self._forget_devices(gone)

    async def _forget_devices(self, device_ids: Sequence[str]) -> None:
        for device_id in device_ids:
            record = self.vcs.devices.get(device_id)
            if record is not None:
                await self.clients.drop(record.spec.address)
        self.request_replan()

    async def _on_device_state(self, device_id: str, payload: dict[str, Any]) -> None:
        """MQTT: an agent's last will (or clean goodbye) marks it offline at once."""
        if payload.get("state") != "offline":
            return
        record = self.vcs.devices.get(device_id)
        if record is None or payload.get("address") != record.spec.address:
            return
        if self.vcs.mark_offline(device_id):
            log.warning("device_offline_by_mqtt", device=device_id, reason=payload.get("reason", ""))
            await self._forget_devices([device_id])

    # -- apps ------------------------------------------------------------------------------

    def load_model(self, zoo_name: str, onnx_bytes: bytes, display_name: str) -> LoadedModel:
        model = self.models.load(zoo_name=zoo_name, onnx_bytes=onnx_bytes, display_name=display_name)
        devices = self.vcs.online_devices()
        check_runnable_somewhere(model.hardware, [d.board for d in devices])
        return model

    def validate_app(self, spec: AppSpec, model: LoadedModel) -> None:
        """Refuse an app this space can never run, naming why; changes nothing."""
        devices = {d.device_id: d for d in self.vcs.online_devices()}
        if spec.source_type != CLIENT_SOURCE and spec.source_type not in self.vcs.sensor_types():
            raise InvalidArgument(
                f"unknown sensor type {spec.source_type!r}; the space has: "
                f"{sorted(self.vcs.sensor_types()) or 'none'} (or 'client' for apps fed through Infer)"
            )
        if spec.target_type not in self.vcs.output_types():
            raise InvalidArgument(
                f"unknown output type {spec.target_type!r}; the space has: {sorted(self.vcs.output_types()) or 'none'}"
            )
        for role, pinned in (("source", spec.source_device), ("target", spec.target_device)):
            if pinned and pinned not in devices:
                raise NotFound(f"{role} pinned to device {pinned!r}, which is not in the space: {sorted(devices)}")
        if (
            spec.source_device
            and spec.source_type != CLIENT_SOURCE
            and devices[spec.source_device].sensor(spec.source_type) is None
        ):
            raise InvalidArgument(f"device {spec.source_device!r} has no {spec.source_type!r} sensor")
        if spec.target_device and not devices[spec.target_device].has_output(spec.target_type):
            raise InvalidArgument(f"device {spec.target_device!r} has no {spec.target_type!r} output")
        alone = self.planner(self._planning_devices([spec]), [PlanningApp(spec, model.hardware)])
        if spec.app_id in alone.unplaced:
            raise ResourceExhausted(f"model {model.name!r} cannot run on this space: {alone.unplaced[spec.app_id]}")

    async def submit(self, spec: AppSpec, model: LoadedModel) -> AppRecord:
        self.validate_app(spec, model)
        record = AppRecord(spec, model)
        self.vcs.add_app(record)
        log.info("app_submitted", app=spec.app_id, model=model.name, source=spec.source_type, target=spec.target_type)
        await self._replan_and_wait(f"app {spec.app_id} was accepted")
        return record

    async def remove(self, app_id: str) -> None:
        removed = self.vcs.remove_app(app_id)
        if all(a.model.digest != removed.model.digest for a in self.vcs.apps.values()):
            self.models.forget(removed.model.digest)
        log.info("app_removed", app=app_id)
        await self._replan_and_wait(f"app {app_id} was removed")

    async def _replan_and_wait(self, what: str) -> None:
        try:
            await self.wait_for_plan(self.request_replan())
        except TimeoutError as exc:
            raise Unavailable(
                f"{what}, but the new plan is not deployed after {self.config.submit_timeout_s}s; "
                "it will be (see `synergy apps`)"
            ) from exc

    # -- results ---------------------------------------------------------------------------

    def report_result(self, result: common_pb2.Result) -> None:
        self.stats.results_received += 1
        self.stats.result_bytes_received += sum(len(t.data) for t in result.tensors)
        record = self.vcs.apps.get(result.app_id)
        if record is not None:
            latency = None if result.dropped else max(0.0, result.done_time_unix - result.capture_time_unix)
            record.stats.record(time.monotonic(), latency)
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
                    "latency_ms": 1000.0 * (result.done_time_unix - result.capture_time_unix),
                },
            )

    def next_infer_seq(self, app_id: str) -> int:
        seq = self._infer_seq.get(app_id, 0) + 1
        self._infer_seq[app_id] = seq
        return seq

    # -- planning and deployment ------------------------------------------------------------

    def request_replan(self) -> int:
        """Ask for a new plan; returns a ticket :meth:`wait_for_plan` can wait for."""
        self._wanted += 1
        self._dirty.set()
        return self._wanted

    async def wait_for_plan(self, ticket: int) -> None:
        async with self._changed:
            await asyncio.wait_for(
                self._changed.wait_for(lambda: self._done >= ticket), timeout=self.config.submit_timeout_s
            )

    async def _reconcile_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            ticket = self._wanted
            try:
                await self._reconcile()
            except DeployFailed as failure:
                self.stats.deploy_failures += 1
                log.warning("deploy_failed", error=str(failure), retry_in_s=REDEPLOY_BACKOFF_S)
                self._tasks.spawn(self._replan_later(REDEPLOY_BACKOFF_S), "redeploy")
            except Exception:
                log.exception("reconcile_failed")
            async with self._changed:
                self._done = ticket
                self._changed.notify_all()

    async def _replan_later(self, delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        self.request_replan()

    def _planning_devices(self, apps: Sequence[AppSpec]) -> list[DeviceSpec]:
        """Online devices; each gets a virtual 'client' sensor when a client-fed app exists."""
        devices = self.vcs.online_devices()
        if any(a.source_type == CLIENT_SOURCE for a in apps):
            virtual = SensorSpec(CLIENT_SOURCE, CLIENT_SOURCE_RATE_HZ)
            devices = [replace(d, sensors=(*d.sensors, virtual)) for d in devices]
        return devices

    async def _reconcile(self) -> None:
        apps = list(self.vcs.apps.values())
        specs = [a.spec for a in apps]
        devices = self._planning_devices(specs)
        planning_apps = [PlanningApp(a.spec, a.model.hardware) for a in apps]
        plan = await asyncio.to_thread(self.planner, devices, planning_apps)
        key = self._deployment_key(plan)
        for record in apps:
            record.reason = plan.unplaced.get(record.spec.app_id, "")
        if key == self._deployed_key:
            self.vcs.plan = replace(plan, epoch=self.vcs.plan.epoch)
            return
        epoch = self.vcs.plan.epoch + 1
        by_id = {d.device_id: d for d in devices}
        deployments = self._deployments(plan, apps, by_id)
        previous = {
            d: self.vcs.devices[d].spec.address
            for p in self.vcs.plan.plans
            for d in p.devices
            if d in self.vcs.devices and self.vcs.devices[d].online
        }
        await self.deployer.deploy(epoch, deployments, self.vcs.plan.epoch, previous)
        self._count_moves(deployments)
        self._held = {d.device_id: self._lease_digests(d) for d in deployments}
        self.vcs.plan = replace(plan, epoch=epoch)
        self._deployed_key = key
        self.stats.epoch = epoch
        self.stats.replans += 1
        log.info(
            "plan_deployed",
            epoch=epoch,
            method=plan.method,
            apps=len(plan.plans),
            unplaced=dict(plan.unplaced),
            throughput=round(plan.system_throughput, 3),
        )
        if self.events is not None:
            self.events.publish(
                self.events.topics.plan(), MessageToDict(joint_plan_to_proto(self.vcs.plan)), retain=True
            )

    def _deployment_key(self, plan: JointPlan) -> tuple[Any, ...]:
        """What must be equal for a deployed plan to still be right: stages and live agents."""
        parts: list[Any] = []
        for p in sorted(plan.plans, key=lambda p: p.app_id):
            leases = tuple(self.vcs.devices[d].lease.lease_id for d in p.devices if d in self.vcs.devices)
            parts.append((p.app_id, p.source_device, p.stages, p.target_device, leases))
        return tuple(parts)

    def _deployments(
        self, plan: JointPlan, apps: Sequence[AppRecord], devices: dict[str, DeviceSpec]
    ) -> list[DeviceDeployment]:
        by_app = {a.spec.app_id: a for a in apps}
        per_device: dict[str, list[Any]] = {}
        # What each agent holds from the epoch being replaced, if it is still the same agent.
        held = {
            device: digests
            for device, (lease_id, digests) in self._held.items()
            if device in self.vcs.devices and self.vcs.devices[device].lease.lease_id == lease_id
        }
        for exec_plan in plan.plans:
            record = by_app[exec_plan.app_id]
            source = devices[exec_plan.source_device].sensor(record.spec.source_type)
            if source is None:
                raise PlanningError(f"app {exec_plan.app_id}: source device has no {record.spec.source_type} sensor")
            rate = source.rate_hz
            if record.spec.max_rate_hz > 0:
                rate = min(rate, record.spec.max_rate_hz)
            assignments = segments_to_assignments(
                record.spec,
                exec_plan,
                record.model.hardware,
                devices,
                functools.partial(self.models.partition, record.model),
                rate,
                held,
            )
            for device_id, items in assignments.items():
                per_device.setdefault(device_id, []).extend(items)
        return [DeviceDeployment(d, devices[d].address, tuple(items)) for d, items in per_device.items()]

    def _lease_digests(self, deployment: DeviceDeployment) -> tuple[str, frozenset[str]]:
        lease = self.vcs.devices[deployment.device_id].lease.lease_id
        return lease, frozenset(a.partition.digest for a in deployment.assignments if a.HasField("partition"))

    def _count_moves(self, deployments: Sequence[DeviceDeployment]) -> None:
        for deployment in deployments:
            for assignment in deployment.assignments:
                if not assignment.HasField("partition"):
                    continue
                if assignment.partition.onnx:
                    self.stats.partitions_sent += 1
                    self.stats.partition_bytes_sent += len(assignment.partition.onnx)
                else:
                    self.stats.partitions_reused += 1

    def plan_source_device(self, app_id: str) -> DeviceSpec:
        record = self.vcs.app(app_id)
        plan = self.vcs.plan.plan_for(app_id)
        if plan is None:
            raise FailedPrecondition(f"app {app_id} is not running: {record.reason or 'no plan yet'}")
        device = self.vcs.devices.get(plan.source_device)
        if device is None or not device.online:
            raise FailedPrecondition(f"app {app_id}: its source device {plan.source_device} is offline")
        return device.spec
