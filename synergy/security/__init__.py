"""Security: our small CA (:mod:`synergy.security.ca`) and the identities its certificates
carry (:mod:`synergy.security.identity`). mTLS wiring and authorization build on these."""

from __future__ import annotations

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

__all__ = [
    "CA_CERT",
    "CA_KEY",
    "CERT",
    "DENY_LIST",
    "KEY",
    "ROLES",
    "Identity",
    "IssuedCert",
    "identity_from_pem",
    "init_ca",
    "issue",
    "load_deny_list",
    "revoke",
    "serial_of_pem",
]
