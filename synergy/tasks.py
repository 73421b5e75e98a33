"""Owned background tasks: every task a component starts is tracked, logged and cancelled.

House rule (DESIGN.md §9): no bare ``create_task``. A component keeps one :class:`TaskOwner`,
starts its background work through :meth:`TaskOwner.spawn`, and calls
:meth:`TaskOwner.close` when it shuts down, so nothing outlives its owner and no crash
of a background task goes unnoticed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import structlog

__all__ = ["TaskOwner"]

log = structlog.get_logger(__name__)

T = TypeVar("T")


class TaskOwner:
    def __init__(self, owner: str) -> None:
        self._owner = owner
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self._owner} is shut down; cannot start {name}")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self._owner}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("background_task_crashed", task=task.get_name(), error=repr(exc), exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    def cancel(self) -> None:
        """Cancel every task without waiting (from synchronous code). Idempotent."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Cancel every task and wait (bounded) for them to finish. Idempotent."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)
