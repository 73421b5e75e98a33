"""A small certificate authority of our own: one CA directory, certificates per identity.

    synergy ca init  --dir CA                      # CA/ca.pem, CA/ca.key (0600)
    synergy ca issue --dir CA --role agent --name watch-1 [--san 10.0.0.7 ...]
                                                   # CA/agent-watch-1/{cert.pem,key.pem,ca.pem}
    synergy ca revoke --dir CA --serial 5f3a...    # appends to CA/revoked.txt
    synergy ca show CA/agent-watch-1/cert.pem

Keys are EC P-256, written unencrypted (daemons start unattended) as PKCS#8 PEM with mode
0600: every private file is created by ``os.open(..., 0o600)`` under a temporary name and
renamed into place, so it is never readable by others, not even for an instant, and a reader
never sees half a file. Certificates are signed with ECDSA-SHA256 by :mod:`cryptography`;
nothing here is hand-rolled.

What a leaf certificate holds (:func:`issue`):

- the identity (role and name; see :mod:`synergy.security.identity`) as a SAN URI
  ``synergy://<role>/<name>`` and as subject OU = role, CN = name (the CN only when the name
  fits the 64 characters X.509 allows a CN; the URI, which readers take first, always has it);
- SANs DNS ``localhost`` and IP ``127.0.0.1`` always, plus each extra ``--san`` (an IP address
  if it parses as one, else a DNS name), so the same certificate serves a daemon on this host
  and on the addresses given;
- key usage digitalSignature, extended key usage serverAuth *and* clientAuth: every daemon is
  both a server and a client of its peers;
- validity from five minutes ago (tolerating clock skew between devices) for ``days`` days
  (825 by default; the CA itself gets 3650).

The output directory of :func:`issue` holds ``cert.pem``, ``key.pem`` and a copy of the CA
certificate as ``ca.pem``: it is directly usable as a daemon's or a client's ``--tls-dir``.
It must not be the CA directory, which holds the CA's private key.

Rotation. Issue a new certificate for the same role and name (into the same ``--tls-dir``:
the files are replaced atomically), then restart the daemon; it loads its certificate at
start. The old certificate stays valid until it expires; revoke its serial (below) if it must
stop working now. Rotating the CA itself means ``synergy ca init --force`` and issuing every
certificate again — all at once, since old and new certificates do not trust each other.

Revocation. ``synergy ca revoke --serial HEX`` appends the serial (lowercase hex, one per line;
blank lines and ``#`` comments allowed) to ``revoked.txt`` in the CA directory. The coordinator
and the agents read that deny-list (:func:`load_deny_list`) and refuse a peer whose
certificate serial is in it, even though the handshake succeeded (the enforcement lives in the
servers' authorization, not here). Copy the file to wherever the daemons read it after each
revocation. ``synergy ca show FILE.pem`` prints a certificate's serial.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from synergy.errors import FailedPrecondition, InvalidArgument
from synergy.security.identity import (
    Identity,
    identity_uri,
    load_certificate,
    validate_name,
    validate_role,
)

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "CERT",
    "DENY_LIST",
    "KEY",
    "IssuedCert",
    "format_serial",
    "init_ca",
    "issue",
    "load_deny_list",
    "parse_serial",
    "revoke",
]

CA_CERT = "ca.pem"
CA_KEY = "ca.key"
CERT = "cert.pem"
KEY = "key.pem"
DENY_LIST = "revoked.txt"

#: Subject alternative names every leaf certificate carries, so daemons on one host just work.
DEFAULT_DNS = "localhost"
DEFAULT_IP = "127.0.0.1"

#: Start of validity before "now", so a peer whose clock is a little behind accepts a new cert.
CLOCK_SKEW = dt.timedelta(minutes=5)

_PRIVATE_MODE = 0o600
_PUBLIC_MODE = 0o644
#: RFC 5280: a serial is a positive integer of at most 20 octets.
_MAX_SERIAL = (1 << 159) - 1
#: RFC 5280 ub-common-name.
_MAX_COMMON_NAME = 64
_HOSTNAME = re.compile(r"(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")


@dataclass(frozen=True)
class IssuedCert:
    """What :func:`issue` wrote: ``directory`` is usable as a ``--tls-dir``."""

    directory: Path
    cert: Path
    key: Path
    ca: Path
    serial: int
    identity: Identity


def init_ca(directory: Path, *, days: int = 3650, force: bool = False) -> Path:
    """Create a CA in ``directory`` (``ca.pem`` and ``ca.key``); return the CA certificate's path.

    Refuses (FailedPrecondition) when a CA certificate or key is already there, unless ``force``.
    """
    _check_days(days)
    directory = Path(directory)
    cert_path, key_path = directory / CA_CERT, directory / CA_KEY
    if not force:
        for existing in (cert_path, key_path):
            if existing.exists():
                raise FailedPrecondition(
                    f"a CA already exists at {existing}; use --force to replace it "
                    "(every certificate it issued will then have to be issued again)"
                )
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Synergy"),
            # A random suffix tells two throwaway CAs apart in `synergy ca show` and in error messages.
            x509.NameAttribute(NameOID.COMMON_NAME, f"Synergy CA {secrets.token_hex(4)}"),
        ]
    )
    not_before = _now() - CLOCK_SKEW
    public_key = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_file(key_path, _key_pem(key), _PRIVATE_MODE)
    _write_file(cert_path, cert.public_bytes(serialization.Encoding.PEM), _PUBLIC_MODE)
    return cert_path


def issue(
    ca_dir: Path,
    *,
    role: str,
    name: str,
    sans: Sequence[str] = (),
    out_dir: Path | None = None,
    days: int = 825,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
) -> IssuedCert:
    """Issue a key and certificate for ``role:name``, signed by the CA in ``ca_dir``.

    Writes ``cert.pem``, ``key.pem`` (0600) and ``ca.pem`` (a copy of the CA certificate) into
    ``out_dir`` (default ``ca_dir / f"{role}-{name}"``), replacing what is there. ``not_before``
    / ``not_after`` override the validity (naive datetimes are UTC); by default it starts five
    minutes ago and lasts ``days`` days from ``not_before``.
    """
    identity = Identity(role=validate_role(role), name=validate_name(name))
    _check_days(days)
    ca_dir = Path(ca_dir)
    out = Path(out_dir) if out_dir is not None else ca_dir / f"{role}-{name}"
    general_names = _subject_alt_names(identity, sans)
    start = _utc(not_before) if not_before is not None else _now() - CLOCK_SKEW
    end = _utc(not_after) if not_after is not None else start + dt.timedelta(days=days)
    if end <= start:
        raise InvalidArgument(f"validity ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    ca_cert, ca_key, ca_pem = _load_ca(ca_dir)
    if out.resolve() == ca_dir.resolve():
        raise InvalidArgument(
            f"--out {out} is the CA directory, which holds the CA's private key; choose another directory"
        )

    key = ec.generate_private_key(ec.SECP256R1())
    public_key = key.public_key()
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_leaf_subject(identity))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(serial)
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName(general_names), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_identifier(ca_cert), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    out.mkdir(parents=True, exist_ok=True)
    issued = IssuedCert(
        directory=out, cert=out / CERT, key=out / KEY, ca=out / CA_CERT, serial=serial, identity=identity
    )
    _write_file(issued.key, _key_pem(key), _PRIVATE_MODE)
    _write_file(issued.cert, cert.public_bytes(serialization.Encoding.PEM), _PUBLIC_MODE)
    _write_file(issued.ca, ca_pem, _PUBLIC_MODE)
    return issued


def revoke(ca_dir: Path, serial: int) -> None:
    """Append ``serial`` to ``ca_dir/revoked.txt`` (created if missing; no-op if already listed)."""
    _check_serial(serial)
    ca_dir = Path(ca_dir)
    if not (ca_dir / CA_CERT).is_file():
        raise FailedPrecondition(f"no CA at {ca_dir}: {ca_dir / CA_CERT} is missing (run `synergy ca init --dir`)")
    path = ca_dir / DENY_LIST
    if serial in load_deny_list(path):
        return
    if path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        text = "# Synergy deny-list: serials of revoked certificates, lowercase hex, one per line.\n"
    if text and not text.endswith("\n"):
        text += "\n"
    text += f"{format_serial(serial)}  # revoked {_now().strftime('%Y-%m-%dT%H:%M:%SZ')}\n"
    _write_file(path, text.encode("utf-8"), _PUBLIC_MODE)


def load_deny_list(path: Path) -> frozenset[int]:
    """The serials in a deny-list file; a missing file is an empty list.

    One hex serial per line (an optional ``0x`` prefix and ``:`` separators are accepted);
    blank lines and ``#`` comments (whole-line or trailing) are ignored. A line that is not a
    serial raises InvalidArgument naming the file and the line number.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return frozenset()
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"cannot read deny-list {path}: {exc}") from None
    serials: set[int] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        entry = line.split("#", 1)[0].strip()
        if not entry:
            continue
        try:
            serials.add(parse_serial(entry))
        except InvalidArgument as exc:
            raise InvalidArgument(f"{path}:{number}: {exc}") from None
    return frozenset(serials)


