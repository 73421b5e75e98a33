"""A mosquitto configuration for the event plane: TLS only, one identity per certificate, an ACL.

    synergy mqtt-config --ca-dir CA --out broker-conf
    mosquitto -c broker-conf/mosquitto.conf

:func:`write_mosquitto_config` writes into ``out_dir``:

- ``mosquitto.conf``: one TLS listener (no plain-text one) that requires a client certificate
  signed by our CA (``require_certificate``), takes the certificate's CN — the Synergy
  identity's name; an agent's name is its device id — as the MQTT username
  (``use_identity_as_username``), refuses anonymous clients and checks every publish and
  subscription against the ACL; no persistence;
- ``acl``: what each username may do (below);
- ``crl.pem``: a certificate revocation list signed by the CA holding every serial in the CA's
  deny-list (``revoked.txt``, see :mod:`synergy.security.ca`), so that a revoked certificate
  cannot connect to the broker either (an empty list when nothing is revoked);
- ``broker/``: the broker's own certificate, key and CA copy, issued by the CA with role
  ``client`` (the least privileged role: on the gRPC side it can own its own apps, nothing
  else; every certificate of our CA is valid for TLS servers) and name ``server_name``, with
  SANs ``localhost``, ``127.0.0.1``, the bind address and any extra ``sans``: clients verify
  the broker's host name against them.

The ACL (mosquitto 2.x semantics, verified against a real broker by
``tests/integration/test_mqtt_security.py``):

- ``pattern write PREFIX/devices/%u/#`` — every identity, agents included, may publish only
  under its own device's topics (``%u`` is the certificate's CN);
- ``user <coordinator>``: ``topic read PREFIX/#``, ``topic write PREFIX/plan``,
  ``PREFIX/apps/#`` and ``PREFIX/coordinator/#`` — only the coordinator publishes the plan,
  results and its own state;
- ``user <reader>`` (clients, admins, dashboards named with ``reader_names``):
  ``topic read PREFIX/#``;
- nothing else: agents read nothing (they need nothing), anonymous clients get nothing.

The broker sees only the CN, not the role (OU): the rights follow the *name*. Never issue a
certificate of another role under a coordinator's or a reader's name.

mosquitto started as root switches to the account ``mosquitto`` (or ``run_as_user``) before it
reads any of these files: that account must be able to read them, the broker's key included.

Re-run the command after ``synergy ca revoke`` (to refresh ``crl.pem``) or when coordinators
or readers change, then restart mosquitto (rotating the broker's certificate on the way).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from synergy.defaults import DEFAULT_MQTT_PREFIX
from synergy.errors import FailedPrecondition, InvalidArgument
from synergy.security.ca import CA_CERT, CA_KEY, DENY_LIST, issue, load_deny_list
from synergy.security.identity import validate_name

__all__ = [
    "ACL_FILE",
    "BROKER_DIR",
    "BROKER_ROLE",
    "CONFIG_FILE",
    "CRL_FILE",
    "DEFAULT_TLS_PORT",
    "BrokerFiles",
    "broker_files",
    "render_acl",
    "render_config",
    "write_mosquitto_config",
]

CONFIG_FILE = "mosquitto.conf"
ACL_FILE = "acl"
CRL_FILE = "crl.pem"
BROKER_DIR = "broker"
#: The role of the broker's own certificate: the least privileged one.
BROKER_ROLE = "client"
DEFAULT_TLS_PORT = 8883
#: Validity of the broker's certificate and of the revocation list (days).
DEFAULT_DAYS = 825

_WILDCARD_BINDS = ("0.0.0.0", "::")


@dataclass(frozen=True)
class BrokerFiles:
    """Where :func:`write_mosquitto_config` puts each file under ``out_dir``."""

    config: Path
    acl: Path
    crl: Path
    cert: Path
    key: Path
    ca: Path


def broker_files(out_dir: Path) -> BrokerFiles:
    out = Path(out_dir).absolute()
    broker = out / BROKER_DIR
    return BrokerFiles(
        config=out / CONFIG_FILE,
        acl=out / ACL_FILE,
        crl=out / CRL_FILE,
        cert=broker / "cert.pem",
        key=broker / "key.pem",
        ca=broker / "ca.pem",
    )


def write_mosquitto_config(
    out_dir: Path,
    *,
    ca_dir: Path,
    port: int = DEFAULT_TLS_PORT,
    bind: str = "127.0.0.1",
    prefix: str = DEFAULT_MQTT_PREFIX,
    coordinator_names: Sequence[str] = ("coordinator",),
    reader_names: Sequence[str] = (),
    server_name: str = "broker",
    sans: Sequence[str] = (),
    days: int = DEFAULT_DAYS,
    run_as_user: str | None = None,
) -> Path:
    """Write mosquitto.conf, the ACL, the CRL and the broker's certificate; return the config's path.

    Paths inside the configuration are absolute, so ``mosquitto -c OUT/mosquitto.conf`` works
    from any directory. Existing files are replaced.

    mosquitto started as root switches to another account (``run_as_user``; by default
    ``mosquitto``) *before* it reads any of these files, so that account must be able to read
    ``out_dir`` (the broker's key included). Started as another user, it reads them as that user.
    """
    if not 0 < port < 65536:
        raise InvalidArgument(f"port {port} out of range: 1-65535")
    bind = bind.strip()
    if not bind or any(c.isspace() for c in bind):
        raise InvalidArgument(f"bind address {bind!r}: expected a host or IP address, e.g. 127.0.0.1 or 0.0.0.0")
    if run_as_user is not None and (not run_as_user or any(c.isspace() for c in run_as_user)):
        raise InvalidArgument(f"user {run_as_user!r}: expected an account name")
    if not coordinator_names:
        raise InvalidArgument("at least one coordinator name is needed: only a coordinator publishes the plan")
    for name in (*coordinator_names, *reader_names, server_name):
        validate_name(name)
    out = Path(out_dir).absolute()
    for path in (out, Path(ca_dir).absolute()):
        if "\n" in str(path) or "\r" in str(path):
            raise InvalidArgument(f"path {str(path)!r} holds a line break: mosquitto.conf cannot name it")
    if out.resolve() == Path(ca_dir).resolve():
        raise InvalidArgument(f"--out {out} is the CA directory, which holds the CA's private key; choose another")
    acl = render_acl(_check_prefix(prefix), coordinator_names, reader_names)

    files = broker_files(out)
    out.mkdir(parents=True, exist_ok=True)
    host_sans = [bind] if bind not in _WILDCARD_BINDS else []
    issue(
        Path(ca_dir), role=BROKER_ROLE, name=server_name, sans=[*host_sans, *sans], out_dir=files.cert.parent, days=days
    )
    _write_text(files.crl, _revocation_list(Path(ca_dir), days).decode("ascii"))
    _write_text(files.acl, acl)
    _write_text(files.config, render_config(files, port=port, bind=bind, run_as_user=run_as_user))
    return files.config


def render_config(files: BrokerFiles, *, port: int, bind: str, run_as_user: str | None = None) -> str:
    """The text of mosquitto.conf for the files in ``files``."""
    user = (
        ""
        if run_as_user is None
        else f"# The account mosquitto switches to when started as root.\nuser {run_as_user}\n"
    )
    return f"""\
# mosquitto configuration for Synergy's event plane, written by `synergy mqtt-config`.
# Run it with:  mosquitto -c {files.config}
# TLS only, a client certificate from our CA required; its CN is the MQTT username.
per_listener_settings true
persistence false
{user}
listener {port} {bind}
cafile {files.ca}
certfile {files.cert}
keyfile {files.key}
crlfile {files.crl}
tls_version tlsv1.2
require_certificate true
use_identity_as_username true
allow_anonymous false
acl_file {files.acl}
"""


def render_acl(prefix: str, coordinator_names: Sequence[str], reader_names: Sequence[str] = ()) -> str:
    """The ACL: agents publish under their own device, coordinators publish plan and results."""
    lines = [
        "# mosquitto ACL for Synergy's event plane, written by `synergy mqtt-config`.",
        "# The username is the client certificate's CN: a Synergy name (an agent's is its device id).",
        "# No topic lines before the first `user`: anonymous clients get nothing.",
        "",
        "# Every identity, agents included: publish only under its own device's topics.",
        f"pattern write {prefix}/devices/%u/#",
    ]
    for name in dict.fromkeys(coordinator_names):
        lines += [
            "",
            "# A coordinator: reads everything; publishes the plan, the results and its own state.",
            f"user {name}",
            f"topic read {prefix}/#",
            f"topic write {prefix}/plan",
            f"topic write {prefix}/apps/#",
            f"topic write {prefix}/coordinator/#",
        ]
    for name in dict.fromkeys(reader_names):
        if name in coordinator_names:
            continue
        lines += [
            "",
            "# A reader (client, admin, dashboard): reads everything.",
            f"user {name}",
            f"topic read {prefix}/#",
        ]
    return "\n".join(lines) + "\n"


def _check_prefix(prefix: str) -> str:
    """The prefix as the daemons use it (trailing '/' dropped); InvalidArgument if unusable."""
    clean = prefix.rstrip("/")
    problem = ""
    if not clean:
        problem = "is empty"
    elif any(c in clean for c in "+#") or any(c.isspace() for c in clean):
        problem = "holds a wildcard (+ or #) or white space"
    elif clean.startswith(("/", "$")) or "//" in clean:
        problem = "starts with '/' or '$', or has an empty level"
    if problem:
        raise InvalidArgument(f"MQTT prefix {prefix!r} {problem}")
    return clean


def _revocation_list(ca_dir: Path, days: int) -> bytes:
    """A CRL signed by the CA listing every serial of its deny-list (PEM)."""
    cert_path, key_path = ca_dir / CA_CERT, ca_dir / CA_KEY
    for required in (cert_path, key_path):
        if not required.is_file():
            raise FailedPrecondition(f"no CA at {ca_dir}: {required} is missing (run `synergy ca init --dir {ca_dir}`)")
    ca_cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):
        raise FailedPrecondition(f"the CA key {key_path} is not an EC key")
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=days))
    )
    for serial in sorted(load_deny_list(ca_dir / DENY_LIST)):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(now).build()
        )
    return builder.sign(ca_key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def _write_text(path: Path, text: str) -> None:
    """Replace ``path`` atomically (readable by all: nothing secret; the key is written by issue())."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
