"""The host side of the serial protocol over a byte stream (docs/serial-protocol.md §6-8).

A :class:`SerialSession` owns one connection to a board: a reader task that drains the port
continuously (the FTHR's USB bridge must never fill up) and feeds a :class:`FrameDecoder`,
and :meth:`SerialSession.request`, which sends one request and waits for the reply with its
sequence number. At most ``window`` requests are outstanding; :meth:`SerialSession.pipeline`
keeps the window full for a run of ordered requests (a load's chunks, a run's input).

Recovery, every loop bounded by :attr:`SessionTiming.retransmissions`:

- no reply within the request's timeout: retransmit (same seq, flag RETRANSMIT);
- ``ERROR BAD_CRC`` with ``NO_SEQ`` (the board got a damaged frame): retransmit every
  outstanding request at once instead of waiting for the timeouts;
- ``ERROR BUSY``: wait :attr:`SessionTiming.busy_backoff_s`, retransmit;
- ``ERROR OUT_OF_ORDER``: wait until the earlier outstanding requests are answered (their
  own recovery retransmits them), then retransmit this one;
- any other ERROR becomes an exception of :mod:`synergy.errors` (:func:`board_error`).

A request that exhausts its retransmissions raises :class:`DeadlineExceeded` and closes the
session (the doc: the board is unavailable, reconnect with HELLO); a closed or failing port
(EOF, EIO) fails every request in flight with :class:`Unavailable`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from synergy.errors import (
    DeadlineExceeded,
    DoesNotFit,
    NotFound,
    ProtocolError,
    ResourceExhausted,
    SynergyError,
    Unavailable,
)
from synergy.serial.messages import ErrorCode, ErrorReply, Hello, HelloReply, Message, MessageType
from synergy.serial.protocol import (
    FLAG_NO_SEQ,
    FLAG_RETRANSMIT,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
    WINDOW,
    Frame,
    FrameDecoder,
    encode_frame,
    max_frame_bytes,
)

__all__ = [
    "ByteSink",
    "SerialSession",
    "SessionCounters",
    "SessionTiming",
    "board_error",
    "fd_streams",
    "line_seconds",
    "open_port",
]

#: Bytes read from the port at a time (a few frames; the reader never waits for a full one).
_READ_CHUNK = 4096


class ByteSink(Protocol):
    """The writing half of a port (``asyncio.StreamWriter`` is one)."""

    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


def line_seconds(nbytes: int, baud: int) -> float:
    """Time ``nbytes`` take on a UART at ``baud`` (8N1: 10 bits per byte)."""
    return nbytes * 10 / baud


@dataclass(frozen=True)
class SessionTiming:
    """Timeouts and retry budgets (docs/serial-protocol.md §6)."""

    #: The link's baud rate, to add the line time of a request and its reply to each timeout
    #: (0: a link without a UART's pace, e.g. an in-memory pipe).
    baud: int = 921_600
    #: Processing allowance for most requests, and for LOAD_END (flash writes).
    reply_s: float = 0.25
    commit_s: float = 2.0
    #: Retransmissions of one request before the board is declared unavailable.
    retransmissions: int = 3
    busy_backoff_s: float = 0.05

    def timeout_s(self, request_bytes: int, allowance_s: float) -> float:
        wire = line_seconds(request_bytes + max_frame_bytes(MAX_PAYLOAD), self.baud) if self.baud else 0.0
        return wire + allowance_s


@dataclass
class SessionCounters:
    """What the session did; monotonic, for the agent's metrics."""

    requests: int = 0
    retransmissions: int = 0
    #: Replies nobody waits for (late duplicates after a retransmission): ignored.
    stray_replies: int = 0
    bad_crc_notices: int = 0
    busy: int = 0
    out_of_order: int = 0
    timeouts: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class _Pending:
    seq: int
    message: Message
    reply: asyncio.Future[Message]
    #: Set when the board reported a damaged frame: resend now rather than at the timeout.
    resend: asyncio.Event
    #: The window this request holds a place in (a HELLO renegotiates the window).
    slots: asyncio.Semaphore


