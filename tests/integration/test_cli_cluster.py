"""The `synergy` client commands against a real cluster, each run as a user types it (a process).

Covers issue 13's CLI friction points that need daemons: an agent's address given as the
coordinator, apps by name (and refused submits consuming no id), numbers in JSON, frame numbers
and class names in results, one plan schema online and offline, `synergy infer`, Ctrl-C on
`synergy results`, `synergy devices --remove`, an agent whose device id is taken, and agents
that do not log every frame. Exit statuses and the error style: docs/cli.md.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import pytest_asyncio

from synergy.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from synergy.cluster import CLIENT_NAME, LocalCluster, stop_daemon
from synergy.documents import PLAN_APP_KEYS, PLAN_KEYS
from synergy.sdk import AppRequest
from synergy.security.tls import TLS_DIR_ENV
from synergy.types import DeviceState
from tests.integration.conftest import FAST, GLASSES, RING, WATCH
from tests.support import eventually, run_process, sigint_as_in_a_terminal

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"
#: A result line of `synergy results` for convnet5 (MNIST: the class name is the digit).
RESULT_LINE = re.compile(r'^app-\d+ \(digits\) frame (\d+) epoch \d+ -> display@\w+: class (\d) "(\d)" \(score -?\d+\)')


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    log_dir = tmp_path_factory.mktemp("cli") / "logs"
    async with LocalCluster((GLASSES, WATCH), log_dir=log_dir, tls=True) as running:
        await running.wait_for_devices(2)
        yield running


def _environment() -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if k not in (TLS_DIR_ENV, "SYNERGY_COORDINATOR")},
        "SYNERGY_LOG_FORMAT": "json",
    }


async def synergy(*args: str, timeout_s: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``synergy ARGS`` in a process of its own, as a user runs it."""
    return await run_process(sys.executable, "-m", "synergy.cli.main", *args, env=_environment(), timeout_s=timeout_s)


async def client_cli(
    cluster: LocalCluster, *args: str, role: str = "client", name: str = "cli"
) -> subprocess.CompletedProcess[str]:
    """A client command against the cluster, as ``role:name``."""
    tls_dir = str(cluster.tls_dir(role, name))
    return await synergy(*args, "--coordinator", cluster.address, "--tls-dir", tls_dir)


def error_line(done: subprocess.CompletedProcess[str], command: str) -> str:
    """The one line a failed command says (JSON log lines aside), checked for the house style."""
    lines = [line for line in done.stderr.splitlines() if not line.startswith("{")]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith(f"synergy {command}: "), done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return lines[0]


async def app_ids(cluster: LocalCluster) -> list[str]:
    async with cluster.client() as client:
        return [a.app_id for a in await client.list_apps()]


# -- addresses -------------------------------------------------------------------------------


async def test_an_agents_address_is_not_a_coordinator(cluster: LocalCluster) -> None:
    agent = cluster.agents["glasses"].address
    done = await synergy("apps", "--coordinator", agent, "--tls-dir", str(cluster.tls_dir("client", "cli")))
    assert done.returncode == EXIT_FAILED
    assert f"{agent} is an agent, not a coordinator" in error_line(done, "apps")


# -- apps by name, ids, JSON, results ------------------------------------------------------------


def _number(app_id: str) -> int:
    return int(app_id.rsplit("-", 1)[1])


