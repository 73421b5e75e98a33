"""A real coordinator and real agents as processes: results, split correctness, failover."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from synergy.cluster import AgentProcessSpec, LocalCluster
from synergy.hardware.model import TensorSpec
from synergy.reports import CoordinatorStats, Result
from synergy.sdk import AppRequest, SynergyClient
from synergy.types import AppState, DeviceInfo, DeviceState, JointPlan
from synergy.v1 import agent_pb2, agent_pb2_grpc
from tests.integration.conftest import EARBUD, GLASSES, RING, THREE_DEVICES, WATCH, model_input, whole_model_output
from tests.support import eventually

pytestmark = pytest.mark.integration


async def collect(
    client: SynergyClient, app_ids: list[str], per_app: int, timeout_s: float, min_epoch: int = 0
) -> dict[str, list[Result]]:
    """Results of ``app_ids`` until each has ``per_app`` delivered ones of epoch >= ``min_epoch``."""
    got: dict[str, list[Result]] = {a: [] for a in app_ids}

    def enough(results: list[Result]) -> bool:
        return len([r for r in results if not r.dropped and r.epoch >= min_epoch]) >= per_app

    async def watch() -> None:
        async for result in client.watch_results(app_ids):
            got[result.app_id].append(result)
            if all(enough(v) for v in got.values()):
                return

    await asyncio.wait_for(watch(), timeout_s)
    return got


async def test_results_reach_a_watching_client(log_dir: Path) -> None:
    async with LocalCluster((EARBUD, GLASSES, WATCH, RING), log_dir=log_dir) as cluster:
        await cluster.wait_for_devices(4)
        async with cluster.client() as client:
            apps = [
                await client.submit_app(AppRequest("microphone", "kws20_v3", "haptics")),
                await client.submit_app(AppRequest("camera", "convnet5", "display")),
                await client.submit_app(AppRequest("camera", "simplenet", "display", max_rate_hz=5)),
            ]
            assert all(a.state is AppState.RUNNING for a in apps), [a.reason for a in apps]
            results = await collect(client, [a.app_id for a in apps], per_app=3, timeout_s=60)
            for app in apps:
                delivered = [r for r in results[app.app_id] if not r.dropped]
                assert len(delivered) >= 3
                assert all(r.summary.startswith("class ") for r in delivered)
                assert len({r.seq for r in delivered}) == len(delivered), "a frame was delivered twice"
            listed = {a.app_id: a for a in await client.list_apps()}
            assert all(listed[a.app_id].stats.frames_delivered >= 3 for a in apps)


@pytest.mark.parametrize("model", ["convnet5", "kws20_v3", "simplenet"])
async def test_split_model_equals_whole_model(model: str, log_dir: Path) -> None:
    """Split over 2-3 agents (planner 'spread'), the result equals one onnxruntime session's."""
    async with LocalCluster(THREE_DEVICES, log_dir=log_dir, coordinator_args=["--planner", "spread"]) as cluster:
        await cluster.wait_for_devices(3)
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("client", model, "display"))
            assert app.state is AppState.RUNNING, app.reason
            plan = (await client.get_plan()).plan_for(app.app_id)
            assert plan is not None and 2 <= len({s.device_id for s in plan.stages}) <= 3, plan
            for seed in (1, 2, 3):
                spec, array = model_input(model, seed)
                result = await client.infer(app.app_id, {spec: array}, timeout_s=30)
                assert not result.dropped, result.drop_reason
                got = result.tensors[0].array()
                expected = whole_model_output(model, array)
                assert got.shape == expected.shape
                assert np.array_equal(got.astype(np.float32), expected.astype(np.float32))


