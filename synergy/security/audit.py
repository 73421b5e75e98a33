"""The audit record of refused calls: each logged once, every one counted (issue 8 item 5).

A server hands every :class:`~synergy.security.authz.Refusal` to its :class:`AuditLog`:

- **logged once**: the first refusal of a (peer, rpc, reason) logs a ``security_refusal``
  event (warning) with the peer identity, the rpc, the status code and the reason; the same
  refusal again within ``window_s`` (60 s) is only counted, and the first one after the
  window logs again with ``repeats``, how many were not logged since the last line. A peer
  hammering a port therefore costs one line a minute, and nothing is lost from the record.
  :meth:`AuditLog.flush` logs the repeats of quiet entries (a server calls it on a tick);
- **counted**: :meth:`AuditLog.counts` gives the number of refusals by (rpc, code), for a
  metrics endpoint.

Time is passed in (``now``, seconds on any monotonic clock), so this is a unit test too.
The table of recent refusals is bounded (``max_entries``): varying the reason cannot grow it
without limit; an entry evicted early logs its pending repeats first.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import structlog

from synergy.security.authz import Refusal

__all__ = ["DEFAULT_MAX_ENTRIES", "DEFAULT_WINDOW_S", "AuditLog"]

log = structlog.get_logger(__name__)

#: A refusal repeated within this many seconds of its last log line is only counted.
DEFAULT_WINDOW_S = 60.0
#: At most this many distinct (peer, rpc, reason) are remembered at once.
DEFAULT_MAX_ENTRIES = 4096

#: The peer named in the log when a refusal has neither an identity nor an address.
_ANONYMOUS = "anonymous"


@dataclass
class _Entry:
    logged_at: float
    repeats: int = 0
    address: str = ""
    code: str = ""


class AuditLog:
    """Refusals, each logged once per (peer, rpc, reason) and window, all counted by (rpc, code)."""

    def __init__(self, *, window_s: float = DEFAULT_WINDOW_S, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        if window_s < 0:
            raise ValueError(f"window_s must be >= 0, not {window_s}")
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, not {max_entries}")
        self._window_s = window_s
        self._max_entries = max_entries
        # Insertion order is the order entries were last logged: the oldest first.
        self._recent: dict[tuple[str, str, str], _Entry] = {}
        self._counts: Counter[tuple[str, str]] = Counter()

    def record(self, refusal: Refusal, *, now: float, address: str = "") -> bool:
        """Count ``refusal`` and log it unless the same one was logged within the window.

        ``address`` is the peer's network address (``context.peer()``), logged beside the
        identity; for a peer without an identity it is also what tells peers apart. Returns
        whether a line was logged.
        """
        self._counts[(refusal.rpc, refusal.code)] += 1
        peer = str(refusal.identity) if refusal.identity is not None else (address or _ANONYMOUS)
        key = (peer, refusal.rpc, refusal.reason)
        entry = self._recent.get(key)
        if entry is not None and now - entry.logged_at < self._window_s:
            entry.repeats += 1
            return False
        repeats = 0
        if entry is not None:
            repeats = entry.repeats
            del self._recent[key]  # re-inserted below: now the newest
        elif len(self._recent) >= self._max_entries:
            self._make_room(now)
        self._recent[key] = _Entry(logged_at=now, address=address, code=refusal.code)
        log.warning(
            "security_refusal",
            peer=peer,
            address=address,
            rpc=refusal.rpc,
            code=refusal.code,
            reason=refusal.reason,
            repeats=repeats,
        )
        return True

    def flush(self, now: float) -> int:
        """Forget entries whose window is over, logging ``security_refusal_repeats`` for each
        that was refused again since its line. Returns how many entries were forgotten."""
        expired = [key for key, entry in self._recent.items() if now - entry.logged_at >= self._window_s]
        for key in expired:
            self._forget(key)
        return len(expired)

    def counts(self) -> Mapping[tuple[str, str], int]:
        """Refusals so far by (rpc, code), e.g. ``("RegistryService/Register", "PERMISSION_DENIED")``."""
        return MappingProxyType(dict(self._counts))

    def total(self) -> int:
        """Refusals so far, all rpcs and codes."""
        return self._counts.total()

    def _make_room(self, now: float) -> None:
        if self.flush(now) == 0:
            self._forget(next(iter(self._recent)))  # the oldest

    def _forget(self, key: tuple[str, str, str]) -> None:
        entry = self._recent.pop(key)
        if entry.repeats:
            peer, rpc, reason = key
            log.warning(
                "security_refusal_repeats",
                peer=peer,
                address=entry.address,
                rpc=rpc,
                code=entry.code,
                reason=reason,
                repeats=entry.repeats,
            )
