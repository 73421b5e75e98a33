"""Results from target agents, fanned out to watching clients and waiting Infer calls.

A watcher gets a bounded queue. A watcher too slow to keep up is closed with
RESOURCE_EXHAUSTED rather than silently skipping results: it knows it lost some and can
reconnect.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable

from synergy.errors import ResourceExhausted
from synergy.reports import Result

__all__ = ["ResultsHub"]

#: Results buffered per watcher before it counts as too slow.
WATCHER_QUEUE = 1024


class _Watcher:
    def __init__(self, app_ids: Iterable[str], admits: Callable[[str], bool] | None) -> None:
        self.app_ids = frozenset(app_ids)
        self.admits = admits
        self.queue: asyncio.Queue[Result | None] = asyncio.Queue(WATCHER_QUEUE)
        self.overflowed = False

    def wants(self, result: Result) -> bool:
        if self.app_ids:
            return result.app_id in self.app_ids
        return self.admits is None or self.admits(result.app_id)


class ResultsHub:
    def __init__(self) -> None:
        self._watchers: set[_Watcher] = set()
        self._waiters: dict[tuple[str, int], asyncio.Future[Result]] = {}

    @property
    def watcher_count(self) -> int:
        return len(self._watchers)

    def publish(self, result: Result) -> None:
        waiter = self._waiters.pop((result.app_id, result.seq), None)
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
        for watcher in list(self._watchers):
            if not watcher.wants(result) or watcher.overflowed:
                continue
            try:
                watcher.queue.put_nowait(result)
            except asyncio.QueueFull:
                watcher.overflowed = True

    async def watch(
        self, app_ids: Iterable[str], admits: Callable[[str], bool] | None = None
    ) -> AsyncIterator[Result]:
        """Results of ``app_ids`` as they come; naming none, those of every app ``admits``
        (an app id -> may this watcher see it; None: every app)."""
        watcher = _Watcher(app_ids, admits)
        self._watchers.add(watcher)
        try:
            while True:
                if watcher.overflowed and watcher.queue.empty():
                    raise ResourceExhausted(
                        f"watcher fell more than {WATCHER_QUEUE} results behind; reconnect to continue"
                    )
                item = await watcher.queue.get()
                if item is None:
                    return
                yield item
        finally:
            self._watchers.discard(watcher)

    def expect(self, app_id: str, seq: int) -> asyncio.Future[Result]:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiters[(app_id, seq)] = future
        return future

    def forget(self, app_id: str, seq: int) -> None:
        self._waiters.pop((app_id, seq), None)

    def close(self) -> None:
        """End every watch stream (coordinator shutdown)."""
        for watcher in self._watchers:
            try:
                watcher.queue.put_nowait(None)
            except asyncio.QueueFull:
                watcher.overflowed = True
        for future in self._waiters.values():
            if not future.done():
                future.cancel()
        self._waiters.clear()
