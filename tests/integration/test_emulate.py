"""`synergy emulate`'s network: devices in namespaces of their own, links shaped by the kernel,
results flowing through the bridge, and nothing left behind. Needs root (network namespaces)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from synergy.emulate import EmulateOptions, start, stop
from synergy.errors import InvalidArgument
from synergy.netns import NamespaceNetwork, bridged_traffic_filtered, forward_rule, tbf_arguments
from synergy.sdk import AppRequest
from synergy.types import LINK_PRESETS, AppState
from tests.support import eventually, netns_leftovers

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root (CI runs as root)"),
]

SPACE = """
devices:
  - {name: glasses, board: max78000, sensors: [{type: camera, rate_hz: 10}], outputs: [display], link: ble5_2m}
  - {name: watch, board: max78002, outputs: [display, haptics], link: usb_hs}
  - {name: ring, board: max78000, outputs: [haptics], link: uart_921600}
"""


def test_token_bucket_arguments_follow_the_link() -> None:
    assert tbf_arguments(1000.0)[:4] == ["tbf", "rate", "8000bit", "burst"]
    assert int(tbf_arguments(10e6)[4]) == 100_000 and int(tbf_arguments(1000.0)[4]) == 1600


async def qdisc(command: list[str]) -> str:
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, check=True)
    return done.stdout


async def test_devices_in_namespaces_with_shaped_links(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE, encoding="utf-8")
    before = netns_leftovers()
    client_dir = tmp_path / "client"
    options = EmulateOptions(space=space, log_dir=tmp_path / "logs", subnet="10.214.0.0/24", client_tls_dir=client_dir)
    emulation = await start(options, print)
    try:
        # The client identity is where the user asked, so `synergy` client commands can use it.
        assert emulation.client_tls_dir == client_dir.resolve()
        assert {p.name for p in client_dir.iterdir()} == {"ca.pem", "cert.pem", "key.pem"}
        hosts = emulation.network.hosts
        assert set(hosts) == {"coordinator", "glasses", "watch", "ring"}
        # The kernel shapes each device's link to its declared bandwidth, both ways.
        ring = hosts["ring"]
        inside = await qdisc(["ip", "netns", "exec", ring.namespace, "tc", "qdisc", "show", "dev", ring.inner])
        outside = await qdisc(["tc", "qdisc", "show", "dev", ring.outer])
        rate = f"rate {round(LINK_PRESETS['uart_921600'].bandwidth_bytes_per_s * 8)}bit"
        assert "tbf" in inside and rate in inside, inside
        assert "tbf" in outside and rate in outside, outside
        # Each agent listens on its own host's address, not on a shared loopback.
        async with emulation.client() as client:
            addresses = {d.spec.device_id: d.spec.address for d in await client.list_devices()}
            assert addresses == {name: f"{hosts[name].address}:7000" for name in ("glasses", "watch", "ring")}
            app = await client.submit_app(AppRequest("camera", "convnet5", "haptics", target_device="ring"))

            async def delivering() -> bool:
                info = next(a for a in await client.list_apps() if a.app_id == app.app_id)
                return info.state is AppState.RUNNING and info.stats.frames_delivered >= 3

            await eventually(delivering, timeout_s=90, interval_s=0.5, what="results through the namespaces")
    finally:
        problems = await stop(emulation)
    assert problems == []
    await asyncio.sleep(0)
    assert netns_leftovers() == before, "the emulation left namespaces or links behind"
    assert not client_dir.exists() and not emulation.pki.exists(), "the run's certificates outlived its CA"


async def test_a_client_tls_dir_holding_files_is_refused_before_anything_starts(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE, encoding="utf-8")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "cert.pem").write_text("someone's identity", encoding="utf-8")
    before = netns_leftovers()
    options = EmulateOptions(space=space, log_dir=tmp_path / "logs", client_tls_dir=tmp_path / "mine")
    with pytest.raises(InvalidArgument, match="new or empty directory"):
        await start(options, print)
    assert (tmp_path / "mine" / "cert.pem").read_text(encoding="utf-8") == "someone's identity"
    assert netns_leftovers() == before


def forward_rules() -> list[str]:
    if shutil.which("iptables") is None:
        return []
    listed = subprocess.run(["iptables", "-w", "10", "-S", "FORWARD"], capture_output=True, text=True, check=True)
    return listed.stdout.splitlines()


async def test_the_network_of_a_run_that_died_is_removed_by_the_next(tmp_path: Path) -> None:
    before, rules_before = netns_leftovers(), forward_rules()
    crashed = NamespaceNetwork("dead1", "10.215.0.0/24")
    await asyncio.to_thread(crashed.create)
    await asyncio.to_thread(crashed.add_host, "ring", 10_000.0)  # no process in it, no teardown: a crash
    assert len(netns_leftovers()) > len(before)
    fresh = NamespaceNetwork("live1", "10.216.0.0/24")
    try:
        await asyncio.to_thread(fresh.create)
        assert not [line for line in netns_leftovers() if "syndead1" in line], "the dead run's network is still there"
        assert not [rule for rule in forward_rules() if "syndead1" in rule], "the dead run's iptables rule stayed"
    finally:
        assert await asyncio.to_thread(fresh.teardown) == []
    assert netns_leftovers() == before
    assert forward_rules() == rules_before


LISTEN = """
import socket, sys
with socket.create_server((sys.argv[1], 7100)) as server:
    print("listening", flush=True)
    server.settimeout(20)
    connection, _ = server.accept()
    connection.sendall(b"hello")
    connection.close()
"""
CONNECT = """
import socket, sys
with socket.create_connection((sys.argv[1], 7100), timeout=10) as connection:
    print(connection.recv(5).decode())
"""


def test_hosts_reach_each_other_across_the_bridge_even_behind_a_forward_drop_policy() -> None:
    # Docker sets iptables' FORWARD policy to DROP and has bridged packets filtered
    # (br_netfilter): without a rule of ours, host-to-host traffic would vanish there.
    rules_before = forward_rules()
    network = NamespaceNetwork("fwd1", "10.218.0.0/24")
    try:
        network.create()
        a = network.add_host("a")
        b = network.add_host("b")
        if bridged_traffic_filtered():
            assert f"-A FORWARD {' '.join(forward_rule(network.bridge))}" in forward_rules()
        server = subprocess.Popen(
            [*network.exec_prefix("b"), sys.executable, "-c", LISTEN, b.address], stdout=subprocess.PIPE, text=True
        )
        assert server.stdout is not None
        try:
            assert server.stdout.readline().strip() == "listening"
            done = subprocess.run(
                [*network.exec_prefix("a"), sys.executable, "-c", CONNECT, b.address],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            assert done.returncode == 0 and done.stdout.strip() == "hello", f"{a.name} -> {b.name}: {done.stderr}"
        finally:
            server.kill()
            server.wait()
            server.stdout.close()
    finally:
        assert network.teardown() == []
    assert forward_rules() == rules_before, "the network's iptables rule outlived it"
