"""The serial protocol's pure core: COBS, frames, the decoder under noise, chunked transfers."""

from __future__ import annotations

import dataclasses
import random
import zlib

import pytest

from synergy.errors import InvalidArgument, ProtocolError, ResourceExhausted
from synergy.hardware.boards import MAX78000, MAX78002
from synergy.serial import cobs
from synergy.serial.board_limits import board_kind, limits_for_profile, profile_mismatches
from synergy.serial.messages import (
    DIGEST_BYTES,
    MAX_HOLDINGS,
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
    MessageType,
    OutputChunk,
    OutputRead,
    Run,
    RunInput,
    RunResult,
    RunTimings,
    Status,
    StatusReply,
    TensorShape,
    Unload,
    decode_payload,
    encode_payload,
)
from synergy.serial.protocol import (
    CRC_BYTES,
    FLAG_NO_SEQ,
    FLAG_RETRANSMIT,
    FRAME_OVERHEAD_BYTES,
    HEADER,
    HEADER_BYTES,
    MAX_PAYLOAD,
    WINDOW,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorKind,
    crc32,
    encode_frame,
    max_frame_bytes,
)
from synergy.serial.transfer import (
    Reassembly,
    load_messages,
    output_chunk,
    output_reads,
    partition_digest,
    run_messages,
    run_result,
)

# ---------------------------------------------------------------------------------------------
# COBS


def reference_cobs(data: bytes) -> bytes:
    """The reference C encoder (Cheshire and Baker, as on Wikipedia), transcribed line by line."""
    buffer = bytearray(len(data) + len(data) // 254 + 2)
    encode, code_at, code = 1, 0, 1
    for index, byte in enumerate(data):
        left = len(data) - index - 1
        if byte:
            buffer[encode] = byte
            encode += 1
            code += 1
        if not byte or code == 0xFF:
            buffer[code_at], code, code_at = code, 1, encode
            if not byte or left:
                encode += 1
    buffer[code_at] = code
    return bytes(buffer[:encode])


COBS_VECTORS = [
    (b"", b"\x01"),
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255))),
    (bytes(range(0, 255)), b"\x01\xff" + bytes(range(1, 255))),
    (bytes(range(1, 256)), b"\xff" + bytes(range(1, 255)) + b"\x02\xff"),
]


@pytest.mark.parametrize(("data", "encoded"), COBS_VECTORS)
def test_cobs_known_vectors(data: bytes, encoded: bytes) -> None:
    assert cobs.encode(data) == encoded
    assert cobs.decode(encoded) == data


def test_cobs_round_trips_and_matches_the_reference_encoder() -> None:
    rng = random.Random(12)
    cases = [bytes(n) for n in range(0, 600, 7)]  # zeros everywhere
    cases += [b"\x01" * n for n in (253, 254, 255, 507, 508, 509, 1036)]  # no zero at all
    cases += [b"\x01" * 254 + b"\x00" + b"\x02" * 254, b"\x00" + b"\x05" * 508 + b"\x00"]
    for _ in range(300):
        size = rng.randrange(0, 1100)
        density = rng.random()
        cases.append(bytes(0 if rng.random() < density else rng.randrange(1, 256) for _ in range(size)))
    for data in cases:
        encoded = cobs.encode(data)
        assert 0 not in encoded
        assert encoded == reference_cobs(data)
        assert len(encoded) <= cobs.max_encoded_size(len(data))
        assert cobs.decode(encoded) == data
    assert len(cobs.encode(b"\x01" * 1036)) == cobs.max_encoded_size(1036) == 1041


