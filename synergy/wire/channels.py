"""The one place a Synergy process opens a gRPC channel: mutual TLS, or plain text.

Every client — the SDK, an agent to the coordinator, the coordinator to agents, an agent to
its peers — gets its channel from :func:`open_channel`, with the same options
(:func:`~synergy.wire.server.channel_options`: keepalive, reconnect backoff, message sizes).

With a :class:`~synergy.security.tls.TlsConfig` the channel presents that identity's
certificate and trusts only its CA. gRPC also checks that the server's certificate names the
host in ``address``: certificates from ``synergy ca issue`` always carry ``localhost`` and
``127.0.0.1``, so ``"127.0.0.1:PORT"`` and ``"localhost:PORT"`` work out of the box; a daemon
dialled under any other name or IP needs it in its certificate (``synergy ca issue ... --san
HOST``), or the handshake fails and calls see UNAVAILABLE.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc

from synergy.security.tls import TlsConfig, channel_credentials
from synergy.wire.server import channel_options

__all__ = ["open_channel"]


def open_channel(
    address: str, tls: TlsConfig | None, *, options: Sequence[tuple[str, Any]] | None = None
) -> grpc.aio.Channel:
    """A channel to ``address`` ("host:port"): secure with ``tls``, plain text without.

    ``options`` replaces the standard channel options (default: :func:`channel_options`).
    """
    opts = list(options) if options is not None else channel_options()
    if tls is None:
        return grpc.aio.insecure_channel(address, options=opts)
    return grpc.aio.secure_channel(address, channel_credentials(tls), options=opts)