async def test_apps_by_name_json_numbers_and_readable_results(cluster: LocalCluster) -> None:
    first = await client_cli(cluster, "submit", "client", "convnet5", "display", "--json")
    assert first.returncode == EXIT_OK, first.stderr[-2000:]
    previous = json.loads(first.stdout)["app_id"]
    assert (await client_cli(cluster, "remove", previous)).returncode == EXIT_OK
    refused = await client_cli(cluster, "submit", "microphone", "convnet5", "display", "--name", "nope")
    assert refused.returncode == EXIT_USAGE and "microphone" in error_line(refused, "submit")
    done = await client_cli(cluster, "submit", "camera", "convnet5", "display", "--name", "digits", "--json")
    assert done.returncode == EXIT_OK, done.stderr[-2000:]
    submitted = json.loads(done.stdout)
    assert _number(submitted["app_id"]) == _number(previous) + 1, "a refused submit consumed an app id"
    app_id = submitted["app_id"]
    try:
        assert submitted["spec"]["name"] == "digits" and submitted["state"] in ("running", "waiting")

        results = await client_cli(cluster, "results", "digits", "--count", "5")
        assert results.returncode == EXIT_OK, results.stderr[-2000:]
        lines = results.stdout.splitlines()
        assert len(lines) == 5 and all(RESULT_LINE.match(line) or "DROPPED" in line for line in lines), lines
        match = next(m for m in map(RESULT_LINE.match, lines) if m is not None)
        assert match.group(2) == match.group(3)  # MNIST's class N is called "N"
        assert int(match.group(1)) < 1 << 32, "the frame number, not the raw sequence number"

        table = await client_cli(cluster, "apps")
        assert re.search(rf"^{app_id}\s+digits\s", table.stdout, re.MULTILINE), table.stdout
        listed = json.loads((await client_cli(cluster, "apps", "--json")).stdout)
        mine = next(a for a in listed if a["app_id"] == app_id)
        assert isinstance(mine["stats"]["frames_delivered"], int) and mine["stats"]["frames_delivered"] >= 3
        watched = json.loads((await client_cli(cluster, "results", "digits", "--count", "1", "--json")).stdout)
        assert isinstance(watched["seq"], int) and watched["frame"] == watched["seq"] & 0xFFFFFFFF
        assert watched["dropped"] or watched["label"] == watched["summary"].split()[1]

        twin = await client_cli(cluster, "submit", "camera", "convnet5", "display", "--name", "digits", "--json")
        twin_id = json.loads(twin.stdout)["app_id"]
        ambiguous = await client_cli(cluster, "remove", "digits")
        assert ambiguous.returncode == EXIT_USAGE
        assert f"apps {app_id}, {twin_id}" in error_line(ambiguous, "remove")
        assert (await client_cli(cluster, "remove", twin_id)).returncode == EXIT_OK
        removed = await client_cli(cluster, "remove", "digits")
        assert (removed.returncode, removed.stdout.strip()) == (EXIT_OK, f"removed {app_id}")
    finally:
        async with cluster.client() as client:
            for app in await client.list_apps():
                await client.remove_app(app.app_id)


async def test_agents_do_not_log_every_frame(cluster: LocalCluster) -> None:
    log_path = cluster.agents["glasses"].log_path
    lines_before = len(log_path.read_text().splitlines())
    async with cluster.client() as client:
        app = await client.submit_app(AppRequest("camera", "convnet5", "display", max_rate_hz=15))
        try:
            seen = 0
            async for result in client.watch_results([app.app_id]):
                seen += not result.dropped
                if seen >= 30:
                    break
        finally:
            await client.remove_app(app.app_id)
    log = log_path.read_text().splitlines()
    events = [json.loads(line).get("event") for line in log if line.startswith("{")]
    assert "output" not in events, "a line per delivered frame at info level"
    written = len(log) - lines_before  # deploying, activating and retiring the epoch, not frames
    assert written < seen, f"{written} log lines while {seen} frames were delivered"


async def test_ctrl_c_on_results(cluster: LocalCluster) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "synergy.cli.main",
        "results",
        "--coordinator",
        cluster.address,
        "--tls-dir",
        str(cluster.tls_dir("client", CLIENT_NAME)),  # the submitter: a client watches its own apps
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_environment(),
        preexec_fn=sigint_as_in_a_terminal,
    )
    try:
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("camera", "convnet5", "display", max_rate_hz=10))
            try:
                assert child.stdout is not None
                first = await asyncio.wait_for(child.stdout.readline(), 60)
                assert first.startswith(app.app_id.encode()), first
                child.send_signal(signal.SIGINT)
                _, err = await asyncio.wait_for(child.communicate(), 30)
            finally:
                await client.remove_app(app.app_id)
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert child.returncode == EXIT_INTERRUPTED, err[-2000:]
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err


# -- plan --------------------------------------------------------------------------------------


async def test_plan_json_online_and_offline_share_one_schema(cluster: LocalCluster) -> None:
    async with cluster.client() as client:
        app = await client.submit_app(AppRequest("camera", "convnet5", "display", name="digits"))
        try:
            live = await client_cli(cluster, "plan", "--json")
        finally:
            await client.remove_app(app.app_id)
    assert live.returncode == EXIT_OK, live.stderr[-2000:]
    offline = await synergy(
        "plan", "--space", str(EXAMPLES / "space-body.yaml"), "--apps", str(EXAMPLES / "apps-body.yaml"), "--json"
    )
    online, planned = json.loads(live.stdout), json.loads(offline.stdout)
    assert set(online) == set(planned) == set(PLAN_KEYS)
    assert online["apps"] and set(online["apps"][0]) == set(planned["apps"][0]) == set(PLAN_APP_KEYS)
    assert online["apps"][0]["name"] == "digits" and isinstance(online["epoch"], int)
    method = await client_cli(cluster, "plan", "--method", "exact")
    assert method.returncode == EXIT_USAGE
    assert "--method applies to offline planning" in error_line(method, "plan")


