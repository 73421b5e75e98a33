"""The guard: a decision on a live call, a refusal recorded and raised as the right error."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from synergy.errors import PermissionDenied, Unauthenticated
from synergy.security.authz import Policy, Refusal
from synergy.security.guard import Guard, error_for
from synergy.security.identity import Identity
from synergy.wire.status import error_from_rpc


class FakeContext:
    """A plaintext call: no certificate, an address."""

    def auth_context(self) -> dict[str, Any]:
        return {}

    def peer(self) -> str:
        return "ipv4:10.0.0.9:4242"


def test_error_for_maps_the_two_codes() -> None:
    who = Identity("client", "alice")
    unauth = error_for(Refusal("UNAUTHENTICATED", "no cert", "Deploy", service="s", identity=None))
    denied = error_for(Refusal("PERMISSION_DENIED", "no way", "Deploy", service="s", identity=who))
    assert isinstance(unauth, Unauthenticated) and unauth.grpc_code == "UNAUTHENTICATED" and str(unauth) == "no cert"
    assert isinstance(denied, PermissionDenied) and denied.grpc_code == "PERMISSION_DENIED"


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "refused"


def test_status_codes_map_back_to_the_classes() -> None:
    assert isinstance(error_from_rpc(FakeRpcError(grpc.StatusCode.PERMISSION_DENIED)), PermissionDenied)
    assert isinstance(error_from_rpc(FakeRpcError(grpc.StatusCode.UNAUTHENTICATED)), Unauthenticated)


def test_a_refusal_is_recorded_and_raised() -> None:
    guard = Guard(Policy())
    context: Any = FakeContext()
    with pytest.raises(Unauthenticated, match="unauthenticated peer"):
        guard.check(context, lambda who: guard.policy.agent_control(who, "Deploy"))
    assert guard.audit.counts() == {("AgentService/Deploy", "UNAUTHENTICATED"): 1}


def test_an_insecure_guard_allows_without_reading_the_certificate() -> None:
    guard = Guard(Policy(insecure=True))
    context: Any = object()  # no auth_context: an insecure guard never asks
    allowed = guard.check(context, lambda who: guard.policy.agent_control(who, "Deploy"))
    assert allowed.insecure and guard.audit.total() == 0
