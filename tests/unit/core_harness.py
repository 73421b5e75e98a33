"""A driver for the control core in unit tests: events in, instructions out, no sockets.

The harness plays the I/O side by hand: planning runs the real planner synchronously,
deployments wait until the test says how they end, and Save* instructions go to a real
:class:`~coordinator.store.StateStore` when one is given. Time is a number the test moves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from pathlib import Path

from coordinator.core import ControlCore, CoreConfig, RestoredState
from coordinator.messages import (
    DeleteApp,
    DeployFinished,
    DeployOutcome,
    DeviceRegistered,
    Event,
    Expected,
    HeartbeatReceived,
    Instruction,
    PlanComputed,
    SaveCounters,
    SaveDeployment,
    SaveDevice,
    SaveQuarantines,
    StartDeploy,
    StartPlanning,
    Tick,
)
from coordinator.models import LoadedModel, ModelStore
from coordinator.store import StateStore
from synergy.deployment import AgentState, HeldSegment
from synergy.devices import preset_device
from synergy.planning.registry import get_planner
from synergy.reports import DeviceTelemetry
from synergy.types import AppSpec, DeviceSpec

_MODELS = ModelStore()


def model(name: str = "convnet5") -> LoadedModel:
    return _MODELS.load(zoo_name=name)


def device(preset: str, device_id: str = "", port: int = 0) -> DeviceSpec:
    spec = preset_device(preset, device_id or preset)
    return dataclasses.replace(spec, address=f"127.0.0.1:{port or 7000 + abs(hash(spec.device_id)) % 1000}")


def app_spec(app_id: str, source: str = "camera", target: str = "display", **pins: str) -> AppSpec:
    return AppSpec(app_id=app_id, name=app_id, model="convnet5", source_type=source, target_type=target, **pins)


def state_holding(epoch: int, expected: Iterable[tuple[str, int, str]], active: bool = True) -> AgentState:
    segments = tuple(HeldSegment(a, epoch, s, d) for a, s, d in expected)
    return AgentState(
        active_epoch=epoch if active else 0, loaded_epochs=(epoch,) if segments else (), segments=segments
    )


class Harness:
    def __init__(
        self, config: CoreConfig | None = None, store: StateStore | None = None, planner: str = "synergy"
    ) -> None:
        self.core = ControlCore(config or CoreConfig(lease_ttl_s=5.0, heartbeat_s=1.0, calibrate=False))
        self.planner = get_planner(planner)
        self.store = store
        self.now = 100.0
        self.leases: dict[str, str] = {}
        #: Every instruction the core ever gave, in order.
        self.log: list[Instruction] = []
        #: The deployment the core is waiting for, if any.
        self.pending_deploy: StartDeploy | None = None

    # -- feeding ---------------------------------------------------------------------------

    def feed(self, event: Event) -> list[Instruction]:
        out = self.core.handle(event)
        self._perform(out)
        return out

    def _perform(self, instructions: Sequence[Instruction]) -> None:
        for instruction in instructions:
            self.log.append(instruction)
            match instruction:
                case StartPlanning():
                    plan = self.planner(list(instruction.devices), list(instruction.apps))
                    self.feed(PlanComputed(instruction.plan_id, plan, self.now))
                case StartDeploy():
                    assert self.pending_deploy is None, "two deployments at once"
                    self.pending_deploy = instruction
                case SaveDevice() | SaveCounters() | SaveDeployment() | SaveQuarantines() | DeleteApp():
                    self._save(instruction)

    def _save(self, instruction: Instruction) -> None:
        if self.store is None:
            return
        match instruction:
            case SaveDevice():
                self.store.save_device(instruction.spec, instruction.lease_id)
            case SaveCounters():
                self.store.save_counters(instruction.next_app, instruction.next_epoch)
            case SaveDeployment():
                self.store.save_deployment(instruction.plan, instruction.expected)
            case SaveQuarantines():
                # The harness's clock is its unix time too.
                deadlines = {d: (r, self.now + left, n) for d, (r, left, n) in instruction.quarantines.items()}
                self.store.save_quarantines(deadlines)
            case DeleteApp():
                self.store.remove_app(instruction.app_id)

    # -- conveniences ------------------------------------------------------------------------

    def register(self, spec: DeviceSpec, state: AgentState | None = None) -> str:
        self.feed(DeviceRegistered(spec, state or AgentState(), self.now, self.now))
        self.leases[spec.device_id] = self.core.devices[spec.device_id].lease_id
        return self.leases[spec.device_id]

    def submit(self, spec: AppSpec, loaded: LoadedModel | None = None) -> None:
        from coordinator.messages import AppSubmitted

        loaded = loaded or model()
        if self.store is not None:
            self.store.add_app(spec, loaded.name, loaded.digest, loaded.onnx_bytes, int(spec.app_id.rsplit("-", 1)[1]))
        self.feed(AppSubmitted(spec, loaded, self.now))

    def heartbeat(self, device_id: str, state: AgentState) -> list[Instruction]:
        return self.feed(
            HeartbeatReceived(device_id, self.leases[device_id], DeviceTelemetry(), state, self.now, self.now)
        )

    def tick(self, seconds: float = 0.25) -> list[Instruction]:
        self.now += seconds
        return self.feed(Tick(self.now, self.now))

    def expected_of(self, deploy: StartDeploy) -> Expected:
        """What each device would hold after ``deploy`` (as the real driver computes it)."""
        from coordinator.assignments import build_segments

        out: dict[str, set[tuple[str, int, str]]] = {}
        for plan in deploy.plan.plans:
            for segment in build_segments(plan):
                digest = f"{plan.app_id}:{segment.layers}" if segment.layers is not None else ""
                out.setdefault(segment.device_id, set()).add((plan.app_id, segment.index, digest))
        return {d: frozenset(items) for d, items in out.items()}

    def finish_deploy(
        self, outcome: DeployOutcome = DeployOutcome.ACTIVE, failures: dict[str, str] | None = None
    ) -> StartDeploy:
        deploy = self.pending_deploy
        assert deploy is not None, "no deployment in flight"
        self.pending_deploy = None
        expected = self.expected_of(deploy) if outcome is DeployOutcome.ACTIVE else {}
        self.feed(DeployFinished(deploy.epoch, outcome, self.now, failures=failures or {}, expected=expected))
        return deploy

    def agents_report_truth(self) -> None:
        """Every online device heartbeats holding exactly what was deployed to it."""
        for device_id, record in self.core.devices.items():
            if record.online and device_id in self.leases:
                held = self.core._deployed.expected.get(device_id, frozenset())
                self.heartbeat(device_id, state_holding(self.core.epoch, held))

    def restored_from(self, directory: Path) -> Harness:
        """A new core restored from what this one persisted (a coordinator restart)."""
        stored = StateStore.open(directory)
        try:
            data = stored.load()
            apps = [(a.spec, _MODELS.load(onnx_bytes=a.onnx, display_name=a.model_name)) for a in data.apps]
            restored = RestoredState(
                next_app=data.next_app,
                next_epoch=data.next_epoch,
                apps=apps,
                devices=data.devices,
                plan=data.plan,
                expected=data.expected,
                quarantines=data.quarantines,
            )
        finally:
            stored.close()
        other = Harness(self.core.config)
        other.now = self.now
        other.leases = {spec.device_id: lease for spec, lease in data.devices}
        other._perform(other.core.restore(restored, other.now, other.now))
        return other
