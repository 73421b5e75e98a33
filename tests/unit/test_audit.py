"""The audit record (synergy.security.audit): each refusal logged once per (peer, rpc, reason)
and window, with the repeats counted; every refusal counted by (rpc, code)."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
import structlog

from synergy.security.audit import DEFAULT_WINDOW_S, AuditLog
from synergy.security.authz import Refusal, authorize_agent_control, authorize_apps, authorize_registry
from synergy.security.identity import Identity

RING = Identity("agent", "ring")
BOB = Identity("client", "bob")


def refusal_of(call: Any) -> Refusal:
    with pytest.raises(Refusal) as info:
        call()
    return info.value


def register_as_ring(device: str = "watch") -> Refusal:
    return refusal_of(lambda: authorize_registry(RING, "Register", device_id=device, live_holder=None))


def deploy_as(who: Identity | None) -> Refusal:
    return refusal_of(lambda: authorize_agent_control(who, "Deploy"))


def lines(logs: list[MutableMapping[str, Any]], event: str = "security_refusal") -> list[MutableMapping[str, Any]]:
    return [entry for entry in logs if entry["event"] == event]


def test_first_refusal_is_logged_with_peer_rpc_and_reason() -> None:
    audit = AuditLog()
    refusal = register_as_ring()
    with structlog.testing.capture_logs() as logs:
        assert audit.record(refusal, now=100.0, address="ipv4:10.0.0.9:40000") is True
    assert lines(logs) == [
        {
            "event": "security_refusal",
            "log_level": "warning",
            "peer": "agent:ring",
            "address": "ipv4:10.0.0.9:40000",
            "rpc": "RegistryService/Register",
            "code": "PERMISSION_DENIED",
            "reason": refusal.reason,
            "repeats": 0,
        }
    ]


def test_repeats_within_the_window_are_counted_not_logged_then_relogged_with_the_count() -> None:
    audit = AuditLog(window_s=60.0)
    with structlog.testing.capture_logs() as logs:
        assert audit.record(register_as_ring(), now=0.0)
        for t in (1.0, 10.0, 59.9):
            assert not audit.record(register_as_ring(), now=t)
        assert audit.record(register_as_ring(), now=60.0)
        assert not audit.record(register_as_ring(), now=61.0)
        assert audit.record(register_as_ring(), now=120.0)
    assert [line["repeats"] for line in lines(logs)] == [0, 3, 1]
    assert audit.counts() == {("RegistryService/Register", "PERMISSION_DENIED"): 7}
    assert audit.total() == 7


def test_distinct_peer_rpc_or_reason_are_logged_apart() -> None:
    audit = AuditLog()
    with structlog.testing.capture_logs() as logs:
        audit.record(register_as_ring("watch"), now=0.0)
        audit.record(register_as_ring("phone"), now=0.0)  # another reason
        audit.record(deploy_as(RING), now=0.0)  # another rpc
        audit.record(deploy_as(BOB), now=0.0)  # another peer
        audit.record(deploy_as(BOB), now=1.0)  # the same again
    logged = lines(logs)
    assert [(line["peer"], line["rpc"]) for line in logged] == [
        ("agent:ring", "RegistryService/Register"),
        ("agent:ring", "RegistryService/Register"),
        ("agent:ring", "AgentService/Deploy"),
        ("client:bob", "AgentService/Deploy"),
    ]
    assert "device phone" in logged[1]["reason"]


def test_peers_without_identity_are_told_apart_by_address() -> None:
    audit = AuditLog()
    with structlog.testing.capture_logs() as logs:
        assert audit.record(deploy_as(None), now=0.0, address="ipv4:10.0.0.1:1")
        assert audit.record(deploy_as(None), now=0.0, address="ipv4:10.0.0.2:1")
        assert not audit.record(deploy_as(None), now=0.0, address="ipv4:10.0.0.2:1")
        assert audit.record(deploy_as(None), now=0.0)
    assert [line["peer"] for line in lines(logs)] == ["ipv4:10.0.0.1:1", "ipv4:10.0.0.2:1", "anonymous"]
    assert all(line["code"] == "UNAUTHENTICATED" for line in lines(logs))


def test_counts_by_rpc_and_code() -> None:
    audit = AuditLog()
    with structlog.testing.capture_logs():
        for _ in range(3):
            audit.record(deploy_as(None), now=0.0)
        audit.record(deploy_as(RING), now=0.0)
        audit.record(register_as_ring(), now=0.0)
        audit.record(refusal_of(lambda: authorize_apps(BOB, "RemoveApp", owner="alice", app_id="app-1")), now=0.0)
    counts = audit.counts()
    assert counts == {
        ("AgentService/Deploy", "UNAUTHENTICATED"): 3,
        ("AgentService/Deploy", "PERMISSION_DENIED"): 1,
        ("RegistryService/Register", "PERMISSION_DENIED"): 1,
        ("AppsService/RemoveApp", "PERMISSION_DENIED"): 1,
    }
    with pytest.raises(TypeError):
        counts[("x", "y")] = 1  # type: ignore[index]  # a read-only view
    audit.record(deploy_as(RING), now=0.0)
    assert counts[("AgentService/Deploy", "PERMISSION_DENIED")] == 1  # a snapshot, not live
    assert AuditLog().counts() == {}
    assert AuditLog().total() == 0


def test_flush_logs_pending_repeats_of_quiet_entries() -> None:
    audit = AuditLog(window_s=60.0)
    with structlog.testing.capture_logs() as logs:
        audit.record(register_as_ring(), now=0.0)
        audit.record(register_as_ring(), now=5.0)
        audit.record(register_as_ring(), now=6.0)
        audit.record(deploy_as(RING), now=30.0)  # refused once, nothing pending
        assert audit.flush(59.0) == 0
        assert audit.flush(60.0) == 1
        assert audit.flush(90.0) == 1
        # forgotten: the next one is logged as a first
        assert audit.record(register_as_ring(), now=91.0)
    repeats = lines(logs, "security_refusal_repeats")
    assert len(repeats) == 1
    assert repeats[0]["repeats"] == 2
    assert repeats[0]["peer"] == "agent:ring" and repeats[0]["rpc"] == "RegistryService/Register"
    assert repeats[0]["code"] == "PERMISSION_DENIED"
    assert [line["repeats"] for line in lines(logs)] == [0, 0, 0]


def test_table_is_bounded_and_an_evicted_entry_reports_its_repeats() -> None:
    audit = AuditLog(window_s=60.0, max_entries=2)
    with structlog.testing.capture_logs() as logs:
        audit.record(register_as_ring("a"), now=0.0)
        audit.record(register_as_ring("a"), now=1.0)  # one repeat pending
        audit.record(register_as_ring("b"), now=2.0)
        audit.record(register_as_ring("c"), now=3.0)  # full, nothing expired: "a" (oldest) goes
        assert not audit.record(register_as_ring("b"), now=4.0)  # "b" is still remembered
        assert audit.record(register_as_ring("a"), now=5.0)  # "a" was forgotten: logged again; "b" goes
    evicted = lines(logs, "security_refusal_repeats")
    assert [(line["reason"].split()[5], line["repeats"]) for line in evicted] == [("a:", 1), ("b:", 1)]
    assert len(audit._recent) == 2
    assert audit.total() == 6


def test_a_full_table_prefers_expired_entries() -> None:
    audit = AuditLog(window_s=10.0, max_entries=2)
    with structlog.testing.capture_logs():
        audit.record(register_as_ring("a"), now=0.0)
        audit.record(register_as_ring("b"), now=8.0)
        audit.record(register_as_ring("c"), now=12.0)  # "a" expired and is dropped, "b" kept
        assert not audit.record(register_as_ring("b"), now=13.0)


def test_default_window_is_a_minute() -> None:
    assert DEFAULT_WINDOW_S == 60.0


@pytest.mark.parametrize("kwargs", [{"window_s": -1.0}, {"max_entries": 0}])
def test_bad_settings_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AuditLog(**kwargs)  # type: ignore[arg-type]
