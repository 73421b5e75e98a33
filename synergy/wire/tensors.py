"""Tensors and frames <-> protobuf: the one module that turns arrays into bytes and back.

Activations of MAX7800x models are int8 on the chip and travel as int8: an ONNX partition
computes in float32, but every value a layer emits is an integer in [-128, 127], so the
sender narrows it to the wire dtype of the tensor's spec and the receiver widens it again.
Narrowing checks that nothing is lost; a value that does not fit is an error, never a
silent rounding.

A frame travels as one FrameChunk message carrying its header and its tensors' bytes
(concatenated in header order) when those fit in :data:`FRAME_MESSAGE_BYTES`; a larger frame
continues in data-only chunks of that size. :func:`encode_frame` writes the messages (each
tensor byte copied once), :func:`decode_chunk` reads one in place and
:class:`FrameAssembler` rebuilds frames on the receiving side (numpy views of the received
bytes; one preallocated buffer for a chunked frame), refusing malformed streams with a
clear error.

Tensor specs and frame headers from the wire are validated (:mod:`synergy.wire.validate`:
known dtype, bounded rank, dimensions and bytes) before any buffer is sized from them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from synergy import limits
from synergy.errors import InvalidArgument, ResourceExhausted
from synergy.hardware.model import TensorSpec
from synergy.v1 import agent_pb2, common_pb2
from synergy.wire import validate

__all__ = [
    "DEFAULT_CHUNK_BYTES",
    "FRAME_MESSAGE_BYTES",
    "MAX_FRAME_BYTES",
    "Frame",
    "FrameAssembler",
    "WireChunk",
    "chunk_from_proto",
    "decode_chunk",
    "encode_frame",
    "array_from_proto",
    "array_to_proto",
    "check_matches",
    "decode_array",
    "encode_array",
    "narrow",
    "frame_to_chunks",
    "spec_from_meta",
    "spec_to_meta",
]

#: The most tensor bytes one message of a frame stream carries: a frame up to this size travels
#: as one message, a larger one in chunks of this size (what the receiving server accepts per
#: message is this plus room for the header: synergy.limits.MAX_FRAME_CHUNK_MESSAGE_BYTES).
FRAME_MESSAGE_BYTES = limits.FRAME_MESSAGE_BYTES
#: The old name of FRAME_MESSAGE_BYTES.
DEFAULT_CHUNK_BYTES = FRAME_MESSAGE_BYTES
#: The largest frame (sum of its tensors' bytes) a stream accepts. The biggest zoo activation
#: (UNet's 64x88x88 wide output) is ~2 MiB; anything far beyond is a bug or an attack.
MAX_FRAME_BYTES = limits.MAX_FRAME_BYTES

_NUMPY_DTYPES: Mapping[str, npt.DTypeLike] = {"int8": np.int8, "float32": np.float32, "int32": np.int32}
#: Wire dtype names by numpy dtype (``str(dtype)`` is slow enough to matter once per frame).
_DTYPE_NAMES: Mapping[np.dtype[np.generic], str] = {np.dtype(t): n for n, t in _NUMPY_DTYPES.items()}
#: Distinct tensor lists an assembler remembers as validated (a stream carries one).
_KNOWN_SPECS = 16
_INTEGER_RANGES = {"int8": (-128, 127), "int32": (-(2**31), 2**31 - 1)}

Array = npt.NDArray[np.generic]


def spec_to_meta(spec: TensorSpec) -> common_pb2.TensorMeta:
    return common_pb2.TensorMeta(name=spec.name, dtype=spec.dtype, shape=list(spec.shape))


def spec_from_meta(meta: common_pb2.TensorMeta) -> TensorSpec:
    """A tensor spec from the wire, validated (:func:`synergy.wire.validate.tensor_meta`)."""
    validate.tensor_meta(meta, "tensor")
    return TensorSpec(meta.name, tuple(int(d) for d in meta.shape), meta.dtype)


def narrow(array: npt.ArrayLike, spec: TensorSpec) -> Array:
    """``array`` as ``spec``'s wire dtype, checking its shape and that no value changes."""
    values = np.asarray(array)
    if tuple(values.shape) != spec.shape:
        raise InvalidArgument(f"tensor {spec.name!r}: shape {list(values.shape)} != expected {list(spec.shape)}")
    target = np.dtype(_NUMPY_DTYPES[spec.dtype])
    if values.dtype == target:
        return values
    if spec.dtype in _INTEGER_RANGES:
        low, high = _INTEGER_RANGES[spec.dtype]
        if values.size and (
            not np.all(np.isfinite(values))
            or not np.array_equal(values, np.round(values))
            or values.min() < low
            or values.max() > high
        ):
            raise InvalidArgument(
                f"tensor {spec.name!r}: values are not integers in [{low}, {high}] and cannot travel as {spec.dtype}"
            )
    return values.astype(target)


