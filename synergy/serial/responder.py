"""The board side of the serial protocol, as a reusable responder (docs/serial-protocol.md).

:class:`Responder` is what the firmware does, minus the chip: bytes in, reply frames out
(:meth:`Responder.feed`). It decodes frames, answers damaged ones (§3), keeps the encoded
replies to the last ``window`` requests so that a retransmission is answered without being
executed again (§6), reassembles chunked loads and run inputs, keeps a run's output for
OUTPUT_READ, and hands the work itself to a :class:`BoardBackend` (the board simulator's is
the emulated board; a test's can be a dictionary). No I/O in the responder itself: the caller moves
the bytes; :func:`serve_stream` does it over asyncio streams, taking the time a UART at the
given baud rate would for every byte it sends (``synergy board-sim``, the tests).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from synergy.errors import DoesNotFit, NotFound, ProtocolError, ResourceExhausted, SynergyError
from synergy.serial.messages import (
    TRANSIENT_ERRORS,
    Ack,
    BoardKind,
    BoardLimits,
    BoardState,
    ErrorCode,
    ErrorReply,
    Hello,
    HelloReply,
    Holding,
    LoadBegin,
    LoadChunk,
    LoadEnd,
    Message,
    OutputRead,
    Run,
    RunInput,
    RunTimings,
    Status,
    StatusReply,
    TensorShape,
    Unload,
    tensors_bytes,
)
from synergy.serial.protocol import (
    FLAG_NO_SEQ,
    MAX_PAYLOAD,
    MIN_PAYLOAD,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    WINDOW,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorKind,
    encode_frame,
)
from synergy.serial.transfer import Reassembly, output_chunk, partition_digest, run_result

__all__ = ["BoardBackend", "Responder", "RunOutcome", "error_code_for", "serve_stream"]

#: Offset field in front of an OUTPUT_CHUNK's data.
_OFFSET_HEAD = 4


@dataclass(frozen=True)
class RunOutcome:
    timings: RunTimings
    tensors: tuple[TensorShape, ...]
    data: bytes


class BoardBackend(Protocol):
    """What the chip does: keep a partition, run it, forget it. Refusals raise SynergyErrors."""

    async def commit(self, partition_id: int, blob: bytes) -> None:
        """Make ``blob`` (digest already checked) runnable as ``partition_id``."""
        ...

    async def execute(self, partition_id: int, tensors: tuple[TensorShape, ...], data: bytes) -> RunOutcome: ...

    def drop(self, partition_id: int) -> None: ...


@dataclass
class _Load:
    partition_id: int
    digest: bytes
    bytes: Reassembly


@dataclass
class _RunInput:
    partition_id: int
    tensors: tuple[TensorShape, ...]
    bytes: Reassembly


class _Refusal(Exception):
    """A request refused with an error code (internal to the dispatch)."""

    def __init__(self, code: ErrorCode, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


class Responder:
    """The firmware's protocol state machine, one per port."""

    def __init__(
        self,
        backend: BoardBackend,
        *,
        kind: BoardKind,
        limits: BoardLimits,
        firmware: str,
        boot_id: int,
        window: int = WINDOW,
        max_payload: int = MAX_PAYLOAD,
        versions: Sequence[int] = tuple(SUPPORTED_VERSIONS),
    ) -> None:
        self.backend = backend
        self.kind = kind
        self.limits = limits
        self.firmware = firmware
        self.boot_id = boot_id
        self.window = window
        self.board_max_payload = max_payload
        self.versions = tuple(sorted(versions))
        self.decoder = FrameDecoder(max_payload=max_payload, versions=self.versions)
        self.version = PROTOCOL_VERSION
        self.max_payload = max_payload
        #: Requests executed (retransmissions answered from the cache not counted).
        self.executed = 0
        self.replayed = 0
        self._started = time.monotonic()
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._holdings: dict[int, Holding] = {}
        self._load: _Load | None = None
        self._input: _RunInput | None = None
        self._output = b""

    # -----------------------------------------------------------------------------------------

    async def feed(self, data: bytes) -> list[bytes]:
        """The reply frames (wire bytes) for every frame ``data`` completes, in order."""
        out: list[bytes] = []
        for item in self.decoder.feed(data):
            if isinstance(item, FrameError):
                out.append(self._frame_error(item))
            else:
                out.append(await self._request(item))
        return out

    def _frame_error(self, error: FrameError) -> bytes:
        if error.seq is None:
            # The header cannot be trusted: say so without a seq; the host resends what it has out.
            reply = ErrorReply(ErrorCode.BAD_CRC, *self._range(), f"{error.kind.value}: {error.detail}")
            return encode_frame(reply, 0, flags=FLAG_NO_SEQ, version=self.version)
        code = ErrorCode.BAD_VERSION if error.kind == FrameErrorKind.BAD_VERSION else ErrorCode.BAD_MESSAGE
        return encode_frame(ErrorReply(code, *self._range(), error.detail), error.seq, version=self.version)

    def _range(self) -> tuple[int, int]:
        return self.versions[0], self.versions[-1]

    async def _request(self, frame: Frame) -> bytes:
        cached = self._cache.get(frame.seq)
        if cached is not None and not isinstance(frame.message, Hello):
            self.replayed += 1
            return cached
        if frame.version != self.version and not isinstance(frame.message, Hello):
            reply: Message = ErrorReply(
                ErrorCode.BAD_VERSION, *self._range(), f"version {frame.version} after agreeing on {self.version}"
            )
            return encode_frame(reply, frame.seq, version=self.version)
        try:
            reply = await self._dispatch(frame.message)
        except _Refusal as refusal:
            reply = ErrorReply(refusal.code, *self._range(), refusal.detail)
        except SynergyError as exc:
            reply = ErrorReply(error_code_for(exc), *self._range(), str(exc))
        except Exception as exc:  # a fault of the chip's side must not kill the link
            reply = ErrorReply(ErrorCode.INTERNAL, *self._range(), f"{type(exc).__name__}: {exc}")
        encoded = encode_frame(reply, frame.seq, version=self.version, max_payload=self.max_payload)
        if not (isinstance(reply, ErrorReply) and reply.code in TRANSIENT_ERRORS):
            self.executed += 1
            self._cache[frame.seq] = encoded
            while len(self._cache) > self.window:
                self._cache.popitem(last=False)
        return encoded

    async def _dispatch(self, message: Message) -> Message:
        match message:
            case Hello():
                return self._hello(message)
            case Status():
                return self._status()
            case LoadBegin():
                return self._load_begin(message)
            case LoadChunk():
                load = self._open_load(message.partition_id)
                _in_order(load.bytes, message.offset, message.data)
                return Ack()
            case LoadEnd():
                return await self._load_end(message)
            case Unload():
                if message.partition_id not in self._holdings:
                    raise _Refusal(ErrorCode.UNKNOWN_PARTITION, f"partition {message.partition_id} is not held")
                del self._holdings[message.partition_id]
                self.backend.drop(message.partition_id)
                self._output = b""
                return Ack()
            case Run():
                return await self._run(message)
            case RunInput():
                if self._input is None:
                    # Its RUN may be the frame lost on the way: the host resends it first.
                    raise _Refusal(ErrorCode.OUT_OF_ORDER, "RUN_INPUT without a RUN awaiting input")
                _in_order(self._input.bytes, message.offset, message.data)
                return await self._maybe_execute()
            case OutputRead():
                room = self.max_payload - _OFFSET_HEAD
                if message.length > room:
                    detail = f"OUTPUT_READ.length {message.length} is over one chunk ({room})"
                    raise _Refusal(ErrorCode.TOO_LARGE, detail)
                return output_chunk(self._output, message, max_payload=self.max_payload)
            case _:
                raise _Refusal(ErrorCode.BAD_MESSAGE, f"{message.TYPE.name} is not a request")

    def _hello(self, hello: Hello) -> Message:
        common = [v for v in self.versions if hello.min_version <= v <= hello.max_version]
        if not common:
            low, high = self._range()
            raise _Refusal(
                ErrorCode.BAD_VERSION,
                f"board speaks {low}..{high}, host {hello.min_version}..{hello.max_version}",
            )
        if hello.max_payload < MIN_PAYLOAD:
            raise _Refusal(ErrorCode.BAD_MESSAGE, f"HELLO.max_payload {hello.max_payload} is under {MIN_PAYLOAD}")
        # HELLO resets the session: no cached replies, no open load or run (§7).
        self._cache.clear()
        self._load = None
        self._input = None
        self._output = b""
        self.version = max(common)
        self.max_payload = min(hello.max_payload, self.board_max_payload)
        return HelloReply(
            self.version, self.kind, self.max_payload, self.window, self.boot_id, self.limits, self.firmware,
            self.holdings(),
        )  # fmt: skip

    def holdings(self) -> tuple[Holding, ...]:
        return tuple(self._holdings[pid] for pid in sorted(self._holdings))

    def flash_free(self) -> int:
        return self.limits.partition_flash_bytes - sum(h.size for h in self._holdings.values())

    def _status(self) -> StatusReply:
        state = BoardState.LOADING if self._load else BoardState.RECEIVING_INPUT if self._input else BoardState.IDLE
        counters = self.decoder.counters
        return StatusReply(
            state,
            self.boot_id,
            int((time.monotonic() - self._started) * 1000) & 0xFFFFFFFF,
            self.flash_free(),
            counters.frames & 0xFFFFFFFF,
            counters.error_total & 0xFFFFFFFF,
            self.holdings(),
        )

    def _load_begin(self, begin: LoadBegin) -> Message:
        self._load = None
        if begin.total_bytes > self.limits.partition_flash_bytes:
            raise _Refusal(
                ErrorCode.TOO_LARGE,
                f"partition of {begin.total_bytes} bytes is over partition_flash_bytes "
                f"{self.limits.partition_flash_bytes}",
            )
        if begin.partition_id in self._holdings:
            del self._holdings[begin.partition_id]
            self.backend.drop(begin.partition_id)
        if begin.total_bytes > self.flash_free():
            raise _Refusal(
                ErrorCode.NO_SPACE, f"partition of {begin.total_bytes} bytes, {self.flash_free()} bytes of flash free"
            )
        reassembly = Reassembly(begin.total_bytes, limit=self.limits.partition_flash_bytes, what="LOAD")
        self._load = _Load(begin.partition_id, begin.digest, reassembly)
        return Ack()

    def _open_load(self, partition_id: int) -> _Load:
        if self._load is None:
            # Its LOAD_BEGIN may be the frame lost on the way: the host resends it first.
            raise _Refusal(ErrorCode.OUT_OF_ORDER, f"no load is open (partition {partition_id})")
        if self._load.partition_id != partition_id:
            raise _Refusal(ErrorCode.UNKNOWN_PARTITION, f"no load of partition {partition_id} is open")
        return self._load

    async def _load_end(self, end: LoadEnd) -> Message:
        load = self._open_load(end.partition_id)
        if not load.bytes.complete:
            # A chunk before it was lost on the way: the host resends it, then this (§6).
            detail = f"LOAD_END after {load.bytes.received} of {load.bytes.total} bytes"
            raise _Refusal(ErrorCode.OUT_OF_ORDER, detail)
        self._load = None
        blob = load.bytes.data()
        if partition_digest(blob) != load.digest:
            raise _Refusal(ErrorCode.DIGEST_MISMATCH, "the partition's bytes do not match LOAD_BEGIN's digest")
        await self.backend.commit(end.partition_id, blob)
        self._holdings[end.partition_id] = Holding(end.partition_id, len(blob), load.digest)
        return Ack()

    async def _run(self, run: Run) -> Message:
        self._input = None
        self._output = b""
        if run.partition_id not in self._holdings:
            raise _Refusal(ErrorCode.UNKNOWN_PARTITION, f"partition {run.partition_id} is not held")
        total = tensors_bytes(run.tensors)
        if total > self.limits.max_tensor_bytes:
            raise _Refusal(
                ErrorCode.TOO_LARGE, f"input of {total} bytes is over max_tensor_bytes {self.limits.max_tensor_bytes}"
            )
        self._input = _RunInput(run.partition_id, run.tensors, Reassembly(total, limit=total, what="RUN"))
        self._input.bytes.add(0, run.data)
        return await self._maybe_execute()

    async def _maybe_execute(self) -> Message:
        pending = self._input
        if pending is None or not pending.bytes.complete:
            return Ack()
        self._input = None
        outcome = await self.backend.execute(pending.partition_id, pending.tensors, pending.bytes.data())
        self._output = outcome.data
        return run_result(outcome.timings, outcome.tensors, outcome.data, max_payload=self.max_payload)


