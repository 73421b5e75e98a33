"""``synergy board-sim --pty``: a MAX7800x board's firmware side on a pseudo-terminal.

    synergy board-sim --pty [--board max78000|max78002] [--baud 921600] [--no-chip-timing]
                      [--symlink PATH]

Opens a pseudo-terminal in raw mode, prints the path of its slave side (what a host opens,
like ``/dev/ttyACM0``) and answers the serial protocol (docs/serial-protocol.md) with
:class:`synergy.serial.responder.Responder`, backed by the emulated board (onnxruntime, the
chip's limits and, unless ``--no-chip-timing``, its timing). Every byte it sends takes the
time the UART's baud rate implies (10 bits per byte). A partition arrives as a partition image
of kind ONNX graph (:mod:`synergy.serial.image`), unpacked at LOAD_END; anything else is
refused with BAD_MESSAGE (the real firmware's kind is the synthesized network, issue 12
part 4).
``--symlink`` names the port by a stable path, as udev's ``/dev/serial/by-id`` does: a test
can "replug" the board by starting another simulator on the same name.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import random
import signal
import sys
import tty
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.board import EmulatedBoard, LoadedPartition
from synergy.deployment import PartitionPayload
from synergy.errors import InvalidArgument, NotFound, ProtocolError
from synergy.hardware.boards import BoardProfile, load_board
from synergy.serial.board_limits import board_kind, limits_for_profile
from synergy.serial.messages import RunTimings, TensorShape
from synergy.serial.responder import Responder, RunOutcome, serve_stream
from synergy.serial.session import fd_streams
from synergy.wire.tensors import Array

__all__ = ["EmulatedBackend", "SimulatedPort", "make_responder", "register", "simulator"]

FIRMWARE = "sim-1.0"
_ELEMENT_DTYPES = {1: np.int8, 4: np.int32}


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "board-sim",
        help="simulate a MAX7800x board's serial firmware on a pseudo-terminal",
        description="Speak the board side of the serial protocol on a pty, backed by the emulated board.",
    )
    p.add_argument("--pty", action="store_true", required=True, help="serve on a new pseudo-terminal (prints its path)")
    p.add_argument("--board", default="max78000", help="board preset (max78000, max78002) or board file")
    p.add_argument("--baud", type=int, default=921_600, help="UART baud rate whose pace every sent byte takes")
    p.add_argument("--no-chip-timing", action="store_true", help="do not wait the modelled chip time per run")
    p.add_argument("--symlink", type=Path, help="also name the pty by this path (replaced if it exists)")
    p.set_defaults(func=_run)


class EmulatedBackend:
    """The chip behind the responder: partition images run on an :class:`EmulatedBoard`."""

    def __init__(self, board: EmulatedBoard) -> None:
        self.board = board
        self._held: dict[int, LoadedPartition] = {}

    async def commit(self, partition_id: int, blob: bytes) -> None:
        spec = await asyncio.to_thread(_payload, blob)
        loaded = await self.board.load(spec, f"partition {partition_id}")
        self.drop(partition_id)
        self._held[partition_id] = loaded

    async def execute(self, partition_id: int, tensors: tuple[TensorShape, ...], data: bytes) -> RunOutcome:
        loaded = self._held.get(partition_id)
        if loaded is None:
            raise NotFound(f"partition {partition_id} is not held")
        inputs = _split(loaded.spec, tensors, data)
        outputs, timing = await self.board.run(loaded, inputs)
        clock = self.board.profile.cnn_clock_hz
        half_cpu_us = round(loaded.cpu_s * 1e6 / 2)
        timings = RunTimings(
            min(round(loaded.accelerator_s * clock), 0xFFFFFFFF), half_cpu_us, half_cpu_us, round(timing.reload_s * 1e6)
        )
        shapes = tuple(TensorShape(t.shape, _element_bytes(t.dtype)) for t in loaded.spec.outputs)
        blob = b"".join(np.ascontiguousarray(outputs[t.name]).tobytes() for t in loaded.spec.outputs)
        return RunOutcome(timings, shapes, blob)

    def drop(self, partition_id: int) -> None:
        loaded = self._held.pop(partition_id, None)
        if loaded is not None:
            self.board.unload(loaded.key)


def _payload(blob: bytes) -> PartitionPayload:
    """The partition a committed load's bytes (a partition image) carry, analysed."""
    import onnx

    from synergy.hardware.analysis import analyze_model
    from synergy.serial.image import unpack_partition

    try:
        onnx_bytes = unpack_partition(blob)
    except InvalidArgument as exc:
        # BAD_MESSAGE, not INTERNAL: the host sent what this board cannot take (raw ONNX, a
        # damaged or newer image); reconnecting or retrying would not help.
        raise ProtocolError(str(exc)) from exc
    model = onnx.load_from_string(onnx_bytes)
    hardware = analyze_model(model, "partition")
    digest = hashlib.sha256(onnx_bytes).hexdigest()
    return PartitionPayload(0, len(hardware.layers) - 1, onnx_bytes, hardware.inputs, hardware.outputs, digest)


