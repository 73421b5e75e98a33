"""Results fan-out: filtering, Infer waiters, and a too-slow watcher told so instead of skipped."""

from __future__ import annotations

import asyncio

import pytest

from coordinator import results as results_module
from coordinator.results import ResultsHub
from synergy.errors import ResourceExhausted
from synergy.v1 import common_pb2


async def test_watchers_get_only_their_apps_and_waiters_their_seq() -> None:
    hub = ResultsHub()
    stream = hub.watch(["a"])
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    waiter = hub.expect("b", 7)
    hub.publish(common_pb2.Result(app_id="b", seq=7))
    hub.publish(common_pb2.Result(app_id="a", seq=1))
    assert (await first).app_id == "a"
    assert (await waiter).seq == 7
    await stream.aclose()
    assert hub.watcher_count == 0


async def test_a_watcher_naming_no_app_gets_those_it_admits() -> None:
    hub = ResultsHub()
    stream = hub.watch([], lambda app_id: app_id != "theirs")
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    hub.publish(common_pb2.Result(app_id="theirs", seq=1))
    hub.publish(common_pb2.Result(app_id="mine", seq=2))
    assert (await first).app_id == "mine"
    await stream.aclose()


async def test_a_watcher_that_falls_behind_is_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(results_module, "WATCHER_QUEUE", 2)
    hub = ResultsHub()
    stream = hub.watch([])
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    for seq in range(5):
        hub.publish(common_pb2.Result(app_id="a", seq=seq))
    got = [(await first).seq, (await stream.__anext__()).seq]
    assert got == [0, 1]
    with pytest.raises(ResourceExhausted, match="fell more than 2 results behind"):
        await stream.__anext__()
