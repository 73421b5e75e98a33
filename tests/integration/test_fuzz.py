"""Hostile input against a real coordinator and a real agent: every RPC of both daemons gets
random bytes and structurally valid messages with extreme values.

Asserted: no call ever ends UNKNOWN or INTERNAL; every INVALID_ARGUMENT names a field (a field
of the request, or the request type / method for undecodable bytes) in under 1 KB; both
daemons still answer Health.Check, and the coordinator a normal ListApps, afterwards; the
coordinator's RSS comes back within 50 MB of its baseline. Bounded: a fixed seed, a capped
number of requests, a time budget. The status codes per RPC are printed (``pytest -s``),
logged, and written to ``fuzz-status-codes.txt`` in the cluster's log directory.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from synergy.cluster import LocalCluster
from synergy.devices import preset_device
from synergy.hardware.model import TensorSpec
from synergy.sdk import AppRequest
from synergy.types import AppSpec
from synergy.v1 import agent_pb2, agent_pb2_grpc, apps_pb2, common_pb2, registry_pb2
from synergy.wire.convert import app_spec_to_proto, device_to_proto
from synergy.wire.server import channel_options
from synergy.wire.tensors import spec_to_meta
from tests.integration.conftest import GLASSES
from tests.support import eventually

pytestmark = pytest.mark.integration

log = logging.getLogger(__name__)

SEED = 20240607
#: Random-bytes requests per RPC: small ones, a few medium ones, and (for the coordinator's
#: RPCs and the agent's Deploy) one of 50-60 MB, the size that used to stay in RSS for good.
SMALL_RANDOM = 30
MEDIUM_RANDOM = 3
#: Extreme-value messages per RPC at most (the generator yields more for big records).
MAX_VARIANTS = 400
#: Time budget for sending (the checks after it take a few seconds more).
BUDGET_S = 60.0
#: Deadline of one call; a stream still open after STREAM_WAIT_S counts as "STREAMING".
CALL_TIMEOUT_S = 3.0
STREAM_WAIT_S = 0.3
#: RSS may stay this much above its baseline after the run.
RSS_SLACK_MB = 50.0
#: What an INVALID_ARGUMENT's details may be long at most.
MAX_DETAILS_BYTES = 1024

MB = 1024 * 1024
LONG = "x" * MB

INPUT = TensorSpec("input", (1, 1, 28, 28), "int8")
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


class Shape:
    UNARY = "unary"
    SERVER_STREAM = "server_stream"
    BIDI = "bidi"


@dataclass
class Rpc:
    daemon: str  # "coordinator" or "agent"
    method: str
    request: type[Message]
    shape: str
    #: Structurally valid base requests the extreme values are planted into.
    bases: list[Message]
    huge_random: bool = False


# --- extreme values, planted into every field of a base request --------------------------------

_DOUBLES = [math.nan, math.inf, -math.inf, 0.0, -1.0, 1e308]
_INTS = {
    FieldDescriptor.CPPTYPE_INT32: [-1, 0, 2**31 - 1, -(2**31)],
    FieldDescriptor.CPPTYPE_INT64: [-1, 0, 2**63 - 1, -(2**63)],
    FieldDescriptor.CPPTYPE_UINT32: [0, 2**32 - 1],
    FieldDescriptor.CPPTYPE_UINT64: [0, 2**63 - 1, 2**64 - 1],
}
_STRINGS = ["", LONG, "\x00\x01\n\x7f", "é" * 100, "a/b+#", " "]
_BYTES = [b"", b"\xff" * MB]
_REPEATS = 100_000


def _extremes(field: FieldDescriptor) -> list[Any]:
    cpp = field.cpp_type
    if cpp in (FieldDescriptor.CPPTYPE_DOUBLE, FieldDescriptor.CPPTYPE_FLOAT):
        return _DOUBLES
    if cpp in _INTS:
        return _INTS[cpp]
    if cpp == FieldDescriptor.CPPTYPE_BOOL:
        return [True, False]
    if cpp == FieldDescriptor.CPPTYPE_ENUM:
        return [0, 99, -1]
    if cpp == FieldDescriptor.CPPTYPE_STRING:
        return _BYTES if field.type == FieldDescriptor.TYPE_BYTES else _STRINGS
    return []


Path_ = tuple[tuple[str, int | None], ...]


def _walk(message: Message, path: Path_ = (), depth: int = 0) -> Iterator[tuple[Path_, Any]]:
    """(path, field) of every field of ``message`` to depth 5; into the first element of lists."""
    if depth > 5:
        return
    for field in message.DESCRIPTOR.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            continue
        repeated = field.is_repeated
        yield (*path, (field.name, None)), field
        if field.message_type is None:
            if repeated and len(getattr(message, field.name)):
                yield (*path, (field.name, 0)), field
            continue
        if repeated:
            items = getattr(message, field.name)
            if len(items):
                yield from _walk(items[0], (*path, (field.name, 0)), depth + 1)
        else:
            yield from _walk(getattr(message, field.name), (*path, (field.name, None)), depth + 1)


def _navigate(message: Message, path: Path_) -> Any:
    target: Any = message
    for name, index in path:
        target = getattr(target, name)
        if index is not None:
            target = target[index]
    return target


def _planted(base: Message, path: Path_, field: FieldDescriptor, value: Any) -> Message:
    message = type(base)()
    message.CopyFrom(base)
    parent = _navigate(message, path[:-1])
    name, index = path[-1]
    repeated = field.is_repeated
    if index is not None:
        getattr(parent, name)[index] = value
    elif repeated:
        items = getattr(parent, name)
        del items[:]
        if field.message_type is None:
            items.extend([value] * _REPEATS)
        else:
            for _ in range(_REPEATS):
                items.add()
    else:
        setattr(parent, name, value)
    return message


def _small_extremes(field: FieldDescriptor) -> list[Any]:
    """Values a 100,000-entry list is filled with: small ones (a list of 1 MB strings is not)."""
    if field.cpp_type == FieldDescriptor.CPPTYPE_STRING:
        return [b""] if field.type == FieldDescriptor.TYPE_BYTES else ["", "\x00\x01\n\x7f"]
    return _extremes(field)[:2]


def _reshaped(base: Message, path: Path_) -> Message:
    message = type(base)()
    message.CopyFrom(base)
    _navigate(message, path[:-1]).shape[:] = [2**31, 2**31]
    return message


Variant = tuple[str, Callable[[], Message]]


def extreme_variants(base: Message) -> list[Variant]:
    """(description, builder) for every extreme value of every field of ``base``; built lazily."""
    out: list[Variant] = []
    for path, field in _walk(base):
        where = ".".join(n if i is None else f"{n}[{i}]" for n, i in path)
        if field.is_repeated and path[-1][1] is None:
            if field.message_type is not None:
                out.append((f"{where} x{_REPEATS}", partial(_planted, base, path, field, None)))
            else:
                for value in _small_extremes(field):
                    out.append((f"{where} x{_REPEATS} of {value!r:.20}", partial(_planted, base, path, field, value)))
            if field.name == "shape":
                out.append((f"{where} = [2**31, 2**31]", partial(_reshaped, base, path)))
            continue
        if field.message_type is not None:
            continue
        for value in _extremes(field):
            out.append((f"{where} = {value!r:.20}", partial(_planted, base, path, field, value)))
    return out


# --- the RPCs and their bases -------------------------------------------------------------------


def tensor(spec: TensorSpec = INPUT) -> common_pb2.Tensor:
    return common_pb2.Tensor(meta=spec_to_meta(spec), data=bytes(spec.nbytes))


def fuzz_device() -> common_pb2.DeviceCapabilities:
    device = device_to_proto(preset_device("ring", "fuzz-device"))
    device.address = "127.0.0.1:1"  # nobody listens there: deployments to it fail
    return device


def fuzz_telemetry() -> common_pb2.DeviceTelemetry:
    timing = common_pb2.StageTiming(app_id="a", epoch=1, predicted_s=0.1, measured_s=0.1, samples=3)
    return common_pb2.DeviceTelemetry(frames_in=1, accelerator_busy_s=0.5, stage_timings=[timing])


def fuzz_result() -> common_pb2.Result:
    out = TensorSpec("out", (1, 10), "int8")
    return common_pb2.Result(
        app_id="app-nope", epoch=1, seq=1, capture_time_unix=1.0, done_time_unix=2.0, tensors=[tensor(out)],
        device_id="fuzz-device", output_type="display", summary="class 1",
    )  # fmt: skip


def fuzz_assignment() -> agent_pb2.Assignment:
    return agent_pb2.Assignment(
        app_id="fuzz-app", segment=0, sensor_type="camera", rate_hz=1.0, inputs=[spec_to_meta(INPUT)],
        output_type="display", model="convnet5",
    )  # fmt: skip


#: The segment the Frames fuzz streams into: deployed on the agent before the fuzz, fed by
#: ``agent:fuzz-upstream`` (a stream from anyone else is refused before a chunk is read).
FRAMES_TARGET = ("fuzz-app", 10**9 + 5, 1)
FRAMES_UPSTREAM = "fuzz-upstream"
FRAMES_METADATA = (
    ("synergy-app", FRAMES_TARGET[0]),
    ("synergy-epoch", str(FRAMES_TARGET[1])),
    ("synergy-segment", str(FRAMES_TARGET[2])),
)


def frames_target_assignment() -> agent_pb2.Assignment:
    """A segment that takes INPUT from the fuzz's upstream and delivers it to the display."""
    return agent_pb2.Assignment(
        app_id=FRAMES_TARGET[0], segment=FRAMES_TARGET[2], inputs=[spec_to_meta(INPUT)], output_type="display",
        model="fuzz", upstream_device_id=FRAMES_UPSTREAM,
    )  # fmt: skip


