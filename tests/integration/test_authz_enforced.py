"""The servers enforce the authorization policy (docs/security.md, issue 8 item 3).

A real cluster on mutual TLS: a valid certificate of the wrong role or name is refused with
PERMISSION_DENIED before anything runs, and a running app is not disturbed by the attempt.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
import pytest_asyncio

from synergy.cluster import LocalCluster
from synergy.devices import preset_device
from synergy.sdk import AppRequest
from synergy.security.tls import TlsConfig
from synergy.types import AppInfo, AppState
from synergy.v1 import agent_pb2, agent_pb2_grpc, apps_pb2, apps_pb2_grpc, common_pb2, registry_pb2, registry_pb2_grpc
from synergy.wire.channels import open_channel
from synergy.wire.convert import device_to_proto
from tests.integration.conftest import GLASSES, RING, WATCH
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    log_dir = tmp_path_factory.mktemp("authz") / "logs"
    async with LocalCluster((GLASSES, WATCH, RING), log_dir=log_dir) as running:
        await running.wait_for_devices(3)
        yield running


def as_(cluster: LocalCluster, address: str, role: str, name: str) -> grpc.aio.Channel:
    """A channel to ``address`` presenting ``role:name``, issued by the cluster's CA."""
    return open_channel(address, TlsConfig.load(cluster.tls_dir(role, name)))


async def denied(call: object, *needles: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED, info.value.details()
    details = info.value.details() or ""
    for needle in needles:
        assert needle in details, details
    return details


def register_request(device_id: str) -> registry_pb2.RegisterRequest:
    device = device_to_proto(preset_device("watch", device_id))
    device.address = "127.0.0.1:1"
    return registry_pb2.RegisterRequest(device=device)


async def device_ids(cluster: LocalCluster) -> dict[str, str]:
    async with cluster.client() as client:
        return {d.spec.device_id: d.spec.address for d in await client.list_devices()}


async def test_a_client_cannot_register_a_device(cluster: LocalCluster) -> None:
    before = await device_ids(cluster)
    async with as_(cluster, cluster.address, "client", "mallory") as channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await denied(registry.Register(register_request("fake"), timeout=5), "client:mallory", "only an agent")
        await denied(registry.Register(register_request("watch"), timeout=5), "client:mallory")
    assert await device_ids(cluster) == before


async def test_an_agent_registers_only_its_own_device(cluster: LocalCluster) -> None:
    before = await device_ids(cluster)
    async with as_(cluster, cluster.address, "agent", "ring") as channel:
        registry = registry_pb2_grpc.RegistryServiceStub(channel)
        await denied(
            registry.Register(register_request("watch"), timeout=5),
            "agent:ring may not register device watch",
            "only the device its certificate names",
        )
        await denied(
            registry.Heartbeat(registry_pb2.HeartbeatRequest(device_id="watch", lease_id="x"), timeout=5),
            "agent:ring",
        )
        await denied(
            registry.Deregister(registry_pb2.DeregisterRequest(device_id="watch", lease_id="x"), timeout=5),
            "agent:ring",
        )
    assert await device_ids(cluster) == before


async def test_a_client_cannot_control_an_agent_and_the_app_keeps_running(cluster: LocalCluster) -> None:
    async with cluster.client() as client:
        app = await client.submit_app(AppRequest("camera", "simplenet", "display", max_rate_hz=10))
        try:
            assert app.state is AppState.RUNNING, app.reason
            plan = await client.get_plan()
            stages = plan.plan_for(app.app_id)
            assert stages is not None
            devices = sorted({s.device_id for s in stages.stages})

            async def delivered() -> int:
                info: AppInfo = next(a for a in await client.list_apps() if a.app_id == app.app_id)
                return info.stats.frames_delivered

            first = await eventually(delivered, timeout_s=60, interval_s=0.2, what="the app delivering")
            for device in devices:
                async with as_(cluster, cluster.agents[device].address, "client", "mallory") as channel:
                    agent = agent_pb2_grpc.AgentServiceStub(channel)
                    await denied(
                        agent.Undeploy(agent_pb2.UndeployRequest(epoch=plan.epoch), timeout=5),
                        "client:mallory may not call AgentService/Undeploy",
                    )
                    await denied(agent.Deploy(agent_pb2.DeployRequest(epoch=plan.epoch + 100), timeout=5))
                    await denied(agent.Activate(agent_pb2.ActivateRequest(epoch=plan.epoch + 100), timeout=5))
                    await denied(agent.Status(agent_pb2.StatusRequest(), timeout=5))
                # Not an admin either: only the coordinator controls agents.
                async with as_(cluster, cluster.agents[device].address, "admin", "root") as channel:
                    await denied(
                        agent_pb2_grpc.AgentServiceStub(channel).Undeploy(
                            agent_pb2.UndeployRequest(epoch=plan.epoch), timeout=5
                        )
                    )

            async def more() -> int:
                now = await delivered()
                return now if now > first else 0

            await eventually(more, timeout_s=30, interval_s=0.2, what="the app still delivering")
            assert (await client.get_plan()).epoch == plan.epoch
            info = next(a for a in await client.list_apps() if a.app_id == app.app_id)
            assert info.state is AppState.RUNNING, info.reason
        finally:
            await client.remove_app(app.app_id)


async def test_an_agent_cannot_use_the_apps_service(cluster: LocalCluster) -> None:
    async with as_(cluster, cluster.address, "agent", "watch") as channel:
        apps = apps_pb2_grpc.AppsServiceStub(channel)
        spec = common_pb2.AppSpec(source_type="camera", target_type="display")
        await denied(
            apps.SubmitApp(apps_pb2.SubmitAppRequest(spec=spec, zoo_name="simplenet"), timeout=5),
            "agent:watch",
            "client or an admin",
        )
        await denied(apps.ListApps(apps_pb2.ListAppsRequest(), timeout=5), "agent:watch")
    async with cluster.client() as client:
        assert await client.list_apps() == []


async def test_the_coordinator_identity_may_ask_an_agent_its_status(cluster: LocalCluster) -> None:
    for name, agent in cluster.agents.items():
        async with as_(cluster, agent.address, "coordinator", "coordinator") as channel:
            status = await agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest(), timeout=5)
        assert status.device_id == name


async def test_refusals_are_logged(cluster: LocalCluster) -> None:
    assert cluster.coordinator is not None
    assert "security_refusal" in cluster.coordinator.log_path.read_text()
