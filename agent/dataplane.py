"""The agent's data plane: frames between agents, both ends of one (app, epoch, hop) stream.

**Sending** (:class:`FrameStream`). Flow control is credit based: a stream holds at most
``window`` frames that the next hop has not acknowledged; :meth:`FrameStream.send` waits for
a credit. A hop acknowledges a frame only once it is *done* with it: delivered at the target,
acknowledged in turn by the hop after it, or dropped and reported. Acknowledgements therefore
travel back from the target, and a sender's window bounds every frame downstream of it — so
a slow stage slows the stages before it all the way back to the source, no queue grows with
backlog, and a frame is never forgotten by one hop before the next is done with it. From the
moment ``send`` returns, the stream accounts for the frame: acknowledged, rejected by a later
hop (which reports that drop itself, knowing the reason best), or reported dropped by the
sender with the reason — nothing disappears silently, and ``send``'s ``done`` callback passes
the outcome upstream.

A call that breaks (the peer restarted, the network failed) keeps what was written on it: the
next call writes those frames again first (*replay*), unless they are older than the replay
bound (``REPLAY_MAX_AGE_S`` from capture), which are dropped with the reason. A hop may thus
see a frame twice; targets and the coordinator count each seq once. Frames still queued stay
queued, and the next frame re-opens the call after a bounded, growing backoff (0.1 s doubling
to 2 s, back to 0.1 s once the peer acknowledges again). When an epoch retires, what its
streams still hold is handed to the new epoch's path on the same device where one carries the
same tensors (see ``agent.runtime``), and dropped with the reason otherwise.

In emulation each hop is shaped to the slower of the two devices' links (bandwidth,
per-message overhead and latency), and a device's :class:`Radio` carries one transmission at a
time; a stream transmits in its own task so that the stage's compute overlaps its radio.

**Receiving** (:func:`receive`). Frames of one inbound stream are accepted in order (each
waits for room in the segment's inbox); each frame is acknowledged once this device is done
with it (ACCEPTED: delivered, or acknowledged by the next hop) or refused with the reason
(REJECTED). The ack stream ends once the
sender half-closed and every frame it sent is acknowledged.

No proto here: the transport is :class:`synergy.wire.frames.FrameTransport`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from synergy.errors import SynergyError, Unavailable
from synergy.reports import FrameOutcome
from synergy.tasks import TaskOwner
from synergy.types import LinkProfile
from synergy.wire.frames import FrameAck, FrameCall, FrameTransport, StreamBroken, StreamTarget
from synergy.wire.tensors import Frame

__all__ = ["AckFn", "DropHandler", "DropLog", "FrameStream", "Handover", "Radio", "receive"]

log = structlog.get_logger(__name__)

#: Frames in flight per stream before the sender waits for acknowledgements.
DEFAULT_WINDOW = 4
#: Re-open backoff of a broken stream: first delay, and its cap.
REOPEN_BACKOFF_MIN_S = 0.1
REOPEN_BACKOFF_MAX_S = 2.0
#: After close() ended the call politely, how long the receiver may take to finish.
CLOSE_GRACE_S = 1.0
#: How often close() checks whether the next hop went down while it waits for acks.
CLOSE_POLL_S = 0.05
#: Frames a broken call took with it are written again on the next call unless they are
#: older than this (capture to now): past it a frame is stale, and dropped with the reason.
REPLAY_MAX_AGE_S = 5.0

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


@dataclass
class _Held:
    """A frame the stream accounts for, with whom to tell when it is done with it."""

    frame: Frame
    #: The upstream's acknowledgement of the frame this one came from (None: a source's).
    done: AckFn | None
    #: At a source: the captured input this frame was computed from (to replay it from).
    origin: Frame | None = None


#: Takes over a frame the stream no longer carries (frame, done, origin, why): a closing
#: stream's unacknowledged frames, and frames the next hop RETURNED. It replays the frame on
#: a new path or accounts for it otherwise (and calls ``done``).
Handover = Callable[[Frame, "AckFn | None", "Frame | None", str], None]


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
        replay_max_age_s: float = REPLAY_MAX_AGE_S,
        on_return: Handover | None = None,
        label: str = "",
    ) -> None:
        self._transport = transport
        self._target = target
        self._peer_link = peer_link
        self._radio = radio
        self._on_drop = on_drop
        self._on_sent = on_sent
        self._on_return = on_return
        self._window = window
        self._credits = asyncio.Semaphore(window)
        #: Seqs to write, in order (frames replayed after a break go first).
        self._outbox: deque[int] = deque()
        self._outbox_ready = asyncio.Event()
        #: Every frame this stream accounts for: queued or written, not yet acked or dropped.
        self._unacked: dict[int, _Held] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        self._call: FrameCall | None = None
        self._no_call = asyncio.Event()
        self._no_call.set()
        #: Seqs written on the current call and not yet acknowledged: replayed if it breaks.
        self._on_call: set[int] = set()
        self._backoff_min_s = backoff_min_s
        self._backoff_max_s = backoff_max_s
        self._backoff_s = backoff_min_s
        self._retry_at = 0.0
        self._replay_max_age_s = replay_max_age_s
        #: Broke and no ack since: further breaks are the same outage.
        self._failing = False
        self._closing = False
        self._closed = False
        self._handover: Handover | None = None
        self._tasks = TaskOwner(f"stream:{label}")
        self._log = log.bind(stream=label)
        #: Calls that broke, calls opened again after a break, frames written again after one.
        self.breaks = 0
        self.reopens = 0
        self.replayed = 0

    @property
    def in_flight(self) -> int:
        return len(self._unacked)

    @property
    def free_credits(self) -> int:
        """Frames :meth:`send` would take now without waiting."""
        return max(0, self._window - len(self._unacked))

    def start(self) -> None:
        self._tasks.spawn(self._write_loop(), "writer")

    async def send(self, frame: Frame, done: AckFn | None = None, origin: Frame | None = None) -> None:
        """Hand a frame to the stream; waits while ``window`` frames are unacknowledged.

        Cancelled while waiting, the frame stays the caller's; once this returns, the stream
        accounts for it, and calls ``done`` once: ACCEPTED when the next hop acknowledged it,
        REJECTED with the reason when it was dropped — reported by whoever dropped it. A
        source passes the captured input as ``origin``: a frame the path loses can then be
        replayed from it.
        """
        if self._closing:
            self._closed_to(frame, done, origin)
            return
        await self._credits.acquire()
        if self._closed:  # closed while this waited for a credit: no writer any more
            self._credits.release()
            self._closed_to(frame, done, origin)
            return
        if frame.seq in self._unacked:
            self._credits.release()
            self._drop_now(frame, done, f"seq {frame.seq} is already in flight on this stream")
            return
        self._unacked[frame.seq] = _Held(frame, done, origin)
        self._idle.clear()
        self._outbox.append(frame.seq)
        self._outbox_ready.set()

    def _closed_to(self, frame: Frame, done: AckFn | None, origin: Frame | None) -> None:
        """A frame sent to a closing stream: to the handover if close() was given one."""
        reason = "stream to the next hop is closed"
        if self._handover is not None:
            self._handover(frame, done, origin, reason)
        else:
            self._drop_now(frame, done, reason)

    @property
    def failing(self) -> bool:
        """The call broke and the next hop acknowledged nothing since (it is likely down)."""
        return self._failing

    def _drop_now(self, frame: Frame, done: AckFn | None, reason: str) -> None:
        self._on_drop(frame, reason)
        if done is not None:
            done(FrameOutcome.REJECTED, reason)

    def _resolve(self, seq: int, drop_reason: str | None = None, *, peer_reason: str | None = None) -> None:
        """The stream is done with ``seq``: acknowledged, rejected by the peer (which reported
        it, ``peer_reason``), or (with ``drop_reason``) lost here and reported here."""
        held = self._unacked.pop(seq, None)
        if held is None:
            return
        self._on_call.discard(seq)
        self._credits.release()
        if not self._unacked:
            self._idle.set()
        if drop_reason is not None:
            self._drop_now(held.frame, held.done, drop_reason)
        elif held.done is not None:
            if peer_reason is not None:
                held.done(FrameOutcome.REJECTED, peer_reason)
            else:
                held.done(FrameOutcome.ACCEPTED, "")

    async def _next_seq(self) -> int:
        while not self._outbox:
            self._outbox_ready.clear()
            await self._outbox_ready.wait()
        return self._outbox.popleft()

    async def _write_loop(self) -> None:
        while True:
            seq = await self._next_seq()
            held = self._unacked.get(seq)
            if held is None:
                continue  # already given up (the stream is closing)
            frame = held.frame
            await self._radio.transmit(frame.nbytes, self._peer_link)
            try:
                call = await self._open_call()
            except Exception as exc:  # e.g. the transport is closed; retried like a break
                self._log.exception("frame_stream_open_failed")
                self._failed_open(frame, f"cannot open a stream to the next hop: {type(exc).__name__}: {exc}")
                continue
            if seq not in self._unacked:
                continue  # given up while the call opened
            self._on_call.add(seq)
            try:
                await call.write(frame)
            except StreamBroken as exc:
                self._break(call, str(exc))
                continue
            except SynergyError as exc:
                # This frame cannot travel (e.g. over the frame limit); the call is fine.
                self._resolve(seq, f"frame cannot be sent: {exc}")
                continue
            except Exception as exc:  # a transport bug must not end the stream for the epoch
                self._log.exception("frame_stream_write_failed")
                self._break(call, f"stream to the next hop failed: {type(exc).__name__}: {exc}")
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
        self._replay_or_drop([frame.seq], reason)

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
            # The receiver (or a hop after it) reported this drop itself: it knows the reason best.
            self._log.debug("frame_rejected_by_peer", seq=ack.seq, reason=ack.reason)
            self._resolve(ack.seq, peer_reason=ack.reason or "rejected by the next hop")
        elif ack.outcome is FrameOutcome.RETURNED:
            # Given back unreported: this device replays it or accounts for it.
            held = self._take(ack.seq)
            reason = ack.reason or "returned by the next hop"
            if held is not None and self._on_return is not None:
                self._on_return(held.frame, held.done, held.origin, reason)
            elif held is not None:
                self._drop_now(held.frame, held.done, reason)
        else:
            self._resolve(ack.seq)

    def _take(self, seq: int) -> _Held | None:
        """Stop carrying ``seq`` without an outcome: whoever takes it accounts for it."""
        held = self._unacked.pop(seq, None)
        if held is None:
            return None
        self._on_call.discard(seq)
        self._credits.release()
        if not self._unacked:
            self._idle.set()
        return held

    def _replay_or_drop(self, seqs: list[int], reason: str) -> None:
        """Frames a broken call took with it: written again on the next call, oldest first,
        unless older than the replay bound (then dropped with the reason)."""
        now = time.time()
        again = []
        for seq in sorted(seqs):
            held = self._unacked.get(seq)
            if held is None:
                continue
            age = now - held.frame.capture_time
            if self._closing and self._handover is not None:
                # The stream is closing: its epoch's successor may carry the frame on.
                taken = self._take(seq)
                assert taken is not None
                self._handover(taken.frame, taken.done, taken.origin, reason)
            elif self._closing or age > self._replay_max_age_s:
                bound = f"past the replay bound ({age:.1f} s > {self._replay_max_age_s:g} s)"
                self._resolve(seq, f"{reason}; {'stream closing' if self._closing else bound}")
            else:
                again.append(seq)
        if again:
            self.replayed += len(again)
            self._outbox.extendleft(reversed(again))
            self._outbox_ready.set()

    def _break(self, call: FrameCall, reason: str) -> None:
        """``call`` is over: what was written on it goes again on the next call (bounded)."""
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
        emit("frame_stream_broken", reason=reason, frames_unacked=len(lost), retry_in_s=round(self._backoff_s, 3))
        self._failing = True
        self._backoff_s = min(self._backoff_s * 2, self._backoff_max_s)
        self._replay_or_drop(lost, reason)

    async def close(self, drain_timeout_s: float, handover: Handover | None = None) -> int:
        """Wait (bounded) for acknowledgements, end the stream; returns frames left unacked.

        A next hop that is down (its call broke and nothing was acknowledged since) is not
        waited for. Frames still unacknowledged at the end go to ``handover`` (a new epoch's
        path on this device) when it takes them, and are otherwise reported dropped.
        """
        self._closing = True
        self._handover = handover
        deadline = time.monotonic() + max(0.0, drain_timeout_s)
        while not self._idle.is_set() and not self._failing and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), min(CLOSE_POLL_S, max(0.0, deadline - time.monotonic())))
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
        reason = "stream closed before the next hop acknowledged"
        for seq in sorted(self._unacked):
            if handover is not None:
                held = self._take(seq)
                assert held is not None
                handover(held.frame, held.done, held.origin, reason)
            else:
                self._resolve(seq, reason)
        self._idle.set()
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