def fuzz_chunks() -> list[Message]:
    app_id, epoch, segment = FRAMES_TARGET
    header = agent_pb2.FrameHeader(
        app_id=app_id, epoch=epoch, segment=segment, seq=1, capture_time_unix=1.0, tensors=[spec_to_meta(INPUT)],
        total_bytes=INPUT.nbytes, sender="fuzz-device",
    )  # fmt: skip
    return [agent_pb2.FrameChunk(header=header)]


def rpcs(client_app: str) -> list[Rpc]:
    spec = app_spec_to_proto(AppSpec("", "fuzz", "convnet5", "client", "display"))
    health = [
        ("Check", health_pb2.HealthCheckRequest, Shape.UNARY, [health_pb2.HealthCheckRequest(service="")]),
        ("Watch", health_pb2.HealthCheckRequest, Shape.SERVER_STREAM, [health_pb2.HealthCheckRequest(service="")]),
        ("List", health_pb2.HealthListRequest, Shape.UNARY, []),
    ]
    reflect = reflection_pb2.ServerReflectionRequest
    out: list[Rpc] = []
    for daemon in ("coordinator", "agent"):
        out += [Rpc(daemon, f"/grpc.health.v1.Health/{m}", t, s, b) for m, t, s, b in health]
        out.append(
            Rpc(daemon, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", reflect, Shape.BIDI, [])
        )
    registry, apps, agent = "/synergy.v1.RegistryService", "/synergy.v1.AppsService", "/synergy.v1.AgentService"
    out += [
        Rpc("coordinator", f"{registry}/Register", registry_pb2.RegisterRequest, Shape.UNARY,
            [registry_pb2.RegisterRequest(device=fuzz_device(), state=common_pb2.AgentState(
                active_epoch=1, loaded_epochs=[1], segments=[common_pb2.HeldSegment(app_id="a", epoch=1)]))], True),
        Rpc("coordinator", f"{registry}/Heartbeat", registry_pb2.HeartbeatRequest, Shape.UNARY,
            [registry_pb2.HeartbeatRequest(device_id="fuzz-device", lease_id="l", telemetry=fuzz_telemetry())], True),
        Rpc("coordinator", f"{registry}/ReportResult", registry_pb2.ReportResultRequest, Shape.UNARY,
            [registry_pb2.ReportResultRequest(lease_id="nope", result=fuzz_result())], True),
        Rpc("coordinator", f"{registry}/ReportResults", registry_pb2.ReportResultsRequest, Shape.UNARY,
            [registry_pb2.ReportResultsRequest(lease_id="nope", results=[fuzz_result(), fuzz_result()])], True),
        Rpc("coordinator", f"{registry}/Deregister", registry_pb2.DeregisterRequest, Shape.UNARY,
            [registry_pb2.DeregisterRequest(device_id="fuzz-device", lease_id="nope")], True),
        Rpc("coordinator", f"{apps}/SubmitApp", apps_pb2.SubmitAppRequest, Shape.UNARY,
            [apps_pb2.SubmitAppRequest(spec=spec, zoo_name="no-such-model"),
             apps_pb2.SubmitAppRequest(spec=spec, onnx=b"not onnx")], True),
        Rpc("coordinator", f"{apps}/RemoveApp", apps_pb2.RemoveAppRequest, Shape.UNARY,
            [apps_pb2.RemoveAppRequest(app_id="app-nope")], True),
        Rpc("coordinator", f"{apps}/ListApps", apps_pb2.ListAppsRequest, Shape.UNARY, [], True),
        Rpc("coordinator", f"{apps}/GetPlan", apps_pb2.GetPlanRequest, Shape.UNARY, [], True),
        Rpc("coordinator", f"{apps}/ListDevices", apps_pb2.ListDevicesRequest, Shape.UNARY, [], True),
        Rpc("coordinator", f"{apps}/GetStats", apps_pb2.GetStatsRequest, Shape.UNARY, [], True),
        Rpc("coordinator", f"{apps}/WatchResults", apps_pb2.WatchResultsRequest, Shape.SERVER_STREAM,
            [apps_pb2.WatchResultsRequest(app_ids=["app-nope"])], True),
        Rpc("coordinator", f"{apps}/Infer", apps_pb2.InferRequest, Shape.UNARY,
            [apps_pb2.InferRequest(app_id=client_app, inputs=[tensor()], timeout_s=2.0)], True),
        Rpc("agent", f"{agent}/Deploy", agent_pb2.DeployRequest, Shape.UNARY,
            [agent_pb2.DeployRequest(epoch=10**9, assignments=[fuzz_assignment()])], True),
        Rpc("agent", f"{agent}/Activate", agent_pb2.ActivateRequest, Shape.UNARY,
            [agent_pb2.ActivateRequest(epoch=10**9 + 1)]),
        Rpc("agent", f"{agent}/Undeploy", agent_pb2.UndeployRequest, Shape.UNARY,
            [agent_pb2.UndeployRequest(epoch=10**9 + 2)]),
        Rpc("agent", f"{agent}/Frames", agent_pb2.FrameChunk, Shape.BIDI, fuzz_chunks()),
        Rpc("agent", f"{agent}/Inject", agent_pb2.InjectRequest, Shape.UNARY,
            [agent_pb2.InjectRequest(app_id="fuzz-app", seq=1, inputs=[tensor()])]),
        Rpc("agent", f"{agent}/Status", agent_pb2.StatusRequest, Shape.UNARY, []),
    ]  # fmt: skip
    return out


# --- sending ---------------------------------------------------------------------------------


def _field_names(descriptor: Any, seen: set[str] | None = None) -> set[str]:
    seen = set() if seen is None else seen
    if descriptor.full_name in seen:
        return set()
    seen.add(descriptor.full_name)
    names = {descriptor.full_name}
    for field in descriptor.fields:
        names.add(field.name)
        if field.message_type is not None:
            names |= _field_names(field.message_type, seen)
    return names


@dataclass
class Outcome:
    code: str
    details: str


async def send(channel: grpc.aio.Channel, rpc: Rpc, payload: bytes | list[bytes]) -> Outcome:
    """One call with raw bytes (a list of messages for a client stream); never raises."""
    try:
        if rpc.shape == Shape.UNARY:
            unary = channel.unary_unary(rpc.method, request_serializer=None, response_deserializer=None)
            await unary(payload, timeout=CALL_TIMEOUT_S)
            return Outcome("OK", "")
        if rpc.shape == Shape.SERVER_STREAM:
            call = channel.unary_stream(rpc.method, request_serializer=None, response_deserializer=None)(
                payload, timeout=CALL_TIMEOUT_S
            )
        else:
            messages = payload if isinstance(payload, list) else [payload]
            frames = rpc.method.endswith("/Frames")
            call = channel.stream_stream(rpc.method, request_serializer=None, response_deserializer=None)(
                timeout=CALL_TIMEOUT_S, metadata=FRAMES_METADATA if frames else None
            )
            if frames:
                # As a real sender does: wait until the receiver accepted the stream, so that a
                # refusal is read as the receiver's status, not lost to a failed write.
                await call.initial_metadata()
                if call.done():
                    return Outcome((await call.code()).name, await call.details() or "")
            for written, item in enumerate(messages):
                try:
                    await call.write(item)
                except (grpc.aio.AioRpcError, asyncio.InvalidStateError):
                    # The server ended the call before reading this message. grpcio's asyncio
                    # client then reports "INTERNAL: Internal error from Core" instead of the
                    # server's status (grpc/grpc#36066): ask again without the late message.
                    if written and await call.code() == grpc.StatusCode.INTERNAL:
                        return await send(channel, rpc, messages[:written])
                    break
            else:
                await call.done_writing()
        try:
            while await asyncio.wait_for(call.read(), STREAM_WAIT_S) is not grpc.aio.EOF:
                pass
        except TimeoutError:
            call.cancel()
            return Outcome("STREAMING", "")
        code = await call.code()
        return Outcome(code.name, await call.details() or "")
    except grpc.aio.AioRpcError as exc:
        return Outcome(exc.code().name, exc.details() or "")


def caller(rpc: Rpc) -> str:
    """Which of the test's channels (identities) sends ``rpc``: RegistryService and Frames their own."""
    if rpc.method.startswith("/synergy.v1.RegistryService/"):
        return "registry"
    return "frames" if rpc.method.endswith("/Frames") else rpc.daemon


def label(rpc: Rpc) -> str:
    """ "coordinator Health/Check": the daemon, the service without its package, the method."""
    service, method = rpc.method.lstrip("/").split("/")
    return f"{rpc.daemon} {service.rsplit('.', 1)[1]}/{method}"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def table(counts: dict[str, collections.Counter[str]]) -> str:
    codes = sorted({code for counter in counts.values() for code in counter})
    width = max(len(m) for m in counts)
    lines = [f"{'rpc':<{width}}  " + "  ".join(f"{c:>16}" for c in codes) + "  total"]
    for method, counter in counts.items():
        cells = "  ".join(f"{counter.get(c, 0):>16}" for c in codes)
        lines.append(f"{method:<{width}}  {cells}  {sum(counter.values()):>5}")
    totals = collections.Counter[str]()
    for counter in counts.values():
        totals.update(counter)
    lines.append(f"{'all':<{width}}  " + "  ".join(f"{totals[c]:>16}" for c in codes) + f"  {sum(totals.values()):>5}")
    return "\n".join(lines)


async def test_fuzz_every_rpc_of_both_daemons(log_dir: Path) -> None:
    rng = random.Random(SEED)
    async with LocalCluster((GLASSES,), log_dir=log_dir) as cluster:
        await cluster.wait_for_devices(1)
        async with cluster.client() as client:
            app = await client.submit_app(AppRequest("client", "convnet5", "display"))
        assert cluster.coordinator is not None
        coordinator_pid = cluster.coordinator.process.pid
        options = [*channel_options(), ("grpc.max_send_message_length", 100 * MB)]
        # Each daemon as a caller its servers authorize, so the fuzz reaches the servicers:
        # AppsService as the admin, AgentService as the coordinator; RegistryService as the
        # agent of the fuzz device (calls naming another device answer PERMISSION_DENIED).
        channels = {
            "coordinator": cluster.channel(cluster.address, options=options),
            "agent": cluster.channel(
                cluster.agents["glasses"].address, role="coordinator", name="coordinator", options=options
            ),
            "registry": cluster.channel(cluster.address, role="agent", name="fuzz-device", options=options),
            "frames": cluster.channel(
                cluster.agents["glasses"].address, role="agent", name=FRAMES_UPSTREAM, options=options
            ),
        }
        await agent_pb2_grpc.AgentServiceStub(channels["agent"]).Deploy(
            agent_pb2.DeployRequest(epoch=FRAMES_TARGET[1], assignments=[frames_target_assignment()]), timeout=30
        )
        try:
            all_rpcs = rpcs(app.app_id)
            # Warm up every RPC once, then measure the coordinator's baseline.
            for rpc in all_rpcs:
                await send(channels[caller(rpc)], rpc, b"")
            await asyncio.sleep(1.0)
            baseline = rss_mb(coordinator_pid)

            counts = {label(rpc): collections.Counter[str]() for rpc in all_rpcs}
            examples: dict[tuple[str, str], str] = {}
            bad: list[str] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + BUDGET_S
            peak = baseline

            async def record(rpc: Rpc, what: str, payload: bytes | list[bytes]) -> None:
                outcome = await send(channels[caller(rpc)], rpc, payload)
                counts[label(rpc)][outcome.code] += 1
                examples.setdefault((label(rpc), outcome.code), f"[{what:.60}] {outcome.details[:200]}")
                where = f"{rpc.daemon} {rpc.method} [{what}]"
                if outcome.code in ("UNKNOWN", "INTERNAL"):
                    bad.append(f"{where}: {outcome.code} {outcome.details[:300]}")
                elif outcome.code == "INVALID_ARGUMENT":
                    names = _field_names(rpc.request.DESCRIPTOR) | {rpc.method}
                    if len(outcome.details.encode()) >= MAX_DETAILS_BYTES:
                        bad.append(f"{where}: INVALID_ARGUMENT details of {len(outcome.details.encode())} bytes")
                    elif not any(name in outcome.details for name in names):
                        bad.append(f"{where}: INVALID_ARGUMENT names no field: {outcome.details[:300]}")

            for rpc in all_rpcs:
                sizes = [0, 1, *(rng.randint(2, 4096) for _ in range(SMALL_RANDOM - 2))]
                sizes += [rng.randint(64 * 1024, MB) for _ in range(MEDIUM_RANDOM)]
                if rpc.huge_random:
                    sizes.append(rng.randint(50 * MB, 60 * MB))
                for size in sizes:
                    await record(rpc, f"{size} random bytes", rng.randbytes(size))
                    if size > MB:
                        peak = max(peak, rss_mb(coordinator_pid))
                variants = [(d, m) for base in rpc.bases for d, m in extreme_variants(base)]
                rng.shuffle(variants)
                for what, build in variants[:MAX_VARIANTS]:
                    if loop.time() > deadline:
                        break
                    try:
                        payload = build().SerializeToString()
                    except (TypeError, ValueError):  # a value the field's type cannot hold
                        continue
                    if rpc.shape == Shape.BIDI and rpc.method.endswith("/Frames"):
                        data = agent_pb2.FrameChunk(data=bytes(INPUT.nbytes)).SerializeToString()
                        await record(rpc, what, [payload, data])
                    else:
                        await record(rpc, what, payload)

            report = table(counts)
            print(f"\nfuzz status codes per RPC (seed {SEED}):\n{report}")
            log.info("fuzz status codes per RPC (seed %s):\n%s", SEED, report)
            samples = "\n".join(f"{rpc} {code}: {text}" for (rpc, code), text in sorted(examples.items()))
            log.info("fuzz: a first answer per RPC and status code:\n%s", samples)
            (log_dir / "fuzz-status-codes.txt").write_text(f"{report}\n\nfirst answer per RPC and code:\n{samples}\n")
            assert not bad, f"{len(bad)} bad answers:\n" + "\n".join(bad[:40])

            # Both daemons still answer, and the coordinator's memory comes back.
            for name, channel in channels.items():
                answer = await channel.unary_unary(
                    "/grpc.health.v1.Health/Check",
                    request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                    response_deserializer=health_pb2.HealthCheckResponse.FromString,
                )(health_pb2.HealthCheckRequest(), timeout=5)
                assert answer.status == health_pb2.HealthCheckResponse.SERVING, name
            async with cluster.client() as client:
                assert app.app_id in {a.app_id for a in await client.list_apps()}

            def settled() -> float | None:
                now = rss_mb(coordinator_pid)
                return now if now - baseline <= RSS_SLACK_MB else None

            after = await eventually(settled, timeout_s=10, interval_s=0.5, what="coordinator RSS back near baseline")
            memory = f"coordinator RSS: baseline {baseline:.0f} MB, peak {peak:.0f} MB, after {after:.0f} MB"
            print(memory)
            log.info(memory)
            with (log_dir / "fuzz-status-codes.txt").open("a") as out:
                out.write(memory + "\n")
        finally:
            await asyncio.gather(*(channel.close() for channel in channels.values()))
