"""Why the coordinator re-planned: the re-plan log alone, and as the control core keeps it."""

from __future__ import annotations

from core_harness import Harness, app_spec, device

from coordinator.messages import DeployOutcome, DeviceDeregistered
from coordinator.replans import CAUSES_KEPT, CauseKind, ReplanCause, ReplanLog, ReplanOutcome
from synergy.deployment import AgentState

GLASSES = device("glasses", port=7001)
RING = device("ring", port=7002)
WATCH = device("watch", port=7003)


def kinds(causes: tuple[ReplanCause, ...]) -> list[tuple[CauseKind, str]]:
    return [(c.kind, c.subject) for c in causes]


# -- the log ---------------------------------------------------------------------------------


def test_a_round_takes_up_every_pending_cause_once() -> None:
    log = ReplanLog()
    log.request(ReplanCause(CauseKind.DEVICE_JOINED, "ring", 1.0))
    log.request(ReplanCause(CauseKind.DEVICE_DRIFTED, "watch", 2.0))
    log.request(ReplanCause(CauseKind.DEVICE_DRIFTED, "watch", 3.0))  # the same drift again
    log.started(7, 4.0)
    assert log.pending == ()
    current = log.current
    assert current is not None and current.outcome is None and current.round_id == 7
    assert kinds(current.causes) == [(CauseKind.DEVICE_JOINED, "ring"), (CauseKind.DEVICE_DRIFTED, "watch")]
    assert log.requested[CauseKind.DEVICE_DRIFTED] == 2  # metrics count every request
    log.request(ReplanCause(CauseKind.APP_SUBMITTED, "app-1", 4.5))  # for the next round
    log.deploying(3)
    log.finished(ReplanOutcome.DEPLOYED, 5.0)
    (done,) = log.rounds
    assert (done.epoch, done.outcome, done.started_at, done.finished_at) == (3, ReplanOutcome.DEPLOYED, 4.0, 5.0)
    assert log.current is None
    assert kinds(log.pending) == [(CauseKind.APP_SUBMITTED, "app-1")]


def test_causes_and_rounds_are_bounded() -> None:
    log = ReplanLog(rounds_kept=3)
    for i in range(CAUSES_KEPT + 5):
        log.request(ReplanCause(CauseKind.DEVICE_JOINED, f"d{i}", 0.0))
    log.started(1, 0.0)
    current = log.current
    assert current is not None and len(current.causes) == CAUSES_KEPT and current.causes_dropped == 5
    for i in range(5):
        log.finished(ReplanOutcome.UNCHANGED, float(i))
        log.started(i + 2, float(i))
    assert [r.round_id for r in log.rounds] == [3, 4, 5]


def test_cause_texts_name_the_subject_and_detail() -> None:
    assert ReplanCause(CauseKind.DEVICE_LEFT, "ring", 0.0, "lease expired").text == "device ring left: lease expired"
    assert ReplanCause(CauseKind.DEPLOY_FAILED, "4", 0.0).text == "retry after epoch 4 failed to deploy"
    assert ReplanCause(CauseKind.STARTED, "", 0.0).text == "coordinator started"
    assert all(ReplanCause(kind, "x", 0.0).text for kind in CauseKind)


# -- the core's causes -----------------------------------------------------------------------


def test_the_core_says_why_each_round_ran_and_how_it_ended() -> None:
    h = Harness()
    for spec in (GLASSES, RING, WATCH):
        h.register(spec)
    joined = [r for r in h.core.replans.rounds if r.causes and r.causes[0].kind is CauseKind.DEVICE_JOINED]
    assert [r.causes[0].subject for r in joined] == ["glasses", "ring", "watch"]
    assert all(r.outcome is ReplanOutcome.UNCHANGED for r in joined)  # no app: nothing to deploy

    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    current = h.core.replans.current
    assert current is not None and current.epoch == 1 and current.outcome is None  # deploying epoch 1
    assert kinds(current.causes) == [(CauseKind.APP_SUBMITTED, "app-1")]
    # While it deploys, two more requests wait for the next round, together.
    h.submit(app_spec("app-2", "camera", "display"))
    h.feed(DeviceDeregistered("watch", h.leases["watch"], h.now))
    assert kinds(h.core.replans.pending) == [(CauseKind.APP_SUBMITTED, "app-2"), (CauseKind.DEVICE_LEFT, "watch")]
    assert h.core.replans.pending[1].text == "device watch left: deregistered"
    h.finish_deploy()
    first = h.core.replans.rounds[-1]
    assert (first.epoch, first.outcome) == (1, ReplanOutcome.DEPLOYED)

    # The next round started at once with both causes; its deployment fails.
    current = h.core.replans.current
    assert current is not None and len(current.causes) == 2
    h.finish_deploy(DeployOutcome.FAILED, {"ring": "refused"})
    failed = h.core.replans.rounds[-1]
    assert (failed.epoch, failed.outcome, failed.detail) == (2, ReplanOutcome.DEPLOY_FAILED, "failed: ring: refused")
    assert (CauseKind.DEPLOY_FAILED, "2") in kinds(every_cause(h))


def every_cause(h: Harness) -> tuple[ReplanCause, ...]:
    """Causes of the finished rounds, the running one and those waiting, oldest first."""
    log = h.core.replans
    running = log.current.causes if log.current is not None else ()
    return (*(c for r in log.rounds for c in r.causes), *running, *log.pending)


def test_a_lease_that_runs_out_is_the_cause_of_the_next_round() -> None:
    h = Harness()
    for spec in (GLASSES, RING, WATCH):
        h.register(spec)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    h.finish_deploy()
    for _ in range(24):  # ring stops heartbeating
        h.tick()
        for other in ("glasses", "watch"):
            h.heartbeat(other, AgentState())
    left = [c for c in every_cause(h) if c.kind is CauseKind.DEVICE_LEFT]
    assert [(c.subject, c.text) for c in left] == [("ring", "device ring left: lease expired")]
