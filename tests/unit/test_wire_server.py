"""The server every daemon runs, on 127.0.0.1 in this process: health (Check, Watch, List),
requests held to their method's size limit, undecodable and invalid requests refused as
INVALID_ARGUMENT before a servicer sees them, errors mapped to status codes, one process per
address, keepalive settings that agree, and memory given back after large refused requests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from functools import partial

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from synergy import limits
from synergy.devices import preset_device
from synergy.errors import AddressInUse, FailedPrecondition, NotFound
from synergy.v1 import agent_pb2, agent_pb2_grpc, apps_pb2, apps_pb2_grpc, common_pb2, registry_pb2, registry_pb2_grpc
from synergy.wire.convert import device_to_proto
from synergy.wire.server import (
    ServingServer,
    channel_options,
    server_options,
    start_server,
)
from synergy.wire.status import error_from_rpc

REGISTRY = "synergy.v1.RegistryService"
APPS = "synergy.v1.AppsService"
AGENT = "synergy.v1.AgentService"


class Registry(registry_pb2_grpc.RegistryServiceServicer):  # type: ignore[misc]
    def __init__(self) -> None:
        self.registered: list[str] = []

    async def Register(
        self, request: registry_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.RegisterResponse:
        self.registered.append(request.device.device_id)
        return registry_pb2.RegisterResponse(lease_id="lease-1")


class Apps(apps_pb2_grpc.AppsServiceServicer):  # type: ignore[misc]
    """ListApps answers; RemoveApp raises a long NotFound, GetStats a bug; SubmitApp is missing."""

    async def ListApps(
        self, request: apps_pb2.ListAppsRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.ListAppsResponse:
        return apps_pb2.ListAppsResponse()

    async def RemoveApp(
        self, request: apps_pb2.RemoveAppRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.RemoveAppResponse:
        raise NotFound(f"unknown app id {request.app_id!r}; known: " + ", ".join(["app-x"] * 5000))

    async def GetStats(
        self, request: apps_pb2.GetStatsRequest, context: grpc.aio.ServicerContext
    ) -> apps_pb2.CoordinatorStats:
        raise RuntimeError("a bug")


class Agent(agent_pb2_grpc.AgentServiceServicer):  # type: ignore[misc]
    async def Deploy(
        self, request: agent_pb2.DeployRequest, context: grpc.aio.ServicerContext
    ) -> agent_pb2.DeployResponse:
        raise FailedPrecondition(f"epoch {request.epoch} is already deployed")

    async def Frames(
        self, request_iterator: AsyncIterator[agent_pb2.FrameChunk], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[agent_pb2.FrameAck]:
        async for chunk in request_iterator:
            if chunk.HasField("header"):
                yield agent_pb2.FrameAck(seq=chunk.header.seq, outcome=agent_pb2.FRAME_OUTCOME_ACCEPTED)


async def serve(registry: Registry | None = None, bind: str = "127.0.0.1:0") -> ServingServer:
    return await start_server(
        bind,
        [
            (partial(registry_pb2_grpc.add_RegistryServiceServicer_to_server, registry or Registry()), REGISTRY),
            (partial(apps_pb2_grpc.add_AppsServiceServicer_to_server, Apps()), APPS),
            (partial(agent_pb2_grpc.add_AgentServiceServicer_to_server, Agent()), AGENT),
        ],
    )


def raw(channel: grpc.aio.Channel, method: str) -> grpc.aio.UnaryUnaryMultiCallable:
    """A call that sends bytes as they are and returns the answer's bytes."""
    return channel.unary_unary(method, request_serializer=None, response_deserializer=None)


async def refusal(call: object, code: grpc.StatusCode = grpc.StatusCode.INVALID_ARGUMENT) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call  # type: ignore[misc]
    assert info.value.code() == code, info.value.details()
    return info.value.details() or ""


