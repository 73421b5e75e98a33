"""The peer frame stream over gRPC: ``AgentService.Frames``, both ends.

Sending end: :class:`GrpcFrameTransport` opens one call per (app, epoch, hop) with the
metadata that tells the receiver which segment it feeds, writes each frame as one message
when it fits, else in chunks (:func:`~synergy.wire.tensors.encode_frame`, which encodes the
FrameChunk messages itself: no protobuf copies of the tensors), and turns the receiver's
acks into :class:`FrameAck` values. A call that fails raises :class:`StreamBroken` (with the peer's
address, the status code and its details); a frame that cannot be encoded raises the
frame's own error (e.g. :class:`~synergy.errors.ResourceExhausted`) *before* anything is
written, so the call stays usable.

Receiving end: :func:`frames_method_handler` serves the method with the received messages
as bytes (the server's interceptor still holds each to the method's size limit), so that
:func:`serve_frames` reads them in place (:func:`~synergy.wire.tensors.decode_chunk`),
rebuilds frames (:class:`~synergy.wire.tensors.FrameAssembler`: numpy views of the received
bytes), hands them to the data plane and writes its acks back as protos.
:func:`stream_target` reads the metadata.

The data plane (``agent.dataplane``) works on :class:`FrameTransport` / :class:`FrameCall`
and never sees a proto; its tests use a fake transport.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, Protocol

import grpc
import structlog

from synergy.errors import Unavailable
from synergy.reports import FrameOutcome
from synergy.security.tls import TlsConfig
from synergy.v1 import agent_pb2
from synergy.wire.channels import open_channel
from synergy.wire.reports import outcome_from_proto, outcome_to_proto
from synergy.wire.status import error_from_rpc
from synergy.wire.tensors import FRAME_MESSAGE_BYTES, Frame, FrameAssembler, decode_chunk, encode_frame

__all__ = [
    "FrameAck",
    "FrameCall",
    "FrameTransport",
    "GrpcFrameTransport",
    "StreamBroken",
    "StreamTarget",
    "frames_method_handler",
    "serve_frames",
    "stream_target",
]

log = structlog.get_logger(__name__)

_APP_KEY, _EPOCH_KEY, _SEGMENT_KEY = "synergy-app", "synergy-epoch", "synergy-segment"
_MAX_EPOCH = 2**64 - 1
_MAX_SEGMENT = 2**32 - 1
_MAX_APP_ID = 256
_FRAMES_METHOD = "/synergy.v1.AgentService/Frames"
#: How long a sender whose write failed waits for the call's final status (it is normally
#: there already: the receiver ended the call).
_STATUS_WAIT_S = 1.0


class StreamBroken(Unavailable):
    """The frame call failed or ended; frames written on it and not acknowledged are lost."""


@dataclass(frozen=True)
class StreamTarget:
    """The receiving segment a stream feeds."""

    app_id: str
    epoch: int
    segment: int


@dataclass(frozen=True)
class FrameAck:
    """The receiver's word on one frame (see :class:`~synergy.reports.FrameOutcome`)."""

    seq: int
    outcome: FrameOutcome
    reason: str = ""


class FrameCall(Protocol):
    """One open frame stream (the sending end)."""

    async def write(self, frame: Frame) -> None:
        """Send one frame; StreamBroken if the call failed, the frame's own error if it cannot travel."""
        ...

    def acks(self) -> AsyncIterator[FrameAck]:
        """The receiver's acks; ends when the receiver ends the call, StreamBroken when it fails."""
        ...

    async def done_writing(self) -> None:
        """No more frames: the receiver finishes after acknowledging what it got."""
        ...

    def cancel(self) -> None: ...


class FrameTransport(Protocol):
    """Opens frame calls to one peer; a broken call is replaced by opening another."""

    def open(self, target: StreamTarget) -> FrameCall: ...

    async def close(self) -> None: ...


# -- sending end -------------------------------------------------------------------------------


