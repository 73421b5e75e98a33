"""The agent's gRPC servicer: deployments from the coordinator, frames from peers.

The one module of the agent that sees protos: requests are converted (and validated) with
the ``synergy.wire`` converters, the runtime works on our types, answers are converted back.

Every method first asks the agent's :class:`~synergy.security.guard.Guard` (docs/security.md):
Deploy, Activate, Undeploy, Status and Inject only by the coordinator; a Frames stream only
from the device this agent's deployment names as the upstream of the segment it feeds, and
only with frames for that segment. Refusals are recorded in :attr:`AgentServicer.audit` and answered with
UNAUTHENTICATED or PERMISSION_DENIED; an agent without TLS (``--insecure``) allows all.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial

import grpc

from agent.runtime import Runtime
from synergy.errors import InvalidArgument
from synergy.reports import DeviceTelemetry
from synergy.security.audit import AuditLog
from synergy.security.authz import Policy
from synergy.security.guard import Guard
from synergy.v1 import agent_pb2, agent_pb2_grpc
from synergy.wire.deployment import agent_state_to_proto, assignment_from_proto
from synergy.wire.frames import frames_method_handler, serve_frames, stream_target
from synergy.wire.reports import telemetry_to_proto
from synergy.wire.tensors import Frame, array_from_proto

__all__ = ["AgentServicer", "registration"]


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):  # type: ignore[misc]  # untyped generated base
    def __init__(self, runtime: Runtime, telemetry: Callable[[], DeviceTelemetry], guard: Guard | None = None) -> None:
        self._runtime = runtime
        self._telemetry = telemetry
        #: Without a guard, authorization is off (an agent without TLS).
        self._guard = guard if guard is not None else Guard(Policy(insecure=True))

    @property
    def audit(self) -> AuditLog:
        """The refusals of this agent's server."""
        return self._guard.audit

    def _control(self, context: grpc.aio.ServicerContext, method: str) -> None:
        policy = self._guard.policy
        self._guard.check(context, lambda who: policy.agent_control(who, method))

    async def Deploy(
        self, request: agent_pb2.DeployRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeployResponse:
        self._control(context, "Deploy")
        if request.epoch == 0:
            raise InvalidArgument("epoch 0 is reserved for 'nothing deployed'")
        assignments = [assignment_from_proto(a) for a in request.assignments]
        await self._runtime.deploy(request.epoch, assignments)
        return agent_pb2.DeployResponse()

    async def Activate(
        self, request: agent_pb2.ActivateRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.ActivateResponse:
        self._control(context, "Activate")
        self._runtime.activate(request.epoch)
        return agent_pb2.ActivateResponse()

    async def Undeploy(
        self, request: agent_pb2.UndeployRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.UndeployResponse:
        self._control(context, "Undeploy")
        drained = await self._runtime.undeploy(request.epoch)
        return agent_pb2.UndeployResponse(frames_drained=drained)

    async def Frames(
        self, request_iterator: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.FrameAck]:
        policy, guard = self._guard.policy, self._guard
        target = stream_target(context.invocation_metadata())
        who = guard.identity(context)

        def address() -> str:
            return str(context.peer() or "")

        # Decided before a single frame is read: a refused stream never reaches the data
        # plane, so it is not counted as any app's drop.
        guard.check_as(
            who,
            address,
            lambda w: policy.frames(
                w,
                app_id=target.app_id if target else "",
                epoch=target.epoch if target else 0,
                segment=target.segment if target else 0,
                upstream=self._runtime.upstream_of(target) if target else None,
            ),
        )
        admit = None
        if target is not None:
            stream = (target.app_id, target.epoch, target.segment)

            def admit(frame: Frame) -> None:
                guard.check_as(
                    who,
                    address,
                    lambda w: policy.frame_in_stream(
                        w, stream=stream, frame=(frame.app_id, frame.epoch, frame.segment), seq=frame.seq
                    ),
                )

            self._runtime.inbound_opened(target)
        try:
            # Accepted: the headers tell the sender so before it writes its first frame.
            await context.send_initial_metadata(())
            async with contextlib.aclosing(serve_frames(request_iterator, self._runtime.receive, admit)) as acks:
                async for ack in acks:
                    yield ack
        finally:
            if target is not None:
                self._runtime.inbound_closed(target)

    async def Inject(
        self, request: agent_pb2.InjectRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.InjectResponse:
        self._control(context, "Inject")
        tensors = {}
        for tensor in request.inputs:
            spec, array = array_from_proto(tensor)
            tensors[spec.name] = array
        epoch = await self._runtime.inject(request.app_id, request.seq, tensors)
        return agent_pb2.InjectResponse(epoch=epoch)

    async def Status(
        self, request: agent_pb2.StatusRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.AgentStatus:
        self._control(context, "Status")
        state = self._runtime.state()
        return agent_pb2.AgentStatus(
            device_id=self._runtime.device.device_id,
            active_epoch=state.active_epoch,
            loaded_epochs=list(state.loaded_epochs),
            telemetry=telemetry_to_proto(self._telemetry()),
            weight_bytes_loaded=self._runtime.board.weight_bytes_loaded(),
            state=agent_state_to_proto(state),
        )


def _add_to_server(servicer: AgentServicer, server: grpc.aio.Server) -> None:
    agent_pb2_grpc.add_AgentServiceServicer_to_server(servicer, server)
    # Frames again, replacing the generated handler: its requests reach the servicer as the
    # received bytes, read in place (the generated one would copy every tensor twice).
    name = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
    server.add_registered_method_handlers(name, {"Frames": frames_method_handler(servicer.Frames)})


def registration(servicer: AgentServicer) -> tuple[Callable[[grpc.aio.Server], None], str]:
    """What :func:`synergy.wire.server.start_server` needs to serve ``servicer``."""
    name = agent_pb2.DESCRIPTOR.services_by_name["AgentService"].full_name
    return partial(_add_to_server, servicer), name
