"""Frames of the serial protocol: header, CRC-32, COBS and the 0x00 delimiter (pure, no I/O).

On the wire a frame is ``COBS(header + payload + crc32) + 0x00`` (docs/serial-protocol.md §2-3):

    header  8 bytes, little-endian: version u8, type u8, flags u8, reserved u8 (0),
            seq u16, payload_length u16
    payload payload_length bytes (at most the negotiated max_payload, 1024 by default)
    crc32   u32 LE, CRC-32/ISO-HDLC (IEEE 802.3, zlib.crc32) over header + payload

:func:`encode_frame` writes one; :class:`FrameDecoder` reads a byte stream in whatever pieces
it arrives and yields, per delimiter, either a decoded :class:`Frame` or a
:class:`FrameError` saying what was wrong. It never raises on input: garbage costs at most
the frame it lands in, and decoding resumes at the next 0x00. Every outcome is counted in
:class:`DecoderCounters` (for the agent's metrics), so no frame is lost unaccounted.
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from synergy.errors import ProtocolError
from synergy.serial import cobs
from synergy.serial.messages import Message, MessageType, decode_payload, encode_payload

__all__ = [
    "CRC_BYTES",
    "DELIMITER",
    "FLAG_NO_SEQ",
    "FLAG_RETRANSMIT",
    "FRAME_OVERHEAD_BYTES",
    "HEADER",
    "HEADER_BYTES",
    "MAX_PAYLOAD",
    "MIN_PAYLOAD",
    "PROTOCOL_VERSION",
    "SUPPORTED_VERSIONS",
    "WINDOW",
    "DecoderCounters",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameErrorKind",
    "crc32",
    "encode_frame",
    "max_frame_bytes",
]

#: The version this code speaks, and the range it accepts in a HELLO (§7).
PROTOCOL_VERSION = 1
SUPPORTED_VERSIONS = frozenset({1})

#: Header: version, type, flags, reserved, seq, payload_length (all little-endian).
HEADER = struct.Struct("<BBBBHH")
HEADER_BYTES = HEADER.size
CRC_BYTES = 4
DELIMITER = b"\x00"

#: Payload limit. The FTHR's DAPLink bridge buffers about 4 KB (HARDWARE.md §3): two frames of
#: 1 KB payload (1,042 bytes on the wire each) stay well inside it, with room for the
#: board's replies and a frame of noise.
MAX_PAYLOAD = 1024
#: The smallest max_payload a peer may announce: a HELLO_REPLY with a few holdings must fit.
MIN_PAYLOAD = 256
#: Requests the host keeps in flight before it waits for a reply.
WINDOW = 2

#: Flag bits. RETRANSMIT: the host sends a request again (same seq); the board only counts it.
#: NO_SEQ: a board's ERROR about a damaged frame, whose sequence number it could not read.
FLAG_RETRANSMIT = 0x01
FLAG_NO_SEQ = 0x02
_KNOWN_FLAGS = FLAG_RETRANSMIT | FLAG_NO_SEQ


def crc32(data: bytes) -> int:
    """CRC-32/ISO-HDLC: poly 0x04C11DB7 reflected (0xEDB88320), init and xor-out 0xFFFFFFFF."""
    return zlib.crc32(data) & 0xFFFFFFFF


def max_frame_bytes(max_payload: int = MAX_PAYLOAD) -> int:
    """The most bytes one frame takes on the wire: worst-case COBS plus the delimiter."""
    return cobs.max_encoded_size(HEADER_BYTES + max_payload + CRC_BYTES) + len(DELIMITER)


#: Wire bytes a full frame costs beyond its payload (18 at 1,024 bytes: 8 + 4 + 5 + 1).
FRAME_OVERHEAD_BYTES = max_frame_bytes(MAX_PAYLOAD) - MAX_PAYLOAD


@dataclass(frozen=True)
class Frame:
    """One intact frame."""

    seq: int
    message: Message
    flags: int = 0
    version: int = PROTOCOL_VERSION


class FrameErrorKind(enum.Enum):
    #: More bytes than the largest frame without a delimiter (the rest up to 0x00 is dropped).
    TOO_LONG = "too_long"
    #: Not valid COBS (a code byte pointing past the end).
    BAD_COBS = "bad_cobs"
    #: Fewer bytes than the header and CRC, or than the header's payload_length says: a frame
    #: cut short (a board reset, a reopened port) or a stream that ended mid-frame.
    TRUNCATED = "truncated"
    #: The CRC does not match: bits changed on the way.
    BAD_CRC = "bad_crc"
    #: The CRC matches but the header does not make sense (length, reserved byte or flags):
    #: the peer has a bug.
    BAD_HEADER = "bad_header"
    #: A protocol version this side does not speak.
    BAD_VERSION = "bad_version"
    #: A type byte no version-1 message has.
    UNKNOWN_TYPE = "unknown_type"
    #: The type is known but its payload breaks the layout (a field out of bounds).
    BAD_PAYLOAD = "bad_payload"


#: Errors whose header passed the CRC: ``seq`` and ``message_type`` can be trusted and answered.
_HEADER_TRUSTED = frozenset(
    {FrameErrorKind.BAD_VERSION, FrameErrorKind.UNKNOWN_TYPE, FrameErrorKind.BAD_PAYLOAD}
)


@dataclass(frozen=True)
class FrameError:
    """A delimited run of bytes that is not a good frame, and why."""

    kind: FrameErrorKind
    detail: str
    #: The damaged frame's sequence number and type byte when its CRC held (else None): the
    #: board answers such a request with an ERROR carrying the same seq.
    seq: int | None = None
    message_type: int | None = None


@dataclass
class DecoderCounters:
    """What a decoder has seen; monotonic, for the agent's metrics."""

    bytes_in: int = 0
    frames: int = 0
    #: Delimiters with nothing before them (a sender's resync 0x00): harmless, not errors.
    empty: int = 0
    errors: dict[FrameErrorKind, int] = field(default_factory=lambda: dict.fromkeys(FrameErrorKind, 0))

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, int]:
        out = {"bytes_in": self.bytes_in, "frames": self.frames, "empty": self.empty}
        out.update({f"error_{kind.value}": count for kind, count in self.errors.items()})
        return out


