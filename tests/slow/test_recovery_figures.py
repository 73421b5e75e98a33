"""Figures, not assertions on time: how fast a SIGKILLed coordinator comes back (5 runs).

Prints, per run and as medians: seconds from the kill to the new process listening, to every
agent heartbeating it again (agents keep their leases across the restart; none needs to
register again), and to a fresh result of every app. Run with ``make test-slow`` (or
``pytest -s tests/slow/test_recovery_figures.py``) to see them.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import time
from pathlib import Path

import pytest

from synergy.cluster import LocalCluster
from synergy.sdk import SynergyClient
from synergy.types import DeviceState
from tests.integration.conftest import EARBUD, GLASSES, RING, WATCH
from tests.integration.test_resilience import fresh_results, three_running_apps
from tests.support import eventually

pytestmark = pytest.mark.slow

RUNS = 5


@pytest.mark.timeout(600)
async def test_coordinator_recovery_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--state-dir", str(tmp_path / "state")]
    log_dir = tmp_path / "logs"
    rows: list[tuple[float, float, float]] = []
    async with LocalCluster((GLASSES, WATCH, RING, EARBUD), log_dir=log_dir, coordinator_args=args) as cluster:
        await cluster.wait_for_devices(4)
        async with cluster.client() as client:
            ids = await three_running_apps(client)
        for _ in range(RUNS):
            killed = time.monotonic()
            killed_unix = time.time()
            await cluster.restart_coordinator(sig=signal.SIGKILL)
            listening = time.monotonic() - killed
            async with cluster.client() as client:

                async def all_back(client: SynergyClient = client, since: float = killed_unix) -> bool:
                    devices = await client.list_devices()
                    return all(d.state is DeviceState.ONLINE and d.last_seen_unix > since for d in devices)

                await eventually(all_back, timeout_s=30, interval_s=0.02, what="every agent heartbeating again")
                rejoined = time.monotonic() - killed
                await fresh_results(client, ids, killed_unix, timeout_s=30)
                flowing = time.monotonic() - killed
            rows.append((listening, rejoined, flowing))
            await asyncio.sleep(1.0)
    with capsys.disabled():
        print("\ncoordinator SIGKILL -> restart (seconds from the kill)")
        print(f"{'run':>4} {'listening':>10} {'agents back':>12} {'results flow':>13}")
        for i, (a, b, c) in enumerate(rows, 1):
            print(f"{i:>4} {a:>10.2f} {b:>12.2f} {c:>13.2f}")
        medians = [statistics.median(col) for col in zip(*rows, strict=True)]
        print(f"{'p50':>4} {medians[0]:>10.2f} {medians[1]:>12.2f} {medians[2]:>13.2f}")
    assert len(rows) == RUNS