async def test_health_check_watch_and_list() -> None:
    server = await serve()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = await health.Check(health_pb2.HealthCheckRequest(service=APPS), timeout=5)
            assert answer.status == health_pb2.HealthCheckResponse.SERVING
            await refusal(
                health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=5), grpc.StatusCode.NOT_FOUND
            )
            listed = await health.List(health_pb2.HealthListRequest(), timeout=5)
            assert set(listed.statuses) == {"", REGISTRY, APPS, AGENT}
            assert {s.status for s in listed.statuses.values()} == {health_pb2.HealthCheckResponse.SERVING}
            watch = health.Watch(health_pb2.HealthCheckRequest(service=AGENT))
            first = await asyncio.wait_for(watch.read(), 5)
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            await server.health.set(AGENT, health_pb2.HealthCheckResponse.NOT_SERVING)
            second = await asyncio.wait_for(watch.read(), 5)
            assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
            watch.cancel()
    finally:
        await server.stop(0)


async def test_not_serving_is_reported_for_good() -> None:
    server = await serve()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            await server.not_serving()
            await server.health.set(APPS, health_pb2.HealthCheckResponse.SERVING)  # ignored now
            listed = await health.List(health_pb2.HealthListRequest(), timeout=5)
            assert {s.status for s in listed.statuses.values()} == {health_pb2.HealthCheckResponse.NOT_SERVING}
    finally:
        await server.stop(0)


async def test_undecodable_and_oversized_requests_are_invalid_argument() -> None:
    server = await serve()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=channel_options()) as channel:
            details = await refusal(raw(channel, f"/{REGISTRY}/Register")(b"\xff\xff\xff\xff", timeout=5))
            assert details.startswith(f"/{REGISTRY}/Register: the request is not a valid synergy.v1.RegisterRequest")
            assert "DecodeError" in details
            # The default limit (64 KiB), a per-method one, and one above gRPC's own limit.
            details = await refusal(raw(channel, f"/{APPS}/ListApps")(bytes(100_000), timeout=5))
            assert details == f"/{APPS}/ListApps: a request of 100000 bytes exceeds this method's limit of 65536"
            big = bytes(limits.message_limit(f"/{REGISTRY}/Register") + 1)
            details = await refusal(raw(channel, f"/{REGISTRY}/Register")(big, timeout=5))
            assert "exceeds this method's limit of 524288" in details
            details = await refusal(raw(channel, "/grpc.health.v1.Health/Check")(bytes(70_000), timeout=5))
            assert "/grpc.health.v1.Health/Check" in details
            await refusal(
                raw(channel, f"/{APPS}/ListApps")(bytes(limits.MAX_RECEIVE_MESSAGE_BYTES + 1), timeout=10),
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            )
            # The server still answers.
            assert await raw(channel, f"/{APPS}/ListApps")(b"", timeout=5) == b""
    finally:
        await server.stop(0)


async def test_invalid_records_never_reach_the_servicer() -> None:
    registry = Registry()
    server = await serve(registry)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            device = device_to_proto(preset_device("ring"))
            device.address = "127.0.0.1:1"
            assert (await stub.Register(registry_pb2.RegisterRequest(device=device), timeout=5)).lease_id == "lease-1"
            device.board.cnn_clock_hz = float("nan")
            details = await refusal(stub.Register(registry_pb2.RegisterRequest(device=device), timeout=5))
            assert details == "device.board.cnn_clock_hz must be a finite number in (0, 1e+10], got nan"
            device.board.cnn_clock_hz = 50e6
            device.device_id = "r" * 100_000
            details = await refusal(stub.Register(registry_pb2.RegisterRequest(device=device), timeout=5))
            assert details.startswith("device.device_id must be at most 128 characters") and len(details) < 200
            assert registry.registered == ["ring"]
    finally:
        await server.stop(0)


