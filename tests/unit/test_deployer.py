"""Deployment by epochs: all-or-nothing deploy, rollback on activation failure or cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from coordinator.deployer import DEPLOY_TIMEOUT_S, Deployer, DeployFailed, DeviceDeployment, deploy_timeout_s
from synergy.deployment import PartitionPayload, SegmentAssignment
from synergy.errors import DeadlineExceeded, ResourceExhausted, SynergyError, Unavailable
from synergy.hardware.model import TensorSpec


class FakeClients:
    """Records calls; fails (or hangs on) the named method of the named agent."""

    def __init__(
        self, failures: dict[str, dict[str, SynergyError]] | None = None, hang: set[tuple[str, str]] | None = None
    ) -> None:
        self.log: list[tuple[str, str, int]] = []
        self.failures = failures or {}
        self.hang = hang or set()
        self.deploy_timeouts: dict[str, float] = {}

    async def _call(self, address: str, method: str, epoch: int) -> None:
        self.log.append((address, method, epoch))
        if (address, method) in self.hang:
            await asyncio.sleep(3600)
        failure = self.failures.get(address, {}).get(method)
        if failure is not None:
            raise failure

    async def deploy(
        self, address: str, epoch: int, assignments: Sequence[SegmentAssignment], timeout_s: float
    ) -> None:
        self.deploy_timeouts[address] = timeout_s
        await self._call(address, "deploy", epoch)

    async def activate(self, address: str, epoch: int, timeout_s: float) -> None:
        await self._call(address, "activate", epoch)

    async def undeploy(self, address: str, epoch: int, timeout_s: float) -> int:
        await self._call(address, "undeploy", epoch)
        return 0


def deployments(*names: str) -> list[DeviceDeployment]:
    return [DeviceDeployment(n, n, ()) for n in names]


async def test_success_deploys_all_then_activates_then_retires_previous() -> None:
    clients = FakeClients()
    active: list[bool] = []
    await Deployer(clients).deploy(  # type: ignore[arg-type]
        2, deployments("a", "b"), 1, {"a": "a", "c": "c"}, on_active=lambda: active.append(True)
    )
    phases = [m for _, m, _ in clients.log]
    assert phases == ["deploy", "deploy", "activate", "activate", "undeploy", "undeploy"]
    assert {(n, e) for n, m, e in clients.log if m == "undeploy"} == {("a", 1), ("c", 1)}
    assert active == [True]


async def test_refused_deploy_undeploys_where_it_landed_and_keeps_previous() -> None:
    clients = FakeClients({"b": {"deploy": ResourceExhausted("deploy refused by b")}})
    with pytest.raises(DeployFailed, match="deploy to b failed: deploy refused by b") as info:
        await Deployer(clients).deploy(2, deployments("a", "b"), 1, {"a": "a"})  # type: ignore[arg-type]
    assert isinstance(info.value.failures["b"], ResourceExhausted)
    assert not info.value.timed_out
    assert ("a", "undeploy", 2) in clients.log
    assert not any(m == "activate" for _, m, _ in clients.log), "nothing may be activated"
    assert not any(e == 1 and m == "undeploy" for _, m, e in clients.log), "the previous epoch must stay"


async def test_every_failing_device_is_named() -> None:
    clients = FakeClients({"a": {"deploy": DeadlineExceeded("slow")}, "b": {"deploy": DeadlineExceeded("slow")}})
    with pytest.raises(DeployFailed) as info:
        await Deployer(clients).deploy(2, deployments("a", "b", "c"), 1, {})  # type: ignore[arg-type]
    assert set(info.value.failures) == {"a", "b"}
    assert info.value.timed_out


async def test_failed_activation_puts_the_previous_epoch_back() -> None:
    clients = FakeClients({"b": {"activate": Unavailable("gone")}})
    with pytest.raises(DeployFailed):
        await Deployer(clients).deploy(2, deployments("a", "b"), 1, {"a": "a", "b": "b"})  # type: ignore[arg-type]
    assert ("a", "activate", 1) in clients.log, "a had switched to epoch 2 and must go back to 1"
    assert {n for n, m, e in clients.log if m == "undeploy" and e == 2} == {"a", "b"}
    assert not any(e == 1 and m == "undeploy" for _, m, e in clients.log)


async def test_cancelled_deploy_still_rolls_back_within_a_bound() -> None:
    clients = FakeClients(hang={("b", "deploy")})
    task = asyncio.ensure_future(Deployer(clients).deploy(2, deployments("a", "b"), 1, {"a": "a"}))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert ("a", "undeploy", 2) in clients.log
    assert not any(m == "activate" for _, m, _ in clients.log)


def carrying(onnx_bytes: int, link_bytes_per_s: float, name: str = "watch") -> DeviceDeployment:
    x = TensorSpec("x", (1, 4), "int8")
    partition = PartitionPayload(0, 3, bytes(onnx_bytes), (x,), (x,), digest="d")
    return DeviceDeployment(name, name, (SegmentAssignment("app-1", 1, (x,), partition=partition),), link_bytes_per_s)


async def test_the_deploy_bound_allows_for_sending_the_partitions_over_the_device_link() -> None:
    # 3 MB over a 92 kB/s UART takes 33 s at best: a fixed 20 s bound failed it every time.
    slow = carrying(3_000_000, 92_160.0)
    assert deploy_timeout_s(slow) == pytest.approx(DEPLOY_TIMEOUT_S + 2 * 3_000_000 / 92_160)
    # Nothing to send (the agent holds the partition), or an unknown link: the loading bound alone.
    assert deploy_timeout_s(carrying(0, 92_160.0)) == DEPLOY_TIMEOUT_S
    assert deploy_timeout_s(carrying(3_000_000, 0.0)) == DEPLOY_TIMEOUT_S
    assert deploy_timeout_s(carrying(3_000_000, 30e6)) < DEPLOY_TIMEOUT_S + 1
    clients = FakeClients()
    await Deployer(clients).deploy(2, [slow, carrying(0, 92_160.0, "ring")], 1, {})  # type: ignore[arg-type]
    assert clients.deploy_timeouts == {"watch": deploy_timeout_s(slow), "ring": DEPLOY_TIMEOUT_S}
