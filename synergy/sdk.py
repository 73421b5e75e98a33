"""The Python SDK: submit apps as sensor type + model + output type, watch their results.

    import asyncio
    from synergy.sdk import AppRequest, SynergyClient

    async def main() -> None:
        async with SynergyClient("127.0.0.1:50051") as client:
            app = await client.submit_app(AppRequest("camera", "simplenet", "display"))
            async for result in client.watch_results([app.app_id]):
                print(result.summary)

    asyncio.run(main())

Mutual TLS: pass ``tls=TlsConfig.load(Path("certs/client-alice"))`` (a directory written by
``synergy ca issue --role client --name alice``); without it the client speaks plain text,
which only a coordinator started with ``--insecure`` accepts.

Every answer is one of our dataclasses (:class:`~synergy.types.AppInfo`,
:class:`~synergy.types.DeviceInfo`, :class:`~synergy.types.JointPlan`,
:class:`~synergy.reports.Result`, :class:`~synergy.reports.CoordinatorStats`), never a
protobuf message. Failed calls raise the :mod:`synergy.errors` class matching the status code
(e.g. :class:`~synergy.errors.NotFound` for an unknown app id), translated in one place.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy.typing as npt

from synergy.defaults import DEFAULT_COORDINATOR
from synergy.errors import InvalidArgument
from synergy.hardware.model import TensorSpec
from synergy.reports import CoordinatorStats, Result
from synergy.security.tls import TlsConfig
from synergy.types import AppInfo, AppSpec, DeviceInfo, JointPlan
from synergy.wire.apps_client import AppsTransport
from synergy.wire.tensors import encode_array

__all__ = ["DEFAULT_COORDINATOR", "AppRequest", "SynergyClient", "TlsConfig"]


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
    #: The rate the app needs at least (0: none); the coordinator admits it only when the
    #: plan can give it that, else it waits with the reason.
    min_rate_hz: float = 0.0
    #: Priority in the default objective (the weighted sum of app rates).
    weight: float = 1.0
    #: Process every captured frame (queued) instead of skipping those the pipeline has no
    #: room for (the default: the freshest frames, bounded latency).
    every_frame: bool = False

    def is_file(self) -> bool:
        return self.model.endswith(".onnx") or Path(self.model).is_file()

    def spec(self) -> AppSpec:
        """The spec the coordinator receives (it assigns the id)."""
        return AppSpec(
            app_id="",
            name=self.name,
            model=Path(self.model).stem if self.is_file() else self.model,
            source_type=self.source_type,
            target_type=self.target_type,
            source_device=self.source_device,
            target_device=self.target_device,
            max_rate_hz=self.max_rate_hz,
            min_rate_hz=self.min_rate_hz,
            weight=self.weight,
            every_frame=self.every_frame,
        )


class SynergyClient:
    """Async client of the coordinator's Apps API."""

    def __init__(
        self, address: str = DEFAULT_COORDINATOR, *, timeout_s: float = 60.0, tls: TlsConfig | None = None
    ) -> None:
        self.address = address
        self.timeout_s = timeout_s
        self.tls = tls
        self._transport = AppsTransport(address, timeout_s, tls=tls)

    async def __aenter__(self) -> SynergyClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        await self._transport.wait_ready(timeout_s)

    async def submit_app(self, request: AppRequest) -> AppInfo:
        if request.is_file():
            path = Path(request.model)
            try:
                onnx = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise InvalidArgument(f"model file {path}: {exc.strerror or exc}") from exc
            return await self._transport.submit(request.spec(), onnx=onnx)
        return await self._transport.submit(request.spec(), zoo_name=request.model)

    async def remove_app(self, app_id: str) -> None:
        await self._transport.remove(app_id)

    async def list_apps(self) -> list[AppInfo]:
        return await self._transport.list_apps()

    async def list_devices(self) -> list[DeviceInfo]:
        return await self._transport.list_devices()

    async def get_plan(self) -> JointPlan:
        return await self._transport.plan()

    async def stats(self) -> CoordinatorStats:
        return await self._transport.stats()

    async def watch_results(self, app_ids: Sequence[str] = ()) -> AsyncIterator[Result]:
        async for result in self._transport.watch(app_ids):
            yield result

    async def infer(self, app_id: str, inputs: Mapping[TensorSpec, npt.ArrayLike], timeout_s: float = 0.0) -> Result:
        """Feed one input to a client-fed app (source type "client") and wait for its result."""
        encoded = {spec: encode_array(array, spec) for spec, array in inputs.items()}
        return await self._transport.infer(app_id, encoded, timeout_s)
