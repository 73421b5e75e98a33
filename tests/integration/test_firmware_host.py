"""The C firmware core (``firmware/``), built for the host, against the Python side of the protocol.

- **Build**: ``make -C firmware host`` runs first (a missing compiler fails the tests, it does
  not skip them); the building blocks' known answers (``synergy-selftest``) and the core under
  AddressSanitizer with hostile input (``synergy-fuzz``) run as programs.
- **Conformance**: ``synergy-board`` on a pty with the echo chip, driven by the host's
  :class:`SerialSession` (and raw frames where the test needs the bytes): HELLO and limits equal
  to :func:`limits_for_profile` for both boards, load / run / unload, every refusal, the reply
  cache, damaged and cut frames, a bad version, flash compaction.
- **Differential**: the same byte stream — requests right and wrong, retransmissions, garbage,
  flipped bits — into the C board and into the Python reference responder; every reply equal
  but the uptime and the error texts.
- **Cluster**: the split-app scenario of ``test_serial_cluster.py`` (bit-exact with the whole
  model; unplug, re-plan, replug, recovery) with the C build as both boards, the emulated chip
  behind them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import re
import select
import shlex
import shutil
import signal
import subprocess
import sys
import zlib
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from synergy.errors import DoesNotFit, NotFound, ProtocolError
from synergy.hardware.boards import load_board
from synergy.hardware.mcu import MCU_MEMORY
from synergy.serial import cobs
from synergy.serial.board_limits import limits_for_profile
from synergy.serial.coprocessor import EchoBackend
from synergy.serial.messages import (
    Ack,
    BoardKind,
    ErrorCode,
    ErrorReply,
    Hello,
    HelloReply,
    LoadBegin,
    LoadChunk,
    LoadEnd,
    Message,
    OutputChunk,
    OutputRead,
    Run,
    RunInput,
    RunResult,
    Status,
    StatusReply,
    TensorShape,
    Unload,
)
from synergy.serial.protocol import (
    FLAG_NO_SEQ,
    FLAG_RETRANSMIT,
    HEADER,
    Frame,
    FrameDecoder,
    crc32,
    encode_frame,
)
from synergy.serial.responder import Responder
from synergy.serial.session import SerialSession, SessionTiming, open_port
from synergy.serial.transfer import load_messages, output_reads, run_messages
from tests.integration.test_serial_cluster import BAUD, BoardSim, split_app_survives_an_unplug_and_a_replug

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FIRMWARE = ROOT / "firmware"
START_S = 60.0
FAST = SessionTiming(baud=0, reply_s=1.0, commit_s=2.0, busy_backoff_s=0.001)
MAX78000 = load_board("max78000")
LIMITS = limits_for_profile(MAX78000)


# -- build and start ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def host_build() -> None:
    """``make -C firmware host``; no compiler is a failure (the firmware must build here)."""
    for tool in ("make", "gcc"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed: the firmware's host build needs it (apt-get install {tool})")
    result = subprocess.run(["make", "-C", str(FIRMWARE), "host"], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"make -C firmware host failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def firmware_command(board: str, chip: str, *, baud: int, symlink: Path | None = None) -> tuple[str, ...]:
    coprocessor = shlex.join(
        (sys.executable, "-m", "synergy.cli.coprocessor_cmd", "--board", board, "--chip", chip, "--no-chip-timing")
    )
    binary = FIRMWARE / "build" / f"host-{board}" / "synergy-board"
    link = ("--symlink", str(symlink)) if symlink is not None else ()
    return (str(binary), "--baud", str(baud), *link, "--coprocessor", coprocessor)


class FirmwareBoard(BoardSim):
    """The C firmware's host build plugged in under ``symlink`` (emulated chip, no chip timing)."""

    def command(self) -> tuple[str, ...]:
        return firmware_command("max78000", "emulated", baud=BAUD, symlink=self.symlink)


@dataclass
class RunningBoard:
    process: subprocess.Popen[bytes]
    path: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        assert self.process.stdout is not None
        self.process.stdout.close()


