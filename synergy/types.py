"""Shared domain types of the virtual computing space: devices, links, apps and plans.

Protobuf messages are converted to and from these at the process boundary
(:mod:`synergy.wire.convert`); all logic — coordinator, orchestrator, agent — works on them.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

from synergy.hardware.boards import BoardProfile
from synergy.hardware.model import TensorSpec
from synergy.reports import DeviceTelemetry

__all__ = [
    "CLIENT_SOURCE",
    "AppInfo",
    "AppSpec",
    "AppState",
    "AppStats",
    "BoardPort",
    "DeviceInfo",
    "DeviceSpec",
    "DeviceState",
    "ExecutionPlan",
    "JointPlan",
    "LINK_PRESETS",
    "LinkProfile",
    "OutputSpec",
    "PeerLink",
    "SensorSpec",
    "Stage",
]


#: Sensor type of apps that clients feed through Infer; every device can host their source.
CLIENT_SOURCE = "client"


class DeviceState(enum.Enum):
    ONLINE = "online"
    OFFLINE = "offline"


class AppState(enum.Enum):
    #: Accepted, but not running right now (the reason says why).
    WAITING = "waiting"
    RUNNING = "running"
    #: Deployed, but no frame outcome arrived recently (the reason says since when).
    STALLED = "stalled"


@dataclass(frozen=True)
class LinkProfile:
    """A device's radio/link: effective payload rate, one-way latency, per-message overhead."""

    name: str
    bandwidth_bytes_per_s: float
    latency_s: float = 0.0
    per_message_overhead_bytes: int = 0


#: Link profiles of HARDWARE.md §3. BLE rates are effective payload rates between wearables.
LINK_PRESETS: Mapping[str, LinkProfile] = {
    p.name: p
    for p in (
        LinkProfile("ble_10k", 10_000, 0.020, 4),
        LinkProfile("ble_24k", 24_000, 0.0075, 4),
        LinkProfile("ble_48k", 48_000, 0.015, 4),
        LinkProfile("ble5_2m", 160_000, 0.0075, 4),
        LinkProfile("uart_115200", 11_520, 0.0, 2),
        LinkProfile("uart_921600", 92_160, 0.0, 2),
        LinkProfile("usb_hs", 30_000_000, 0.000125, 16),
        LinkProfile("loopback", 1e9, 0.0, 0),
    )
}


@dataclass(frozen=True)
class SensorSpec:
    """A sensor on a device: its type (e.g. "camera") and the frame rate it can deliver."""

    type: str
    rate_hz: float
    #: Optional file of frames to replay (emulation); empty means generated frames.
    source: str = ""


@dataclass(frozen=True)
class OutputSpec:
    """An output on a device, e.g. "display", "haptics", "speaker"."""

    type: str


@dataclass(frozen=True)
class PeerLink:
    """A measured or declared link from a device to one named peer (overrides the default pair rule)."""

    peer: str
    link: LinkProfile


@dataclass(frozen=True)
class BoardPort:
    """How an agent reaches its real board (docs/serial-protocol.md), measured at connection."""

    path: str
    baud: int
    firmware: str
    protocol_version: int
    #: Bytes per second on the line, framing included, and of payload (framing removed).
    measured_wire_bytes_per_s: float
    measured_payload_bytes_per_s: float
    transport: str = "serial"


@dataclass(frozen=True)
class DeviceSpec:
    """The capability record one agent registers for its device."""

    device_id: str
    board: BoardProfile
    sensors: tuple[SensorSpec, ...] = ()
    outputs: tuple[OutputSpec, ...] = ()
    link: LinkProfile = LINK_PRESETS["ble_24k"]
    #: host:port of the agent's own gRPC server (empty in offline planning).
    address: str = ""
    #: Human label, e.g. "glasses".
    kind: str = ""
    #: Name of the shared radio medium (e.g. one BLE piconet) this device's radio is on; its
    #: members share the air time of every transfer between two of them. "" = a link of its own.
    medium: str = ""
    #: This device is its medium's central: transfers between two other members relay through it.
    central: bool = False
    #: Links to particular peers, where the space knows them (else the slower of the two radios).
    peer_links: tuple[PeerLink, ...] = ()
    #: The real board's port (None: the board is emulated in the agent's process).
    board_port: BoardPort | None = None

    def sensor(self, sensor_type: str) -> SensorSpec | None:
        return next((s for s in self.sensors if s.type == sensor_type), None)

    def has_output(self, output_type: str) -> bool:
        return any(o.type == output_type for o in self.outputs)


