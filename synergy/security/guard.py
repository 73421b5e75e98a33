"""Enforcing the authorization policy in a servicer: one call before the work.

:mod:`synergy.security.authz` decides, purely; this module is the one place where a decision
meets a live call: it reads the caller's identity from the connection
(:func:`~synergy.security.tls.peer_identity`), runs the decision, records a refusal in the
server's :class:`~synergy.security.audit.AuditLog` and raises the :mod:`synergy.errors` class
of the refusal's code, which the error interceptor turns into the gRPC status::

    allowed = self._guard.check(context, lambda who: self._guard.policy.agent_control(who, "Deploy"))

``UNAUTHENTICATED`` becomes :class:`~synergy.errors.Unauthenticated`, ``PERMISSION_DENIED``
:class:`~synergy.errors.PermissionDenied`, with the refusal's reason as the message. An
insecure policy's first decision carries a notice, logged here once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import grpc
import structlog

from synergy.errors import PermissionDenied, SynergyError, Unauthenticated
from synergy.security.audit import AuditLog
from synergy.security.authz import Allowed, Policy, Refusal
from synergy.security.identity import Identity
from synergy.security.tls import peer_identity

__all__ = ["Guard", "error_for"]

log = structlog.get_logger(__name__)

_T = TypeVar("_T")


def error_for(refusal: Refusal) -> SynergyError:
    """The :mod:`synergy.errors` exception a refusal is answered with (its reason as message)."""
    if refusal.code == "UNAUTHENTICATED":
        return Unauthenticated(refusal.reason)
    return PermissionDenied(refusal.reason)


class Guard:
    """A server's policy and audit log, applied to its calls."""

    def __init__(self, policy: Policy, audit: AuditLog | None = None) -> None:
        self.policy = policy
        self.audit = audit if audit is not None else AuditLog()

    def check(self, context: grpc.aio.ServicerContext, decide: Callable[[Identity | None], Allowed]) -> Allowed:
        """Run ``decide`` on the caller's identity: its :class:`Allowed`, or the refusal raised
        as a :class:`~synergy.errors.SynergyError` (after it is recorded in :attr:`audit`)."""
        return self.check_as(self.identity(context), lambda: str(context.peer() or ""), decide)

    def identity(self, context: grpc.aio.ServicerContext) -> Identity | None:
        """The caller's identity from its certificate (None without TLS)."""
        return None if self.policy.insecure else peer_identity(context)

    def check_as(
        self, identity: Identity | None, address: Callable[[], str], decide: Callable[[Identity | None], _T]
    ) -> _T:
        """:meth:`check` for a caller whose identity was read already (each frame of a stream);
        ``address`` gives the caller's address for the audit log, asked only on a refusal."""
        try:
            allowed = decide(identity)
        except Refusal as refusal:
            self.audit.record(refusal, now=time.monotonic(), address=address())
            raise error_for(refusal) from None
        if isinstance(allowed, Allowed) and allowed.notice is not None:
            log.warning("authorization_off", notice=allowed.notice)
        return allowed
