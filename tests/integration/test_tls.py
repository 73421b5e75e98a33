"""A whole cluster on mutual TLS (a throwaway CA): split apps stay bit-exact; plain text, a
stranger's CA, an expired or a revoked certificate get nowhere, and nothing changes; and a
side-by-side measurement of what TLS costs on loopback (``-s`` shows the table)."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import numpy as np
import pytest
import pytest_asyncio

from synergy.cluster import LocalCluster
from synergy.errors import Unavailable
from synergy.hardware.model import TensorSpec
from synergy.reports import Result
from synergy.sdk import AppRequest, SynergyClient
from synergy.security.ca import CA_CERT, CERT, DENY_LIST, KEY, format_serial, init_ca, issue
from synergy.security.tls import TLS_DIR_ENV, TlsConfig
from synergy.types import AppState
from synergy.v1 import agent_pb2, agent_pb2_grpc
from synergy.wire.channels import open_channel
from tests.integration.conftest import GLASSES, THREE_DEVICES, WATCH, model_input, whole_model_output
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    log_dir = tmp_path_factory.mktemp("tls") / "logs"
    async with LocalCluster(
        THREE_DEVICES, log_dir=log_dir, coordinator_args=["--planner", "spread"], tls=True
    ) as running:
        await running.wait_for_devices(3)
        yield running


@pytest.fixture
def stranger(tmp_path: Path) -> Path:
    """Another CA, as a stranger would have: certificates of any role and name, none of ours."""
    directory = tmp_path / "stranger-ca"
    init_ca(directory)
    return directory


def pem_files(directory: Path) -> tuple[bytes, bytes, bytes]:
    return tuple((directory / name).read_bytes() for name in (CA_CERT, CERT, KEY))  # type: ignore[return-value]


async def agent_status(address: str, tls: TlsConfig | None, timeout_s: float = 5.0) -> agent_pb2.StatusResponse:
    async with open_channel(address, tls) as channel:
        return await agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest(), timeout=timeout_s)


async def refused_everywhere(cluster: LocalCluster, tls: TlsConfig | None) -> None:
    """The coordinator (through the SDK) and every agent (raw gRPC) refuse a client with ``tls``."""
    async with SynergyClient(cluster.address, tls=tls, timeout_s=5) as client:
        with pytest.raises(Unavailable):
            await client.list_devices()
        with pytest.raises(Unavailable):
            await client.submit_app(AppRequest("client", "convnet5", "display"))
    for agent in cluster.agents.values():
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await agent_status(agent.address, tls)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value.details()


async def nothing_changed(cluster: LocalCluster, apps_before: list[str]) -> None:
    async with cluster.client() as client:
        assert sorted(a.app_id for a in await client.list_apps()) == apps_before
        assert len(await client.list_devices()) == 3


async def app_ids(cluster: LocalCluster) -> list[str]:
    async with cluster.client() as client:
        return sorted(a.app_id for a in await client.list_apps())


# -- (a) correctness -----------------------------------------------------------------------------


async def test_split_model_equals_whole_model_over_tls(cluster: LocalCluster) -> None:
    """Client -> coordinator -> agent -> agent (-> agent) -> coordinator -> client, all mutual TLS."""
    async with cluster.client() as client:
        app = await client.submit_app(AppRequest("client", "simplenet", "display"))
        try:
            assert app.state is AppState.RUNNING, app.reason
            plan = (await client.get_plan()).plan_for(app.app_id)
            assert plan is not None and 2 <= len({s.device_id for s in plan.stages}) <= 3, plan
            for seed in (1, 2, 3):
                spec, array = model_input("simplenet", seed)
                result = await client.infer(app.app_id, {spec: array}, timeout_s=30)
                assert not result.dropped, result.drop_reason
                got = result.tensors[0].array()
                expected = whole_model_output("simplenet", array)
                assert got.shape == expected.shape
                assert np.array_equal(got.astype(np.float32), expected.astype(np.float32))
        finally:
            await client.remove_app(app.app_id)


async def test_daemons_say_they_run_on_tls(cluster: LocalCluster) -> None:
    assert cluster.coordinator is not None
    log = cluster.coordinator.log_path.read_text()
    assert '"tls": "coordinator:coordinator"' in log
    assert "plaintext_grpc" not in log
    for name, agent in cluster.agents.items():
        assert f'"tls": "agent:{name}"' in agent.log_path.read_text()


async def test_raw_coordinator_channel_reaches_agents(cluster: LocalCluster) -> None:
    for agent in cluster.agents.values():
        async with cluster.channel(agent.address, role="coordinator", name="coordinator") as channel:
            await agent_pb2_grpc.AgentServiceStub(channel).Status(agent_pb2.StatusRequest(), timeout=5)


# -- (b) plain text on one side ------------------------------------------------------------------


async def test_plain_text_client_is_refused_by_a_tls_cluster(cluster: LocalCluster) -> None:
    before = await app_ids(cluster)
    await refused_everywhere(cluster, None)
    await nothing_changed(cluster, before)


async def test_tls_client_is_refused_by_a_plain_text_coordinator(tmp_path: Path, stranger: Path) -> None:
    tls = TlsConfig.load(issue(stranger, role="client", name="alice", out_dir=tmp_path / "alice").directory)
    async with LocalCluster((), log_dir=tmp_path / "logs", tls=False) as plain:
        async with SynergyClient(plain.address, tls=tls, timeout_s=5) as client:
            with pytest.raises(Unavailable):
                await client.list_devices()
        async with plain.client() as client:  # and the plain-text one is served
            assert await client.list_devices() == []
        assert plain.coordinator is not None
        assert "plaintext_grpc" in plain.coordinator.log_path.read_text()


# -- (c) another CA ------------------------------------------------------------------------------


async def test_certificate_of_another_ca_is_refused(cluster: LocalCluster, stranger: Path, tmp_path: Path) -> None:
    before = await app_ids(cluster)
    for role, name in (("admin", "admin"), ("client", "tests"), ("coordinator", "coordinator")):
        forged = issue(stranger, role=role, name=name, out_dir=tmp_path / f"{role}-{name}").directory
        _, cert, key = pem_files(forged)
        # It trusts our CA (so our servers' certificates pass) and presents the stranger's.
        ours = (cluster.ca_dir / CA_CERT).read_bytes()
        await refused_everywhere(cluster, TlsConfig.from_pem(ours, cert, key))
        # And with the stranger's own CA as the root, our servers are not trusted either.
        await refused_everywhere(cluster, TlsConfig.from_pem(*pem_files(forged)))
    await nothing_changed(cluster, before)


# -- (d) expired, revoked ------------------------------------------------------------------------


async def test_expired_certificate_is_refused(cluster: LocalCluster, tmp_path: Path) -> None:
    before = await app_ids(cluster)
    now = dt.datetime.now(dt.UTC)
    expired = issue(
        cluster.ca_dir,
        role="admin",
        name="admin",
        out_dir=tmp_path / "expired",
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(minutes=1),
    ).directory
    await refused_everywhere(cluster, TlsConfig.from_pem(*pem_files(expired)))
    not_yet = issue(
        cluster.ca_dir,
        role="admin",
        name="admin",
        out_dir=tmp_path / "not-yet",
        not_before=now + dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=30),
    ).directory
    await refused_everywhere(cluster, TlsConfig.from_pem(*pem_files(not_yet)))
    await nothing_changed(cluster, before)


async def test_revoked_certificate_is_refused_without_a_restart(cluster: LocalCluster, tmp_path: Path) -> None:
    mallory = issue(cluster.ca_dir, role="client", name="mallory", out_dir=tmp_path / "mallory")
    tls = TlsConfig.load(mallory.directory)
    async with SynergyClient(cluster.address, tls=tls, timeout_s=5) as client:
        assert len(await client.list_devices()) == 3
        deny_list = cluster.tls_dir("coordinator", "coordinator") / DENY_LIST
        deny_list.write_text(f"{format_serial(mallory.serial)}  # mallory\n")
        try:

            async def refused() -> bool:
                try:
                    await client.list_devices()
                except Exception as exc:
                    return getattr(exc, "grpc_code", "") == "UNAUTHENTICATED"
                return False

            await eventually(refused, timeout_s=10, what="the coordinator to read the deny-list")
        finally:
            deny_list.unlink()
    assert cluster.coordinator is not None
    assert "tls_peer_refused" in cluster.coordinator.log_path.read_text()


# -- the command line ----------------------------------------------------------------------------


def synergy(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != TLS_DIR_ENV} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "synergy.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
        stdin=subprocess.DEVNULL,
    )


async def test_client_commands_take_a_tls_dir(cluster: LocalCluster, tmp_path: Path) -> None:
    tls_dir = str(cluster.tls_dir("client", "cli"))
    listed = await asyncio.to_thread(synergy, "devices", "--coordinator", cluster.address, "--tls-dir", tls_dir)
    assert listed.returncode == 0, listed.stderr
    assert "glasses" in listed.stdout and "plaintext_grpc" not in listed.stderr
    plain = await asyncio.to_thread(synergy, "devices", "--coordinator", cluster.address, "--insecure")
    # The connection fails (the client cannot tell a TLS server from one that is down): status 1, docs/cli.md.
    assert plain.returncode == 1 and "plaintext_grpc" in plain.stderr
    from_env = await asyncio.to_thread(
        synergy, "plan", "--coordinator", cluster.address, "--json", env={TLS_DIR_ENV: tls_dir}
    )
    assert from_env.returncode == 0, from_env.stderr
    missing = await asyncio.to_thread(synergy, "apps", "--coordinator", cluster.address, "--tls-dir", str(tmp_path))
    assert missing.returncode == 2
    assert "ca.pem" in missing.stderr and "synergy ca issue" in missing.stderr


@pytest.mark.parametrize(
    "command",
    [
        ("devices",),
        ("submit", "camera", "simplenet", "display"),
        ("coordinator", "--ephemeral", "--bind", "127.0.0.1:0"),
        ("agent", "--preset", "ring", "--coordinator", "127.0.0.1:9"),
    ],
)
async def test_no_tls_dir_and_no_insecure_is_refused(command: tuple[str, ...]) -> None:
    """TLS is the default: every daemon and client command refuses plain text it was not told to use."""
    refused = await asyncio.to_thread(synergy, *command)
    assert refused.returncode == 2, refused.stderr[-2000:]
    for needle in ("--tls-dir", TLS_DIR_ENV, "synergy ca init", "--insecure"):
        assert needle in refused.stderr, refused.stderr[-2000:]
    assert "listening" not in refused.stdout


async def test_a_daemon_refuses_a_certificate_of_another_identity(cluster: LocalCluster) -> None:
    """An agent started with the ring's certificate as another device is refused before it starts."""
    ring_dir = str(cluster.tls_dir("agent", "ring"))
    refused = await asyncio.to_thread(
        synergy, "agent", "--preset", "watch", "--coordinator", cluster.address, "--tls-dir", ring_dir
    )
    assert refused.returncode == 2, refused.stderr[-2000:]
    assert "names agent:ring, but this daemon is agent:watch" in refused.stderr
    as_coordinator = await asyncio.to_thread(synergy, "coordinator", "--ephemeral", "--tls-dir", ring_dir)
    assert as_coordinator.returncode == 2 and "this daemon is coordinator:NAME" in as_coordinator.stderr