def encode_array(array: npt.ArrayLike, spec: TensorSpec) -> bytes:
    """The wire bytes of ``array`` narrowed to ``spec`` (see :func:`narrow`)."""
    return np.ascontiguousarray(narrow(array, spec)).tobytes()


def decode_array(spec: TensorSpec, data: bytes) -> Array:
    """The array of ``spec``'s wire dtype held in ``data``; the size must match exactly."""
    if len(data) != spec.nbytes:
        raise InvalidArgument(f"tensor {spec.name!r}: {len(data)} bytes, expected {spec.nbytes} for {spec}")
    return np.frombuffer(data, dtype=_NUMPY_DTYPES[spec.dtype]).reshape(spec.shape)


def array_to_proto(array: npt.ArrayLike, spec: TensorSpec) -> common_pb2.Tensor:
    return common_pb2.Tensor(meta=spec_to_meta(spec), data=encode_array(array, spec))


def array_from_proto(tensor: common_pb2.Tensor) -> tuple[TensorSpec, Array]:
    spec = spec_from_meta(tensor.meta)
    return spec, decode_array(spec, tensor.data)


def check_matches(received: Sequence[TensorSpec], expected: Sequence[TensorSpec]) -> None:
    """Refuse tensors whose names, shapes or dtypes differ from what a partition takes."""
    got = {t.name: t for t in received}
    want = {t.name: t for t in expected}
    if set(got) != set(want):
        raise InvalidArgument(f"tensors {sorted(got)} do not match the expected inputs {sorted(want)}")
    for name, spec in want.items():
        if got[name].shape != spec.shape or got[name].dtype != spec.dtype:
            raise InvalidArgument(
                f"tensor {name!r}: got {got[name].dtype}{list(got[name].shape)}, "
                f"expected {spec.dtype}{list(spec.shape)}"
            )


@dataclass
class Frame:
    """One input instance flowing through an app's pipeline."""

    app_id: str
    epoch: int
    segment: int
    seq: int
    capture_time: float
    #: Tensors in wire dtype, in a fixed order (the order of the receiving segment's inputs).
    tensors: dict[str, Array] = field(default_factory=dict)
    sender: str = ""
    #: The tensors' specs when already known (a frame read from the wire carries its
    #: header's, validated): :meth:`specs` then does not derive them from the arrays again.
    known_specs: tuple[TensorSpec, ...] | None = field(default=None, repr=False, compare=False)

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.tensors.values())

    def specs(self) -> list[TensorSpec]:
        if self.known_specs is not None:
            return list(self.known_specs)
        return [
            TensorSpec(n, tuple(int(d) for d in a.shape), _DTYPE_NAMES.get(a.dtype) or str(a.dtype))
            for n, a in self.tensors.items()
        ]


# -- frames on the wire --------------------------------------------------------------------------
#
# A FrameChunk is encoded and decoded here by hand, in protobuf's own wire format (so any
# gRPC client built from agent.proto interoperates): building it through the protobuf
# runtime copies each tensor three times on the way out (tobytes, into the message, out of
# it) and twice on the way in, about 1 ms per MiB; by hand, the tensors' bytes are copied
# once into the message, and read in place on receipt.

