"""The Python SDK: submit apps as sensor type + model + output type, watch their results.

Asynchronous (:class:`SynergyClient`)::

    import asyncio
    from synergy.sdk import AppRequest, SynergyClient

    async def main() -> None:
        async with SynergyClient("127.0.0.1:50051") as client:
            app = await client.submit_app(AppRequest("camera", "simplenet", "display"))
            async for result in client.watch_results([app.app_id], count=5):
                print(result.summary)

    asyncio.run(main())

or synchronous (:class:`Client`: the same methods, each call waits for its answer)::

    from synergy.sdk import AppRequest, Client

    with Client("127.0.0.1:50051") as client:
        app = client.submit_app(AppRequest("camera", "simplenet", "display"))
        for result in client.watch_results([app.app_id], count=5):
            print(result.summary)

The address is ``host:port`` (a host alone gets the coordinator's default port, 50051);
without one, ``$SYNERGY_COORDINATOR`` or ``127.0.0.1:50051``. Mutual TLS: pass
``tls=TlsConfig.load(Path("certs/client-alice"))`` (a directory written by ``synergy ca issue
--role client --name alice``); without it the client speaks plain text, which only a
coordinator started with ``--insecure`` accepts.

Every answer is one of our dataclasses (:class:`~synergy.types.AppInfo`,
:class:`~synergy.types.DeviceInfo`, :class:`~synergy.types.JointPlan`,
:class:`~synergy.reports.Result`, :class:`~synergy.reports.CoordinatorStats`), never a
protobuf message. Failed calls raise the :mod:`synergy.errors` class matching the status code
(e.g. :class:`~synergy.errors.NotFound` for an unknown app id), translated in one place.
Wherever a method takes an app, it takes its id or its name (:meth:`SynergyClient.resolve_app_id`).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from synergy.addresses import coordinator_target
from synergy.defaults import DEFAULT_COORDINATOR
from synergy.errors import InvalidArgument, NotFound
from synergy.hardware.model import TensorSpec
from synergy.reports import CoordinatorStats, Result
from synergy.security.tls import TlsConfig
from synergy.types import AppInfo, AppSpec, DeviceInfo, JointPlan
from synergy.wire.apps_client import AppsTransport
from synergy.wire.tensors import encode_array

__all__ = [
    "DEFAULT_COORDINATOR",
    "AppRequest",
    "Client",
    "SynergyClient",
    "TlsConfig",
    "default_address",
    "find_app",
    "input_tensor",
]

_T = TypeVar("_T")

#: Environment variable naming the coordinator (as for the ``synergy`` command).
COORDINATOR_ENV = "SYNERGY_COORDINATOR"


def default_address() -> str:
    """``$SYNERGY_COORDINATOR``, else :data:`DEFAULT_COORDINATOR`."""
    return os.environ.get(COORDINATOR_ENV) or DEFAULT_COORDINATOR


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


def find_app(apps: Sequence[AppInfo], ref: str) -> AppInfo:
    """The app ``ref`` names among ``apps``: its id, else its name (which must be unique)."""
    for app in apps:
        if app.app_id == ref:
            return app
    named = [a for a in apps if a.spec.name == ref]
    if len(named) == 1:
        return named[0]
    if named:
        ids = ", ".join(a.app_id for a in named)
        raise InvalidArgument(f"app name {ref!r} is ambiguous: apps {ids} are all named so; give one of these ids")
    known = ", ".join(f"{a.app_id} ({a.spec.name})" if a.spec.name != a.app_id else a.app_id for a in apps)
    raise NotFound(f"no app has the id or name {ref!r}; known: {known or 'none'}")


def input_tensor(app: AppInfo, array: npt.ArrayLike) -> dict[TensorSpec, npt.ArrayLike]:
    """``array`` as the one input of ``app``'s model (a missing batch dimension of 1 added);
    a wrong shape or values the input's type cannot hold are refused naming what it takes."""
    if not app.inputs:
        raise InvalidArgument(f"app {app.app_id}: the coordinator did not say what its model takes")
    if len(app.inputs) != 1:
        takes = ", ".join(f"{s.name} {s.dtype}{list(s.shape)}" for s in app.inputs)
        raise InvalidArgument(f"app {app.app_id} takes {len(app.inputs)} inputs ({takes}): pass a mapping")
    spec = app.inputs[0]
    values = np.asarray(array)
    if values.shape == spec.shape[1:] and spec.shape[:1] == (1,):
        values = values.reshape(spec.shape)
    takes = f"{spec.dtype}{list(spec.shape)} (or {list(spec.shape[1:])})"
    if values.shape != spec.shape:
        raise InvalidArgument(
            f"app {app.app_id} ({app.spec.model}) takes one tensor of shape {takes}; "
            f"got {values.dtype}{list(values.shape)}"
        )
    try:
        encode_array(values, spec)
    except InvalidArgument as exc:
        raise InvalidArgument(f"app {app.app_id} ({app.spec.model}) takes {takes}: {exc}") from exc
    return {spec: values}


