"""Large transfers over small frames: a partition's bytes, a run's input and its output.

Everything bigger than one frame travels as consecutive chunks, each naming its offset
(docs/serial-protocol.md §5): a load as LOAD_BEGIN, LOAD_CHUNK..., LOAD_END; a run's input as
RUN (shapes and the first bytes) then RUN_INPUT...; a run's output as RUN_RESULT (shapes and
the first bytes) then OUTPUT_READ / OUTPUT_CHUNK pairs the host asks for. The functions below
cut a transfer into messages that each fit ``max_payload``; :class:`Reassembly` puts one
back together on the receiving side, refusing what a correct peer would not send.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from synergy.errors import ProtocolError, ResourceExhausted
from synergy.serial.messages import (
    LoadBegin,
    LoadChunk,
    LoadEnd,
    OutputChunk,
    OutputRead,
    Run,
    RunInput,
    RunResult,
    RunTimings,
    TensorShape,
    encode_payload,
    tensors_bytes,
)
from synergy.serial.protocol import MAX_PAYLOAD

__all__ = [
    "Reassembly",
    "load_messages",
    "output_chunk",
    "output_reads",
    "partition_digest",
    "run_messages",
    "run_result",
]

#: Payload bytes in front of a chunk's data: LOAD_CHUNK partition_id u16 + offset u32;
#: RUN_INPUT / OUTPUT_CHUNK offset u32.
_LOAD_CHUNK_HEAD = 6
_OFFSET_HEAD = 4


def partition_digest(blob: bytes) -> bytes:
    """SHA-256 of a partition's bytes, as LOAD_BEGIN carries it and LOAD_END checks it."""
    return hashlib.sha256(blob).digest()


def load_messages(
    partition_id: int, blob: bytes, *, max_payload: int = MAX_PAYLOAD
) -> list[LoadBegin | LoadChunk | LoadEnd]:
    """The requests that load ``blob`` as ``partition_id``: begin, chunks in order, end."""
    room = max_payload - _LOAD_CHUNK_HEAD
    chunks = [LoadChunk(partition_id, offset, blob[offset : offset + room]) for offset in range(0, len(blob), room)]
    return [LoadBegin(partition_id, len(blob), partition_digest(blob)), *chunks, LoadEnd(partition_id)]


def _first_room(header_only: Run | RunResult, max_payload: int) -> int:
    room = max_payload - len(encode_payload(header_only))
    if room < 0:
        raise ProtocolError(f"{header_only.TYPE.name}: shapes alone exceed the max_payload of {max_payload}")
    return room


def run_messages(
    partition_id: int, tensors: Sequence[TensorShape], data: bytes, *, max_payload: int = MAX_PAYLOAD
) -> list[Run | RunInput]:
    """The requests that run ``partition_id`` on ``data`` (the tensors concatenated in order)."""
    shapes = tuple(tensors)
    if len(data) != tensors_bytes(shapes):
        raise ProtocolError(f"RUN data is {len(data)} bytes but its tensors take {tensors_bytes(shapes)}")
    first = _first_room(Run(partition_id, shapes), max_payload)
    room = max_payload - _OFFSET_HEAD
    rest = [RunInput(offset, data[offset : offset + room]) for offset in range(first, len(data), room)]
    return [Run(partition_id, shapes, data[:first]), *rest]


def run_result(
    timings: RunTimings, tensors: Sequence[TensorShape], data: bytes, *, max_payload: int = MAX_PAYLOAD
) -> RunResult:
    """The board's RUN_RESULT: timings, output shapes and as many output bytes as fit."""
    shapes = tuple(tensors)
    if len(data) != tensors_bytes(shapes):
        raise ProtocolError(f"RUN_RESULT data is {len(data)} bytes but its tensors take {tensors_bytes(shapes)}")
    first = _first_room(RunResult(timings, shapes), max_payload)
    return RunResult(timings, shapes, data[:first])


def output_reads(total: int, received: int, *, max_payload: int = MAX_PAYLOAD) -> list[OutputRead]:
    """The host's OUTPUT_READ requests for the output bytes after the first ``received``."""
    room = max_payload - _OFFSET_HEAD
    return [OutputRead(offset, min(room, total - offset)) for offset in range(received, total, room)]


def output_chunk(output: bytes, request: OutputRead, *, max_payload: int = MAX_PAYLOAD) -> OutputChunk:
    """The board's answer to ``request`` (a pure read: a retransmission gets the same bytes)."""
    room = max_payload - _OFFSET_HEAD
    if request.offset >= len(output) or request.length == 0:
        raise ProtocolError(
            f"OUTPUT_READ.offset = {request.offset} length = {request.length} asks nothing of {len(output)} bytes"
        )
    if request.length > room:
        raise ProtocolError(f"OUTPUT_READ.length = {request.length} is over the {room} bytes one chunk carries")
    return OutputChunk(request.offset, output[request.offset : request.offset + request.length])


class Reassembly:
    """One transfer put back together from in-order chunks.

    Chunks must arrive in order and back to back (the sender never has more in flight than
    the window, and a retransmission carries the same sequence number, so the session layer
    answers duplicates from its reply cache before they get here): a gap, a chunk that
    rewinds, or one that runs past the declared total is a :class:`ProtocolError`; a total
    over ``limit`` is :class:`ResourceExhausted` before any buffer is allocated.
    """

    def __init__(self, total: int, *, limit: int, what: str) -> None:
        if total < 0:
            raise ProtocolError(f"{what}: total_bytes = {total} is negative")
        if total > limit:
            raise ResourceExhausted(f"{what}: total_bytes = {total} is over the limit of {limit}")
        self.what = what
        self.total = total
        self._buffer = bytearray(total)
        self._received = 0

    @property
    def received(self) -> int:
        return self._received

    @property
    def complete(self) -> bool:
        return self._received == self.total

    def add(self, offset: int, data: bytes) -> None:
        if offset > self._received:
            raise ProtocolError(
                f"{self.what}: chunk at offset {offset} leaves a gap (bytes {self._received}..{offset - 1} missing)"
            )
        if offset < self._received:
            raise ProtocolError(
                f"{self.what}: chunk at offset {offset} overlaps bytes already received "
                f"(next expected {self._received})"
            )
        end = offset + len(data)
        if end > self.total:
            raise ProtocolError(
                f"{self.what}: chunk at offset {offset} of {len(data)} bytes ends at {end}, "
                f"past the declared total_bytes of {self.total}"
            )
        self._buffer[offset:end] = data
        self._received = end

    def data(self) -> bytes:
        if not self.complete:
            raise ProtocolError(f"{self.what}: incomplete, {self._received} of {self.total} bytes received")
        return bytes(self._buffer)
