"""A coordinator address as people write it, made into a gRPC target (or refused, saying why).

    coordinator_target("localhost")        -> "localhost:50051"   (the coordinator's default port)
    coordinator_target("10.0.0.7:6000")    -> "10.0.0.7:6000"
    coordinator_target("::1")              -> "[::1]:50051"
    coordinator_target("http://host:1")    -> InvalidArgument: give host:port

gRPC alone would dial ``localhost`` on port 443 and answer ``http://...`` with "Misformatted
domain name". Targets in gRPC's own syntax (``dns:``, ``unix:``, ``ipv4:``, ``ipv6:``...) pass
through unchanged. Used by the SDK, the client commands and ``synergy agent --coordinator``.
"""

from __future__ import annotations

from synergy.defaults import DEFAULT_COORDINATOR
from synergy.errors import InvalidArgument

__all__ = ["DEFAULT_PORT", "coordinator_target"]

#: The port a coordinator listens on unless told otherwise (that of DEFAULT_COORDINATOR).
DEFAULT_PORT = int(DEFAULT_COORDINATOR.rsplit(":", 1)[1])

#: Name resolvers gRPC knows, written ``SCHEME:...``: such targets are used as given.
_GRPC_SCHEMES = ("dns", "unix", "unix-abstract", "ipv4", "ipv6", "vsock")


def coordinator_target(address: str, default_port: int = DEFAULT_PORT) -> str:
    """``address`` as a gRPC target: ``host:port``, the default port added when none is given."""
    text = address.strip()
    example = f"127.0.0.1:{default_port}"
    if not text:
        raise InvalidArgument(f"the coordinator address is empty: give host:port, e.g. {example}")
    scheme, colon, _ = text.partition(":")
    if colon and scheme.lower() in _GRPC_SCHEMES:
        return text
    if "://" in text:
        host = text.split("://", 1)[1].split("/", 1)[0] or "HOST"
        raise InvalidArgument(
            f"coordinator address {address!r}: a gRPC address is not a URL ({scheme}:// is not understood): "
            f"give host:port, e.g. {host if ':' in host else f'{host}:{default_port}'}"
        )
    if text.startswith("["):  # [v6] or [v6]:port
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
        host = f"[{host}]"
    elif text.count(":") > 1:  # a bare IPv6 address: no port can be told apart
        host, port = f"[{text}]", ""
    else:
        host, _, port = text.partition(":")
    if not host or host == "[]":
        raise InvalidArgument(f"coordinator address {address!r} names no host: give host:port, e.g. {example}")
    if not port:
        return f"{host}:{default_port}"
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidArgument(f"coordinator address {address!r}: port {port!r} is not a port number (1-65535)")
    return f"{host}:{port}"