@pytest.mark.parametrize(
    ("encoded", "words"),
    [
        (b"", "empty"),
        (b"\x03\x01", "code 3"),
        (b"\x02\x00", "zero"),
        (b"\x00", "zero"),
        (b"\x05\x01\x00\x01\x01", "zero"),
    ],
)
def test_cobs_refuses_invalid_blocks(encoded: bytes, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        cobs.decode(encoded)


# ---------------------------------------------------------------------------------------------
# Messages and frames

DIGEST = bytes(range(DIGEST_BYTES))
LIMITS = limits_for_profile(MAX78000)
HOLDINGS = (Holding(3, 120_000, DIGEST), Holding(0xFFFF, 0, bytes(DIGEST_BYTES)))
SHAPES = (TensorShape((1, 3, 32, 32)), TensorShape((100,), 4))
TIMINGS = RunTimings(27_020, 41, 12, 0)

EVERY_MESSAGE: list[Message] = [
    Hello(1, 1, 1024),
    HelloReply(1, BoardKind.MAX78000, 1024, 2, 0xDEADBEEF, LIMITS, "1.0.0+g1a2b3c4", HOLDINGS),
    HelloReply(1, BoardKind.MAX78002, 256, 1, 0, limits_for_profile(MAX78002), ""),
    Status(),
    StatusReply(BoardState.LOADING, 7, 123_456, 300_000, 10, 2, HOLDINGS[:1]),
    LoadBegin(3, 120_000, DIGEST),
    LoadChunk(3, 1018, b"\x00\x01" * 100),
    LoadChunk(0, 0, b""),
    LoadEnd(3),
    Unload(0xFFFF),
    Run(3, SHAPES, b"\x00" * 500),
    Run(0, (TensorShape((1,)),), b""),
    RunInput(1000, bytes(range(256))),
    RunResult(TIMINGS, SHAPES, b"\x7f" * 3),
    OutputRead(1018, 1020),
    OutputChunk(0, b"\x80\x00"),
    Ack(),
    ErrorReply(ErrorCode.NO_SPACE, 1, 1, "partition_flash_free 100 < total_bytes 120000"),
    ErrorReply(ErrorCode.BAD_VERSION, 1, 3),
]


def test_every_message_type_is_covered() -> None:
    assert {m.TYPE for m in EVERY_MESSAGE} == set(MessageType)


@pytest.mark.parametrize("message", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_round_trips_through_a_frame(message: Message) -> None:
    assert decode_payload(message.TYPE, encode_payload(message)) == message
    wire = encode_frame(message, 0xBEEF, flags=FLAG_RETRANSMIT)
    assert wire.endswith(b"\x00") and 0 not in wire[:-1]
    assert len(wire) <= max_frame_bytes()
    decoder = FrameDecoder()
    assert decoder.feed(wire) == [Frame(0xBEEF, message, FLAG_RETRANSMIT, 1)]
    assert decoder.counters.frames == 1 and decoder.counters.error_total == 0


def test_frame_payload_boundaries() -> None:
    # LOAD_CHUNK's own fields take 6 bytes: 1018 data bytes make the largest frame.
    largest = LoadChunk(1, 0, b"\xff" * (MAX_PAYLOAD - 6))
    wire = encode_frame(largest, 1)
    assert len(wire) == max_frame_bytes() == MAX_PAYLOAD + FRAME_OVERHEAD_BYTES == 1042
    assert FrameDecoder().feed(wire)[0] == Frame(1, largest)
    with pytest.raises(ProtocolError, match="payload is 1025 bytes, over the max_payload of 1024"):
        encode_frame(LoadChunk(1, 0, b"\xff" * (MAX_PAYLOAD - 5)), 1)
    empty = encode_frame(Ack(), 1)
    assert len(empty) == HEADER_BYTES + CRC_BYTES + 2  # one COBS code byte per group, the delimiter
    assert FrameDecoder().feed(empty) == [Frame(1, Ack())]


def test_a_smaller_negotiated_payload_is_enforced_both_ways() -> None:
    chunk = LoadChunk(1, 0, b"\x01" * 500)
    with pytest.raises(ProtocolError, match="max_payload of 256"):
        encode_frame(chunk, 1, max_payload=256)
    [error] = FrameDecoder(max_payload=256).feed(encode_frame(chunk, 1))
    assert isinstance(error, FrameError) and error.kind is FrameErrorKind.TOO_LONG


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (Hello(256, 1, 1024), r"HELLO.min_version = 256 is outside 0..255"),
        (LoadBegin(1, 10, b"short"), r"LOAD_BEGIN.digest must be 32 bytes, got 5"),
        (LoadChunk(70_000, 0, b""), r"LOAD_CHUNK.partition_id = 70000 is outside 0..65535"),
        (RunInput(-1, b""), r"RUN_INPUT.offset = -1"),
        (Run(1, (TensorShape((1, 0)),)), r"RUN.tensors\[0\].dims\[1\] = 0 is outside 1..65535"),
        (Run(1, (TensorShape((1,), 2),)), r"element_bytes = 2 is not one of \(1, 4\)"),
        (Run(1, (TensorShape((1, 1, 1, 1, 1)),)), r"rank = 5 is outside 1..4"),
        (Run(1, (TensorShape((2,)),) * 9), r"tensor_count = 9 is over the limit of 8"),
        (Run(1, (TensorShape((2,)),), b"abc"), r"RUN.data is 3 bytes, more than the tensors' 2"),
        (HelloReply(1, BoardKind.MAX78000, 1024, 2, 0, LIMITS, "é"), "printable ASCII"),
        (HelloReply(1, BoardKind.MAX78000, 1024, 2, 0, LIMITS, "x" * 33), "firmware is 33 bytes"),
        (StatusReply(BoardState.IDLE, 0, 0, 0, 0, 0, HOLDINGS[:1] * 17), "holding_count = 17"),
    ],
)
def test_encoding_refuses_out_of_bounds_fields(message: Message, words: str) -> None:
    with pytest.raises(ProtocolError, match=words):
        encode_frame(message, 1)