def start_board(board: str = "max78000", chip: str = "echo", *, baud: int = 0) -> RunningBoard:
    process = subprocess.Popen(
        firmware_command(board, chip, baud=baud), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], START_S)
    line = process.stdout.readline().decode().strip() if ready else ""
    if not line.startswith("/dev/pts/"):
        process.kill()
        process.wait()
        pytest.fail(f"synergy-board ({board}) did not print its pty (got {line!r}, exit {process.poll()})")
    return RunningBoard(process, line)


@pytest.fixture(scope="module")
def echo_board(host_build: None) -> Iterator[RunningBoard]:
    """One MAX78000 build with the echo chip, shared by the conformance tests (each says HELLO)."""
    board = start_board()
    yield board
    board.stop()


@asynccontextmanager
async def session_on(board: RunningBoard) -> AsyncIterator[SerialSession]:
    reader, writer = await open_port(board.path, 921_600)
    session = SerialSession(reader, writer, timing=FAST, name="firmware")
    try:
        yield session
    finally:
        await session.close()


async def fresh_session(board: RunningBoard) -> AsyncIterator[SerialSession]:
    """A session after HELLO with nothing held (earlier tests' partitions unloaded)."""
    async with session_on(board) as session:
        hello = await session.hello()
        for holding in hello.holdings:
            assert await session.request(Unload(holding.partition_id)) == Ack()
        yield session


@pytest.fixture
async def session(echo_board: RunningBoard) -> AsyncIterator[SerialSession]:
    async for value in fresh_session(echo_board):
        yield value


