"""The SDK's transport: the coordinator's Apps API over gRPC, our dataclasses in and out.

The public SDK (:mod:`synergy.sdk`) never touches a proto; this module converts at the
boundary and translates failed calls into :mod:`synergy.errors` in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TypeVar

import grpc

from synergy.errors import DeadlineExceeded, FailedPrecondition, SynergyError, Unavailable
from synergy.hardware.model import TensorSpec
from synergy.reports import CoordinatorStats, Result
from synergy.security.tls import TlsConfig
from synergy.types import AppInfo, AppSpec, DeviceInfo, JointPlan
from synergy.v1 import apps_pb2, apps_pb2_grpc, common_pb2
from synergy.wire.channels import open_channel
from synergy.wire.convert import app_spec_to_proto, joint_plan_from_proto
from synergy.wire.reports import app_info_from_proto, device_info_from_proto, result_from_proto, stats_from_proto
from synergy.wire.status import error_from_rpc
from synergy.wire.tensors import spec_to_meta

__all__ = ["AppsTransport"]

_T = TypeVar("_T")

#: How gRPC words a failure to connect (refused, closed, or a failed TLS handshake).
_NOT_CONNECTED = "failed to connect"


class AppsTransport:
    """One channel to one coordinator (mutual TLS with ``tls``, plain text without)."""

    def __init__(self, address: str, timeout_s: float, tls: TlsConfig | None = None) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.tls = tls
        self._channel = open_channel(address, tls)
        self._stub = apps_pb2_grpc.AppsServiceStub(self._channel)

    async def close(self) -> None:
        await self._channel.close()

    def _tls_hint(self) -> str:
        if self.tls is None:
            return (
                "if it is running with TLS, this client needs --tls-dir DIR (or SYNERGY_TLS_DIR) holding a "
                "client certificate of its CA"
            )
        return (
            f"if it is running, check that it uses TLS too (not --insecure) and that its certificate and ours "
            f"({self.tls.identity}) come from the same CA, are valid now, and that its certificate names the "
            "host dialled (`synergy ca issue --san HOST`)"
        )

    def _start_hint(self) -> str:
        return (
            "is it running? Start one with `synergy coordinator`, or point --coordinator (or "
            "SYNERGY_COORDINATOR) at the one you use"
        )

    async def wait_ready(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except TimeoutError as exc:
            raise Unavailable(
                f"coordinator {self.address} not reachable within {timeout_s}s: {self._start_hint()}; "
                + self._tls_hint()
            ) from exc

    def _error(self, exc: grpc.aio.AioRpcError) -> SynergyError:
        """The SynergyError a failed call stands for, worded for this client's situation."""
        code, details = exc.code(), exc.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return DeadlineExceeded(f"coordinator {self.address} did not answer within {self.timeout_s}s")
        if code == grpc.StatusCode.UNAVAILABLE and _NOT_CONNECTED in details:
            return Unavailable(f"coordinator {self.address}: {details}; {self._start_hint()}; {self._tls_hint()}")
        if code == grpc.StatusCode.UNIMPLEMENTED:
            # The server there serves no AppsService: most likely an agent's port.
            return FailedPrecondition(
                f"{self.address} is an agent, not a coordinator (it does not serve the Apps API: {details}); "
                "point --coordinator (or SYNERGY_COORDINATOR) at the coordinator's address"
            )
        return error_from_rpc(exc)

    async def _call(self, call: Awaitable[_T]) -> _T:
        try:
            return await call
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def submit(self, spec: AppSpec, *, zoo_name: str = "", onnx: bytes = b"") -> AppInfo:
        request = apps_pb2.SubmitAppRequest(spec=app_spec_to_proto(spec))
        if onnx:
            request.onnx = onnx
        else:
            request.zoo_name = zoo_name
        return app_info_from_proto(await self._call(self._stub.SubmitApp(request, timeout=self.timeout_s)))

    async def remove(self, app_id: str) -> None:
        await self._call(self._stub.RemoveApp(apps_pb2.RemoveAppRequest(app_id=app_id), timeout=self.timeout_s))

    async def list_apps(self) -> list[AppInfo]:
        answer = await self._call(self._stub.ListApps(apps_pb2.ListAppsRequest(), timeout=self.timeout_s))
        return [app_info_from_proto(a) for a in answer.apps]

    async def list_devices(self) -> list[DeviceInfo]:
        answer = await self._call(self._stub.ListDevices(apps_pb2.ListDevicesRequest(), timeout=self.timeout_s))
        return [device_info_from_proto(d) for d in answer.devices]

    async def forget_device(self, device_id: str) -> None:
        await self._call(
            self._stub.ForgetDevice(apps_pb2.ForgetDeviceRequest(device_id=device_id), timeout=self.timeout_s)
        )

    async def plan(self) -> JointPlan:
        return joint_plan_from_proto(
            await self._call(self._stub.GetPlan(apps_pb2.GetPlanRequest(), timeout=self.timeout_s))
        )

    async def stats(self) -> CoordinatorStats:
        return stats_from_proto(
            await self._call(self._stub.GetStats(apps_pb2.GetStatsRequest(), timeout=self.timeout_s))
        )

    async def watch(self, app_ids: Sequence[str]) -> AsyncIterator[Result]:
        call = self._stub.WatchResults(apps_pb2.WatchResultsRequest(app_ids=list(app_ids)))
        try:
            async for result in call:
                yield result_from_proto(result)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise self._error(exc) from exc
        finally:
            call.cancel()

    async def infer(self, app_id: str, inputs: Mapping[TensorSpec, bytes], timeout_s: float) -> Result:
        request = apps_pb2.InferRequest(
            app_id=app_id,
            inputs=[common_pb2.Tensor(meta=spec_to_meta(s), data=data) for s, data in inputs.items()],
            timeout_s=timeout_s,
        )
        # The server waits up to timeout_s for the result; give the call a little longer.
        deadline = (timeout_s or self.timeout_s) + 5.0
        return result_from_proto(await self._call(self._stub.Infer(request, timeout=deadline)))
