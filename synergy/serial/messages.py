"""The messages of the serial protocol and their payload layouts (docs/serial-protocol.md §4).

One frozen dataclass per message type; :func:`encode_payload` writes a message's payload and
:func:`decode_payload` reads one back, refusing with :class:`ProtocolError` (naming the
field and its bound) anything a correct peer would not send: short or trailing bytes,
out-of-range values, unknown codes. Every integer is unsigned little-endian; the layouts are
written field by field so the C firmware can mirror them line for line.

Framing (header, CRC, COBS, sequence numbers) is not here: :mod:`synergy.serial.protocol`.
"""

from __future__ import annotations

import enum
import math
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeAlias

from synergy.errors import ProtocolError

__all__ = [
    "DIGEST_BYTES",
    "ELEMENT_SIZES",
    "MAX_DETAIL_BYTES",
    "MAX_FIRMWARE_CHARS",
    "MAX_HOLDINGS",
    "MAX_TENSORS",
    "MAX_TENSOR_RANK",
    "Ack",
    "BoardKind",
    "BoardLimits",
    "BoardState",
    "ErrorCode",
    "ErrorReply",
    "Hello",
    "HelloReply",
    "Holding",
    "LoadBegin",
    "LoadChunk",
    "LoadEnd",
    "Message",
    "MessageType",
    "OutputChunk",
    "OutputRead",
    "Run",
    "RunInput",
    "RunResult",
    "RunTimings",
    "Status",
    "StatusReply",
    "TRANSIENT_ERRORS",
    "TensorShape",
    "Unload",
    "decode_payload",
    "encode_payload",
    "tensors_bytes",
]

#: SHA-256 of a partition's bytes (the MAX7800x's crypto block computes it in hardware).
DIGEST_BYTES = 32
#: Firmware version strings are short printable ASCII ("1.0.3+g1a2b3c4").
MAX_FIRMWARE_CHARS = 32
#: Partitions one board reports holding (38 bytes each keeps HELLO_REPLY within one frame).
MAX_HOLDINGS = 16
#: Tensors in one run's input or output (several when a cut crosses skip connections).
MAX_TENSORS = 8
#: Dimensions of one tensor (N, C, H, W at most).
MAX_TENSOR_RANK = 4
#: Element sizes in bytes: 1 = int8 (every activation), 4 = int32 LE (a last layer's wide output).
ELEMENT_SIZES = (1, 4)
#: An ERROR's human-readable detail, UTF-8.
MAX_DETAIL_BYTES = 200


class MessageType(enum.IntEnum):
    """The header's type byte. Requests go host -> board; every request gets one reply."""

    HELLO = 0x01
    HELLO_REPLY = 0x02
    STATUS = 0x03
    STATUS_REPLY = 0x04
    LOAD_BEGIN = 0x10
    LOAD_CHUNK = 0x11
    LOAD_END = 0x12
    UNLOAD = 0x13
    RUN = 0x20
    RUN_INPUT = 0x21
    RUN_RESULT = 0x22
    OUTPUT_READ = 0x23
    OUTPUT_CHUNK = 0x24
    ACK = 0x7E
    ERROR = 0x7F


class BoardKind(enum.IntEnum):
    MAX78000 = 1
    MAX78002 = 2


class BoardState(enum.IntEnum):
    IDLE = 0
    #: A LOAD_BEGIN was accepted and its LOAD_END has not come yet.
    LOADING = 1
    #: A RUN was accepted and part of its input is still to come (RUN_INPUT).
    RECEIVING_INPUT = 2


class ErrorCode(enum.IntEnum):
    """Why a board refused a request (what the host does is in the document, §6)."""

    BAD_VERSION = 1
    BAD_CRC = 2
    TOO_LARGE = 3
    NO_SPACE = 4
    UNKNOWN_PARTITION = 5
    DIGEST_MISMATCH = 6
    BUSY = 7
    INTERNAL = 8
    BAD_MESSAGE = 9
    OUT_OF_ORDER = 10


#: Refusals the board does not remember: the request was not executed, so its retransmission
#: (same sequence number) is tried afresh instead of being answered from the reply cache.
TRANSIENT_ERRORS = frozenset({ErrorCode.BAD_CRC, ErrorCode.BUSY, ErrorCode.OUT_OF_ORDER})