class RawLink:
    """Frames in and out by hand, for tests about the bytes themselves."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = FrameDecoder()
        self.received: list[Frame] = []

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def replies(self, count: int, timeout_s: float = 5.0) -> list[Frame]:
        async def fill() -> None:
            while len(self.received) < count:
                data = await self.reader.read(4096)
                assert data, "the board closed the port"
                for item in self.decoder.feed(data):
                    assert isinstance(item, Frame), f"the board sent a damaged frame: {item}"
                    self.received.append(item)

        await asyncio.wait_for(fill(), timeout_s)
        out, self.received = self.received[:count], self.received[count:]
        return out

    async def reply(self) -> Frame:
        return (await self.replies(1))[0]

    async def request(self, message: Message, seq: int, flags: int = 0) -> Frame:
        await self.send(encode_frame(message, seq, flags=flags))
        frame = await self.reply()
        assert frame.seq == seq or frame.flags & FLAG_NO_SEQ, frame
        return frame

    async def silent(self, wait_s: float = 0.2) -> None:
        with pytest.raises(TimeoutError):
            await self.replies(1, wait_s)


@asynccontextmanager
async def raw_on(board: RunningBoard) -> AsyncIterator[RawLink]:
    reader, writer = await open_port(board.path, 921_600)
    link = RawLink(reader, writer)
    try:
        # A lone delimiter first ends whatever an earlier test left half-sent.
        await link.send(b"\x00")
        hello = (await link.request(Hello(1, 1, 1024), 60000)).message
        assert isinstance(hello, HelloReply)
        for seq, holding in enumerate(hello.holdings, 60001):
            assert (await link.request(Unload(holding.partition_id), seq)).message == Ack()
        yield link
    finally:
        writer.close()


def raw_frame(version: int, type_byte: int, seq: int, payload: bytes) -> bytes:
    """A frame with any header, CRC and COBS right (what encode_frame refuses to write)."""
    body = HEADER.pack(version, type_byte, 0, 0, seq, len(payload)) + payload
    return cobs.encode(body + crc32(body).to_bytes(4, "little")) + b"\x00"


def error_code(frame: Frame) -> ErrorCode:
    assert isinstance(frame.message, ErrorReply), frame
    return frame.message.code


async def load(session: SerialSession, partition_id: int, blob: bytes) -> None:
    replies = await session.pipeline(load_messages(partition_id, blob, max_payload=session.max_payload))
    assert all(isinstance(r, Ack) for r in replies)


async def run(session: SerialSession, partition_id: int, data: bytes) -> tuple[RunResult, bytes]:
    shapes = (TensorShape((len(data),)),)
    replies = await session.pipeline(run_messages(partition_id, shapes, data, max_payload=session.max_payload))
    result = replies[-1]
    assert isinstance(result, RunResult)
    output = bytearray(result.data)
    for read in output_reads(len(data), len(result.data), max_payload=session.max_payload):
        chunk = await session.request(read)
        assert isinstance(chunk, OutputChunk)
        output += chunk.data
    return result, bytes(output)


# -- programs ----------------------------------------------------------------------------------


def test_building_blocks_give_the_known_answers(host_build: None) -> None:
    result = subprocess.run(
        [FIRMWARE / "build/host-max78000/synergy-selftest"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("board", ["max78000", "max78002"])
def test_the_core_survives_hostile_input_under_the_sanitizers(host_build: None, board: str) -> None:
    binary = FIRMWARE / f"build/host-{board}/synergy-fuzz"
    result = subprocess.run([binary, "15000", "11"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]


def test_the_cross_link_scripts_give_the_chips_memories() -> None:
    """The cross build's memory map (what makes its link fail on overflow) matches mcu.py."""
    for board in ("max78000", "max78002"):
        script = (FIRMWARE / "cross" / f"{board}.ld").read_text()
        lengths = {
            name: int(value, 0) * (1024 if unit == "K" else 1)
            for name, value, unit in re.findall(r"(\w+) \(\w+\)\s*: ORIGIN = \w+, LENGTH = (\w+?)(K?)\n", script)
        }
        mcu = MCU_MEMORY[board.upper()]
        limits = limits_for_profile(load_board(board))
        page = 8192 if board == "max78000" else 16384
        area = -(-(limits.partition_flash_bytes + 16 * 16) // page) * page
        assert lengths == {"FLASH": mcu.flash_bytes - area, "PARTITIONS": area, "SRAM": mcu.sram_bytes}, lengths


# -- conformance through SerialSession ---------------------------------------------------------


@pytest.mark.parametrize("board", ["max78000", "max78002"])
async def test_hello_reports_the_limits_of_the_boards_profile(host_build: None, board: str) -> None:
    running = await asyncio.to_thread(start_board, board)
    try:
        async with session_on(running) as session:
            hello = await session.hello()
            assert hello.kind == BoardKind[board.upper()]
            assert hello.limits == limits_for_profile(load_board(board))
            assert (hello.version, hello.max_payload, hello.window) == (1, 1024, 2)
            assert hello.firmware == "1.0.0+host" and hello.holdings == ()
            status = await session.request(Status())
            assert isinstance(status, StatusReply) and status.boot_id == hello.boot_id
            assert status.partition_flash_free == hello.limits.partition_flash_bytes
    finally:
        await asyncio.to_thread(running.stop)


async def test_load_run_output_and_unload(session: SerialSession) -> None:
    blob = random.Random(1).randbytes(5000)
    data = random.Random(2).randbytes(3000)  # three frames in, three out
    await load(session, 3, blob)
    status = await session.request(Status())
    assert isinstance(status, StatusReply) and status.state == 0
    assert [(h.partition_id, h.size, h.digest) for h in status.holdings] == [(3, 5000, hashlib.sha256(blob).digest())]
    assert status.partition_flash_free == LIMITS.partition_flash_bytes - 5000
    result, output = await run(session, 3, data)
    assert output == data[::-1]
    # The echo chip's cycles are the CRC of the bytes it was given: they came back out of flash intact.
    assert result.timings.cnn_cycles == zlib.crc32(blob) and result.tensors == (TensorShape((3000,)),)
    assert await session.request(Unload(3)) == Ack()
    status = await session.request(Status())
    assert isinstance(status, StatusReply) and status.holdings == ()
    assert status.partition_flash_free == LIMITS.partition_flash_bytes


async def test_refusals_map_onto_the_error_tree(session: SerialSession) -> None:
    with pytest.raises(ProtocolError, match="DIGEST_MISMATCH"):
        await session.pipeline([LoadBegin(1, 3, bytes(32)), *load_messages(1, b"abc")[1:]])
    with pytest.raises(DoesNotFit, match="TOO_LARGE"):
        await session.request(LoadBegin(1, LIMITS.partition_flash_bytes + 1, bytes(32)))
    with pytest.raises(NotFound, match="UNKNOWN_PARTITION"):
        await session.request(Unload(9))
    with pytest.raises(NotFound, match="UNKNOWN_PARTITION"):
        await session.request(Run(9, (TensorShape((4,)),), b"abcd"))
    await load(session, 2, b"partition")
    with pytest.raises(DoesNotFit, match="TOO_LARGE"):
        await session.request(Run(2, (TensorShape((LIMITS.max_tensor_bytes + 1,)),)))
    with pytest.raises(DoesNotFit, match="TOO_LARGE"):
        await session.request(OutputRead(0, 1021))
    with pytest.raises(ProtocolError, match="BAD_MESSAGE"):
        await session.request(OutputRead(0, 10))  # no output kept
    # Lost predecessors are OUT_OF_ORDER: retried within the budget, then reported.
    with pytest.raises(ProtocolError, match="OUT_OF_ORDER"):
        await session.request(LoadChunk(2, 0, b"x"))  # no load open
    with pytest.raises(ProtocolError, match="OUT_OF_ORDER"):
        await session.request(RunInput(0, b"x"))  # no run awaiting input
    assert await session.request(LoadBegin(4, 10, bytes(32))) == Ack()
    with pytest.raises(ProtocolError, match="OUT_OF_ORDER"):
        await session.request(LoadEnd(4))  # before its bytes
    with pytest.raises(ProtocolError, match="OUT_OF_ORDER"):
        await session.request(LoadChunk(4, 5, b"x"))  # a gap
    with pytest.raises(NotFound, match="UNKNOWN_PARTITION"):
        await session.request(LoadChunk(5, 0, b"x"))  # another partition's load
    with pytest.raises(ProtocolError, match="BAD_MESSAGE"):
        await session.request(LoadChunk(4, 0, bytes(11)))  # past total_bytes
    status = await session.request(Status())
    assert isinstance(status, StatusReply) and status.state == 1 and [h.partition_id for h in status.holdings] == [2]


async def test_bad_version_names_both_ranges(echo_board: RunningBoard) -> None:
    async with session_on(echo_board) as session:
        with pytest.raises(ProtocolError, match=r"board speaks protocol versions 1\.\.1"):
            await session.request(Hello(2, 3, 1024))


async def test_flash_compaction_keeps_every_partition_intact(session: SerialSession) -> None:
    """Fill the flash, free two holes, load a partition only the holes together can take."""
    rng = random.Random(5)
    size = 110_000
    blobs = {pid: rng.randbytes(size) for pid in (1, 2, 3, 4)}
    for pid, blob in blobs.items():
        await load(session, pid, blob)
    for pid in (1, 3):
        assert await session.request(Unload(pid)) == Ack()
        del blobs[pid]
    blobs[7] = rng.randbytes(2 * size + 5)  # more than any hole, less than the free total
    await load(session, 7, blobs[7])
    for pid, blob in blobs.items():
        result, output = await run(session, pid, b"xyz")
        assert output == b"zyx" and result.timings.cnn_cycles == zlib.crc32(blob), pid
    status = await session.request(Status())
    assert isinstance(status, StatusReply)
    assert status.partition_flash_free == LIMITS.partition_flash_bytes - sum(len(b) for b in blobs.values())
    with pytest.raises(Exception, match="NO_SPACE"):
        await session.request(LoadBegin(8, status.partition_flash_free + 1, bytes(32)))


# -- conformance with raw frames ---------------------------------------------------------------


async def test_retransmissions_are_answered_from_the_reply_cache(echo_board: RunningBoard) -> None:
    async with raw_on(echo_board) as link:
        blob = b"0123456789"
        begin, chunk, end = load_messages(1, blob)
        assert (await link.request(begin, 1)).message == Ack()
        first = await link.request(chunk, 2)
        # The same chunk again (same seq): the stored ACK, not a second append.
        assert await link.request(chunk, 2, FLAG_RETRANSMIT) == first
        assert (await link.request(end, 3)).message == Ack()
        run_request = Run(1, (TensorShape((4,)),), b"abcd")
        result = await link.request(run_request, 4)
        assert isinstance(result.message, RunResult) and result.message.data == b"dcba"
        runs = result.message.timings.input_load_us
        # A retransmitted RUN gets the stored RUN_RESULT: the chip did not run again.
        again = await link.request(run_request, 4, FLAG_RETRANSMIT)
        assert again.message == result.message
        fresh = await link.request(run_request, 5)
        assert isinstance(fresh.message, RunResult) and fresh.message.timings.input_load_us == runs + 1
        # The cache holds the last 2 replies: seq 3's LOAD_END is gone, so it runs afresh (no load open).
        assert error_code(await link.request(end, 3)) == ErrorCode.OUT_OF_ORDER


async def test_out_of_order_refusals_are_not_kept(echo_board: RunningBoard) -> None:
    """Chunk 1 lost, chunk 2 refused; chunk 1 resent, then chunk 2 (same seq) is executed."""
    async with raw_on(echo_board) as link:
        begin, chunk1, chunk2, end = load_messages(1, bytes(range(256)) * 6)
        assert (await link.request(begin, 10)).message == Ack()
        assert error_code(await link.request(chunk2, 12)) == ErrorCode.OUT_OF_ORDER
        assert (await link.request(chunk1, 11)).message == Ack()
        assert (await link.request(chunk2, 12, FLAG_RETRANSMIT)).message == Ack()
        assert (await link.request(end, 13)).message == Ack()


async def test_damaged_frames_are_reported_without_seq_and_the_link_resyncs(echo_board: RunningBoard) -> None:
    async with raw_on(echo_board) as link:
        before = (await link.request(Status(), 1)).message
        assert isinstance(before, StatusReply)
        # Garbage up to a delimiter: one ERROR BAD_CRC with NO_SEQ and seq 0.
        await link.send(b"\x17\x42garbage\xff\x00")
        notice = await link.reply()
        assert (notice.seq, notice.flags, error_code(notice)) == (0, FLAG_NO_SEQ, ErrorCode.BAD_CRC)
        # A flipped bit.
        frame = bytearray(encode_frame(Status(), 2))
        frame[5] ^= 0x10
        await link.send(bytes(frame))
        assert error_code(await link.reply()) == ErrorCode.BAD_CRC
        # A frame cut in the middle, then the sender's lone delimiter: one notice, then in step.
        half = encode_frame(Status(), 3)[:7]
        await link.send(half + b"\x00")
        assert error_code(await link.reply()) == ErrorCode.BAD_CRC
        # A cut frame running into the next one costs both (one notice); the resend works.
        await link.send(half + encode_frame(Status(), 4))
        assert error_code(await link.reply()) == ErrorCode.BAD_CRC
        # No delimiter within the largest frame: one notice, then the next frame is read.
        await link.send(b"\x55" * 3000 + b"\x00")
        assert error_code(await link.reply()) == ErrorCode.BAD_CRC
        # Empty frames (delimiters in a row) are not errors.
        await link.send(b"\x00\x00\x00")
        await link.silent()
        after = (await link.request(Status(), 5)).message
        assert isinstance(after, StatusReply)
        assert after.rx_bad_frames == before.rx_bad_frames + 5
        assert after.rx_frames == before.rx_frames + 1


async def test_trusted_headers_get_their_seq_back(echo_board: RunningBoard) -> None:
    async with raw_on(echo_board) as link:
        await link.send(raw_frame(2, 0x03, 21, b""))  # a version not spoken
        reply = await link.reply()
        assert reply.seq == 21 and error_code(reply) == ErrorCode.BAD_VERSION
        assert isinstance(reply.message, ErrorReply)
        assert (reply.message.min_version, reply.message.max_version) == (1, 1)
        await link.send(raw_frame(1, 0x55, 22, b""))  # an unknown type
        reply = await link.reply()
        assert reply.seq == 22 and error_code(reply) == ErrorCode.BAD_MESSAGE
        await link.send(raw_frame(1, 0x10, 23, b"\x01"))  # LOAD_BEGIN cut short
        reply = await link.reply()
        assert reply.seq == 23 and error_code(reply) == ErrorCode.BAD_MESSAGE
        assert error_code(await link.request(Hello(1, 1, 100), 24)) == ErrorCode.BAD_MESSAGE
        hello = (await link.request(Hello(1, 1, 300), 25)).message
        assert isinstance(hello, HelloReply) and hello.max_payload == 300


async def test_the_link_survives_fuzzing(echo_board: RunningBoard) -> None:
    """Random bytes and bit-flipped frames through the pty; the board then answers HELLO."""
    rng = random.Random(99)
    async with raw_on(echo_board) as link:
        valid = [encode_frame(m, seq) for seq, m in enumerate((Status(), Hello(1, 1, 1024), Unload(3)), 100)]
        for _ in range(300):
            if rng.random() < 0.5:
                data = rng.randbytes(rng.randrange(1, 200))
            else:
                frame = bytearray(rng.choice(valid))
                for _ in range(rng.randrange(1, 4)):
                    frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
                data = bytes(frame)
            await link.send(data)
        await link.send(b"\x00")
        with contextlib.suppress(TimeoutError):  # whatever answers the noise produced
            while True:
                await asyncio.wait_for(link.reader.read(1 << 16), 0.3)
        link.received.clear()
        link.decoder = FrameDecoder()
        hello = await link.request(Hello(1, 1, 1024), 7000)
        assert isinstance(hello.message, HelloReply)


# -- differential: the C board and the Python reference on the same bytes ----------------------


class Script:
    """Random request streams: coherent loads and runs, and everything a broken host could send."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seq = 0
        self.sent: list[bytes] = []

    def frame(self, message: Message, *, max_payload: int = 1024) -> bytes:
        self.seq = (self.seq + 1) & 0xFFFF
        data = encode_frame(message, self.seq, max_payload=max_payload)
        self.sent.append(data)
        return data

    def steps(self, count: int) -> Iterator[bytes]:
        rng = self.rng
        for _ in range(count):
            pick = rng.random()
            pid = rng.randrange(1, 5)
            if pick < 0.05:
                yield self.frame(Hello(1, rng.choice((1, 1, 2)), rng.choice((1024, 512, 300, 100))))
            elif pick < 0.12:
                yield self.frame(Status())
            elif pick < 0.32:
                blob = rng.randbytes(rng.choice((0, 1, 17, 1018, 5000, rng.randrange(60_000), 150_000)))
                messages: list[Message] = list(load_messages(pid, blob))
                if rng.random() < 0.15:
                    messages[0] = LoadBegin(pid, len(blob), bytes(32))
                if rng.random() < 0.15 and len(messages) > 3:
                    del messages[rng.randrange(1, len(messages) - 1)]
                yield from (self.frame(m) for m in messages)
            elif pick < 0.40:
                yield self.frame(Unload(rng.randrange(0, 6)))
            elif pick < 0.60:
                shapes = tuple(
                    TensorShape(tuple(rng.randrange(1, 9) for _ in range(rng.randrange(1, 4))), rng.choice((1, 4)))
                    for _ in range(rng.randrange(1, 4))
                )
                if rng.random() < 0.2:
                    shapes = (TensorShape((rng.choice((600, 4000, 60_000)),)),)
                total = sum(s.nbytes for s in shapes)
                if total > LIMITS.max_tensor_bytes:
                    yield self.frame(Run(pid, shapes))
                    continue
                data = rng.randbytes(total)
                yield from (self.frame(m) for m in run_messages(pid, shapes, data))
                yield from (self.frame(m) for m in output_reads(total, rng.randrange(0, 1100)))
            elif pick < 0.66:
                yield self.frame(OutputRead(rng.randrange(0, 3000), rng.choice((0, 1, 500, 1020, 1021))))
            elif pick < 0.74 and self.sent:
                yield rng.choice(self.sent[-3:])  # a retransmission (or a stale duplicate)
            elif pick < 0.80:
                yield rng.randbytes(rng.randrange(1, 300))
            elif pick < 0.88 and self.sent:
                frame = bytearray(self.sent[-1])
                frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
                yield bytes(frame)
            elif pick < 0.92 and self.sent:
                frame = self.sent[-1]
                yield frame[: rng.randrange(1, len(frame))] + b"\x00"
            elif pick < 0.93:
                self.seq = (self.seq + 1) & 0xFFFF
                yield raw_frame(1, rng.choice((0x02, 0x04, 0x22, 0x24, 0x7E, 0x7F, 0x55)), self.seq, rng.randbytes(3))
            elif pick < 0.96:
                replies: tuple[Message, ...] = (Ack(), ErrorReply(ErrorCode.BUSY, 1, 1, "x"), OutputChunk(0, b"ab"))
                yield self.frame(rng.choice(replies))
            else:
                noise = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(0, 1500)))
                yield b"\x00" * rng.randrange(1, 3) + noise


def comparable(frame: Frame) -> tuple[int, int, int, Message]:
    message = frame.message
    if isinstance(message, ErrorReply):
        message = replace(message, detail="")
    if isinstance(message, StatusReply):
        message = replace(message, uptime_ms=0)
    return frame.seq, frame.flags, frame.version, message


async def test_replies_equal_the_python_reference_on_the_same_bytes(host_build: None) -> None:
    running = await asyncio.to_thread(start_board)
    try:
        reader, writer = await open_port(running.path, 921_600)
        link = RawLink(reader, writer)
        hello_frame = encode_frame(Hello(1, 1, 1024), 0)
        await link.send(hello_frame)
        hello = (await link.reply()).message
        assert isinstance(hello, HelloReply)
        reference = Responder(
            EchoBackend(), kind=hello.kind, limits=hello.limits, firmware=hello.firmware, boot_id=hello.boot_id
        )
        await reference.feed(hello_frame)
        compared = 0
        for step in Script(seed=4).steps(700):
            expected = [f for f in FrameDecoder().feed(b"".join(await reference.feed(step))) if isinstance(f, Frame)]
            await link.send(step)
            got = await link.replies(len(expected))
            assert [comparable(f) for f in got] == [comparable(f) for f in expected], step[:80]
            compared += len(got)
        final = b"\x00" + encode_frame(Status(), 9999)
        await link.send(final)
        expected = [f for f in FrameDecoder().feed(b"".join(await reference.feed(final))) if isinstance(f, Frame)]
        assert [comparable(f) for f in await link.replies(1)] == [comparable(f) for f in expected]
        await link.silent()
        assert compared > 1000
        writer.close()
    finally:
        await asyncio.to_thread(running.stop)


# -- the cluster ------------------------------------------------------------------------------


async def test_split_app_on_two_firmware_boards_survives_an_unplug_and_a_replug(
    host_build: None, tmp_path: Path, log_dir: Path
) -> None:
    boards: Mapping[str, BoardSim] = {name: FirmwareBoard(tmp_path / f"tty-{name}") for name in ("glasses", "ring")}
    await split_app_survives_an_unplug_and_a_replug(boards, log_dir)
