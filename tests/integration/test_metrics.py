"""The metrics endpoints of a real cluster agree with what the coordinator says over gRPC.

A coordinator and three emulated agents as processes, each with ``--metrics-bind
127.0.0.1:0`` (the bound address is read from its ``metrics_listening`` log line), one app
split over the devices; the endpoints are scraped over HTTP and parsed with
prometheus_client's parser, and the figures compared with the SDK's (``synergy apps --json``
asks the same calls): frames between two scrapes taken around the SDK's answer, the same
epoch, the same device states. Then: a daemon whose metrics port is taken exits 2 with one
line naming the flag.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import Mapping
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from synergy.cluster import LocalCluster, spawn_daemon
from synergy.errors import Unavailable
from synergy.sdk import AppRequest
from synergy.types import AppInfo, AppState, DeviceState
from synergy.v1 import agent_pb2, agent_pb2_grpc
from tests.integration.conftest import THREE_DEVICES
from tests.support import eventually

pytestmark = pytest.mark.integration

#: The flag every daemon of the cluster gets: any free port on loopback.
METRICS = ("--metrics-bind", "127.0.0.1:0")

#: (sample name, sorted label items) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def metrics_address(log_path: Path) -> str:
    """Where a daemon serves metrics, from its ``metrics_listening`` log line."""
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("event") == "metrics_listening":
            return str(event["address"])
    raise AssertionError(f"no metrics_listening line in {log_path}")


async def scrape(address: str) -> Samples:
    """GET /metrics over a plain socket (as Prometheus does), parsed by prometheus_client."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(f"GET /metrics HTTP/1.1\r\nHost: {address}\r\nAccept: text/plain\r\n\r\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 "), head
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"{name}{labels} not exposed; have {sorted(k for k in samples if k[0] == name)}"
    return samples[key]


def by_app(samples: Samples, name: str) -> Mapping[str, float]:
    return {dict(labels)["app"]: v for (n, labels), v in samples.items() if n == name}