def test_a_full_list_of_holdings_fits_one_frame() -> None:
    reply = HelloReply(1, BoardKind.MAX78002, 1024, 2, 1, LIMITS, "x" * 32, HOLDINGS[:1] * MAX_HOLDINGS)
    assert len(encode_payload(reply)) <= MAX_PAYLOAD


def test_long_error_details_are_cut_not_refused() -> None:
    [frame] = FrameDecoder().feed(encode_frame(ErrorReply(ErrorCode.INTERNAL, 1, 1, "é" * 150), 9))
    assert isinstance(frame, Frame) and isinstance(frame.message, ErrorReply)
    assert frame.message.detail == "é" * 100


@pytest.mark.parametrize(
    ("message_type", "payload", "words"),
    [
        (MessageType.HELLO, b"\x01\x01\x00", r"HELLO.max_payload needs 2 byte\(s\) at offset 2"),
        (MessageType.ACK, b"\x00", r"ACK: 1 unexpected byte\(s\)"),
        (MessageType.ERROR, b"\x63\x01\x01\x00", r"ERROR.code = 99 is not one of"),
        (MessageType.STATUS_REPLY, b"\x09" + bytes(21), r"STATUS_REPLY.state = 9"),
        (MessageType.RUN, b"\x01\x00\x01\x01\x00\x02\x00", r"RUN.tensors\[0\].rank = 0 is outside 1..4"),
        (MessageType.RUN, b"\x01\x00\x01\x01\x01\x02\x00abc", r"RUN.data is 3 bytes, more than the tensors' 2"),
        (MessageType.LOAD_BEGIN, b"\x01\x00" + bytes(4) + bytes(31), r"LOAD_BEGIN.digest needs 32 byte"),
        (MessageType.ERROR, b"\x01\x01\x01\xc9" + bytes(201), r"ERROR.detail_length = 201 is over the limit"),
    ],
)
def test_decoding_refuses_malformed_payloads_naming_the_field(
    message_type: MessageType, payload: bytes, words: str
) -> None:
    with pytest.raises(ProtocolError, match=words):
        decode_payload(message_type, payload)


def raw_frame(body: bytes, *, crc: int | None = None) -> bytes:
    """A frame from hand-made header + payload bytes (CRC computed unless given)."""
    check = crc32(body) if crc is None else crc
    return cobs.encode(body + check.to_bytes(4, "little")) + b"\x00"


