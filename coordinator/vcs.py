"""The records of the virtual computing space that the control core keeps.

Plain mutable records with no I/O and no clock of their own: the core passes ``now``
(monotonic seconds) wherever time matters, which keeps lease and rate logic testable
without sleeping.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass, field

from coordinator.models import LoadedModel
from synergy.deployment import AgentState
from synergy.reports import DeviceTelemetry
from synergy.types import AppSpec, DeviceSpec

__all__ = ["AppRecord", "AppStatsWindow", "DeviceRecord", "Quarantine"]

#: Results kept per app to compute the recent rate and latency.
STATS_WINDOW_S = 5.0
#: Per app, the outcomes remembered to count each frame once (a replayed copy arrives within
#: seconds; at 1000 frames/s this covers a minute).
OUTCOMES_KEPT = 65536


@dataclass
class DeviceRecord:
    spec: DeviceSpec
    lease_id: str
    #: Monotonic time at which the lease runs out unless a heartbeat renews it.
    expires_at: float
    online: bool = True
    last_seen: float = 0.0
    last_seen_unix: float = 0.0
    telemetry: DeviceTelemetry = field(default_factory=DeviceTelemetry)
    #: What the agent last said it holds (None until it said anything).
    state: AgentState | None = None
    #: When that report arrived (monotonic).
    state_at: float = 0.0
    #: Reports in a row that disagreed with the deployment.
    mismatches: int = 0
    #: The connection that holds the device id while its lease is live ("" unknown: restored).
    connection: str = ""


@dataclass
class Quarantine:
    """A device left out of planning after failed deployments, until ``until`` (monotonic)."""

    reason: str
    until: float
    #: Consecutive failed deployments; the quarantine doubles with each.
    failures: int
    #: Its time is over and it is planned again (on probation until a deployment succeeds).
    released: bool = False


@dataclass
class AppStatsWindow:
    """Delivered and dropped counters, each frame (seq) counted once, plus a sliding window
    for rate and latency.

    A frame can be reported twice: a hop replays what a broken call or a retired epoch took
    with it, and the first copy may have got through too. The first delivery counts; a drop
    followed by a delivery of the same seq (the drop was a copy's, the replay got through)
    counts as delivered; any other repeat is a duplicate, not counted.
    """

    delivered: int = 0
    dropped: int = 0
    #: Reports of a seq already counted (not in delivered or dropped).
    duplicates: int = 0
    #: Monotonic time of the last frame outcome (delivered or dropped); 0 before the first.
    last_outcome_at: float = 0.0
    recent: deque[tuple[float, float]] = field(default_factory=deque)  # (arrival, latency_s)
    #: seq -> delivered? for the last OUTCOMES_KEPT frames.
    outcomes: OrderedDict[int, bool] = field(default_factory=OrderedDict)

    def record(self, now: float, latency_s: float | None, seq: int | None = None) -> bool:
        """Count one report; False if it repeats an outcome already counted (ignore it)."""
        delivered = latency_s is not None
        if seq is not None:
            before = self.outcomes.get(seq)
            if before is not None and (before or not delivered):
                self.duplicates += 1
                return False
            self.outcomes[seq] = delivered
            self.outcomes.move_to_end(seq)
            while len(self.outcomes) > OUTCOMES_KEPT:
                self.outcomes.popitem(last=False)
            if before is False:
                self.dropped -= 1  # an earlier copy was dropped; this one got through
        self.last_outcome_at = now
        if latency_s is None:
            self.dropped += 1
            return True
        self.delivered += 1
        self.recent.append((now, latency_s))
        self._trim(now)
        return True

    def _trim(self, now: float) -> None:
        while self.recent and self.recent[0][0] < now - STATS_WINDOW_S:
            self.recent.popleft()

    def rate_hz(self, now: float) -> float:
        self._trim(now)
        if len(self.recent) < 2:
            return 0.0
        span = max(now - self.recent[0][0], self.recent[-1][0] - self.recent[0][0])
        return (len(self.recent) - 1) / span if span > 0 else 0.0

    def latency_ms(self, now: float) -> float:
        self._trim(now)
        return 1000.0 * sum(lat for _, lat in self.recent) / len(self.recent) if self.recent else 0.0


@dataclass
class AppRecord:
    spec: AppSpec
    model: LoadedModel
    #: Why the app is not running, empty while it runs.
    reason: str = "not planned yet"
    stats: AppStatsWindow = field(default_factory=AppStatsWindow)
    #: Who submitted it (the name on the client's certificate; "" when submitted without one).
    owner: str = ""
