"""Mutual TLS for every gRPC link: what a daemon or a client loads, and what its servers check.

A *TLS directory* (``--tls-dir DIR``, env ``SYNERGY_TLS_DIR``) holds what
``synergy ca issue`` writes for one identity:

- ``ca.pem``: the CA certificate; the only root a peer's certificate is checked against;
- ``cert.pem``: this process's certificate (its role and name, e.g. ``agent:watch-1``);
- ``key.pem``: its private key, readable by the owner only (``chmod 600``): a key that group or
  others may read is refused;
- ``revoked.txt`` (optional): the deny-list, serials of revoked certificates
  (``synergy ca revoke`` writes it in the CA directory; copy it here). Servers re-read it when
  it changes, so a revocation takes effect without a restart.

Every server asks its clients for a certificate (``require_client_auth``) and every client
checks its server's, both against ``ca.pem``: a peer without a certificate, with one from
another CA, expired or not yet valid fails the handshake (the call sees UNAVAILABLE). A
certificate that passes the handshake but whose serial is on the deny-list is refused with
UNAUTHENTICATED before the method runs (:class:`PeerCheck`, installed by
:func:`synergy.wire.server.start_server`). Servicers learn who called with
:func:`peer_identity`.

**Host names.** A client checks that the server's certificate names the host it dialled:
``synergy ca issue`` always adds ``localhost`` and ``127.0.0.1``, so daemons on one machine
just work; a daemon reached under any other name or address (``--advertise``, another host,
a container name) needs that name in its certificate: ``synergy ca issue ... --san HOST``.

**TLS is the default.** A daemon or client command without a TLS directory refuses to start
(naming ``--tls-dir``, ``SYNERGY_TLS_DIR`` and ``synergy ca init``). Plain text exists only
behind an explicit ``--insecure``, and a process started with it logs ``plaintext_grpc`` once:
anyone who can reach its ports then owns the system.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import inspect
import os
import stat
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import structlog
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from synergy.errors import FailedPrecondition, InvalidArgument, SynergyError
from synergy.security.ca import CA_CERT, CERT, DENY_LIST, KEY, load_deny_list
from synergy.security.identity import Identity, identity_from_pem, load_certificate, serial_of_pem

__all__ = [
    "TLS_DIR_ENV",
    "PeerCheck",
    "TlsConfig",
    "add_tls_arguments",
    "channel_credentials",
    "peer_certificate",
    "peer_identity",
    "resolve_tls",
    "server_credentials",
    "tls_from_args",
    "warn_plaintext",
]

log = structlog.get_logger(__name__)

#: Environment variable naming the TLS directory when ``--tls-dir`` is not given.
TLS_DIR_ENV = "SYNERGY_TLS_DIR"

#: Key in a gRPC auth context under which the peer's verified certificate (PEM) is found.
_PEER_CERT_KEY = "x509_pem_cert"
#: A server looks at the deny-list file at most this often.
DENY_LIST_RECHECK_S = 1.0


def _issue_hint(directory: Path) -> str:
    return (
        f"create it with `synergy ca issue --dir CA_DIR --role ROLE --name NAME --out {directory}` "
        "(and `synergy ca init --dir CA_DIR` first if there is no CA yet)"
    )


@dataclass(frozen=True)
class TlsConfig:
    """One identity's TLS material: the CA to trust, its certificate and key, the deny-list.

    ``deny_list_path``, when set, is re-read by servers when it changes (see :class:`PeerCheck`).
    """

    # PEM bytes: not in the repr (the key must never reach a log; the rest is only noise).
    ca: bytes = field(repr=False)
    cert: bytes = field(repr=False)
    key: bytes = field(repr=False)
    identity: Identity
    deny_list: frozenset[int] = frozenset()
    deny_list_path: Path | None = None
    #: The TLS directory it was loaded from (None when built from bytes).
    directory: Path | None = None

    @classmethod
    def from_pem(cls, ca: bytes, cert: bytes, key: bytes, *, deny_list: Collection[int] = ()) -> TlsConfig:
        """From PEM bytes, without the checks :meth:`load` makes (tests build odd ones on purpose)."""
        return cls(ca=ca, cert=cert, key=key, identity=identity_from_pem(cert), deny_list=frozenset(deny_list))

    @classmethod
    def load(cls, directory: Path) -> TlsConfig:
        """Read ``ca.pem``, ``cert.pem``, ``key.pem`` and (if present) ``revoked.txt`` from ``directory``.

        Refuses, naming the file and what to do: a missing file, a key that group or others
        may read, a certificate that is not a Synergy identity, not issued by ``ca.pem``, not
        matching the key, expired or not yet valid.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise FailedPrecondition(f"TLS directory {directory} does not exist: {_issue_hint(directory)}")
        paths = {name: directory / name for name in (CA_CERT, CERT, KEY)}
        for name, path in paths.items():
            if not path.is_file():
                raise FailedPrecondition(f"TLS directory {directory} has no {name} ({path}): {_issue_hint(directory)}")
        key_path = paths[KEY]
        mode = stat.S_IMODE(key_path.stat().st_mode)
        if mode & 0o077:
            raise FailedPrecondition(
                f"private key {key_path} is readable by group or others (mode {mode:04o}): "
                f"run `chmod 600 {key_path}` (and check who may have read it)"
            )
        ca, cert, key = (_read(path) for path in paths.values())
        identity = _checked_certificate(ca, cert, key, paths)
        deny_path = directory / DENY_LIST
        return cls(
            ca=ca,
            cert=cert,
            key=key,
            identity=identity,
            deny_list=load_deny_list(deny_path),
            deny_list_path=deny_path,
            directory=directory,
        )


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FailedPrecondition(f"cannot read {path}: {exc.strerror or exc}") from None