@pytest.mark.parametrize(
    ("body", "kind", "seq"),
    [
        (HEADER.pack(2, MessageType.ACK, 0, 0, 5, 0), FrameErrorKind.BAD_VERSION, 5),
        (HEADER.pack(1, 0x55, 0, 0, 6, 0), FrameErrorKind.UNKNOWN_TYPE, 6),
        (HEADER.pack(1, MessageType.ACK, 0, 0, 7, 1) + b"\x00", FrameErrorKind.BAD_PAYLOAD, 7),
        (HEADER.pack(1, MessageType.ACK, 0, 1, 8, 0), FrameErrorKind.BAD_HEADER, None),
        (HEADER.pack(1, MessageType.ACK, 0x80, 0, 8, 0), FrameErrorKind.BAD_HEADER, None),
        (HEADER.pack(1, MessageType.ACK, 0, 0, 8, 0) + b"xy", FrameErrorKind.BAD_HEADER, None),
    ],
)
def test_intact_but_wrong_frames_are_classified(body: bytes, kind: FrameErrorKind, seq: int | None) -> None:
    decoder = FrameDecoder()
    [error] = decoder.feed(raw_frame(body))
    assert isinstance(error, FrameError) and error.kind is kind and error.seq == seq
    assert decoder.counters.errors[kind] == 1 and decoder.counters.frames == 0
    # The next good frame decodes: one bad frame never costs more than itself.
    assert decoder.feed(encode_frame(Ack(), 9)) == [Frame(9, Ack())]


def test_damage_is_classified() -> None:
    good = encode_frame(LoadChunk(1, 0, b"payload!" * 10), 3)
    body = cobs.decode(good[:-1])
    cases = {
        FrameErrorKind.BAD_CRC: raw_frame(body[:-4], crc=crc32(body[:-4]) ^ 1),
        # Cut at a COBS group boundary: the COBS layer cannot tell, the header's length can.
        FrameErrorKind.TRUNCATED: cobs.encode(body[:40]) + b"\x00",
        # Cut inside a COBS group (or its code byte damaged): code 9, only two bytes follow.
        FrameErrorKind.BAD_COBS: b"\x09\x01\x02\x00",
        FrameErrorKind.TOO_LONG: b"\x01" * (max_frame_bytes() + 10) + b"\x00",
    }
    for kind, wire in cases.items():
        decoder = FrameDecoder()
        [error] = decoder.feed(wire)
        assert isinstance(error, FrameError) and error.kind is kind, (kind, error)
        assert decoder.counters.errors[kind] == 1
        assert error.seq is None  # the header did not pass its CRC: its seq is not trusted
    short = FrameDecoder()
    [error] = short.feed(b"\x05\x01\x02\x03\x04\x00")
    assert isinstance(error, FrameError) and error.kind is FrameErrorKind.TRUNCATED


def test_split_feeds_empty_frames_and_close() -> None:
    wire = b"".join(encode_frame(m, seq) for seq, m in enumerate(EVERY_MESSAGE))
    decoder = FrameDecoder()
    out: list[Frame | FrameError] = []
    rng = random.Random(3)
    position = 0
    while position < len(wire):
        step = rng.randrange(1, 40)
        out += decoder.feed(wire[position : position + step])
        position += step
    assert [f.message for f in out if isinstance(f, Frame)] == EVERY_MESSAGE
    assert decoder.feed(b"\x00\x00") == [] and decoder.counters.empty == 2
    assert decoder.feed(encode_frame(Ack(), 1)[:5]) == [] and decoder.pending == 5
    [error] = decoder.close()
    assert isinstance(error, FrameError) and error.kind is FrameErrorKind.TRUNCATED
    assert decoder.pending == 0 and decoder.counters.bytes_in == len(wire) + 7


def test_counters_export_flat_names() -> None:
    decoder = FrameDecoder()
    decoder.feed(b"\x09\x00" + encode_frame(Ack(), 1))
    counts = decoder.counters.as_dict()
    assert counts["frames"] == 1 and counts["error_bad_cobs"] == 1 and counts["error_bad_crc"] == 0


# ---------------------------------------------------------------------------------------------
# The decoder under noise (fixed seeds, bounded loops)

FUZZ_FRAMES = [encode_frame(m, seq) for seq, m in enumerate(EVERY_MESSAGE)]


