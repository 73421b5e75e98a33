"""``synergy bench --dataplane``: one data-plane hop against raw TCP and plain gRPC, in one run.

Three transports carry the same frames over loopback, in this process, one after the other
within every repeat (so a noisy neighbour hurts all three alike):

- **raw asyncio TCP**: a frame is a 16-byte head (seq, length) and the array's bytes written
  straight from the array; the receiver (a buffered protocol) reads it into a buffer of its
  size, views it as numpy and answers an 8-byte ack;
- **plain grpc.aio stream**: one bidirectional call of raw bytes messages (no protobuf); a
  message is the 8-byte seq and the array's bytes (one copy: gRPC Python sends ``bytes``),
  the receiver views it as numpy and answers an 8-byte ack message;
- **Synergy**: one real hop through our code: the sending
  :class:`~agent.dataplane.FrameStream` over :class:`~synergy.wire.frames.GrpcFrameTransport`
  into an agent's gRPC server (:class:`~agent.servicer.AgentServicer`, the error interceptor,
  health and reflection, as a daemon runs it), whose :class:`~agent.runtime.Runtime` on an
  emulated board (chip timing off, links unshaped) receives the frame into a segment that
  delivers it to its output (the result goes to a sink here instead of the coordinator).

Every transport holds at most ``window`` unacknowledged frames (the data plane's default
credit window). A frame *arrives* when the receiver holds it as a numpy array (Synergy: when
the segment delivers it). Latency is one frame at a time, from handing it to the sender to
its arrival; throughput sends back to back and counts until the last arrival. Each figure is
the median over the repeats. TLS is off on all three.
Sizes: 1 KB = 1,000 bytes, 1 MB = 10^6 bytes; MB/s is 10^6 bytes per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import statistics
import struct
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import grpc
import numpy as np

from agent.board import EmulatedBoard
from agent.dataplane import DEFAULT_WINDOW, FrameStream, Radio
from agent.runtime import Runtime
from agent.servicer import AgentServicer, registration
from synergy.deployment import SegmentAssignment
from synergy.errors import InvalidArgument
from synergy.hardware.boards import load_board
from synergy.hardware.model import TensorSpec
from synergy.reports import DeviceTelemetry, Result
from synergy.security.tls import TlsConfig
from synergy.types import LINK_PRESETS, DeviceSpec, OutputSpec
from synergy.wire.frames import GrpcFrameTransport, StreamTarget
from synergy.wire.server import channel_options, server_options, start_server
from synergy.wire.tensors import Array, Frame

__all__ = [
    "BenchPlan",
    "DataplaneTable",
    "FULL",
    "QUICK",
    "format_table",
    "run_dataplane_bench",
]

#: The three columns, in print order.
TRANSPORTS = ("raw asyncio TCP", "plain grpc.aio stream", "Synergy")
KB, MB = 1_000, 1_000_000
_SEQ = struct.Struct("<Q")
_HEAD = struct.Struct("<QQ")
_PLAIN_METHOD = "/synergy.bench.Plain/Stream"
_APP_OF_SIZE = {KB: "bench-1kb", MB: "bench-1mb", 8 * MB: "bench-8mb"}
_EPOCH = 1
_SENDER = "bench-sender"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BenchPlan:
    """How many frames each measurement sends, and how often it is repeated."""

    latency_frames: int
    small_frames: int
    mb_frames: int
    eight_mb_frames: int
    repeats: int
    warmup_frames: int = 20


#: The full run (about a minute on a 2-core host).
FULL = BenchPlan(latency_frames=1000, small_frames=3000, mb_frames=150, eight_mb_frames=24, repeats=3)
#: A smoke run: every cell measured, few frames, one repeat.
QUICK = BenchPlan(latency_frames=60, small_frames=200, mb_frames=8, eight_mb_frames=3, repeats=1, warmup_frames=5)


@dataclass(frozen=True)
class Row:
    label: str
    unit: str
    #: transport -> value (median over repeats)
    values: dict[str, float]
    #: True when smaller is better (latency): the ratios then read "times as long".
    lower_is_better: bool = False


@dataclass
class DataplaneTable:
    rows: list[Row] = field(default_factory=list)
    repeats: int = 0
    window: int = DEFAULT_WINDOW

    def cells(self) -> list[float]:
        """Every number the table prints (values and ratios)."""
        out: list[float] = []
        for row in self.rows:
            out += [*row.values.values(), _ratio(row, "plain grpc.aio stream"), _ratio(row, "raw asyncio TCP")]
        return out


def _ratio(row: Row, baseline: str) -> float:
    base = row.values[baseline]
    return row.values["Synergy"] / base if base > 0 else math.nan


# -- arrivals ------------------------------------------------------------------------------------


class Arrivals:
    """When each frame reached its receiver (perf_counter), and waiting for a count of them."""

    def __init__(self) -> None:
        self.times: dict[int, float] = {}
        self._waiting: tuple[int, asyncio.Future[None]] | None = None

    def note(self, seq: int) -> None:
        self.times[seq] = time.perf_counter()
        if self._waiting is not None and len(self.times) >= self._waiting[0] and not self._waiting[1].done():
            self._waiting[1].set_result(None)

    async def until(self, count: int, timeout_s: float = 60.0) -> None:
        if len(self.times) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting = (count, future)
        try:
            await asyncio.wait_for(future, timeout_s)
        finally:
            self._waiting = None

    def reset(self) -> None:
        self.times = {}


class Hop(Protocol):
    """One transport's sending end; its receiver notes arrivals in ``arrivals``."""

    arrivals: Arrivals

    async def send(self, seq: int, array: Array) -> None:
        """Hand one frame to the sender (waits while the window is full)."""
        ...

    async def close(self) -> None: ...


