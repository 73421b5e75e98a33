"""Our small CA: init and issue write usable key/cert directories (keys 0600), identities round
trip through the certificate, SANs and usages are right, validity can be forced into the past or
future, revocation writes a deny-list that loads back, bad input is refused by name, the
``synergy ca`` commands work through argparse, and a real gRPC server with mutual TLS accepts a
certificate of the CA and refuses everything else."""

from __future__ import annotations

import argparse
import datetime as dt
import ipaddress
import os
import stat
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from synergy.cli import ca_cmd
from synergy.errors import FailedPrecondition, InvalidArgument
from synergy.security.ca import (
    CA_CERT,
    CA_KEY,
    CERT,
    DENY_LIST,
    KEY,
    IssuedCert,
    init_ca,
    issue,
    load_deny_list,
    revoke,
)
from synergy.security.identity import ROLES, Identity, identity_from_pem, serial_of_pem

UTC = dt.UTC


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def sans_of(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def verify_as_server(ca_path: Path, cert_path: Path, host: str, at: dt.datetime | None = None) -> None:
    """Full RFC 5280 path validation (time included) of a server certificate for ``host``."""
    builder = PolicyBuilder().store(Store([load(ca_path)]))
    if at is not None:
        builder = builder.time(at)
    verifier = builder.build_server_verifier(x509.DNSName(host))
    verifier.verify(load(cert_path), [])


@pytest.fixture
def ca_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "ca"
    init_ca(directory)
    return directory


# --- init ---------------------------------------------------------------------------------------


def test_init_writes_a_ca_with_a_private_key(tmp_path: Path) -> None:
    directory = tmp_path / "new" / "ca"
    cert_path = init_ca(directory, days=30)
    assert cert_path == directory / CA_CERT
    assert mode_of(directory / CA_KEY) == 0o600
    cert = load(cert_path)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert cert.subject == cert.issuer
    cert.verify_directly_issued_by(cert)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=30)
    key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
    assert key.public_key() == cert.public_key()
    assert sorted(p.name for p in directory.iterdir()) == [CA_KEY, CA_CERT]  # no temporary files left


