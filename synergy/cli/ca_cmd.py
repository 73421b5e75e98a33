"""``synergy ca``: the small CA that issues every daemon's and client's certificate.

    synergy ca init   --dir DIR [--days N] [--force]
    synergy ca issue  --dir DIR --role R --name NAME [--san HOST ...] [--out DIR] [--days N]
    synergy ca revoke --dir DIR --serial HEX
    synergy ca show   FILE.pem

The library is :mod:`synergy.security.ca` (its docstring explains rotation and revocation).
Each command prints the paths it wrote; errors are :class:`~synergy.errors.SynergyError`
subclasses, which the ``synergy`` main prints and turns into exit status 2.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

from cryptography import x509

from synergy.errors import InvalidArgument
from synergy.security.ca import (
    CA_CERT,
    CA_KEY,
    DENY_LIST,
    format_serial,
    init_ca,
    issue,
    parse_serial,
    revoke,
)
from synergy.security.identity import ROLES, identity_from_certificate, load_certificate

__all__ = ["register", "run_init", "run_issue", "run_revoke", "run_show"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    ca = sub.add_parser(
        "ca",
        help="create a CA and issue, revoke and inspect certificates for daemons and clients",
        description=(
            "A small certificate authority for Synergy's mutual TLS. Each certificate names a role "
            f"({', '.join(ROLES)}) and a name (an agent's name is its device id)."
        ),
    )
    commands = ca.add_subparsers(dest="ca_command", metavar="CA_COMMAND", required=True)

    p = commands.add_parser(
        "init",
        help="create a CA (ca.pem, ca.key) in a directory",
        description=f"Create a CA in DIR: {CA_CERT} (the certificate every party trusts) and {CA_KEY} (mode 0600).",
    )
    p.add_argument("--dir", required=True, type=Path, help="CA directory (created if missing)")
    p.add_argument(
        "--days", type=int, default=3650, help="validity of the CA certificate in days (default: %(default)s)"
    )
    p.add_argument("--force", action="store_true", help="replace an existing CA (default: refuse)")
    p.set_defaults(func=run_init)

    p = commands.add_parser(
        "issue",
        help="issue a key and certificate for a role and name",
        description=(
            "Issue a key and certificate signed by the CA in DIR. The output directory gets cert.pem, "
            "key.pem (0600) and ca.pem, so it can be passed as a daemon's or client's --tls-dir. The "
            "certificate is valid for localhost and 127.0.0.1 plus each --san. To rotate, issue again "
            "into the same directory and restart the daemon."
        ),
    )
    p.add_argument("--dir", required=True, type=Path, help="CA directory (made by `synergy ca init`)")
    p.add_argument("--role", required=True, choices=ROLES, help="the certificate's role")
    p.add_argument("--name", required=True, help="1-128 of [A-Za-z0-9._-]; an agent's name is its device id")
    p.add_argument(
        "--san",
        action="append",
        default=[],
        metavar="HOST",
        help="extra host name or IP address the certificate is valid for; repeatable "
        "(localhost and 127.0.0.1 are always included)",
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="output directory (default: CA DIR/ROLE-NAME)")
    p.add_argument("--days", type=int, default=825, help="validity in days (default: %(default)s)")
    p.set_defaults(func=run_issue)

    p = commands.add_parser(
        "revoke",
        help=f"add a certificate's serial to the CA's deny-list ({DENY_LIST})",
        description=(
            f"Append SERIAL to DIR/{DENY_LIST}. The coordinator and agents that read this deny-list refuse "
            "the certificate; copy the file to where they read it. `synergy ca show` prints a serial."
        ),
    )
    p.add_argument("--dir", required=True, type=Path, help="CA directory")
    p.add_argument("--serial", required=True, metavar="HEX", help="certificate serial in hex, as `show` prints it")
    p.set_defaults(func=run_revoke)

    p = commands.add_parser(
        "show",
        help="print a certificate's identity, serial, validity and subject alternative names",
        description="Print the Synergy identity, serial, issuer, validity and SANs of a PEM certificate.",
    )
    p.add_argument("file", type=Path, metavar="FILE.pem", help="a PEM certificate, e.g. DIR/agent-watch-1/cert.pem")
    p.set_defaults(func=run_show)


def run_init(args: argparse.Namespace) -> int:
    cert_path = init_ca(args.dir, days=args.days, force=args.force)
    print(f"created CA {load_certificate(cert_path.read_bytes()).subject.rfc4514_string()}")
    print(f"  certificate: {cert_path}")
    print(f"  private key: {cert_path.parent / CA_KEY} (mode 0600; keep it off the devices)")
    return 0


def run_issue(args: argparse.Namespace) -> int:
    issued = issue(args.dir, role=args.role, name=args.name, sans=args.san, out_dir=args.out, days=args.days)
    cert = load_certificate(issued.cert.read_bytes())
    print(f"issued {issued.identity} serial {format_serial(issued.serial)}")
    print(f"  valid:       {_when(cert.not_valid_before_utc)} to {_when(cert.not_valid_after_utc)}")
    print(f"  names:       {', '.join(_san_strings(cert))}")
    print(f"  certificate: {issued.cert}")
    print(f"  private key: {issued.key} (mode 0600)")
    print(f"  CA:          {issued.ca}")
    print(f"use it with --tls-dir {issued.directory}")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    serial = parse_serial(args.serial)
    revoke(args.dir, serial)
    print(f"revoked serial {format_serial(serial)}: listed in {Path(args.dir) / DENY_LIST}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        pem = path.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror or exc}") from None
    cert = load_certificate(pem)
    print(f"file:     {path}")
    print(f"identity: {_identity_text(cert)}")
    print(f"serial:   {format_serial(cert.serial_number)}")
    print(f"subject:  {cert.subject.rfc4514_string()}")
    print(f"issuer:   {cert.issuer.rfc4514_string()}")
    print(f"valid:    {_when(cert.not_valid_before_utc)} to {_when(cert.not_valid_after_utc)} ({_status(cert)})")
    print(f"names:    {', '.join(_san_strings(cert)) or '(none)'}")
    return 0


def _identity_text(cert: x509.Certificate) -> str:
    try:
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        basic = None
    if basic is not None and basic.ca:
        return "none (a CA certificate)"
    try:
        return str(identity_from_certificate(cert))
    except InvalidArgument as exc:
        return f"none ({exc})"


def _status(cert: x509.Certificate) -> str:
    now = dt.datetime.now(dt.UTC)
    if now < cert.not_valid_before_utc:
        return "NOT YET VALID"
    if now > cert.not_valid_after_utc:
        return "EXPIRED"
    return f"valid for {(cert.not_valid_after_utc - now).days} more days"


def _san_strings(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return (
        [f"DNS:{name}" for name in san.get_values_for_type(x509.DNSName)]
        + [f"IP:{ip}" for ip in san.get_values_for_type(x509.IPAddress)]
        + [f"URI:{uri}" for uri in san.get_values_for_type(x509.UniformResourceIdentifier)]
    )


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")