class _GrpcFrameCall:
    def __init__(self, call: grpc.aio.StreamStreamCall, address: str, message_bytes: int) -> None:
        self._call = call
        self._address = address
        self._message_bytes = message_bytes
        self._accepted = False

    async def _wait_accepted(self) -> None:
        """Until the receiver accepted the stream (it sends its headers once its authorization
        check passed), or StreamBroken with its refusal.

        Waiting costs one round trip per stream, once; without it the first frames would be
        written into a call the receiver already refused, and the write's failure would hide
        the receiver's status behind INTERNAL (grpc/grpc#36066).
        """
        try:
            await self._call.initial_metadata()
            if self._call.done():
                code = await self._call.code()
                details = await self._call.details()
                raise StreamBroken(f"next hop {self._address} unavailable: {code.name}: {details}")
        except asyncio.CancelledError as exc:
            if self._own_cancellation():
                raise
            self._broken(exc)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
            self._broken(exc)
        self._accepted = True

    def _broken(self, cause: BaseException) -> NoReturn:
        if isinstance(cause, grpc.aio.AioRpcError):
            error = error_from_rpc(cause)
            raise StreamBroken(f"next hop {self._address} unavailable: {error.grpc_code}: {error}") from cause
        raise StreamBroken(f"next hop {self._address}: stream ended ({type(cause).__name__})") from cause

    async def _write_failed(self, cause: BaseException) -> NoReturn:
        # A write on a call the receiver already ended fails without the receiver's status
        # (InvalidStateError, or INTERNAL: grpc/grpc#36066), yet the call's own final status
        # says why it ended (e.g. PERMISSION_DENIED with the reason): report that one.
        code: grpc.StatusCode | None = None
        details = ""
        with contextlib.suppress(Exception):
            code = await asyncio.wait_for(self._call.code(), _STATUS_WAIT_S)
            details = str(await self._call.details() or "")
        if code is not None and code is not grpc.StatusCode.OK and code is not grpc.StatusCode.CANCELLED:
            raise StreamBroken(f"next hop {self._address} unavailable: {code.name}: {details}") from cause
        self._broken(cause)

    @staticmethod
    def _own_cancellation() -> bool:
        # grpc.aio raises CancelledError out of reads and writes of a call cancelled by anyone;
        # only a cancellation of *this task* must propagate as one.
        task = asyncio.current_task()
        return task is not None and task.cancelling() > 0

    async def write(self, frame: Frame) -> None:
        messages = encode_frame(frame, self._message_bytes)  # refuses the frame before any byte is sent
        if not self._accepted:
            await self._wait_accepted()
        try:
            for message in messages:
                await self._call.write(message)
        except asyncio.CancelledError as exc:
            if self._own_cancellation():
                raise
            self._broken(exc)
        except (grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError) as exc:
            await self._write_failed(exc)

    async def acks(self) -> AsyncIterator[FrameAck]:
        try:
            async for msg in self._call:
                outcome = outcome_from_proto(msg.outcome)
                if outcome is None:
                    yield FrameAck(msg.seq, FrameOutcome.REJECTED, f"peer sent an unknown outcome {msg.outcome}")
                else:
                    yield FrameAck(msg.seq, outcome, msg.reason)
        except asyncio.CancelledError as exc:
            if self._own_cancellation():
                raise
            self._broken(exc)
        except (grpc.aio.AioRpcError, grpc.aio.UsageError) as exc:
            self._broken(exc)

    async def done_writing(self) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError, grpc.aio.UsageError):
            await self._call.done_writing()

    def cancel(self) -> None:
        self._call.cancel()


