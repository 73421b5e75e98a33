"""Reporting frame outcomes (results and drops) to the coordinator.

The pipeline never waits for the coordinator: outcomes go into a bounded queue that one
task drains with retries. Only final results and drop notices travel this way — never
intermediate activations. While no lease is held (between registrations) reports wait; a
report the coordinator cannot take for long is given up and counted as lost.
"""

from __future__ import annotations

import asyncio

import structlog

from synergy.errors import InvalidArgument, NotFound, PermissionDenied, SynergyError, Unauthenticated
from synergy.reports import Result
from synergy.wire.registry_client import Registry

__all__ = ["Reporter"]

log = structlog.get_logger(__name__)

QUEUE_SIZE = 4096
RETRY_S = 0.5
#: Attempts per report before it is given up (the coordinator is down for long).
MAX_ATTEMPTS = 20


class Reporter:
    def __init__(self, retry_s: float = RETRY_S) -> None:
        self._queue: asyncio.Queue[Result] = asyncio.Queue(QUEUE_SIZE)
        self._registry: Registry | None = None
        self._lease_id = ""
        self._ready = asyncio.Event()
        self._retry_s = retry_s
        #: The report being delivered (taken from the queue, not yet sent).
        self._current: Result | None = None
        self.bytes_sent = 0
        self.sent = 0
        self.lost = 0

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + (self._current is not None)

    def connect(self, registry: Registry, lease_id: str) -> None:
        self._registry, self._lease_id = registry, lease_id
        self._ready.set()

    def disconnect(self) -> None:
        self._ready.clear()

    def submit(self, result: Result) -> None:
        try:
            self._queue.put_nowait(result)
        except asyncio.QueueFull:
            self.lost += 1
            log.error("result_report_lost", app=result.app_id, seq=result.seq, reason="report queue full")

    async def run(self) -> None:
        """Deliver reports forever; a report in hand when this is restarted is delivered first."""
        while True:
            if self._current is None:
                self._current = await self._queue.get()
            await self._deliver(self._current)
            self._current = None

    async def _deliver(self, result: Result) -> None:
        for _ in range(MAX_ATTEMPTS):
            await self._ready.wait()
            assert self._registry is not None
            lease_id = self._lease_id
            try:
                await self._registry.report_result(lease_id, result)
                self.bytes_sent += result.nbytes
                self.sent += 1
                return
            except NotFound:
                if self._lease_id == lease_id:
                    self._ready.clear()  # lease gone: wait for the membership loop to register again
            except (PermissionDenied, Unauthenticated, InvalidArgument) as exc:
                # Asking again would get the same answer (e.g. a result of an app or epoch the
                # coordinator does not know): report it lost now, not block the queue behind it.
                self.lost += 1
                log.error("result_report_lost", app=result.app_id, seq=result.seq, reason=f"refused: {exc}")
                return
            except SynergyError as exc:
                log.debug("result_report_failed", app=result.app_id, seq=result.seq, error=str(exc))
            await asyncio.sleep(self._retry_s)
        self.lost += 1
        log.error("result_report_lost", app=result.app_id, seq=result.seq, reason="coordinator unreachable")

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until queued reports are sent, e.g. before shutdown.

        Returns at once when no lease is held: nothing could be sent.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.pending and self.connected and loop.time() < deadline:  # noqa: ASYNC110 - a bounded poll at shutdown
            await asyncio.sleep(0.02)