async def test_a_refused_message_in_a_stream_ends_it_with_invalid_argument() -> None:
    server = await serve()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = agent_pb2_grpc.AgentServiceStub(channel)
            meta = common_pb2.TensorMeta(name="x", dtype="int8", shape=[1, 4])
            good = agent_pb2.FrameChunk(header=agent_pb2.FrameHeader(app_id="a", seq=1, tensors=[meta], total_bytes=4))
            bad = agent_pb2.FrameChunk(header=agent_pb2.FrameHeader(app_id="a", seq=2, tensors=[meta]))
            bad.header.tensors[0].shape[:] = [2**31, 2**31]

            async def chunks() -> AsyncIterator[agent_pb2.FrameChunk]:
                for chunk in (good, agent_pb2.FrameChunk(data=bytes(4)), bad):
                    yield chunk

            call = stub.Frames(chunks())
            acks = []
            with pytest.raises(grpc.aio.AioRpcError) as info:
                async for ack in call:
                    acks.append(ack.seq)
            assert acks == [1]
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (info.value.details() or "").startswith("chunk.header.tensors[0].shape[0] must be a dimension")
    finally:
        await server.stop(0)


async def test_errors_map_to_status_codes_with_bounded_details() -> None:
    server = await serve()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = apps_pb2_grpc.AppsServiceStub(channel)
            details = await refusal(
                stub.RemoveApp(apps_pb2.RemoveAppRequest(app_id="a1"), timeout=5), grpc.StatusCode.NOT_FOUND
            )
            assert details.startswith("unknown app id 'a1'") and len(details) <= 4100
            details = await refusal(stub.GetStats(apps_pb2.GetStatsRequest(), timeout=5), grpc.StatusCode.INTERNAL)
            assert "RuntimeError: a bug" in details
            details = await refusal(
                stub.SubmitApp(apps_pb2.SubmitAppRequest(spec=common_pb2.AppSpec(source_type="a", target_type="b"))),
                grpc.StatusCode.UNIMPLEMENTED,
            )
            assert details == f"/{APPS}/SubmitApp is not implemented"
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.RemoveApp(apps_pb2.RemoveAppRequest(app_id="a1"), timeout=5)
            assert isinstance(error_from_rpc(info.value), NotFound)
    finally:
        await server.stop(0)


async def test_a_second_server_on_a_taken_address_is_refused() -> None:
    first = await serve()
    try:
        address = f"127.0.0.1:{first.port}"
        with pytest.raises(AddressInUse, match=f"address {address} is in use: is another coordinator running\\?"):
            await serve(bind=address)
        agent_only = [(partial(agent_pb2_grpc.add_AgentServiceServicer_to_server, Agent()), AGENT)]
        with pytest.raises(AddressInUse, match="is another agent running"):
            await start_server(address, agent_only)
    finally:
        await first.stop(0)


def test_keepalive_settings_agree() -> None:
    client, server = dict(channel_options()), dict(server_options())
    assert server["grpc.so_reuseport"] == 0
    # Clients ping no more often than servers accept, and servers never count ping strikes.
    assert client["grpc.keepalive_time_ms"] >= server["grpc.http2.min_recv_ping_interval_without_data_ms"]
    assert server["grpc.http2.max_ping_strikes"] == 0
    assert client["grpc.keepalive_permit_without_calls"] == server["grpc.keepalive_permit_without_calls"] == 1
    assert client["grpc.http2.max_pings_without_data"] == 0
    assert 30_000 <= server["grpc.keepalive_time_ms"] <= 60_000
    # A restarted coordinator is reached within about a second.
    assert client["grpc.initial_reconnect_backoff_ms"] <= 200 and client["grpc.max_reconnect_backoff_ms"] <= 1000
    assert server["grpc.max_receive_message_length"] == limits.MAX_RECEIVE_MESSAGE_BYTES
    assert max(limits.METHOD_MESSAGE_BYTES.values()) <= limits.MAX_RECEIVE_MESSAGE_BYTES
