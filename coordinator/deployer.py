"""Deployment by epochs: deploy everywhere, then activate, then retire the previous epoch.

DESIGN.md §4.3. Every involved agent first loads its segments of epoch e (checking them
against its board); only when all succeeded is e activated; only then is e - 1 retired.
A failure while deploying undeploys e wherever it landed; a failure while activating puts
the agents that had switched back on e - 1 and undeploys e. Nothing half-deployed stays
active — also when the deployment is cancelled (the core cancels it when a device it needs
leaves): the rollback then still runs, bounded, before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from synergy.deployment import SegmentAssignment
from synergy.errors import DeadlineExceeded, SynergyError
from synergy.wire.agent_client import AgentClients

__all__ = ["DeployFailed", "Deployer", "DeviceDeployment", "deploy_timeout_s"]

log = structlog.get_logger(__name__)

#: How long one agent may take to load its partitions (ONNX sessions) for an epoch, besides
#: receiving them (see :func:`deploy_timeout_s`).
DEPLOY_TIMEOUT_S = 20.0
#: Partition bytes cross the device's own link: allowed this many times their transfer time at
#: the link's payload rate (TLS, TCP and retransmissions on a busy slow radio cost extra).
DEPLOY_LINK_MARGIN = 2.0
#: Activate / undeploy are cheap on the agent.
CONTROL_TIMEOUT_S = 5.0
#: Retiring waits for in-flight frames of the old epoch to drain, up to this long.
RETIRE_TIMEOUT_S = 15.0
#: A rollback after a cancellation must not hold the coordinator up for long.
ROLLBACK_TIMEOUT_S = 2.0


class DeployFailed(SynergyError):
    """Deployment steps failed on some devices; the previous epoch stays active."""

    grpc_code = "FAILED_PRECONDITION"

    def __init__(self, failures: Mapping[str, SynergyError]) -> None:
        text = "; ".join(f"deploy to {d} failed: {cause}" for d, cause in failures.items())
        super().__init__(text)
        self.failures = dict(failures)

    @property
    def timed_out(self) -> bool:
        return all(isinstance(c, DeadlineExceeded) for c in self.failures.values())


@dataclass(frozen=True)
class DeviceDeployment:
    device_id: str
    address: str
    assignments: tuple[SegmentAssignment, ...]
    #: The device's link payload rate (bytes/s); 0: unknown (no transfer time allowed for).
    link_bytes_per_s: float = 0.0


def deploy_timeout_s(deployment: DeviceDeployment) -> float:
    """How long the agent's Deploy call may take: loading, plus sending the partitions it does not
    hold over its link. A 3 MB ONNX partition over a 92 kB/s UART takes half a minute: a fixed
    bound would fail that deployment every time, and the device would be quarantined for it."""
    sent = sum(len(a.partition.onnx) for a in deployment.assignments if a.partition is not None)
    if sent == 0 or deployment.link_bytes_per_s <= 0:
        return DEPLOY_TIMEOUT_S
    return DEPLOY_TIMEOUT_S + DEPLOY_LINK_MARGIN * sent / deployment.link_bytes_per_s


class Deployer:
    def __init__(self, clients: AgentClients) -> None:
        self._clients = clients

    async def deploy(
        self,
        epoch: int,
        deployments: Sequence[DeviceDeployment],
        previous_epoch: int,
        previous_addresses: Mapping[str, str],
        on_active: Callable[[], None] | None = None,
    ) -> None:
        """Make ``epoch`` the active one on ``deployments``; retire ``previous_epoch``.

        ``previous_addresses`` are the agents that hold ``previous_epoch`` (device -> address).
        ``on_active`` is called once every agent runs ``epoch`` (before the retirement).
        Raises :class:`DeployFailed` after rolling back; the previous epoch is then intact.
        """
        bound = log.bind(epoch=epoch)
        addresses = {d.device_id: d.address for d in deployments}
        try:
            await self._deploy_all(epoch, deployments)
        except BaseException:
            await self._bounded(self._undeploy_everywhere(epoch, addresses))
            raise
        activated: list[DeviceDeployment] = []
        try:
            for deployment in deployments:
                try:
                    await self._clients.activate(deployment.address, epoch, CONTROL_TIMEOUT_S)
                except SynergyError as cause:
                    raise DeployFailed({deployment.device_id: cause}) from cause
                activated.append(deployment)
        except BaseException as failure:
            reason = str(failure) or type(failure).__name__
            bound.warning("activate_failed_rolling_back", reason=reason)
            await self._bounded(self._rollback_activation(activated, previous_epoch, previous_addresses))
            await self._bounded(self._undeploy_everywhere(epoch, addresses))
            raise
        bound.info("epoch_active", devices=sorted(addresses))
        if on_active is not None:
            on_active()
        if previous_epoch:
            await self._undeploy_everywhere(previous_epoch, previous_addresses, call_timeout_s=RETIRE_TIMEOUT_S)

    async def _bounded(self, cleanup: Coroutine[Any, Any, None]) -> None:
        """Run a rollback step to its end even if we are being cancelled, within a bound."""
        task = asyncio.ensure_future(cleanup)
        try:
            await asyncio.wait_for(asyncio.shield(task), ROLLBACK_TIMEOUT_S)
        except (TimeoutError, asyncio.CancelledError):
            # Either way the agents drop stale epochs themselves when told by the core's
            # drift repair; waiting longer here would hold up every other app.
            if not task.done():
                task.cancel()
            log.info("rollback_cut_short")

    async def _deploy_all(self, epoch: int, deployments: Sequence[DeviceDeployment]) -> None:
        """Deploy in parallel; raises DeployFailed naming every device that failed."""

        async def one(deployment: DeviceDeployment) -> tuple[str, SynergyError] | None:
            try:
                timeout_s = deploy_timeout_s(deployment)
                await self._clients.deploy(deployment.address, epoch, deployment.assignments, timeout_s)
            except SynergyError as cause:
                return deployment.device_id, cause
            return None

        results = await asyncio.gather(*(one(d) for d in deployments))
        failures = dict(r for r in results if r is not None)
        if failures:
            log.warning("deploy_failed_rolling_back", epoch=epoch, failures={d: str(c) for d, c in failures.items()})
            raise DeployFailed(failures)

    async def _rollback_activation(
        self, activated: Sequence[DeviceDeployment], previous_epoch: int, previous: Mapping[str, str]
    ) -> None:
        for deployment in activated:
            if previous_epoch and deployment.device_id in previous:
                try:
                    await self._clients.activate(deployment.address, previous_epoch, CONTROL_TIMEOUT_S)
                except SynergyError as failure:
                    log.warning("rollback_activate_failed", device=deployment.device_id, reason=str(failure))

    async def _undeploy_everywhere(
        self, epoch: int, addresses: Mapping[str, str], call_timeout_s: float = CONTROL_TIMEOUT_S
    ) -> None:
        async def one(device_id: str, address: str) -> None:
            try:
                await self._clients.undeploy(address, epoch, call_timeout_s)
            except SynergyError as failure:
                # An agent that is gone holds nothing any more; one that is alive and still
                # holds the epoch is told again by the core's drift repair.
                log.info("undeploy_skipped", device=device_id, epoch=epoch, reason=str(failure))

        await asyncio.gather(*(one(d, a) for d, a in addresses.items()))
