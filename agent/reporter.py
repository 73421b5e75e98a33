"""Reporting frame outcomes (results and drops) to the coordinator, in batches.

The pipeline never waits for the coordinator: outcomes go into a bounded queue that one
task drains. Only final results and drop notices travel this way — never intermediate
activations. The task sends what is queued in one ``ReportResults`` call (at most
``max_batch`` results and about ``max_batch_bytes``), and starts calls at most every
``linger_s``: a result that comes after a quiet spell (an Infer, a slow app) goes at once,
while under load what arrives within ``linger_s`` of the last call waits for the next, so an
agent makes at most 1/``linger_s`` calls a second whatever its frame rate, and no result is
delayed by more than ``linger_s``. The coordinator pays one RPC per batch, not per frame.

Outcomes are per result, as with one call per result:

- accepted: counted sent;
- refused for itself (PermissionDenied, Unauthenticated, InvalidArgument — asking again would
  get the same answer): lost at once with the reason, never blocking the others;
- the whole batch answered NotFound (the lease is unknown): paused until membership registers
  again, then sent under the new lease;
- anything else (the coordinator unreachable): retried every ``retry_s``, and lost after
  :data:`MAX_ATTEMPTS` with the reason.

A coordinator without ``ReportResults`` (UNIMPLEMENTED: an older version) gets one
``ReportResult`` per result, with the same outcomes.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence

import structlog

from synergy import limits
from synergy.errors import InvalidArgument, NotFound, PermissionDenied, SynergyError, Unauthenticated
from synergy.reports import Result
from synergy.wire.registry_client import Registry

__all__ = ["Reporter"]

log = structlog.get_logger(__name__)

QUEUE_SIZE = 4096
RETRY_S = 0.5
#: Attempts per batch before it is given up (the coordinator is down for long).
MAX_ATTEMPTS = 20
#: The shortest time between two calls: the most batching delays a result (10 calls/s at most).
LINGER_S = 0.1
#: Results per call, and their estimated size; one result bigger than that still goes (alone).
MAX_BATCH = limits.MAX_RESULTS_PER_REPORT
MAX_BATCH_BYTES = 1024 * 1024
#: Estimated bytes of a result's fields besides its tensors and texts.
_RESULT_OVERHEAD_BYTES = 256
#: Refusals that concern the result itself: asking again would get the same answer.
_FINAL_REFUSALS = (PermissionDenied, Unauthenticated, InvalidArgument)


def _size(result: Result) -> int:
    return result.nbytes + len(result.summary) + len(result.drop_reason) + _RESULT_OVERHEAD_BYTES


class Reporter:
    def __init__(
        self,
        retry_s: float = RETRY_S,
        *,
        linger_s: float = LINGER_S,
        max_batch: int = MAX_BATCH,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self._queue: asyncio.Queue[Result] = asyncio.Queue(QUEUE_SIZE)
        self._registry: Registry | None = None
        self._lease_id = ""
        self._ready = asyncio.Event()
        self._retry_s = retry_s
        self._linger_s = linger_s
        self._max_batch = max(1, min(max_batch, limits.MAX_RESULTS_PER_REPORT))
        self._max_batch_bytes = min(max_batch_bytes, limits.MAX_REPORT_BATCH_BYTES)
        #: The batch being delivered (taken from the queue, not yet settled), and a result taken
        #: that did not fit in it (it opens the next batch).
        self._batch: list[Result] = []
        self._next: Result | None = None
        #: When the last call started (monotonic; none yet).
        self._last_call = -math.inf
        #: The coordinator answered UNIMPLEMENTED to ReportResults: report one result per call.
        self.unary = False
        self.bytes_sent = 0
        self.sent = 0
        self.lost = 0
        #: Calls that carried results (a batch retried counts each time).
        self.calls = 0

    @property
    def connected(self) -> bool:
        return self._ready.is_set()

    @property
    def pending(self) -> int:
        return self._queue.qsize() + len(self._batch) + (self._next is not None)

    def connect(self, registry: Registry, lease_id: str) -> None:
        self._registry, self._lease_id = registry, lease_id
        self._ready.set()

    def disconnect(self) -> None:
        self._ready.clear()

    def submit(self, result: Result) -> None:
        try:
            self._queue.put_nowait(result)
        except asyncio.QueueFull:
            self._lose([result], "report queue full")

    async def run(self) -> None:
        """Deliver reports forever; a batch in hand when this is restarted is delivered first."""
        while True:
            if not self._batch:
                await self._fill()
            if self.unary:
                while self._batch:
                    await self._deliver_one(self._batch[0])
                    self._batch.pop(0)
            else:
                await self._deliver(self._batch)
                if not self.unary:
                    self._batch = []

    async def _fill(self) -> None:
        """Take the next batch: the first result, then, once ``linger_s`` has passed since the
        last call (at once after a quiet spell), what is queued (bounded).

        Everything taken is in :attr:`_batch` at once, so a cancellation loses nothing.
        """
        first = self._next if self._next is not None else await self._queue.get()
        self._next = None
        self._batch = [first]
        wait = self._last_call + self._linger_s - time.monotonic()
        if wait > 0 and self._queue.qsize() < self._max_batch - 1:
            await asyncio.sleep(wait)
        size = _size(first)
        while len(self._batch) < self._max_batch and not self._queue.empty():
            result = self._queue.get_nowait()
            if size + _size(result) > self._max_batch_bytes:
                self._next = result
                break
            self._batch.append(result)
            size += _size(result)

    def _lose(self, results: Sequence[Result], reason: str) -> None:
        self.lost += len(results)
        for result in results:
            log.error("result_report_lost", app=result.app_id, seq=result.seq, reason=reason)

    def _settle(self, result: Result, refusal: SynergyError | None) -> None:
        if refusal is None:
            self.sent += 1
            self.bytes_sent += result.nbytes
        else:
            self._lose([result], f"refused: {refusal}")

    async def _deliver(self, batch: Sequence[Result]) -> None:
        """Settle every result of ``batch`` (or switch to :attr:`unary` and leave them in hand)."""
        for _ in range(MAX_ATTEMPTS):
            await self._ready.wait()
            assert self._registry is not None
            lease_id = self._lease_id
            self.calls += 1
            self._last_call = time.monotonic()
            try:
                refusals = await self._registry.report_results(lease_id, batch)
            except NotFound:
                if self._lease_id == lease_id:
                    self._ready.clear()  # lease gone: wait for the membership loop to register again
            except _FINAL_REFUSALS as exc:
                # The caller itself is refused: every result would get the same answer.
                self._lose(batch, f"refused: {exc}")
                return
            except SynergyError as exc:
                if exc.grpc_code == "UNIMPLEMENTED":
                    log.info("coordinator_without_batched_reports", detail=str(exc))
                    self.unary = True
                    return
                log.debug("result_report_failed", results=len(batch), error=str(exc))
            else:
                for result, refusal in zip(batch, refusals, strict=True):
                    self._settle(result, refusal)
                return
            await asyncio.sleep(self._retry_s)
        self._lose(batch, "coordinator unreachable")

    async def _deliver_one(self, result: Result) -> None:
        """One result by unary ReportResult (a coordinator without ReportResults)."""
        for _ in range(MAX_ATTEMPTS):
            await self._ready.wait()
            assert self._registry is not None
            lease_id = self._lease_id
            self.calls += 1
            try:
                await self._registry.report_result(lease_id, result)
            except NotFound:
                if self._lease_id == lease_id:
                    self._ready.clear()
            except _FINAL_REFUSALS as exc:
                self._settle(result, exc)
                return
            except SynergyError as exc:
                log.debug("result_report_failed", app=result.app_id, seq=result.seq, error=str(exc))
            else:
                self._settle(result, None)
                return
            await asyncio.sleep(self._retry_s)
        self._lose([result], "coordinator unreachable")

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until queued reports are sent, e.g. before shutdown.

        Returns at once when no lease is held: nothing could be sent.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.pending and self.connected and loop.time() < deadline:  # noqa: ASYNC110 - a bounded poll at shutdown
            await asyncio.sleep(0.02)