def decode_all(decoder: FrameDecoder, wire: bytes, rng: random.Random) -> list[Frame | FrameError]:
    """Feed ``wire`` in random pieces; no exception may escape."""
    out: list[Frame | FrameError] = []
    position = 0
    while position < len(wire):
        step = rng.randrange(1, 300)
        out += decoder.feed(wire[position : position + step])
        position += step
    return out


def test_random_bytes_never_raise_and_are_all_counted() -> None:
    rng = random.Random(20240611)
    for _ in range(300):
        size = rng.randrange(0, 3000)
        # Few zeros, many zeros, or uniform: each stresses a different path of the decoder.
        zero_rate = rng.choice([0.0, 0.002, 0.05, 1 / 256])
        noise = bytes(0 if rng.random() < zero_rate else rng.randrange(1, 256) for _ in range(size))
        decoder = FrameDecoder()
        out = decode_all(decoder, noise, rng)
        errors = [item for item in out if isinstance(item, FrameError)]
        assert decoder.counters.error_total == len(errors)
        assert decoder.counters.frames == len(out) - len(errors)
        # Every delimiter judged a frame, counted an error, ended a skipped over-long run or was empty.
        too_long = decoder.counters.errors[FrameErrorKind.TOO_LONG]
        assert len(out) + decoder.counters.empty <= noise.count(0) + too_long


def garbage(rng: random.Random) -> bytes:
    return bytes(rng.randrange(0, 256) for _ in range(rng.randrange(1, 200)))


def test_valid_frames_after_garbage_are_all_decoded() -> None:
    rng = random.Random(7)
    for _ in range(150):
        wanted: list[int] = []
        wire = bytearray()
        for _ in range(rng.randrange(1, 8)):
            wire += garbage(rng)
            # A receiver resynchronises at the delimiter that closes the garbage; a sender
            # that suspects noise starts with a 0x00 of its own.
            wire += b"\x00"
            index = rng.randrange(len(FUZZ_FRAMES))
            wanted.append(index)
            wire += FUZZ_FRAMES[index]
        decoder = FrameDecoder()
        frames = [f for f in decode_all(decoder, bytes(wire), rng) if isinstance(f, Frame)]
        got = [(f.seq, f.message) for f in frames]
        # Garbage may by chance hold a valid frame only with a 2**-32 CRC collision: not here.
        assert got == [(i, EVERY_MESSAGE[i]) for i in wanted]


def test_garbage_without_a_delimiter_costs_only_the_frame_it_lands_in() -> None:
    rng = random.Random(8)
    for _ in range(150):
        first, second = rng.sample(range(len(FUZZ_FRAMES)), 2)
        noise = bytes(rng.randrange(1, 256) for _ in range(rng.randrange(1, 2500)))
        decoder = FrameDecoder()
        out = decode_all(decoder, noise + FUZZ_FRAMES[first] + FUZZ_FRAMES[second], rng)
        # The noise merges with the first frame (one error); the second always survives.
        assert [f.seq for f in out if isinstance(f, Frame)] in ([second], [first, second])
        assert isinstance(out[-1], Frame) and out[-1].seq == second
        assert decoder.counters.error_total == len(out) - decoder.counters.frames == 1


@pytest.mark.parametrize("mutation", ["bit_flip", "truncate", "insert", "delete", "duplicate_delimiter"])
def test_damaged_frames_are_counted_and_the_next_frame_survives(mutation: str) -> None:
    rng = random.Random(mutation)
    for _ in range(300):
        index = rng.randrange(len(FUZZ_FRAMES))
        frame = bytearray(FUZZ_FRAMES[index][:-1])
        if mutation == "bit_flip":
            for _ in range(rng.randrange(1, 4)):
                frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        elif mutation == "truncate":
            del frame[rng.randrange(1, len(frame)) :]
        elif mutation == "insert":
            frame.insert(rng.randrange(len(frame) + 1), rng.randrange(1, 256))
        elif mutation == "delete":
            del frame[rng.randrange(len(frame))]
        else:
            frame.insert(rng.randrange(1, len(frame)), 0)
        follower = (index + 1) % len(FUZZ_FRAMES)
        decoder = FrameDecoder()
        out = decode_all(decoder, bytes(frame) + b"\x00" + FUZZ_FRAMES[follower], rng)
        assert isinstance(out[-1], Frame) and out[-1].seq == follower
        damaged = out[:-1]
        # A flip or insertion that makes a zero byte splits the frame: one error per piece.
        assert 1 <= len(damaged) <= frame.count(0) + 1, damaged
        assert all(isinstance(item, FrameError) for item in damaged), damaged
        assert decoder.counters.error_total == len(damaged) and decoder.counters.frames == 1


