"""The agent's gRPC servicer: deployments from the coordinator, frames from peers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import structlog

from agent.runtime import AckFn, Runtime
from synergy.errors import InvalidArgument, SynergyError
from synergy.v1 import agent_pb2, agent_pb2_grpc, common_pb2
from synergy.wire.tensors import FrameAssembler, array_from_proto

__all__ = ["AgentServicer"]

log = structlog.get_logger(__name__)


class _AckQueue:
    """Acks of one Frames stream; ends after the sender half-closed and every frame is acked."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[agent_pb2.FrameAck | SynergyError | None] = asyncio.Queue()
        self._pending = 0
        self._reading = True

    def expect(self, seq: int) -> AckFn:
        self._pending += 1

        def ack(outcome: int, reason: str) -> None:
            self._pending -= 1
            self._queue.put_nowait(agent_pb2.FrameAck(seq=seq, outcome=outcome, reason=reason))  # type: ignore[arg-type]
            self._settle()

        return ack

    def fail(self, error: SynergyError) -> None:
        self._queue.put_nowait(error)

    def reading_done(self) -> None:
        self._reading = False
        self._settle()

    def _settle(self) -> None:
        if not self._reading and self._pending == 0:
            self._queue.put_nowait(None)

    async def get(self) -> agent_pb2.FrameAck | SynergyError | None:
        return await self._queue.get()


def _stream_target(context: grpc.aio.ServicerContext) -> tuple[str, int, int] | None:
    """The (app, epoch, segment) a frame stream feeds, from its metadata (absent: unknown)."""
    metadata = {k: v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)}
    try:
        return metadata["synergy-app"], int(metadata["synergy-epoch"]), int(metadata["synergy-segment"])
    except (KeyError, ValueError):
        return None


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):  # type: ignore[misc]  # untyped generated base
    def __init__(self, runtime: Runtime, telemetry: Callable[[], common_pb2.DeviceTelemetry]) -> None:
        self._runtime = runtime
        self._telemetry = telemetry

    async def Deploy(
        self, request: agent_pb2.DeployRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeployResponse:
        if request.epoch == 0:
            raise InvalidArgument("epoch 0 is reserved for 'nothing deployed'")
        await self._runtime.deploy(request.epoch, request.assignments)
        return agent_pb2.DeployResponse()

    async def Activate(
        self, request: agent_pb2.ActivateRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ActivateResponse:
        self._runtime.activate(request.epoch)
        return agent_pb2.ActivateResponse()

    async def Undeploy(
        self, request: agent_pb2.UndeployRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.UndeployResponse:
        drained = await self._runtime.undeploy(request.epoch)
        return agent_pb2.UndeployResponse(frames_drained=drained)

    async def Frames(
        self, request_iterator: AsyncIterator[agent_pb2.FrameChunk], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.FrameAck]:
        acks = _AckQueue()
        target = _stream_target(context)
        if target is not None:
            self._runtime.inbound_opened(*target)

        async def read() -> None:
            assembler = FrameAssembler()
            try:
                async for chunk in request_iterator:
                    frame = assembler.feed(chunk)
                    if frame is not None:
                        await self._runtime.accept(frame, acks.expect(frame.seq))
            except SynergyError as exc:
                acks.fail(exc)
            finally:
                if assembler.pending_seq is not None:
                    # The sender still holds that frame unacknowledged and reports it.
                    log.info("frame_stream_cut_mid_frame", seq=assembler.pending_seq)
                acks.reading_done()

        reader = asyncio.ensure_future(read())
        try:
            while True:
                item = await acks.get()
                if item is None:
                    return
                if isinstance(item, SynergyError):
                    raise item
                yield item
        finally:
            reader.cancel()
            if target is not None:
                self._runtime.inbound_closed(*target)

    async def Inject(
        self, request: agent_pb2.InjectRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.InjectResponse:
        tensors = {}
        for tensor in request.inputs:
            spec, array = array_from_proto(tensor)
            tensors[spec.name] = array
        epoch = await self._runtime.inject(request.app_id, request.seq, tensors)
        return agent_pb2.InjectResponse(epoch=epoch)

    async def Status(
        self, request: agent_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.AgentStatus:
        telemetry = self._telemetry()
        return agent_pb2.AgentStatus(
            device_id=self._runtime.device.device_id,
            active_epoch=self._runtime.active_epoch,
            loaded_epochs=self._runtime.loaded_epochs,
            telemetry=telemetry,
            weight_bytes_loaded=self._runtime.board.weight_bytes_loaded(),
        )
