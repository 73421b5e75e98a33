"""The address of a daemon's plain-HTTP side port (``--http-bind``, ``--metrics-bind``), parsed
and its bind errors worded one way, whatever the flag.

``HOST:PORT``, ``[IPV6]:PORT`` or ``:PORT``; no host means loopback (127.0.0.1): such ports
speak plain HTTP without authentication, so they stay local unless an operator names another
address. Port 0 takes any free port (the daemon logs the one it got). Every error names the
flag, so the one line a daemon prints on a bad address says what to change.
"""

from __future__ import annotations

import errno
import ipaddress

from synergy.errors import AddressInUse, InvalidArgument, SynergyError, Unavailable

__all__ = ["LOOPBACK", "bind_error", "parse_bind"]

#: The host of ``:PORT``.
LOOPBACK = "127.0.0.1"


def parse_bind(bind: str, flag: str, example_port: int) -> tuple[str, int]:
    """``bind`` as (host, port); :class:`InvalidArgument` naming ``flag`` when it is not one."""
    host, sep, port_text = bind.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise InvalidArgument(
            f"{flag} {bind!r}: give HOST:PORT, e.g. {LOOPBACK}:{example_port} (port 0: any free port)"
        )
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise InvalidArgument(f"{flag} {bind!r}: {host!r} is not an IPv6 address") from exc
    return host or LOOPBACK, int(port_text)


def bind_error(bind: str, flag: str, exc: OSError) -> SynergyError:
    """Why ``bind`` could not be listened on, naming ``flag``: a port another process holds is
    :class:`AddressInUse`, anything else :class:`Unavailable` with the system's reason."""
    if exc.errno == errno.EADDRINUSE:
        return AddressInUse(f"{flag} {bind}: address in use (another process listens there)")
    return Unavailable(f"{flag} {bind}: cannot listen: {exc.strerror or exc}")
