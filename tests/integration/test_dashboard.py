"""The web dashboard (``synergy coordinator --http-bind``): over HTTP, and in a real browser.

The browser is Debian's headless Chromium driven by Selenium through Debian's chromedriver
(never one Selenium would download). Missing, the test fails and says how to install it:
``make system-deps`` does, as root. Selenium is synchronous, so its calls run in a thread and
the event loop goes on serving the cluster's pipes.

The screenshot goes to a temporary directory, or, with ``SYNERGY_SCREENSHOT=1``, to
``docs/dashboard.png`` (the README's picture), so that ``make test`` leaves the tree clean.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

from coordinator.dashboard.server import Dashboard
from coordinator.dashboard.snapshot import SpaceView
from synergy.cluster import LocalCluster
from synergy.errors import AddressInUse
from synergy.reports import CoordinatorStats
from synergy.sdk import AppRequest
from synergy.types import AppState, JointPlan
from tests.integration.conftest import EARBUD, GLASSES, RING, WATCH
from tests.support import eventually

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
#: An app name that would be markup if the page ever put it into innerHTML.
HOSTILE_NAME = '<img src=x id=pwned onerror="document.title=1">digits'
#: Browser window: wide enough for the two columns, tall enough for three apps.
WINDOW = (1440, 1000)


# -- the browser -----------------------------------------------------------------------------


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    chromium = shutil.which("chromium")
    driver = shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail(
            "headless Chromium is not installed (Debian packages chromium and chromium-driver): "
            "`make system-deps` installs them as root (apt-get install chromium chromium-driver)"
        )
    options = Options()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests may run as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",  # small /dev/shm in containers
        "--disable-gpu",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(arg)
    service = Service(executable_path=driver, log_output=str(tmp_path / "chromedriver.log"))
    chrome = webdriver.Chrome(options=options, service=service)
    try:
        yield chrome
    finally:
        chrome.quit()


class Page:
    """The dashboard in the browser; every call runs in a thread (Selenium blocks)."""

    def __init__(self, chrome: webdriver.Chrome) -> None:
        self.chrome = chrome

    async def open(self, url: str) -> None:
        await asyncio.to_thread(self.chrome.get, url)

    async def js(self, script: str) -> Any:
        """``script``'s value: plain data read from the DOM, never element handles (the page
        redraws every half second and a handle would go stale)."""
        return await asyncio.to_thread(self.chrome.execute_script, script)

    async def devices(self) -> dict[str, str]:
        return dict(
            await self.js(
                "return [...document.querySelectorAll('article.device')]"
                ".map(e => [e.dataset.deviceId, e.dataset.state]);"
            )
        )

    async def apps(self) -> dict[str, dict[str, Any]]:
        found = await self.js(
            """return [...document.querySelectorAll('article.app')].map(e => ({
                 app_id: e.dataset.appId, state: e.dataset.state,
                 name: (e.querySelector('.app-name') || {}).textContent || '',
                 nodes: [...e.querySelectorAll('svg g.node')].map(g => [g.classList[1], g.dataset.deviceId]),
               }));"""
        )
        return {a["app_id"]: a for a in found}

    async def rounds(self) -> list[dict[str, Any]]:
        return list(
            await self.js(
                """return [...document.querySelectorAll('li.round[data-outcome]')].map(e => ({
                     epoch: Number(e.dataset.epoch), outcome: e.dataset.outcome,
                     causes: [...e.querySelectorAll('li.cause')].map(c => [c.dataset.kind, c.textContent]),
                   }));"""
            )
        )

    async def screenshot(self, path: Path) -> None:
        """The whole page: the viewport is made as tall as the page first (a window's size
        includes the browser's frame, so the DevTools protocol sets the viewport itself)."""
        height = int(await self.js("return document.documentElement.scrollHeight;"))
        metrics = {"width": WINDOW[0], "height": max(height, 600), "deviceScaleFactor": 1, "mobile": False}
        await asyncio.to_thread(self.chrome.execute_cdp_cmd, "Emulation.setDeviceMetricsOverride", metrics)
        await asyncio.sleep(0.7)  # a snapshot or two redraws the page at that size
        path.parent.mkdir(parents=True, exist_ok=True)
        assert await asyncio.to_thread(self.chrome.save_screenshot, str(path)), f"no screenshot at {path}"


def _screenshot_path(tmp_path: Path) -> Path:
    if os.environ.get("SYNERGY_SCREENSHOT") == "1":
        return ROOT / "docs" / "dashboard.png"
    return tmp_path / "dashboard.png"


async def _dashboard_url(log_path: Path) -> str:
    """The URL the coordinator logged (it was started with --http-bind 127.0.0.1:0)."""

    def logged() -> str | None:
        for line in log_path.read_text(errors="replace").splitlines():
            if '"dashboard_listening"' in line:
                return str(json.loads(line)["url"])
        return None

    return await eventually(logged, timeout_s=10, what="the coordinator to log its dashboard URL")


async def _until(check: Callable[[], Any], what: str, timeout_s: float = 15) -> Any:
    return await eventually(check, timeout_s=timeout_s, interval_s=0.2, what=what)


# -- the whole thing in a browser ----------------------------------------------------------------


async def test_the_dashboard_shows_the_live_space_in_a_browser(
    browser: webdriver.Chrome, tmp_path: Path, log_dir: Path
) -> None:
    page = Page(browser)
    async with LocalCluster(
        (EARBUD, GLASSES, WATCH, RING),
        log_dir=log_dir,
        coordinator_args=["--http-bind", "127.0.0.1:0", "--lease-ttl", "2"],
    ) as cluster:
        assert cluster.coordinator is not None
        url = await _dashboard_url(cluster.coordinator.log_path)
        await page.open(url)
        devices = await _until(
            lambda: _all_online(page, {"earbud", "glasses", "watch", "ring"}), "the four devices online in the page"
        )
        assert set(devices) == {"earbud", "glasses", "watch", "ring"}

        async with cluster.client() as client:
            apps = [
                await client.submit_app(AppRequest("microphone", "kws20_v3", "haptics", name="keyword-spotting")),
                await client.submit_app(AppRequest("camera", "convnet5", "display", name=HOSTILE_NAME)),
                await client.submit_app(AppRequest("camera", "simplenet", "display", name="object-classifier")),
            ]
            assert all(a.state is AppState.RUNNING for a in apps), [a.reason for a in apps]
            plan = await client.get_plan()

            async def shown() -> dict[str, dict[str, Any]] | None:
                found = await page.apps()
                ready = all(found.get(a.app_id, {}).get("state") == "running" for a in apps)
                return found if ready and all(found[a.app_id]["nodes"] for a in apps) else None

            shown_apps = await _until(shown, "the three apps running, each with its pipeline")
            for app in apps:
                expected = plan.plan_for(app.app_id)
                assert expected is not None
                nodes = shown_apps[app.app_id]["nodes"]
                assert nodes == [
                    ["node-source", expected.source_device],
                    *(["node-stage", s.device_id] for s in expected.stages),
                    ["node-target", expected.target_device],
                ], (app.app_id, nodes, expected)
            # The name is text on the page, never markup.
            assert shown_apps[apps[1].app_id]["name"] == HOSTILE_NAME
            assert await page.js("return document.getElementById('pwned') === null && document.title === 'Synergy';")

            # Kill a device the plan uses (one that is not the only microphone or camera).
            used = {d for p in plan.plans for d in p.devices}
            victim = next((d for d in ("watch", "ring") if d in used), "ring")
            await cluster.kill_agent(victim, signal.SIGKILL)
            await _until(lambda: _device_state(page, victim, "offline"), f"{victim} offline in the page")
            rounds = await _until(lambda: _round_caused_by(page, victim), f"a re-plan round caused by {victim} leaving")
            assert any("lease expired" in text for _, text in rounds[0]["causes"]), rounds[0]
            if victim in used:
                await _until(lambda: _epoch_above(page, plan.epoch), "the header's epoch to move on")

            # The apps run on without it: the picture of a live cluster with its history.
            await _until(lambda: _all_running(page, [a.app_id for a in apps]), "the apps running again")
            await _until(lambda: _charts_drawn(page, len(apps)), "every app's rate chart drawn")
            await asyncio.sleep(2)
            await page.screenshot(_screenshot_path(tmp_path))


async def _all_online(page: Page, expected: set[str]) -> dict[str, str] | None:
    devices = await page.devices()
    return devices if set(devices) == expected and set(devices.values()) == {"online"} else None


async def _all_running(page: Page, app_ids: list[str]) -> bool:
    shown = await page.apps()
    return all(shown.get(a, {}).get("state") == "running" for a in app_ids)


async def _charts_drawn(page: Page, count: int) -> bool:
    """Every app's rate chart has drawn a line (non-blank pixels on its canvas)."""
    drawn = await page.js(
        """return [...document.querySelectorAll('canvas.spark[data-series=rate]')].filter(c => {
             const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             for (let i = 3; i < data.length; i += 4) if (data[i] > 0) return true;
             return false;
           }).length;"""
    )
    return int(drawn) >= count


async def _device_state(page: Page, device_id: str, state: str) -> bool:
    return (await page.devices()).get(device_id) == state


async def _round_caused_by(page: Page, device_id: str) -> list[dict[str, Any]] | None:
    rounds = [
        r
        for r in await page.rounds()
        if any(kind == "device_left" and f"device {device_id} left" in text for kind, text in r["causes"])
    ]
    return rounds or None


async def _epoch_above(page: Page, epoch: int) -> int | None:
    shown = int(await page.js("return Number(document.body.dataset.epoch || 0);"))
    return shown if shown > epoch else None


# -- the HTTP side, in process -------------------------------------------------------------------


def _empty_view() -> SpaceView:
    return SpaceView(devices=(), apps=(), plan=JointPlan(), stats=CoordinatorStats(), now=1.0, now_unix=1000.0)


async def test_endpoints_are_read_only_json_and_events() -> None:
    dashboard = Dashboard(_empty_view, "127.0.0.1:0", period_s=0.05)
    url = await dashboard.start()
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as page:
                assert page.status == 200
                assert "script-src 'self'" in page.headers["Content-Security-Policy"]
                assert "<script" in await page.text()
            async with http.get(url + "static/dashboard.js") as script:
                assert script.status == 200 and script.headers["Content-Type"].startswith("text/javascript")
                assert "innerHTML" not in (await script.text()).replace("never innerHTML", "")
            async with http.get(url + "api/snapshot") as snapshot:
                assert snapshot.status == 200 and snapshot.headers["Content-Type"] == "application/json"
                body = await snapshot.json()
                assert body["version"] == 1 and body["devices"] == [] and body["epoch"] == 0
            for method in ("POST", "PUT", "DELETE"):
                async with http.request(method, url + "api/snapshot") as refused:
                    assert refused.status == 405, method
            # DNS rebinding: a loopback dashboard answers only to local names.
            async with http.get(url + "api/snapshot", headers={"Host": "attacker.example"}) as foreign:
                assert foreign.status == 421
            async with http.get(url + "api/events") as events:
                assert events.headers["Content-Type"] == "text/event-stream"
                lines = [(await events.content.readline()).decode() for _ in range(5)]
                assert lines[0] == "retry: 2000\n" and "event: snapshot\n" in lines
                data = next(line for line in lines if line.startswith("data: "))
                assert json.loads(data.removeprefix("data: "))["ready"] is True
    finally:
        await dashboard.close()


async def test_a_taken_port_is_an_error_naming_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(AddressInUse, match=f"^--http-bind 127.0.0.1:{port}: address in use"):
            await Dashboard(_empty_view, f"127.0.0.1:{port}").start()

        # The daemon: one line on stderr, exit 2, nothing left running.
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "synergy.cli.daemon_main", "coordinator", "--insecure", "--ephemeral",
            "--bind", "127.0.0.1:0", "--http-bind", f"127.0.0.1:{port}",
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "SYNERGY_LOG_FORMAT": "json"},
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2, stderr.decode()[-2000:]
    last = stderr.decode().strip().splitlines()[-1]
    assert last.startswith("synergy coordinator: "), last
    assert last.endswith(f"--http-bind 127.0.0.1:{port}: address in use (another process listens there)"), last
