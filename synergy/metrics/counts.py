"""Counting what the daemons' state does not keep, for their metrics (no dependency).

Most figures a metrics endpoint shows are read from the daemon's own state at scrape time,
so they cannot disagree with ``synergy apps --json``. A few are not kept anywhere, because
nothing else needs them: the latency of every delivered frame (the state keeps a mean over
5 s), the reason of every drop (the state counts drops), planning times. This module counts
those, cheaply enough to be always on: one dictionary update per frame outcome.

Drop reasons are free text naming the stage and the cause ("app-1/e3/s1: stream to the next
hop failed: ..."); a label must take few values, so :func:`drop_cause` maps each reason to
one of :data:`DROP_CAUSES`.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from synergy.reports import Result

__all__ = [
    "DROP_CAUSES",
    "LATENCY_BUCKETS_S",
    "MAX_APPS",
    "PLANNING_BUCKETS_S",
    "AppOutcomes",
    "Histogram",
    "ObservingSink",
    "OutcomeCounts",
    "drop_cause",
]

#: Upper bounds (seconds) of the capture-to-delivery latency buckets: a frame on one device
#: takes milliseconds, a split over legacy BLE seconds.
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Upper bounds (seconds) of the planning-time buckets: warm rounds take milliseconds, cold
#: rounds on big spaces seconds, and the watchdog gives up at 120 s.
PLANNING_BUCKETS_S = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0)
#: Apps whose outcomes are kept at most (a label value each): the oldest goes first. Collectors
#: also forget apps that are gone at every scrape; this bounds a daemon nobody scrapes.
MAX_APPS = 1024

#: (cause, words that identify it in a drop reason), first match wins. The words are those the
#: agent's runtime and data plane write (agent/runtime.py, agent/dataplane.py).
_CAUSE_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Past REPLAY_MAX_AGE_S: whatever happened first, the frame was too old to replay.
    ("replay_bound", ("past the replay bound",)),
    ("internal", ("internal error",)),
    # A retiring epoch's frame that no segment of the active epoch here carries.
    ("no_path", ("no segment of the active epoch", "no path for it")),
    ("epoch_retired", ("retired",)),
    ("board", ("board on ", "not loaded on ")),
    # A seq sent twice on one stream ("... already in flight on this stream").
    ("duplicate", ("already in flight",)),
    # The stream to the next hop closed, failed or ended with the frame unacknowledged.
    ("stream", ("stream",)),
    # The receiving segment refused it: no such segment, other tensors than it takes.
    ("rejected", ("no segment", "do not match", "expected")),
)
#: Every value of the ``reason`` label.
DROP_CAUSES = (*(cause for cause, _ in _CAUSE_RULES), "other")


def drop_cause(reason: str) -> str:
    """The bounded cause (one of :data:`DROP_CAUSES`) of a free-text drop reason."""
    text = reason.lower()
    for cause, words in _CAUSE_RULES:
        if any(word in text for word in words):
            return cause
    return "other"


class Histogram:
    """Observations counted into fixed buckets, as a Prometheus histogram exposes them."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        #: Observations per bucket (not cumulative); the last one is +Inf.
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # bisect_left: a value equal to a bound belongs to that bucket (le is inclusive).
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, float]]:
        """(le, observations at or below it) for every bound and +Inf, as exposed."""
        out: list[tuple[str, float]] = []
        running = 0
        for bound, n in zip((*(repr(float(b)) for b in self.bounds), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, float(running)))
        return out


@dataclass
class AppOutcomes:
    """One app's counted outcomes."""

    delivered: int = 0
    #: Drop reports by cause (each report counted, see :class:`OutcomeCounts`).
    dropped: dict[str, int] = field(default_factory=dict)
    latency: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS_S))


class OutcomeCounts:
    """Frame outcomes per app: deliveries with their latency, drop reports by cause.

    Fed with the results a daemon has in hand: the coordinator each result it counts (a
    replayed copy of a frame already counted is not fed), an agent each outcome it reports.
    A drop later superseded by a delivery of the same frame (a replay that got through)
    stays counted here, so the drop reports of an app may exceed the frames the coordinator
    counts dropped.
    """

    def __init__(self, max_apps: int = MAX_APPS) -> None:
        self._max_apps = max_apps
        self._apps: dict[str, AppOutcomes] = {}

    def observe(self, result: Result) -> None:
        app = self._apps.get(result.app_id)
        if app is None:
            if len(self._apps) >= self._max_apps:
                del self._apps[next(iter(self._apps))]  # the oldest: a bound, not a policy
            app = self._apps[result.app_id] = AppOutcomes()
        if result.dropped:
            cause = drop_cause(result.drop_reason)
            app.dropped[cause] = app.dropped.get(cause, 0) + 1
        else:
            app.delivered += 1
            app.latency.observe(result.latency_s)

    def retain(self, app_ids: Iterable[str]) -> None:
        """Forget every app not in ``app_ids`` (removed apps leave the metrics)."""
        keep = set(app_ids)
        for app_id in [a for a in self._apps if a not in keep]:
            del self._apps[app_id]

    def items(self) -> list[tuple[str, AppOutcomes]]:
        return sorted(self._apps.items())


class _Sink(Protocol):
    def submit(self, result: Result) -> None: ...


class ObservingSink:
    """A result sink that counts each outcome into ``counts`` and hands it on to ``sink``."""

    def __init__(self, sink: _Sink, counts: OutcomeCounts) -> None:
        self._sink = sink
        self._counts = counts

    def submit(self, result: Result) -> None:
        self._counts.observe(result)
        self._sink.submit(result)
