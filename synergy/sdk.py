"""The Python SDK: submit apps as sensor type + model + output type, watch their results.

    async with SynergyClient("127.0.0.1:50051") as client:
        app = await client.submit_app(AppRequest("camera", "simplenet", "display"))
        async for result in client.watch_results([app.app_id]):
            print(result.summary)

Failed calls raise the :mod:`synergy.errors` class matching the status code (e.g.
:class:`~synergy.errors.NotFound` for an unknown app id), translated in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
import numpy.typing as npt

from synergy.errors import Unavailable
from synergy.hardware.model import TensorSpec
from synergy.types import JointPlan
from synergy.v1 import apps_pb2, apps_pb2_grpc, common_pb2
from synergy.wire.convert import joint_plan_from_proto
from synergy.wire.server import channel_options
from synergy.wire.status import error_from_rpc
from synergy.wire.tensors import array_to_proto

__all__ = ["AppRequest", "SynergyClient", "DEFAULT_COORDINATOR"]

DEFAULT_COORDINATOR = "127.0.0.1:50051"


@dataclass(frozen=True)
class AppRequest:
    """What a client asks for. ``model`` is a zoo name or a path to an ONNX file."""

    source_type: str
    model: str
    target_type: str
    name: str = ""
    source_device: str = ""
    target_device: str = ""
    max_rate_hz: float = 0.0

    def to_proto(self) -> apps_pb2.SubmitAppRequest:
        path = Path(self.model)
        is_file = self.model.endswith(".onnx") or path.is_file()
        spec = common_pb2.AppSpec(
            name=self.name,
            model=path.stem if is_file else self.model,
            source_type=self.source_type,
            target_type=self.target_type,
            source_device=self.source_device,
            target_device=self.target_device,
            max_rate_hz=self.max_rate_hz,
        )
        if is_file:
            return apps_pb2.SubmitAppRequest(spec=spec, onnx=path.read_bytes())
        return apps_pb2.SubmitAppRequest(spec=spec, zoo_name=self.model)


class SynergyClient:
    """Async client of the coordinator's Apps API."""

    def __init__(self, address: str = DEFAULT_COORDINATOR, *, timeout_s: float = 60.0) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self._channel = grpc.aio.insecure_channel(address, options=channel_options())
        self._stub = apps_pb2_grpc.AppsServiceStub(self._channel)

    async def __aenter__(self) -> SynergyClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _unary(self, method: Any, request: Any) -> Any:
        try:
            return await method(request, timeout=self.timeout_s)
        except grpc.aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self._channel.channel_ready(), timeout_s)
        except TimeoutError as exc:
            raise Unavailable(f"coordinator {self.address} not reachable within {timeout_s}s") from exc

    async def submit_app(self, request: AppRequest) -> common_pb2.App:
        return await self._unary(self._stub.SubmitApp, request.to_proto())  # type: ignore[no-any-return]

    async def remove_app(self, app_id: str) -> None:
        await self._unary(self._stub.RemoveApp, apps_pb2.RemoveAppRequest(app_id=app_id))

    async def list_apps(self) -> list[common_pb2.App]:
        answer = await self._unary(self._stub.ListApps, apps_pb2.ListAppsRequest())
        return list(answer.apps)

    async def list_devices(self) -> list[common_pb2.Device]:
        answer = await self._unary(self._stub.ListDevices, apps_pb2.ListDevicesRequest())
        return list(answer.devices)

    async def get_plan(self) -> JointPlan:
        return joint_plan_from_proto(await self._unary(self._stub.GetPlan, apps_pb2.GetPlanRequest()))

    async def get_plan_proto(self) -> common_pb2.JointPlan:
        return await self._unary(self._stub.GetPlan, apps_pb2.GetPlanRequest())  # type: ignore[no-any-return]

    async def stats(self) -> apps_pb2.CoordinatorStats:
        return await self._unary(self._stub.GetStats, apps_pb2.GetStatsRequest())  # type: ignore[no-any-return]

    async def watch_results(self, app_ids: Sequence[str] = ()) -> AsyncIterator[common_pb2.Result]:
        call = self._stub.WatchResults(apps_pb2.WatchResultsRequest(app_ids=list(app_ids)))
        try:
            async for result in call:
                yield result
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.CANCELLED:
                raise error_from_rpc(exc) from exc
        finally:
            call.cancel()

    async def infer(
        self, app_id: str, inputs: Mapping[TensorSpec, npt.ArrayLike], timeout_s: float = 0.0
    ) -> common_pb2.Result:
        """Feed one input to a client-fed app (source type "client") and wait for its result."""
        request = apps_pb2.InferRequest(
            app_id=app_id, inputs=[array_to_proto(a, s) for s, a in inputs.items()], timeout_s=timeout_s
        )
        return await self._unary(self._stub.Infer, request)  # type: ignore[no-any-return]
