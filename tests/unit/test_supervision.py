"""The coordinator's vital loops: a crash is logged and the loop restarted; a loop that keeps
crashing makes the coordinator unhealthy (the daemon then turns NOT_SERVING and exits 1)."""

from __future__ import annotations

import asyncio

import pytest

from coordinator import service
from coordinator.service import Coordinator, CoordinatorConfig


async def test_a_crashed_loop_is_restarted() -> None:
    coordinator = Coordinator(CoordinatorConfig())
    runs: list[int] = []
    done = asyncio.Event()

    async def flaky() -> None:
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("boom")
        done.set()
        await asyncio.Event().wait()

    coordinator._supervise("flaky", flaky)
    await asyncio.wait_for(done.wait(), 5.0)
    assert len(runs) == 3
    assert not coordinator.fatal.is_set()
    await coordinator.shutdown()


async def test_a_loop_that_keeps_crashing_is_fatal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service, "MAX_RESTARTS", 2)
    coordinator = Coordinator(CoordinatorConfig())

    async def broken() -> None:
        raise RuntimeError("always")

    coordinator._supervise("clock", broken)
    await asyncio.wait_for(coordinator.fatal.wait(), 10.0)
    assert "clock loop crashed 3 times" in coordinator.fatal_reason
    await coordinator.shutdown()
