"""Mutual TLS: loading a TLS directory (and its refusals), choosing TLS or plain text on the
command line, and a real secure server in this process on 127.0.0.1 — who the peer is, and
which peers never get that far (no certificate, another CA, expired, revoked)."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import shutil
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import grpc
import pytest
import structlog

from synergy.devices import preset_device
from synergy.errors import AddressInUse, FailedPrecondition, Unavailable
from synergy.sdk import SynergyClient
from synergy.security import tls as tls_module
from synergy.security.ca import CA_CERT, CERT, DENY_LIST, KEY, format_serial, init_ca, issue
from synergy.security.identity import Identity
from synergy.security.tls import (
    TLS_DIR_ENV,
    TlsConfig,
    add_tls_arguments,
    peer_identity,
    resolve_tls,
    tls_from_args,
)
from synergy.v1 import registry_pb2, registry_pb2_grpc
from synergy.wire.channels import open_channel
from synergy.wire.convert import device_to_proto
from synergy.wire.server import ServingServer, start_server

REGISTRY = "synergy.v1.RegistryService"
DEVICE = device_to_proto(replace(preset_device("ring"), address="127.0.0.1:1"))


@pytest.fixture
def ca(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    init_ca(directory)
    return directory


def issued(ca: Path, role: str, name: str, **kwargs: object) -> Path:
    return issue(ca, role=role, name=name, out_dir=ca.parent / f"{role}-{name}", **kwargs).directory  # type: ignore[arg-type]


# -- loading -----------------------------------------------------------------------------------


def test_load_reads_identity_and_material(ca: Path) -> None:
    directory = issued(ca, "agent", "watch-1")
    tls = TlsConfig.load(directory)
    assert tls.identity == Identity("agent", "watch-1")
    assert tls.ca == (directory / CA_CERT).read_bytes()
    assert tls.cert == (directory / CERT).read_bytes()
    assert tls.deny_list == frozenset()
    assert tls.deny_list_path == directory / DENY_LIST
    assert "BEGIN" not in repr(tls) and "watch-1" in repr(tls), "no PEM (above all no key) in the repr"


def test_load_names_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match=r"does not exist.*synergy ca issue"):
        TlsConfig.load(tmp_path / "nope")


@pytest.mark.parametrize("missing", [CA_CERT, CERT, KEY])
def test_load_names_the_missing_file_and_the_command(ca: Path, missing: str) -> None:
    directory = issued(ca, "client", "alice")
    (directory / missing).unlink()
    with pytest.raises(FailedPrecondition) as info:
        TlsConfig.load(directory)
    message = str(info.value)
    assert missing in message and str(directory / missing) in message
    assert "synergy ca issue" in message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_load_refuses_a_key_others_may_read(ca: Path, mode: int) -> None:
    directory = issued(ca, "client", "alice")
    (directory / KEY).chmod(mode)
    with pytest.raises(FailedPrecondition) as info:
        TlsConfig.load(directory)
    assert str(directory / KEY) in str(info.value)
    assert "chmod 600" in str(info.value)


def test_load_refuses_a_key_of_another_certificate(ca: Path) -> None:
    alice, bob = issued(ca, "client", "alice"), issued(ca, "client", "bob")
    shutil.copy(bob / KEY, alice / KEY)
    with pytest.raises(FailedPrecondition, match="does not belong to the certificate"):
        TlsConfig.load(alice)


def test_load_refuses_a_certificate_of_another_ca(ca: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    init_ca(other)
    directory = issued(ca, "client", "alice")
    shutil.copy(other / CA_CERT, directory / CA_CERT)
    with pytest.raises(FailedPrecondition, match="was not issued by the CA"):
        TlsConfig.load(directory)


def test_load_refuses_an_expired_or_future_certificate(ca: Path) -> None:
    now = dt.datetime.now(dt.UTC)
    expired = issue(
        ca,
        role="client",
        name="old",
        out_dir=ca.parent / "old",
        not_before=now - dt.timedelta(days=10),
        not_after=now - dt.timedelta(days=1),
    ).directory
    with pytest.raises(FailedPrecondition, match="expired"):
        TlsConfig.load(expired)
    future = issue(
        ca,
        role="client",
        name="new",
        out_dir=ca.parent / "new",
        not_before=now + dt.timedelta(days=1),
        not_after=now + dt.timedelta(days=10),
    ).directory
    with pytest.raises(FailedPrecondition, match="not valid before"):
        TlsConfig.load(future)


def test_load_reads_the_deny_list(ca: Path) -> None:
    directory = issued(ca, "agent", "ring")
    (directory / DENY_LIST).write_text("# revoked\n5f3a\n0x10  # old ring\n")
    assert TlsConfig.load(directory).deny_list == frozenset({0x5F3A, 0x10})


# -- choosing TLS or plain text ------------------------------------------------------------------


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_tls_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls_module, "_warned_plaintext", False)
    monkeypatch.delenv(TLS_DIR_ENV, raising=False)


@pytest.mark.usefixtures("fresh_warning")
def test_tls_is_the_default() -> None:
    with pytest.raises(FailedPrecondition) as info, structlog.testing.capture_logs() as logs:
        tls_from_args(parse([]))
    for needle in ("--tls-dir", TLS_DIR_ENV, "synergy ca init", "--insecure"):
        assert needle in str(info.value)
    assert logs == []


@pytest.mark.usefixtures("fresh_warning")
def test_plain_text_is_warned_once() -> None:
    with structlog.testing.capture_logs() as logs:
        assert tls_from_args(parse(["--insecure"])) is None
        assert tls_from_args(parse(["--insecure"])) is None
    warnings = [entry for entry in logs if entry["event"] == "plaintext_grpc"]
    assert len(warnings) == 1
    assert warnings[0]["log_level"] == "warning"
    assert "owns the system" in warnings[0]["risk"]


@pytest.mark.usefixtures("fresh_warning")
def test_insecure_is_logged_too() -> None:
    with structlog.testing.capture_logs() as logs:
        assert resolve_tls(None, insecure=True) is None
    assert [entry["why"] for entry in logs if entry["event"] == "plaintext_grpc"] == ["--insecure"]


@pytest.mark.usefixtures("fresh_warning")
def test_tls_dir_from_flag_or_environment(ca: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    alice, bob = issued(ca, "client", "alice"), issued(ca, "client", "bob")
    with structlog.testing.capture_logs() as logs:
        from_flag = tls_from_args(parse(["--tls-dir", str(alice)]))
        monkeypatch.setenv(TLS_DIR_ENV, str(bob))
        from_env = tls_from_args(parse([]))
        over_env = tls_from_args(parse(["--tls-dir", str(alice)]))
        insecure = tls_from_args(parse(["--insecure"]))
    assert from_flag is not None and from_flag.identity.name == "alice"
    assert from_env is not None and from_env.identity.name == "bob"
    assert over_env is not None and over_env.identity.name == "alice"
    assert insecure is None
    assert [entry["event"] for entry in logs] == ["plaintext_grpc"]


def test_tls_dir_and_insecure_exclude_each_other(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        parse(["--tls-dir", str(tmp_path), "--insecure"])


# -- a real secure server ----------------------------------------------------------------------


class Registry(registry_pb2_grpc.RegistryServiceServicer):  # type: ignore[misc]
    """Register records who called (and answers with it as the lease id)."""

    def __init__(self) -> None:
        self.callers: list[Identity | None] = []

    async def Register(
        self, request: registry_pb2.RegisterRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.RegisterResponse:
        identity = peer_identity(context)
        self.callers.append(identity)
        return registry_pb2.RegisterResponse(lease_id=str(identity))


async def serving(tls: TlsConfig | None) -> tuple[ServingServer, Registry]:
    registry = Registry()
    server = await start_server(
        "127.0.0.1:0", [(partial(registry_pb2_grpc.add_RegistryServiceServicer_to_server, registry), REGISTRY)], tls=tls
    )
    return server, registry


@pytest.fixture
async def secure(ca: Path) -> AsyncIterator[tuple[ServingServer, Registry, Path]]:
    directory = issued(ca, "coordinator", "coordinator")
    server, registry = await serving(TlsConfig.load(directory))
    try:
        yield server, registry, directory
    finally:
        await server.stop(0)


async def register(address: str, tls: TlsConfig | None, timeout_s: float = 5.0) -> str:
    async with open_channel(address, tls) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        answer = await stub.Register(registry_pb2.RegisterRequest(device=DEVICE), timeout=timeout_s)
        return str(answer.lease_id)


async def refused(address: str, tls: TlsConfig | None, code: grpc.StatusCode) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await register(address, tls)
    assert info.value.code() == code, info.value.details()
    return info.value.details() or ""


async def test_peer_identity_is_the_clients_certificate(ca: Path, secure: tuple[ServingServer, Registry, Path]) -> None:
    server, registry, _ = secure
    for address in (f"127.0.0.1:{server.port}", f"localhost:{server.port}"):
        assert await register(address, TlsConfig.load(issued(ca, "agent", "watch-1"))) == "agent:watch-1"
    assert await register(f"127.0.0.1:{server.port}", TlsConfig.load(issued(ca, "admin", "root"))) == "admin:root"
    assert registry.callers == [Identity("agent", "watch-1"), Identity("agent", "watch-1"), Identity("admin", "root")]


async def test_peer_identity_is_none_in_plain_text() -> None:
    server, registry = await serving(None)
    try:
        assert await register(f"127.0.0.1:{server.port}", None) == "None"
        assert registry.callers == [None]
    finally:
        await server.stop(0)


async def test_peer_identity_honours_a_deny_list(ca: Path) -> None:
    client = issue(ca, role="client", name="alice", out_dir=ca.parent / "alice")
    seen: list[tuple[Identity | None, Identity | None]] = []

    class Checking(Registry):
        async def Register(
            self, request: registry_pb2.RegisterRequest, context: grpc.aio.ServicerContext
        ) -> registry_pb2.RegisterResponse:
            seen.append((peer_identity(context), peer_identity(context, deny_list={client.serial})))
            return registry_pb2.RegisterResponse()

    server = await start_server(
        "127.0.0.1:0",
        [(partial(registry_pb2_grpc.add_RegistryServiceServicer_to_server, Checking()), REGISTRY)],
        tls=TlsConfig.load(issued(ca, "coordinator", "coordinator")),
    )
    try:
        await register(f"127.0.0.1:{server.port}", TlsConfig.load(client.directory))
    finally:
        await server.stop(0)
    assert seen == [(Identity("client", "alice"), None)]


async def test_plain_text_client_fails_against_tls_server(secure: tuple[ServingServer, Registry, Path]) -> None:
    server, registry, _ = secure
    await refused(f"127.0.0.1:{server.port}", None, grpc.StatusCode.UNAVAILABLE)
    assert registry.callers == []


async def test_tls_client_fails_against_plain_text_server(ca: Path) -> None:
    server, registry = await serving(None)
    try:
        alice = TlsConfig.load(issued(ca, "client", "alice"))
        await refused(f"127.0.0.1:{server.port}", alice, grpc.StatusCode.UNAVAILABLE)
    finally:
        await server.stop(0)
    assert registry.callers == []


async def test_certificate_of_another_ca_is_refused(
    tmp_path: Path, ca: Path, secure: tuple[ServingServer, Registry, Path]
) -> None:
    server, registry, server_dir = secure
    other = tmp_path / "other-ca"
    init_ca(other)
    stranger = issued(other, "admin", "admin")
    # The stranger trusts our CA (so the server's certificate passes) but presents its own.
    tls = TlsConfig.from_pem(
        (server_dir / CA_CERT).read_bytes(), (stranger / CERT).read_bytes(), (stranger / KEY).read_bytes()
    )
    await refused(f"127.0.0.1:{server.port}", tls, grpc.StatusCode.UNAVAILABLE)
    assert registry.callers == []


async def test_expired_certificate_is_refused(ca: Path, secure: tuple[ServingServer, Registry, Path]) -> None:
    server, registry, _ = secure
    now = dt.datetime.now(dt.UTC)
    old = issue(
        ca,
        role="admin",
        name="old",
        out_dir=ca.parent / "old",
        not_before=now - dt.timedelta(days=10),
        not_after=now - dt.timedelta(days=1),
    ).directory
    tls = TlsConfig.from_pem(*((old / name).read_bytes() for name in (CA_CERT, CERT, KEY)))
    await refused(f"127.0.0.1:{server.port}", tls, grpc.StatusCode.UNAVAILABLE)
    assert registry.callers == []


async def test_server_certificate_must_name_the_host(ca: Path) -> None:
    """A client dialling a name the server's certificate lacks fails the handshake."""
    server_dir = ca.parent / "elsewhere"
    issue(ca, role="coordinator", name="coordinator", out_dir=server_dir)
    server, _ = await serving(TlsConfig.load(server_dir))
    try:
        client = TlsConfig.load(issued(ca, "client", "alice"))
        # 127.0.0.2 reaches the same listener on Linux loopback, but is not in the certificate.
        address = f"127.0.0.2:{server.port}"
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await register(address, client, timeout_s=3)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
    finally:
        await server.stop(0)