# ---------------------------------------------------------------------------------------------
# The worked example of docs/serial-protocol.md §8


def test_the_documented_example_bytes() -> None:
    wire = encode_frame(Hello(min_version=1, max_version=1, max_payload=1024), 1)
    assert wire.hex(" ") == "03 01 01 01 02 01 02 04 03 01 01 06 04 03 de d6 c8 00"
    body = bytes.fromhex("01 01 00 00 01 00 04 00 01 01 00 04")
    assert cobs.decode(wire[:-1]) == body + bytes.fromhex("03 de d6 c8")
    assert zlib.crc32(body) == 0xC8D6DE03
    assert crc32(b"123456789") == 0xCBF43926  # the CRC-32/ISO-HDLC check value
    assert encode_frame(Ack(), 1).hex(" ") == "03 01 7e 01 02 01 01 01 05 e4 13 63 ad 00"


def test_the_documented_figures() -> None:
    assert FRAME_OVERHEAD_BYTES == 18
    line_bytes_per_s = 921_600 / 10
    assert round(line_bytes_per_s * MAX_PAYLOAD / max_frame_bytes()) == 90_568
    assert round(line_bytes_per_s * (MAX_PAYLOAD - 6) / max_frame_bytes()) == 90_037
    # The window in flight plus one frame of slack stays inside the bridge's ~4 KB buffer.
    assert (WINDOW + 1) * max_frame_bytes() <= 4096


# ---------------------------------------------------------------------------------------------
# Transfers


def reassemble(total: int, chunks: list[tuple[int, bytes]], limit: int = 1 << 20) -> bytes:
    target = Reassembly(total, limit=limit, what="test")
    for offset, data in chunks:
        target.add(offset, data)
    return target.data()