_TAG_HEADER = b"\x0a"  # field 1, length-delimited
_TAG_DATA = b"\x12"  # field 2, length-delimited
_WIRE_VARINT, _WIRE_I64, _WIRE_LEN, _WIRE_I32 = 0, 1, 2, 5


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(data: memoryview, pos: int, what: str) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise InvalidArgument(f"frame chunk: {what} is cut off at byte {pos} of {len(data)}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 64:
            raise InvalidArgument(f"frame chunk: {what} is a varint longer than 10 bytes")


@functools.lru_cache(maxsize=256)
def _metas_field(specs: tuple[TensorSpec, ...]) -> bytes:
    """The encoded ``tensors`` field of a header for ``specs`` (the same on every frame of a hop)."""
    return agent_pb2.FrameHeader(tensors=[spec_to_meta(s) for s in specs]).SerializeToString()


def _encode_header(frame: Frame, specs: tuple[TensorSpec, ...], total_bytes: int) -> bytes:
    fields = agent_pb2.FrameHeader(
        app_id=frame.app_id,
        epoch=frame.epoch,
        segment=frame.segment,
        seq=frame.seq,
        capture_time_unix=frame.capture_time,
        total_bytes=total_bytes,
        sender=frame.sender,
    ).SerializeToString()
    # Protobuf decoders accept fields in any order: the cached tensor metadata goes after.
    return fields + _metas_field(specs)


def encode_frame(frame: Frame, message_bytes: int = FRAME_MESSAGE_BYTES) -> list[bytes]:
    """The encoded FrameChunk messages of ``frame``: one when its bytes fit in ``message_bytes``,
    else a first one with the header and ``message_bytes`` of data, then data-only chunks.

    Each tensor byte is copied once, from the array into its message. A frame over
    :data:`MAX_FRAME_BYTES` is refused (ResourceExhausted) before anything is encoded.
    """
    if message_bytes <= 0:
        raise InvalidArgument(f"message size must be positive, got {message_bytes}")
    views = [np.ascontiguousarray(a).data.cast("B") for a in frame.tensors.values()]
    total = sum(len(v) for v in views)
    if total > MAX_FRAME_BYTES:
        raise ResourceExhausted(f"frame of {total} bytes exceeds the frame limit of {MAX_FRAME_BYTES} bytes")
    header = _encode_header(frame, tuple(frame.specs()), total)
    pieces: list[list[memoryview]] = [[]]
    room = message_bytes
    for view in views:
        while len(view):
            if not room:
                pieces.append([])
                room = message_bytes
            taken, view = view[:room], view[room:]
            pieces[-1].append(taken)
            room -= len(taken)
    header_field = [_TAG_HEADER, _varint(len(header)), header]
    return [_encode_chunk(header_field if i == 0 else [], data) for i, data in enumerate(pieces)]


def _encode_chunk(header_field: list[bytes], data: list[memoryview]) -> bytes:
    size = sum(len(d) for d in data)
    if not size:
        return b"".join(header_field)
    return b"".join([*header_field, _TAG_DATA, _varint(size), *data])


def frame_to_chunks(frame: Frame, chunk_bytes: int = FRAME_MESSAGE_BYTES) -> Iterator[agent_pb2.FrameChunk]:
    """The messages of :func:`encode_frame` as protos (for tests and tools that speak protos)."""
    for message in encode_frame(frame, chunk_bytes):
        yield agent_pb2.FrameChunk.FromString(message)


@dataclass(frozen=True)
class WireChunk:
    """One FrameChunk as read off the wire: the header (if this chunk starts a frame) and a
    view of its data in the received message (no copy)."""

    header: agent_pb2.FrameHeader | None
    data: memoryview


def decode_chunk(message: bytes) -> WireChunk:
    """A received FrameChunk message, read in place: refuses a malformed one, naming the field."""
    view = memoryview(message)
    header: agent_pb2.FrameHeader | None = None
    data: memoryview | None = None
    pos = 0
    while pos < len(view):
        key, pos = _read_varint(view, pos, "a field tag")
        number, wire = key >> 3, key & 7
        if wire == _WIRE_LEN:
            length, pos = _read_varint(view, pos, f"the length of field {number}")
            end = pos + length
            if end > len(view):
                raise InvalidArgument(f"frame chunk: field {number} says {length} bytes, only {len(view) - pos} follow")
            if number == 1:
                if header is not None:
                    raise InvalidArgument("frame chunk: header appears twice")
                try:
                    header = agent_pb2.FrameHeader.FromString(bytes(view[pos:end]))
                except Exception as exc:  # DecodeError, or whatever a parser of hostile bytes raises
                    raise InvalidArgument(f"frame chunk: header is not a valid FrameHeader ({exc})") from exc
            elif number == 2:
                if data is not None:
                    raise InvalidArgument("frame chunk: data appears twice")
                data = view[pos:end]
            pos = end
        elif number in (1, 2):
            raise InvalidArgument(f"frame chunk: field {number} has wire type {wire}, expected 2 (bytes)")
        elif wire == _WIRE_VARINT:
            _, pos = _read_varint(view, pos, f"field {number}")
        elif wire in (_WIRE_I64, _WIRE_I32):
            pos += 8 if wire == _WIRE_I64 else 4
            if pos > len(view):
                raise InvalidArgument(f"frame chunk: field {number} is cut off")
        else:
            raise InvalidArgument(f"frame chunk: field {number} has unsupported wire type {wire}")
    if header is None and data is None:
        raise InvalidArgument("frame chunk has neither a header nor data")
    return WireChunk(header, data if data is not None else view[:0])


def chunk_from_proto(chunk: agent_pb2.FrameChunk) -> WireChunk:
    """A FrameChunk proto as the assembler reads it (tests, tools)."""
    return WireChunk(chunk.header if chunk.HasField("header") else None, memoryview(chunk.data))


class FrameAssembler:
    """Rebuilds frames from a chunk stream: ``feed`` returns a frame when one is complete.

    A frame that came in one message is decoded in place: its arrays are read-only views of
    the received bytes. A frame in several chunks is copied once, into a buffer of its size
    allocated when its header arrives (the header's size is checked against the limit first).
    """

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._header: agent_pb2.FrameHeader | None = None
        self._specs: tuple[TensorSpec, ...] = ()
        self._buffer: npt.NDArray[np.uint8] | None = None
        self._received = 0
        #: Tensor lists already validated: (name, dtype, shape) per tensor -> specs.
        self._known_specs: dict[tuple[tuple[str, str, tuple[int, ...]], ...], tuple[TensorSpec, ...]] = {}

    @property
    def pending_seq(self) -> int | None:
        """The seq of a frame whose header arrived but whose data is incomplete."""
        return None if self._header is None else int(self._header.seq)

    def feed(self, chunk: WireChunk | agent_pb2.FrameChunk) -> Frame | None:
        if isinstance(chunk, agent_pb2.FrameChunk):
            chunk = chunk_from_proto(chunk)
        if chunk.header is not None:
            if self._header is not None:
                raise InvalidArgument(
                    f"frame seq {self._header.seq}: header of seq {chunk.header.seq} arrived "
                    f"after {self._received} of {self._header.total_bytes} bytes"
                )
            header, specs = self._start(chunk.header)
            if len(chunk.data) == header.total_bytes:  # the whole frame in one message: no copy
                return _frame(header, specs, chunk.data)
            self._header, self._specs, self._received = header, specs, 0
            self._buffer = np.empty(header.total_bytes, np.uint8)
        elif self._header is None:
            raise InvalidArgument("data chunk without a frame header")
        elif not len(chunk.data):
            raise InvalidArgument(f"frame seq {self._header.seq}: empty data chunk")
        assert self._header is not None and self._buffer is not None
        end = self._received + len(chunk.data)
        if end > self._header.total_bytes:
            raise InvalidArgument(
                f"frame seq {self._header.seq}: {end} bytes, header said total_bytes {self._header.total_bytes}"
            )
        self._buffer[self._received : end] = np.frombuffer(chunk.data, np.uint8)
        self._received = end
        if end < self._header.total_bytes:
            return None
        frame = _frame(self._header, self._specs, self._buffer.data)
        self._header, self._specs, self._buffer, self._received = None, (), None, 0
        return frame

    def _start(self, header: agent_pb2.FrameHeader) -> tuple[agent_pb2.FrameHeader, tuple[TensorSpec, ...]]:
        validate.frame_header_fields(header)
        specs = self._specs_of(header)
        declared = sum(s.nbytes for s in specs)
        if header.total_bytes != declared:
            raise InvalidArgument(
                f"frame seq {header.seq}: total_bytes {header.total_bytes} != {declared} bytes of its tensors"
            )
        if declared > self._max:
            raise ResourceExhausted(f"frame seq {header.seq}: {declared} bytes exceeds the frame limit of {self._max}")
        return header, specs

    def _specs_of(self, header: agent_pb2.FrameHeader) -> tuple[TensorSpec, ...]:
        """The header's tensor specs, validated once per distinct list (every frame of a hop
        carries the same)."""
        key = tuple((m.name, m.dtype, tuple(m.shape)) for m in header.tensors)
        specs = self._known_specs.get(key)
        if specs is None:
            validate.frame_header(header)  # names the offending tensor field
            specs = tuple(spec_from_meta(m) for m in header.tensors)
            if len(self._known_specs) >= _KNOWN_SPECS:
                self._known_specs.clear()
            self._known_specs[key] = specs
        return specs


def _frame(header: agent_pb2.FrameHeader, specs: tuple[TensorSpec, ...], payload: memoryview) -> Frame:
    tensors: dict[str, Array] = {}
    offset = 0
    for spec in specs:
        dtype = np.dtype(_NUMPY_DTYPES[spec.dtype])
        count = spec.nbytes // dtype.itemsize
        if count:
            tensors[spec.name] = np.frombuffer(payload, dtype, count, offset).reshape(spec.shape)
        else:
            tensors[spec.name] = np.empty(spec.shape, dtype)
        offset += spec.nbytes
    return Frame(
        app_id=header.app_id,
        epoch=int(header.epoch),
        segment=int(header.segment),
        seq=int(header.seq),
        capture_time=header.capture_time_unix,
        tensors=tensors,
        sender=header.sender,
        known_specs=specs,
    )
