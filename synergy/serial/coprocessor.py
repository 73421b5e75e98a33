"""The CNN coprocessor of the firmware's host build: the chip's compute, in a child process.

The firmware core (``firmware/``) is C; on a PC its HAL (``firmware/host/hal_host.c``) cannot
drive a CNN accelerator, so it hands the accelerator's work to this process, over the child's
stdin (requests) and stdout (replies). On a real board the same three HAL calls drive the
accelerator from the partition image in flash instead.

Link: one request, then one reply; each is ``type u8, length u32 LE, payload[length]``, with
the serial protocol's type numbers and payload layouts wherever one exists
(docs/serial-protocol.md §5):

==========  ======================================================  ==========================
request     payload                                                 reply
==========  ======================================================  ==========================
COMMIT 0x12 ``partition_id u16`` then the partition's bytes          ACK, or ERROR
RUN 0x20    a RUN payload carrying the whole input                  RUN_RESULT with the whole
                                                                    output, or ERROR
DROP 0x13   ``partition_id u16`` (UNLOAD's payload)                 ACK
==========  ======================================================  ==========================

Once ready (imports done) the coprocessor sends an ACK whose payload is the name of the
board it emulates; the firmware checks it against its own build. It exits at EOF on stdin.

The work is done by a :class:`~synergy.serial.responder.BoardBackend`, the very interface
``synergy board-sim`` puts behind its Python responder: the emulated board's
(``python -m synergy.cli.coprocessor_cmd``, which wires it; the partition's bytes are passed
through untouched, so whatever format that backend reads, the firmware carries) or
:class:`EchoBackend`, a stand-in chip for protocol tests. Refusals come back as ERROR with
the code the Python responder would send for the same exception.
"""

from __future__ import annotations

import asyncio
import os
import struct
import sys
import zlib

from synergy.errors import ProtocolError, SynergyError
from synergy.serial.messages import (
    ErrorCode,
    ErrorReply,
    MessageType,
    Run,
    RunResult,
    RunTimings,
    TensorShape,
    Unload,
    decode_payload,
    encode_payload,
)
from synergy.serial.protocol import PROTOCOL_VERSION
from synergy.serial.responder import BoardBackend, RunOutcome, error_code_for

__all__ = ["COMMIT", "DROP", "RUN", "EchoBackend", "serve", "serve_stdio"]

COMMIT = MessageType.LOAD_END
RUN = MessageType.RUN
DROP = MessageType.UNLOAD
#: type u8, payload length u32 LE.
_HEAD = struct.Struct("<BI")
_PARTITION_ID = struct.Struct("<H")


class EchoBackend:
    """A stand-in chip for protocol tests: keeps any bytes; a run returns its input reversed.

    Its timings tell a test what the chip saw: ``cnn_cycles`` is the CRC-32 of the partition's
    bytes as committed (intact through the firmware's flash?), ``input_load_us`` counts the
    runs executed (did a retransmission run again?), ``output_unload_us`` is the partition's
    size.
    """

    def __init__(self) -> None:
        self.held: dict[int, bytes] = {}
        self.runs = 0

    async def commit(self, partition_id: int, blob: bytes) -> None:
        self.held[partition_id] = blob

    async def execute(self, partition_id: int, tensors: tuple[TensorShape, ...], data: bytes) -> RunOutcome:
        blob = self.held.get(partition_id)
        if blob is None:
            raise ProtocolError(f"partition {partition_id} is not held by the echo chip")
        self.runs += 1
        timings = RunTimings(zlib.crc32(blob), self.runs, len(blob), 0)
        return RunOutcome(timings, tensors, data[::-1])

    def drop(self, partition_id: int) -> None:
        self.held.pop(partition_id, None)


def _error(code: ErrorCode, detail: str) -> tuple[MessageType, bytes]:
    return MessageType.ERROR, encode_payload(ErrorReply(code, PROTOCOL_VERSION, PROTOCOL_VERSION, detail))


async def _answer(backend: BoardBackend, request_type: int, payload: bytes) -> tuple[MessageType, bytes]:
    try:
        if request_type == COMMIT:
            if len(payload) < _PARTITION_ID.size:
                return _error(ErrorCode.BAD_MESSAGE, f"COMMIT of {len(payload)} bytes has no partition id")
            (partition_id,) = _PARTITION_ID.unpack_from(payload)
            await backend.commit(partition_id, payload[_PARTITION_ID.size :])
            return MessageType.ACK, b""
        if request_type == RUN:
            run = decode_payload(MessageType.RUN, payload)
            assert isinstance(run, Run)
            outcome = await backend.execute(run.partition_id, run.tensors, run.data)
            return MessageType.RUN_RESULT, encode_payload(RunResult(outcome.timings, outcome.tensors, outcome.data))
        if request_type == DROP:
            unload = decode_payload(MessageType.UNLOAD, payload)
            assert isinstance(unload, Unload)
            backend.drop(unload.partition_id)
            return MessageType.ACK, b""
        return _error(ErrorCode.BAD_MESSAGE, f"coprocessor request {request_type:#04x} is not COMMIT, RUN or DROP")
    except SynergyError as exc:
        return _error(error_code_for(exc), str(exc))
    except Exception as exc:  # a fault of the emulated chip must not kill the link
        return _error(ErrorCode.INTERNAL, f"{type(exc).__name__}: {exc}")


async def serve(backend: BoardBackend, board: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Announce ``board``, then answer requests from ``reader`` until EOF."""
    writer.write(_HEAD.pack(MessageType.ACK, len(board)) + board.encode("ascii"))
    await writer.drain()
    while True:
        try:
            request_type, length = _HEAD.unpack(await reader.readexactly(_HEAD.size))
            payload = await reader.readexactly(length)
        except asyncio.IncompleteReadError:
            return
        reply_type, reply = await _answer(backend, request_type, payload)
        writer.write(_HEAD.pack(reply_type, len(reply)) + reply)
        await writer.drain()


async def serve_stdio(backend: BoardBackend, board: str) -> int:
    """:func:`serve` on this process's stdin and stdout (the firmware's pipes).

    The link keeps a private copy of stdout; file descriptor 1 becomes stderr, so that a stray
    print (ours or a library's) can never corrupt the link.
    """
    link = os.dup(sys.stdout.fileno())
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(0, "rb", buffering=0))
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(link, "wb", buffering=0)
    )
    writer = asyncio.StreamWriter(transport, protocol, reader, loop)
    try:
        await serve(backend, board, reader, writer)
    except (ConnectionError, BrokenPipeError):
        pass  # the firmware went away first: nothing left to answer
    finally:
        writer.close()
    return 0
