"""What a run's tensors cost on the serial line, frame by frame (docs/serial-protocol.md §4).

Pure, no I/O. For a run's input of N tensor bytes going into a board, and for a run's output
of N bytes coming back, :func:`input_exchange` and :func:`output_exchange` encode the very
frames the host and the board exchange (:mod:`synergy.serial.transfer` cuts the data as the
host does, :func:`~synergy.serial.protocol.encode_frame` frames it: header, CRC-32, COBS and
the delimiter), at the negotiated ``max_payload`` (1,024) and window (2):

- **in**: RUN (shapes and the first bytes) and RUN_INPUTs host -> board, an ACK back for
  each but the last, whose reply is the RUN_RESULT — counted here as one carrying no output
  (the output is the other direction's). The exchange starts with the RUN's first byte and
  ends when the RUN_RESULT has arrived.
- **out**: a RUN carrying no input host -> board, the RUN_RESULT with the output's shapes and
  first bytes back, then OUTPUT_READ / OUTPUT_CHUNK pairs (the host sends the reads only
  once the RUN_RESULT is in, two at a time). It ends when the last chunk has arrived.

The figures are exact for the data they are given. They depend on the data only through
COBS's code bytes — one per zero byte replaced (no cost) plus one per run of 254 non-zero
bytes — so a frame of data costs between 1 code byte and the worst case of §4 (5 for a full
frame). The default data is seeded random int8 (:func:`representative_data`: a zero every
256 bytes on average, about 2 code bytes per full frame); activations after a ReLU, with
many zeros, need 1.

:meth:`Exchange.line_seconds` is the time the exchange takes on a UART at a baud rate
(8N1: 10 bits per byte) with no processing at all: both directions at once (full duplex),
each request waiting for a place in the window, each reply for its request. The planner's
figure for the same bytes is :func:`link_model_seconds`: one message of N bytes over a
:class:`~synergy.types.LinkProfile` (by default ``uart_921600``: 92,160 B/s and 2 bytes per
message, :func:`synergy.planning.cost.transfer_seconds`).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from synergy.errors import InvalidArgument
from synergy.hardware.model import DTYPE_BYTES, TensorSpec
from synergy.planning.cost import transfer_seconds
from synergy.serial.messages import Ack, Message, Run, RunTimings, TensorShape, tensors_bytes
from synergy.serial.protocol import MAX_PAYLOAD, WINDOW, encode_frame
from synergy.serial.session import line_seconds
from synergy.serial.transfer import output_chunk, output_reads, run_messages, run_result
from synergy.types import LINK_PRESETS, LinkProfile

__all__ = [
    "DATA_SEED",
    "PARTITION_ID",
    "RUN_TIMINGS",
    "UART_LINK",
    "Direction",
    "Exchange",
    "Trip",
    "chunk_data_bytes",
    "input_exchange",
    "link_model_seconds",
    "output_exchange",
    "representative_data",
    "tensor_shapes",
]

#: Seed of :func:`representative_data` (the same bytes on every machine).
DATA_SEED = 12
#: The partition the exchanges run (any held id frames alike: a u16 either way).
PARTITION_ID = 1
#: The link model the planner uses for a board on a 921,600-baud UART.
UART_LINK = LINK_PRESETS["uart_921600"]
#: The timings in the RUN_RESULTs here (their values change only COBS code bytes).
RUN_TIMINGS = RunTimings(cnn_cycles=0, input_load_us=0, output_unload_us=0, weight_load_us=0)

Direction = Literal["in", "out"]


@dataclass(frozen=True)
class Trip:
    """One request and its reply: their wire bytes (framing, COBS and delimiter included)."""

    request_bytes: int
    reply_bytes: int


@dataclass(frozen=True)
class Exchange:
    """The frames that move one run's input into a board, or its output out of it."""

    direction: Direction
    #: Tensor bytes moved.
    payload_bytes: int
    #: Round trips in phases: a phase's requests are pipelined (window), and a phase starts
    #: only once the previous one's last reply has arrived (the host needs it first).
    phases: tuple[tuple[Trip, ...], ...]

    @property
    def trips(self) -> int:
        """Request / reply round trips."""
        return sum(len(phase) for phase in self.phases)

    @property
    def frames(self) -> int:
        """Frames both ways (every request has exactly one reply)."""
        return 2 * self.trips

    @property
    def host_to_board_bytes(self) -> int:
        return sum(trip.request_bytes for phase in self.phases for trip in phase)

    @property
    def board_to_host_bytes(self) -> int:
        return sum(trip.reply_bytes for phase in self.phases for trip in phase)

    @property
    def wire_bytes(self) -> int:
        """Bytes on the line that carries the data (host -> board for ``in``)."""
        return self.host_to_board_bytes if self.direction == "in" else self.board_to_host_bytes

    @property
    def back_bytes(self) -> int:
        """Bytes the other way (ACKs and the RUN_RESULT; the RUN and OUTPUT_READs)."""
        return self.board_to_host_bytes if self.direction == "in" else self.host_to_board_bytes

    @property
    def wire_ratio(self) -> float:
        """Wire bytes per tensor byte on the data's line (1.0 would be no overhead at all)."""
        return self.wire_bytes / self.payload_bytes if self.payload_bytes else float("inf")

    def line_seconds(self, baud: int, *, window: int = WINDOW) -> float:
        """Seconds on a UART at ``baud`` with no processing (module doc)."""
        if baud <= 0 or window < 1:
            raise InvalidArgument(f"line time needs a positive baud rate and window, not {baud} and {window}")
        return sum(_phase_seconds(phase, baud, window) for phase in self.phases)


