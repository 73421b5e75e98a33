"""The dashboard's HTTP side: a read-only aiohttp app in the coordinator's own event loop.

Routes (docs/dashboard.md): ``/`` the page, ``/static/...`` its script and style,
``/api/snapshot`` the snapshot as JSON, ``/api/events`` the same snapshot pushed as
server-sent events whenever it changed, checked every :data:`PUSH_PERIOD_S`. Only GET (and
HEAD): nothing here changes the coordinator.

One :class:`SnapshotFeed` serves every client: it reads the coordinator's state and encodes it
at most once per period, on demand, so ten open tabs cost one snapshot, and no task runs
while nobody watches. Each event stream is an aiohttp request handler that ends when its
client goes or the dashboard closes; the dashboard starts no background task of its own.

Security: plain HTTP, bound to loopback unless told otherwise (a non-loopback bind is logged
as a warning). Responses carry a Content-Security-Policy that allows only this origin's own
script and style (the page has no inline code), and a dashboard bound to loopback answers
only requests whose Host names a loopback or literal address: a web page elsewhere cannot
read it through DNS rebinding.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from coordinator.dashboard.snapshot import SpaceView, build_snapshot
from synergy.binds import bind_error, parse_bind
from synergy.errors import FailedPrecondition, InvalidArgument

if TYPE_CHECKING:
    from coordinator.service import Coordinator

__all__ = ["PUSH_PERIOD_S", "Dashboard", "SnapshotFeed", "view_of"]

log = structlog.get_logger(__name__)

#: How often the event stream checks the state for a change to push.
PUSH_PERIOD_S = 0.5
#: A comment line this often keeps an unchanged stream (and proxies in between) alive.
KEEPALIVE_S = 15.0
#: Seconds a browser waits before reconnecting a dropped event stream.
RECONNECT_MS = 2000
#: The flag that sets the bind, named in every error about it, and its example port.
FLAG = "--http-bind"
EXAMPLE_PORT = 8080

#: The page's files in static/, with their content types.
_STATIC: Mapping[str, str] = {
    "index.html": "text/html; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "dashboard.css": "text/css; charset=utf-8",
}
_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def view_of(coordinator: Coordinator, about: Mapping[str, str | bool]) -> SpaceView:
    """What ``coordinator`` holds right now (on its event loop, so the state is consistent)."""
    core = coordinator.core
    return SpaceView(
        devices=coordinator.list_devices(),
        apps=coordinator.list_apps(),
        plan=coordinator.plan(),
        stats=coordinator.stats,
        rounds=core.replans.rounds,
        current_round=core.replans.current,
        pending_causes=core.replans.pending,
        ready=coordinator.ready.is_set(),
        now=time.monotonic(),
        now_unix=time.time(),
        about=about,
    )


class SnapshotFeed:
    """The latest encoded snapshot and a version that moves only when its content changed."""

    def __init__(self, read: Callable[[], SpaceView], period_s: float = PUSH_PERIOD_S) -> None:
        self._read = read
        self._period_s = period_s
        self._built_at = -float("inf")
        self._content: dict[str, object] = {}
        self._body = b""
        self.version = 0

    def latest(self, now: float) -> tuple[int, bytes]:
        """(version, JSON body), rebuilt when older than the period (``now``: monotonic)."""
        if now - self._built_at >= self._period_s:
            self._built_at = now
            snapshot = build_snapshot(self._read())
            # The generation time alone is no change worth pushing.
            content = {k: v for k, v in snapshot.items() if k != "generated_at_unix"}
            if content != self._content or not self._body:
                self._content = content
                self.version += 1
            self._body = json.dumps(snapshot, allow_nan=False, separators=(",", ":")).encode()
        return self.version, self._body


class Dashboard:
    """The dashboard on ``bind``: :meth:`start`, then :meth:`close` (idempotent)."""

    def __init__(self, read: Callable[[], SpaceView], bind: str, *, period_s: float = PUSH_PERIOD_S) -> None:
        self.bind = bind
        self._host, self._port = parse_bind(bind, FLAG, EXAMPLE_PORT)
        self._period_s = period_s
        self._feed = SnapshotFeed(read, period_s)
        self._files = _load_static()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        #: "http://host:port/" once started.
        self.url = ""

    async def start(self) -> str:
        """Listen and serve; returns the URL (the real port when the bind said 0)."""
        sock = _listen(self._host, self._port, self.bind)
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._file("index.html"))
        for name in ("dashboard.js", "dashboard.css"):
            app.router.add_get(f"/static/{name}", self._file(name))
        app.router.add_get("/api/snapshot", self._snapshot)
        app.router.add_get("/api/events", self._events)
        # Streams end on their own once closing is set; a second is their bound.
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        try:
            await runner.setup()
            await web.SockSite(runner, sock).start()
        except BaseException:
            sock.close()
            await runner.cleanup()
            raise
        self._runner = runner
        host, port = sock.getsockname()[:2]
        self.url = f"http://{_url_host(host)}:{port}/"
        loopback = _is_loopback(host)
        log.info("dashboard_listening", url=self.url, address=f"{host}:{port}", loopback=loopback)
        if not loopback:
            log.warning(
                "dashboard_not_loopback",
                address=f"{host}:{port}",
                hint="plain HTTP without authentication: anyone who reaches it sees the whole space; "
                "keep it on 127.0.0.1 or behind a proxy that authenticates (docs/dashboard.md)",
            )
        return self.url

    async def close(self) -> None:
        self._closing.set()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    # -- middleware and handlers -----------------------------------------------------------

    @web.middleware
    async def _guard(self, request: web.Request, handler: _Handler) -> web.StreamResponse:
        if _is_loopback(self._host) and not _local_host_header(request.host, self._host):
            raise web.HTTPMisdirectedRequest(text=f"this dashboard answers only to local names, not {request.host!r}")
        response = await handler(request)
        if not response.prepared:  # an event stream sent its headers when it started
            response.headers.update(_HEADERS)
        return response

    def _file(self, name: str) -> _Handler:
        body = self._files[name]
        content_type = _STATIC[name]

        async def serve(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, headers={"Content-Type": content_type})

        return serve

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        _, body = self._feed.latest(time.monotonic())
        return web.Response(body=body, headers={"Content-Type": "application/json"})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", **_HEADERS})
        await response.prepare(request)
        sent = -1
        quiet_since = time.monotonic()
        with contextlib.suppress(ConnectionResetError):
            await response.write(f"retry: {RECONNECT_MS}\n\n".encode())
            while not self._closing.is_set():
                now = time.monotonic()
                version, body = self._feed.latest(now)
                if version != sent:
                    await response.write(b"event: snapshot\nid: %d\ndata: %s\n\n" % (version, body))
                    sent, quiet_since = version, now
                elif now - quiet_since >= KEEPALIVE_S:
                    await response.write(b": keepalive\n\n")
                    quiet_since = now
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._period_s):
                        await self._closing.wait()
        return response


def _load_static() -> dict[str, bytes]:
    """The page's files from the package (shipped as package data: pyproject's package-data)."""
    folder = resources.files(__package__) / "static"
    try:
        return {name: (folder / name).read_bytes() for name in _STATIC}
    except OSError as exc:
        raise FailedPrecondition(
            f"the dashboard's page is missing from this installation ({exc}); reinstall synergy"
        ) from exc


def _listen(host: str, port: int, bind: str) -> socket.socket:
    """A listening socket on (host, port); errors name the flag, a taken port says so."""
    try:
        family, kind, proto, _, sockaddr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except OSError as exc:
        raise InvalidArgument(f"{FLAG} {bind}: cannot resolve {host!r}: {exc.strerror or exc}") from exc
    sock = socket.socket(family, kind, proto)
    try:
        # As gRPC does: a port in TIME_WAIT after a restart is free; SO_REUSEPORT stays off, so
        # a port another process listens on is refused.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(sockaddr)
        sock.listen(128)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise bind_error(bind, FLAG, exc) from exc
    return sock


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _local_host_header(header: str, bind_host: str) -> bool:
    """A Host header naming a literal address, localhost or the host the dashboard was bound to."""
    name = header.rsplit(":", 1)[0] if not header.endswith("]") else header
    name = name.strip("[]").lower()
    if name in ("localhost", bind_host.lower()) or name.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host
