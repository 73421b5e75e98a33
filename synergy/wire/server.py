"""Building a gRPC server, and the channel options, the way every Synergy daemon needs them.

Each server gets the error interceptor (request size limits, validation, status mapping),
standard health checking (``grpc.health.v1``: Check, Watch and List) and server reflection,
so generic tools (grpcurl, grpc_cli, grpc-health-probe) work against every daemon without the
.proto files.

**One process per address.** gRPC sets SO_REUSEPORT by default, which lets a second
coordinator (or agent) bind the port of a running one and silently take a share of its new
connections. Servers here turn it off; a taken address raises :class:`AddressInUse` naming it.

**Keepalive that matches.** A gRPC server answers a client that pings more often than it
allows with a ``too_many_pings`` GOAWAY, which kills every stream on the connection. So the
numbers below are chosen together:

- clients (SDK, agents to the coordinator and to peers, the coordinator to agents) ping after
  ``CLIENT_KEEPALIVE_TIME_MS`` (20 s) without traffic, also on idle connections, and give up
  on a connection whose ping is not answered within 10 s: a vanished peer is noticed in
  about 30 s, and an idle result stream or peer frame stream stays open for hours;
- servers accept a ping without data every ``SERVER_MIN_PING_INTERVAL_MS`` (10 s: half the
  client period, so jitter never makes a ping "too early") and never count strikes;
- servers ping their clients after ``SERVER_KEEPALIVE_TIME_MS`` (60 s) without traffic to
  notice clients that vanished without closing (a watcher whose host died);
- clients reconnect quickly: gRPC's reconnect backoff starts at 200 ms and is capped at 1 s,
  so an agent reaches a restarted coordinator within about a second of it listening (gRPC's
  default starts at 1 s and grows to 120 s).

**Mutual TLS.** Given a :class:`~synergy.security.tls.TlsConfig`, a server listens with
:func:`~synergy.security.tls.server_credentials` (a client certificate from the same CA is
required) and refuses revoked certificates before any method runs
(:class:`~synergy.security.tls.PeerCheck`). Without one it listens in plain text.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
from collections.abc import Callable, Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio
from grpc_reflection.v1alpha import reflection

from synergy import limits
from synergy.errors import AddressInUse, Unavailable
from synergy.security.tls import PeerCheck, TlsConfig, server_credentials
from synergy.wire.status import ErrorInterceptor

__all__ = [
    "GRPC_OPTIONS",
    "HealthServicer",
    "ServingServer",
    "announce_listening",
    "channel_options",
    "server_options",
    "start_server",
]

#: Clients ping after this long without traffic on a connection (also without calls).
CLIENT_KEEPALIVE_TIME_MS = 20_000
#: ... and drop the connection when a ping is not answered within this long.
CLIENT_KEEPALIVE_TIMEOUT_MS = 10_000
#: gRPC's reconnect backoff: first retry, shortest connect attempt, longest wait between tries.
INITIAL_RECONNECT_BACKOFF_MS = 200
MIN_RECONNECT_BACKOFF_MS = 200
MAX_RECONNECT_BACKOFF_MS = 1_000
#: Servers accept client pings without data this often (must stay below the client period).
SERVER_MIN_PING_INTERVAL_MS = 10_000
#: Servers ping a client after this long without traffic, and drop it without an answer.
SERVER_KEEPALIVE_TIME_MS = 60_000
SERVER_KEEPALIVE_TIMEOUT_MS = 20_000

#: Channel options of every Synergy client (see the module docstring). Messages up to 64 MiB
#: because SubmitApp and Deploy carry whole ONNX models (frames are chunked far below).
GRPC_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.keepalive_time_ms", CLIENT_KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", CLIENT_KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    # Keep pinging an idle connection (gRPC's default stops after 2 pings without data).
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", INITIAL_RECONNECT_BACKOFF_MS),
    ("grpc.min_reconnect_backoff_ms", MIN_RECONNECT_BACKOFF_MS),
    ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
    ("grpc.max_receive_message_length", limits.MAX_RECEIVE_MESSAGE_BYTES),
    ("grpc.max_send_message_length", limits.MAX_RECEIVE_MESSAGE_BYTES),
)

#: Server options of every Synergy daemon (see the module docstring). The receive limit is the
#: largest per-method limit; the interceptor holds each method to its own.
SERVER_OPTIONS: Sequence[tuple[str, int]] = (
    ("grpc.so_reuseport", 0),
    ("grpc.keepalive_time_ms", SERVER_KEEPALIVE_TIME_MS),
    ("grpc.keepalive_timeout_ms", SERVER_KEEPALIVE_TIMEOUT_MS),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", SERVER_MIN_PING_INTERVAL_MS),
    ("grpc.http2.max_ping_strikes", 0),
    ("grpc.max_receive_message_length", limits.MAX_RECEIVE_MESSAGE_BYTES),
    ("grpc.max_send_message_length", limits.MAX_RECEIVE_MESSAGE_BYTES),
)


def channel_options() -> list[tuple[str, int]]:
    """Options for every client channel to a Synergy daemon."""
    return list(GRPC_OPTIONS)


def server_options() -> list[tuple[str, int]]:
    """Options for every Synergy gRPC server."""
    return list(SERVER_OPTIONS)


class HealthServicer(health_aio.HealthServicer):  # type: ignore[misc]
    """grpcio-health-checking's asyncio servicer, plus the List method it lacks (UNIMPLEMENTED)."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        statuses = {
            service: health_pb2.HealthCheckResponse(status=status)
            for service, status in dict(self._server_status).items()
        }
        return health_pb2.HealthListResponse(statuses=statuses)