def _in_order(reassembly: Reassembly, offset: int, data: bytes) -> None:
    """Append a chunk; a gap or a rewind is OUT_OF_ORDER (not stored: the host resends)."""
    if offset != reassembly.received:
        raise _Refusal(
            ErrorCode.OUT_OF_ORDER, f"{reassembly.what} chunk at offset {offset}, expected {reassembly.received}"
        )
    try:
        reassembly.add(offset, data)
    except ProtocolError as exc:
        raise _Refusal(ErrorCode.BAD_MESSAGE, str(exc)) from None


def error_code_for(error: SynergyError) -> ErrorCode:
    """The ERROR code a board answers a refusal with (the simulator and the firmware host build
    agree on it)."""
    if isinstance(error, DoesNotFit | ResourceExhausted):
        return ErrorCode.TOO_LARGE
    if isinstance(error, NotFound):
        return ErrorCode.UNKNOWN_PARTITION
    if isinstance(error, ProtocolError):
        return ErrorCode.BAD_MESSAGE
    return ErrorCode.INTERNAL


async def serve_stream(
    responder: Responder,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    baud: int = 0,
    damage: Callable[[bytes], bytes] | None = None,
) -> None:
    """Answer requests from ``reader`` on ``writer`` until EOF or a port error.

    With ``baud`` every byte takes 10 bits at that rate (8N1) both ways, on running deadlines
    so that a burst costs exactly its line time: a received byte is handled only once the line
    could have carried it, and a reply reaches the host only once the line has carried its last
    byte. Bytes read after a pause count as having arrived during it (a pty cannot say when the
    host wrote them; counting from the read instead would charge the simulator's own scheduling
    delays to the line, about 20 % of its rate), so an exchange after idle can beat the line by
    up to one read's worth (the overhead bench paces at the host's end for that reason).
    ``damage`` (tests) alters the bytes both ways, like a noisy line.
    """
    line_free = rx_free = time.monotonic()
    try:
        while True:
            data = await reader.read(4096)
            if not data:
                return
            if baud:
                rx_free = max(rx_free, time.monotonic() - len(data) * 10 / baud) + len(data) * 10 / baud
                await asyncio.sleep(max(0.0, rx_free - time.monotonic()))
            if damage is not None:
                data = damage(data)
            for reply in await responder.feed(data):
                if damage is not None:
                    reply = damage(reply)
                if baud:
                    line_free = max(line_free, time.monotonic()) + len(reply) * 10 / baud
                    await asyncio.sleep(max(0.0, line_free - time.monotonic()))
                writer.write(reply)
                await writer.drain()
    except (OSError, ConnectionError):
        return