def encode_frame(
    message: Message,
    seq: int,
    *,
    flags: int = 0,
    version: int = PROTOCOL_VERSION,
    max_payload: int = MAX_PAYLOAD,
) -> bytes:
    """The wire bytes of ``message`` as frame ``seq``, delimiter included.

    :class:`ProtocolError` names the bound a field breaks; a payload over ``max_payload`` is
    refused (split it: :mod:`synergy.serial.transfer`).
    """
    if not 0 <= seq <= 0xFFFF:
        raise ProtocolError(f"frame seq = {seq} is outside 0..65535 (u16)")
    if flags & ~_KNOWN_FLAGS or not 0 <= flags <= 0xFF:
        raise ProtocolError(f"frame flags = {flags:#x} has bits outside the known {_KNOWN_FLAGS:#x}")
    if not 0 <= version <= 0xFF:
        raise ProtocolError(f"frame version = {version} is outside 0..255 (u8)")
    payload = encode_payload(message)
    if len(payload) > max_payload:
        raise ProtocolError(
            f"{message.TYPE.name} payload is {len(payload)} bytes, over the max_payload of {max_payload}"
        )
    body = HEADER.pack(version, message.TYPE, flags, 0, seq, len(payload)) + payload
    return cobs.encode(body + crc32(body).to_bytes(CRC_BYTES, "little")) + DELIMITER


