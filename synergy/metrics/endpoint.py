"""``--metrics-bind HOST:PORT``: a daemon's metrics over HTTP, served on its own event loop.

Why not prometheus_client's ``start_http_server``: it serves from a thread of its own, so
the collectors would read the daemon's state (dictionaries the event loop keeps changing)
from another thread. Here the server is an :class:`asyncio.Protocol` on the daemon's loop:
a scrape reads the state between two events, as any handler does, and renders it in a few
milliseconds (the label sets are bounded by the space's apps and devices). Nothing waits:
a request is answered in ``data_received``, the response handed to the transport, which
sends it without blocking. No task is started (a protocol needs none), so there is nothing
to own or cancel; :meth:`MetricsEndpoint.close` closes the listener and every connection.

``GET /metrics`` (or ``HEAD``) answers in the text format Prometheus asks for in its
``Accept`` header (OpenMetrics or the classic text format, ``prometheus_client.exposition.
choose_encoder``); ``/`` answers a line pointing at ``/metrics``. One request per connection
(``Connection: close``); a request must arrive whole within :data:`REQUEST_TIMEOUT_S` and
:data:`MAX_REQUEST_BYTES`.

The endpoint is plain HTTP without authentication, unlike every gRPC port (mutual TLS):
that is why it is off unless ``--metrics-bind`` is given, and why the examples bind it to
127.0.0.1 or a private network.
"""

from __future__ import annotations

import asyncio

import structlog
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

from synergy.binds import bind_error, parse_bind

__all__ = ["FLAG", "MAX_REQUEST_BYTES", "REQUEST_TIMEOUT_S", "MetricsEndpoint", "start_endpoint"]

log = structlog.get_logger(__name__)

#: The flag named in every error about the address.
FLAG = "--metrics-bind"
#: A request (line and headers) larger than this is refused; Prometheus sends a few hundred bytes.
MAX_REQUEST_BYTES = 16 * 1024
#: A connection that has not sent a whole request by then is closed (idle or slow clients).
REQUEST_TIMEOUT_S = 10.0
#: The port the examples give the coordinator (agents: 9465 and up).
EXAMPLE_PORT = 9464


class MetricsEndpoint:
    """A started endpoint: :attr:`address` is where it listens (the real port for port 0)."""

    def __init__(self, registry: CollectorRegistry, role: str) -> None:
        self.registry = registry
        self.role = role
        self.address = ""
        self.scrapes = 0
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    @property
    def url(self) -> str:
        return f"http://{self.address}/metrics"

    async def start(self, bind: str) -> None:
        host, port = parse_bind(bind, FLAG, EXAMPLE_PORT)
        loop = asyncio.get_running_loop()
        try:
            # No SO_REUSEPORT (asyncio's default): a second daemon on the port is refused.
            self._server = await loop.create_server(lambda: _Connection(self), host, port)
        except OSError as exc:
            raise bind_error(bind, FLAG, exc) from exc
        sockname = self._server.sockets[0].getsockname()
        shown = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
        self.address = f"{shown}:{sockname[1]}"
        log.info("metrics_listening", role=self.role, address=self.address, url=self.url)

    async def close(self) -> None:
        """Stop listening and close every connection. Idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self._connections):
            connection.abort()
        await server.wait_closed()

    def render(self, accept: str) -> tuple[bytes, str]:
        """The registry in the format ``accept`` asks for: (body, content type)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


async def start_endpoint(bind: str, registry: CollectorRegistry, role: str) -> MetricsEndpoint:
    """Serve ``registry`` on ``bind`` (parsed by :mod:`synergy.binds`, as ``--http-bind``); an
    address in use or a malformed one raises the :mod:`synergy.errors` class naming the flag."""
    endpoint = MetricsEndpoint(registry, role)
    await endpoint.start(bind)
    return endpoint


class _Connection(asyncio.Protocol):
    """One HTTP connection: read one request, answer it, close."""

    def __init__(self, endpoint: MetricsEndpoint) -> None:
        self._endpoint = endpoint
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._answered = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._endpoint._connections.add(self)
        self._timer = asyncio.get_running_loop().call_later(REQUEST_TIMEOUT_S, self.abort)

    def connection_lost(self, exc: Exception | None) -> None:
        self._endpoint._connections.discard(self)
        if self._timer is not None:
            self._timer.cancel()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        if self._answered:
            return  # a body, or a pipelined request: one request per connection
        self._buffer += data
        # The blank line that ends the headers; a bare LF too (a request typed into netcat).
        ends = [i for i in (self._buffer.find(b"\r\n\r\n"), self._buffer.find(b"\n\n")) if i >= 0]
        if not ends:
            if len(self._buffer) > MAX_REQUEST_BYTES:
                self._respond(431, "Request Header Fields Too Large", b"request too large\n")
            return
        self._answer(bytes(self._buffer[: min(ends)]).decode("latin-1"))

    def _answer(self, head: str) -> None:
        lines = head.splitlines()
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/"):
            self._respond(400, "Bad Request", b"bad request line\n")
            return
        method, target, _ = parts
        path = target.split("?", 1)[0]
        if method not in ("GET", "HEAD"):
            self._respond(405, "Method Not Allowed", b"GET or HEAD only\n", allow=True)
            return
        if path == "/":
            self._respond(200, "OK", b"Synergy metrics: GET /metrics\n", head_only=method == "HEAD")
            return
        if path != "/metrics":
            self._respond(404, "Not Found", b"not found; metrics are at /metrics\n", head_only=method == "HEAD")
            return
        headers = dict(_header(line) for line in lines[1:] if ":" in line)
        try:
            body, content_type = self._endpoint.render(headers.get("accept", ""))
        except Exception:
            # A collector bug must not take the daemon down, nor go unnoticed.
            log.exception("metrics_collect_failed", role=self._endpoint.role)
            self._respond(500, "Internal Server Error", b"collecting metrics failed; see the daemon's log\n")
            return
        self._endpoint.scrapes += 1
        self._respond(200, "OK", body, content_type=content_type, head_only=method == "HEAD")

    def _respond(
        self,
        status: int,
        phrase: str,
        body: bytes,
        *,
        content_type: str = "text/plain; charset=utf-8",
        head_only: bool = False,
        allow: bool = False,
    ) -> None:
        self._answered = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        head = [
            f"HTTP/1.1 {status} {phrase}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Connection: close",
        ]
        if allow:
            head.append("Allow: GET, HEAD")
        transport.write("\r\n".join([*head, "", ""]).encode("latin-1") + (b"" if head_only else body))
        transport.close()  # after the buffered response is sent


def _header(line: str) -> tuple[str, str]:
    name, _, value = line.partition(":")
    return name.strip().lower(), value.strip()