# -- what TLS costs ------------------------------------------------------------------------------

#: One-frame round trips for the latency figure, and Infer calls for the throughput one.
LATENCY_ROUNDS = 200
THROUGHPUT_CALLS = 20
WARM_UP = 10
#: The large tensor: UNet's input is 48x88x88 int8, its output 4x352x352 int8 (UNet-sized).
LARGE_MODEL = "unet"
LARGE_INPUT_BYTES = 48 * 88 * 88


@dataclass
class Cost:
    """One mode's measurements; ``client`` talks to that mode's cluster."""

    mode: str
    client: SynergyClient
    rtt_ms: list[float] = field(default_factory=list)
    agents_ms: list[float] = field(default_factory=list)
    large_ms: list[float] = field(default_factory=list)
    large_bytes: int = 0


async def timed_infer(client: SynergyClient, app_id: str, spec: TensorSpec, array: np.ndarray) -> tuple[float, Result]:
    started = time.perf_counter()
    result = await client.infer(app_id, {spec: array}, timeout_s=30)
    elapsed = 1000 * (time.perf_counter() - started)
    assert not result.dropped, result.drop_reason
    return elapsed, result


async def run_interleaved(
    costs: list[Cost], model: str, rounds: int, record: Callable[[Cost, float, Result], None]
) -> None:
    """``rounds`` Infer calls of a client-fed ``model`` in each mode, alternating modes call by
    call (and which goes first), so drift of the machine hits both alike."""
    apps = {}
    for cost in costs:
        app = await cost.client.submit_app(AppRequest("client", model, "display"))
        assert app.state is AppState.RUNNING, app.reason
        apps[cost.mode] = app.app_id
    spec, array = model_input(model)
    for cost in costs:
        for _ in range(WARM_UP):
            await timed_infer(cost.client, apps[cost.mode], spec, array)
    for i in range(rounds):
        for cost in costs if i % 2 == 0 else reversed(costs):
            elapsed, result = await timed_infer(cost.client, apps[cost.mode], spec, array)
            record(cost, elapsed, result)
    for cost in costs:
        await cost.client.remove_app(apps[cost.mode])


