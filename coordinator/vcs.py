"""The virtual computing space: every device, its lease and state, every app, the plan.

Pure state with no I/O and no clock of its own: callers pass ``now`` (monotonic seconds),
which keeps lease logic testable without sleeping. The coordinator service owns the one
instance and mutates it only from its event loop.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field, replace

from coordinator.models import LoadedModel
from synergy.errors import AlreadyExists, InvalidArgument, NotFound
from synergy.types import AppSpec, DeviceSpec, JointPlan
from synergy.v1 import common_pb2

__all__ = ["AppRecord", "AppStatsWindow", "DeviceRecord", "Lease", "VirtualComputingSpace"]

#: Sensor type of apps that clients feed through Infer; every device can host their source.
CLIENT_SOURCE = "client"
#: Results kept per app to compute the recent rate and latency.
STATS_WINDOW_S = 5.0


@dataclass(frozen=True)
class Lease:
    lease_id: str
    expires_at: float


@dataclass
class DeviceRecord:
    spec: DeviceSpec
    lease: Lease
    online: bool = True
    last_seen: float = 0.0
    last_seen_unix: float = 0.0
    telemetry: common_pb2.DeviceTelemetry = field(default_factory=common_pb2.DeviceTelemetry)


@dataclass
class AppStatsWindow:
    """Delivered and dropped counters plus a sliding window for rate and latency."""

    delivered: int = 0
    dropped: int = 0
    recent: deque[tuple[float, float]] = field(default_factory=deque)  # (arrival, latency_s)

    def record(self, now: float, latency_s: float | None) -> None:
        if latency_s is None:
            self.dropped += 1
            return
        self.delivered += 1
        self.recent.append((now, latency_s))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - STATS_WINDOW_S:
            self.recent.popleft()

    def rate_hz(self, now: float) -> float:
        self._trim(now)
        if len(self.recent) < 2:
            return 0.0
        span = max(now - self.recent[0][0], self.recent[-1][0] - self.recent[0][0])
        return (len(self.recent) - 1) / span if span > 0 else 0.0

    def latency_ms(self, now: float) -> float:
        self._trim(now)
        return 1000.0 * sum(lat for _, lat in self.recent) / len(self.recent) if self.recent else 0.0


@dataclass
class AppRecord:
    spec: AppSpec
    model: LoadedModel
    #: Why the app is not running, empty while it runs.
    reason: str = "not planned yet"
    stats: AppStatsWindow = field(default_factory=AppStatsWindow)


class VirtualComputingSpace:
    """Devices with leases, apps, and the deployed joint plan with its epoch."""

    def __init__(self, lease_ttl_s: float) -> None:
        if lease_ttl_s <= 0:
            raise InvalidArgument(f"lease TTL must be positive, got {lease_ttl_s}")
        self.lease_ttl_s = lease_ttl_s
        self.devices: dict[str, DeviceRecord] = {}
        self.apps: dict[str, AppRecord] = {}
        self.plan = JointPlan()
        self._app_counter = 0

    # -- devices -------------------------------------------------------------------------

    def register(self, spec: DeviceSpec, now: float, now_unix: float) -> Lease:
        """Admit a device; a live device of the same id on another address refuses the newcomer.

        The same agent registering again (same address, e.g. after it lost its lease or the
        coordinator restarted) gets a fresh lease; its old deployments are void.
        """
        existing = self.devices.get(spec.device_id)
        if (
            existing is not None
            and existing.online
            and existing.lease.expires_at > now
            and existing.spec.address != spec.address
        ):
            raise AlreadyExists(
                f"device {spec.device_id!r} is already live (registered from {existing.spec.address}); "
                "a device id is held by one agent at a time"
            )
        lease = Lease(secrets.token_hex(8), now + self.lease_ttl_s)
        self.devices[spec.device_id] = DeviceRecord(spec, lease, True, now, now_unix)
        return lease

    def heartbeat(
        self, device_id: str, lease_id: str, now: float, now_unix: float, telemetry: common_pb2.DeviceTelemetry
    ) -> Lease:
        record = self._live_record(device_id, lease_id)
        record.lease = replace(record.lease, expires_at=now + self.lease_ttl_s)
        record.last_seen, record.last_seen_unix = now, now_unix
        record.telemetry = telemetry
        return record.lease

    def check_lease(self, lease_id: str) -> DeviceRecord:
        record = next((d for d in self.devices.values() if d.lease.lease_id == lease_id and d.online), None)
        if record is None:
            raise NotFound("unknown or expired lease; register again")
        return record

    def _live_record(self, device_id: str, lease_id: str) -> DeviceRecord:
        record = self.devices.get(device_id)
        if record is None or not record.online or record.lease.lease_id != lease_id:
            raise NotFound(f"device {device_id!r} holds no live lease {lease_id!r}; register again")
        return record

    def expire(self, now: float) -> list[str]:
        """Mark devices whose lease ran out offline; returns their ids."""
        gone = [d.spec.device_id for d in self.devices.values() if d.online and d.lease.expires_at <= now]
        for device_id in gone:
            self.devices[device_id].online = False
        return gone

    def mark_offline(self, device_id: str) -> bool:
        """Offline by an outside signal (MQTT last will, shutdown); True if it was online."""
        record = self.devices.get(device_id)
        if record is None or not record.online:
            return False
        record.online = False
        return True

    def online_devices(self) -> list[DeviceSpec]:
        return [d.spec for d in self.devices.values() if d.online]

    # -- apps ----------------------------------------------------------------------------

    def new_app_id(self) -> str:
        self._app_counter += 1
        return f"app-{self._app_counter}-{secrets.token_hex(2)}"

    def add_app(self, record: AppRecord) -> None:
        self.apps[record.spec.app_id] = record

    def app(self, app_id: str) -> AppRecord:
        record = self.apps.get(app_id)
        if record is None:
            raise NotFound(f"unknown app id {app_id!r}; known: {sorted(self.apps) or 'none'}")
        return record

    def remove_app(self, app_id: str) -> AppRecord:
        record = self.app(app_id)
        del self.apps[app_id]
        return record

    def sensor_types(self) -> set[str]:
        return {s.type for d in self.online_devices() for s in d.sensors}

    def output_types(self) -> set[str]:
        return {o.type for d in self.online_devices() for o in d.outputs}