async def test_revoked_certificate_is_refused_and_the_deny_list_reloads(
    ca: Path, secure: tuple[ServingServer, Registry, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tls_module, "DENY_LIST_RECHECK_S", 0.0)
    server, registry, server_dir = secure
    alice = issue(ca, role="client", name="alice", out_dir=ca.parent / "alice")
    bob = TlsConfig.load(issued(ca, "client", "bob"))
    address = f"127.0.0.1:{server.port}"
    assert await register(address, TlsConfig.load(alice.directory)) == "client:alice"
    # Revoked while the server runs: it reads the changed file, no restart.
    (server_dir / DENY_LIST).write_text(f"{format_serial(alice.serial)}\n")
    with structlog.testing.capture_logs() as logs:
        details = await refused(address, TlsConfig.load(alice.directory), grpc.StatusCode.UNAUTHENTICATED)
    assert "revoked" in details and format_serial(alice.serial) in details
    refusals = [entry for entry in logs if entry["event"] == "tls_peer_refused"]
    assert len(refusals) == 1 and refusals[0]["method"] == f"/{REGISTRY}/Register"
    assert await register(address, bob) == "client:bob"
    assert registry.callers == [Identity("client", "alice"), Identity("client", "bob")]


async def test_revocation_is_checked_on_streams_too(ca: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Health Watch (a server stream) is refused for a revoked peer as well."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    alice = issue(ca, role="client", name="alice", out_dir=ca.parent / "alice")
    server_dir = issued(ca, "agent", "watch")
    (server_dir / DENY_LIST).write_text(f"{format_serial(alice.serial)}\n")
    server, _ = await serving(TlsConfig.load(server_dir))
    try:
        async with open_channel(f"127.0.0.1:{server.port}", TlsConfig.load(alice.directory)) as channel:
            stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""), timeout=5)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await asyncio.wait_for(stream.read(), 5)
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        await server.stop(0)


