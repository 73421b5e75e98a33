"""The agent's data plane: frames between agents, both ends of one (app, epoch, hop) stream.

**Sending** (:class:`FrameStream`). Flow control is credit based: a stream holds at most
``window`` frames that the receiver has not acknowledged; :meth:`FrameStream.send` waits for
a credit, so a slow stage slows the stages before it all the way back to the source, and no
queue grows with backlog. A frame is acknowledged once the receiver has processed it and
handed it on. From the moment ``send`` returns, the stream accounts for the frame: it is
acknowledged, rejected by the receiver (which reports that drop itself, knowing the reason
best), or reported dropped by the sender with the reason — nothing disappears silently.

A call that breaks (the peer restarted, the network failed) loses only the frames written on
it: they are reported dropped with the break's reason (replaying them is for a later epoch).
Frames still queued stay queued, and the next frame re-opens the call after a bounded,
growing backoff (0.1 s doubling to 2 s, back to 0.1 s once the peer acknowledges again), so a
stream never keeps dropping frames for the rest of its epoch. Breaks and re-opens are counted.

In emulation each hop is shaped to the slower of the two devices' links (bandwidth,
per-message overhead and latency), and a device's :class:`Radio` carries one transmission at a
time; a stream transmits in its own task so that the stage's compute overlaps its radio.

**Receiving** (:func:`receive`). Frames of one inbound stream are accepted in order (each
waits for room in the segment's inbox); each frame is acknowledged after it was processed and
handed on (ACCEPTED) or refused with the reason (REJECTED). The ack stream ends once the
sender half-closed and every frame it sent is acknowledged.

No proto here: the transport is :class:`synergy.wire.frames.FrameTransport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

import structlog

from synergy.errors import SynergyError, Unavailable
from synergy.reports import FrameOutcome
from synergy.tasks import TaskOwner
from synergy.types import LinkProfile
from synergy.wire.frames import FrameAck, FrameCall, FrameTransport, StreamBroken, StreamTarget
from synergy.wire.tensors import Frame

__all__ = ["AckFn", "DropHandler", "DropLog", "FrameStream", "Radio", "receive"]

log = structlog.get_logger(__name__)

#: Frames in flight per stream before the sender waits for acknowledgements.
DEFAULT_WINDOW = 4
#: Re-open backoff of a broken stream: first delay, and its cap.
REOPEN_BACKOFF_MIN_S = 0.1
REOPEN_BACKOFF_MAX_S = 2.0
#: After close() ended the call politely, how long the receiver may take to finish.
CLOSE_GRACE_S = 1.0

#: Reports one frame lost (frame, reason); the runtime turns it into a drop report.
DropHandler = Callable[[Frame, str], None]
#: Acknowledges one inbound frame: (outcome, reason).
AckFn = Callable[[FrameOutcome, str], None]


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


class DropLog:
    """``frame_dropped`` warnings, at most one line per app per ``interval_s``.

    Each line carries ``count``: the drops of that app it stands for (itself and those
    suppressed since the previous line). :meth:`flush` writes what is still suppressed.
    """

    def __init__(self, logger: Any, interval_s: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = logger
        self._interval_s = interval_s
        self._clock = clock
        #: app -> [time of its last line, drops suppressed since]
        self._apps: dict[str, list[float]] = {}

    def dropped(self, frame: Frame, reason: str) -> None:
        now = self._clock()
        entry = self._apps.get(frame.app_id)
        if entry is not None and now - entry[0] < self._interval_s:
            entry[1] += 1
            return
        count = 1 + (int(entry[1]) if entry is not None else 0)
        self._apps[frame.app_id] = [now, 0]
        self._log.warning(
            "frame_dropped", app=frame.app_id, epoch=frame.epoch, seq=frame.seq, reason=reason, count=count
        )

    def flush(self) -> None:
        for app, entry in self._apps.items():
            if entry[1]:
                self._log.warning("frame_dropped", app=app, count=int(entry[1]), reason="(see earlier lines)")
                entry[1] = 0


class FrameStream:
    """The sending end of one (app, epoch, hop) stream; see the module docstring."""

    def __init__(
        self,
        *,
        transport: FrameTransport,
        target: StreamTarget,
        peer_link: LinkProfile,
        radio: Radio,
        on_drop: DropHandler,
        on_sent: Callable[[int], None],
        window: int = DEFAULT_WINDOW,
        backoff_min_s: float = REOPEN_BACKOFF_MIN_S,
        backoff_max_s: float = REOPEN_BACKOFF_MAX_S,
        label: str = "",
    ) -> None:
        self._transport = transport
        self._target = target
        self._peer_link = peer_link
        self._radio = radio
        self._on_drop = on_drop
        self._on_sent = on_sent
        self._credits = asyncio.Semaphore(window)
        self._outbox: asyncio.Queue[Frame] = asyncio.Queue()
        #: Every frame this stream accounts for: queued or written, not yet acked or dropped.
        self._unacked: dict[int, Frame] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._call: FrameCall | None = None
        self._no_call = asyncio.Event()
        self._no_call.set()
        #: Seqs written on the current call and not yet acknowledged: lost if it breaks.
        self._on_call: set[int] = set()
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = backoff_min_s
        self._retry_at = 0.0
        #: Broke and no ack since: further breaks are the same outage.
        self._failing = False
        self._closing = False
        self._closed = False
        self._tasks = TaskOwner(f"stream:{label}")
        self._log = log.bind(stream=label)
        #: Calls that broke, and calls opened again after a break.
        self.breaks = 0
        self.reopens = 0

    @property
    def in_flight(self) -> int:
        return len(self._unacked)

    def start(self) -> None:
        self._tasks.spawn(self._write_loop(), "writer")

    async def send(self, frame: Frame) -> None:
        """Hand a frame to the stream; waits while ``window`` frames are unacknowledged.

        Cancelled while waiting, the frame stays the caller's; once this returns, the stream
        accounts for it.
        """
        if self._closing:
            self._on_drop(frame, "stream to the next hop is closed")
            return
        await self._credits.acquire()
        if self._closed:  # closed while this waited for a credit: no writer any more
            self._credits.release()
            self._on_drop(frame, "stream to the next hop is closed")
            return
        if frame.seq in self._unacked:
            self._credits.release()
            self._on_drop(frame, f"seq {frame.seq} is already in flight on this stream")
            return
        self._unacked[frame.seq] = frame
        self._idle.clear()
        self._outbox.put_nowait(frame)

    def _resolve(self, seq: int, drop_reason: str | None = None) -> None:
        """The stream is done with ``seq``: acknowledged, or (with a reason) lost."""
        frame = self._unacked.pop(seq, None)
        if frame is None:
            return
        self._on_call.discard(seq)
        self._credits.release()
        if not self._unacked:
            self._idle.set()
        if drop_reason is not None:
            self._on_drop(frame, drop_reason)

    async def _write_loop(self) -> None:
        while True:
            frame = await self._outbox.get()
            if frame.seq not in self._unacked:
                continue  # already given up (the stream is closing)
            await self._radio.transmit(frame.nbytes, self._peer_link)
            try:
                call = await self._open_call()
            except Exception as exc:  # e.g. the transport is closed; retried like a break
                self._log.exception("frame_stream_open_failed")
                self._failed_open(frame, f"cannot open a stream to the next hop: {type(exc).__name__}: {exc}")
                continue
            self._on_call.add(frame.seq)
            try:
                await call.write(frame)
            except StreamBroken as exc:
                self._break(call, str(exc))
                self._resolve(frame.seq, str(exc))  # already done if the call was still current
                continue
            except SynergyError as exc:
                # This frame cannot travel (e.g. over the frame limit); the call is fine.
                self._resolve(frame.seq, f"frame cannot be sent: {exc}")
                continue
            except Exception as exc:  # a transport bug must not end the stream for the epoch
                self._log.exception("frame_stream_write_failed")
                reason = f"stream to the next hop failed: {type(exc).__name__}: {exc}"
                self._break(call, reason)
                self._resolve(frame.seq, reason)
                continue
            self._on_sent(frame.nbytes)

    async def _open_call(self) -> FrameCall:
        if self._call is not None:
            return self._call
        delay = self._retry_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        call = self._transport.open(self._target)
        self._call, self._on_call = call, set()
        self._no_call.clear()
        if self.breaks:
            self.reopens += 1
            self._log.info("frame_stream_reopened", reopens=self.reopens)
        self._tasks.spawn(self._read_acks(call), "acks")
        return call

    def _failed_open(self, frame: Frame, reason: str) -> None:
        self.breaks += 1
        self._retry_at = time.monotonic() + self._backoff_s
        self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
        self._failing = True
        self._resolve(frame.seq, reason)

    async def _read_acks(self, call: FrameCall) -> None:
        reason = "stream ended by the next hop before it acknowledged"
        try:
            async for ack in call.acks():
                self._acked(ack)
        except SynergyError as exc:
            reason = str(exc)
        except Exception as exc:  # a transport bug: the call is over all the same
            self._log.exception("frame_stream_read_failed")
            reason = f"stream to the next hop failed: {type(exc).__name__}: {exc}"
        self._break(call, reason)

    def _acked(self, ack: FrameAck) -> None:
        if ack.seq not in self._unacked:
            return  # already given up
        self._backoff_s = self._backoff_min_s  # the peer answers: a later break retries quickly
        self._failing = False
        if ack.outcome is FrameOutcome.REJECTED:
            # The receiver reports this drop itself (it knows the reason best).
            self._log.debug("frame_rejected_by_peer", seq=ack.seq, reason=ack.reason)
        self._resolve(ack.seq)

    def _break(self, call: FrameCall, reason: str) -> None:
        """``call`` is over: drop what was written on it, let the next frame re-open."""
        if call is not self._call:
            return
        self._call = None
        self._no_call.set()
        call.cancel()
        lost = sorted(self._on_call)
        self._on_call = set()
        if self._closing and not lost:
            return
        self.breaks += 1
        self._retry_at = time.monotonic() + self._backoff_s
        # One warning per outage of the peer: failed re-opens before the next ack are debug.
        emit = self._log.debug if self._failing else self._log.warning
        emit("frame_stream_broken", reason=reason, frames_lost=len(lost), retry_in_s=round(self._backoff_s, 3))
        self._failing = True
        self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
        for seq in lost:
            self._resolve(seq, reason)

    async def close(self, drain_timeout_s: float) -> int:
        """Wait (bounded) for acknowledgements, end the stream; returns frames left unacked.

        Frames still unacknowledged at the deadline are reported dropped.
        """
        self._closing = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), max(0.0, drain_timeout_s))
        left = len(self._unacked)
        call = self._call
        if call is not None and not left:
            # End politely: the receiver finishes once it acknowledged everything.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(call.done_writing(), CLOSE_GRACE_S)
                await asyncio.wait_for(self._no_call.wait(), CLOSE_GRACE_S)
        await self._tasks.close(timeout_s=1.0)
        self._closed = True
        if self._call is not None:
            self._call.cancel()
            self._call = None
            self._no_call.set()
        for seq in sorted(self._unacked):
            self._resolve(seq, "stream closed before the next hop acknowledged")
        await self._transport.close()
        return left


class _AckQueue:
    """Acks of one inbound stream; ends after the sender half-closed and every frame is acked."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[FrameAck | SynergyError | None] = asyncio.Queue()
        self._pending = 0
        self._reading = True

    def expect(self, seq: int) -> AckFn:
        self._pending += 1
        done = False

        def ack(outcome: FrameOutcome, reason: str) -> None:
            nonlocal done
            if done:  # a frame is acknowledged once
                return
            done = True
            self._pending -= 1
            self._queue.put_nowait(FrameAck(seq, outcome, reason))
            self._settle()

        return ack

    def fail(self, error: SynergyError) -> None:
        self._queue.put_nowait(error)

    def reading_done(self) -> None:
        self._reading = False
        self._settle()

    def _settle(self) -> None:
        if not self._reading and self._pending == 0:
            self._queue.put_nowait(None)

    async def get(self) -> FrameAck | SynergyError | None:
        return await self._queue.get()


async def receive(
    frames: AsyncIterator[Frame],
    accept: Callable[[Frame, AckFn], Awaitable[None]],
) -> AsyncGenerator[FrameAck, None]:
    """The receiving end of one stream: feeds ``accept`` and yields the acks it gives.

    A malformed stream (``frames`` raises a SynergyError) ends it with that error after the
    acks already given.
    """
    acks = _AckQueue()
    tasks = TaskOwner("inbound")

    async def read() -> None:
        try:
            async for frame in frames:
                await accept(frame, acks.expect(frame.seq))
        except SynergyError as exc:
            acks.fail(exc)
        except Exception as exc:  # the transport failed under us: end the stream, keep the agent
            log.warning("frame_stream_read_failed", error=repr(exc))
            acks.fail(Unavailable(f"frame stream failed: {type(exc).__name__}"))
        finally:
            acks.reading_done()

    tasks.spawn(read(), "reader")
    try:
        while True:
            item = await acks.get()
            if item is None:
                return
            if isinstance(item, SynergyError):
                raise item
            yield item
    finally:
        await tasks.close(timeout_s=1.0)