def _checked_certificate(ca_pem: bytes, cert_pem: bytes, key_pem: bytes, paths: dict[str, Path]) -> Identity:
    """The identity in ``cert_pem`` once it is shown to belong to ``ca_pem`` and ``key_pem``."""
    cert_path, ca_path, key_path = paths[CERT], paths[CA_CERT], paths[KEY]
    try:
        ca = load_certificate(ca_pem)
        cert = load_certificate(cert_pem)
        identity = identity_from_pem(cert_pem)
    except InvalidArgument as exc:
        raise FailedPrecondition(f"{cert_path} or {ca_path}: {exc}") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise FailedPrecondition(f"cannot read the private key {key_path}: {exc}") from None
    if key.public_key() != cert.public_key():
        raise FailedPrecondition(
            f"the key {key_path} does not belong to the certificate {cert_path}: issue both again together"
        )
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise FailedPrecondition(
            f"{cert_path} was not issued by the CA in {ca_path} ({exc or 'bad signature'}): "
            "issue it again from that CA, or put the right ca.pem beside it"
        ) from None
    now = dt.datetime.now(dt.UTC)
    if cert.not_valid_after_utc <= now:
        raise FailedPrecondition(
            f"certificate {cert_path} ({identity}) expired at {cert.not_valid_after_utc.isoformat()}: "
            "issue a new one with `synergy ca issue` and restart"
        )
    if cert.not_valid_before_utc > now:
        raise FailedPrecondition(
            f"certificate {cert_path} ({identity}) is not valid before {cert.not_valid_before_utc.isoformat()} "
            "(is this machine's clock right?)"
        )
    return identity


# -- credentials -------------------------------------------------------------------------------


def server_credentials(tls: TlsConfig) -> grpc.ServerCredentials:
    """A server that presents ``tls.cert`` and accepts only clients with a certificate from ``tls.ca``."""
    return grpc.ssl_server_credentials([(tls.key, tls.cert)], root_certificates=tls.ca, require_client_auth=True)


def channel_credentials(tls: TlsConfig) -> grpc.ChannelCredentials:
    """A client that trusts only ``tls.ca`` and presents ``tls.cert``."""
    return grpc.ssl_channel_credentials(root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert)


# -- the peer ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _parsed(pem: bytes) -> tuple[Identity | None, int]:
    """Identity (None: the certificate carries none) and serial of a peer certificate, parsed once."""
    try:
        identity: Identity | None = identity_from_pem(pem)
    except SynergyError:
        identity = None
    return identity, serial_of_pem(pem)


def peer_certificate(context: grpc.aio.ServicerContext) -> bytes | None:
    """The peer's certificate (PEM) as verified by the handshake; None on a plaintext connection."""
    auth = context.auth_context() or {}
    pems = auth.get(_PEER_CERT_KEY) or []
    return bytes(pems[0]) if pems else None


def peer_identity(context: grpc.aio.ServicerContext, *, deny_list: Collection[int] = ()) -> Identity | None:
    """Who is calling: the identity in the peer's verified certificate.

    None when there is none to trust: a plaintext connection, a certificate without a Synergy
    identity, or one whose serial is in ``deny_list``. On a server started with TLS,
    :class:`PeerCheck` has already refused revoked certificates (with the server's current
    deny-list) before any servicer runs.
    """
    pem = peer_certificate(context)
    if pem is None:
        return None
    identity, serial = _parsed(pem)
    if serial in deny_list:
        return None
    return identity


class _DenyList:
    """The deny-list a server enforces: the one loaded at start, refreshed when its file changes."""

    def __init__(self, tls: TlsConfig) -> None:
        self._serials = tls.deny_list
        self._path = tls.deny_list_path
        self._stamp = self._file_stamp()
        self._checked_at = time.monotonic()

    def _file_stamp(self) -> tuple[int, int] | None:
        if self._path is None:
            return None
        try:
            st = self._path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def serials(self) -> frozenset[int]:
        now = time.monotonic()
        if self._path is not None and now - self._checked_at >= DENY_LIST_RECHECK_S:
            self._checked_at = now
            stamp = self._file_stamp()
            if stamp != self._stamp:
                self._stamp = stamp
                try:
                    self._serials = load_deny_list(self._path)
                except SynergyError as exc:  # keep enforcing the last good list
                    log.error("deny_list_unreadable", path=str(self._path), error=str(exc))
                else:
                    log.info("deny_list_reloaded", path=str(self._path), revoked=len(self._serials))
        return self._serials