class SerialSession:
    """One host-side connection to a board: framing, windowed requests, recovery."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: ByteSink,
        *,
        timing: SessionTiming | None = None,
        name: str = "board",
    ) -> None:
        self.timing = timing or SessionTiming()
        self.name = name
        self.counters = SessionCounters()
        self.decoder = FrameDecoder()
        #: Negotiated by :meth:`hello`.
        self.version = PROTOCOL_VERSION
        self.max_payload = MAX_PAYLOAD
        self.window = WINDOW
        self.hello_reply: HelloReply | None = None
        self._reader = reader
        self._writer = writer
        self._next_seq = 0
        self._pending: dict[int, _Pending] = {}
        self._slots = asyncio.Semaphore(WINDOW)
        self._write_lock = asyncio.Lock()
        self._closed: SynergyError | None = None
        self._reader_task = asyncio.get_running_loop().create_task(self._read_loop(), name=f"serial-read:{name}")

    @property
    def closed(self) -> bool:
        return self._closed is not None

    async def close(self, reason: SynergyError | None = None) -> None:
        """Stop reading, close the port and fail whatever is in flight (idempotent)."""
        self._fail_all(reason or Unavailable(f"{self.name}: the serial session was closed"))
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._reader_task
        with contextlib.suppress(Exception):
            self._writer.close()

    # -----------------------------------------------------------------------------------------
    # Reading

    async def _read_loop(self) -> None:
        try:
            while True:
                data = await self._reader.read(_READ_CHUNK)
                if not data:
                    self._fail_all(Unavailable(f"{self.name}: the port closed (the board was unplugged or reset)"))
                    return
                for item in self.decoder.feed(data):
                    if isinstance(item, Frame):
                        self._on_frame(item)
                    # Damaged replies are dropped: the request's timeout retransmits it (§3).
        except OSError as exc:
            self._fail_all(Unavailable(f"{self.name}: the port failed: {exc}"))

    def _on_frame(self, frame: Frame) -> None:
        if frame.flags & FLAG_NO_SEQ:
            if isinstance(frame.message, ErrorReply) and frame.message.code == ErrorCode.BAD_CRC:
                self.counters.bad_crc_notices += 1
                for pending in self._pending.values():
                    pending.resend.set()
            return
        matched = self._pending.get(frame.seq)
        if matched is None or matched.reply.done():
            self.counters.stray_replies += 1
            return
        matched.reply.set_result(frame.message)

    def _fail_all(self, error: SynergyError) -> None:
        if self._closed is None:
            self._closed = error
        for pending in self._pending.values():
            if not pending.reply.done():
                pending.reply.set_exception(error)
                # Retrieved here: the waiter may be gone (a request already given up on).
                pending.reply.exception()

    # -----------------------------------------------------------------------------------------
    # Requests

    async def hello(self, *, max_payload: int = MAX_PAYLOAD) -> HelloReply:
        """Handshake (§7): agree on a version, the payload size and the window."""
        low, high = min(SUPPORTED_VERSIONS), max(SUPPORTED_VERSIONS)
        reply = await self.request(Hello(low, high, max_payload), version=PROTOCOL_VERSION)
        if not isinstance(reply, HelloReply):
            raise ProtocolError(f"{self.name}: HELLO answered with {reply.TYPE.name}, not HELLO_REPLY")
        if reply.version not in SUPPORTED_VERSIONS:
            raise ProtocolError(
                f"{self.name}: the board chose protocol version {reply.version}, this agent speaks {low}..{high}"
            )
        self.version = reply.version
        self.max_payload = min(max_payload, reply.max_payload)
        # The board may take fewer requests in flight than the host would send.
        self.window = max(1, min(WINDOW, reply.window))
        self._slots = asyncio.Semaphore(self.window)
        self.hello_reply = reply
        return reply

    def _allowance(self, message: Message, allowance_s: float | None) -> float:
        if allowance_s is not None:
            return allowance_s
        return self.timing.commit_s if message.TYPE == MessageType.LOAD_END else self.timing.reply_s

    async def request(
        self, message: Message, *, allowance_s: float | None = None, version: int | None = None
    ) -> Message:
        """Send ``message`` and return its reply; an ERROR reply raises (:func:`board_error`)."""
        pending = await self._start(message, version)
        return await self._finish(pending, self._allowance(message, allowance_s), version)

    async def pipeline(self, messages: Sequence[Message], *, last_allowance_s: float | None = None) -> list[Message]:
        """Send ordered requests keeping the window full; their replies, in order.

        Sequence numbers are taken (and first transmissions written) in order by this
        coroutine, so the board sees the requests in order; each reply is awaited in a task.
        """
        tasks: list[asyncio.Task[Message]] = []
        try:
            for index, message in enumerate(messages):
                allowance = last_allowance_s if index == len(messages) - 1 else None
                pending = await self._start(message, None)
                tasks.append(asyncio.ensure_future(self._finish(pending, self._allowance(message, allowance), None)))
            return list(await asyncio.gather(*tasks))
        finally:
            for task in tasks:
                task.cancel()
            # Wait for cancelled ones, so no slot or pending entry outlives the call.
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _start(self, message: Message, version: int | None) -> _Pending:
        if self._closed is not None:
            raise self._closed
        slots = self._slots
        await slots.acquire()
        seq = self._next_seq
        self._next_seq = (seq + 1) & 0xFFFF
        pending = _Pending(seq, message, asyncio.get_running_loop().create_future(), asyncio.Event(), slots)
        self._pending[seq] = pending
        self.counters.requests += 1
        try:
            await self._send(pending, version, retransmit=False)
        except BaseException:
            del self._pending[seq]
            slots.release()
            raise
        return pending

    async def _send(self, pending: _Pending, version: int | None, *, retransmit: bool) -> None:
        frame = encode_frame(
            pending.message,
            pending.seq,
            flags=FLAG_RETRANSMIT if retransmit else 0,
            version=self.version if version is None else version,
            max_payload=self.max_payload,
        )
        if retransmit:
            self.counters.retransmissions += 1
        async with self._write_lock:
            try:
                self._writer.write(frame)
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                error = Unavailable(f"{self.name}: writing to the port failed: {exc}")
                self._fail_all(error)
                raise error from exc

    async def _finish(self, pending: _Pending, allowance_s: float, version: int | None) -> Message:
        try:
            return await self._await_reply(pending, allowance_s, version)
        finally:
            self._pending.pop(pending.seq, None)
            pending.slots.release()

    async def _await_reply(self, pending: _Pending, allowance_s: float, version: int | None) -> Message:
        what = f"{self.name}: {pending.message.TYPE.name} seq {pending.seq}"
        timeout_s = self.timing.timeout_s(len(encode_frame(pending.message, pending.seq)), allowance_s)
        last: ErrorReply | None = None
        # Every way back to the top of the loop spends one retransmission: bounded.
        for attempt in range(self.timing.retransmissions + 1):
            if attempt:
                if self._closed is not None:
                    raise self._closed
                await self._send(pending, version, retransmit=True)
            reply = await self._wait(pending, timeout_s)
            if reply is None:
                last = None
                continue
            if not isinstance(reply, ErrorReply):
                return reply
            last = reply
            pending.reply = asyncio.get_running_loop().create_future()
            if reply.code == ErrorCode.BUSY:
                self.counters.busy += 1
                await asyncio.sleep(self.timing.busy_backoff_s)
            elif reply.code == ErrorCode.OUT_OF_ORDER:
                self.counters.out_of_order += 1
                await self._earlier_settled(pending.seq, timeout_s * (self.timing.retransmissions + 1))
            elif reply.code == ErrorCode.BAD_CRC:
                pass  # a damaged request answered with its seq: just send it again
            else:
                self.counters.errors[reply.code.name] = self.counters.errors.get(reply.code.name, 0) + 1
                raise board_error(reply, what)
        if last is not None:
            # The board answers, but keeps refusing (BUSY, OUT_OF_ORDER): the session is sound.
            raise board_error(last, f"{what} (after {self.timing.retransmissions} retransmissions)")
        self.counters.timeouts += 1
        error = DeadlineExceeded(
            f"{what}: no usable reply after {self.timing.retransmissions} retransmissions "
            f"({timeout_s * 1000:.0f} ms each); the board is unavailable"
        )
        await self.close(error)
        raise error

    async def _wait(self, pending: _Pending, timeout_s: float) -> Message | None:
        """The reply, or None on a timeout or a request to resend (BAD_CRC notice)."""
        if pending.resend.is_set():
            pending.resend.clear()
            return None
        resend: asyncio.Future[bool] = asyncio.ensure_future(pending.resend.wait())
        waiters: set[asyncio.Future[Message] | asyncio.Future[bool]] = {pending.reply, resend}
        try:
            await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            resend.cancel()
        if pending.reply.done():
            return pending.reply.result()  # raises what _fail_all set
        pending.resend.clear()
        return None

    async def _earlier_settled(self, seq: int, bound_s: float) -> None:
        """Wait (bounded) until requests sent before ``seq`` have their replies."""
        earlier = [p.reply for s, p in self._pending.items() if s != seq and (seq - s) & 0xFFFF < 0x8000]
        if earlier:
            await asyncio.wait(earlier, timeout=bound_s)


def board_error(reply: ErrorReply, what: str) -> SynergyError:
    """The :mod:`synergy.errors` exception for a board's ERROR reply (§8)."""
    detail = f"{what}: the board answered {reply.code.name}" + (f": {reply.detail}" if reply.detail else "")
    low, high = min(SUPPORTED_VERSIONS), max(SUPPORTED_VERSIONS)
    match reply.code:
        case ErrorCode.BAD_VERSION:
            return ProtocolError(
                f"{what}: board speaks protocol versions {reply.min_version}..{reply.max_version}, "
                f"this agent {low}..{high}"
            )
        case ErrorCode.TOO_LARGE:
            return DoesNotFit(detail)
        case ErrorCode.NO_SPACE:
            return ResourceExhausted(detail)
        case ErrorCode.UNKNOWN_PARTITION:
            return NotFound(detail)
        case ErrorCode.BUSY | ErrorCode.INTERNAL | ErrorCode.BAD_CRC:
            return Unavailable(detail)
        case _:  # BAD_MESSAGE, DIGEST_MISMATCH, OUT_OF_ORDER beyond recovery: one side has a bug
            return ProtocolError(detail)


