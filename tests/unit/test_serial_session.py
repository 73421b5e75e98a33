"""The host session and the board responder over an in-memory link (socketpair streams).

A dictionary backend stands in for the chip (a run echoes its input reversed); a "damage"
function makes the link lossy with a fixed seed: every request still completes, or fails
with a clear error within its retry bounds.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from synergy.errors import DeadlineExceeded, DoesNotFit, NotFound, ProtocolError, Unavailable
from synergy.hardware.boards import load_board
from synergy.serial.board_limits import limits_for_profile
from synergy.serial.messages import (
    Ack,
    BoardKind,
    ErrorCode,
    ErrorReply,
    HelloReply,
    LoadBegin,
    OutputChunk,
    RunResult,
    RunTimings,
    Status,
    StatusReply,
    TensorShape,
    Unload,
)
from synergy.serial.protocol import FLAG_NO_SEQ, encode_frame
from synergy.serial.responder import Responder, RunOutcome, serve_stream
from synergy.serial.session import SerialSession, SessionTiming, board_error
from synergy.serial.transfer import load_messages, output_reads, run_messages

LIMITS = limits_for_profile(load_board("max78000"))
# Short timeouts keep the failure tests fast; long enough for a loaded CI machine.
FAST = SessionTiming(baud=0, reply_s=0.2, commit_s=0.2, busy_backoff_s=0.001)


class DictBackend:
    def __init__(self) -> None:
        self.held: dict[int, bytes] = {}
        self.runs = 0
        self.busy_left = 0

    async def commit(self, partition_id: int, blob: bytes) -> None:
        self.held[partition_id] = blob

    async def execute(self, partition_id: int, tensors: tuple[TensorShape, ...], data: bytes) -> RunOutcome:
        self.runs += 1
        return RunOutcome(RunTimings(1000, 10, 20, 0), tensors, data[::-1])

    def drop(self, partition_id: int) -> None:
        self.held.pop(partition_id, None)


@asynccontextmanager
async def link(
    backend: DictBackend, damage: Callable[[bytes], bytes] | None = None, timing: SessionTiming = FAST
) -> AsyncIterator[tuple[SerialSession, Responder]]:
    host_sock, board_sock = socket.socketpair()
    host_r, host_w = await asyncio.open_connection(sock=host_sock)
    board_r, board_w = await asyncio.open_connection(sock=board_sock)
    responder = Responder(backend, kind=BoardKind.MAX78000, limits=LIMITS, firmware="sim-1", boot_id=7)
    board = asyncio.ensure_future(serve_stream(responder, board_r, board_w, damage=damage))
    session = SerialSession(host_r, host_w, timing=timing)
    try:
        yield session, responder
    finally:
        await session.close()
        board_w.close()
        board.cancel()
        await asyncio.gather(board, return_exceptions=True)


async def load_and_run(session: SerialSession, pid: int, blob: bytes, data: bytes) -> bytes:
    replies = await session.pipeline(load_messages(pid, blob, max_payload=session.max_payload))
    assert all(isinstance(r, Ack) for r in replies)
    shapes = (TensorShape((len(data),)),)
    replies = await session.pipeline(run_messages(pid, shapes, data, max_payload=session.max_payload))
    result = replies[-1]
    assert isinstance(result, RunResult)
    out = bytearray(result.data)
    for read in output_reads(len(data), len(result.data), max_payload=session.max_payload):
        chunk = await session.request(read)
        assert isinstance(chunk, OutputChunk)
        out += chunk.data
    return bytes(out)


async def test_hello_load_run_output_and_status() -> None:
    backend = DictBackend()
    async with link(backend) as (session, _responder):
        hello = await session.hello()
        assert isinstance(hello, HelloReply) and hello.boot_id == 7 and hello.limits == LIMITS
        blob, data = bytes(range(256)) * 20, bytes(random.Random(1).randbytes(3000))
        assert await load_and_run(session, 3, blob, data) == data[::-1]
        assert backend.held == {3: blob} and backend.runs == 1
        status = await session.request(Status())
        assert isinstance(status, StatusReply) and [h.partition_id for h in status.holdings] == [3]
        assert await session.request(Unload(3)) == Ack() and backend.held == {}


async def test_board_errors_map_onto_the_error_tree() -> None:
    async with link(DictBackend()) as (session, _):
        await session.hello()
        with pytest.raises(DoesNotFit, match="TOO_LARGE"):
            await session.request(LoadBegin(1, LIMITS.partition_flash_bytes + 1, bytes(32)))
        with pytest.raises(NotFound, match="UNKNOWN_PARTITION"):
            await session.request(Unload(9))
        with pytest.raises(ProtocolError, match="DIGEST_MISMATCH"):
            messages = load_messages(1, b"abc")
            await session.pipeline([LoadBegin(1, 3, bytes(32)), *messages[1:]])
    error = ErrorReply(ErrorCode.BAD_VERSION, 2, 3)
    assert "board speaks protocol versions 2..3, this agent 1..1" in str(board_error(error, "HELLO"))
    assert isinstance(board_error(ErrorReply(ErrorCode.BUSY, 1, 1), "x"), Unavailable)


async def test_a_retransmission_is_answered_from_the_cache_not_executed_again() -> None:
    backend = DictBackend()
    async with link(backend) as (session, responder):
        await session.hello()
        await load_and_run(session, 1, b"w" * 10, b"\x01\x02")
        # The same RUN frame again with the RETRANSMIT flag: the board replays, does not run.
        runs, executed = backend.runs, responder.executed
        last = (session._next_seq - 1) & 0xFFFF
        replies = await responder.feed(
            encode_frame(run_messages(1, (TensorShape((2,)),), b"\x01\x02")[0], last, flags=1)
        )
        assert len(replies) == 1 and backend.runs == runs and responder.executed == executed
        assert responder.replayed == 1


async def test_a_board_that_never_answers_is_unavailable_within_the_bound() -> None:
    host_sock, board_sock = socket.socketpair()
    host_r, host_w = await asyncio.open_connection(sock=host_sock)
    session = SerialSession(host_r, host_w, timing=FAST)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(DeadlineExceeded, match="3 retransmissions"):
        await session.hello()
    assert loop.time() - started < 2.0 and session.closed and session.counters.retransmissions == 3
    with pytest.raises(Unavailable):
        await session.request(Status())
    board_sock.close()


async def test_an_unplugged_port_fails_requests_in_flight() -> None:
    host_sock, board_sock = socket.socketpair()
    host_r, host_w = await asyncio.open_connection(sock=host_sock)
    session = SerialSession(host_r, host_w, timing=SessionTiming(baud=0, reply_s=5.0))
    request = asyncio.ensure_future(session.request(Status()))
    await asyncio.sleep(0.01)
    board_sock.close()
    with pytest.raises(Unavailable, match=r"closed|failed"):
        await asyncio.wait_for(request, 2.0)
    await session.close()


async def test_busy_is_retried_then_reported() -> None:
    backend = DictBackend()
    async with link(backend) as (session, responder):
        await session.hello()
        original = responder._dispatch
        busy = {"left": 2}

        async def sometimes_busy(message):  # type: ignore[no-untyped-def]
            if busy["left"]:
                busy["left"] -= 1
                return ErrorReply(ErrorCode.BUSY, 1, 1, "erasing")
            return await original(message)

        responder._dispatch = sometimes_busy  # type: ignore[method-assign]
        assert isinstance(await session.request(Status()), StatusReply)
        assert session.counters.busy == 2
        busy["left"] = 10
        with pytest.raises(Unavailable, match="BUSY"):
            await session.request(Status())
        assert not session.closed


async def test_a_bad_crc_notice_resends_everything_outstanding() -> None:
    async with link(DictBackend(), timing=SessionTiming(baud=0, reply_s=5.0)) as (session, _responder):
        await session.hello()
        # A request lost on the way: only the board's BAD_CRC notice makes the host resend it
        # (the 5 s timeout would fail the test's bound).
        writer = session._writer
        write = writer.write
        dropped: list[bytes] = []

        def lose_first(data: bytes) -> None:
            if not dropped:
                dropped.append(data)
                write(b"\x13\x37\x00")  # what arrives instead: garbage, then a delimiter
                return
            write(data)

        writer.write = lose_first  # type: ignore[method-assign]
        reply = await asyncio.wait_for(session.request(Status()), 2.0)
        assert isinstance(reply, StatusReply) and session.counters.bad_crc_notices == 1
        assert session.counters.retransmissions == 1


def damager(seed: int, rate: float) -> Callable[[bytes], bytes]:
    rng = random.Random(seed)

    def damage(data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            roll = rng.random()
            if roll < rate / 2:
                continue  # dropped
            out.append(byte ^ (1 << rng.randrange(8)) if roll < rate else byte)
        return bytes(out)

    return damage


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_lossy_link_completes_or_fails_clearly_within_bounds(seed: int) -> None:
    backend = DictBackend()
    data = random.Random(seed).randbytes(2500)
    blob = random.Random(seed + 10).randbytes(4000)
    outcomes: list[str] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with link(backend, damage=damager(seed, 0.0004), timing=FAST) as (session, responder):
        for attempt in range(6):
            try:
                if session.closed:
                    break
                if session.hello_reply is None or attempt:
                    await session.hello()
                assert await load_and_run(session, 1, blob, data) == data[::-1]
                outcomes.append("ok")
            except (Unavailable, ProtocolError) as exc:
                # A clear error naming the request, never a hang or a wrong result.
                assert "seq" in str(exc) or "board" in str(exc)
                outcomes.append(type(exc).__name__)
        counters = responder.decoder.counters
    assert loop.time() - started < 10.0
    assert "ok" in outcomes, outcomes
    # Whatever went wrong on the line was counted.
    assert counters.frames > 0 and counters.bytes_in > 0


async def test_out_of_order_chunks_recover() -> None:
    backend = DictBackend()
    async with link(backend) as (session, _responder):
        await session.hello()
        blob = random.Random(5).randbytes(5000)
        messages = load_messages(2, blob)
        writer = session._writer
        write = writer.write
        state = {"n": 0}

        def drop_second_chunk(data: bytes) -> None:
            state["n"] += 1
            if state["n"] == 3:  # LOAD_BEGIN, chunk 0, [chunk 1 lost silently], chunk 2 ...
                return
            write(data)

        writer.write = drop_second_chunk  # type: ignore[method-assign]
        replies = await session.pipeline(messages)
        assert all(isinstance(r, Ack) for r in replies) and backend.held[2] == blob
        assert session.counters.out_of_order >= 1


async def test_bad_version_hello_is_refused_clearly() -> None:
    backend = DictBackend()
    host_sock, board_sock = socket.socketpair()
    host_r, host_w = await asyncio.open_connection(sock=host_sock)
    board_r, board_w = await asyncio.open_connection(sock=board_sock)
    responder = Responder(backend, kind=BoardKind.MAX78000, limits=LIMITS, firmware="sim-9", boot_id=1, versions=(2, 3))
    board = asyncio.ensure_future(serve_stream(responder, board_r, board_w))
    session = SerialSession(host_r, host_w, timing=FAST)
    with pytest.raises(ProtocolError, match=r"board speaks protocol versions 2\.\.3, this agent 1\.\.1"):
        await session.hello()
    await session.close()
    board_w.close()
    await asyncio.gather(board, return_exceptions=True)


def test_a_no_seq_notice_is_readable() -> None:
    frame = encode_frame(ErrorReply(ErrorCode.BAD_CRC, 1, 1, "bad"), 0, flags=FLAG_NO_SEQ)
    assert frame.endswith(b"\x00")