class ServingServer:
    """A started server with its bound port and its health servicer."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: HealthServicer) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer

    async def not_serving(self) -> None:
        """Report every service NOT_SERVING from now on (Check, Watch, List): the daemon is
        going down unhealthy. Later ``health.set`` calls are ignored."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace_s: float) -> None:
        await self.not_serving()
        await self.server.stop(grace_s)


#: The daemon a service name belongs to, for "is another coordinator running?".
_ROLE_OF_SERVICE = {
    "synergy.v1.RegistryService": "coordinator",
    "synergy.v1.AppsService": "coordinator",
    "synergy.v1.AgentService": "agent",
}


def _bind_error(bind: str) -> OSError | None:
    """Why ``bind`` cannot be bound, found by binding a plain socket (gRPC's error says nothing)."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]") or "0.0.0.0"
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (OSError, ValueError) as exc:
        return exc if isinstance(exc, OSError) else OSError(errno.EINVAL, str(exc))
    for family, kind, proto, _, sockaddr in infos:
        with contextlib.closing(socket.socket(family, kind, proto)) as probe:
            # The same option gRPC sets, so a port in TIME_WAIT is not mistaken for one in use.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                return exc
    return None


def _listen_error(bind: str, role: str, detail: str) -> Unavailable:
    cause = _bind_error(bind)
    if cause is not None and cause.errno == errno.EADDRINUSE:
        return AddressInUse(f"address {bind} is in use: is another {role} running?")
    reason = cause.strerror if cause is not None and cause.strerror else detail
    return Unavailable(f"cannot listen on {bind}: {reason}")


async def start_server(
    bind: str,
    registrations: Sequence[tuple[Callable[[grpc.aio.Server], None], str]],
    *,
    role: str = "",
    tls: TlsConfig | None = None,
) -> ServingServer:
    """Start a server on ``bind`` ("host:port", port 0 = any) with the given services.

    ``registrations`` pairs an ``add_XServicer_to_server``-style callable (already bound to its
    servicer) with the full service name used for health and reflection. ``role`` names the
    daemon in errors (default: guessed from the services). Raises :class:`AddressInUse` when
    another process holds the address, :class:`~synergy.errors.Unavailable` when it cannot be
    bound for another reason. With ``tls`` the port is mutual TLS (see the module docstring).
    """
    names = [name for _, name in registrations]
    role = role or next((_ROLE_OF_SERVICE[n] for n in names if n in _ROLE_OF_SERVICE), "Synergy daemon")
    interceptors: list[grpc.aio.ServerInterceptor] = [ErrorInterceptor()]
    if tls is not None:
        # Outermost: a revoked peer is refused before its request is even looked at.
        interceptors.insert(0, PeerCheck(tls))
    server = grpc.aio.server(interceptors=interceptors, options=server_options())
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for register, _ in registrations:
        register(server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    try:
        port = server.add_secure_port(bind, server_credentials(tls)) if tls else server.add_insecure_port(bind)
    except RuntimeError as exc:
        raise _listen_error(bind, role, str(exc)) from exc
    if port == 0:
        raise _listen_error(bind, role, "address in use or not available")
    await server.start()
    for name in ["", *names]:
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return ServingServer(server, port, health_servicer)


def announce_listening(role: str, address: str) -> None:
    """One JSON line on stdout so supervisors (demo, tests) learn the bound port."""
    print(json.dumps({"event": "listening", "role": role, "address": address}), flush=True)