async def test_scraped_figures_agree_with_the_coordinators(log_dir: Path) -> None:
    async with LocalCluster(
        THREE_DEVICES,
        log_dir=log_dir,
        # spread: a split over the devices, so activations cross agents; no calibration: the
        # epoch stays put while the test compares.
        coordinator_args=["--planner", "spread", "--no-calibration", *METRICS],
        agent_args=METRICS,
    ) as cluster:
        await cluster.wait_for_devices(3)
        assert cluster.coordinator is not None
        coordinator = metrics_address(cluster.coordinator.log_path)
        agents = {name: metrics_address(p.log_path) for name, p in cluster.agents.items()}
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("camera", "simplenet", "display", max_rate_hz=10))
            assert app.state is AppState.RUNNING, app.reason

            async def delivered() -> AppInfo | None:
                info = next(a for a in await client.list_apps() if a.app_id == app.app_id)
                return info if info.stats.frames_delivered >= 10 else None

            await eventually(delivered, timeout_s=20, interval_s=0.2, what="10 frames delivered")
            before = await scrape(coordinator)
            info = next(a for a in await client.list_apps() if a.app_id == app.app_id)
            devices = {d.spec.device_id: d for d in await client.list_devices()}
            plan = await client.get_plan()
            after = await scrape(coordinator)
            stages = plan.plan_for(app.app_id)
            assert stages is not None and len(stages.devices) >= 2, stages

            # Counters: what the SDK saw lies between the two scrapes around it.
            for name, seen in (
                ("synergy_app_frames_delivered_total", info.stats.frames_delivered),
                ("synergy_app_frames_dropped_total", info.stats.frames_dropped),
                ("synergy_app_frames_admitted_total", info.stats.frames_admitted),
                ("synergy_app_frames_skipped_total", info.stats.frames_skipped),
            ):
                low, high = value(before, name, app=app.app_id), value(after, name, app=app.app_id)
                assert low <= seen <= high, (name, low, seen, high)
            # Every delivery counted is in the latency histogram, in the same scrape.
            assert value(after, "synergy_app_latency_seconds_count", app=app.app_id) == value(
                after, "synergy_app_frames_delivered_total", app=app.app_id
            )
            assert value(after, "synergy_app_state", app=app.app_id, state="running") == 1
            assert value(after, "synergy_app_placed", app=app.app_id) == 1
            assert value(after, "synergy_app_planned_rate_frames_per_second", app=app.app_id) == pytest.approx(
                stages.predicted_rate_hz
            )
            # The same epoch, the same device states.
            assert value(before, "synergy_epoch") == plan.epoch == value(after, "synergy_epoch")
            for device_id, device in devices.items():
                online = float(device.state is DeviceState.ONLINE)
                assert value(after, "synergy_device_online", device=device_id) == online
                assert value(after, "synergy_device_lease_remaining_seconds", device=device_id) > 0
            # The planner's figures: rounds, their causes, its time, its predicted utilisation.
            assert value(after, "synergy_replan_rounds_total", outcome="deployed") >= 1
            assert value(after, "synergy_replan_causes_total", cause="app_submitted") == 1
            assert value(after, "synergy_replan_causes_total", cause="device_joined") >= 1
            assert value(after, "synergy_planning_duration_seconds_count") >= 1
            utilisation = "synergy_device_planned_utilisation_ratio"
            used = {dict(labels)["device"] for (n, labels), _ in after.items() if n == utilisation}
            assert set(stages.devices) <= used, used

            # The agents: the target's deliveries, the devices' own counters, the refusals.
            target = await scrape(agents[stages.target_device])
            spec = devices[stages.target_device].spec
            labels = {"device": spec.device_id, "board": spec.board.name, "link": spec.link.name}
            assert value(target, "synergy_agent_info", **labels, address=spec.address) == 1
            # The agent counts a delivery when it reports it: at least what the coordinator counted.
            at_target = value(target, "synergy_agent_frames_delivered_total", device=spec.device_id, app=app.app_id)
            assert at_target >= value(after, "synergy_app_frames_delivered_total", app=app.app_id)
            ran = 0.0
            for device_id in stages.devices:
                mine = await scrape(agents[device_id])
                heard = await scrape(coordinator)  # the agent's last heartbeat: never ahead of the agent
                ran += value(mine, "synergy_agent_partition_runs_total", device=device_id)
                assert value(mine, "synergy_agent_registered", device=device_id) == 1
                assert value(mine, "synergy_agent_active_epoch", device=device_id) == plan.epoch
                for agent_name, coordinator_name in (
                    ("synergy_agent_peer_bytes_sent_total", "synergy_device_peer_bytes_sent_total"),
                    ("synergy_agent_accelerator_busy_seconds_total", "synergy_device_accelerator_busy_seconds_total"),
                ):
                    assert value(heard, coordinator_name, device=device_id) <= value(mine, agent_name, device=device_id)
            assert ran >= value(after, "synergy_app_frames_delivered_total", app=app.app_id)
            source = await scrape(agents[stages.source_device])
            assert value(source, "synergy_agent_peer_bytes_sent_total", device=stages.source_device) > 0

        # A client may not control an agent: the refusal is counted on that agent.
        victim = cluster.agents[stages.source_device]
        async with cluster.channel(victim.address, role="client", name="tests") as channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest())
        assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
        counted = await scrape(agents[stages.source_device])
        refusals = {
            dict(labels)["rpc"]: v
            for (n, labels), v in counted.items()
            if n == "synergy_security_refusals_total" and dict(labels)["code"] == "PERMISSION_DENIED"
        }
        assert sum(refusals.values()) >= 1, refusals


@pytest.mark.parametrize("role", ["coordinator", "agent"])
async def test_a_taken_metrics_port_exits_2_with_one_line_naming_the_flag(tmp_path: Path, role: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        bind = f"127.0.0.1:{taken.getsockname()[1]}"
        args = {
            "coordinator": ["coordinator", "--ephemeral", "--bind", "127.0.0.1:0"],
            # Nothing listens at the coordinator address: the agent must stop before it matters.
            "agent": ["agent", "--preset", "ring", "--bind", "127.0.0.1:0", "--coordinator", "127.0.0.1:9"],
        }[role]
        with pytest.raises(Unavailable, match=r"exit 2") as failed:
            await spawn_daemon(role, [*args, "--insecure", "--metrics-bind", bind], tmp_path, env=dict(os.environ))
    log = (tmp_path / f"{role}.log").read_text()
    said = [line for line in log.splitlines() if line.startswith(f"synergy {role}:")]
    assert len(said) == 1 and f"--metrics-bind {bind}: address in use" in said[0], log
    assert "Traceback" not in log, log
    assert "exit 2" in str(failed.value)
