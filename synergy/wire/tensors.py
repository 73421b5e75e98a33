"""Tensors and frames <-> protobuf: the one module that turns arrays into bytes and back.

Activations of MAX7800x models are int8 on the chip and travel as int8: an ONNX partition
computes in float32, but every value a layer emits is an integer in [-128, 127], so the
sender narrows it to the wire dtype of the tensor's spec and the receiver widens it again.
Narrowing checks that nothing is lost; a value that does not fit is an error, never a
silent rounding.

A frame travels as one header chunk followed by data chunks of at most ``chunk_bytes``
(the tensors' bytes concatenated in header order). :class:`FrameAssembler` rebuilds frames
on the receiving side and refuses malformed streams with a clear error.

Tensor specs and frame headers from the wire are validated (:mod:`synergy.wire.validate`:
known dtype, bounded rank, dimensions and bytes) before any buffer is sized from them.
"""

from __future__ import annotations

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
    "MAX_FRAME_BYTES",
    "Frame",
    "FrameAssembler",
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

#: Data chunk size on frame streams: far below gRPC's 4 MiB message limit.
DEFAULT_CHUNK_BYTES = 64 * 1024
#: The largest frame (sum of its tensors' bytes) a stream accepts. The biggest zoo activation
#: (UNet's 64x88x88 wide output) is ~2 MiB; anything far beyond is a bug or an attack.
MAX_FRAME_BYTES = limits.MAX_FRAME_BYTES

_NUMPY_DTYPES: Mapping[str, npt.DTypeLike] = {"int8": np.int8, "float32": np.float32, "int32": np.int32}
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

    @property
    def nbytes(self) -> int:
        return sum(int(a.nbytes) for a in self.tensors.values())

    def specs(self) -> list[TensorSpec]:
        return [TensorSpec(n, tuple(int(d) for d in a.shape), str(a.dtype)) for n, a in self.tensors.items()]


def frame_to_chunks(frame: Frame, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[agent_pb2.FrameChunk]:
    """A header chunk, then the concatenated tensor bytes in chunks of at most ``chunk_bytes``."""
    if chunk_bytes <= 0:
        raise InvalidArgument(f"chunk size must be positive, got {chunk_bytes}")
    payload = b"".join(np.ascontiguousarray(a).tobytes() for a in frame.tensors.values())
    if len(payload) > MAX_FRAME_BYTES:
        raise ResourceExhausted(f"frame of {len(payload)} bytes exceeds the frame limit of {MAX_FRAME_BYTES} bytes")
    header = agent_pb2.FrameHeader(
        app_id=frame.app_id,
        epoch=frame.epoch,
        segment=frame.segment,
        seq=frame.seq,
        capture_time_unix=frame.capture_time,
        tensors=[spec_to_meta(s) for s in frame.specs()],
        total_bytes=len(payload),
        sender=frame.sender,
    )
    yield agent_pb2.FrameChunk(header=header)
    for offset in range(0, len(payload), chunk_bytes):
        yield agent_pb2.FrameChunk(data=payload[offset : offset + chunk_bytes])


class FrameAssembler:
    """Rebuilds frames from a chunk stream: ``feed`` returns a frame when one is complete."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self._max = max_frame_bytes
        self._header: agent_pb2.FrameHeader | None = None
        self._specs: list[TensorSpec] = []
        self._parts: list[bytes] = []
        self._received = 0

    @property
    def pending_seq(self) -> int | None:
        """The seq of a frame whose header arrived but whose data is incomplete."""
        return None if self._header is None else int(self._header.seq)

    def feed(self, chunk: agent_pb2.FrameChunk) -> Frame | None:
        part = chunk.WhichOneof("part")
        if part == "header":
            if self._header is not None:
                raise InvalidArgument(
                    f"frame seq {self._header.seq}: header of seq {chunk.header.seq} arrived "
                    f"after {self._received} of {self._header.total_bytes} bytes"
                )
            self._start(chunk.header)
        elif part == "data":
            if self._header is None:
                raise InvalidArgument("data chunk without a frame header")
            self._parts.append(chunk.data)
            self._received += len(chunk.data)
            if self._received > self._header.total_bytes:
                raise InvalidArgument(
                    f"frame seq {self._header.seq}: {self._received} bytes, header said {self._header.total_bytes}"
                )
        else:
            raise InvalidArgument("empty frame chunk")
        return self._finish() if self._header is not None and self._received == self._header.total_bytes else None

    def _start(self, header: agent_pb2.FrameHeader) -> None:
        validate.frame_header(header)
        specs = [spec_from_meta(m) for m in header.tensors]
        declared = sum(s.nbytes for s in specs)
        if header.total_bytes != declared:
            raise InvalidArgument(
                f"frame seq {header.seq}: total_bytes {header.total_bytes} != {declared} bytes of its tensors"
            )
        if declared > self._max:
            raise ResourceExhausted(f"frame seq {header.seq}: {declared} bytes exceeds the frame limit of {self._max}")
        self._header, self._specs, self._parts, self._received = header, specs, [], 0

    def _finish(self) -> Frame:
        assert self._header is not None
        header, payload = self._header, b"".join(self._parts)
        tensors: dict[str, Array] = {}
        offset = 0
        for spec in self._specs:
            tensors[spec.name] = decode_array(spec, payload[offset : offset + spec.nbytes])
            offset += spec.nbytes
        self._header, self._specs, self._parts, self._received = None, [], [], 0
        return Frame(
            app_id=header.app_id,
            epoch=int(header.epoch),
            segment=int(header.segment),
            seq=int(header.seq),
            capture_time=header.capture_time_unix,
            tensors=tensors,
            sender=header.sender,
        )