def record_latency(cost: Cost, elapsed_ms: float, result: Result) -> None:
    cost.rtt_ms.append(elapsed_ms)
    cost.agents_ms.append(1000 * result.latency_s)


def record_throughput(cost: Cost, elapsed_ms: float, result: Result) -> None:
    cost.large_ms.append(elapsed_ms)
    cost.large_bytes += LARGE_INPUT_BYTES + result.nbytes


def cost_table(costs: list[Cost]) -> str:
    header = (
        f"{'mode':9s} {'infer p50':>10s} {'infer p90':>10s} {'agents p50':>11s} "
        f"{LARGE_MODEL + ' x' + str(THROUGHPUT_CALLS):>11s} {'per call':>9s} {'MB/s in+out':>12s}"
    )
    lines = [header]
    for cost in costs:
        total_s = sum(cost.large_ms) / 1000
        lines.append(
            f"{cost.mode:9s} {statistics.median(cost.rtt_ms):8.2f}ms "
            f"{statistics.quantiles(cost.rtt_ms, n=10)[-1]:8.2f}ms "
            f"{statistics.median(cost.agents_ms):9.2f}ms {total_s:10.3f}s "
            f"{statistics.median(cost.large_ms):7.2f}ms {cost.large_bytes / total_s / 1e6:12.1f}"
        )
    return "\n".join(lines)


