"""`synergy emulate`'s network: devices in namespaces of their own, links shaped by the kernel,
results flowing through the bridge, and nothing left behind. Needs root (network namespaces)."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest

from synergy.emulate import EmulateOptions, start, stop
from synergy.netns import NAME_ROOT, NamespaceNetwork, tbf_arguments
from synergy.sdk import AppRequest
from synergy.types import LINK_PRESETS, AppState
from tests.support import eventually

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


def leftovers() -> list[str]:
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=True).stdout
    return [line for line in (names + links).splitlines() if f" {NAME_ROOT}" in f" {line}" or f": {NAME_ROOT}" in line]


async def test_devices_in_namespaces_with_shaped_links(tmp_path: Path) -> None:
    space = tmp_path / "space.yaml"
    space.write_text(SPACE, encoding="utf-8")
    before = leftovers()
    emulation = await start(EmulateOptions(space=space, log_dir=tmp_path / "logs", subnet="10.214.0.0/24"), print)
    try:
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
    assert leftovers() == before, "the emulation left namespaces or links behind"


async def test_the_network_of_a_run_that_died_is_removed_by_the_next(tmp_path: Path) -> None:
    before = leftovers()
    crashed = NamespaceNetwork("dead1", "10.215.0.0/24")
    await asyncio.to_thread(crashed.create)
    await asyncio.to_thread(crashed.add_host, "ring", 10_000.0)  # no process in it, no teardown: a crash
    assert len(leftovers()) > len(before)
    fresh = NamespaceNetwork("live1", "10.216.0.0/24")
    try:
        await asyncio.to_thread(fresh.create)
        assert not [line for line in leftovers() if "syndead1" in line], "the dead run's network is still there"
    finally:
        assert await asyncio.to_thread(fresh.teardown) == []
    assert leftovers() == before
