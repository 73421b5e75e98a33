"""Reporting frame outcomes (results and drops) to the coordinator.

The pipeline never waits for the coordinator: outcomes go into a bounded queue that one
task drains with retries. Only final results and drop notices travel this way — never
intermediate activations.
"""

from __future__ import annotations

import asyncio

import grpc
import structlog

from synergy.v1 import common_pb2, registry_pb2, registry_pb2_grpc

__all__ = ["Reporter"]

log = structlog.get_logger(__name__)

QUEUE_SIZE = 4096
RETRY_S = 0.5
#: Attempts per report before it is given up (the coordinator is down for long).
MAX_ATTEMPTS = 20


class Reporter:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[common_pb2.Result] = asyncio.Queue(QUEUE_SIZE)
        self._stub: registry_pb2_grpc.RegistryServiceStub | None = None
        self._lease_id = ""
        self._ready = asyncio.Event()
        self.bytes_sent = 0
        self.lost = 0

    def connect(self, stub: registry_pb2_grpc.RegistryServiceStub, lease_id: str) -> None:
        self._stub, self._lease_id = stub, lease_id
        self._ready.set()

    def disconnect(self) -> None:
        self._ready.clear()

    def submit(self, result: common_pb2.Result) -> None:
        try:
            self._queue.put_nowait(result)
        except asyncio.QueueFull:
            self.lost += 1
            log.error("result_report_lost", app=result.app_id, seq=result.seq, reason="report queue full")

    async def run(self) -> None:
        while True:
            result = await self._queue.get()
            await self._deliver(result)

    async def _deliver(self, result: common_pb2.Result) -> None:
        for _ in range(MAX_ATTEMPTS):
            await self._ready.wait()
            assert self._stub is not None
            try:
                await self._stub.ReportResult(
                    registry_pb2.ReportResultRequest(lease_id=self._lease_id, result=result), timeout=5.0
                )
                self.bytes_sent += sum(len(t.data) for t in result.tensors)
                return
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    self._ready.clear()  # lease gone: wait for the registration loop
                await asyncio.sleep(RETRY_S)
        self.lost += 1
        log.error("result_report_lost", app=result.app_id, seq=result.seq, reason="coordinator unreachable")

    async def drain(self, timeout_s: float) -> None:
        """Wait (bounded) until queued reports are sent, e.g. before shutdown."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not self._queue.empty() and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110 - a bounded poll at shutdown
            await asyncio.sleep(0.02)
