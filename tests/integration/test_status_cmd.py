"""`synergy status` (text and --json) and `synergy top` (in a pseudo-terminal) against a real cluster."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator, Callable

import pytest
import pytest_asyncio

from synergy.cluster import CLIENT_NAME, LocalCluster
from synergy.sdk import AppRequest
from synergy.terminal import ALTERNATE_OFF, ALTERNATE_ON, HOME_CLEAR, SHOW_CURSOR
from synergy.types import AppState
from tests.integration.conftest import GLASSES, WATCH
from tests.support import eventually

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

APP = AppRequest("camera", "simplenet", "display", name="objects", max_rate_hz=5)
#: Makes the pseudo-terminal the child's controlling terminal before running synergy, so that
#: Ctrl-C typed into it is a SIGINT to the child, as in a shell.
CONTROLLING_TTY = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
    "os.execv(sys.executable, [sys.executable, '-m', 'synergy.cli.main', *sys.argv[1:]])"
)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalCluster]:
    log_dir = tmp_path_factory.mktemp("status") / "logs"
    async with LocalCluster((GLASSES, WATCH), log_dir=log_dir) as running:
        await running.wait_for_devices(2)
        async with running.client() as client:
            app = await client.submit_app(APP)
            assert app.state is AppState.RUNNING, app.reason

            async def delivering() -> bool:
                return any(a.stats.frames_delivered > 0 for a in await client.list_apps())

            await eventually(delivering, timeout_s=20, what="the app's first results")
        yield running


def client_args(cluster: LocalCluster) -> list[str]:
    # The submitting client's own name: its apps' figures are not hidden from it.
    return ["--coordinator", cluster.address, "--tls-dir", str(cluster.tls_dir("client", CLIENT_NAME))]


def synergy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "synergy.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )


async def test_status_text_and_json(cluster: LocalCluster) -> None:
    # Both at once: each is a fresh process (most of its second is Python starting).
    text, as_json = await asyncio.gather(
        asyncio.to_thread(synergy, "status", *client_args(cluster)),
        asyncio.to_thread(synergy, "status", "--json", *client_args(cluster)),
    )
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0].startswith(f"synergy status  {cluster.address}")
    assert lines[1].startswith("plan: epoch ") and "bottleneck" in lines[1], lines
    assert any(line.startswith("glasses ") and " online " in line for line in lines), lines
    app_line = next(line for line in lines if line.startswith("app-"))
    # Capped at 5 frames/s by its own max rate: the planner's name for that limit.
    assert " objects " in app_line and " running " in app_line and " max_rate_hz " in app_line, app_line
    assert all(len(line) <= 200 for line in lines)

    assert as_json.returncode == 0, as_json.stderr
    status = json.loads(as_json.stdout)
    assert status["plan"]["epoch"] >= 1 and isinstance(status["plan"]["predicted_throughput_hz"], float)
    assert {d["device_id"] for d in status["devices"]} == {"glasses", "watch"}
    # One snapshot: utilisation needs two heartbeats, so it is not known (null, not 0).
    assert all(d["state"] == "online" and d["accelerator_utilisation"] is None for d in status["devices"])
    (app,) = status["apps"]
    assert app["name"] == "objects" and app["state"] == "running" and app["bottleneck"] == "max_rate_hz"
    assert isinstance(app["frames_delivered"], int) and app["frames_delivered"] > 0
    assert isinstance(app["rate_hz"], float) and isinstance(app["latency_ms"], float)


def read_until(fd: int, done: Callable[[bytes], bool], timeout_s: float) -> bytes:
    """What the child writes to the terminal until ``done(written)``."""
    out = b""
    deadline = time.monotonic() + timeout_s
    while not done(out):
        left = deadline - time.monotonic()
        assert left > 0, f"not seen in {timeout_s:g} s: {out[-3000:]!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            assert chunk, f"the terminal closed early: {out[-3000:]!r}"
            out += chunk
    return out


def two_views(written: bytes) -> bool:
    """Two whole frames showing the view (a frame may also say the coordinator did not answer)."""
    frames = written.split(HOME_CLEAR.encode())[1:-1]  # the last one may still be arriving
    return sum(b"plan: epoch" in frame and b"objects" in frame for frame in frames) >= 2


def drain(fd: int, timeout_s: float) -> bytes:
    out = b""
    while select.select([fd], [], [], timeout_s)[0]:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    return out


def run_top_in_terminal(cluster: LocalCluster, key: bytes) -> tuple[int, bytes]:
    """``synergy top`` on a 120 x 40 pseudo-terminal: two frames showing the view, then ``key``.

    Returns the exit status and what it wrote; checks the terminal's modes came back.
    """
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    before = termios.tcgetattr(slave)
    process = subprocess.Popen(
        [sys.executable, "-c", CONTROLLING_TTY, "top", "--interval", "0.3", *client_args(cluster)],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        start_new_session=True,
        env={k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")},
    )
    try:
        written = read_until(master, two_views, timeout_s=30)
        os.write(master, key)
        status = process.wait(timeout=15)
        written += drain(master, 0.2)
        assert termios.tcgetattr(slave) == before, "the terminal's modes were not restored"
        return status, written
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
        os.close(slave)


async def test_top_redraws_in_place_and_quits_cleanly_on_q_and_ctrl_c(cluster: LocalCluster) -> None:
    runs = await asyncio.gather(*(asyncio.to_thread(run_top_in_terminal, cluster, key) for key in (b"q", b"\x03")))
    for status, written in runs:
        assert status == 0, written[-2000:]
        text = written.decode(errors="replace")
        assert text.startswith(ALTERNATE_ON) and text.endswith(ALTERNATE_OFF), text[-300:]
        frames = text.split(HOME_CLEAR)[1:]
        assert len(frames) >= 3  # two views seen, then at least the one on screen when the key came
        # Every line of a frame fits the terminal's 120 columns (the pty turns \n into \r\n).
        frames[-1] = frames[-1].replace(SHOW_CURSOR, "").replace(ALTERNATE_OFF, "")
        assert all(len(line) <= 120 for frame in frames for line in frame.split("\r\n"))
