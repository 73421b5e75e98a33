"""The serial link between a host agent and a MAX7800x board (docs/serial-protocol.md).

Pure, no I/O:

- :mod:`synergy.serial.cobs` — byte stuffing so that 0x00 delimits frames;
- :mod:`synergy.serial.messages` — the message dataclasses and their payload layouts;
- :mod:`synergy.serial.protocol` — frames (header, CRC-32, COBS) and the incremental decoder;
- :mod:`synergy.serial.transfer` — chunking of partitions and tensors, and reassembly;
- :mod:`synergy.serial.board_limits` — a board's HELLO limits against its BoardProfile;
- :mod:`synergy.serial.image` — the partition image a board is loaded with;
- :mod:`synergy.serial.overhead` — exact frames and wire bytes of a tensor's transfer.

With I/O: :mod:`synergy.serial.session` (the host side), :mod:`synergy.serial.responder` (the
board side, as the simulator runs it), :mod:`synergy.serial.coprocessor` (the CNN of the
firmware's host build) and :mod:`synergy.serial.overhead_bench` (the measured overhead).
"""

from __future__ import annotations

from synergy.serial.board_limits import board_kind, limits_for_profile, profile_mismatches
from synergy.serial.messages import (
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
)
from synergy.serial.protocol import (
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    WINDOW,
    DecoderCounters,
    Frame,
    FrameDecoder,
    FrameError,
    FrameErrorKind,
    encode_frame,
)
from synergy.serial.transfer import Reassembly, load_messages, output_chunk, output_reads, run_messages, run_result

__all__ = [
    "MAX_PAYLOAD",
    "PROTOCOL_VERSION",
    "WINDOW",
    "Ack",
    "BoardKind",
    "BoardLimits",
    "BoardState",
    "DecoderCounters",
    "ErrorCode",
    "ErrorReply",
    "Frame",
    "FrameDecoder",
    "FrameError",
    "FrameErrorKind",
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
    "Reassembly",
    "Run",
    "RunInput",
    "RunResult",
    "RunTimings",
    "Status",
    "StatusReply",
    "TensorShape",
    "Unload",
    "board_kind",
    "encode_frame",
    "limits_for_profile",
    "load_messages",
    "output_chunk",
    "output_reads",
    "profile_mismatches",
    "run_messages",
    "run_result",
]
