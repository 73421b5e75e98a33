"""``synergy health``: the probe the images' HEALTHCHECK runs, against a real server in this
process on 127.0.0.1 — serving, not serving, unreachable, over mutual TLS and in plain text."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2

from synergy.cli import health_cmd
from synergy.cli.main import build_parser
from synergy.security.ca import init_ca, issue
from synergy.security.tls import TlsConfig
from synergy.v1 import registry_pb2_grpc
from synergy.wire.server import ServingServer, start_server

REGISTRY = "synergy.v1.RegistryService"


@pytest.fixture
def pki(tmp_path: Path) -> Path:
    init_ca(tmp_path / "ca")
    for role, name in (("coordinator", "coordinator"), ("client", "probe")):
        issue(tmp_path / "ca", role=role, name=name, out_dir=tmp_path / name)
    return tmp_path


async def serve(tls: TlsConfig | None) -> ServingServer:
    servicer = registry_pb2_grpc.RegistryServiceServicer()
    register = partial(registry_pb2_grpc.add_RegistryServiceServicer_to_server, servicer)
    return await start_server("127.0.0.1:0", [(register, REGISTRY)], tls=tls)


@pytest.fixture
async def secure(pki: Path) -> AsyncIterator[ServingServer]:
    server = await serve(TlsConfig.load(pki / "coordinator"))
    try:
        yield server
    finally:
        await server.stop(0)


async def check(
    address: str, tls_dir: Path | None, *, insecure: bool = False, service: str = "", timeout_s: float = 3.0
) -> tuple[bool, str]:
    # The probe is synchronous: off the loop that serves the server it calls.
    probe = partial(health_cmd.check, insecure=insecure, service=service, timeout_s=timeout_s)
    return await asyncio.to_thread(probe, address, tls_dir)


async def test_a_serving_daemon_is_healthy_over_mutual_tls(secure: ServingServer, pki: Path) -> None:
    assert await check(f"127.0.0.1:{secure.port}", pki / "probe") == (True, "SERVING")
    assert await check(f"127.0.0.1:{secure.port}", pki / "probe", service=REGISTRY) == (True, "SERVING")


async def test_not_serving_is_unhealthy(secure: ServingServer, pki: Path) -> None:
    await secure.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert await check(f"127.0.0.1:{secure.port}", pki / "probe") == (False, "NOT_SERVING")


async def test_an_unknown_service_is_named(secure: ServingServer, pki: Path) -> None:
    ok, text = await check(f"127.0.0.1:{secure.port}", pki / "probe", service="no.Such")
    assert not ok and text.startswith("NOT_FOUND")


async def test_a_certificate_of_another_ca_fails_the_handshake(secure: ServingServer, tmp_path: Path) -> None:
    init_ca(tmp_path / "other")
    stranger = issue(tmp_path / "other", role="client", name="probe", out_dir=tmp_path / "stranger").directory
    ok, text = await check(f"127.0.0.1:{secure.port}", stranger, timeout_s=2.0)
    assert not ok and text.startswith(("UNAVAILABLE", "DEADLINE_EXCEEDED")), text


async def test_plain_text_for_an_insecure_daemon() -> None:
    server = await serve(None)
    try:
        assert await check(f"127.0.0.1:{server.port}", None, insecure=True) == (True, "SERVING")
    finally:
        await server.stop(0)


async def test_nothing_listening_is_unhealthy(pki: Path) -> None:
    server = await serve(None)
    port = server.port
    await server.stop(0)
    ok, text = await check(f"127.0.0.1:{port}", None, insecure=True, timeout_s=1.0)
    assert not ok and text.startswith(("UNAVAILABLE", "DEADLINE_EXCEEDED")), text


def test_missing_tls_material_is_said_without_a_call(tmp_path: Path) -> None:
    ok, text = health_cmd.check("127.0.0.1:1", None)
    assert not ok and "--tls-dir" in text and "SYNERGY_TLS_DIR" in text
    ok, text = health_cmd.check("127.0.0.1:1", tmp_path / "nowhere")
    assert not ok and "cannot read the TLS directory" in text and "ca.pem" in text


def test_address_and_tls_dir_default_to_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SYNERGY_HEALTH_ADDRESS", "127.0.0.1:7000")
    monkeypatch.setenv("SYNERGY_TLS_DIR", str(tmp_path))
    args = build_parser().parse_args(["health"])
    assert (args.address, args.tls_dir, args.func) == ("127.0.0.1:7000", tmp_path, health_cmd.run)
    monkeypatch.delenv("SYNERGY_HEALTH_ADDRESS")
    assert build_parser().parse_args(["health", "--insecure"]).address == health_cmd.DEFAULT_ADDRESS


async def test_the_exit_status_is_dockers_convention(secure: ServingServer, pki: Path) -> None:
    """0 healthy, 1 not: run as the image runs it (python -m, its own light parser)."""
    base = [sys.executable, "-m", "synergy.cli.health_cmd", f"127.0.0.1:{secure.port}"]
    healthy = await asyncio.to_thread(
        subprocess.run, [*base, "--tls-dir", str(pki / "probe")], capture_output=True, text=True, timeout=60
    )
    assert (healthy.returncode, healthy.stdout.strip()) == (0, f"127.0.0.1:{secure.port}: SERVING")
    await secure.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    unhealthy = await asyncio.to_thread(
        subprocess.run, [*base, "--tls-dir", str(pki / "probe")], capture_output=True, text=True, timeout=60
    )
    assert unhealthy.returncode == health_cmd.EXIT_UNHEALTHY and "NOT_SERVING" in unhealthy.stderr


def test_the_probe_loads_no_more_than_grpc() -> None:
    """It runs every few seconds in every container: none of the CLI, ONNX or numpy."""
    code = (
        "import sys, synergy.cli.health_cmd as h; h.check('127.0.0.1:1', None, insecure=True, timeout_s=0.1); "
        "print(sorted(m for m in ('numpy', 'onnx', 'onnxruntime', 'synergy.cli.main', 'cryptography', 'structlog') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == "[]"
