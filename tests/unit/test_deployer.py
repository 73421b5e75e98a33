"""Deployment by epochs: all-or-nothing deploy, rollback on activation failure, retire last."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from coordinator.deployer import Deployer, DeployFailed, DeviceDeployment
from synergy.v1 import agent_pb2


class FakeRpcError(grpc.aio.AioRpcError):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


class FakeAgent:
    """Records calls; fails the named method with the given status."""

    def __init__(self, name: str, log: list[tuple[str, str, int]], fail: dict[str, grpc.StatusCode]) -> None:
        self.name, self.log, self.fail = name, log, fail

    def _call(self, method: str, epoch: int) -> Any:
        async def run() -> object:
            self.log.append((self.name, method, epoch))
            if method in self.fail:
                raise FakeRpcError(self.fail[method], f"{method} refused by {self.name}")
            return object()

        return run()

    def Deploy(self, request: agent_pb2.DeployRequest, timeout: float) -> Any:
        return self._call("deploy", request.epoch)

    def Activate(self, request: agent_pb2.ActivateRequest, timeout: float) -> Any:
        return self._call("activate", request.epoch)

    def Undeploy(self, request: agent_pb2.UndeployRequest, timeout: float) -> Any:
        return self._call("undeploy", request.epoch)


class FakeClients:
    def __init__(self, failures: dict[str, dict[str, grpc.StatusCode]]) -> None:
        self.log: list[tuple[str, str, int]] = []
        self.failures = failures

    def stub(self, address: str) -> FakeAgent:
        return FakeAgent(address, self.log, self.failures.get(address, {}))


def deployments(*names: str) -> list[DeviceDeployment]:
    return [DeviceDeployment(n, n, ()) for n in names]


async def test_success_deploys_all_then_activates_then_retires_previous() -> None:
    clients = FakeClients({})
    await Deployer(clients).deploy(2, deployments("a", "b"), 1, {"a": "a", "c": "c"})  # type: ignore[arg-type]
    phases = [m for _, m, _ in clients.log]
    assert phases == ["deploy", "deploy", "activate", "activate", "undeploy", "undeploy"]
    assert {(n, e) for n, m, e in clients.log if m == "undeploy"} == {("a", 1), ("c", 1)}


async def test_refused_deploy_undeploys_where_it_landed_and_keeps_previous() -> None:
    clients = FakeClients({"b": {"deploy": grpc.StatusCode.RESOURCE_EXHAUSTED}})
    with pytest.raises(DeployFailed, match="deploy to b failed: deploy refused by b") as info:
        await Deployer(clients).deploy(2, deployments("a", "b"), 1, {"a": "a"})  # type: ignore[arg-type]
    assert info.value.cause.grpc_code == "RESOURCE_EXHAUSTED"
    assert ("a", "undeploy", 2) in clients.log
    assert not any(m == "activate" for _, m, _ in clients.log), "nothing may be activated"
    assert not any(e == 1 and m == "undeploy" for _, m, e in clients.log), "the previous epoch must stay"


async def test_failed_activation_puts_the_previous_epoch_back() -> None:
    clients = FakeClients({"b": {"activate": grpc.StatusCode.UNAVAILABLE}})
    with pytest.raises(DeployFailed):
        await Deployer(clients).deploy(2, deployments("a", "b"), 1, {"a": "a", "b": "b"})  # type: ignore[arg-type]
    assert ("a", "activate", 1) in clients.log, "a had switched to epoch 2 and must go back to 1"
    assert {n for n, m, e in clients.log if m == "undeploy" and e == 2} == {"a", "b"}
    assert not any(e == 1 and m == "undeploy" for _, m, e in clients.log)
