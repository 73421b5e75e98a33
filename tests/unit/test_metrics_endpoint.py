"""``--metrics-bind``: parsing it, and the HTTP endpoint on the event loop (synergy.metrics.endpoint)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterable

import pytest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from synergy.errors import AddressInUse, InvalidArgument
from synergy.metrics import endpoint
from synergy.metrics.endpoint import MetricsEndpoint, start_endpoint


class Fixed:
    """A collector answering one gauge, or raising once told to."""

    def __init__(self, value: float) -> None:
        self.value = value
        self.broken = False

    def collect(self) -> Iterable[Metric]:
        if self.broken:
            raise RuntimeError("a collector bug")
        return [GaugeMetricFamily("synergy_test_value", "A value.", self.value)]


def registry_of(value: float) -> tuple[CollectorRegistry, Fixed]:
    registry, collector = CollectorRegistry(), Fixed(value)
    registry.register(collector)
    return registry, collector


async def request(address: str, raw: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send ``raw``, read to EOF: (status line, headers, body)."""
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(raw)
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def get(path: str = "/metrics", accept: str = "", method: str = "GET") -> bytes:
    extra = f"Accept: {accept}\r\n" if accept else ""
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()


@pytest.mark.parametrize("bind", ["9464", "host:", "host:http", "host:70000", "[nope]:1"])
async def test_a_malformed_bind_is_refused_naming_the_flag(bind: str) -> None:
    with pytest.raises(InvalidArgument, match="--metrics-bind"):
        await start_endpoint(bind, registry_of(1)[0], "test")


async def test_no_host_means_loopback() -> None:
    served = await start_endpoint(":0", registry_of(1)[0], "test")
    try:
        assert served.address.startswith("127.0.0.1:")
    finally:
        await served.close()


async def test_a_scrape_returns_the_registry_in_the_format_asked_for() -> None:
    registry, _ = registry_of(7)
    served = await start_endpoint("127.0.0.1:0", registry, "test")
    try:
        assert served.port > 0 and served.url == f"http://{served.address}/metrics"
        status, headers, body = await request(served.address, get())
        assert status == "HTTP/1.1 200 OK" and headers["connection"] == "close"
        assert headers["content-type"].startswith("text/plain; version=0.0.4")
        assert int(headers["content-length"]) == len(body)
        [family] = text_string_to_metric_families(body.decode())
        assert (family.name, family.samples[0].value) == ("synergy_test_value", 7.0)
        status, headers, body = await request(served.address, get(accept="application/openmetrics-text; version=1.0.0"))
        assert headers["content-type"].startswith("application/openmetrics-text") and body.endswith(b"# EOF\n")
        status, headers, body = await request(served.address, get(method="HEAD"))
        assert status == "HTTP/1.1 200 OK" and body == b"" and int(headers["content-length"]) > 0
        assert served.scrapes == 3
    finally:
        await served.close()


@pytest.mark.parametrize(
    ("raw", "status"),
    [(get("/"), "200 OK"), (get("/other"), "404 Not Found"), (get(method="POST"), "405 Method Not Allowed"),
     (b"nonsense\r\n\r\n", "400 Bad Request"), (b"GET /metrics HTTP/1.1\r\nX: " + b"y" * 20000, "431 "),
     (b"GET /metrics?x=1 HTTP/1.0\n\n", "200 OK")],
    ids=["root", "unknown-path", "post", "bad-line", "too-large", "bare-lf-and-query"],
)  # fmt: skip
async def test_other_requests_get_their_status(raw: bytes, status: str) -> None:
    served = await start_endpoint("127.0.0.1:0", registry_of(1)[0], "test")
    try:
        got, _, _ = await request(served.address, raw)
        assert got.startswith(f"HTTP/1.1 {status}")
    finally:
        await served.close()


async def test_a_failing_collector_answers_500_and_the_next_scrape_works() -> None:
    registry, collector = registry_of(1)
    served = await start_endpoint("127.0.0.1:0", registry, "test")
    try:
        collector.broken = True
        status, _, _ = await request(served.address, get())
        assert status.startswith("HTTP/1.1 500")
        collector.broken = False
        status, _, _ = await request(served.address, get())
        assert status == "HTTP/1.1 200 OK"
    finally:
        await served.close()


async def test_a_silent_client_is_cut_off_and_close_ends_idle_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(endpoint, "REQUEST_TIMEOUT_S", 0.2)
    served = await start_endpoint("127.0.0.1:0", registry_of(1)[0], "test")
    host, _, port = served.address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server, unanswered
    writer.close()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /metrics HTTP/1.1\r\n")  # never finished
    await asyncio.sleep(0.05)
    await served.close()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await served.close()  # idempotent
    with pytest.raises(OSError):
        await asyncio.open_connection(host, int(port))


async def test_a_taken_port_is_refused_naming_the_flag_and_endpoints_keep_their_own_registries() -> None:
    first = await start_endpoint("127.0.0.1:0", registry_of(1)[0], "one")
    second = await start_endpoint("127.0.0.1:0", registry_of(2)[0], "two")
    try:
        with pytest.raises(AddressInUse, match=rf"--metrics-bind {first.address}: address in use"):
            await start_endpoint(first.address, registry_of(3)[0], "three")
        for served, expected in ((first, b"synergy_test_value 1.0"), (second, b"synergy_test_value 2.0")):
            _, _, body = await request(served.address, get())
            assert expected in body
    finally:
        await first.close()
        await second.close()


async def test_a_port_held_by_a_plain_listener_is_in_use_too() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        unstarted = MetricsEndpoint(registry_of(1)[0], "test")
        with pytest.raises(AddressInUse):
            await unstarted.start(f"127.0.0.1:{port}")
        await unstarted.close()  # nothing to close: no error


def test_an_agent_without_metrics_loads_no_prometheus_client() -> None:
    """Agents stay lean (docs/architecture.md, "Host scale"): the library comes with the flag."""
    code = "import sys, synergy.cli.daemon_main, agent.service; print('prometheus_client' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "False"