@pytest.mark.parametrize("size", [0, 1, 1017, 1018, 1019, 3 * 1018, 120_000])
def test_a_partition_loads_in_frames_that_fit(size: int) -> None:
    blob = random.Random(size).randbytes(size)
    messages = load_messages(7, blob)
    begin, *chunks, end = messages
    assert begin == LoadBegin(7, size, partition_digest(blob)) and end == LoadEnd(7)
    assert all(isinstance(c, LoadChunk) for c in chunks) and len(chunks) == -(-size // 1018)
    for message in messages:
        assert len(encode_payload(message)) <= MAX_PAYLOAD
    parts = [(c.offset, c.data) for c in chunks if isinstance(c, LoadChunk)]
    assert reassemble(size, parts) == blob


@pytest.mark.parametrize("shape", [(1, 1, 28, 28), (1, 3, 32, 32), (1, 48, 88, 88), (1,)])
def test_a_run_round_trips_input_and_output(shape: tuple[int, ...]) -> None:
    shapes = (TensorShape(shape),)
    data = random.Random(1).randbytes(shapes[0].nbytes)
    messages = run_messages(2, shapes, data)
    decoder = FrameDecoder()
    wire = b"".join(encode_frame(m, seq) for seq, m in enumerate(messages))
    received = [f.message for f in decoder.feed(wire) if isinstance(f, Frame)]
    assert received == messages
    first, *rest = received
    assert isinstance(first, Run) and first.tensors == shapes
    target = Reassembly(sum(t.nbytes for t in first.tensors), limit=LIMITS.max_tensor_bytes * 8, what="RUN input")
    target.add(0, first.data)
    for message in rest:
        assert isinstance(message, RunInput)
        target.add(message.offset, message.data)
    assert target.data() == data
    # The same data as output: RUN_RESULT carries what fits, OUTPUT_READs fetch the rest.
    result = run_result(TIMINGS, shapes, data)
    assert len(encode_payload(result)) <= MAX_PAYLOAD
    back = Reassembly(len(data), limit=len(data), what="RUN_RESULT output")
    back.add(0, result.data)
    for read in output_reads(len(data), len(result.data)):
        chunk = output_chunk(data, read)
        assert len(encode_payload(chunk)) <= MAX_PAYLOAD
        back.add(chunk.offset, chunk.data)
    assert back.data() == data


def test_run_and_output_helpers_refuse_inconsistent_requests() -> None:
    with pytest.raises(ProtocolError, match="RUN data is 3 bytes but its tensors take 4"):
        run_messages(1, (TensorShape((4,)),), b"abc")
    with pytest.raises(ProtocolError, match="RUN_RESULT data is 1 bytes"):
        run_result(TIMINGS, (TensorShape((4,)),), b"a")
    with pytest.raises(ProtocolError, match="asks nothing"):
        output_chunk(b"abc", OutputRead(3, 1))
    with pytest.raises(ProtocolError, match="over the 1020 bytes"):
        output_chunk(b"a" * 2000, OutputRead(0, 1021))


def test_reassembly_refuses_gaps_overlaps_and_oversize_naming_the_bound() -> None:
    with pytest.raises(ResourceExhausted, match="LOAD_BEGIN: total_bytes = 600000 is over the limit of 458752"):
        Reassembly(600_000, limit=458_752, what="LOAD_BEGIN")
    target = Reassembly(10, limit=10, what="RUN input")
    target.add(0, b"abcd")
    with pytest.raises(ProtocolError, match=r"offset 6 leaves a gap \(bytes 4..5 missing\)"):
        target.add(6, b"gh")
    with pytest.raises(ProtocolError, match="offset 2 overlaps bytes already received"):
        target.add(2, b"cd")
    with pytest.raises(ProtocolError, match="ends at 11, past the declared total_bytes of 10"):
        target.add(4, b"efghijk")
    with pytest.raises(ProtocolError, match="incomplete, 4 of 10 bytes"):
        target.data()
    target.add(4, b"efghij")
    assert target.complete and target.data() == b"abcdefghij"
    assert reassemble(0, []) == b""


# ---------------------------------------------------------------------------------------------
# HELLO limits against the board profiles


def test_the_limits_of_a_profile_round_trip_and_match_it() -> None:
    for profile in (MAX78000, MAX78002):
        limits = limits_for_profile(profile)
        reply = HelloReply(1, board_kind(profile), 1024, 2, 1, limits, "sim")
        [frame] = FrameDecoder().feed(encode_frame(reply, 1))
        assert isinstance(frame, Frame) and isinstance(frame.message, HelloReply)
        assert profile_mismatches(frame.message.kind, frame.message.limits, profile) == []
    assert BoardLimits(442_368, 2_048, 32, 524_288, 458_752, 98_304, 49_152, 50_000_000) == LIMITS


def test_a_board_offering_less_than_its_profile_is_named() -> None:
    smaller = dataclasses.replace(LIMITS, partition_flash_bytes=100_000, cnn_clock_hz=40_000_000)
    assert profile_mismatches(BoardKind.MAX78000, smaller, MAX78000) == [
        "partition_flash_bytes: the board reports 100000, less than the 458752 of profile max78000",
        "cnn_clock_hz: the board reports 40000000, the profile max78000 says 50000000",
    ]
    assert profile_mismatches(BoardKind.MAX78002, LIMITS, MAX78000) == [
        "board kind: the board is a MAX78002, the profile max78000 is a MAX78000"
    ]
    with pytest.raises(InvalidArgument, match="accelerator 'cpu' is not one of MAX78000, MAX78002"):
        board_kind(dataclasses.replace(MAX78000, accelerator="cpu"))


def test_the_board_may_announce_a_smaller_frame_and_no_seq_errors_decode() -> None:
    wire = encode_frame(ErrorReply(ErrorCode.BAD_CRC, 1, 1, "bad_crc"), 0, flags=FLAG_NO_SEQ)
    [frame] = FrameDecoder(max_payload=256).feed(wire)
    assert isinstance(frame, Frame) and frame.flags == FLAG_NO_SEQ