# -- raw asyncio TCP -------------------------------------------------------------------------------


class _RawTcpReceiver(asyncio.BufferedProtocol):
    """Reads each frame straight into a buffer of its size; acks it once it is whole."""

    def __init__(self, arrivals: Arrivals) -> None:
        self._arrivals = arrivals
        self._head = bytearray(_HEAD.size)
        self._buffer = memoryview(self._head)
        self._filled = 0
        self._seq = -1
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._buffer[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        if self._filled < len(self._buffer):
            return
        self._filled = 0
        if self._seq < 0:
            self._seq, length = _HEAD.unpack(self._head)
            self._buffer = memoryview(bytearray(length))
            if length:
                return
        np.frombuffer(self._buffer, np.int8)
        self._arrivals.note(self._seq)
        assert self._transport is not None
        self._transport.write(_SEQ.pack(self._seq))
        self._seq, self._buffer = -1, memoryview(self._head)


class RawTcpHop:
    def __init__(self, window: int) -> None:
        self.arrivals = Arrivals()
        self._credits = asyncio.Semaphore(window)
        self._server: asyncio.Server | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _RawTcpReceiver(self.arrivals), "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        reader, self._writer = await asyncio.open_connection("127.0.0.1", port)
        self._tasks.append(asyncio.ensure_future(self._read_acks(reader)))

    async def _read_acks(self, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                await reader.readexactly(_SEQ.size)
                self._credits.release()

    async def send(self, seq: int, array: Array) -> None:
        assert self._writer is not None
        await self._credits.acquire()
        self._writer.write(_HEAD.pack(seq, array.nbytes))
        self._writer.write(array.data.cast("B"))
        await self._writer.drain()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# -- plain grpc.aio ----------------------------------------------------------------------------


class PlainGrpcHop:
    def __init__(self, window: int) -> None:
        self.arrivals = Arrivals()
        self._credits = asyncio.Semaphore(window)
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None
        self._call: grpc.aio.StreamStreamCall | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def _stream(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        async for message in requests:
            (seq,) = _SEQ.unpack_from(message)
            np.frombuffer(message, np.int8, offset=_SEQ.size)
            self.arrivals.note(seq)
            yield message[: _SEQ.size]

    async def start(self) -> None:
        self._server = grpc.aio.server(options=server_options())
        handler = grpc.method_handlers_generic_handler(
            "synergy.bench.Plain", {"Stream": grpc.stream_stream_rpc_method_handler(self._stream)}
        )
        self._server.add_generic_rpc_handlers((handler,))
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=channel_options())
        self._call = self._channel.stream_stream(_PLAIN_METHOD)()
        self._tasks.append(asyncio.ensure_future(self._read_acks(self._call)))

    async def _read_acks(self, call: grpc.aio.StreamStreamCall) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.CancelledError):
            async for _ in call:
                self._credits.release()

    async def send(self, seq: int, array: Array) -> None:
        assert self._call is not None
        await self._credits.acquire()
        await self._call.write(b"".join((_SEQ.pack(seq), array.data.cast("B"))))

    async def close(self) -> None:
        if self._call is not None:
            self._call.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._channel is not None:
            await self._channel.close()
        if self._server is not None:
            await self._server.stop(0)


# -- Synergy ---------------------------------------------------------------------------------------


class _Sink:
    """The delivering segment's result sink: notes arrivals; a drop fails the benchmark."""

    def __init__(self) -> None:
        self.arrivals: dict[str, Arrivals] = {}
        self.failures: list[str] = []

    def submit(self, result: Result) -> None:
        if result.dropped:
            self.failures.append(f"{result.app_id} seq {result.seq}: {result.drop_reason}")
            return
        self.arrivals[result.app_id].note(result.seq)


class SynergyAgent:
    """A receiving agent as the daemon runs it (minus the coordinator): server, servicer, runtime."""

    def __init__(self, tls: TlsConfig | None = None, sender_tls: TlsConfig | None = None) -> None:
        self.sink = _Sink()
        self._tls = tls
        self.sender_tls = sender_tls
        device = DeviceSpec(
            device_id="bench-receiver",
            board=load_board("max78002"),
            outputs=(OutputSpec("display"),),
            link=LINK_PRESETS["loopback"],
        )
        self.runtime = Runtime(
            device,
            EmulatedBoard(device.board, chip_timing=False),
            self.sink,
            Radio(device.link, shaped=False),
        )
        self.address = ""
        self._server: object = None

    async def start(self) -> None:
        servicer = AgentServicer(self.runtime, DeviceTelemetry)
        serving = await start_server("127.0.0.1:0", [registration(servicer)], role="agent", tls=self._tls)
        self._server = serving
        self.address = f"127.0.0.1:{serving.port}"
        assignments = []
        for nbytes, app in _APP_OF_SIZE.items():
            self.sink.arrivals[app] = Arrivals()
            spec = TensorSpec("x", (1, nbytes), "int8")
            assignments.append(
                SegmentAssignment(app, 1, (spec,), model="bench", output_type="display", upstream=_SENDER)
            )
        await self.runtime.deploy(_EPOCH, assignments)

    async def close(self) -> None:
        await self.runtime.close(drain_timeout_s=1.0)
        if self._server is not None:
            await self._server.stop(0)  # type: ignore[attr-defined]


class SynergyHop:
    """Frames of one size into the agent: the sending FrameStream over GrpcFrameTransport."""

    def __init__(self, agent: SynergyAgent, nbytes: int, window: int) -> None:
        self._app = _APP_OF_SIZE[nbytes]
        self.arrivals = agent.sink.arrivals[self._app]
        self._agent = agent
        self._dropped: list[str] = []
        link = LINK_PRESETS["loopback"]
        self._stream = FrameStream(
            transport=GrpcFrameTransport(agent.address, tls=agent.sender_tls),
            target=StreamTarget(self._app, _EPOCH, 1),
            peer_link=link,
            radio=Radio(link, shaped=False),
            on_drop=lambda frame, reason: self._dropped.append(f"seq {frame.seq}: {reason}"),
            on_sent=lambda nbytes: None,
            window=window,
            label=f"bench/{self._app}",
        )
        self._stream.start()

    async def send(self, seq: int, array: Array) -> None:
        if self._dropped or self._agent.sink.failures:
            raise InvalidArgument(f"frames were dropped: {(self._dropped + self._agent.sink.failures)[:3]}")
        await self._stream.send(Frame(self._app, _EPOCH, 1, seq, time.time(), {"x": array}, _SENDER))

    async def close(self) -> None:
        await self._stream.close(drain_timeout_s=5.0)


# -- measurements ----------------------------------------------------------------------------------


class _Seqs:
    """Fresh sequence numbers: the delivering segment drops a seq it has seen."""

    def __init__(self) -> None:
        self.next = 0

    def take(self, n: int) -> range:
        start = self.next
        self.next += n
        return range(start, start + n)


async def measure_latency(hop: Hop, array: Array, seqs: _Seqs, frames: int) -> list[float]:
    """Seconds from handing each frame to the sender to its arrival, one frame at a time."""
    samples = []
    for seq in seqs.take(frames):
        hop.arrivals.reset()
        start = time.perf_counter()
        await hop.send(seq, array)
        await hop.arrivals.until(1)
        samples.append(hop.arrivals.times[seq] - start)
    return samples


async def measure_throughput(hop: Hop, array: Array, seqs: _Seqs, frames: int) -> float:
    """Frames per second, sent back to back until the last one arrived."""
    hop.arrivals.reset()
    start = time.perf_counter()
    for seq in seqs.take(frames):
        await hop.send(seq, array)
    await hop.arrivals.until(frames)
    return frames / (max(hop.arrivals.times.values()) - start)


def _percentile(samples: Sequence[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class _Figures:
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    small_fps: list[float] = field(default_factory=list)
    mb_per_s: list[float] = field(default_factory=list)
    eight_mb_per_s: list[float] = field(default_factory=list)


def _payload(nbytes: int) -> Array:
    return (np.arange(nbytes, dtype=np.int64) % 251 - 125).astype(np.int8).reshape(1, nbytes)


async def _measure_hop(
    hops: Callable[[int], Awaitable[Hop]], plan: BenchPlan, seqs: _Seqs, figures: _Figures, arrays: dict[int, Array]
) -> None:
    small = await hops(KB)
    await measure_throughput(small, arrays[KB], seqs, plan.warmup_frames)
    latency = await measure_latency(small, arrays[KB], seqs, plan.latency_frames)
    figures.p50_ms.append(1000 * _percentile(latency, 0.50))
    figures.p99_ms.append(1000 * _percentile(latency, 0.99))
    figures.small_fps.append(await measure_throughput(small, arrays[KB], seqs, plan.small_frames))
    large = ((MB, plan.mb_frames, figures.mb_per_s), (8 * MB, plan.eight_mb_frames, figures.eight_mb_per_s))
    for nbytes, frames, out in large:
        hop = await hops(nbytes)
        await measure_throughput(hop, arrays[nbytes], seqs, 2)
        out.append(nbytes / MB * await measure_throughput(hop, arrays[nbytes], seqs, frames))


async def run_dataplane_bench(
    plan: BenchPlan = FULL, *, window: int = DEFAULT_WINDOW, progress: Progress = lambda line: None
) -> DataplaneTable:
    """Measure the three transports (see the module docstring) and return the table."""
    arrays = {n: _payload(n) for n in _APP_OF_SIZE}
    figures = {name: _Figures() for name in TRANSPORTS}
    raw, plain, agent = RawTcpHop(window), PlainGrpcHop(window), SynergyAgent()
    seqs = {name: _Seqs() for name in TRANSPORTS}
    await raw.start()
    await plain.start()
    await agent.start()
    synergy_hops: dict[int, SynergyHop] = {}

    async def synergy_hop(nbytes: int) -> Hop:
        if nbytes not in synergy_hops:
            synergy_hops[nbytes] = SynergyHop(agent, nbytes, window)
        return synergy_hops[nbytes]

    async def same(hop: Hop) -> Hop:
        return hop

    try:
        for repeat in range(plan.repeats):
            for name, hops in (
                ("raw asyncio TCP", lambda n: same(raw)),
                ("plain grpc.aio stream", lambda n: same(plain)),
                ("Synergy", synergy_hop),
            ):
                progress(f"dataplane bench: repeat {repeat + 1}/{plan.repeats}: {name}")
                await _measure_hop(hops, plan, seqs[name], figures[name], arrays)
    finally:
        for hop in synergy_hops.values():
            await hop.close()
        await agent.close()
        await plain.close()
        await raw.close()

    def row(label: str, unit: str, pick: Callable[[_Figures], list[float]], lower: bool = False) -> Row:
        return Row(label, unit, {n: statistics.median(pick(figures[n])) for n in TRANSPORTS}, lower)

    return DataplaneTable(
        rows=[
            row("1 KB frame, p50 latency", "ms", lambda f: f.p50_ms, lower=True),
            row("1 KB frame, p99 latency", "ms", lambda f: f.p99_ms, lower=True),
            row("1 KB frames, throughput", "frames/s", lambda f: f.small_fps),
            row("1 MB tensors", "MB/s", lambda f: f.mb_per_s),
            row("8 MB tensors", "MB/s", lambda f: f.eight_mb_per_s),
        ],
        repeats=plan.repeats,
        window=window,
    )


# -- printing --------------------------------------------------------------------------------------


def _number(value: float, unit: str) -> str:
    if not math.isfinite(value):
        return "n/a"
    if unit == "ms":
        return f"{value:.3f} ms"
    return f"{value:,.0f} {unit}"


def format_table(table: DataplaneTable) -> str:
    """The table as Markdown, with the ratios of Synergy to each baseline."""
    lines = [
        f"one hop on loopback, TLS off, median of {table.repeats}, window {table.window} frames "
        "(latency ratios: times as long; throughput ratios: share reached)",
        "",
        "| one hop | raw asyncio TCP | plain grpc.aio stream | Synergy | Synergy/gRPC | Synergy/raw TCP |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.rows:
        cells = [_number(row.values[name], row.unit) for name in TRANSPORTS]
        ratios = [f"{_ratio(row, base):.2f}" for base in ("plain grpc.aio stream", "raw asyncio TCP")]
        lines.append(f"| {row.label} | {' | '.join(cells)} | {' | '.join(ratios)} |")
    return "\n".join(lines)


def run_and_print(*, quick: bool) -> int:
    """``synergy bench --dataplane [--quick]``: progress on stderr, the table on stdout."""

    def progress(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    plan = QUICK if quick else FULL
    table = asyncio.run(run_dataplane_bench(plan, progress=progress))
    print(format_table(table))
    return 0