def format_serial(serial: int) -> str:
    """A serial as written in the deny-list and printed by the CLI: lowercase hex, no prefix."""
    return f"{serial:x}"


def parse_serial(text: str) -> int:
    """Parse a hex serial (``5f3a``, ``0x5F3A`` or ``5f:3a``); InvalidArgument if it is not one."""
    digits = text.strip().lower().removeprefix("0x").replace(":", "")
    if not digits or not re.fullmatch(r"[0-9a-f]+", digits):
        raise InvalidArgument(f"not a hex certificate serial: {text.strip()!r}")
    serial = int(digits, 16)
    _check_serial(serial)
    return serial


def _check_serial(serial: int) -> None:
    if not 0 < serial <= _MAX_SERIAL:
        raise InvalidArgument(f"certificate serial {serial:#x} out of range: must be positive and at most 20 octets")


def _check_days(days: int) -> None:
    if days < 1:
        raise InvalidArgument(f"days must be at least 1, got {days}")


def _subject_alt_names(identity: Identity, extra: Iterable[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for san in (DEFAULT_DNS, DEFAULT_IP, *extra):
        general = _general_name(san)
        if general not in names:
            names.append(general)
    names.append(x509.UniformResourceIdentifier(identity_uri(identity)))
    return names


def _general_name(san: str) -> x509.GeneralName:
    text = san.strip()
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    if len(text) > 253 or not _HOSTNAME.fullmatch(text):
        raise InvalidArgument(
            f"--san {san!r} is neither an IP address nor a DNS name (letters, digits, '-', '_', dots; "
            "optionally a leading '*.')"
        )
    return x509.DNSName(text.lower())


def _leaf_subject(identity: Identity) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, identity.role)]
    # X.509 caps a CN at 64 characters; a longer name lives only in the synergy:// URI.
    if len(identity.name) <= _MAX_COMMON_NAME:
        attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, identity.name))
    return x509.Name(attributes)


def _load_ca(ca_dir: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, bytes]:
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    for required in (cert_path, key_path):
        if not required.is_file():
            raise FailedPrecondition(f"no CA at {ca_dir}: {required} is missing (run `synergy ca init --dir {ca_dir}`)")
    ca_pem = cert_path.read_bytes()
    ca_cert = load_certificate(ca_pem)
    try:
        ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise FailedPrecondition(f"cannot read the CA key {key_path}: {exc}") from None
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise FailedPrecondition(f"the CA key {key_path} is not an EC key")
    if ca_key.public_key() != ca_cert.public_key():
        raise FailedPrecondition(f"the CA key {key_path} does not belong to the CA certificate {cert_path}")
    return ca_cert, ca_key, ca_pem


def _authority_key_identifier(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    try:
        ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        public_key = ca_cert.public_key()
        if not isinstance(public_key, ec.EllipticCurvePublicKey):
            raise FailedPrecondition("the CA certificate does not hold an EC public key") from None
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(public_key)
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=serialization.NoEncryption(),
    )


def _write_file(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically; the file never exists with wider permissions than ``mode``."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)  # the umask may have narrowed a public file; never widens a private one
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
