"""The coordinator's gRPC client of agents: one channel per agent address, domain types in/out.

Failed calls come back as :mod:`synergy.errors` (translated here, once): a call that ran out
of time is :class:`~synergy.errors.DeadlineExceeded`, an unreachable agent
:class:`~synergy.errors.Unavailable`, a refusal the class of its status code.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from typing import TypeVar

import grpc

from synergy.deployment import AgentState, SegmentAssignment
from synergy.errors import DeadlineExceeded, Unavailable
from synergy.hardware.model import TensorSpec
from synergy.security.tls import TlsConfig
from synergy.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from synergy.wire.channels import open_channel
from synergy.wire.deployment import agent_state_from_proto, assignment_to_proto
from synergy.wire.status import error_from_rpc
from synergy.wire.tensors import spec_to_meta

__all__ = ["AgentClients"]

_T = TypeVar("_T")


async def _call(address: str, call: Awaitable[_T]) -> _T:
    try:
        return await call
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
            raise DeadlineExceeded(f"agent {address} did not answer in time") from exc
        raise error_from_rpc(exc) from exc
    except OSError as exc:
        raise Unavailable(f"agent {address}: {exc}") from exc


class AgentClients:
    """One channel per agent address, reused across epochs; closed when the agent leaves.

    With ``tls`` (the coordinator's identity) every channel is mutual TLS.
    """

    def __init__(self, tls: TlsConfig | None = None) -> None:
        self._tls = tls
        self._channels: dict[str, grpc.aio.Channel] = {}

    def _stub(self, address: str) -> agent_pb2_grpc.AgentServiceStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = open_channel(address, self._tls)
            self._channels[address] = channel
        return agent_pb2_grpc.AgentServiceStub(channel)

    async def deploy(
        self, address: str, epoch: int, assignments: Sequence[SegmentAssignment], timeout_s: float
    ) -> None:
        request = agent_pb2.DeployRequest(epoch=epoch, assignments=[assignment_to_proto(a) for a in assignments])
        await _call(address, self._stub(address).Deploy(request, timeout=timeout_s))

    async def activate(self, address: str, epoch: int, timeout_s: float) -> None:
        await _call(address, self._stub(address).Activate(agent_pb2.ActivateRequest(epoch=epoch), timeout=timeout_s))

    async def undeploy(self, address: str, epoch: int, timeout_s: float) -> int:
        answer = await _call(
            address, self._stub(address).Undeploy(agent_pb2.UndeployRequest(epoch=epoch), timeout=timeout_s)
        )
        return int(answer.frames_drained)

    async def status(self, address: str, timeout_s: float) -> AgentState:
        answer = await _call(address, self._stub(address).Status(agent_pb2.StatusRequest(), timeout=timeout_s))
        return agent_state_from_proto(answer.state)

    async def inject(
        self, address: str, app_id: str, seq: int, inputs: Mapping[TensorSpec, bytes], timeout_s: float
    ) -> int:
        """Feed one input of a client-fed app into its source agent; returns the epoch it entered."""
        tensors = [common_pb2.Tensor(meta=spec_to_meta(spec), data=data) for spec, data in inputs.items()]
        request = agent_pb2.InjectRequest(app_id=app_id, seq=seq, inputs=tensors)
        answer = await _call(address, self._stub(address).Inject(request, timeout=timeout_s))
        return int(answer.epoch)

    async def drop(self, address: str) -> None:
        channel = self._channels.pop(address, None)
        if channel is not None:
            await channel.close()

    async def close(self) -> None:
        for address in list(self._channels):
            await self.drop(address)
