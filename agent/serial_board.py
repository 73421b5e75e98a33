"""A real board over a serial port, behind the same :class:`agent.board.Board` interface.

``synergy agent --board serial:/dev/ttyACM0[@921600]`` builds a :class:`SerialBoard`. It
speaks docs/serial-protocol.md through :class:`synergy.serial.session.SerialSession`:

- **connect** (lazily, at the first load or run, and again after an unplug): open the port raw,
  HELLO (another protocol version is refused with both ranges named; a board of another kind
  than the device's profile is refused; limits below the profile's are logged and kept in
  :attr:`SerialBoard.limit_mismatches`), then measure the link: a timed load of a dummy
  partition (16 full LOAD_CHUNKs to the reserved id 0xFFFF, abandoned: never committed), giving
  :attr:`SerialBoard.link_bytes_per_s` (wire bytes per second host -> board, replies included
  in the wait) and :attr:`SerialBoard.payload_bytes_per_s` (the chunks' data alone), which
  :meth:`SerialBoard.port_record` puts in the device record (the planner caps the device's
  link at the payload rate).
- **load**: the partition is checked and costed on the host (the same checker and cost model as
  the emulated board: a partition that does not fit is refused before a byte is sent), then its
  partition image (:mod:`synergy.serial.image`: the ONNX graph with the weights packed at their
  bit width) travels as LOAD_BEGIN / chunks / LOAD_END, the window kept full. The host keeps
  the image, to load it again after a reset; the digests the board reports for what it holds
  are the images'.
- **run**: RUN / RUN_INPUT, RUN_RESULT and OUTPUT_READs; a partition the board no longer holds
  (``UNKNOWN_PARTITION``, or missing from HELLO's holdings after a reconnect) is loaded again
  once, then run.
- **unplug** (EOF, EIO, a board that stops answering, a reset: another ``boot_id`` in a
  STATUS reply): calls in flight raise :class:`Unavailable`; the next call reconnects, at most
  once per back-off (0.1 s doubling to 5 s, reset by a good connection); until then calls fail
  fast with :class:`Unavailable`. The agent's runtime treats that like any failed run (the
  frame is dropped and reported), and once the board is back (same or new ``boot_id``)
  partitions are reloaded from the host's copy.
- **availability**: :attr:`SerialBoard.available` is set while a session is up. Between calls
  a watcher sends STATUS every :data:`WATCH_PERIOD_S` (skipped while a call holds the line),
  so a loss is noticed without traffic too. :meth:`SerialBoard.wait_lost` returns once the
  board is lost; :meth:`SerialBoard.reconnect` probes the port with the back-off until HELLO
  succeeds (the agent leaves the space in between: :mod:`agent.service`). One log line per
  transition: ``serial_board_unavailable``, ``serial_board_connected``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import numpy as np
import structlog

from agent.board import LoadedPartition, RunTiming
from synergy.deployment import PartitionPayload
from synergy.errors import DoesNotFit, FailedPrecondition, InvalidArgument, NotFound, SynergyError, Unavailable
from synergy.hardware.boards import BoardProfile
from synergy.hardware.checker import check_partition
from synergy.hardware.costs import partition_times
from synergy.serial.board_limits import profile_mismatches
from synergy.serial.messages import (
    HelloReply,
    LoadBegin,
    LoadChunk,
    OutputChunk,
    RunResult,
    Status,
    StatusReply,
    TensorShape,
    Unload,
)
from synergy.serial.protocol import max_frame_bytes
from synergy.serial.session import SerialSession, SessionTiming, open_port
from synergy.serial.transfer import load_messages, output_reads, partition_digest, run_messages
from synergy.types import BoardPort
from synergy.wire.tensors import Array

__all__ = ["DEFAULT_BAUD", "SerialBoard", "SerialTarget", "parse_serial_board"]

log = structlog.get_logger(__name__)

DEFAULT_BAUD = 921_600
#: The partition id the link measurement loads into and abandons (never committed).
PROBE_PARTITION = 0xFFFF
PROBE_CHUNKS = 16
RECONNECT_MIN_S = 0.1
RECONNECT_MAX_S = 5.0
#: Between calls, a STATUS this often tells a lost or reset board from an idle one.
WATCH_PERIOD_S = 0.5
#: Added to a run's modelled time for the reply to the request completing its input (§6).
RUN_ALLOWANCE_S = 1.0


@dataclass(frozen=True)
class SerialTarget:
    path: str
    baud: int = DEFAULT_BAUD


def parse_serial_board(value: str) -> SerialTarget | None:
    """``serial:PATH[@BAUD]`` as a target; None for anything else (a board preset or file)."""
    if not value.startswith("serial:"):
        return None
    rest = value.removeprefix("serial:")
    path, at, baud_text = rest.rpartition("@") if "@" in rest else (rest, "", "")
    if not path:
        raise InvalidArgument(f"--board {value!r}: name the port, e.g. serial:/dev/ttyACM0[@921600]")
    baud = DEFAULT_BAUD
    if at:
        if not baud_text.isdigit() or int(baud_text) <= 0:
            raise InvalidArgument(f"--board {value!r}: baud rate {baud_text!r} is not a positive integer")
        baud = int(baud_text)
    return SerialTarget(path, baud)


@dataclass
class _Held:
    loaded: LoadedPartition
    partition_id: int
    #: The partition image sent (and sent again after a reset); its SHA-256 is what the
    #: board's holdings name.
    blob: bytes
    refs: int


class SerialBoard:
    """A MAX7800x on a serial port (real, or ``synergy board-sim --pty``)."""

    def __init__(self, profile: BoardProfile, target: SerialTarget, *, timing: SessionTiming | None = None) -> None:
        self.profile = profile
        self.target = target
        self.timing = timing or SessionTiming(baud=target.baud)
        #: Measured at every connection (bytes per second on the wire, host -> board).
        self.link_bytes_per_s = 0.0
        #: The same measurement counting only the chunks' data (framing removed).
        self.payload_bytes_per_s = 0.0
        self.hello: HelloReply | None = None
        self.limit_mismatches: list[str] = []
        self.connects = 0
        self._session: SerialSession | None = None
        self._held: dict[str, _Held] = {}
        #: Partition ids the board holds now (HELLO's holdings, then our loads).
        self._on_board: set[int] = set()
        self._next_id = 1
        self._lock = asyncio.Lock()
        self._retry_at = 0.0
        self._backoff_s = RECONNECT_MIN_S
        self._tasks: set[asyncio.Task[None]] = set()
        #: Set while a session is up; cleared (with one log line) when it is lost.
        self.available = asyncio.Event()
        self._unavailable = asyncio.Event()
        self._unavailable.set()
        self._log = log.bind(port=target.path)

    # -----------------------------------------------------------------------------------------
    # Connection

    @property
    def connected(self) -> bool:
        return self._session is not None and not self._session.closed

    async def connect(self) -> HelloReply:
        """Open the port, shake hands, check the board and measure the link."""
        reader, writer = await open_port(self.target.path, self.target.baud)
        session = SerialSession(reader, writer, timing=self.timing, name=f"board on {self.target.path}")
        try:
            hello = await session.hello()
            if hello.kind.name.lower() != self.profile.accelerator.lower():
                raise FailedPrecondition(
                    f"board on {self.target.path} is a {hello.kind.name}, but this device's profile "
                    f"{self.profile.name} is a {self.profile.accelerator}"
                )
            self.limit_mismatches = profile_mismatches(hello.kind, hello.limits, self.profile)
            for mismatch in self.limit_mismatches:
                self._log.warning("serial_board_limit_below_profile", detail=mismatch)
            self.link_bytes_per_s, self.payload_bytes_per_s = await _measure(session)
        except BaseException:
            await session.close()
            raise
        previous = self.hello
        self._session, self.hello = session, hello
        digests = {held.partition_id: partition_digest(held.blob) for held in self._held.values()}
        self._on_board = {h.partition_id for h in hello.holdings if digests.get(h.partition_id) == h.digest}
        self.connects += 1
        self.available.set()
        self._unavailable.clear()
        self._own(self._watch(session, hello.boot_id))
        self._log.info(
            "serial_board_connected",
            kind=hello.kind.name,
            firmware=hello.firmware,
            boot_id=hello.boot_id,
            reset=previous is not None and previous.boot_id != hello.boot_id,
            link_bytes_per_s=round(self.link_bytes_per_s),
            max_payload=session.max_payload,
            window=session.window,
        )
        return hello

    def port_record(self) -> BoardPort:
        """What the device record says about the board's port, as of the last connection."""
        if self.hello is None:
            raise FailedPrecondition(f"board on {self.target.path} has not answered HELLO yet")
        return BoardPort(
            path=self.target.path,
            baud=self.target.baud,
            firmware=self.hello.firmware,
            protocol_version=self.hello.version,
            measured_wire_bytes_per_s=self.link_bytes_per_s,
            measured_payload_bytes_per_s=self.payload_bytes_per_s,
        )

    async def _ensure(self) -> SerialSession:
        if self._session is not None and not self._session.closed:
            return self._session
        now = time.monotonic()
        if now < self._retry_at:
            raise Unavailable(
                f"board on {self.target.path} is unavailable; next reconnect in {self._retry_at - now:.1f} s"
            )
        try:
            await self.connect()
        except SynergyError as exc:
            # Any failed attempt (no port, no answer, a board of another kind or version)
            # waits out the back-off: a probing agent never hammers the port.
            self._retry_at = time.monotonic() + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, RECONNECT_MAX_S)
            if isinstance(exc, Unavailable):
                raise Unavailable(f"board on {self.target.path} is unavailable: {exc}") from exc
            raise
        self._backoff_s = RECONNECT_MIN_S
        assert self._session is not None
        return self._session

    async def _lost(self, session: SerialSession, error: SynergyError) -> None:
        """Close ``session`` and, if it was the live one, mark the board unavailable (logged once)."""
        await session.close(error)
        if session is not self._session or not self.available.is_set():
            return
        self.available.clear()
        self._unavailable.set()
        self._log.warning("serial_board_unavailable", error=str(error))

    async def _watch(self, session: SerialSession, boot_id: int) -> None:
        """Notice a lost or reset board between calls (a call in flight notices by itself)."""
        while True:
            await asyncio.sleep(WATCH_PERIOD_S)
            if session is not self._session:
                return
            if self._lock.locked() and not session.closed:
                continue
            async with self._lock:
                try:
                    reply = await session.request(Status())
                except SynergyError as exc:  # a closed session raises why it closed
                    await self._lost(session, exc)
                    return
                if isinstance(reply, StatusReply) and reply.boot_id != boot_id:
                    reset = Unavailable(
                        f"board on {self.target.path} was reset (boot id {boot_id:#x} -> {reply.boot_id:#x})"
                    )
                    await self._lost(session, reset)
                    return

    async def wait_lost(self) -> None:
        """Return once the board is unavailable (at once if it is now)."""
        await self._unavailable.wait()

    async def reconnect(self) -> None:
        """Probe the port until the board answers HELLO: one attempt per back-off (0.1 s
        doubling to 5 s); each attempt is bounded by the session's timeouts."""
        while not self.connected:
            await asyncio.sleep(max(0.0, self._retry_at - time.monotonic()))
            with contextlib.suppress(SynergyError):
                async with self._lock:
                    await self._ensure()

    def _own(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        self.available.clear()
        self._unavailable.set()

    # -----------------------------------------------------------------------------------------
    # The Board interface

    async def load(self, spec: PartitionPayload, label: str) -> LoadedPartition:
        if not spec.onnx:
            held = self._held.get(spec.digest)
            if held is None:
                raise NotFound(f"{label}: partition {spec.digest[:12]} is not loaded here; send its ONNX bytes")
            held.refs += 1
            return held.loaded
        key = hashlib.sha256(spec.onnx).hexdigest()
        if spec.digest and spec.digest != key:
            raise InvalidArgument(f"{label}: partition bytes do not match their digest {spec.digest[:12]}")
        if key in self._held:
            self._held[key].refs += 1
            return self._held[key].loaded
        loaded = await asyncio.to_thread(_describe, spec, key, label, self.profile)
        image = await asyncio.to_thread(_image, spec.onnx)
        partition_id = self._take_id()
        async with self._lock:
            await self._send_partition(partition_id, image, label)
        if key in self._held:  # a concurrent load of the same bytes finished first
            self._held[key].refs += 1
            return self._held[key].loaded
        self._held[key] = _Held(loaded, partition_id, image, 1)
        return loaded

    def _take_id(self) -> int:
        used = {held.partition_id for held in self._held.values()}
        for _ in range(PROBE_PARTITION):
            candidate = self._next_id
            self._next_id = self._next_id % (PROBE_PARTITION - 1) + 1
            if candidate not in used:
                return candidate
        raise DoesNotFit(f"board on {self.target.path}: every partition id is in use")  # pragma: no cover

    async def _send_partition(self, partition_id: int, blob: bytes, label: str) -> None:
        session = await self._ensure()
        try:
            await session.pipeline(load_messages(partition_id, blob, max_payload=session.max_payload))
        except Unavailable as exc:
            await self._lost(session, exc)
            raise
        except SynergyError as exc:
            raise type(exc)(f"{label}: {exc}") from exc
        self._on_board.add(partition_id)

    async def run(self, partition: LoadedPartition, inputs: dict[str, Array]) -> tuple[dict[str, Array], RunTiming]:
        held = self._held.get(partition.key)
        if held is None:
            raise InvalidArgument(f"partition {partition.key[:12]} is not loaded on {self.profile.name}")
        started = time.perf_counter()
        shapes = tuple(TensorShape(t.shape, np.dtype(t.dtype).itemsize) for t in partition.spec.inputs)
        data = b"".join(
            np.ascontiguousarray(inputs[t.name], np.dtype(t.dtype)).tobytes() for t in partition.spec.inputs
        )
        async with self._lock:
            for attempt in range(2):
                if held.partition_id not in self._on_board:
                    # The board lost it (a reset, a replug): load it again from our copy.
                    await self._send_partition(held.partition_id, held.blob, f"reload {partition.key[:12]}")
                try:
                    result, output = await self._run_once(held.partition_id, shapes, data, partition.modelled_s)
                    break
                except NotFound:
                    self._on_board.discard(held.partition_id)
                    if attempt:
                        raise
        outputs: dict[str, Array] = {}
        offset = 0
        for spec in partition.spec.outputs:
            dtype = np.dtype(spec.dtype)
            outputs[spec.name] = np.frombuffer(output, dtype, spec.elements, offset).reshape(spec.shape).copy()
            offset += spec.elements * dtype.itemsize
        timings = result.timings
        assert self.hello is not None
        reload_s = timings.weight_load_us / 1e6
        compute_s = (
            timings.cnn_cycles / self.hello.limits.cnn_clock_hz
            + (timings.input_load_us + timings.output_unload_us) / 1e6
        )
        elapsed_s = time.perf_counter() - started
        return outputs, RunTiming(compute_s, partition.modelled_s + reload_s, reload_s, elapsed_s)

    async def _run_once(
        self, partition_id: int, shapes: tuple[TensorShape, ...], data: bytes, modelled_s: float
    ) -> tuple[RunResult, bytes]:
        session = await self._ensure()
        try:
            replies = await session.pipeline(
                run_messages(partition_id, shapes, data, max_payload=session.max_payload),
                last_allowance_s=modelled_s + RUN_ALLOWANCE_S,
            )
            result = replies[-1]
            if not isinstance(result, RunResult):
                raise InvalidArgument(f"board on {self.target.path}: RUN answered with {result.TYPE.name}")
            total = sum(t.nbytes for t in result.tensors)
            output = bytearray(result.data)
            reads = output_reads(total, len(result.data), max_payload=session.max_payload)
            for chunk in await session.pipeline(reads):
                if not isinstance(chunk, OutputChunk):
                    raise InvalidArgument(f"board on {self.target.path}: OUTPUT_READ answered {chunk.TYPE.name}")
                output += chunk.data
        except Unavailable as exc:
            await self._lost(session, exc)
            raise
        return result, bytes(output)

    def unload(self, key: str) -> None:
        held = self._held.get(key)
        if held is None:
            return
        held.refs -= 1
        if held.refs > 0:
            return
        del self._held[key]
        if held.partition_id in self._on_board and self.connected:
            # The interface's unload is synchronous: the UNLOAD request goes out in an owned task.
            self._own(self._unload(held.partition_id))

    async def _unload(self, partition_id: int) -> None:
        async with self._lock:
            self._on_board.discard(partition_id)
            session = self._session
            if session is None or session.closed:
                return
            with contextlib.suppress(SynergyError):
                await session.request(Unload(partition_id))

    def weight_bytes_loaded(self) -> int:
        return sum(held.loaded.weight_bytes for held in self._held.values())


def _image(onnx_bytes: bytes) -> bytes:
    """The partition image the board is sent (in a thread: packing parses the model)."""
    # Imported here, like onnx in _describe: the agent of a board that never loads does not
    # pay for onnx.
    from synergy.serial.image import pack_partition

    return pack_partition(onnx_bytes)


def _describe(spec: PartitionPayload, key: str, label: str, profile: BoardProfile) -> LoadedPartition:
    """Check a partition against the board's profile and cost it (host side, in a thread)."""
    import onnx

    from synergy.hardware.analysis import analyze_model

    try:
        proto = onnx.load_from_string(spec.onnx)
    except Exception as exc:
        raise InvalidArgument(f"{label}: partition is not valid ONNX: {exc}") from exc
    hardware = analyze_model(proto, label)
    report = check_partition(hardware, 0, len(hardware.layers) - 1, profile)
    if not report.fits:
        raise DoesNotFit(
            f"{label}: layers {spec.first_layer}-{spec.last_layer} do not fit {profile.name}: "
            + "; ".join(report.reasons)
        )
    times = partition_times(hardware, 0, len(hardware.layers) - 1, profile)
    return LoadedPartition(key, spec, hardware.weight_bytes, times.accelerator_s, times.cpu_s, times.weight_load_s)


async def _measure(session: SerialSession) -> tuple[float, float]:
    """Wire and data bytes per second of a load of dummy full chunks (abandoned, never committed)."""
    room = session.max_payload - 6
    total = room * PROBE_CHUNKS
    chunks = [LoadChunk(PROBE_PARTITION, offset, bytes(room)) for offset in range(0, total, room)]
    started = time.perf_counter()
    await session.pipeline([LoadBegin(PROBE_PARTITION, total, bytes(32)), *chunks])
    elapsed = time.perf_counter() - started
    if elapsed <= 0:  # pragma: no cover - perf_counter is monotonic and the load takes time
        return 0.0, 0.0
    wire = max_frame_bytes(session.max_payload) * PROBE_CHUNKS
    return wire / elapsed, total / elapsed
