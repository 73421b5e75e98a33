"""Deployment by epochs: deploy everywhere, then activate, then retire the previous epoch.

DESIGN.md §4.3. Every involved agent first loads its segments of epoch e (checking them
against its board); only when all succeeded is e activated; only then is e - 1 retired.
A failure while deploying undeploys e wherever it landed; a failure while activating puts
the agents that had switched back on e - 1 and undeploys e. Nothing half-deployed stays
active.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass

import grpc
import structlog

from synergy.errors import SynergyError, Unavailable
from synergy.v1 import agent_pb2, agent_pb2_grpc
from synergy.wire.server import channel_options
from synergy.wire.status import error_from_rpc

__all__ = ["AgentClients", "DeployFailed", "Deployer", "DeviceDeployment"]

log = structlog.get_logger(__name__)

#: How long one agent may take to load its partitions (ONNX sessions) for an epoch.
DEPLOY_TIMEOUT_S = 20.0
#: Activate / undeploy are cheap on the agent.
CONTROL_TIMEOUT_S = 5.0
#: Retiring waits for in-flight frames of the old epoch to drain, up to this long.
RETIRE_TIMEOUT_S = 15.0


class DeployFailed(SynergyError):
    """A deployment step failed on a device; the previous epoch stays active."""

    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, device_id: str, cause: SynergyError) -> None:
        super().__init__(f"deploy to {device_id} failed: {cause}")
        self.device_id = device_id
        self.cause = cause


@dataclass(frozen=True)
class DeviceDeployment:
    device_id: str
    address: str
    assignments: tuple[agent_pb2.Assignment, ...]


class AgentClients:
    """One channel per agent address, reused across epochs."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}

    def stub(self, address: str) -> agent_pb2_grpc.AgentServiceStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address, options=channel_options())
            self._channels[address] = channel
        return agent_pb2_grpc.AgentServiceStub(channel)

    async def drop(self, address: str) -> None:
        channel = self._channels.pop(address, None)
        if channel is not None:
            await channel.close()

    async def close(self) -> None:
        for address in list(self._channels):
            await self.drop(address)


async def _call(device_id: str, call: Awaitable[object]) -> None:
    try:
        await call
    except grpc.aio.AioRpcError as exc:
        raise DeployFailed(device_id, error_from_rpc(exc)) from exc
    except (TimeoutError, OSError) as exc:
        raise DeployFailed(device_id, Unavailable(str(exc))) from exc


class Deployer:
    def __init__(self, clients: AgentClients) -> None:
        self._clients = clients

    async def deploy(
        self,
        epoch: int,
        deployments: Sequence[DeviceDeployment],
        previous_epoch: int,
        previous_addresses: Mapping[str, str],
    ) -> None:
        """Make ``epoch`` the active one on ``deployments``; retire ``previous_epoch``.

        ``previous_addresses`` are the agents that hold ``previous_epoch`` (device -> address).
        Raises :class:`DeployFailed` after rolling back; the previous epoch is then intact.
        """
        bound = log.bind(epoch=epoch)
        failures = await self._deploy_all(epoch, deployments)
        if failures:
            # _deploy_all already undeployed what landed; report the first failure.
            raise failures[0]
        activated: list[DeviceDeployment] = []
        try:
            for deployment in deployments:
                stub = self._clients.stub(deployment.address)
                await _call(
                    deployment.device_id,
                    stub.Activate(agent_pb2.ActivateRequest(epoch=epoch), timeout=CONTROL_TIMEOUT_S),
                )
                activated.append(deployment)
        except DeployFailed as failure:
            bound.warning("activate_failed_rolling_back", device=failure.device_id, reason=str(failure.cause))
            await self._rollback_activation(activated, previous_epoch, previous_addresses)
            await self._undeploy_everywhere(epoch, {d.device_id: d.address for d in deployments})
            raise
        bound.info("epoch_active", devices=[d.device_id for d in deployments])
        if previous_epoch:
            await self._undeploy_everywhere(previous_epoch, previous_addresses, call_timeout_s=RETIRE_TIMEOUT_S)

    async def _deploy_all(self, epoch: int, deployments: Sequence[DeviceDeployment]) -> list[DeployFailed]:
        """Deploy in parallel; on any failure undeploy where it landed. Returns the failures."""

        async def one(deployment: DeviceDeployment) -> DeployFailed | None:
            stub = self._clients.stub(deployment.address)
            request = agent_pb2.DeployRequest(epoch=epoch, assignments=list(deployment.assignments))
            try:
                await _call(deployment.device_id, stub.Deploy(request, timeout=DEPLOY_TIMEOUT_S))
            except DeployFailed as failure:
                return failure
            return None

        results = await asyncio.gather(*(one(d) for d in deployments))
        failures = [r for r in results if r is not None]
        if failures:
            log.warning("deploy_failed_rolling_back", epoch=epoch, failures=[str(f) for f in failures])
            failed = {f.device_id for f in failures}
            addresses = {d.device_id: d.address for d in deployments if d.device_id not in failed}
            await self._undeploy_everywhere(epoch, addresses)
        return failures

    async def _rollback_activation(
        self, activated: Sequence[DeviceDeployment], previous_epoch: int, previous: Mapping[str, str]
    ) -> None:
        for deployment in activated:
            if previous_epoch and deployment.device_id in previous:
                stub = self._clients.stub(deployment.address)
                try:
                    await _call(
                        deployment.device_id,
                        stub.Activate(agent_pb2.ActivateRequest(epoch=previous_epoch), timeout=CONTROL_TIMEOUT_S),
                    )
                except DeployFailed as failure:
                    log.warning("rollback_activate_failed", device=deployment.device_id, reason=str(failure))

    async def _undeploy_everywhere(
        self, epoch: int, addresses: Mapping[str, str], call_timeout_s: float = CONTROL_TIMEOUT_S
    ) -> None:
        async def one(device_id: str, address: str) -> None:
            try:
                await _call(
                    device_id,
                    self._clients.stub(address).Undeploy(
                        agent_pb2.UndeployRequest(epoch=epoch), timeout=call_timeout_s
                    ),
                )
            except DeployFailed as failure:
                # An agent that is gone holds nothing any more; one that is alive retries
                # nothing: it drops stale epochs itself when it activates a newer one.
                log.info("undeploy_skipped", device=device_id, epoch=epoch, reason=str(failure.cause))

        await asyncio.gather(*(one(d, a) for d, a in addresses.items()))