def test_keys_are_created_0600_never_wider(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Even under umask 0 every private key is born 0600 (no chmod after a world-readable create)."""
    created: list[tuple[str, int]] = []
    real_open = os.open

    def recording_open(path: Any, flags: int, mode: int = 0o777, **kwargs: Any) -> int:
        created.append((os.fspath(path), mode))
        return real_open(path, flags, mode, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)  # ca.py calls os.open: the module attribute
    old_umask = os.umask(0)
    try:
        init_ca(tmp_path / "ca")
        issued = issue(tmp_path / "ca", role="agent", name="dev-1")
    finally:
        os.umask(old_umask)
    key_modes = [mode for path, mode in created if Path(path).name.startswith((f".{CA_KEY}", f".{KEY}"))]
    assert key_modes == [0o600, 0o600]
    assert mode_of(tmp_path / "ca" / CA_KEY) == 0o600
    assert mode_of(issued.key) == 0o600
    assert mode_of(issued.cert) == 0o644


def test_second_init_is_refused_unless_forced(ca_dir: Path) -> None:
    before = (ca_dir / CA_CERT).read_bytes()
    with pytest.raises(FailedPrecondition, match=str(ca_dir / CA_CERT)):
        init_ca(ca_dir)
    assert (ca_dir / CA_CERT).read_bytes() == before
    (ca_dir / CA_CERT).unlink()
    with pytest.raises(FailedPrecondition, match=str(ca_dir / CA_KEY)):  # a lone key is a CA too
        init_ca(ca_dir)
    init_ca(ca_dir, force=True)
    assert (ca_dir / CA_CERT).read_bytes() != before
    assert mode_of(ca_dir / CA_KEY) == 0o600


# --- issue --------------------------------------------------------------------------------------


@pytest.mark.parametrize("role", ROLES)
def test_issue_for_each_role_round_trips_the_identity(ca_dir: Path, role: str) -> None:
    issued = issue(ca_dir, role=role, name=f"{role}-1.x_y")
    assert issued.directory == ca_dir / f"{role}-{role}-1.x_y"
    assert (issued.cert, issued.key, issued.ca) == (
        issued.directory / CERT,
        issued.directory / KEY,
        issued.directory / CA_CERT,
    )
    assert issued.identity == Identity(role, f"{role}-1.x_y")
    assert str(issued.identity) == f"{role}:{role}-1.x_y"
    pem = issued.cert.read_bytes()
    assert identity_from_pem(pem) == issued.identity
    assert serial_of_pem(pem) == issued.serial == load(issued.cert).serial_number
    assert issued.ca.read_bytes() == (ca_dir / CA_CERT).read_bytes()
    assert mode_of(issued.key) == 0o600
    key = serialization.load_pem_private_key(issued.key.read_bytes(), password=None)
    assert key.public_key() == load(issued.cert).public_key()
    cert = load(issued.cert)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == f"{role}-1.x_y"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == role


def test_sans_usages_and_signature(ca_dir: Path, tmp_path: Path) -> None:
    issued = issue(
        ca_dir,
        role="agent",
        name="watch-1",
        sans=["watch-1.local", "10.0.0.7", "::1", "localhost", "127.0.0.1"],
        out_dir=tmp_path / "tls",
    )
    assert issued.directory == tmp_path / "tls"
    cert = load(issued.cert)
    san = sans_of(cert)
    assert san.get_values_for_type(x509.DNSName) == ["localhost", "watch-1.local"]  # no duplicates
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("10.0.0.7"),
        ipaddress.ip_address("::1"),
    ]
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["synergy://agent/watch-1"]
    usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(usages) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert not cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca

    ca_cert = load(ca_dir / CA_CERT)
    cert.verify_directly_issued_by(ca_cert)
    verify_as_server(ca_dir / CA_CERT, issued.cert, "localhost")
    verify_as_server(ca_dir / CA_CERT, issued.cert, "watch-1.local")
    with pytest.raises(VerificationError):
        verify_as_server(ca_dir / CA_CERT, issued.cert, "elsewhere.example")

    other = tmp_path / "other-ca"
    init_ca(other)
    with pytest.raises(ValueError):  # the issuer name differs (a random suffix per CA)
        cert.verify_directly_issued_by(load(other / CA_CERT))
    with pytest.raises(VerificationError):
        verify_as_server(other / CA_CERT, issued.cert, "localhost")


def test_issue_again_rotates_in_place(ca_dir: Path) -> None:
    first = issue(ca_dir, role="coordinator", name="coordinator")
    old_key = first.key.read_bytes()
    second = issue(ca_dir, role="coordinator", name="coordinator")
    assert second.directory == first.directory
    assert second.serial != first.serial
    assert first.key.read_bytes() != old_key
    assert serial_of_pem(second.cert.read_bytes()) == second.serial
    assert sorted(p.name for p in second.directory.iterdir()) == [CA_CERT, CERT, KEY]


def test_validity_can_be_expired_or_not_yet_valid(ca_dir: Path, tmp_path: Path) -> None:
    now = dt.datetime.now(UTC)
    expired = issue(
        ca_dir,
        role="client",
        name="old",
        out_dir=tmp_path / "old",
        not_before=now - dt.timedelta(minutes=4),  # the CA itself is valid from five minutes ago
        not_after=now - dt.timedelta(minutes=1),
    )
    tomorrow = now + dt.timedelta(days=1)
    future = issue(ca_dir, role="client", name="early", out_dir=tmp_path / "early", not_before=tomorrow)
    assert load(expired.cert).not_valid_after_utc < now
    assert load(future.cert).not_valid_before_utc > now
    assert load(future.cert).not_valid_after_utc - load(future.cert).not_valid_before_utc == dt.timedelta(days=825)
    for issued in (expired, future):
        with pytest.raises(VerificationError):
            verify_as_server(ca_dir / CA_CERT, issued.cert, "localhost")
    # ...yet both are fine at a moment inside their validity: only the time is wrong.
    verify_as_server(ca_dir / CA_CERT, expired.cert, "localhost", at=now - dt.timedelta(minutes=2))
    verify_as_server(ca_dir / CA_CERT, future.cert, "localhost", at=now + dt.timedelta(days=2))

    default = issue(ca_dir, role="client", name="now", out_dir=tmp_path / "now", days=7)
    cert = load(default.cert)
    assert cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
    naive = issue(ca_dir, role="client", name="naive", out_dir=tmp_path / "naive", not_before=dt.datetime(2030, 1, 1))
    assert load(naive.cert).not_valid_before_utc == dt.datetime(2030, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidArgument, match="before it starts"):
        issue(ca_dir, role="client", name="x", not_before=now, not_after=now - dt.timedelta(seconds=1))


@pytest.mark.parametrize("role", ["", "Agent", "root", "agent "])
def test_unknown_role_is_refused_listing_the_roles(ca_dir: Path, role: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        issue(ca_dir, role=role, name="x")
    assert all(r in str(info.value) for r in ROLES)
    assert sorted(p.name for p in ca_dir.iterdir()) == [CA_KEY, CA_CERT]


@pytest.mark.parametrize("name", ["", "a/b", "has space", "x" * 129, "caf\u00e9", "../up", "a:b"])
def test_bad_name_is_refused_naming_the_allowed_characters(ca_dir: Path, name: str) -> None:
    with pytest.raises(InvalidArgument, match=r"A-Z a-z, digits 0-9, '\.', '_' and '-'"):
        issue(ca_dir, role="agent", name=name)
    assert sorted(p.name for p in ca_dir.iterdir()) == [CA_KEY, CA_CERT]


def test_name_of_128_characters_is_fine(ca_dir: Path, tmp_path: Path) -> None:
    issued = issue(ca_dir, role="agent", name="n" * 128, out_dir=tmp_path / "long")
    assert identity_from_pem(issued.cert.read_bytes()).name == "n" * 128
    # A CN holds at most 64 characters: the long name is in the URI only, not truncated into the CN.
    assert load(issued.cert).subject.get_attributes_for_oid(NameOID.COMMON_NAME) == []


def test_other_bad_issue_input(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="bad host!"):
        issue(ca_dir, role="agent", name="a", sans=["bad host!"])
    with pytest.raises(InvalidArgument, match="days"):
        issue(ca_dir, role="agent", name="a", days=0)
    with pytest.raises(InvalidArgument, match="CA directory"):
        issue(ca_dir, role="agent", name="a", out_dir=ca_dir)
    with pytest.raises(FailedPrecondition, match=str(tmp_path / "nowhere" / CA_CERT)):
        issue(tmp_path / "nowhere", role="agent", name="a")
    assert not (tmp_path / "nowhere").exists()
    other = tmp_path / "other"
    init_ca(other)
    (ca_dir / CA_KEY).write_bytes((other / CA_KEY).read_bytes())
    with pytest.raises(FailedPrecondition, match="does not belong"):
        issue(ca_dir, role="agent", name="a")


# --- identity from foreign certificates ---------------------------------------------------------


def self_signed(subject: list[x509.NameAttribute[Any]], sans: Sequence[x509.GeneralName] = ()) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(x509.Name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def test_identity_falls_back_to_the_subject_and_prefers_the_uri() -> None:
    ou, cn = NameOID.ORGANIZATIONAL_UNIT_NAME, NameOID.COMMON_NAME
    subject_only = self_signed([x509.NameAttribute(ou, "admin"), x509.NameAttribute(cn, "alice")])
    assert identity_from_pem(subject_only) == Identity("admin", "alice")
    both = self_signed(
        [x509.NameAttribute(ou, "admin"), x509.NameAttribute(cn, "alice")],
        [x509.DNSName("localhost"), x509.UniformResourceIdentifier("synergy://agent/dev-9")],
    )
    assert identity_from_pem(both) == Identity("agent", "dev-9")


def test_certificates_without_an_identity_are_refused_by_name(ca_dir: Path) -> None:
    with pytest.raises(InvalidArgument, match=r"synergy://<role>/<name>.*OU \(the role\)"):
        identity_from_pem((ca_dir / CA_CERT).read_bytes())
    cn_only = self_signed([x509.NameAttribute(NameOID.COMMON_NAME, "www.example.com")])
    with pytest.raises(InvalidArgument, match=r"OU \(the role\)") as info:
        identity_from_pem(cn_only)
    assert "CN (the name)" not in str(info.value)
    bad_uri = self_signed(
        [x509.NameAttribute(NameOID.COMMON_NAME, "x")], [x509.UniformResourceIdentifier("synergy://root/x")]
    )
    with pytest.raises(InvalidArgument, match="unknown role 'root'"):
        identity_from_pem(bad_uri)
    malformed = self_signed(
        [x509.NameAttribute(NameOID.COMMON_NAME, "x")], [x509.UniformResourceIdentifier("synergy://agent/a/b")]
    )
    with pytest.raises(InvalidArgument, match="malformed identity URI"):
        identity_from_pem(malformed)
    two = self_signed(
        [x509.NameAttribute(NameOID.COMMON_NAME, "x")],
        [x509.UniformResourceIdentifier("synergy://agent/a"), x509.UniformResourceIdentifier("synergy://admin/b")],
    )
    with pytest.raises(InvalidArgument, match="expected one"):
        identity_from_pem(two)
    with pytest.raises(InvalidArgument, match="not a PEM certificate"):
        identity_from_pem(b"not a certificate")
    with pytest.raises(InvalidArgument, match="not a PEM certificate"):
        serial_of_pem(b"")


# --- revocation ---------------------------------------------------------------------------------


def test_revoke_appends_and_load_reads_back(ca_dir: Path) -> None:
    assert load_deny_list(ca_dir / DENY_LIST) == frozenset()
    first = issue(ca_dir, role="agent", name="lost-watch")
    second = issue(ca_dir, role="client", name="ex-employee")
    revoke(ca_dir, first.serial)
    revoke(ca_dir, second.serial)
    revoke(ca_dir, first.serial)  # already listed: no second line
    assert load_deny_list(ca_dir / DENY_LIST) == {first.serial, second.serial}
    lines = (ca_dir / DENY_LIST).read_text().splitlines()
    entries = [line.split("#")[0].strip() for line in lines if not line.startswith("#")]
    assert entries == [f"{first.serial:x}", f"{second.serial:x}"]


def test_deny_list_syntax(tmp_path: Path) -> None:
    path = tmp_path / "deny.txt"
    path.write_text("# comment\n\n  1a2B  \n0xff # trailing comment\nde:ad:be:ef\n")
    assert load_deny_list(path) == {0x1A2B, 0xFF, 0xDEADBEEF}
    path.write_text("# fine\n1a\nnot-hex\n")
    with pytest.raises(InvalidArgument, match=rf"{path}:3: .*'not-hex'"):
        load_deny_list(path)
    path.write_text("0\n")
    with pytest.raises(InvalidArgument, match=rf"{path}:1:"):
        load_deny_list(path)
    with pytest.raises(InvalidArgument, match="cannot read"):
        load_deny_list(tmp_path)  # a directory


def test_revoke_refuses_bad_serials_and_non_ca_dirs(ca_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="serial"):
        revoke(ca_dir, 0)
    with pytest.raises(InvalidArgument, match="serial"):
        revoke(ca_dir, 1 << 160)
    with pytest.raises(FailedPrecondition, match=str(tmp_path / "empty")):
        revoke(tmp_path / "empty", 5)
    assert not (ca_dir / DENY_LIST).exists()


# --- the CLI ------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="synergy")
    sub = root.add_subparsers(dest="command", required=True)
    ca_cmd.register(sub)
    return root


def run(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    return func(args)


def test_cli_init_issue_revoke_show(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "ca"
    assert run(["ca", "init", "--dir", str(directory), "--days", "100"]) == 0
    out = capsys.readouterr().out
    assert str(directory / CA_CERT) in out and str(directory / CA_KEY) in out
    with pytest.raises(FailedPrecondition):
        run(["ca", "init", "--dir", str(directory)])
    assert run(["ca", "init", "--dir", str(directory), "--force"]) == 0
    capsys.readouterr()

    tls = tmp_path / "tls"
    argv = ["ca", "issue", "--dir", str(directory), "--role", "agent", "--name", "watch-1"]
    assert run([*argv, "--san", "10.1.2.3", "--san", "watch.local", "--out", str(tls), "--days", "9"]) == 0
    out = capsys.readouterr().out
    serial = serial_of_pem((tls / CERT).read_bytes())
    assert f"agent:watch-1 serial {serial:x}" in out
    for path in (tls / CERT, tls / KEY, tls / CA_CERT):
        assert str(path) in out
    assert "IP:10.1.2.3" in out and "DNS:watch.local" in out
    assert identity_from_pem((tls / CERT).read_bytes()) == Identity("agent", "watch-1")
    cert = load(tls / CERT)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == dt.timedelta(days=9)

    assert run(["ca", "issue", "--dir", str(directory), "--role", "client", "--name", "app"]) == 0
    assert str(directory / "client-app" / CERT) in capsys.readouterr().out

    assert run(["ca", "show", str(tls / CERT)]) == 0
    out = capsys.readouterr().out
    assert "identity: agent:watch-1" in out
    assert f"serial:   {serial:x}" in out
    assert "DNS:localhost" in out and "IP:127.0.0.1" in out and "URI:synergy://agent/watch-1" in out
    assert "valid for" in out
    assert run(["ca", "show", str(directory / CA_CERT)]) == 0
    assert "identity: none (a CA certificate)" in capsys.readouterr().out

    assert run(["ca", "revoke", "--dir", str(directory), "--serial", f"0x{serial:X}"]) == 0
    assert str(directory / DENY_LIST) in capsys.readouterr().out
    assert load_deny_list(directory / DENY_LIST) == {serial}


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    directory = tmp_path / "ca"
    init_ca(directory)
    with pytest.raises(SystemExit) as exit_info:
        run(["ca", "issue", "--dir", str(directory), "--role", "root", "--name", "x"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(InvalidArgument, match="characters"):
        run(["ca", "issue", "--dir", str(directory), "--role", "agent", "--name", "a b"])
    with pytest.raises(InvalidArgument, match="not a hex certificate serial"):
        run(["ca", "revoke", "--dir", str(directory), "--serial", "xyz"])
    with pytest.raises(InvalidArgument, match="cannot read"):
        run(["ca", "show", str(tmp_path / "missing.pem")])
    (tmp_path / "junk.pem").write_text("junk")
    with pytest.raises(InvalidArgument, match="not a PEM certificate"):
        run(["ca", "show", str(tmp_path / "junk.pem")])


def test_cli_expired_certificate_is_shown_as_expired(ca_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = dt.datetime.now(UTC)
    issued = issue(ca_dir, role="admin", name="root", not_before=now - dt.timedelta(days=3), not_after=now)
    assert run(["ca", "show", str(issued.cert)]) == 0
    assert "EXPIRED" in capsys.readouterr().out


@pytest.mark.parametrize(("command", "default"), [("init", "3650"), ("issue", "825")])
def test_cli_help_shows_defaults(command: str, default: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parser().parse_args(["ca", command, "--help"])
    assert f"(default: {default})" in capsys.readouterr().out


# --- a real gRPC server with mutual TLS ---------------------------------------------------------


class RecordingHealth(health.aio.HealthServicer):  # type: ignore[misc]
    """Health that also records who called: the peer reads the identity from the client's certificate."""

    def __init__(self) -> None:
        super().__init__()
        self.callers: list[Identity] = []

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        self.callers.append(identity_from_pem(context.auth_context()["x509_pem_cert"][0]))
        return await super().Check(request, context)


@pytest.fixture
async def mtls_server(ca_dir: Path) -> AsyncIterator[tuple[int, RecordingHealth]]:
    issued = issue(ca_dir, role="coordinator", name="coordinator")
    credentials = grpc.ssl_server_credentials(
        [(issued.key.read_bytes(), issued.cert.read_bytes())],
        root_certificates=issued.ca.read_bytes(),
        require_client_auth=True,
    )
    servicer = RecordingHealth()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port, servicer
    finally:
        await server.stop(0)


async def check(
    target: str, issued: IssuedCert | None, ca_pem: bytes, options: Sequence[tuple[str, Any]] = ()
) -> health_pb2.HealthCheckResponse:
    if issued is None:
        credentials = grpc.ssl_channel_credentials(ca_pem)
    else:
        credentials = grpc.ssl_channel_credentials(ca_pem, issued.key.read_bytes(), issued.cert.read_bytes())
    async with grpc.aio.secure_channel(target, credentials, options=list(options)) as channel:
        answer: health_pb2.HealthCheckResponse = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=10
        )
        return answer