async def test_sdk_says_what_to_check_when_tls_does_not_match(
    ca: Path, secure: tuple[ServingServer, Registry, Path]
) -> None:
    server, _, _ = secure
    async with SynergyClient(f"127.0.0.1:{server.port}", timeout_s=5) as plain:
        with pytest.raises(Unavailable, match=r"--tls-dir DIR \(or SYNERGY_TLS_DIR\)"):
            await plain.list_apps()
    plain_server, _ = await serving(None)
    try:
        tls = TlsConfig.load(issued(ca, "client", "alice"))
        async with SynergyClient(f"127.0.0.1:{plain_server.port}", timeout_s=5, tls=tls) as client:
            with pytest.raises(Unavailable, match=r"uses TLS too \(not --insecure\).*client:alice.*same CA"):
                await client.list_apps()
    finally:
        await plain_server.stop(0)


async def test_a_taken_address_is_named_with_tls_too(secure: tuple[ServingServer, Registry, Path]) -> None:
    server, _, server_dir = secure
    address = f"127.0.0.1:{server.port}"
    with pytest.raises(AddressInUse, match=f"address {address} is in use: is another coordinator running"):
        await start_server(
            address,
            [(partial(registry_pb2_grpc.add_RegistryServiceServicer_to_server, Registry()), REGISTRY)],
            tls=TlsConfig.load(server_dir),
        )