# -- infer -------------------------------------------------------------------------------------


async def test_infer_from_a_npy_file(cluster: LocalCluster, tmp_path: Path) -> None:
    good, wrong = tmp_path / "digit.npy", tmp_path / "wrong.npy"
    np.save(good, np.random.default_rng(3).integers(-64, 64, size=(1, 28, 28)).astype(np.int8))
    np.save(wrong, np.zeros((3, 32, 32), np.float32))
    submitted = await client_cli(cluster, "submit", "client", "convnet5", "display", "--name", "reader", "--json")
    assert submitted.returncode == EXIT_OK, submitted.stderr[-2000:]
    app_id = json.loads(submitted.stdout)["app_id"]
    try:
        done = await client_cli(cluster, "infer", "reader", str(good), "--timeout", "30")
        assert done.returncode == EXIT_OK, done.stderr[-2000:]
        assert re.match(rf'^{app_id} \(reader\) frame \d+ epoch \d+ -> display@\w+: class (\d) "\1"', done.stdout)
        refused = await client_cli(cluster, "infer", "reader", str(wrong))
        assert refused.returncode == EXIT_USAGE
        assert "int8[1, 1, 28, 28]" in error_line(refused, "infer")
        missing = await client_cli(cluster, "infer", "reader", str(tmp_path / "nope.npy"))
        assert missing.returncode == EXIT_USAGE and "nope.npy" in error_line(missing, "infer")
    finally:
        await client_cli(cluster, "remove", app_id)


# -- devices -----------------------------------------------------------------------------------


async def test_an_agent_whose_device_id_is_taken_gives_up_suggesting_device_id(cluster: LocalCluster) -> None:
    started = time.monotonic()
    done = await synergy(
        "agent", "--preset", "glasses", *FAST,
        "--coordinator", cluster.address,
        "--tls-dir", str(cluster.tls_dir("agent", "glasses")),
        timeout_s=90,
    )  # fmt: skip
    assert done.returncode == EXIT_FAILED, done.stderr[-3000:]
    line = error_line(done, "agent")
    assert "glasses" in line and "--device-id" in line
    assert any(json.loads(log).get("event") == "device_id_taken" for log in done.stderr.splitlines() if log[:1] == "{")
    assert time.monotonic() - started < 60
    async with cluster.client() as client:  # the first glasses agent carries on
        devices = {d.spec.device_id: d.state for d in await client.list_devices()}
    assert devices["glasses"] is DeviceState.ONLINE


async def test_forget_an_offline_device(log_dir: Path) -> None:
    """On a cluster of its own: the coordinator is restarted to see that forgetting lasts."""
    async with LocalCluster((RING,), log_dir=log_dir, tls=True) as cluster:
        await cluster.wait_for_devices(1)
        online = await client_cli(cluster, "devices", "--remove", "ring", role="admin", name="admin")
        assert online.returncode == EXIT_FAILED and "is online" in error_line(online, "devices")
        await stop_daemon(cluster.agents["ring"])  # SIGTERM: the agent deregisters, offline at once

        async def offline() -> bool:
            async with cluster.client() as client:
                states = {d.spec.device_id: d.state for d in await client.list_devices()}
            return states.get("ring") is DeviceState.OFFLINE

        await eventually(offline, timeout_s=20, what="ring offline")
        as_client = await client_cli(cluster, "devices", "--remove", "ring")
        assert as_client.returncode == EXIT_FAILED and "only an admin" in error_line(as_client, "devices")
        done = await client_cli(cluster, "devices", "--remove", "ring", role="admin", name="admin")
        assert (done.returncode, done.stdout.strip()) == (EXIT_OK, "forgot device ring"), done.stderr[-2000:]
        again = await client_cli(cluster, "devices", "--remove", "ring", role="admin", name="admin")
        assert again.returncode == EXIT_USAGE and "unknown device id 'ring'" in error_line(again, "devices")
        await cluster.restart_coordinator()
        listed = await client_cli(cluster, "devices", "--json")
        assert listed.returncode == EXIT_OK and json.loads(listed.stdout) == [], listed.stdout