async def test_what_tls_costs(tmp_path: Path) -> None:
    """TLS and plain text side by side in one run on loopback, measured call by call in turn
    (emulation timing off). Latency: two 2-agent clusters (planner 'spread') up at once, Infer
    round trips of convnet5 (a 784-byte frame: client -> coordinator -> agent -> agent ->
    coordinator -> client; 'agents' is inject-to-done on the agents, one agent-to-agent hop).
    Throughput: two 1-agent clusters, Infer calls of UNet (372 KB in to the agent through the
    coordinator, 496 KB out back through it: four TLS links per call). UNet is not split over
    agents: a split would send a 496 KB activation over a radio, more than a MAX78000 can hold
    in its SRAM, which the planner refuses.
    Prints a table (``-s``); asserts only that both ran."""
    spread = ["--planner", "spread"]
    async with (
        LocalCluster((GLASSES, WATCH), log_dir=tmp_path / "insecure", coordinator_args=spread, tls=False) as plain,
        LocalCluster((GLASSES, WATCH), log_dir=tmp_path / "tls", coordinator_args=spread, tls=True) as secure,
    ):
        await asyncio.gather(plain.wait_for_devices(2), secure.wait_for_devices(2))
        async with plain.client() as plain_client, secure.client() as secure_client:
            costs = [Cost("insecure", plain_client), Cost("tls", secure_client)]
            await run_interleaved(costs, "convnet5", LATENCY_ROUNDS, record_latency)
    async with (
        LocalCluster((GLASSES,), log_dir=tmp_path / "insecure-large", tls=False) as plain,
        LocalCluster((GLASSES,), log_dir=tmp_path / "tls-large", tls=True) as secure,
    ):
        await asyncio.gather(plain.wait_for_devices(1), secure.wait_for_devices(1))
        async with plain.client() as plain_client, secure.client() as secure_client:
            costs[0].client, costs[1].client = plain_client, secure_client
            await run_interleaved(costs, LARGE_MODEL, THROUGHPUT_CALLS, record_throughput)
    print(
        f"\nTLS vs plain text on loopback, {LATENCY_ROUNDS} + {THROUGHPUT_CALLS} Infer calls each:\n{cost_table(costs)}"
    )
    assert all(len(c.rtt_ms) == LATENCY_ROUNDS and len(c.large_ms) == THROUGHPUT_CALLS for c in costs)
