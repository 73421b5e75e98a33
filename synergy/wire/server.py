"""Building a gRPC server the way every Synergy daemon needs one.

Each server gets the error interceptor, standard health checking (``grpc.health.v1``) and
server reflection, so generic tools (grpcurl, grpc_cli, grpc-health-probe) work against
every daemon without the .proto files.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from synergy.errors import Unavailable
from synergy.wire.status import ErrorInterceptor

__all__ = ["GRPC_OPTIONS", "ServingServer", "announce_listening", "channel_options", "start_server"]

#: Keepalive so that a peer that vanished is noticed on long-lived frame streams; messages up
#: to 64 MiB because SubmitApp and Deploy carry whole ONNX models (frames are chunked far below).
GRPC_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
)


def channel_options() -> list[tuple[str, int]]:
    return list(GRPC_OPTIONS)


class ServingServer:
    """A started server with its bound port and its health servicer."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: health_aio.HealthServicer) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    async def stop(self, grace_s: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)


async def start_server(
    bind: str,
    registrations: Sequence[tuple[Callable[[grpc.aio.Server], None], str]],
) -> ServingServer:
    """Start a server on ``bind`` ("host:port", port 0 = any) with the given services.

    ``registrations`` pairs an ``add_XServicer_to_server``-style callable (already bound to its
    servicer) with the full service name used for health and reflection.
    """
    server = grpc.aio.server(interceptors=[ErrorInterceptor()], options=list(GRPC_OPTIONS))
    health_servicer = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [name for _, name in registrations]
    for register, _ in registrations:
        register(server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        port = server.add_insecure_port(bind)
    except RuntimeError as exc:
        raise Unavailable(f"cannot listen on {bind}: {exc}") from exc
    if port == 0:
        raise Unavailable(f"cannot listen on {bind}: address in use or not available")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return ServingServer(server, port, health_servicer)


def announce_listening(role: str, address: str) -> None:
    """One JSON line on stdout so supervisors (demo, tests) learn the bound port."""
    print(json.dumps({"event": "listening", "role": role, "address": address}), flush=True)
