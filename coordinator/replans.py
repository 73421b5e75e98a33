"""Why the coordinator re-planned: each planning round's causes and what came of it.

The control core asks for a re-plan for many reasons (a device joined or left, an app came or
went, an agent drifted from its deployment, calibration drift, a retry after a failure) and
coalesces the requests that arrive while a round runs into the next one. The numbers alone
(``epoch``, ``replans``) cannot say why a plan changed; this log can. Every request leaves a
:class:`ReplanCause`; a round takes up every cause pending when it starts and ends with a
:class:`ReplanOutcome`: a new epoch deployed, the plan unchanged (the epoch stays), or a
failure whose retry is itself the cause of the next round.

Pure and bounded like the core that owns it: times are the core's monotonic ``now``, the last
:data:`ROUNDS_KEPT` rounds are kept, and a round keeps at most :data:`CAUSES_KEPT` causes
(32 devices joining at once are one round, not 32 lines).
"""

from __future__ import annotations

import enum
from collections import Counter, deque
from dataclasses import dataclass, replace

__all__ = ["CAUSES_KEPT", "ROUNDS_KEPT", "CauseKind", "ReplanCause", "ReplanLog", "ReplanOutcome", "ReplanRound"]

#: Finished rounds remembered (a dashboard shows the recent ones; the core needs none).
ROUNDS_KEPT = 50
#: Causes kept per round; the others are only counted.
CAUSES_KEPT = 16


class CauseKind(enum.Enum):
    """What asked for a re-plan."""

    #: The coordinator started (with the state it persisted, if any).
    STARTED = "started"
    DEVICE_JOINED = "device_joined"
    #: A live device registered again with another capability record.
    DEVICE_CHANGED = "device_changed"
    #: Deregistered, lease expired or an MQTT last will (the detail says which).
    DEVICE_LEFT = "device_left"
    #: An agent's heartbeats kept disagreeing with what was deployed to it.
    DEVICE_DRIFTED = "device_drifted"
    QUARANTINE_OVER = "quarantine_over"
    APP_SUBMITTED = "app_submitted"
    APP_REMOVED = "app_removed"
    #: Measured stage times drifted from the cost model.
    CALIBRATION = "calibration"
    #: A device left while the planner ran: that plan was void.
    PLAN_VOID = "plan_void"
    PLAN_FAILED = "plan_failed"
    DEPLOY_FAILED = "deploy_failed"
    DEPLOY_CANCELLED = "deploy_cancelled"


#: How each cause reads, with its subject (a device or app id, or devices) in {}.
_PHRASES: dict[CauseKind, str] = {
    CauseKind.STARTED: "coordinator started",
    CauseKind.DEVICE_JOINED: "device {} joined",
    CauseKind.DEVICE_CHANGED: "device {} registered a changed record",
    CauseKind.DEVICE_LEFT: "device {} left",
    CauseKind.DEVICE_DRIFTED: "device {} drifted from its deployment",
    CauseKind.QUARANTINE_OVER: "device {} out of quarantine",
    CauseKind.APP_SUBMITTED: "app {} submitted",
    CauseKind.APP_REMOVED: "app {} removed",
    CauseKind.CALIBRATION: "measured stage times drifted on {}",
    CauseKind.PLAN_VOID: "a device left while planning",
    CauseKind.PLAN_FAILED: "retry after planning failed",
    CauseKind.DEPLOY_FAILED: "retry after epoch {} failed to deploy",
    CauseKind.DEPLOY_CANCELLED: "retry after epoch {} was cancelled",
}


class ReplanOutcome(enum.Enum):
    #: A new epoch is active on the agents.
    DEPLOYED = "deployed"
    #: Same stages on the same agents: the epoch stayed, its predictions were refreshed.
    UNCHANGED = "unchanged"
    #: A device the plan used left while the planner ran; another round follows.
    VOID = "void"
    PLAN_FAILED = "plan_failed"
    #: The previous epoch stayed active (the detail says what failed).
    DEPLOY_FAILED = "deploy_failed"
    DEPLOY_CANCELLED = "deploy_cancelled"


@dataclass(frozen=True)
class ReplanCause:
    kind: CauseKind
    #: The device or app it is about ("" when none).
    subject: str
    #: The core's monotonic time of the request.
    at: float
    detail: str = ""

    @property
    def text(self) -> str:
        """One line for people, e.g. "device ring left: lease expired"."""
        phrase = _PHRASES[self.kind].format(self.subject)
        return f"{phrase}: {self.detail}" if self.detail else phrase


@dataclass(frozen=True)
class ReplanRound:
    """One planning round: the causes it took up and, once finished, its outcome."""

    round_id: int
    causes: tuple[ReplanCause, ...]
    started_at: float
    #: Causes beyond :data:`CAUSES_KEPT`, counted only.
    causes_dropped: int = 0
    #: The epoch it deploys or deployed, or kept when the plan was unchanged (0: none).
    epoch: int = 0
    #: None while the round runs.
    outcome: ReplanOutcome | None = None
    finished_at: float = 0.0
    detail: str = ""


class ReplanLog:
    """Causes pending, the round in progress and the recent finished rounds (see the module doc)."""

    def __init__(self, rounds_kept: int = ROUNDS_KEPT) -> None:
        self._pending: list[ReplanCause] = []
        self._pending_dropped = 0
        self._current: ReplanRound | None = None
        self._rounds: deque[ReplanRound] = deque(maxlen=rounds_kept)
        #: Every request by kind since the start, repeats included (a counter for metrics).
        self.requested: Counter[CauseKind] = Counter()

    @property
    def pending(self) -> tuple[ReplanCause, ...]:
        """Causes waiting for the next round."""
        return tuple(self._pending)

    @property
    def current(self) -> ReplanRound | None:
        return self._current

    @property
    def rounds(self) -> tuple[ReplanRound, ...]:
        """Finished rounds, oldest first."""
        return tuple(self._rounds)

    def request(self, cause: ReplanCause) -> None:
        self.requested[cause.kind] += 1
        # A repeat of a cause already waiting (the same drift, heartbeat after heartbeat) says nothing new.
        if any((c.kind, c.subject, c.detail) == (cause.kind, cause.subject, cause.detail) for c in self._pending):
            return
        if len(self._pending) >= CAUSES_KEPT:
            self._pending_dropped += 1
            return
        self._pending.append(cause)

    def started(self, round_id: int, now: float) -> None:
        """A round starts planning and takes up every pending cause."""
        self._current = ReplanRound(round_id, tuple(self._pending), now, causes_dropped=self._pending_dropped)
        self._pending.clear()
        self._pending_dropped = 0

    def deploying(self, epoch: int) -> None:
        if self._current is not None:
            self._current = replace(self._current, epoch=epoch)

    def finished(self, outcome: ReplanOutcome, now: float, *, epoch: int = 0, detail: str = "") -> None:
        if self._current is None:
            return
        current = self._current
        self._rounds.append(
            replace(current, epoch=epoch or current.epoch, outcome=outcome, finished_at=now, detail=detail)
        )
        self._current = None
