"""gRPC servicers of the coordinator: thin translation between protos and the Coordinator.

Servicers convert requests at the boundary, call the :class:`~coordinator.service.Coordinator`
and convert answers back. They raise :mod:`synergy.errors`; the error interceptor maps those
to status codes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator

import grpc
import structlog

from coordinator.service import Coordinator
from coordinator.vcs import CLIENT_SOURCE, AppRecord
from synergy.errors import FailedPrecondition, InvalidArgument, Unavailable
from synergy.v1 import (
    agent_pb2,
    apps_pb2,
    apps_pb2_grpc,
    common_pb2,
    registry_pb2,
    registry_pb2_grpc,
)
from synergy.wire.convert import (
    app_spec_from_proto,
    app_spec_to_proto,
    device_from_proto,
    device_to_proto,
    joint_plan_to_proto,
)
from synergy.wire.status import error_from_rpc
from synergy.wire.tensors import array_from_proto, check_matches

__all__ = ["AppsServicer", "RegistryServicer"]

log = structlog.get_logger(__name__)


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):  # type: ignore[misc]  # untyped generated base
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator

    async def Register(
        self, request: registry_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.RegisterResponse:
        spec = device_from_proto(request.device)
        if not spec.address:
            raise InvalidArgument(f"device {spec.device_id!r}: address of the agent's gRPC server is empty")
        lease_id, ttl = self._c.register(spec)
        return registry_pb2.RegisterResponse(
            lease_id=lease_id, heartbeat_period_s=self._c.config.heartbeat_s, lease_ttl_s=ttl
        )

    async def Heartbeat(
        self, request: registry_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.HeartbeatResponse:
        self._c.heartbeat(request.device_id, request.lease_id, request.telemetry)
        return registry_pb2.HeartbeatResponse(lease_ttl_s=self._c.config.lease_ttl_s)

    async def ReportResult(
        self, request: registry_pb2.ReportResultRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.ReportResultResponse:
        self._c.vcs.check_lease(request.lease_id)
        self._c.report_result(request.result)
        return registry_pb2.ReportResultResponse()


def _app_to_proto(record: AppRecord, coordinator: Coordinator) -> common_pb2.App:
    now = time.monotonic()
    running = coordinator.vcs.plan.plan_for(record.spec.app_id) is not None and not record.reason
    return common_pb2.App(
        app_id=record.spec.app_id,
        spec=app_spec_to_proto(record.spec),
        state=common_pb2.APP_STATE_RUNNING if running else common_pb2.APP_STATE_WAITING,
        reason=record.reason,
        layers=len(record.model.hardware.layers),
        stats=common_pb2.AppStats(
            frames_delivered=record.stats.delivered,
            frames_dropped=record.stats.dropped,
            rate_hz=record.stats.rate_hz(now),
            latency_ms=record.stats.latency_ms(now),
        ),
    )


class AppsServicer(apps_pb2_grpc.AppsServiceServicer):  # type: ignore[misc]  # untyped generated base
    def __init__(self, coordinator: Coordinator) -> None:
        self._c = coordinator

    async def SubmitApp(self, request: apps_pb2.SubmitAppRequest, context: grpc.aio.ServicerContext) -> common_pb2.App:
        app_id = self._c.vcs.new_app_id()
        source = request.WhichOneof("model_source")
        model = self._c.load_model(
            zoo_name=request.zoo_name if source == "zoo_name" else "",
            onnx_bytes=request.onnx if source == "onnx" else b"",
            display_name=request.spec.model,
        )
        spec = app_spec_from_proto(request.spec, app_id)
        if not spec.model:
            spec = dataclasses.replace(spec, model=model.name)
        record = await self._c.submit(spec, model)
        return _app_to_proto(record, self._c)

    async def RemoveApp(
        self, request: apps_pb2.RemoveAppRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.RemoveAppResponse:
        await self._c.remove(request.app_id)
        return apps_pb2.RemoveAppResponse()

    async def ListApps(
        self, request: apps_pb2.ListAppsRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.ListAppsResponse:
        return apps_pb2.ListAppsResponse(apps=[_app_to_proto(a, self._c) for a in self._c.vcs.apps.values()])

    async def GetPlan(
        self, request: apps_pb2.GetPlanRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.JointPlan:
        return joint_plan_to_proto(self._c.vcs.plan)

    async def ListDevices(
        self, request: apps_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.ListDevicesResponse:
        devices = [
            common_pb2.Device(
                capabilities=device_to_proto(d.spec),
                state=common_pb2.DEVICE_STATE_ONLINE if d.online else common_pb2.DEVICE_STATE_OFFLINE,
                last_seen_unix=d.last_seen_unix,
                telemetry=d.telemetry,
            )
            for d in self._c.vcs.devices.values()
        ]
        return apps_pb2.ListDevicesResponse(devices=devices)

    async def WatchResults(
        self, request: apps_pb2.WatchResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.Result]:
        for app_id in request.app_ids:
            self._c.vcs.app(app_id)  # NOT_FOUND for an unknown id, before streaming starts
        async for result in self._c.results.watch(request.app_ids):
            yield result

    async def Infer(self, request: apps_pb2.InferRequest, context: grpc.aio.ServicerContext) -> common_pb2.Result:
        record = self._c.vcs.app(request.app_id)
        if record.spec.source_type != CLIENT_SOURCE:
            raise FailedPrecondition(
                f"app {request.app_id} senses {record.spec.source_type!r}; Infer feeds only apps "
                f"submitted with source type {CLIENT_SOURCE!r}"
            )
        received = [array_from_proto(t)[0] for t in request.inputs]
        check_matches(received, record.model.hardware.inputs)
        device = self._c.plan_source_device(request.app_id)
        seq = self._c.next_infer_seq(request.app_id)
        waiter = self._c.results.expect(request.app_id, seq)
        timeout = request.timeout_s or self._c.config.infer_timeout_s
        stub = self._c.clients.stub(device.address)
        try:
            await stub.Inject(
                agent_pb2.InjectRequest(app_id=request.app_id, seq=seq, inputs=list(request.inputs)), timeout=timeout
            )
            self._c.stats.input_bytes_forwarded += sum(len(t.data) for t in request.inputs)
            return await asyncio.wait_for(waiter, timeout)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        except TimeoutError as exc:
            raise Unavailable(f"app {request.app_id}: no result for input {seq} within {timeout}s") from exc
        finally:
            self._c.results.forget(request.app_id, seq)

    async def GetStats(
        self, request: apps_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.CoordinatorStats:
        stats = apps_pb2.CoordinatorStats()
        stats.CopyFrom(self._c.stats)
        stats.calibration.update(self._c.planned_factors)
        return stats