@dataclass(frozen=True)
class AppSpec:
    """An app as a client declares it: never naming a device unless it pins one."""

    app_id: str
    name: str
    #: Zoo name or the file name the model came from (for display); the bytes travel apart.
    model: str
    source_type: str
    target_type: str
    source_device: str = ""
    target_device: str = ""
    #: 0 means "as fast as the source allows".
    max_rate_hz: float = 0.0
    #: The rate the app needs at least (0: none); an app whose minimum cannot be met waits
    #: with the reason instead of running starved (admission control).
    min_rate_hz: float = 0.0
    #: Priority in the default objective: the planner maximises the weighted sum of rates.
    weight: float = 1.0
    #: Process every frame (queue behind a bottleneck) instead of the default: admit a frame
    #: only when the pipeline has room, skipping the others at the sensor (the freshest frames).
    every_frame: bool = False


@dataclass(frozen=True)
class Stage:
    """Layers ``first_layer`` .. ``last_layer`` (inclusive) of an app's model on one device."""

    device_id: str
    first_layer: int
    last_layer: int


@dataclass(frozen=True)
class ExecutionPlan:
    """Where one app senses, which devices run which layers, and where its output goes."""

    app_id: str
    source_device: str
    stages: tuple[Stage, ...]
    target_device: str
    predicted_rate_hz: float = 0.0
    predicted_latency_s: float = 0.0
    #: Devices that overlap CPU, accelerator and radio work across frames.
    parallel_devices: tuple[str, ...] = ()

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device involved, in order, without repeats."""
        seen: list[str] = []
        for device in (self.source_device, *(s.device_id for s in self.stages), self.target_device):
            if device not in seen:
                seen.append(device)
        return tuple(seen)


@dataclass(frozen=True)
class JointPlan:
    """One execution plan per placed app, checked together; ``epoch`` versions deployments."""

    epoch: int = 0
    plans: tuple[ExecutionPlan, ...] = ()
    system_throughput: float = 0.0
    bottleneck: str = ""
    method: str = ""
    #: Apps that could not be placed, with the constraint that stopped them.
    unplaced: Mapping[str, str] = field(default_factory=dict)
    #: Devices the planner left out because their deployments kept failing, with the reason.
    quarantined: Mapping[str, str] = field(default_factory=dict)

    def plan_for(self, app_id: str) -> ExecutionPlan | None:
        return next((p for p in self.plans if p.app_id == app_id), None)


@dataclass(frozen=True)
class AppStats:
    frames_delivered: int = 0
    frames_dropped: int = 0
    #: Delivered frames per second, recent window.
    rate_hz: float = 0.0
    #: Mean capture-to-delivery latency, recent window.
    latency_ms: float = 0.0
    #: Frames its sources admitted (as their agents last reported), and skipped at the sensor
    #: because the pipeline had no room (not drops: they never entered). Admitted frames not
    #: yet delivered or dropped are in flight.
    frames_admitted: int = 0
    frames_skipped: int = 0

    @property
    def frames_in_flight(self) -> int:
        return max(0, self.frames_admitted - self.frames_delivered - self.frames_dropped)


@dataclass(frozen=True)
class AppInfo:
    """An app as the coordinator reports it: its spec, its state and why, its recent figures."""

    app_id: str
    spec: AppSpec
    state: AppState
    reason: str = ""
    #: Hardware layers of its model.
    layers: int = 0
    stats: AppStats = AppStats()
    #: Who submitted it: the name on the client's certificate ("" without one).
    owner: str = ""
    #: True when :attr:`stats` are left out (all zero): the app belongs to another client.
    stats_hidden: bool = False
    #: Its model's input tensors: what Infer takes for a client-fed app.
    inputs: tuple[TensorSpec, ...] = ()


@dataclass(frozen=True)
class DeviceInfo:
    """A device as the coordinator reports it."""

    spec: DeviceSpec
    state: DeviceState
    last_seen_unix: float
    telemetry: DeviceTelemetry
    #: Why the planner leaves this device out (empty: it does not), and until when.
    quarantine_reason: str = ""
    quarantined_until_unix: float = 0.0
