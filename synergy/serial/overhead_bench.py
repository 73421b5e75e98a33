"""``synergy bench --serial-overhead``: the serial path's cost per tensor, computed and measured.

For every zoo model, each tensor a board would move over its serial port — the model's
input (into the first board), the tensors crossing each cut (out of the board before the
cut, into the one after) and the model's output (out of the last board) — three figures:

- **line**: the exact frames of :mod:`synergy.serial.overhead` on a UART at the baud rate;
- **link model**: what the planner charges for the same bytes (``uart_921600``: 92,160 B/s
  and 2 bytes per message);
- **measured**: the same exchange through a real :class:`~synergy.serial.session.SerialSession`
  and a :class:`~synergy.serial.responder.Responder` (served by
  :func:`~synergy.serial.responder.serve_stream`, as ``synergy board-sim --pty``) on a
  pseudo-terminal whose line runs at the baud rate (:class:`PacedPort`), over a backend whose
  chip takes no time (:class:`InstantBackend`), so only the serial path is timed: from the
  RUN's first byte to the RUN_RESULT (in), or to the last OUTPUT_CHUNK (out); the minimum of
  a few repetitions.

The board has the MAX78002's limits, the larger ``max_tensor_bytes`` (180,224 against the
MAX78000's 49,152): tensors over it are refused by the protocol (TOO_LARGE; the input is
sent and the refusal checked) and get the computed figures only.

The line is paced at the host's end of the pty, both ways (:class:`PacedPort`: bytes arrive
once a UART could have carried them), and ``serve_stream`` runs unpaced. Its own pacing
(``baud=``) lets an exchange after idle beat the line: it cannot tell when the bytes it
reads were written, so it takes the first read after a pause (up to 4 KB: the window's two
full frames) as having arrived over the time just before, i.e. for free. Measured through it,
a 2,928-byte input took 12.9 ms against 32.8 ms of line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import time
import tty
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from synergy.errors import DoesNotFit, InvalidArgument, ProtocolError
from synergy.hardware.boards import BoardProfile, load_board
from synergy.hardware.model import HardwareModel
from synergy.serial.board_limits import board_kind, limits_for_profile
from synergy.serial.messages import OutputChunk, Run, RunResult, TensorShape, tensors_bytes
from synergy.serial.overhead import (
    PARTITION_ID,
    RUN_TIMINGS,
    UART_LINK,
    Direction,
    Exchange,
    chunk_data_bytes,
    input_exchange,
    link_model_seconds,
    output_exchange,
    representative_data,
    tensor_shapes,
)
from synergy.serial.responder import Responder, RunOutcome, serve_stream
from synergy.serial.session import SerialSession, SessionTiming, fd_streams, line_seconds, open_port
from synergy.serial.transfer import load_messages, output_reads, run_messages

__all__ = [
    "DEFAULT_BAUD",
    "MEASURE_BOARD",
    "InstantBackend",
    "LinkFit",
    "OverheadRow",
    "PacedPort",
    "PtyLink",
    "Transfer",
    "fit_link",
    "format_report",
    "measure_transfers",
    "model_rows",
    "model_transfers",
    "open_pty_link",
    "repeats_for",
    "serial_overhead_report",
    "summary_lines",
]

DEFAULT_BAUD = 921_600
#: The board whose limits the measurement uses (the larger max_tensor_bytes).
MEASURE_BOARD = "max78002"
#: Repetitions (the minimum counts) by the transfer's line time: short ones are noisier and
#: cheap to repeat; the long ones dominate the run time (about 80 s at 921,600 baud for the
#: eight models, 45 s of it one pass over the sizes).
REPEATS_BY_LINE_S = ((0.1, 5), (0.3, 3), (1.0, 2))
#: Labels of cuts sharing one shape: this many, then "+N".
_LABEL_CUTS = 3


@dataclass(frozen=True)
class Transfer:
    """One thing to measure: these tensors moving in one direction."""

    shapes: tuple[TensorShape, ...]
    direction: Direction

    @property
    def nbytes(self) -> int:
        return tensors_bytes(self.shapes)

    def exchange(self) -> Exchange:
        build = input_exchange if self.direction == "in" else output_exchange
        return build(self.shapes)


class InstantBackend:
    """A :class:`~synergy.serial.responder.BoardBackend` whose chip takes no time at all.

    Every run answers :attr:`output` at once, whatever the input; partitions are kept as
    nothing (their bytes do not matter here).
    """

    def __init__(self) -> None:
        self.output = RunOutcome(RUN_TIMINGS, (), b"")

    async def commit(self, partition_id: int, blob: bytes) -> None:
        return None

    async def execute(self, partition_id: int, tensors: tuple[TensorShape, ...], data: bytes) -> RunOutcome:
        return self.output

    def drop(self, partition_id: int) -> None:
        return None


#: The event loop's timers wake up to a millisecond late (epoll's resolution): a wait sleeps
#: until this long before its deadline, then yields to the other tasks until it has passed.
_SPIN_S = 0.0015


async def _sleep_until(deadline: float) -> None:
    if (remaining := deadline - time.monotonic()) > _SPIN_S:
        await asyncio.sleep(remaining - _SPIN_S)
    # Yield (the other tasks run, the port is polled) until the deadline: no timer is this exact.
    while True:
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(0)


class _Line:
    """One direction of a UART at ``baud`` (10 bits per byte): bytes :meth:`put` in come out of
    ``deliver`` once the line could have carried them, each chunk behind the ones before it
    (a running deadline from the time the chunk was put, so a late wake-up is not carried
    over to the next). :meth:`end` ends the line after what it holds, with ``at_end``."""

    def __init__(self, baud: int, deliver: Callable[[bytes], None], at_end: Callable[[], None]) -> None:
        self._baud = baud
        self._deliver = deliver
        self._at_end = at_end
        self._queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.task = asyncio.ensure_future(self._run())

    def put(self, data: bytes) -> None:
        if data:
            self._queue.put_nowait((time.monotonic(), data))

    def end(self) -> None:
        self._queue.put_nowait((time.monotonic(), b""))

    async def _run(self) -> None:
        free = 0.0
        while True:
            put_at, data = await self._queue.get()
            if not data:
                self._at_end()
                return
            free = max(free, put_at) + line_seconds(len(data), self._baud)
            await _sleep_until(free)
            self._deliver(data)


class PacedPort:
    """The host's end of a port, with a UART at ``baud`` between it and the board, both ways.

    What the host writes reaches the board, and what the board writes reaches :attr:`reader`,
    only once the line could have carried it (:class:`_Line`), each direction on its own (full
    duplex). A :class:`~synergy.serial.session.ByteSink` for the session.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, baud: int) -> None:
        self.reader = asyncio.StreamReader()
        self._writer = writer
        self._out = _Line(baud, writer.write, lambda: None)
        self._in = _Line(baud, self.reader.feed_data, self.reader.feed_eof)
        self.tasks = (self._out.task, self._in.task, asyncio.ensure_future(self._receive(reader)))

    async def _receive(self, source: asyncio.StreamReader) -> None:
        try:
            while data := await source.read(4096):
                self._in.put(data)
        except OSError as exc:
            self.reader.set_exception(exc)
            return
        self._in.end()

    def write(self, data: bytes) -> None:
        self._out.put(data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        self._writer.close()


@dataclass
class PtyLink:
    """A host session to a :class:`Responder` on a pseudo-terminal paced at ``baud``."""

    session: SerialSession
    backend: InstantBackend
    responder: Responder
    baud: int
    _tasks: tuple[asyncio.Future[None], ...]
    _board_writer: asyncio.StreamWriter
    _slave: int

    @property
    def max_tensor_bytes(self) -> int:
        return self.responder.limits.max_tensor_bytes

    async def time_input(self, transfer: Transfer, data: bytes) -> float:
        """Seconds from the RUN's first byte to the RUN_RESULT (the run has no output)."""
        self.backend.output = RunOutcome(RUN_TIMINGS, (), b"")
        messages = run_messages(PARTITION_ID, transfer.shapes, data, max_payload=self.session.max_payload)
        started = time.perf_counter()
        replies = await self.session.pipeline(messages)
        elapsed = time.perf_counter() - started
        if not isinstance(replies[-1], RunResult):
            raise ProtocolError(f"the last RUN_INPUT was answered {replies[-1].TYPE.name}, not RUN_RESULT")
        return elapsed

    async def time_output(self, transfer: Transfer, data: bytes) -> float:
        """Seconds from a RUN without input to the output's last OUTPUT_CHUNK."""
        self.backend.output = RunOutcome(RUN_TIMINGS, transfer.shapes, data)
        started = time.perf_counter()
        result = await self.session.request(Run(PARTITION_ID, ()))
        if not isinstance(result, RunResult):
            raise ProtocolError(f"RUN was answered {result.TYPE.name}, not RUN_RESULT")
        reads = output_reads(len(data), len(result.data), max_payload=self.session.max_payload)
        chunks = await self.session.pipeline(reads)
        elapsed = time.perf_counter() - started
        received = result.data + b"".join(c.data for c in chunks if isinstance(c, OutputChunk))
        if received != data:
            raise ProtocolError(f"the output came back as {len(received)} other bytes than the {len(data)} sent")
        return elapsed

    async def refusal(self, transfer: Transfer) -> str:
        """The board's answer to a RUN over its ``max_tensor_bytes`` (TOO_LARGE, as a sentence)."""
        try:
            await self.session.request(Run(PARTITION_ID, transfer.shapes))
        except DoesNotFit as exc:
            return str(exc)
        raise ProtocolError(f"a RUN of {transfer.nbytes} bytes was not refused (max {self.max_tensor_bytes})")

    async def close(self) -> None:
        await self.session.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._board_writer.close()
        with contextlib.suppress(OSError):
            os.close(self._slave)


async def open_pty_link(profile: BoardProfile, baud: int) -> PtyLink:
    """A board of ``profile``'s limits on a new pty at ``baud``, HELLO done, a partition held."""
    master, slave = os.openpty()
    tty.setraw(slave)
    board_reader, board_writer = await fd_streams(master)
    backend = InstantBackend()
    responder = Responder(
        backend, kind=board_kind(profile), limits=limits_for_profile(profile), firmware="overhead-bench", boot_id=1
    )
    # Unpaced here: the line's time is the PacedPort's (module doc).
    serving = asyncio.ensure_future(serve_stream(responder, board_reader, board_writer))
    port = PacedPort(*await open_port(os.ttyname(slave), baud), baud)
    session = SerialSession(port.reader, port, timing=SessionTiming(baud=baud), name="overhead bench")
    link = PtyLink(session, backend, responder, baud, (serving, *port.tasks), board_writer, slave)
    try:
        await session.hello()
        await session.pipeline(load_messages(PARTITION_ID, b"\x01", max_payload=session.max_payload))
        warm = Transfer((TensorShape((64,)),), "in")
        await link.time_input(warm, representative_data(warm.nbytes))
        await link.time_output(warm, representative_data(warm.nbytes))
    except BaseException:
        await link.close()
        raise
    return link


def repeats_for(line_s: float, *, quick: bool = False) -> int:
    """Repetitions of a transfer whose line time is ``line_s`` (:data:`REPEATS_BY_LINE_S`)."""
    if quick:
        return 1
    return next((count for limit, count in REPEATS_BY_LINE_S if line_s < limit), 1)


async def measure_transfers(
    transfers: Iterable[Transfer],
    *,
    profile: BoardProfile,
    baud: int,
    quick: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> dict[Transfer, float | str]:
    """Measured seconds of each transfer (the minimum over its repetitions), or why it was not run.

    One transfer per size and direction is run: others of that size, whose shapes differ,
    get its time plus the difference of their line times (a few bytes of shapes). The
    repetitions run in rounds over all sizes, so a burst of load elsewhere on the machine
    spoils one repetition of a size rather than all of them.
    """
    by_size: dict[tuple[int, Direction], list[Transfer]] = {}
    for transfer in sorted(set(transfers), key=lambda t: (t.nbytes, t.direction, repr(t.shapes))):
        by_size.setdefault((transfer.nbytes, transfer.direction), []).append(transfer)
    out: dict[Transfer, float | str] = {}
    best: dict[Transfer, float] = {}
    link = await open_pty_link(profile, baud)
    try:
        runs: dict[Transfer, int] = {}
        for (nbytes, direction), same in by_size.items():
            if nbytes <= link.max_tensor_bytes:
                runs[same[0]] = repeats_for(same[0].exchange().line_seconds(baud), quick=quick)
            elif direction == "in":
                refusal = await link.refusal(same[0])
                out.update(dict.fromkeys(same, refusal))
            else:  # no board could produce it: nothing to ask
                out.update(dict.fromkeys(same, f"{nbytes} bytes of output are over {link.max_tensor_bytes}"))
        total, done = sum(runs.values()), 0
        for round_ in range(max(runs.values(), default=0)):
            for transfer in [t for t, count in runs.items() if count > round_]:
                done += 1
                progress(f"[{done}/{total}] {transfer.nbytes:,} B {transfer.direction}, repetition {round_ + 1}")
                timer = link.time_input if transfer.direction == "in" else link.time_output
                seconds = await timer(transfer, representative_data(transfer.nbytes))
                best[transfer] = min(seconds, best.get(transfer, seconds))
    finally:
        await link.close()
    for first, seconds in best.items():
        first_line = first.exchange().line_seconds(baud)
        for transfer in by_size[(first.nbytes, first.direction)]:
            out[transfer] = seconds + transfer.exchange().line_seconds(baud) - first_line
    return out


# -- rows and the report ------------------------------------------------------------------


@dataclass(frozen=True)
class OverheadRow:
    """One line of a model's table: a tensor set in one direction, and its figures."""

    model: str
    label: str
    transfer: Transfer
    exchange: Exchange
    line_s: float
    model_s: float
    #: Measured seconds, or the board's refusal (over max_tensor_bytes), or None (not run).
    measured: float | str | None

    @property
    def measured_s(self) -> float | None:
        return self.measured if isinstance(self.measured, float) else None

    @property
    def measured_ratio(self) -> float | None:
        """Measured time over the link model's."""
        return None if self.measured_s is None else self.measured_s / self.model_s


def _cut_label(cuts: Sequence[int]) -> str:
    shown = ", ".join(str(c) for c in cuts[:_LABEL_CUTS])
    more = f" +{len(cuts) - _LABEL_CUTS}" if len(cuts) > _LABEL_CUTS else ""
    return f"after {shown}{more}"


def model_transfers(model: HardwareModel) -> list[tuple[str, Transfer]]:
    """The model's serial transfers in order: input in; per cut shape out then in; output out.

    Cuts whose tensors have the same shapes share one line (labelled with every cut).
    """
    by_shape: dict[tuple[TensorShape, ...], list[int]] = {}
    for cut in model.cuts:
        by_shape.setdefault(tensor_shapes(cut.tensors), []).append(cut.after_layer)
    out = [("input", Transfer(tensor_shapes(model.inputs), "in"))]
    for shapes, cuts in by_shape.items():
        out += [(_cut_label(cuts), Transfer(shapes, "out")), (_cut_label(cuts), Transfer(shapes, "in"))]
    out.append(("output", Transfer(tensor_shapes(model.outputs), "out")))
    return out


def model_rows(
    model: HardwareModel, measured: dict[Transfer, float | str], *, baud: int, link_model: str = UART_LINK.name
) -> list[OverheadRow]:
    rows = []
    for label, transfer in model_transfers(model):
        exchange = transfer.exchange()
        rows.append(
            OverheadRow(
                model.name,
                label,
                transfer,
                exchange,
                exchange.line_seconds(baud),
                link_model_seconds(transfer.nbytes),
                measured.get(transfer),
            )
        )
    return rows


_HEADER = (
    f"{'cut':<20}{'dir':>4}{'bytes':>10}{'frames':>8}{'wire':>10}{'back':>7}{'wire/pay':>9}"
    f"{'line ms':>10}{'model ms':>10}{'meas ms':>10}{'meas/model':>11}"
)


def _format_row(row: OverheadRow) -> str:
    e = row.exchange
    head = (
        f"{row.label:<20}{e.direction:>4}{e.payload_bytes:>10,}{e.frames:>8}{e.wire_bytes:>10,}{e.back_bytes:>7,}"
        f"{e.wire_ratio:>9.3f}{row.line_s * 1e3:>10.2f}{row.model_s * 1e3:>10.2f}"
    )
    if row.measured_s is not None and row.measured_ratio is not None:
        return head + f"{row.measured_s * 1e3:>10.2f}{row.measured_ratio:>11.3f}"
    return head + f"{'TOO_LARGE' if isinstance(row.measured, str) else '-':>10}{'-':>11}"


def _where(row: OverheadRow) -> str:
    return f"{row.model} {row.label} {row.exchange.direction}, {row.exchange.payload_bytes:,} B"


@dataclass(frozen=True)
class LinkFit:
    """``seconds = fixed_s + bytes / rate``: a least-squares fit over some transfers."""

    transfers: int
    rate_bytes_per_s: float
    fixed_s: float

    @property
    def message_bytes(self) -> float:
        """The fixed cost as a link profile's per-message overhead (bytes at the fitted rate)."""
        return self.fixed_s * self.rate_bytes_per_s

    def frame_s(self, baud: int) -> float:
        """What a full frame costs beyond its data bytes' time on the line at ``baud``."""
        data = chunk_data_bytes()
        return data / self.rate_bytes_per_s - line_seconds(data, baud)


def fit_link(points: Sequence[tuple[int, float]]) -> LinkFit:
    """Least squares of (bytes, seconds) points on relative errors, so that small transfers
    (many, cheap to repeat, precise) weigh as much as the large ones (few, measured once)."""
    if len(points) < 2 or len({n for n, _ in points}) < 2:
        raise InvalidArgument(f"a fit needs at least two sizes, not {sorted({n for n, _ in points})}")
    matrix = np.array([(1 / t, n / t) for n, t in points], dtype=float)
    (fixed, per_byte), *_ = np.linalg.lstsq(matrix, np.ones(len(points)), rcond=None)
    rate = 1 / float(per_byte) if per_byte > 0 else float("inf")
    return LinkFit(len(points), rate, float(fixed))


def _ratio_line(name: str, rows: Sequence[OverheadRow], ratio: Callable[[OverheadRow], float]) -> str:
    values = [ratio(r) for r in rows]
    worst = max(rows, key=ratio)
    return f"  {name:<20}median {statistics.median(values):.3f}  worst {max(values):.3f}  ({_where(worst)})"


def summary_lines(rows: Sequence[OverheadRow], *, baud: int) -> list[str]:
    """Ratios over every line of the tables; fits over the distinct transfers."""
    measured = [r for r in rows if r.measured_s is not None]
    link = UART_LINK.name + f" = {UART_LINK.bandwidth_bytes_per_s:,.0f} B/s"
    link += f" + {UART_LINK.per_message_overhead_bytes} B/message"
    lines = [
        f"summary: {len(rows)} lines, {len(measured)} measured ({len(rows) - len(measured)} over max_tensor_bytes: "
        f"computed only); {baud:,} baud; link model {link}",
        _ratio_line("line / model", rows, lambda r: r.line_s / r.model_s),
    ]
    if not measured:
        return lines
    big = [r for r in measured if r.exchange.payload_bytes >= 10_000]
    lines.append(_ratio_line("measured / model", measured, lambda r: (r.measured_s or 0.0) / r.model_s))
    if big:
        lines.append(_ratio_line("  of 10 kB or more", big, lambda r: (r.measured_s or 0.0) / r.model_s))
    lines.append(_ratio_line("measured / line", measured, lambda r: (r.measured_s or 0.0) / r.line_s))
    distinct = list({r.transfer: r for r in measured}.values())
    fits = {"line (exact frames)": fit_link([(r.exchange.payload_bytes, r.line_s) for r in distinct])}
    for direction in ("in", "out", "both"):
        sub = [r for r in distinct if direction in ("both", r.exchange.direction)]
        if len({r.exchange.payload_bytes for r in sub}) >= 2:
            fits[f"measured {direction}"] = fit_link([(r.exchange.payload_bytes, r.measured_s or 0.0) for r in sub])
    lines += [
        "  least squares over the distinct transfers, seconds = a + bytes / R (relative errors):",
        f"  {'':<22}{'transfers':>10}{'R B/s':>10}{'a ms':>8}{'a x R B':>9}{'per frame ms':>14}",
    ]
    for name, fit in fits.items():
        lines.append(
            f"  {name:<22}{fit.transfers:>10}{fit.rate_bytes_per_s:>10,.0f}{fit.fixed_s * 1e3:>8.2f}"
            f"{fit.message_bytes:>9,.0f}{fit.frame_s(baud) * 1e3:>14.3f}"
        )
    lines.append(
        f"  (per frame: what a full frame of {chunk_data_bytes():,} data bytes costs beyond their "
        f"{line_seconds(chunk_data_bytes(), baud) * 1e3:.2f} ms on the line)"
    )
    return lines


def format_report(rows: Sequence[OverheadRow], *, baud: int, board: str) -> str:
    """One table per model, then the summary."""
    out = [
        f"serial path per tensor at {baud:,} baud (10 bits per byte), max_payload 1024, window 2; "
        f"measured on a pty against a responder with {board}'s limits and no chip time",
        "in: RUN + RUN_INPUTs to the RUN_RESULT; out: a RUN, the RUN_RESULT, OUTPUT_READ/OUTPUT_CHUNK;",
        "frames both ways; wire: bytes on the data's line (framing, COBS of seeded random int8, delimiters); "
        "back: the other way",
    ]
    for model in dict.fromkeys(r.model for r in rows):
        out += ["", f"{model}", _HEADER]
        out += [_format_row(r) for r in rows if r.model == model]
    out += ["", *summary_lines(rows, baud=baud)]
    return "\n".join(out)


def serial_overhead_report(
    models: dict[str, HardwareModel],
    *,
    baud: int = DEFAULT_BAUD,
    quick: bool = False,
    progress: Callable[[str], None] = lambda line: None,
) -> str:
    """``synergy bench --serial-overhead``: measure every model's transfers, then the report.

    ``progress`` gets ``[k/N] what`` lines (the project's convention, :mod:`synergy.progress`).
    """
    profile = load_board(MEASURE_BOARD)
    transfers = [t for model in models.values() for _, t in model_transfers(model)]
    started = time.perf_counter()
    measured = asyncio.run(measure_transfers(transfers, profile=profile, baud=baud, quick=quick, progress=progress))
    progress(f"measured in {time.perf_counter() - started:.1f} s")
    rows = [row for model in models.values() for row in model_rows(model, measured, baud=baud)]
    return format_report(rows, baud=baud, board=profile.name)