async def test_grpc_mtls_accepts_our_certificates(
    mtls_server: tuple[int, RecordingHealth], ca_dir: Path, tmp_path: Path
) -> None:
    port, servicer = mtls_server
    client = issue(ca_dir, role="client", name="app-owner", out_dir=tmp_path / "client")
    agent = issue(ca_dir, role="agent", name="watch-1", out_dir=tmp_path / "agent")
    ca_pem = client.ca.read_bytes()
    for target, issued in ((f"localhost:{port}", client), (f"127.0.0.1:{port}", agent)):
        answer = await check(target, issued, ca_pem)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    assert servicer.callers == [Identity("client", "app-owner"), Identity("agent", "watch-1")]


async def test_grpc_mtls_refuses_everything_else(
    mtls_server: tuple[int, RecordingHealth], ca_dir: Path, tmp_path: Path
) -> None:
    port, servicer = mtls_server
    target = f"localhost:{port}"
    ca_pem = (ca_dir / CA_CERT).read_bytes()
    now = dt.datetime.now(UTC)
    other_ca = tmp_path / "other-ca"
    init_ca(other_ca)
    stranger = issue(other_ca, role="client", name="app-owner", out_dir=tmp_path / "stranger")
    expired = issue(
        ca_dir,
        role="client",
        name="old",
        out_dir=tmp_path / "expired",
        not_before=now - dt.timedelta(days=2),
        not_after=now - dt.timedelta(days=1),
    )
    tomorrow = now + dt.timedelta(days=1)
    early = issue(ca_dir, role="client", name="early", out_dir=tmp_path / "early", not_before=tomorrow)
    good = issue(ca_dir, role="client", name="good", out_dir=tmp_path / "good")

    attempts: list[tuple[str, IssuedCert | None, bytes, Sequence[tuple[str, Any]]]] = [
        ("a certificate from another CA", stranger, ca_pem, ()),
        ("an expired certificate", expired, ca_pem, ()),
        ("a not-yet-valid certificate", early, ca_pem, ()),
        ("no client certificate", None, ca_pem, ()),
        # The client checks the server too: a server from another CA, and a host name not in the SANs.
        ("a client trusting only another CA", good, stranger.ca.read_bytes(), ()),
        ("a host name outside the SANs", good, ca_pem, (("grpc.ssl_target_name_override", "elsewhere.example"),)),
    ]
    for what, issued, trusted, options in attempts:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await check(target, issued, trusted, options)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE, what
    assert servicer.callers == []
    # ...while the same server still serves a good client.
    assert (await check(target, good, ca_pem)).status == health_pb2.HealthCheckResponse.SERVING
    assert servicer.callers == [Identity("client", "good")]