def _element_bytes(dtype: str) -> int:
    return 4 if dtype in ("int32", "float32") else 1


def _split(spec: PartitionPayload, tensors: tuple[TensorShape, ...], data: bytes) -> dict[str, Array]:
    expected = tuple(TensorShape(t.shape, _element_bytes(t.dtype)) for t in spec.inputs)
    if tensors != expected:
        raise InvalidArgument(f"RUN tensors {tensors} are not the partition's inputs {expected}")
    out: dict[str, Array] = {}
    offset = 0
    for spec_t, shape in zip(spec.inputs, tensors, strict=True):
        values = np.frombuffer(data, _ELEMENT_DTYPES[shape.element_bytes], int(np.prod(shape.dims)), offset)
        out[spec_t.name] = values.reshape(shape.dims)
        offset += shape.nbytes
    return out


def make_responder(profile: BoardProfile, *, chip_timing: bool) -> Responder:
    board = EmulatedBoard(profile, chip_timing=chip_timing)
    return Responder(
        EmulatedBackend(board),
        kind=board_kind(profile),
        limits=limits_for_profile(profile),
        firmware=FIRMWARE,
        # A new boot id at every start, as a reset board has.
        boot_id=random.getrandbits(32),
    )


@dataclass
class SimulatedPort:
    """A running simulator: the pty's slave path (what a host opens) and how to stop it."""

    path: str
    task: asyncio.Task[None]
    writer: asyncio.StreamWriter
    slave: int
    symlink: Path | None

    async def close(self) -> None:
        """Unplug: stop answering and close the pty (the host's reads then fail)."""
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        self.writer.close()
        with contextlib.suppress(OSError):
            os.close(self.slave)
        if self.symlink is not None:
            _relink(self.symlink, None)


async def simulator(profile: BoardProfile, *, baud: int, chip_timing: bool, symlink: Path | None) -> SimulatedPort:
    """Start a simulated board on a new pty."""
    master, slave = os.openpty()
    # Raw: no echo, no line editing, no CR/LF translation; every byte passes as it is. The
    # simulator keeps the slave open too, so a host closing its side is not a hangup here.
    tty.setraw(slave)
    path = os.ttyname(slave)
    if symlink is not None:
        _relink(symlink, path)
    reader, writer = await fd_streams(master)
    responder = make_responder(profile, chip_timing=chip_timing)
    task = asyncio.ensure_future(serve_stream(responder, reader, writer, baud=baud))
    return SimulatedPort(path, task, writer, slave, symlink)


async def _serve(args: argparse.Namespace) -> int:
    profile = load_board(args.board)
    port = await simulator(profile, baud=args.baud, chip_timing=not args.no_chip_timing, symlink=args.symlink)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Printed once a signal stops the simulator cleanly: whoever reads the path may stop it.
    print(port.path, flush=True)
    stopper = asyncio.ensure_future(stop.wait())
    await asyncio.wait({port.task, stopper}, return_when=asyncio.FIRST_COMPLETED)
    stopper.cancel()
    await asyncio.gather(stopper, return_exceptions=True)
    await port.close()
    return 0


def _relink(symlink: Path, target: str | None) -> None:
    with contextlib.suppress(FileNotFoundError):
        symlink.unlink()
    if target is not None:
        symlink.symlink_to(target)


def _run(args: argparse.Namespace) -> int:
    if args.baud <= 0:
        print("synergy board-sim: --baud must be positive", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args))