# ---------------------------------------------------------------------------------------------
# Reading and writing fields with named bounds


class _Writer:
    def __init__(self, what: str) -> None:
        self.what = what
        self.out = bytearray()

    def _uint(self, name: str, value: int, fmt: str, bits: int) -> None:
        if not 0 <= value < 1 << bits:
            raise ProtocolError(f"{self.what}.{name} = {value} is outside 0..{(1 << bits) - 1} (u{bits})")
        self.out += struct.pack(fmt, value)

    def u8(self, name: str, value: int) -> None:
        self._uint(name, value, "<B", 8)

    def u16(self, name: str, value: int) -> None:
        self._uint(name, value, "<H", 16)

    def u32(self, name: str, value: int) -> None:
        self._uint(name, value, "<I", 32)

    def exact(self, name: str, value: bytes, size: int) -> None:
        if len(value) != size:
            raise ProtocolError(f"{self.what}.{name} must be {size} bytes, got {len(value)}")
        self.out += value

    def short_text(self, name: str, value: bytes, limit: int) -> None:
        """A u8 length and then the bytes."""
        if len(value) > limit:
            raise ProtocolError(f"{self.what}.{name} is {len(value)} bytes, over the limit of {limit}")
        self.out.append(len(value))
        self.out += value

    def rest(self, value: bytes) -> None:
        self.out += value


