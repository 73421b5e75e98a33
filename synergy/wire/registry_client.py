"""The agent's side of the Registry API, over one gRPC channel.

Every call goes through :meth:`RegistryClient._call`, the one place where a failed RPC becomes
a :class:`~synergy.errors.SynergyError` (via :func:`~synergy.wire.status.error_from_rpc`), so
callers never see gRPC: :class:`~synergy.errors.NotFound` means the coordinator does not know
the lease (register again), :class:`~synergy.errors.Unavailable` means it could not be reached
(or did not answer in time), anything else is a refusal with the coordinator's reason
(e.g. :class:`~synergy.errors.AlreadyExists` for a device id another live agent holds).
Results travel in batches (``ReportResults``, :mod:`synergy.wire.result_batches`): one call
per batch, with a refusal per result that was not taken.

:class:`Registry` is the narrow interface the agent depends on; tests pass a fake.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc

from synergy.deployment import AgentState
from synergy.errors import SynergyError, Unavailable
from synergy.reports import DeviceTelemetry, Result
from synergy.security.tls import TlsConfig
from synergy.types import DeviceSpec
from synergy.v1 import registry_pb2, registry_pb2_grpc
from synergy.wire.channels import open_channel
from synergy.wire.convert import device_to_proto
from synergy.wire.deployment import agent_state_to_proto
from synergy.wire.reports import result_to_proto, telemetry_to_proto
from synergy.wire.result_batches import outcomes_from_proto, results_request
from synergy.wire.status import error_from_rpc

__all__ = ["Lease", "Registry", "RegistryClient"]

T = TypeVar("T")

#: Bounds applied to the periods a coordinator answers with, so that a bad answer can neither
#: turn the heartbeat loop into a busy loop nor silence it for hours.
MIN_PERIOD_S = 0.05
MAX_PERIOD_S = 600.0
REGISTER_TIMEOUT_S = 5.0
REPORT_TIMEOUT_S = 5.0
DEREGISTER_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Lease:
    """What a successful Register grants: the lease, how often to renew it, when it expires."""

    lease_id: str
    heartbeat_period_s: float
    lease_ttl_s: float


class Registry(Protocol):
    """What an agent needs from the coordinator's registry (fakes implement this in tests)."""

    async def register(self, spec: DeviceSpec, state: AgentState) -> Lease: ...

    async def heartbeat(
        self, device_id: str, lease_id: str, telemetry: DeviceTelemetry, state: AgentState, timeout_s: float
    ) -> None: ...

    async def report_result(self, lease_id: str, result: Result) -> None: ...

    async def report_results(self, lease_id: str, results: Sequence[Result]) -> list[SynergyError | None]:
        """Report a batch; per result, in order: None (taken) or why it was refused. Raises
        for what refuses the whole batch (NotFound: unknown lease; a refused caller; Unavailable)."""
        ...

    async def deregister(self, device_id: str, lease_id: str) -> None: ...

    async def close(self) -> None: ...


def _bounded(value: float, default: float) -> float:
    if not math.isfinite(value) or value <= 0:
        return default
    return min(max(value, MIN_PERIOD_S), MAX_PERIOD_S)


class RegistryClient:
    """:class:`Registry` over gRPC; owns its channel (``close`` ends it). Mutual TLS with ``tls``."""

    def __init__(
        self, address: str, *, tls: TlsConfig | None = None, channel: grpc.aio.Channel | None = None
    ) -> None:
        self.address = address
        self._channel = channel or open_channel(address, tls)
        self._stub = registry_pb2_grpc.RegistryServiceStub(self._channel)

    async def _call(self, method: Callable[..., Awaitable[T]], request: Any, timeout_s: float) -> T:
        """The one choke point: gRPC failures become SynergyErrors here."""
        try:
            return await method(request, timeout=timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        except grpc.aio.UsageError as exc:  # the channel was closed under the call
            raise Unavailable(f"registry channel to {self.address} is closed") from exc

    async def register(self, spec: DeviceSpec, state: AgentState) -> Lease:
        answer: registry_pb2.RegisterResponse = await self._call(
            self._stub.Register,
            registry_pb2.RegisterRequest(device=device_to_proto(spec), state=agent_state_to_proto(state)),
            REGISTER_TIMEOUT_S,
        )
        period = _bounded(answer.heartbeat_period_s, 1.0)
        ttl = max(_bounded(answer.lease_ttl_s, 5.0), period)
        return Lease(answer.lease_id, period, ttl)

    async def heartbeat(
        self, device_id: str, lease_id: str, telemetry: DeviceTelemetry, state: AgentState, timeout_s: float
    ) -> None:
        await self._call(
            self._stub.Heartbeat,
            registry_pb2.HeartbeatRequest(
                device_id=device_id,
                lease_id=lease_id,
                telemetry=telemetry_to_proto(telemetry),
                state=agent_state_to_proto(state),
            ),
            timeout_s,
        )

    async def report_result(self, lease_id: str, result: Result) -> None:
        await self._call(
            self._stub.ReportResult,
            registry_pb2.ReportResultRequest(lease_id=lease_id, result=result_to_proto(result)),
            REPORT_TIMEOUT_S,
        )

    async def report_results(self, lease_id: str, results: Sequence[Result]) -> list[SynergyError | None]:
        answer: registry_pb2.ReportResultsResponse = await self._call(
            self._stub.ReportResults, results_request(lease_id, results), REPORT_TIMEOUT_S
        )
        return outcomes_from_proto(answer, len(results))

    async def deregister(self, device_id: str, lease_id: str) -> None:
        await self._call(
            self._stub.Deregister,
            registry_pb2.DeregisterRequest(device_id=device_id, lease_id=lease_id),
            DEREGISTER_TIMEOUT_S,
        )

    async def close(self) -> None:
        await self._channel.close()