async def test_coordinator_carries_no_activations(log_dir: Path) -> None:
    async with LocalCluster(THREE_DEVICES, log_dir=log_dir, coordinator_args=["--planner", "spread"]) as cluster:
        await cluster.wait_for_devices(3)
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("camera", "simplenet", "display", max_rate_hz=20))
            plan = (await client.get_plan()).plan_for(app.app_id)
            assert plan is not None and len(plan.stages) >= 2
            results = await collect(client, [app.app_id], per_app=10, timeout_s=60)
            delivered = [r for r in results[app.app_id] if not r.dropped]
            await client.remove_app(app.app_id)

            async def settled() -> tuple[CoordinatorStats, list[DeviceInfo]] | None:
                # Heartbeats carry the final telemetry: wait until both sides count the same bytes.
                stats, devices = await client.stats(), await client.list_devices()
                to_coordinator = sum(d.telemetry.bytes_to_coordinator for d in devices)
                return (stats, devices) if stats.result_bytes_received == to_coordinator else None

            stats, devices = await eventually(settled, timeout_s=10, what="the final telemetry of both sides")
    peer_bytes = sum(d.telemetry.bytes_to_peers for d in devices)
    to_coordinator = sum(d.telemetry.bytes_to_coordinator for d in devices)
    result_bytes = sum(len(t.data) for t in delivered[0].tensors)
    # Activations went agent to agent; the coordinator only got final results (100 logits each).
    assert stats.activation_bytes_relayed == 0
    assert peer_bytes >= len(delivered) * 1024, "activations should have crossed agent-to-agent"
    assert stats.result_bytes_received == to_coordinator, "both sides must count the same result bytes"
    assert stats.result_bytes_received % result_bytes == 0
    assert stats.result_bytes_received < peer_bytes / 10


async def test_killed_agent_leads_to_a_new_plan_and_results_flow_again(log_dir: Path) -> None:
    async with LocalCluster(
        (GLASSES, WATCH, RING), log_dir=log_dir, coordinator_args=["--planner", "spread", "--lease-ttl", "2"]
    ) as cluster:
        await cluster.wait_for_devices(3)
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("camera", "convnet5", "display", max_rate_hz=10))
            before = await client.get_plan()
            plan = before.plan_for(app.app_id)
            assert plan is not None
            victim = next(s.device_id for s in plan.stages if s.device_id not in ("glasses",))
            await collect(client, [app.app_id], per_app=3, timeout_s=60)
            await cluster.kill_agent(victim)

            async def replanned() -> JointPlan | None:
                after = await client.get_plan()
                new = after.plan_for(app.app_id)
                return after if after.epoch > before.epoch and new is not None and victim not in new.devices else None

            after = await eventually(replanned, timeout_s=30, interval_s=0.2, what="a re-plan after the lease expired")
            devices = {d.spec.device_id: d.state for d in await client.list_devices()}
            assert devices[victim] is DeviceState.OFFLINE
            results = await collect(client, [app.app_id], per_app=3, timeout_s=60, min_epoch=after.epoch)
            fresh = [r for r in results[app.app_id] if not r.dropped and r.epoch >= after.epoch]
            assert len(fresh) >= 3, "results did not flow again on the new plan"


async def loaded_epochs(cluster: LocalCluster) -> dict[str, list[int]]:
    out = {}
    for name, agent in cluster.agents.items():
        async with cluster.channel(agent.address, role="coordinator", name="coordinator") as channel:
            status = await agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest())
        out[name] = list(status.loaded_epochs)
    return out


async def test_agents_carry_on_across_a_coordinator_restart(log_dir: Path) -> None:
    async with LocalCluster(THREE_DEVICES, log_dir=log_dir) as cluster:
        await cluster.wait_for_devices(3)
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("camera", "simplenet", "display", max_rate_hz=10))
            epoch = (await client.get_plan()).epoch
        held = await loaded_epochs(cluster)
        await cluster.restart_coordinator()
        await cluster.wait_for_devices(3, timeout_s=30)
        async with cluster.client() as client:
            # The app came back from the state dir, nothing was redeployed, results flow.
            assert [a.app_id for a in await client.list_apps()] == [app.app_id]
            assert (await client.get_plan()).epoch == epoch
            await collect(client, [app.app_id], per_app=3, timeout_s=60, min_epoch=epoch)
        assert await loaded_epochs(cluster) == held


async def test_an_ephemeral_coordinator_has_agents_drop_what_it_forgot(log_dir: Path) -> None:
    async with LocalCluster(THREE_DEVICES, log_dir=log_dir, coordinator_args=["--ephemeral"]) as cluster:
        await cluster.wait_for_devices(3)
        async with cluster.client() as client:
            await client.submit_app(AppRequest("camera", "simplenet", "display", max_rate_hz=10))
        await cluster.restart_coordinator()
        # Agents register again (their leases are unknown), reporting what they hold; the new
        # coordinator knows no app, so it has them undeploy it.
        await cluster.wait_for_devices(3, timeout_s=30)

        async def nothing_held() -> bool:
            return all(epochs == [] for epochs in (await loaded_epochs(cluster)).values())

        await eventually(nothing_held, timeout_s=20, what="agents dropping the forgotten epoch")
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("camera", "convnet5", "display", max_rate_hz=10))
            assert app.state is AppState.RUNNING, app.reason
            assert (await client.get_plan()).epoch > 1, "an epoch the agents held must not be reused"
            await collect(client, [app.app_id], per_app=3, timeout_s=60)