def _phase_seconds(trips: Sequence[Trip], baud: int, window: int) -> float:
    """Full duplex: a request goes once the line is free and the window has room; its reply
    once it has arrived and the line back is free. Ends with the last reply's arrival."""
    forward_free = back_free = 0.0
    arrived: list[float] = []
    for index, trip in enumerate(trips):
        start = forward_free if index < window else max(forward_free, arrived[index - window])
        forward_free = start + line_seconds(trip.request_bytes, baud)
        back_free = max(forward_free, back_free) + line_seconds(trip.reply_bytes, baud)
        arrived.append(back_free)
    return arrived[-1] if arrived else 0.0


def chunk_data_bytes(max_payload: int = MAX_PAYLOAD) -> int:
    """Data bytes one full RUN_INPUT or OUTPUT_CHUNK carries (1,020 at a max_payload of 1,024)."""
    return output_reads(max_payload, 0, max_payload=max_payload)[0].length


def representative_data(nbytes: int, *, seed: int = DATA_SEED) -> bytes:
    """``nbytes`` of seeded random int8 values (uniform: one zero byte in 256 on average)."""
    return random.Random(seed).randbytes(nbytes)


def tensor_shapes(tensors: Sequence[TensorSpec]) -> tuple[TensorShape, ...]:
    """The RUN / RUN_RESULT shapes of ``tensors``, as the host describes them to a board."""
    return tuple(TensorShape(t.shape, DTYPE_BYTES[t.dtype]) for t in tensors)


def _frames(messages: Sequence[Message], first_seq: int, max_payload: int) -> list[int]:
    return [
        len(encode_frame(message, (first_seq + index) & 0xFFFF, max_payload=max_payload))
        for index, message in enumerate(messages)
    ]


def _data(shapes: tuple[TensorShape, ...], data: bytes | None) -> bytes:
    return representative_data(tensors_bytes(shapes)) if data is None else data


def input_exchange(
    shapes: Sequence[TensorShape], data: bytes | None = None, *, max_payload: int = MAX_PAYLOAD, first_seq: int = 1
) -> Exchange:
    """RUN + RUN_INPUTs of ``data`` (default :func:`representative_data`), ACKs, a bare RUN_RESULT."""
    tensors = tuple(shapes)
    payload = _data(tensors, data)
    requests = run_messages(PARTITION_ID, tensors, payload, max_payload=max_payload)
    replies: list[Message] = [Ack()] * (len(requests) - 1)
    replies.append(run_result(RUN_TIMINGS, (), b"", max_payload=max_payload))
    sent = _frames(requests, first_seq, max_payload)
    answered = _frames(replies, first_seq, max_payload)
    return Exchange("in", len(payload), (tuple(map(Trip, sent, answered)),))


def output_exchange(
    shapes: Sequence[TensorShape], data: bytes | None = None, *, max_payload: int = MAX_PAYLOAD, first_seq: int = 1
) -> Exchange:
    """A bare RUN, the RUN_RESULT with the output's first bytes, then OUTPUT_READ / OUTPUT_CHUNK."""
    tensors = tuple(shapes)
    payload = _data(tensors, data)
    run = Run(PARTITION_ID, ())
    result = run_result(RUN_TIMINGS, tensors, payload, max_payload=max_payload)
    reads = output_reads(len(payload), len(result.data), max_payload=max_payload)
    chunks = [output_chunk(payload, read, max_payload=max_payload) for read in reads]
    first = Trip(*_frames([run], first_seq, max_payload), *_frames([result], first_seq, max_payload))
    fetch = map(Trip, _frames(reads, first_seq + 1, max_payload), _frames(chunks, first_seq + 1, max_payload))
    phases = ((first,), tuple(fetch)) if reads else ((first,),)
    return Exchange("out", len(payload), phases)


def link_model_seconds(nbytes: int, link: LinkProfile = UART_LINK) -> float:
    """The planner's time for one transfer of ``nbytes`` over ``link`` (one message)."""
    return transfer_seconds(nbytes, link)