class FrameDecoder:
    """Incremental decoder: :meth:`feed` bytes as they arrive, get frames and errors back.

    Never raises on its input. A frame is judged only when its delimiter arrives; bytes past
    the largest possible frame are dropped up to the next delimiter (one TOO_LONG error).
    """

    def __init__(self, *, max_payload: int = MAX_PAYLOAD, versions: Iterable[int] = SUPPORTED_VERSIONS) -> None:
        if not MIN_PAYLOAD <= max_payload <= 0xFFFF:
            raise ProtocolError(f"decoder max_payload = {max_payload} is outside {MIN_PAYLOAD}..65535")
        self.max_payload = max_payload
        self.versions = frozenset(versions)
        self.counters = DecoderCounters()
        self._limit = max_frame_bytes(max_payload) - len(DELIMITER)
        self._buffer = bytearray()
        #: Dropping bytes of an over-long frame until the next delimiter.
        self._skipping = False

    @property
    def pending(self) -> int:
        """Bytes held of a frame whose delimiter has not arrived yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        """Every frame (or error) that the delimiters in ``data`` complete, in order."""
        self.counters.bytes_in += len(data)
        out: list[Frame | FrameError] = []
        start = 0
        while start < len(data):
            end = data.find(0, start)
            if end < 0:
                self._extend(data[start:], out)
                break
            self._extend(data[start:end], out)
            start = end + 1
            if self._skipping:
                self._skipping = False
            elif self._buffer:
                out.append(self._judge(bytes(self._buffer)))
            else:
                self.counters.empty += 1
            self._buffer.clear()
        return out

    def close(self) -> list[Frame | FrameError]:
        """The stream ended: a frame still waiting for its delimiter is reported TRUNCATED."""
        out: list[Frame | FrameError] = []
        if self._buffer:
            out.append(self._error(FrameErrorKind.TRUNCATED, f"stream ended {len(self._buffer)} bytes into a frame"))
        self._buffer.clear()
        self._skipping = False
        return out

    def _extend(self, chunk: bytes, out: list[Frame | FrameError]) -> None:
        if self._skipping or not chunk:
            return
        if len(self._buffer) + len(chunk) > self._limit:
            out.append(
                self._error(
                    FrameErrorKind.TOO_LONG,
                    f"no delimiter within {self._limit} bytes (the largest frame at max_payload {self.max_payload})",
                )
            )
            self._buffer.clear()
            self._skipping = True
            return
        self._buffer += chunk

    def _error(
        self, kind: FrameErrorKind, detail: str, seq: int | None = None, message_type: int | None = None
    ) -> FrameError:
        self.counters.errors[kind] += 1
        return FrameError(kind, detail, seq if kind in _HEADER_TRUSTED else None, message_type)

    def _judge(self, encoded: bytes) -> Frame | FrameError:
        try:
            body = cobs.decode(encoded)
        except ProtocolError as exc:
            return self._error(FrameErrorKind.BAD_COBS, str(exc))
        minimum = HEADER_BYTES + CRC_BYTES
        if len(body) < minimum:
            return self._error(FrameErrorKind.TRUNCATED, f"{len(body)} bytes, fewer than header and CRC ({minimum})")
        version, type_byte, flags, reserved, seq, length = HEADER.unpack_from(body)
        content, check = body[:-CRC_BYTES], int.from_bytes(body[-CRC_BYTES:], "little")
        if crc32(content) != check:
            if HEADER_BYTES + length > len(content):
                # Likely cut short; a flipped length bit looks the same, and is counted so.
                return self._error(
                    FrameErrorKind.TRUNCATED,
                    f"payload_length {length} but only {len(content) - HEADER_BYTES} payload bytes (CRC fails)",
                )
            return self._error(FrameErrorKind.BAD_CRC, f"CRC {check:#010x} does not match {crc32(content):#010x}")
        if HEADER_BYTES + length != len(content):
            return self._error(
                FrameErrorKind.BAD_HEADER,
                f"payload_length {length} but the frame carries {len(content) - HEADER_BYTES} payload bytes",
            )
        if reserved != 0 or flags & ~_KNOWN_FLAGS:
            return self._error(FrameErrorKind.BAD_HEADER, f"reserved byte {reserved} or unknown flags {flags:#04x}")
        if version not in self.versions:
            return self._error(
                FrameErrorKind.BAD_VERSION,
                f"version {version} is not one of {sorted(self.versions)}",
                seq,
                type_byte,
            )
        if length > self.max_payload:
            return self._error(
                FrameErrorKind.TOO_LONG, f"payload_length {length} is over the max_payload of {self.max_payload}"
            )
        try:
            message_type = MessageType(type_byte)
        except ValueError:
            return self._error(FrameErrorKind.UNKNOWN_TYPE, f"type byte {type_byte:#04x} is unknown", seq, type_byte)
        try:
            message = decode_payload(message_type, content[HEADER_BYTES:])
        except ProtocolError as exc:
            return self._error(FrameErrorKind.BAD_PAYLOAD, str(exc), seq, type_byte)
        self.counters.frames += 1
        return Frame(seq, message, flags, version)