async def test_a_new_epoch_moves_only_what_changed(log_dir: Path) -> None:
    # No calibration: a re-plan triggered by measured times would add an epoch of its own.
    coordinator_args = ["--planner", "spread", "--no-calibration"]
    async with LocalCluster(THREE_DEVICES, log_dir=log_dir, coordinator_args=coordinator_args) as cluster:
        await cluster.wait_for_devices(3)
        async with cluster.client() as client:
            first = await client.submit_app(AppRequest("camera", "simplenet", "display", max_rate_hz=5))
            before = await client.stats()
            plan = (await client.get_plan()).plan_for(first.app_id)
            assert plan is not None
            await client.submit_app(AppRequest("camera", "convnet5", "display", max_rate_hz=5))
            after = await client.stats()
            again = (await client.get_plan()).plan_for(first.app_id)
    assert again == plan, "the first app's placement did not need to change"
    assert after.epoch == before.epoch + 1
    # The first app's partitions stayed loaded on their agents: no bytes travelled for them.
    assert after.partitions_reused - before.partitions_reused == len(plan.stages)
    assert after.partitions_sent > before.partitions_sent


async def test_a_pytorch_style_onnx_file_runs_split_and_exact(log_dir: Path, tmp_path: Path) -> None:
    """Bring your own model: a float (non-quantised) export, uploaded as a file, split over agents."""
    import onnxruntime as ort

    from synergy.models.importer import normalize_model
    from tests.unit.test_byo_models import lenet

    path = tmp_path / "lenet.onnx"
    onnx_model = lenet()
    path.write_bytes(onnx_model.SerializeToString())
    reference = ort.InferenceSession(normalize_model(onnx_model).SerializeToString())
    async with LocalCluster(THREE_DEVICES, log_dir=log_dir, coordinator_args=["--planner", "spread"]) as cluster:
        await cluster.wait_for_devices(3)
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("client", str(path), "display"))
            assert app.state is AppState.RUNNING, app.reason
            assert app.spec.model == "lenet"
            plan = (await client.get_plan()).plan_for(app.app_id)
            assert plan is not None and len(plan.stages) >= 2
            spec = TensorSpec(reference.get_inputs()[0].name, tuple(reference.get_inputs()[0].shape), "int8")
            array = np.random.default_rng(5).integers(-64, 64, size=spec.shape).astype(np.int8)
            result = await client.infer(app.app_id, {spec: array}, timeout_s=30)
    assert not result.dropped, result.drop_reason
    got = result.tensors[0].array()
    expected = reference.run(None, {spec.name: array.astype(np.float32)})[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


async def test_a_board_slower_than_modelled_is_calibrated(log_dir: Path) -> None:
    """Online estimation: the ring takes 20x its modelled time; the coordinator measures it."""
    slow_ring = AgentProcessSpec("ring", ("--preset", "ring", "--no-link-shaping", "--slowdown", "20"))
    glasses = AgentProcessSpec("glasses", ("--preset", "glasses", "--no-link-shaping"))
    watch = AgentProcessSpec("watch", ("--preset", "watch", "--no-link-shaping"))
    async with LocalCluster(
        (glasses, watch, slow_ring), log_dir=log_dir, coordinator_args=["--planner", "spread"]
    ) as cluster:
        await cluster.wait_for_devices(3)
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("camera", "simplenet", "display"))
            plan = (await client.get_plan()).plan_for(app.app_id)
            assert plan is not None and "ring" in {s.device_id for s in plan.stages}

            async def recalibrated() -> CoordinatorStats | None:
                stats = await client.stats()
                return stats if stats.recalibrations and "ring" in stats.calibration else None

            stats = await eventually(recalibrated, timeout_s=40, interval_s=0.5, what="a recalibration of the ring")
    assert 10 <= stats.calibration["ring"] <= 40, dict(stats.calibration)
