"""Sending frames to the next agent: one long-lived stream per (app, epoch, hop).

Flow control is credit based: a stream has at most ``window`` frames that the receiver has
not acknowledged; :meth:`FrameStream.send` waits for a credit, so a slow stage slows the
stages before it all the way back to the source, and no queue grows with backlog. A frame
is acknowledged once the receiver has processed it and handed it on. A frame the receiver
rejects is reported dropped by the receiver; a frame in flight when the stream breaks is
reported dropped by the sender, with the reason — nothing disappears silently.

In emulation each hop is shaped to the slower of the two devices' links (bandwidth,
per-message overhead and latency), and a device's radio carries one transmission at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import structlog

from synergy.tasks import TaskOwner
from synergy.types import LinkProfile
from synergy.v1 import agent_pb2, agent_pb2_grpc
from synergy.wire.server import channel_options
from synergy.wire.tensors import DEFAULT_CHUNK_BYTES, Frame, frame_to_chunks

__all__ = ["DropHandler", "FrameStream", "Radio"]

log = structlog.get_logger(__name__)

#: Frames in flight per stream before the sender waits for acknowledgements.
DEFAULT_WINDOW = 4

DropHandler = Callable[[Frame, str], Awaitable[None]]


class Radio:
    """A device's radio: one transmission at a time, taking bytes / bandwidth seconds."""

    def __init__(self, link: LinkProfile, *, shaped: bool) -> None:
        self.link = link
        self.shaped = shaped
        self._lock = asyncio.Lock()
        self.busy_s = 0.0

    async def transmit(self, nbytes: int, peer: LinkProfile) -> None:
        if not self.shaped:
            return
        bandwidth = min(self.link.bandwidth_bytes_per_s, peer.bandwidth_bytes_per_s)
        overhead = max(self.link.per_message_overhead_bytes, peer.per_message_overhead_bytes)
        duration = (nbytes + overhead) / bandwidth
        async with self._lock:
            await asyncio.sleep(duration)
            self.busy_s += duration
        latency = max(self.link.latency_s, peer.latency_s)
        if latency > 0:
            await asyncio.sleep(latency)


class FrameStream:
    """The sending end of one (app, epoch, hop) stream."""

    def __init__(
        self,
        *,
        address: str,
        target: tuple[str, int, int],
        peer_link: LinkProfile,
        radio: Radio,
        on_drop: DropHandler,
        on_sent: Callable[[int], None],
        window: int = DEFAULT_WINDOW,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        label: str = "",
    ) -> None:
        self._address = address
        app_id, epoch, segment = target
        # Tells the receiver which segment this stream feeds before the first frame arrives.
        self._metadata = (("synergy-app", app_id), ("synergy-epoch", str(epoch)), ("synergy-segment", str(segment)))
        self._peer_link = peer_link
        self._radio = radio
        self._on_drop = on_drop
        self._on_sent = on_sent
        self._chunk_bytes = chunk_bytes
        self._credits = asyncio.Semaphore(window)
        self._outbox: asyncio.Queue[Frame | None] = asyncio.Queue(window)
        self._unacked: dict[int, Frame] = {}
        self._acked = asyncio.Condition()
        self._channel: grpc.aio.Channel | None = None
        self._broken = ""
        self._tasks = TaskOwner(f"stream:{label}")
        self._log = log.bind(stream=label, peer=address)

    @property
    def in_flight(self) -> int:
        return len(self._unacked)

    def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self._address, options=channel_options())
        self._tasks.spawn(self._run(), "call")

    async def send(self, frame: Frame) -> None:
        """Queue a frame for the peer; waits while ``window`` frames are unacknowledged."""
        if self._broken:
            await self._on_drop(frame, self._broken)
            return
        await self._credits.acquire()
        self._unacked[frame.seq] = frame
        await self._outbox.put(frame)

    async def _chunks(self) -> AsyncIterator[agent_pb2.FrameChunk]:
        while True:
            frame = await self._outbox.get()
            if frame is None:
                return
            await self._radio.transmit(frame.nbytes, self._peer_link)
            for chunk in frame_to_chunks(frame, self._chunk_bytes):
                yield chunk
            self._on_sent(frame.nbytes)

    async def _run(self) -> None:
        assert self._channel is not None
        stub = agent_pb2_grpc.AgentServiceStub(self._channel)
        try:
            call = stub.Frames(self._chunks(), metadata=self._metadata)
            async for ack in call:
                frame = self._unacked.pop(ack.seq, None)
                self._credits.release()
                if frame is not None and ack.outcome == agent_pb2.FRAME_OUTCOME_REJECTED:
                    # The receiver reported this drop itself (it knows the reason best).
                    self._log.warning("frame_rejected_by_peer", seq=ack.seq, reason=ack.reason)
                async with self._acked:
                    self._acked.notify_all()
        except grpc.aio.AioRpcError as exc:
            self._broken = f"next hop {self._address} unavailable: {exc.code().name}: {exc.details()}"
        except asyncio.CancelledError:
            self._broken = "stream closed before the peer acknowledged"
            raise
        finally:
            if not self._broken:
                self._broken = "stream ended before the peer acknowledged"
            await self._fail_pending()

    async def _fail_pending(self) -> None:
        pending = list(self._unacked.values())
        self._unacked.clear()
        while not self._outbox.empty():
            self._outbox.get_nowait()
        if pending:
            self._log.warning("frames_lost_in_flight", count=len(pending), reason=self._broken)
        for frame in pending:
            self._credits.release()
            await self._on_drop(frame, self._broken)
        async with self._acked:
            self._acked.notify_all()

    async def close(self, drain_timeout_s: float) -> int:
        """Wait (bounded) for acknowledgements, end the stream; returns frames left unacked."""
        deadline = time.monotonic() + drain_timeout_s
        async with self._acked:
            while self._unacked and not self._broken and time.monotonic() < deadline:
                try:
                    await asyncio.wait_for(self._acked.wait(), max(0.01, deadline - time.monotonic()))
                except TimeoutError:
                    break
        left = len(self._unacked)
        if not self._broken:
            with contextlib.suppress(asyncio.QueueFull):
                self._outbox.put_nowait(None)
        await self._tasks.close(timeout_s=1.0)
        if self._channel is not None:
            await self._channel.close()
        return left