class GrpcFrameTransport:
    """Frame calls to the agent at ``address`` over one channel (gRPC reconnects it as needed).

    With ``tls`` (the sending agent's identity) the channel is mutual TLS. A frame whose
    tensors hold more than ``message_bytes`` travels in chunks of that size.
    """

    def __init__(
        self,
        address: str,
        *,
        tls: TlsConfig | None = None,
        message_bytes: int = FRAME_MESSAGE_BYTES,
        channel: grpc.aio.Channel | None = None,
    ) -> None:
        self.address = address
        self._message_bytes = message_bytes
        self._channel = channel or open_channel(address, tls)
        # The generated stub would serialize protos; frames arrive here already encoded.
        self._frames = self._channel.stream_stream(
            _FRAMES_METHOD,
            request_serializer=None,
            response_deserializer=agent_pb2.FrameAck.FromString,
            _registered_method=True,
        )

    def open(self, target: StreamTarget) -> FrameCall:
        # Tells the receiver which segment this stream feeds before the first frame arrives.
        metadata = (
            (_APP_KEY, target.app_id),
            (_EPOCH_KEY, str(target.epoch)),
            (_SEGMENT_KEY, str(target.segment)),
        )
        return _GrpcFrameCall(self._frames(metadata=metadata), self.address, self._message_bytes)

    async def close(self) -> None:
        await self._channel.close()


# -- receiving end -----------------------------------------------------------------------------


def stream_target(metadata: Sequence[tuple[str, str | bytes]] | None) -> StreamTarget | None:
    """The segment a frame stream feeds, from its invocation metadata (None: not said, or nonsense)."""
    values = {k: v for k, v in (metadata or ()) if isinstance(v, str)}
    try:
        app_id, epoch, segment = values[_APP_KEY], int(values[_EPOCH_KEY]), int(values[_SEGMENT_KEY])
    except (KeyError, ValueError):
        return None
    if not app_id or len(app_id) > _MAX_APP_ID or not 0 <= epoch <= _MAX_EPOCH or not 0 <= segment <= _MAX_SEGMENT:
        return None
    return StreamTarget(app_id, epoch, segment)


async def _frames_from_messages(
    messages: AsyncIterator[bytes], admit: Callable[[Frame], None] | None
) -> AsyncGenerator[Frame, None]:
    assembler = FrameAssembler()
    try:
        async for message in messages:
            frame = assembler.feed(decode_chunk(message))
            if frame is not None:
                if admit is not None:
                    admit(frame)
                yield frame
    finally:
        if assembler.pending_seq is not None:
            # The sender still holds that frame unacknowledged and reports it.
            log.info("frame_stream_cut_mid_frame", seq=assembler.pending_seq)


def _ack_to_proto(ack: FrameAck) -> agent_pb2.FrameAck:
    return agent_pb2.FrameAck(seq=ack.seq, outcome=outcome_to_proto(ack.outcome), reason=ack.reason)  # type: ignore[arg-type]


def frames_method_handler(
    frames: Callable[[AsyncIterator[bytes], grpc.aio.ServicerContext], AsyncIterator[agent_pb2.FrameAck]],
) -> grpc.RpcMethodHandler:
    """The handler of ``AgentService.Frames`` for ``frames`` (the servicer's method): requests
    reach it as the received bytes, which :func:`serve_frames` decodes in place."""
    return grpc.stream_stream_rpc_method_handler(
        frames, request_deserializer=None, response_serializer=agent_pb2.FrameAck.SerializeToString
    )


async def serve_frames(
    messages: AsyncIterator[bytes],
    receive: Callable[[AsyncIterator[Frame]], AsyncGenerator[FrameAck, None]],
    admit: Callable[[Frame], None] | None = None,
) -> AsyncGenerator[agent_pb2.FrameAck, None]:
    """The servicer's body of ``Frames``: FrameChunk messages (bytes) in, frames to
    ``receive``, its acks out.

    A malformed message or chunk stream ends the call with the decoder's or the assembler's
    error (a SynergyError naming the field and the bound, mapped to its status code by the
    server's interceptor). ``admit`` sees each frame before ``receive`` does; a SynergyError
    it raises ends the call the same way, the frame unread.
    """
    # ``receive`` consumes the frames in a task of its own and stops it before it ends.
    async with contextlib.aclosing(receive(_frames_from_messages(messages, admit))) as acks:
        async for ack in acks:
            yield _ack_to_proto(ack)
