"""What goes into the coordinator's control core (events) and what comes out (instructions).

The core (:mod:`coordinator.core`) is a state machine over these plain records: the driver
(:mod:`coordinator.service`) turns every outside happening — an RPC, a lease running out, a
planner thread finishing, a deployment failing, the clock — into an event, and performs
every instruction the core answers with, feeding each outcome back as another event. Time is
always carried by the event (``now`` is monotonic seconds, ``now_unix`` wall-clock seconds),
so the core never reads a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from coordinator.models import LoadedModel
from synergy.deployment import AgentState
from synergy.planning.api import PlanningApp
from synergy.reports import DeviceTelemetry, Result
from synergy.types import AppSpec, DeviceSpec, JointPlan

__all__ = [
    "AppRemoved",
    "AppSubmitted",
    "CancelDeploy",
    "CloseChannel",
    "DeleteApp",
    "DeployFinished",
    "DeployOutcome",
    "DeviceDeregistered",
    "DeviceForgotten",
    "DeviceRegistered",
    "DeviceWentOffline",
    "Event",
    "Expected",
    "FanOutResult",
    "HeartbeatReceived",
    "Instruction",
    "PlanComputed",
    "PlanFailed",
    "PublishPlan",
    "ReplanSettled",
    "ResultReported",
    "SaveCounters",
    "SaveDeployment",
    "SaveDevice",
    "SaveQuarantines",
    "StartDeploy",
    "StartPlanning",
    "Tick",
    "UndeployStale",
]

#: Per device, the segments (app, segment index, partition digest) it holds in an epoch.
Expected = Mapping[str, frozenset[tuple[str, int, str]]]


# -- events ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeviceRegistered:
    spec: DeviceSpec
    state: AgentState
    now: float
    now_unix: float
    #: The connection the agent called from (its gRPC peer), which then holds the device id.
    connection: str = ""


@dataclass(frozen=True)
class HeartbeatReceived:
    device_id: str
    lease_id: str
    telemetry: DeviceTelemetry
    state: AgentState
    now: float
    now_unix: float
    #: The connection it came from: a heartbeat with the live lease proves it holds the id.
    connection: str = ""


@dataclass(frozen=True)
class DeviceDeregistered:
    device_id: str
    lease_id: str
    now: float


@dataclass(frozen=True)
class DeviceForgotten:
    """A client asked to forget an offline device (``synergy devices --remove``)."""

    device_id: str
    now: float


@dataclass(frozen=True)
class DeviceWentOffline:
    """An outside signal (MQTT last will) says the agent at ``address`` is gone."""

    device_id: str
    address: str
    reason: str
    now: float


@dataclass(frozen=True)
class AppSubmitted:
    spec: AppSpec
    model: LoadedModel
    now: float
    #: The submitter: only it (or an admin) removes the app, watches it or calls Infer.
    owner: str = ""


@dataclass(frozen=True)
class AppRemoved:
    app_id: str
    now: float


@dataclass(frozen=True)
class ResultReported:
    lease_id: str
    result: Result
    now: float


@dataclass(frozen=True)
class PlanComputed:
    plan_id: int
    plan: JointPlan
    now: float


@dataclass(frozen=True)
class PlanFailed:
    plan_id: int
    error: str
    now: float


class DeployOutcome(enum.Enum):
    ACTIVE = "active"
    #: A device refused or failed a step; the previous epoch stays active.
    FAILED = "failed"
    #: A device did not answer in time.
    TIMED_OUT = "timed_out"
    #: The core cancelled it (a device it needed left).
    CANCELLED = "cancelled"
    #: The driver's own deploy task crashed (a bug); logged with its traceback.
    CRASHED = "crashed"


@dataclass(frozen=True)
class DeployFinished:
    epoch: int
    outcome: DeployOutcome
    now: float
    #: Device -> why it failed (FAILED / TIMED_OUT).
    failures: Mapping[str, str] = field(default_factory=dict)
    #: What each device holds once the epoch is active (ACTIVE only).
    expected: Expected = field(default_factory=dict)
    partitions_sent: int = 0
    partitions_reused: int = 0
    partition_bytes_sent: int = 0
    detail: str = ""


@dataclass(frozen=True)
class Tick:
    now: float
    now_unix: float


Event = (
    DeviceRegistered
    | HeartbeatReceived
    | DeviceDeregistered
    | DeviceWentOffline
    | DeviceForgotten
    | AppSubmitted
    | AppRemoved
    | ResultReported
    | PlanComputed
    | PlanFailed
    | DeployFinished
    | Tick
)


# -- instructions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StartPlanning:
    """Run the planner (in a thread) on these devices and apps; answer PlanComputed/PlanFailed."""

    plan_id: int
    devices: tuple[DeviceSpec, ...]
    apps: tuple[PlanningApp, ...]
    #: Calibration factors (device -> measured / predicted) the planner must use.
    factors: Mapping[str, float]
    quarantined: Mapping[str, str]


@dataclass(frozen=True)
class StartDeploy:
    """Build every device's segments of ``plan`` and make ``epoch`` active; answer DeployFinished."""

    epoch: int
    plan: JointPlan
    devices: Mapping[str, DeviceSpec]
    apps: Mapping[str, tuple[AppSpec, LoadedModel]]
    previous_epoch: int
    #: Devices holding ``previous_epoch`` (device -> address): retired once ``epoch`` is active.
    previous: Mapping[str, str]
    #: Partition digests each device really holds: those travel without their bytes.
    held: Mapping[str, frozenset[str]]


@dataclass(frozen=True)
class CancelDeploy:
    epoch: int
    reason: str


@dataclass(frozen=True)
class UndeployStale:
    """An agent holds an epoch that is not (or no longer) deployed: tell it to drop it."""

    device_id: str
    address: str
    epoch: int


@dataclass(frozen=True)
class CloseChannel:
    address: str


@dataclass(frozen=True)
class FanOutResult:
    result: Result


@dataclass(frozen=True)
class PublishPlan:
    plan: JointPlan


@dataclass(frozen=True)
class ReplanSettled:
    """Every replan requested up to ``ticket`` has been planned (and deployed, or failed)."""

    ticket: int


@dataclass(frozen=True)
class SaveDevice:
    spec: DeviceSpec
    lease_id: str


@dataclass(frozen=True)
class DeleteApp:
    app_id: str


@dataclass(frozen=True)
class SaveCounters:
    next_app: int
    next_epoch: int


@dataclass(frozen=True)
class SaveDeployment:
    plan: JointPlan
    expected: Expected


@dataclass(frozen=True)
class SaveQuarantines:
    #: device -> (reason, seconds it has left, consecutive failures); the driver stores the
    #: deadline as wall-clock time, which survives a restart.
    quarantines: Mapping[str, tuple[str, float, int]]


Instruction = (
    StartPlanning
    | StartDeploy
    | CancelDeploy
    | UndeployStale
    | CloseChannel
    | FanOutResult
    | PublishPlan
    | ReplanSettled
    | SaveDevice
    | DeleteApp
    | SaveCounters
    | SaveDeployment
    | SaveQuarantines
)
