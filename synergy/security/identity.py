"""Who a certificate speaks for: a Synergy identity is a role and a name.

Roles (:data:`ROLES`): ``coordinator``, ``agent``, ``client``, ``admin``. Names are 1-128
characters from ``[A-Za-z0-9._-]``; an agent's name is its device id.

How the identity is encoded in a certificate (written by :func:`synergy.security.ca.issue`,
read here), twice, so that both tools and code can see it:

- a subject alternative name URI ``synergy://<role>/<name>`` — the authoritative copy;
  :func:`identity_from_pem` reads it first and, when it is present, reads nothing else;
- the subject: common name (CN) = name, organizational unit (OU) = role — the fallback for a
  certificate without the URI, and what ``openssl x509 -subject`` shows a person. X.509 caps
  a CN at 64 characters, so a longer name (up to 128) is carried by the URI alone.

A certificate with neither is not a Synergy identity: :func:`identity_from_pem` raises
:class:`~synergy.errors.InvalidArgument` naming what is missing. Reading an identity does
not verify the certificate: call it on a certificate the TLS handshake has already checked
against the CA (in a gRPC servicer, ``context.auth_context()["x509_pem_cert"][0]``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import NameOID

from synergy.errors import InvalidArgument

__all__ = [
    "NAME_CHARACTERS",
    "ROLES",
    "URI_SCHEME",
    "Identity",
    "identity_from_certificate",
    "identity_from_pem",
    "identity_uri",
    "load_certificate",
    "serial_of_pem",
    "validate_name",
    "validate_role",
]

ROLES: tuple[str, ...] = ("coordinator", "agent", "client", "admin")

#: Scheme of the subject-alternative-name URI that carries the identity.
URI_SCHEME = "synergy"

#: The characters a name may use, as said in error messages.
NAME_CHARACTERS = "letters A-Z a-z, digits 0-9, '.', '_' and '-'"

_MAX_NAME = 128
_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")


@dataclass(frozen=True)
class Identity:
    """A role and a name, e.g. ``agent:watch-1``. Not validated on construction: use
    :func:`validate_role` / :func:`validate_name` on untrusted input."""

    role: str
    name: str

    def __str__(self) -> str:
        return f"{self.role}:{self.name}"


def validate_role(role: str) -> str:
    """Return ``role`` if it is one of :data:`ROLES`, else raise InvalidArgument listing them."""
    if role not in ROLES:
        raise InvalidArgument(f"unknown role {role!r}: the roles are {', '.join(ROLES)}")
    return role


def validate_name(name: str) -> str:
    """Return ``name`` if it is 1-128 characters from ``[A-Za-z0-9._-]``, else raise InvalidArgument."""
    if not _NAME.fullmatch(name):
        if not name:
            problem = "is empty"
        elif len(name) > _MAX_NAME:
            problem = f"is {len(name)} characters long (at most {_MAX_NAME})"
        else:
            problem = "has characters outside the allowed ones"
        raise InvalidArgument(f"name {name[: _MAX_NAME + 8]!r} {problem}: a name is 1-{_MAX_NAME} of {NAME_CHARACTERS}")
    return name


def identity_uri(identity: Identity) -> str:
    """``synergy://<role>/<name>``: the subject-alternative-name URI that carries ``identity``."""
    return f"{URI_SCHEME}://{identity.role}/{identity.name}"


def load_certificate(pem: bytes) -> x509.Certificate:
    """Parse the first certificate in ``pem``; InvalidArgument if there is none."""
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise InvalidArgument(f"not a PEM certificate: {exc}") from None


def identity_from_pem(pem: bytes) -> Identity:
    """The Synergy identity in a PEM certificate (the first one, if ``pem`` holds a chain)."""
    return identity_from_certificate(load_certificate(pem))


def identity_from_certificate(cert: x509.Certificate) -> Identity:
    """The identity in ``cert``: its ``synergy://`` SAN URI, else its subject OU (role) and CN (name)."""
    uris = _synergy_uris(cert)
    if len(uris) > 1:
        raise InvalidArgument(
            f"certificate carries {len(uris)} {URI_SCHEME}:// identities ({', '.join(uris)}); expected one"
        )
    if uris:
        return _identity_from_uri(uris[0])
    roles = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    missing = []
    if len(roles) != 1:
        missing.append("a single subject OU (the role)")
    if len(names) != 1:
        missing.append("a single subject CN (the name)")
    if missing:
        raise InvalidArgument(
            f"certificate {cert.subject.rfc4514_string()!r} has no Synergy identity: it has no "
            f"{URI_SCHEME}://<role>/<name> subject alternative name and lacks {' and '.join(missing)}"
        )
    return Identity(role=validate_role(roles[0]), name=validate_name(names[0]))


def serial_of_pem(pem: bytes) -> int:
    """The serial number of the (first) certificate in ``pem``."""
    return load_certificate(pem).serial_number


def _synergy_uris(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    prefix = f"{URI_SCHEME}://"
    return [uri for uri in san.get_values_for_type(x509.UniformResourceIdentifier) if uri.lower().startswith(prefix)]


def _identity_from_uri(uri: str) -> Identity:
    parts = uri[len(URI_SCHEME) + 3 :].split("/")
    if len(parts) != 2:
        raise InvalidArgument(f"malformed identity URI {uri!r}: expected {URI_SCHEME}://<role>/<name>")
    role, name = parts
    return Identity(role=validate_role(role), name=validate_name(name))
