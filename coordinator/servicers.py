"""gRPC servicers of the coordinator: thin translation between protos and the Coordinator.

Servicers convert requests at the boundary (the converters validate every field and refuse
bad input with INVALID_ARGUMENT naming it), call the :class:`~coordinator.service.Coordinator`
and convert answers back. They raise :mod:`synergy.errors`; the error interceptor maps those
to status codes.

Every method first asks the server's :class:`~synergy.security.guard.Guard` (the
authorization policy of ``synergy/security/authz.py``, enforced; see docs/security.md):
RegistryService only by the agent of the device named (results only from the app's planned
target, each result of a ReportResults batch on its own, a live device id only from the
connection holding it), AppsService only by a client
or an admin, each app removed, watched or fed only by the client that submitted it or an
admin, and others' apps listed without their figures. A refusal is recorded in
:attr:`RegistryServicer.audit` / :attr:`AppsServicer.audit` (one
:class:`~synergy.security.audit.AuditLog` per coordinator) and answered with UNAUTHENTICATED
or PERMISSION_DENIED. A coordinator without TLS (``--insecure``) allows all.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from functools import partial

import grpc

from coordinator.service import Coordinator, ModelSource
from synergy.errors import InvalidArgument, NotFound, SynergyError
from synergy.reports import Result
from synergy.security.audit import AuditLog
from synergy.security.authz import UNOWNED, Allowed, Policy
from synergy.security.guard import Guard
from synergy.security.identity import Identity
from synergy.types import AppInfo, AppStats
from synergy.v1 import apps_pb2, apps_pb2_grpc, common_pb2, registry_pb2, registry_pb2_grpc
from synergy.wire.convert import app_spec_from_proto, device_from_proto, joint_plan_to_proto
from synergy.wire.deployment import agent_state_from_proto
from synergy.wire.reports import (
    app_info_to_proto,
    device_info_to_proto,
    result_from_proto,
    result_to_proto,
    stats_to_proto,
    telemetry_from_proto,
)
from synergy.wire.result_batches import outcome_to_proto
from synergy.wire.tensors import array_from_proto

__all__ = ["AppsServicer", "RegistryServicer", "coordinator_guard", "coordinator_services"]

#: The longest a client may ask Infer to wait for its result.
MAX_INFER_TIMEOUT_S = 600.0


def coordinator_guard(coordinator: Coordinator) -> Guard:
    """The coordinator's policy (off when it runs without TLS) and its audit log."""
    return Guard(Policy(insecure=coordinator.config.tls is None))


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):  # type: ignore[misc]  # untyped generated base
    def __init__(self, coordinator: Coordinator, guard: Guard | None = None) -> None:
        self._c = coordinator
        self._guard = guard if guard is not None else coordinator_guard(coordinator)

    @property
    def audit(self) -> AuditLog:
        """The refusals of this coordinator (shared with its AppsServicer)."""
        return self._guard.audit

    def _authorize(self, context: grpc.aio.ServicerContext, method: str, device_id: str) -> Allowed:
        policy = self._guard.policy
        return self._guard.check(
            context, lambda who: policy.registry(who, method, device_id=device_id, live_holder=None)
        )

    async def Register(
        self, request: registry_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.RegisterResponse:
        self._c.require_ready()
        policy, device_id, connection = self._guard.policy, request.device.device_id, str(context.peer() or "")
        # Nothing is awaited between this check and the registration: no other call can
        # take the id in between.
        holder = self._c.core.live_holder(device_id, time.monotonic())
        self._guard.check(
            context,
            lambda who: policy.registry(
                who, "Register", device_id=device_id, live_holder=holder, connection=connection
            ),
        )
        if not request.HasField("device"):
            raise InvalidArgument("device: the capability record is missing")
        spec = device_from_proto(request.device)
        if not spec.address:
            raise InvalidArgument(f"device.address: empty for {spec.device_id!r} (the agent's gRPC server)")
        lease = self._c.register(spec, agent_state_from_proto(request.state), connection)
        return registry_pb2.RegisterResponse(
            lease_id=lease.lease_id, heartbeat_period_s=lease.heartbeat_period_s, lease_ttl_s=lease.lease_ttl_s
        )

    async def Heartbeat(
        self, request: registry_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.HeartbeatResponse:
        self._authorize(context, "Heartbeat", request.device_id)
        self._c.require_ready()
        self._c.heartbeat(
            request.device_id,
            request.lease_id,
            telemetry_from_proto(request.telemetry),
            agent_state_from_proto(request.state),
            str(context.peer() or ""),
        )
        return registry_pb2.HeartbeatResponse(lease_ttl_s=self._c.config.lease_ttl_s)

    def _lease_caller(
        self, context: grpc.aio.ServicerContext, method: str, lease_id: str
    ) -> tuple[Identity | None, str | None]:
        """The caller, authorized as the agent of the lease's device; and that device (None:
        an unknown lease, which passes the role check here to be answered NOT_FOUND)."""
        policy = self._guard.policy
        lease_device = self._c.core.lease_device(lease_id)
        who = self._guard.check(
            context,
            lambda w: policy.registry(w, method, device_id=lease_device or (w.name if w else ""), live_holder=None),
        ).identity
        return who, lease_device

    def _authorize_result(
        self, who: Identity | None, context: grpc.aio.ServicerContext, result: Result, method: str
    ) -> None:
        """One result: only the app's target in that epoch's plan delivers, its pipeline drops."""
        plan = self._c.core.pipeline_of(result.app_id, result.epoch)
        decide = partial(
            self._guard.policy.report,
            app_id=result.app_id,
            epoch=result.epoch,
            dropped=result.dropped,
            result_device=result.device_id,
            target_device=plan.target_device if plan is not None else None,
            pipeline=plan.devices if plan is not None else (),
            method=method,
        )
        self._guard.check_as(who, partial(_peer, context), decide)

    async def ReportResult(
        self, request: registry_pb2.ReportResultRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.ReportResultResponse:
        self._c.require_ready()
        result = result_from_proto(request.result)
        who, lease_device = self._lease_caller(context, "ReportResult", request.lease_id)
        if lease_device is not None:
            self._authorize_result(who, context, result, "ReportResult")
        self._c.report_result(request.lease_id, result)
        return registry_pb2.ReportResultResponse()

    async def ReportResults(
        self, request: registry_pb2.ReportResultsRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.ReportResultsResponse:
        """A batch, authorized result by result exactly as ReportResult authorizes one.

        What concerns every result refuses the call: the caller (checked against the lease's
        device, as ReportResult does) and an unknown lease (NOT_FOUND). What concerns one
        result (an invalid field, an app or epoch it may not report for) refuses that result
        alone, in its outcome; the accepted ones are taken in order.
        """
        self._c.require_ready()
        who, lease_device = self._lease_caller(context, "ReportResults", request.lease_id)
        if lease_device is None:
            raise NotFound("unknown lease; register again")
        refusals: list[SynergyError | None] = []
        accepted = []
        for index, message in enumerate(request.results):
            try:
                result = result_from_proto(message, path=f"results[{index}]")
                self._authorize_result(who, context, result, "ReportResults")
            except SynergyError as refusal:
                refusals.append(refusal)
                continue
            refusals.append(None)
            accepted.append(result)
        self._c.report_results(request.lease_id, accepted)
        return registry_pb2.ReportResultsResponse(outcomes=[outcome_to_proto(r) for r in refusals])

    async def Deregister(
        self, request: registry_pb2.DeregisterRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.DeregisterResponse:
        self._authorize(context, "Deregister", request.device_id)
        self._c.require_ready()
        self._c.deregister(request.device_id, request.lease_id)
        return registry_pb2.DeregisterResponse()


def _peer(context: grpc.aio.ServicerContext) -> str:
    return str(context.peer() or "")


class AppsServicer(apps_pb2_grpc.AppsServiceServicer):  # type: ignore[misc]  # untyped generated base
    def __init__(self, coordinator: Coordinator, guard: Guard | None = None) -> None:
        self._c = coordinator
        self._guard = guard if guard is not None else coordinator_guard(coordinator)

    @property
    def audit(self) -> AuditLog:
        """The refusals of this coordinator (shared with its RegistryServicer)."""
        return self._guard.audit

    def _authorize(self, context: grpc.aio.ServicerContext, method: str, app_id: str = "") -> Allowed:
        """The policy's word on ``method`` (on ``app_id``, owned by whoever submitted it)."""
        policy = self._guard.policy
        owner = self._owner(app_id) if app_id else None
        return self._guard.check(context, lambda who: policy.apps(who, method, owner=owner, app_id=app_id))

    def _owner(self, app_id: str) -> str | None:
        record = self._c.core.apps.get(app_id)
        return record.owner if record is not None else None

    def _visible(self, allowed: Allowed, info: AppInfo) -> AppInfo:
        """``info`` as this caller may see it: another client's app without its figures."""
        if not self._guard.policy.redact_for(allowed.identity, info.owner):
            return info
        return replace(info, stats=AppStats(), stats_hidden=True)

    async def SubmitApp(self, request: apps_pb2.SubmitAppRequest, context: grpc.aio.ServicerContext) -> common_pb2.App:
        allowed = self._authorize(context, "SubmitApp")
        self._c.require_ready()
        which = request.WhichOneof("model_source")
        source = ModelSource(
            zoo_name=request.zoo_name if which == "zoo_name" else "",
            onnx=request.onnx if which == "onnx" else b"",
            display_name=request.spec.model,
        )
        spec = app_spec_from_proto(request.spec, "")
        return app_info_to_proto(await self._c.submit(spec, source, allowed.owner or UNOWNED))

    async def RemoveApp(
        self, request: apps_pb2.RemoveAppRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.RemoveAppResponse:
        self._c.require_ready()
        self._authorize(context, "RemoveApp", request.app_id)
        await self._c.remove(request.app_id)
        return apps_pb2.RemoveAppResponse()

    async def ListApps(
        self, request: apps_pb2.ListAppsRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.ListAppsResponse:
        allowed = self._authorize(context, "ListApps")
        self._c.require_ready()
        apps = [app_info_to_proto(self._visible(allowed, a)) for a in self._c.list_apps()]
        return apps_pb2.ListAppsResponse(apps=apps)

    async def GetPlan(
        self, request: apps_pb2.GetPlanRequest, context: grpc.aio.ServicerContext
    ) -> common_pb2.JointPlan:
        # A plan holds placements and predictions, no results: every client sees all of it.
        self._authorize(context, "GetPlan")
        self._c.require_ready()
        return joint_plan_to_proto(self._c.plan())

    async def ListDevices(
        self, request: apps_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.ListDevicesResponse:
        self._authorize(context, "ListDevices")
        self._c.require_ready()
        return apps_pb2.ListDevicesResponse(devices=[device_info_to_proto(d) for d in self._c.list_devices()])

    async def WatchResults(
        self, request: apps_pb2.WatchResultsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[common_pb2.Result]:
        self._c.require_ready()
        if not request.app_ids:
            allowed = self._authorize(context, "WatchResults")
            results = allowed.results
            admits = None if results is None or results.owner is None else self._owned_by(results.owner)
        else:
            for app_id in request.app_ids:
                self._authorize(context, "WatchResults", app_id)
                self._c.core.app(app_id)  # NOT_FOUND for an unknown id, before streaming starts
            admits = None
        async for result in self._c.results.watch(request.app_ids, admits):
            yield result_to_proto(result)

    def _owned_by(self, owner: str) -> Callable[[str], bool]:
        def admits(app_id: str) -> bool:
            return self._owner(app_id) == owner

        return admits

    async def Infer(self, request: apps_pb2.InferRequest, context: grpc.aio.ServicerContext) -> common_pb2.Result:
        self._c.require_ready()
        self._authorize(context, "Infer", request.app_id)
        if not math.isfinite(request.timeout_s) or not 0 <= request.timeout_s <= MAX_INFER_TIMEOUT_S:
            raise InvalidArgument(f"timeout_s: must be 0 (the default) or up to {MAX_INFER_TIMEOUT_S}s")
        inputs = {}
        for index, tensor in enumerate(request.inputs):
            try:
                spec, _ = array_from_proto(tensor)  # checks the bytes match the spec
            except InvalidArgument as exc:
                raise InvalidArgument(f"inputs[{index}]: {exc}") from exc
            inputs[spec] = tensor.data
        result = await self._c.infer(request.app_id, inputs, request.timeout_s)
        return result_to_proto(result)

    async def GetStats(
        self, request: apps_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.CoordinatorStats:
        self._authorize(context, "GetStats")
        self._c.require_ready()
        return stats_to_proto(self._c.stats)

    async def ForgetDevice(
        self, request: apps_pb2.ForgetDeviceRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.ForgetDeviceResponse:
        self._authorize(context, "ForgetDevice")
        self._c.require_ready()
        await self._c.forget_device(request.device_id)
        return apps_pb2.ForgetDeviceResponse()


def coordinator_services(
    coordinator: Coordinator, guard: Guard | None = None
) -> Sequence[tuple[Callable[[grpc.aio.Server], None], str]]:
    """The coordinator's services, as :func:`synergy.wire.server.start_server` takes them;
    ``guard`` (default: :func:`coordinator_guard`) is given when its audit log is read elsewhere."""
    registry = registry_pb2.DESCRIPTOR.services_by_name["RegistryService"].full_name
    apps = apps_pb2.DESCRIPTOR.services_by_name["AppsService"].full_name
    guard = guard or coordinator_guard(coordinator)  # one policy and audit log for both services
    return [
        (
            partial(registry_pb2_grpc.add_RegistryServiceServicer_to_server, RegistryServicer(coordinator, guard)),
            registry,
        ),
        (partial(apps_pb2_grpc.add_AppsServiceServicer_to_server, AppsServicer(coordinator, guard)), apps),
    ]