class _PortWriter(asyncio.StreamWriter):
    """A port's writer whose close also closes the reading side (both halves of one port)."""

    def __init__(
        self,
        transport: asyncio.WriteTransport,
        protocol: asyncio.BaseProtocol,
        reader: asyncio.StreamReader,
        read_transport: asyncio.ReadTransport,
    ) -> None:
        super().__init__(transport, protocol, reader, asyncio.get_running_loop())
        self._read_transport = read_transport

    def close(self) -> None:
        super().close()
        self._read_transport.close()


async def fd_streams(fd: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Asyncio streams over a tty or pty file descriptor (the loop's ``add_reader`` underneath).

    The reading side owns ``fd``, the writing side a duplicate; closing the writer closes both.
    """
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    read_transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    transport, protocol = await loop.connect_write_pipe(
        asyncio.streams.FlowControlMixin, os.fdopen(os.dup(fd), "wb", buffering=0)
    )
    return reader, _PortWriter(transport, protocol, reader, read_transport)


def _open_raw(path: str, baud: int) -> int:
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        # Raw 8N1: no echo, no line editing, no CR/LF translation; every byte passes as it is.
        tty.setraw(fd)
        speed = getattr(termios, f"B{baud}", None)
        if speed is not None:
            attrs = termios.tcgetattr(fd)
            attrs[4] = attrs[5] = speed
            termios.tcsetattr(fd, termios.TCSANOW, attrs)
        # Whatever an earlier session left unread is not ours.
        termios.tcflush(fd, termios.TCIOFLUSH)
    except BaseException:
        os.close(fd)
        raise
    return fd


async def open_port(path: str, baud: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Open a serial port (or a pty) raw at ``baud``; :class:`Unavailable` if it cannot be opened."""
    try:
        fd = _open_raw(path, baud)
    except OSError as exc:
        raise Unavailable(f"serial port {path}: {exc.strerror or exc}") from exc
    return await fd_streams(fd)
