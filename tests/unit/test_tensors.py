"""The tensor codec and frame chunking: exact int8 narrowing, explicit limits, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from synergy.errors import InvalidArgument, ResourceExhausted
from synergy.hardware.model import TensorSpec
from synergy.v1 import agent_pb2
from synergy.wire.tensors import (
    MAX_FRAME_BYTES,
    Frame,
    FrameAssembler,
    WireChunk,
    array_from_proto,
    array_to_proto,
    check_matches,
    decode_chunk,
    encode_frame,
    frame_to_chunks,
    narrow,
)

SPEC = TensorSpec("x", (1, 3, 4, 4), "int8")


def test_integer_valued_float_travels_as_int8_exactly() -> None:
    values = np.arange(-24, 24, dtype=np.float32).reshape(SPEC.shape)
    tensor = array_to_proto(values, SPEC)
    assert len(tensor.data) == SPEC.elements  # one byte per element
    spec, back = array_from_proto(tensor)
    assert spec == SPEC and back.dtype == np.int8
    assert np.array_equal(back.astype(np.float32), values)


@pytest.mark.parametrize("bad", [0.5, 128.0, -129.0, np.nan])
def test_value_that_int8_cannot_hold_is_refused(bad: float) -> None:
    values = np.zeros(SPEC.shape, dtype=np.float32)
    values[0, 0, 0, 0] = bad
    with pytest.raises(InvalidArgument, match="cannot travel as int8"):
        narrow(values, SPEC)


def test_wrong_shape_is_refused_with_both_shapes() -> None:
    with pytest.raises(InvalidArgument, match=r"\[1, 3, 4, 5\] != expected \[1, 3, 4, 4\]"):
        narrow(np.zeros((1, 3, 4, 5)), SPEC)


def test_check_matches_names_the_mismatch() -> None:
    with pytest.raises(InvalidArgument, match="got float32"):
        check_matches([TensorSpec("x", SPEC.shape, "float32")], [SPEC])
    with pytest.raises(InvalidArgument, match="do not match the expected inputs"):
        check_matches([TensorSpec("y", SPEC.shape)], [SPEC])


def _frame(nbytes: int) -> Frame:
    data = (np.arange(nbytes) % 251 - 125).astype(np.int8).reshape(1, nbytes)
    return Frame("app", 3, 1, 42, 1.5, {"a": data, "b": np.ones((1, 7), np.float32)}, "glasses")


@pytest.mark.parametrize("chunk", [1, 100, 4096, 1 << 20])
def test_frames_survive_chunking(chunk: int) -> None:
    frame = _frame(10_000)
    chunks = list(frame_to_chunks(frame, chunk))
    assert chunks[0].HasField("header") and not any(c.HasField("header") for c in chunks[1:])
    assert all(0 < len(c.data) <= chunk for c in chunks)
    assert len(chunks) == -(-frame.nbytes // chunk)
    assembler = FrameAssembler()
    rebuilt = [f for f in (assembler.feed(c) for c in chunks) if f is not None]
    assert len(rebuilt) == 1
    got = rebuilt[0]
    assert (got.app_id, got.epoch, got.segment, got.seq, got.sender) == ("app", 3, 1, 42, "glasses")
    for name in ("a", "b"):
        assert np.array_equal(got.tensors[name], frame.tensors[name])
    assert got.specs() == frame.specs()


def test_a_frame_that_fits_is_one_message_read_in_place() -> None:
    frame = _frame(1000)
    (message,) = encode_frame(frame)
    chunk = decode_chunk(message)
    got = FrameAssembler().feed(chunk)
    assert got is not None and got.nbytes == frame.nbytes
    # Views of the received bytes, not copies.
    assert all(np.shares_memory(a, np.frombuffer(message, np.uint8)) for a in got.tensors.values())
    # The hand-made encoding is the proto's: any gRPC client reads and writes the same bytes.
    proto = agent_pb2.FrameChunk.FromString(message)
    assert proto.header.seq == 42 and len(proto.data) == frame.nbytes
    assert FrameAssembler().feed(decode_chunk(proto.SerializeToString())) is not None


def test_an_empty_frame_is_one_header_message() -> None:
    frame = Frame("app", 1, 1, 7, 0.0, {}, "glasses")
    (message,) = encode_frame(frame)
    got = FrameAssembler().feed(decode_chunk(message))
    assert got is not None and got.tensors == {} and got.seq == 7


@pytest.mark.parametrize(
    ("message", "needle"),
    [
        (b"", "neither a header nor data"),
        (b"\x12", "the length of field 2 is cut off"),
        (b"\x12\x05abc", "field 2 says 5 bytes, only 3 follow"),
        (b"\x0a\x02\xff\xff", "header is not a valid FrameHeader"),
        (b"\x10\x01", "field 2 has wire type 0, expected 2"),
        (b"\x12\x01a\x12\x01b", "data appears twice"),
        (b"\x1b", "field 3 has unsupported wire type 3"),
        (b"\x12" + b"\xff" * 11, "longer than 10 bytes"),
    ],
)
def test_malformed_messages_are_refused_naming_the_field(message: bytes, needle: str) -> None:
    with pytest.raises(InvalidArgument, match=needle):
        decode_chunk(message)


def test_unknown_fields_are_skipped() -> None:
    (message,) = encode_frame(_frame(10))
    assert FrameAssembler().feed(decode_chunk(b"\x18\x05\x21" + bytes(8) + message)) is not None


def test_a_chunked_frame_cut_midway_or_overrun_changes_nothing() -> None:
    chunks = [decode_chunk(m) for m in encode_frame(_frame(100), 30)]
    assembler = FrameAssembler()
    assert assembler.feed(chunks[0]) is None and assembler.pending_seq == 42
    with pytest.raises(InvalidArgument, match="empty data chunk"):
        assembler.feed(WireChunk(None, memoryview(b"")))
    too_much = WireChunk(None, memoryview(bytes(200)))
    with pytest.raises(InvalidArgument, match="header said total_bytes 128"):
        assembler.feed(too_much)
    # The refused chunks changed nothing: the rest of the frame still completes it.
    rebuilt = [assembler.feed(c) for c in chunks[1:]]
    assert rebuilt[-1] is not None and assembler.pending_seq is None


def test_frame_over_the_limit_is_refused_on_both_sides() -> None:
    frame = Frame("app", 1, 0, 1, 0.0, {"a": np.zeros((1, MAX_FRAME_BYTES + 1), np.int8)})
    with pytest.raises(ResourceExhausted, match="frame limit"):
        list(frame_to_chunks(frame))
    small = FrameAssembler(max_frame_bytes=100)
    header = next(frame_to_chunks(_frame(200)))
    with pytest.raises(ResourceExhausted, match="exceeds the frame limit of 100"):
        small.feed(header)


def test_malformed_streams_are_refused() -> None:
    assembler = FrameAssembler()
    with pytest.raises(InvalidArgument, match="without a frame header"):
        assembler.feed(agent_pb2.FrameChunk(data=b"xx"))
    chunks = list(frame_to_chunks(_frame(100), 10))
    assembler.feed(chunks[0])
    with pytest.raises(InvalidArgument, match="arrived after"):
        assembler.feed(chunks[0])
    lying = agent_pb2.FrameChunk()
    lying.header.CopyFrom(chunks[0].header)
    lying.header.total_bytes = 5
    with pytest.raises(InvalidArgument, match="total_bytes 5"):
        FrameAssembler().feed(lying)