class _Reader:
    def __init__(self, what: str, payload: bytes) -> None:
        self.what = what
        self.data = payload
        self.pos = 0

    def take(self, name: str, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise ProtocolError(
                f"{self.what}.{name} needs {size} byte(s) at offset {self.pos}, "
                f"but the payload is {len(self.data)} bytes"
            )
        chunk = self.data[self.pos : self.pos + size]
        self.pos += size
        return chunk

    def u8(self, name: str) -> int:
        return self.take(name, 1)[0]

    def u16(self, name: str) -> int:
        value: int = struct.unpack("<H", self.take(name, 2))[0]
        return value

    def u32(self, name: str) -> int:
        value: int = struct.unpack("<I", self.take(name, 4))[0]
        return value

    def short_text(self, name: str, limit: int) -> bytes:
        size = self.u8(f"{name}_length")
        if size > limit:
            raise ProtocolError(f"{self.what}.{name}_length = {size} is over the limit of {limit}")
        return self.take(name, size)

    def rest(self) -> bytes:
        chunk = self.data[self.pos :]
        self.pos = len(self.data)
        return chunk

    def end(self) -> None:
        if self.pos != len(self.data):
            raise ProtocolError(f"{self.what}: {len(self.data) - self.pos} unexpected byte(s) after the last field")


def _enum(reader: _Reader, name: str, kind: type[enum.IntEnum]) -> int:
    value = reader.u8(name)
    try:
        return kind(value)
    except ValueError:
        known = ", ".join(f"{m.value}={m.name}" for m in kind)
        raise ProtocolError(f"{reader.what}.{name} = {value} is not one of {known}") from None


# ---------------------------------------------------------------------------------------------
# Shared parts


@dataclass(frozen=True)
class TensorShape:
    """One tensor of a run's input or output: its dimensions and element size (int8 = 1)."""

    dims: tuple[int, ...]
    element_bytes: int = 1

    @property
    def nbytes(self) -> int:
        return math.prod(self.dims) * self.element_bytes


def tensors_bytes(tensors: Sequence[TensorShape]) -> int:
    """Bytes of the tensors' data, concatenated in order (how a run's data travels)."""
    return sum(t.nbytes for t in tensors)


def _write_tensors(writer: _Writer, tensors: Sequence[TensorShape]) -> None:
    if len(tensors) > MAX_TENSORS:
        raise ProtocolError(f"{writer.what}.tensor_count = {len(tensors)} is over the limit of {MAX_TENSORS}")
    writer.u8("tensor_count", len(tensors))
    for index, tensor in enumerate(tensors):
        _check_tensor(writer.what, index, tensor.element_bytes, tensor.dims)
        writer.u8(f"tensors[{index}].element_bytes", tensor.element_bytes)
        writer.u8(f"tensors[{index}].rank", len(tensor.dims))
        for axis, dim in enumerate(tensor.dims):
            writer.u16(f"tensors[{index}].dims[{axis}]", dim)
    if tensors_bytes(tensors) >= 1 << 32:
        raise ProtocolError(f"{writer.what}: tensors total {tensors_bytes(tensors)} bytes, over the u32 offsets")


def _read_tensors(reader: _Reader) -> tuple[TensorShape, ...]:
    count = reader.u8("tensor_count")
    if count > MAX_TENSORS:
        raise ProtocolError(f"{reader.what}.tensor_count = {count} is over the limit of {MAX_TENSORS}")
    tensors = []
    for index in range(count):
        element_bytes = reader.u8(f"tensors[{index}].element_bytes")
        rank = reader.u8(f"tensors[{index}].rank")
        if not 1 <= rank <= MAX_TENSOR_RANK:
            raise ProtocolError(f"{reader.what}.tensors[{index}].rank = {rank} is outside 1..{MAX_TENSOR_RANK}")
        dims = tuple(reader.u16(f"tensors[{index}].dims[{axis}]") for axis in range(rank))
        _check_tensor(reader.what, index, element_bytes, dims)
        tensors.append(TensorShape(dims, element_bytes))
    return tuple(tensors)


def _check_tensor(what: str, index: int, element_bytes: int, dims: tuple[int, ...]) -> None:
    if element_bytes not in ELEMENT_SIZES:
        raise ProtocolError(f"{what}.tensors[{index}].element_bytes = {element_bytes} is not one of {ELEMENT_SIZES}")
    if not 1 <= len(dims) <= MAX_TENSOR_RANK:
        raise ProtocolError(f"{what}.tensors[{index}].rank = {len(dims)} is outside 1..{MAX_TENSOR_RANK}")
    for axis, dim in enumerate(dims):
        if not 1 <= dim <= 0xFFFF:
            raise ProtocolError(f"{what}.tensors[{index}].dims[{axis}] = {dim} is outside 1..65535")


@dataclass(frozen=True)
class Holding:
    """A partition the board holds in flash, ready to run."""

    partition_id: int
    size: int
    digest: bytes


def _write_holdings(writer: _Writer, holdings: Sequence[Holding]) -> None:
    if len(holdings) > MAX_HOLDINGS:
        raise ProtocolError(f"{writer.what}.holding_count = {len(holdings)} is over the limit of {MAX_HOLDINGS}")
    writer.u8("holding_count", len(holdings))
    for index, holding in enumerate(holdings):
        writer.u16(f"holdings[{index}].partition_id", holding.partition_id)
        writer.u32(f"holdings[{index}].size", holding.size)
        writer.exact(f"holdings[{index}].digest", holding.digest, DIGEST_BYTES)


def _read_holdings(reader: _Reader) -> tuple[Holding, ...]:
    count = reader.u8("holding_count")
    if count > MAX_HOLDINGS:
        raise ProtocolError(f"{reader.what}.holding_count = {count} is over the limit of {MAX_HOLDINGS}")
    return tuple(
        Holding(
            reader.u16(f"holdings[{index}].partition_id"),
            reader.u32(f"holdings[{index}].size"),
            reader.take(f"holdings[{index}].digest", DIGEST_BYTES),
        )
        for index in range(count)
    )


@dataclass(frozen=True)
class BoardLimits:
    """What a board says it can hold (HELLO_REPLY); checked against its BoardProfile by the host."""

    #: CNN weight memory and bias memory, bytes.
    weight_bytes: int
    bias_bytes: int
    #: Hardware layers of one network.
    max_layers: int
    #: CNN data memory, bytes.
    data_bytes: int
    #: Flash left for partitions (weights and layer configuration) after the firmware.
    partition_flash_bytes: int
    #: SRAM left for a run's input and output buffers after the firmware.
    frame_sram_bytes: int
    #: Largest input (or output) of one run, all its tensors together.
    max_tensor_bytes: int
    #: The CNN clock, so that measured cycles become seconds.
    cnn_clock_hz: int


# ---------------------------------------------------------------------------------------------
# The messages


@dataclass(frozen=True)
class Hello:
    """Host -> board, first on every connection: the protocol versions the host speaks."""

    TYPE: ClassVar[MessageType] = MessageType.HELLO
    min_version: int
    max_version: int
    #: The largest payload the host accepts; the board uses the smaller of this and its own.
    max_payload: int


@dataclass(frozen=True)
class HelloReply:
    TYPE: ClassVar[MessageType] = MessageType.HELLO_REPLY
    #: The version both speak from now on (the highest in both ranges).
    version: int
    kind: BoardKind
    #: The largest payload the board accepts and sends (<= the host's).
    max_payload: int
    #: Requests the board accepts in flight (its receive buffers).
    window: int
    #: Changes at every reset of the board: a host that sees it change knows the board forgot
    #: its reply cache and any partial load or run.
    boot_id: int
    limits: BoardLimits
    firmware: str
    holdings: tuple[Holding, ...] = ()


@dataclass(frozen=True)
class Status:
    TYPE: ClassVar[MessageType] = MessageType.STATUS


@dataclass(frozen=True)
class StatusReply:
    TYPE: ClassVar[MessageType] = MessageType.STATUS_REPLY
    state: BoardState
    boot_id: int
    uptime_ms: int
    partition_flash_free: int
    #: Frames the board received intact, and damaged ones it threw away (all causes).
    rx_frames: int
    rx_bad_frames: int
    holdings: tuple[Holding, ...] = ()


@dataclass(frozen=True)
class LoadBegin:
    """Open a load of ``total_bytes`` for ``partition_id`` (replacing what that id held)."""

    TYPE: ClassVar[MessageType] = MessageType.LOAD_BEGIN
    partition_id: int
    total_bytes: int
    digest: bytes


@dataclass(frozen=True)
class LoadChunk:
    TYPE: ClassVar[MessageType] = MessageType.LOAD_CHUNK
    partition_id: int
    offset: int
    data: bytes


@dataclass(frozen=True)
class LoadEnd:
    """Commit: the board checks the digest over every byte and only then keeps the partition."""

    TYPE: ClassVar[MessageType] = MessageType.LOAD_END
    partition_id: int


@dataclass(frozen=True)
class Unload:
    TYPE: ClassVar[MessageType] = MessageType.UNLOAD
    partition_id: int


@dataclass(frozen=True)
class Run:
    """Run a held partition: the input's shapes and its first bytes (the rest in RUN_INPUT)."""

    TYPE: ClassVar[MessageType] = MessageType.RUN
    partition_id: int
    tensors: tuple[TensorShape, ...]
    data: bytes = b""


@dataclass(frozen=True)
class RunInput:
    TYPE: ClassVar[MessageType] = MessageType.RUN_INPUT
    offset: int
    data: bytes


@dataclass(frozen=True)
class RunTimings:
    """What the board measured for one run."""

    #: The accelerator's own cycle counter for the network (divide by the CNN clock).
    cnn_cycles: int
    #: CPU time copying the input into the CNN's data memory, and the output out of it.
    input_load_us: int
    output_unload_us: int
    #: Reloading weights from flash first (0 when the partition was resident).
    weight_load_us: int


@dataclass(frozen=True)
class RunResult:
    """The reply to the request completing a run's input: timings, output shapes, first bytes."""

    TYPE: ClassVar[MessageType] = MessageType.RUN_RESULT
    timings: RunTimings
    tensors: tuple[TensorShape, ...]
    data: bytes = b""


@dataclass(frozen=True)
class OutputRead:
    """Ask for ``length`` bytes of the last run's output from ``offset`` (a pure read)."""

    TYPE: ClassVar[MessageType] = MessageType.OUTPUT_READ
    offset: int
    length: int


@dataclass(frozen=True)
class OutputChunk:
    TYPE: ClassVar[MessageType] = MessageType.OUTPUT_CHUNK
    offset: int
    data: bytes


@dataclass(frozen=True)
class Ack:
    TYPE: ClassVar[MessageType] = MessageType.ACK


@dataclass(frozen=True)
class ErrorReply:
    """A refusal; carries the board's version range so BAD_VERSION is readable at any version."""

    TYPE: ClassVar[MessageType] = MessageType.ERROR
    code: ErrorCode
    min_version: int
    max_version: int
    detail: str = ""


Message: TypeAlias = (
    Hello
    | HelloReply
    | Status
    | StatusReply
    | LoadBegin
    | LoadChunk
    | LoadEnd
    | Unload
    | Run
    | RunInput
    | RunResult
    | OutputRead
    | OutputChunk
    | Ack
    | ErrorReply
)


# ---------------------------------------------------------------------------------------------
# Payload codecs, one pair per message (same field order as the dataclasses and the document)


def _write(message: Message, w: _Writer) -> None:
    match message:
        case Hello():
            w.u8("min_version", message.min_version)
            w.u8("max_version", message.max_version)
            w.u16("max_payload", message.max_payload)
        case HelloReply():
            w.u8("version", message.version)
            w.u8("kind", message.kind)
            w.u16("max_payload", message.max_payload)
            w.u8("window", message.window)
            w.u32("boot_id", message.boot_id)
            limits = message.limits
            w.u32("weight_bytes", limits.weight_bytes)
            w.u32("bias_bytes", limits.bias_bytes)
            w.u16("max_layers", limits.max_layers)
            w.u32("data_bytes", limits.data_bytes)
            w.u32("partition_flash_bytes", limits.partition_flash_bytes)
            w.u32("frame_sram_bytes", limits.frame_sram_bytes)
            w.u32("max_tensor_bytes", limits.max_tensor_bytes)
            w.u32("cnn_clock_hz", limits.cnn_clock_hz)
            w.short_text("firmware", _firmware_bytes(message.firmware), MAX_FIRMWARE_CHARS)
            _write_holdings(w, message.holdings)
        case Status() | Ack():
            pass
        case StatusReply():
            w.u8("state", message.state)
            w.u32("boot_id", message.boot_id)
            w.u32("uptime_ms", message.uptime_ms)
            w.u32("partition_flash_free", message.partition_flash_free)
            w.u32("rx_frames", message.rx_frames)
            w.u32("rx_bad_frames", message.rx_bad_frames)
            _write_holdings(w, message.holdings)
        case LoadBegin():
            w.u16("partition_id", message.partition_id)
            w.u32("total_bytes", message.total_bytes)
            w.exact("digest", message.digest, DIGEST_BYTES)
        case LoadChunk():
            w.u16("partition_id", message.partition_id)
            w.u32("offset", message.offset)
            w.rest(message.data)
        case LoadEnd() | Unload():
            w.u16("partition_id", message.partition_id)
        case Run():
            w.u16("partition_id", message.partition_id)
            _write_tensors(w, message.tensors)
            _check_inline(w.what, message.data, message.tensors)
            w.rest(message.data)
        case RunInput() | OutputChunk():
            w.u32("offset", message.offset)
            w.rest(message.data)
        case RunResult():
            t = message.timings
            w.u32("cnn_cycles", t.cnn_cycles)
            w.u32("input_load_us", t.input_load_us)
            w.u32("output_unload_us", t.output_unload_us)
            w.u32("weight_load_us", t.weight_load_us)
            _write_tensors(w, message.tensors)
            _check_inline(w.what, message.data, message.tensors)
            w.rest(message.data)
        case OutputRead():
            w.u32("offset", message.offset)
            w.u16("length", message.length)
        case ErrorReply():
            w.u8("code", message.code)
            w.u8("min_version", message.min_version)
            w.u8("max_version", message.max_version)
            w.short_text("detail", _clip_utf8(message.detail, MAX_DETAIL_BYTES), MAX_DETAIL_BYTES)


def _firmware_bytes(firmware: str) -> bytes:
    if not (firmware.isascii() and firmware.isprintable()):
        raise ProtocolError(f"HELLO_REPLY.firmware {firmware!r} must be printable ASCII")
    return firmware.encode("ascii")


def _clip_utf8(text: str, limit: int) -> bytes:
    # A detail is for people: a long one is cut (at a character boundary), never refused.
    return text.encode("utf-8")[:limit].decode("utf-8", "ignore").encode("utf-8")


def _check_inline(what: str, data: bytes, tensors: Sequence[TensorShape]) -> None:
    if len(data) > tensors_bytes(tensors):
        raise ProtocolError(f"{what}.data is {len(data)} bytes, more than the tensors' {tensors_bytes(tensors)}")


def _read_hello(r: _Reader) -> Message:
    return Hello(r.u8("min_version"), r.u8("max_version"), r.u16("max_payload"))


def _read_hello_reply(r: _Reader) -> Message:
    version = r.u8("version")
    kind = BoardKind(_enum(r, "kind", BoardKind))
    max_payload = r.u16("max_payload")
    window = r.u8("window")
    boot_id = r.u32("boot_id")
    limits = BoardLimits(
        weight_bytes=r.u32("weight_bytes"),
        bias_bytes=r.u32("bias_bytes"),
        max_layers=r.u16("max_layers"),
        data_bytes=r.u32("data_bytes"),
        partition_flash_bytes=r.u32("partition_flash_bytes"),
        frame_sram_bytes=r.u32("frame_sram_bytes"),
        max_tensor_bytes=r.u32("max_tensor_bytes"),
        cnn_clock_hz=r.u32("cnn_clock_hz"),
    )
    raw = r.short_text("firmware", MAX_FIRMWARE_CHARS)
    try:
        firmware = raw.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError(f"HELLO_REPLY.firmware {raw!r} is not ASCII") from None
    if not firmware.isprintable():
        raise ProtocolError(f"HELLO_REPLY.firmware {firmware!r} is not printable")
    return HelloReply(version, kind, max_payload, window, boot_id, limits, firmware, _read_holdings(r))


def _read_status_reply(r: _Reader) -> Message:
    state = BoardState(_enum(r, "state", BoardState))
    return StatusReply(
        state, r.u32("boot_id"), r.u32("uptime_ms"), r.u32("partition_flash_free"),
        r.u32("rx_frames"), r.u32("rx_bad_frames"), _read_holdings(r),
    )  # fmt: skip


def _read_run(r: _Reader) -> Message:
    partition_id = r.u16("partition_id")
    tensors = _read_tensors(r)
    data = r.rest()
    _check_inline(r.what, data, tensors)
    return Run(partition_id, tensors, data)


def _read_run_result(r: _Reader) -> Message:
    timings = RunTimings(
        r.u32("cnn_cycles"), r.u32("input_load_us"), r.u32("output_unload_us"), r.u32("weight_load_us")
    )
    tensors = _read_tensors(r)
    data = r.rest()
    _check_inline(r.what, data, tensors)
    return RunResult(timings, tensors, data)


def _read_error(r: _Reader) -> Message:
    code = ErrorCode(_enum(r, "code", ErrorCode))
    min_version, max_version = r.u8("min_version"), r.u8("max_version")
    detail = r.short_text("detail", MAX_DETAIL_BYTES).decode("utf-8", "replace")
    return ErrorReply(code, min_version, max_version, detail)


_READERS: dict[MessageType, Callable[[_Reader], Message]] = {
    MessageType.HELLO: _read_hello,
    MessageType.HELLO_REPLY: _read_hello_reply,
    MessageType.STATUS: lambda r: Status(),
    MessageType.STATUS_REPLY: _read_status_reply,
    MessageType.LOAD_BEGIN: lambda r: LoadBegin(
        r.u16("partition_id"), r.u32("total_bytes"), r.take("digest", DIGEST_BYTES)
    ),
    MessageType.LOAD_CHUNK: lambda r: LoadChunk(r.u16("partition_id"), r.u32("offset"), r.rest()),
    MessageType.LOAD_END: lambda r: LoadEnd(r.u16("partition_id")),
    MessageType.UNLOAD: lambda r: Unload(r.u16("partition_id")),
    MessageType.RUN: _read_run,
    MessageType.RUN_INPUT: lambda r: RunInput(r.u32("offset"), r.rest()),
    MessageType.RUN_RESULT: _read_run_result,
    MessageType.OUTPUT_READ: lambda r: OutputRead(r.u32("offset"), r.u16("length")),
    MessageType.OUTPUT_CHUNK: lambda r: OutputChunk(r.u32("offset"), r.rest()),
    MessageType.ACK: lambda r: Ack(),
    MessageType.ERROR: _read_error,
}


def encode_payload(message: Message) -> bytes:
    """The payload bytes of ``message``; :class:`ProtocolError` names a field out of its bounds."""
    writer = _Writer(message.TYPE.name)
    _write(message, writer)
    return bytes(writer.out)


def decode_payload(message_type: MessageType, payload: bytes) -> Message:
    """The message of type ``message_type`` in ``payload``, every field checked against its bound."""
    reader = _Reader(message_type.name, payload)
    message = _READERS[message_type](reader)
    reader.end()
    return message
