"""The virtual computing space: leases, expiry, duplicate device ids, unknown apps."""

from __future__ import annotations

import dataclasses

import pytest

from coordinator.vcs import AppStatsWindow, VirtualComputingSpace
from synergy.devices import preset_device
from synergy.errors import AlreadyExists, NotFound
from synergy.v1 import common_pb2

GLASSES = dataclasses.replace(preset_device("glasses"), address="127.0.0.1:7001")


def test_lease_expires_without_heartbeat() -> None:
    vcs = VirtualComputingSpace(lease_ttl_s=3.0)
    lease = vcs.register(GLASSES, now=0.0, now_unix=0.0)
    vcs.heartbeat("glasses", lease.lease_id, 2.0, 2.0, common_pb2.DeviceTelemetry())
    assert vcs.expire(4.9) == []
    assert vcs.expire(5.0) == ["glasses"]
    assert vcs.online_devices() == []
    with pytest.raises(NotFound, match="register again"):
        vcs.heartbeat("glasses", lease.lease_id, 5.1, 5.1, common_pb2.DeviceTelemetry())


def test_second_live_agent_with_same_id_is_refused() -> None:
    vcs = VirtualComputingSpace(lease_ttl_s=3.0)
    vcs.register(GLASSES, 0.0, 0.0)
    impostor = dataclasses.replace(GLASSES, address="127.0.0.1:7002")
    with pytest.raises(AlreadyExists, match="already live"):
        vcs.register(impostor, 1.0, 1.0)
    # The same agent coming back (same address) gets a fresh lease...
    vcs.register(GLASSES, 1.0, 1.0)
    # ...and once the lease expired, another agent may take the id.
    vcs.expire(10.0)
    assert vcs.register(impostor, 10.0, 10.0).lease_id


def test_unknown_app_is_not_found() -> None:
    vcs = VirtualComputingSpace(lease_ttl_s=3.0)
    with pytest.raises(NotFound, match="unknown app id 'nope'"):
        vcs.app("nope")


def test_stats_window_rate_and_latency() -> None:
    window = AppStatsWindow()
    for i in range(11):
        window.record(now=i * 0.1, latency_s=0.05)
    window.record(now=1.0, latency_s=None)
    assert window.delivered == 11 and window.dropped == 1
    assert window.rate_hz(1.0) == pytest.approx(10.0)
    assert window.latency_ms(1.0) == pytest.approx(50.0)