class SynergyClient:
    """Async client of the coordinator's Apps API."""

    def __init__(self, address: str | None = None, *, timeout_s: float = 60.0, tls: TlsConfig | None = None) -> None:
        self.address = coordinator_target(address or default_address())
        self.timeout_s = timeout_s
        self.tls = tls
        self._transport = AppsTransport(self.address, timeout_s, tls=tls)

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

    async def resolve_app_id(self, ref: str) -> str:
        """The id of the app ``ref`` names: an id as it is, else the id of the one app of that
        name (NotFound for neither; InvalidArgument, listing the ids, for a shared name)."""
        return find_app(await self.list_apps(), ref).app_id

    async def remove_app(self, app: str) -> str:
        """Remove the app (its id or name); returns its id."""
        app_id = await self.resolve_app_id(app)
        await self._transport.remove(app_id)
        return app_id

    async def list_apps(self) -> list[AppInfo]:
        return await self._transport.list_apps()

    async def list_devices(self) -> list[DeviceInfo]:
        return await self._transport.list_devices()

    async def forget_device(self, device_id: str) -> None:
        """Drop an offline device from the space (FailedPrecondition for one online; admins only)."""
        await self._transport.forget_device(device_id)

    async def get_plan(self) -> JointPlan:
        return await self._transport.plan()

    async def stats(self) -> CoordinatorStats:
        return await self._transport.stats()

    async def watch_results(self, apps: Sequence[str] = (), count: int = 0) -> AsyncIterator[Result]:
        """Results (and drops) of ``apps`` (ids or names; all apps when none), as delivered;
        ``count`` > 0 stops after that many."""
        ids = [await self.resolve_app_id(a) for a in apps] if apps else []
        seen = 0
        async for result in self._transport.watch(ids):
            yield result
            seen += 1
            if count and seen >= count:
                return

    async def infer(
        self, app: str, inputs: Mapping[TensorSpec, npt.ArrayLike] | npt.ArrayLike, timeout_s: float = 0.0
    ) -> Result:
        """Feed one input to a client-fed app (source type "client") and wait for its result.

        ``inputs``: a mapping from each input's spec to its array, or the array of a model
        with one input (shape and type checked against what the model takes)."""
        if isinstance(inputs, Mapping):
            app_id = await self.resolve_app_id(app)
            tensors: Mapping[TensorSpec, npt.ArrayLike] = inputs
        else:
            info = find_app(await self.list_apps(), app)
            app_id, tensors = info.app_id, input_tensor(info, inputs)
        encoded = {spec: encode_array(array, spec) for spec, array in tensors.items()}
        return await self._transport.infer(app_id, encoded, timeout_s)


class Client:
    """The synchronous SDK: :class:`SynergyClient`'s methods, each waiting for its answer.

    ``with Client(address, tls=...) as client: client.submit_app(...)``. The asynchronous
    client runs on an event loop in a thread of this object's own (started here, stopped by
    :meth:`close`), so it works in scripts, notebooks and threads alike.
    """

    def __init__(self, address: str | None = None, *, timeout_s: float = 60.0, tls: TlsConfig | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="synergy-sdk", daemon=True)
        self._thread.start()
        self._closed = False

        async def make() -> SynergyClient:  # the channel belongs to the loop it is made on
            return SynergyClient(address, timeout_s=timeout_s, tls=tls)

        try:
            self._client = self._run(make())
        except BaseException:
            self._stop_loop()
            raise
        self.address = self._client.address

    def _run(self, call: Coroutine[Any, Any, _T]) -> _T:
        if self._closed:
            call.close()
            raise InvalidArgument("this Client is closed")
        return asyncio.run_coroutine_threadsafe(call, self._loop).result()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel and stop the loop's thread. Idempotent."""
        if self._closed:
            return
        try:
            self._run(self._client.close())
        finally:
            self._closed = True
            self._stop_loop()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        if not self._thread.is_alive():
            self._loop.close()

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        self._run(self._client.wait_ready(timeout_s))

    def submit_app(self, request: AppRequest) -> AppInfo:
        return self._run(self._client.submit_app(request))

    def resolve_app_id(self, ref: str) -> str:
        return self._run(self._client.resolve_app_id(ref))

    def remove_app(self, app: str) -> str:
        return self._run(self._client.remove_app(app))

    def list_apps(self) -> list[AppInfo]:
        return self._run(self._client.list_apps())

    def list_devices(self) -> list[DeviceInfo]:
        return self._run(self._client.list_devices())

    def forget_device(self, device_id: str) -> None:
        self._run(self._client.forget_device(device_id))

    def get_plan(self) -> JointPlan:
        return self._run(self._client.get_plan())

    def stats(self) -> CoordinatorStats:
        return self._run(self._client.stats())

    def infer(
        self, app: str, inputs: Mapping[TensorSpec, npt.ArrayLike] | npt.ArrayLike, timeout_s: float = 0.0
    ) -> Result:
        return self._run(self._client.infer(app, inputs, timeout_s))

    def watch_results(self, apps: Sequence[str] = (), count: int = 0) -> Iterator[Result]:
        """As :meth:`SynergyClient.watch_results`; leaving the loop early ends the stream."""
        stream = self._client.watch_results(apps, count)
        assert isinstance(stream, AsyncGenerator)
        try:
            while True:
                try:
                    yield self._run(_next(stream))
                except StopAsyncIteration:
                    return
        finally:
            if not self._closed:
                self._run(stream.aclose())


async def _next(stream: AsyncIterator[_T]) -> _T:
    return await anext(stream)
