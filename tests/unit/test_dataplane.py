"""The agent's data plane with a fake transport (no sockets): credits, acks, breaks, re-opens."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from agent.dataplane import AckFn, DropLog, FrameStream, Radio, receive
from synergy.errors import InvalidArgument, ResourceExhausted
from synergy.reports import FrameOutcome
from synergy.types import LINK_PRESETS
from synergy.wire.frames import FrameAck, FrameCall, StreamBroken, StreamTarget, serve_frames, stream_target
from synergy.wire.reports import outcome_from_proto
from synergy.wire.tensors import Frame, encode_frame

TARGET = StreamTarget("app-1", 3, 1)


def frame(seq: int, app: str = "app-1", nbytes: int = 4) -> Frame:
    return Frame(app, 3, 1, seq, 0.0, {"x": np.zeros((1, nbytes), np.int8)}, "dev")


def fresh(seq: int) -> Frame:
    """A frame captured just now: within any replay bound."""
    return Frame("app-1", 3, 1, seq, time.time(), {"x": np.zeros((1, 4), np.int8)}, "dev")


async def eventually(check: Any, timeout_s: float = 2.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.002)


class FakeCall:
    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport
        self.written: list[int] = []
        self.broken = ""
        self.cancelled = False
        self.done_writing_called = False
        self._acks: asyncio.Queue[FrameAck | StreamBroken | None] = asyncio.Queue()

    async def write(self, f: Frame) -> None:
        if f.seq in self.transport.unsendable:
            raise ResourceExhausted(f"frame {f.seq} is too big")
        if self.broken or self.transport.unreachable:
            raise StreamBroken(self.broken or "next hop unreachable")
        self.written.append(f.seq)
        if self.transport.auto_ack:
            self.ack(f.seq)

    async def acks(self) -> AsyncIterator[FrameAck]:
        while True:
            item = await self._acks.get()
            if item is None:
                return
            if isinstance(item, StreamBroken):
                raise item
            yield item

    def ack(self, seq: int, outcome: FrameOutcome = FrameOutcome.ACCEPTED, reason: str = "") -> None:
        self._acks.put_nowait(FrameAck(seq, outcome, reason))

    def break_(self, reason: str) -> None:
        self.broken = reason
        self._acks.put_nowait(StreamBroken(reason))

    async def done_writing(self) -> None:
        self.done_writing_called = True
        self._acks.put_nowait(None)  # the receiver finishes: everything was acknowledged

    def cancel(self) -> None:
        self.cancelled = True
        self._acks.put_nowait(StreamBroken("cancelled"))


class FakeTransport:
    def __init__(self, *, auto_ack: bool = False) -> None:
        self.calls: list[FakeCall] = []
        self.opened_at: list[float] = []
        self.auto_ack = auto_ack
        self.unreachable = False
        self.unsendable: set[int] = set()
        self.closed = False

    def open(self, target: StreamTarget) -> FrameCall:
        assert target == TARGET
        call = FakeCall(self)
        self.calls.append(call)
        self.opened_at.append(time.monotonic())
        return call

    async def close(self) -> None:
        self.closed = True


class Recorder:
    def __init__(self) -> None:
        self.dropped: list[tuple[int, str]] = []
        self.sent = 0

    def on_drop(self, f: Frame, reason: str) -> None:
        self.dropped.append((f.seq, reason))

    def on_sent(self, nbytes: int) -> None:
        self.sent += 1


def make_stream(transport: FakeTransport, rec: Recorder, **kwargs: Any) -> FrameStream:
    stream = FrameStream(
        transport=transport,
        target=TARGET,
        peer_link=LINK_PRESETS["loopback"],
        radio=Radio(LINK_PRESETS["loopback"], shaped=False),
        on_drop=rec.on_drop,
        on_sent=rec.on_sent,
        **kwargs,
    )
    stream.start()
    return stream


async def test_the_window_bounds_frames_in_flight_and_acks_grant_credits() -> None:
    transport, rec = FakeTransport(), Recorder()
    stream = make_stream(transport, rec, window=2)
    await stream.send(frame(1))
    await stream.send(frame(2))
    third = asyncio.ensure_future(stream.send(frame(3)))
    await eventually(lambda: len(transport.calls) == 1 and transport.calls[0].written == [1, 2])
    await asyncio.sleep(0.02)
    assert not third.done(), "a third frame must wait for a credit"
    transport.calls[0].ack(1)
    await asyncio.wait_for(third, 1)
    await eventually(lambda: transport.calls[0].written == [1, 2, 3])
    # A frame the receiver rejects is its to report: the sender only frees the credit.
    transport.calls[0].ack(2, FrameOutcome.REJECTED, "wrong shape")
    transport.calls[0].ack(3)
    await eventually(lambda: stream.in_flight == 0)
    assert rec.dropped == [] and rec.sent == 3
    assert await stream.close(1.0) == 0
    assert transport.calls[0].done_writing_called and transport.closed


async def test_a_broken_stream_replays_what_was_in_flight_first_and_reopens() -> None:
    transport, rec = FakeTransport(), Recorder()
    stream = make_stream(transport, rec, window=4, backoff_min_s=0.05, backoff_max_s=0.2)
    for seq in (1, 2, 3):
        await stream.send(fresh(seq))
    await eventually(lambda: len(transport.calls) == 1 and transport.calls[0].written == [1, 2, 3])
    transport.calls[0].ack(1)
    await eventually(lambda: stream.in_flight == 2)
    broke_at = time.monotonic()
    transport.calls[0].break_("next hop 10.0.0.2:1 unavailable: UNAVAILABLE: peer restarted")
    await stream.send(fresh(4))
    # The frames written on the broken call are written again on the next call, before the
    # next frame, after the backoff (not dropped, not lost for the epoch's life).
    await eventually(lambda: len(transport.calls) == 2 and transport.calls[1].written == [2, 3, 4])
    assert transport.opened_at[1] - broke_at >= 0.04
    assert (stream.breaks, stream.reopens, stream.replayed) == (1, 1, 2)
    for seq in (2, 3, 4):
        transport.calls[1].ack(seq)
    await eventually(lambda: stream.in_flight == 0)
    assert rec.dropped == []
    assert await stream.close(1.0) == 0


async def test_frames_past_the_replay_bound_are_dropped_with_the_reason() -> None:
    transport, rec = FakeTransport(), Recorder()
    stream = make_stream(transport, rec, window=4, backoff_min_s=0.01, replay_max_age_s=1.0)
    await stream.send(frame(1))  # captured at 0.0: long past the bound
    await stream.send(fresh(2))
    await eventually(lambda: len(transport.calls) == 1 and transport.calls[0].written == [1, 2])
    transport.calls[0].break_("next hop 10.0.0.2:1 unavailable: UNAVAILABLE: peer restarted")
    await eventually(lambda: len(rec.dropped) == 1)
    seq, reason = rec.dropped[0]
    assert seq == 1 and "peer restarted" in reason and "past the replay bound" in reason and "> 1 s" in reason
    await eventually(lambda: len(transport.calls) == 2 and transport.calls[1].written == [2])
    transport.calls[1].ack(2)
    await eventually(lambda: stream.in_flight == 0)
    await stream.close(1.0)


async def test_done_tells_upstream_once_the_next_hop_is_done_with_the_frame() -> None:
    transport, rec = FakeTransport(), Recorder()
    stream = make_stream(transport, rec, window=4)
    outcomes: dict[int, tuple[FrameOutcome, str]] = {}

    def done_for(seq: int) -> AckFn:
        return lambda outcome, reason: outcomes.__setitem__(seq, (outcome, reason))

    transport.unsendable.add(3)
    for seq in (1, 2, 3):
        await stream.send(fresh(seq), done_for(seq))
    await eventually(lambda: transport.calls and transport.calls[0].written == [1, 2])
    assert 1 not in outcomes, "no acknowledgement upstream before the next hop's"
    transport.calls[0].ack(1)
    transport.calls[0].ack(2, FrameOutcome.REJECTED, "dropped at the target: wrong shape")
    await eventually(lambda: len(outcomes) == 3)
    assert outcomes[1] == (FrameOutcome.ACCEPTED, "")
    # Rejected further on: the hop that dropped it reported it; upstream only hears why.
    assert outcomes[2] == (FrameOutcome.REJECTED, "dropped at the target: wrong shape")
    # Dropped here: reported here, and upstream hears it was reported.
    assert outcomes[3][0] is FrameOutcome.REJECTED and "too big" in outcomes[3][1]
    assert [seq for seq, _ in rec.dropped] == [3]
    await stream.close(1.0)


async def test_close_hands_over_what_is_left_and_does_not_wait_for_a_dead_hop() -> None:
    transport, rec = FakeTransport(), Recorder()
    stream = make_stream(transport, rec, window=2, backoff_min_s=5.0)
    await stream.send(fresh(1))
    await stream.send(fresh(2))
    waiting = asyncio.ensure_future(stream.send(fresh(3)))  # blocked: no credit
    await eventually(lambda: transport.calls and transport.calls[0].written == [1, 2])
    transport.calls[0].break_("next hop 10.0.0.2:1 unavailable: UNAVAILABLE: connection refused")
    await eventually(lambda: stream.failing)
    taken: list[int] = []

    def handover(f: Frame, done: AckFn | None, origin: Frame | None, why: str) -> None:
        taken.append(f.seq)

    started = time.monotonic()
    assert await stream.close(30.0, handover=handover) == 2
    await asyncio.wait_for(waiting, 1)
    assert time.monotonic() - started < 2.0, "a next hop that is down is not waited for"
    assert sorted(taken) == [1, 2, 3] and rec.dropped == []


async def test_a_returned_frame_goes_to_the_handler_with_its_origin_unreported() -> None:
    transport, rec = FakeTransport(), Recorder()
    returned: list[tuple[int, int | None, str]] = []

    def on_return(f: Frame, done: AckFn | None, origin: Frame | None, why: str) -> None:
        returned.append((f.seq, origin.seq if origin is not None else None, why))

    stream = make_stream(transport, rec, window=1, on_return=on_return)
    await stream.send(fresh(1), None, fresh(1))
    await eventually(lambda: transport.calls and transport.calls[0].written == [1])
    transport.calls[0].ack(1, FrameOutcome.RETURNED, "epoch 3 retired at ring")
    await stream.send(fresh(2))  # the credit came back
    await eventually(lambda: returned)
    assert returned == [(1, 1, "epoch 3 retired at ring")] and rec.dropped == []
    transport.calls[0].ack(2)
    await stream.close(1.0)


async def test_reopen_backoff_doubles_to_its_cap_while_the_peer_stays_down() -> None:
    transport, rec = FakeTransport(), Recorder()
    transport.unreachable = True
    stream = make_stream(transport, rec, window=1, backoff_min_s=0.02, backoff_max_s=0.08)
    for seq in range(1, 7):
        await stream.send(frame(seq))
    await eventually(lambda: len(rec.dropped) == 6)
    assert all("unreachable" in reason for _, reason in rec.dropped)
    gaps = [b - a for a, b in zip(transport.opened_at, transport.opened_at[1:], strict=False)]
    assert len(gaps) == 5 and stream.reopens == 5
    assert gaps[0] >= 0.015 and gaps[1] >= 0.035 and gaps[2] >= 0.07
    assert max(gaps) < 0.3, "the backoff is capped"
    # The peer is back: frames flow, and the next break retries quickly again.
    transport.unreachable = False
    transport.auto_ack = True
    await stream.send(frame(7))
    await eventually(lambda: stream.in_flight == 0 and transport.calls[-1].written == [7])
    assert len(rec.dropped) == 6
    await stream.close(1.0)


async def test_a_frame_that_cannot_travel_is_dropped_alone() -> None:
    transport, rec = FakeTransport(auto_ack=True), Recorder()
    transport.unsendable = {2}
    stream = make_stream(transport, rec)
    for seq in (1, 2, 3):
        await stream.send(frame(seq))
    await eventually(lambda: stream.in_flight == 0)
    assert rec.dropped == [(2, "frame cannot be sent: frame 2 is too big")]
    assert len(transport.calls) == 1 and transport.calls[0].written == [1, 3] and stream.breaks == 0
    await stream.close(1.0)


async def test_close_reports_what_was_never_acknowledged() -> None:
    transport, rec = FakeTransport(), Recorder()
    stream = make_stream(transport, rec)
    await stream.send(frame(1))
    await stream.send(frame(2))
    await eventually(lambda: transport.calls and transport.calls[0].written == [1, 2])
    transport.calls[0].ack(1)
    left = await stream.close(0.05)
    assert left == 1
    assert rec.dropped == [(2, "stream closed before the next hop acknowledged")]
    assert transport.closed
    # Frames handed to a closed stream are reported at once.
    await stream.send(frame(9))
    assert rec.dropped[-1][0] == 9


async def test_a_sender_waiting_for_a_credit_at_close_gets_its_frame_reported() -> None:
    transport, rec = FakeTransport(), Recorder()
    stream = make_stream(transport, rec, window=1)
    await stream.send(frame(1))
    waiting = asyncio.ensure_future(stream.send(frame(2)))
    await eventually(lambda: transport.calls and transport.calls[0].written == [1])
    assert await stream.close(0.02) == 1
    await asyncio.wait_for(waiting, 1)
    assert sorted(seq for seq, _ in rec.dropped) == [1, 2]
    assert stream.in_flight == 0


# -- receiving end ---------------------------------------------------------------------------


async def frames_of(*items: Frame | Exception) -> AsyncIterator[Frame]:
    for item in items:
        if isinstance(item, Exception):
            raise item
        yield item


async def test_inbound_frames_are_acknowledged_after_processing_and_the_stream_ends_when_done() -> None:
    pending: list[tuple[int, AckFn]] = []

    async def accept(f: Frame, ack: AckFn) -> None:
        pending.append((f.seq, ack))

    acks = receive(frames_of(frame(1), frame(2)), accept)
    first = asyncio.ensure_future(acks.__anext__())
    await eventually(lambda: len(pending) == 2)
    await asyncio.sleep(0.01)
    assert not first.done(), "no ack before the frame was processed"
    pending[1][1](FrameOutcome.REJECTED, "no such segment")
    assert await asyncio.wait_for(first, 1) == FrameAck(2, FrameOutcome.REJECTED, "no such segment")
    pending[0][1](FrameOutcome.ACCEPTED, "")
    pending[0][1](FrameOutcome.REJECTED, "twice")  # a frame is acknowledged once
    assert [a async for a in acks] == [FrameAck(1, FrameOutcome.ACCEPTED, "")]


async def test_a_malformed_inbound_stream_ends_with_its_error_after_the_acks_given() -> None:
    async def accept(f: Frame, ack: AckFn) -> None:
        ack(FrameOutcome.ACCEPTED, "")

    got: list[FrameAck] = []
    with pytest.raises(InvalidArgument, match="data chunk without a frame header"):
        async for ack in receive(frames_of(frame(1), InvalidArgument("data chunk without a frame header")), accept):
            got.append(ack)
    assert got == [FrameAck(1, FrameOutcome.ACCEPTED, "")]


async def test_serve_frames_turns_chunks_into_frames_and_acks_into_protos() -> None:
    seen: list[Frame] = []

    async def accept(f: Frame, ack: AckFn) -> None:
        seen.append(f)
        ack(FrameOutcome.ACCEPTED if f.seq == 1 else FrameOutcome.REJECTED, "" if f.seq == 1 else "late")

    async def chunks() -> AsyncIterator[bytes]:
        for f in (frame(1, nbytes=300), frame(2)):
            for message in encode_frame(f, 100):  # seq 1 in 3 chunks, seq 2 in one message
                yield message

    acks = [a async for a in serve_frames(chunks(), lambda frames: receive(frames, accept))]
    assert [(a.seq, outcome_from_proto(a.outcome), a.reason) for a in acks] == [
        (1, FrameOutcome.ACCEPTED, ""),
        (2, FrameOutcome.REJECTED, "late"),
    ]
    assert seen[0].tensors["x"].shape == (1, 300)


def test_stream_target_reads_the_metadata_and_refuses_nonsense() -> None:
    good = (("synergy-app", "app-1"), ("synergy-epoch", "3"), ("synergy-segment", "1"))
    assert stream_target(good) == TARGET
    assert stream_target(None) is None
    assert stream_target(good[:2]) is None
    assert stream_target((("synergy-app", "a"), ("synergy-epoch", "-1"), ("synergy-segment", "1"))) is None
    assert stream_target((("synergy-app", "a"), ("synergy-epoch", str(2**64)), ("synergy-segment", "1"))) is None
    assert stream_target((("synergy-app", "x" * 10_000), ("synergy-epoch", "1"), ("synergy-segment", "1"))) is None


# -- drop log --------------------------------------------------------------------------------


class FakeLogger:
    def __init__(self) -> None:
        self.lines: list[dict[str, Any]] = []

    def warning(self, event: str, **fields: Any) -> None:
        self.lines.append({"event": event, **fields})


def test_drop_warnings_are_rate_limited_per_app_with_a_count() -> None:
    now = [100.0]
    logger = FakeLogger()
    drops = DropLog(logger, interval_s=1.0, clock=lambda: now[0])
    for seq in range(50):
        drops.dropped(frame(seq), "queue full")
        now[0] += 0.01
    drops.dropped(frame(0, app="other"), "queue full")
    assert [(line["app"], line["count"]) for line in logger.lines] == [("app-1", 1), ("other", 1)]
    now[0] += 1.0
    drops.dropped(frame(99), "queue full")
    assert (logger.lines[-1]["app"], logger.lines[-1]["count"]) == ("app-1", 50)
    drops.dropped(frame(100), "queue full")
    drops.flush()
    assert (logger.lines[-1]["app"], logger.lines[-1]["count"]) == ("app-1", 1)
    assert len(logger.lines) == 4


async def test_a_call_that_breaks_while_its_stream_closes_hands_its_frames_over() -> None:
    # A re-plan: the stream's epoch closes while the next hop already retired that epoch and
    # refuses the call; what was written on it goes to the new epoch's path, not dropped.
    transport, rec = FakeTransport(), Recorder()
    stream = make_stream(transport, rec, window=4)
    await stream.send(fresh(1))
    await stream.send(fresh(2))
    await eventually(lambda: transport.calls and transport.calls[0].written == [1, 2])
    taken: list[tuple[int, str]] = []

    def handover(f: Frame, done: AckFn | None, origin: Frame | None, why: str) -> None:
        taken.append((f.seq, why))

    closing = asyncio.ensure_future(stream.close(30.0, handover=handover))
    await asyncio.sleep(0.01)
    transport.calls[0].break_("next hop 10.0.0.2:1 unavailable: PERMISSION_DENIED: holds no such epoch")
    assert await asyncio.wait_for(closing, 2.0) == 0
    assert [seq for seq, _ in taken] == [1, 2] and "PERMISSION_DENIED" in taken[0][1]
    assert rec.dropped == []