class PeerCheck(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses, before the method runs, a caller whose certificate is revoked or names no identity.

    The handshake has already checked the certificate against the CA and its dates; this adds
    what the handshake cannot know: the deny-list. Each refusal is logged with the peer, the
    method and the reason, and counted in :attr:`refused`.
    """

    def __init__(self, tls: TlsConfig) -> None:
        self._deny = _DenyList(tls)
        self.refused = 0

    def _refusal(self, context: grpc.aio.ServicerContext) -> str | None:
        pem = peer_certificate(context)
        if pem is None:  # cannot happen with require_client_auth; refuse all the same
            return "no client certificate"
        identity, serial = _parsed(pem)
        if serial in self._deny.serials():
            return f"certificate serial {serial:x} ({identity or 'no identity'}) is revoked"
        if identity is None:
            return f"certificate serial {serial:x} carries no Synergy identity"
        return None

    async def _check(self, context: grpc.aio.ServicerContext, method: str) -> None:
        reason = self._refusal(context)
        if reason is not None:
            self.refused += 1
            log.warning("tls_peer_refused", method=method, peer=context.peer(), reason=reason, refused=self.refused)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, reason)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method
        for kind in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            behavior = getattr(handler, kind)
            if behavior is not None:
                return handler._replace(**{kind: self._guarded(behavior, method)})
        return handler

    def _guarded(self, behavior: Callable[..., Any], method: str) -> Callable[..., Any]:
        # Neither wrapper keeps the request once it is handed on: gRPC keeps a failed call's
        # exception, and with its traceback these frames, until the next call fails (see
        # synergy.wire.status), which would keep a refused 50 MB request in memory.
        if inspect.isasyncgenfunction(behavior):

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                await self._check(context, method)
                answers = behavior(request, context)
                del request
                async for item in answers:
                    yield item

            return stream

        async def call(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await self._check(context, method)
            answer = behavior(request, context)
            del request
            return await answer if inspect.isawaitable(answer) else answer

        return call


# -- choosing TLS or plain text (command line) -------------------------------------------------

_warned_plaintext = False


def warn_plaintext(why: str) -> None:
    """Log, once per process, that this process speaks plain-text gRPC."""
    global _warned_plaintext
    if _warned_plaintext:
        return
    _warned_plaintext = True
    log.warning(
        "plaintext_grpc",
        why=why,
        risk="no TLS: anyone who can reach these gRPC ports owns the system (reads results, deploys, registers)",
        fix=f"create certificates with `synergy ca init` and `synergy ca issue`, pass --tls-dir DIR ({TLS_DIR_ENV})",
    )


def resolve_tls(tls_dir: Path | str | None, *, insecure: bool) -> TlsConfig | None:
    """The TLS configuration a command runs with: loaded from ``tls_dir``; None (plain text,
    warned) only with ``insecure``; neither is refused."""
    if insecure:
        warn_plaintext("--insecure")
        return None
    if not tls_dir:
        raise FailedPrecondition(
            f"no TLS directory: pass --tls-dir DIR or set {TLS_DIR_ENV} (a directory with ca.pem, cert.pem and "
            "key.pem: create a CA with `synergy ca init --dir CA`, then a certificate with "
            "`synergy ca issue --dir CA --role ROLE --name NAME --out DIR`), "
            "or pass --insecure to speak plain text (anyone who can reach the port then owns the system)"
        )
    return TlsConfig.load(Path(tls_dir))


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """``--tls-dir DIR`` (default ``$SYNERGY_TLS_DIR``) and ``--insecure``, mutually exclusive."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--tls-dir",
        type=Path,
        default=None,
        help=f"directory with ca.pem, cert.pem and key.pem for mutual TLS (env {TLS_DIR_ENV}; "
        "create it with `synergy ca issue`)",
    )
    group.add_argument(
        "--insecure",
        action="store_true",
        help="plain-text gRPC instead of the default mutual TLS: no authentication, no encryption "
        "(anyone who can reach the port owns the system)",
    )


def tls_from_args(args: argparse.Namespace) -> TlsConfig | None:
    """Load what ``add_tls_arguments`` asked for; ``$SYNERGY_TLS_DIR`` when ``--tls-dir`` is absent.

    Read here, when the command runs, never at import.
    """
    insecure = bool(getattr(args, "insecure", False))
    tls_dir = getattr(args, "tls_dir", None)
    if tls_dir is None and not insecure:
        tls_dir = os.environ.get(TLS_DIR_ENV) or None
    return resolve_tls(tls_dir, insecure=insecure)
