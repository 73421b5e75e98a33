"""Large requests that are refused give their memory back (real daemons, their own RSS).

50-60 MB: refused by size or by decoding before any servicer runs, or well-formed and refused
by a servicer (junk ONNX in SubmitApp and Deploy). gRPC keeps the last abort's exception
alive until the next failure; the request must not be part of it.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import pytest

from synergy import limits
from synergy.cluster import LocalCluster
from synergy.v1 import agent_pb2, agent_pb2_grpc, apps_pb2, apps_pb2_grpc, common_pb2
from tests.integration.conftest import GLASSES
from tests.support import eventually

pytestmark = pytest.mark.integration

MB = 1024 * 1024
#: What the issue allows to stay after the storm.
SLACK_MB = 50.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


async def refused(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    code = info.value.code()
    assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION), info.value.details()
    return code


async def test_memory_returns_after_large_refused_requests(log_dir: Path) -> None:
    async with LocalCluster((GLASSES,), log_dir=log_dir) as cluster:
        await cluster.wait_for_devices(1)
        assert cluster.coordinator is not None
        daemons = {"coordinator": cluster.coordinator, "agent": cluster.agents["glasses"]}
        options = [("grpc.max_send_message_length", limits.MAX_RECEIVE_MESSAGE_BYTES)]
        async with (
            cluster.channel(cluster.address, options=options) as to_coordinator,
            # As the coordinator: only it may deploy to an agent.
            cluster.channel(
                daemons["agent"].address, role="coordinator", name="coordinator", options=options
            ) as to_agent,
        ):
            apps = apps_pb2_grpc.AppsServiceStub(to_coordinator)
            agent = agent_pb2_grpc.AgentServiceStub(to_agent)
            await apps.ListApps(apps_pb2.ListAppsRequest(), timeout=10)
            await asyncio.sleep(1.0)
            baseline = {name: rss_mb(d.process.pid) for name, d in daemons.items()}
            for i in range(3):
                size = (50 + 3 * i) * MB
                raw = to_coordinator.unary_unary(
                    "/synergy.v1.RegistryService/Register", request_serializer=None, response_deserializer=None
                )
                await refused(raw(b"\xff" * size, timeout=30))
                spec = common_pb2.AppSpec(source_type="camera", target_type="display", model="junk.onnx")
                await refused(apps.SubmitApp(apps_pb2.SubmitAppRequest(spec=spec, onnx=bytes(size)), timeout=60))
                deploy = agent_pb2.DeployRequest(
                    epoch=7,
                    assignments=[agent_pb2.Assignment(app_id="a", partition=agent_pb2.Partition(onnx=bytes(size)))],
                )
                await refused(agent.Deploy(deploy, timeout=60))
            # Still answering, and the memory comes back (trimmed shortly after a large call).
            await apps.ListApps(apps_pb2.ListAppsRequest(), timeout=10)

            def settled() -> dict[str, float] | None:
                now = {name: rss_mb(d.process.pid) for name, d in daemons.items()}
                return now if all(now[n] - baseline[n] < SLACK_MB for n in now) else None

            after = await eventually(settled, timeout_s=15, interval_s=0.5, what="RSS back within 50 MB of baseline")
            print(f"RSS before {baseline}, after {after}")
