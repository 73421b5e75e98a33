"""The control core driven by event sequences: no sockets, no sleeps, milliseconds each."""

from __future__ import annotations

from pathlib import Path

import pytest
from core_harness import Harness, app_spec, device, state_holding

from coordinator.core import CoreConfig, RestoredState
from coordinator.messages import (
    CancelDeploy,
    CloseChannel,
    DeployOutcome,
    DeviceDeregistered,
    DeviceRegistered,
    DeviceWentOffline,
    FanOutResult,
    HeartbeatReceived,
    PlanFailed,
    ReplanSettled,
    ResultReported,
    StartDeploy,
    StartPlanning,
    UndeployStale,
)
from coordinator.store import StateStore
from synergy.deployment import AgentState
from synergy.errors import AlreadyExists, NotFound
from synergy.reports import DeviceTelemetry, Result, SourceCount
from synergy.types import AppState, DeviceState

GLASSES = device("glasses", port=7001)
RING = device("ring", port=7002)
WATCH = device("watch", port=7003)
EARBUD = device("earbud", port=7004)


def running_cluster(harness: Harness, *devices: object) -> None:
    for spec in devices or (GLASSES, RING, WATCH):
        harness.register(spec)  # type: ignore[arg-type]


def deployed_devices(deploy: StartDeploy) -> set[str]:
    return {d for p in deploy.plan.plans for d in p.devices}


def result(app_id: str, epoch: int, seq: int, dropped: bool = False) -> Result:
    return Result(app_id, epoch, seq, 1.0, 1.01, dropped=dropped, drop_reason="x" if dropped else "")


# -- the happy path -------------------------------------------------------------------------


def test_submit_plans_deploys_and_settles() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics"))
    deploy = h.pending_deploy
    assert deploy is not None and deploy.epoch == 1
    assert deployed_devices(deploy) >= {"glasses"}
    assert h.core.app_info(h.core.apps["app-1"], h.now).state is AppState.WAITING
    h.finish_deploy()
    assert h.core.epoch == 1
    assert any(isinstance(i, ReplanSettled) for i in h.log)
    assert h.core.settled_ticket == h.core.wanted_ticket
    assert h.core.app_info(h.core.apps["app-1"], h.now).state is AppState.RUNNING


def test_unchanged_plan_keeps_the_epoch() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics"))
    h.finish_deploy()
    h.register(EARBUD)  # a new device: re-plan, but the best plan is the same
    assert h.pending_deploy is None
    assert h.core.epoch == 1


def test_failed_submit_consumes_no_app_id() -> None:
    h = Harness()
    running_cluster(h)
    with pytest.raises(Exception, match="unknown sensor type"):
        h.core.check_submission(app_spec("app-1", "thermometer", "display"))
    assert h.core.peek_app_id() == "app-1"


# -- leases, departures, in-flight deployments -----------------------------------------------


def test_lease_expiry_during_an_inflight_deploy_cancels_it_and_replans_without_the_device() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    deploy = h.pending_deploy
    assert deploy is not None and "ring" in deployed_devices(deploy)
    # Only glasses and watch heartbeat: ring's lease runs out while the deploy hangs on it.
    for _ in range(24):
        h.tick()
        for other in ("glasses", "watch"):
            h.heartbeat(other, AgentState())
    cancels = [i for i in h.log if isinstance(i, CancelDeploy)]
    assert [c.epoch for c in cancels] == [deploy.epoch]
    assert "ring left: lease expired" in cancels[0].reason
    assert any(isinstance(i, CloseChannel) and i.address == RING.address for i in h.log)
    # The driver reports the cancellation; the core plans again, without ring.
    h.finish_deploy(DeployOutcome.CANCELLED)
    assert h.core.stats.deploys_cancelled == 1
    assert h.pending_deploy is None  # the pinned target is gone: the app waits
    info = h.core.app_info(h.core.apps["app-1"], h.now)
    assert info.state is AppState.WAITING and "ring" in info.reason


def test_departure_of_a_device_not_in_the_deployment_does_not_cancel_it() -> None:
    h = Harness()
    running_cluster(h, GLASSES, RING, WATCH, EARBUD)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    deploy = h.pending_deploy
    assert deploy is not None and "earbud" not in deployed_devices(deploy)
    h.feed(DeviceDeregistered("earbud", h.leases["earbud"], h.now))
    assert not any(isinstance(i, CancelDeploy) for i in h.log)
    h.finish_deploy()
    assert h.core.epoch == deploy.epoch


def test_deregister_replans_at_once_and_stale_leases_are_refused() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    h.finish_deploy()
    planned_before = sum(isinstance(i, StartPlanning) for i in h.log)
    h.feed(DeviceDeregistered("ring", h.leases["ring"], h.now))
    assert sum(isinstance(i, StartPlanning) for i in h.log) == planned_before + 1
    with pytest.raises(NotFound, match="register again"):
        h.heartbeat("ring", AgentState())


def test_mqtt_offline_needs_the_devices_own_address() -> None:
    h = Harness()
    running_cluster(h)
    assert h.feed(DeviceWentOffline("ring", "10.0.0.9:1", "MQTT: last_will", h.now)) == []
    assert h.core.devices["ring"].online
    h.feed(DeviceWentOffline("ring", RING.address, "MQTT: last_will", h.now))
    assert not h.core.devices["ring"].online


def test_second_live_agent_with_the_same_id_is_refused() -> None:
    h = Harness()
    h.register(RING)
    impostor = device("ring", port=7999)
    with pytest.raises(AlreadyExists, match="already live"):
        h.register(impostor)
    h.register(RING)  # the same agent again: a fresh lease
    for _ in range(30):
        h.tick()
    h.register(impostor)  # the lease ran out: another agent may take the id
    assert h.core.devices["ring"].spec.address == impostor.address


def test_the_connection_that_registered_holds_the_live_id() -> None:
    h = Harness()
    assert h.core.live_holder("ring", h.now) is None
    h.feed(DeviceRegistered(RING, AgentState(), h.now, h.now, "ipv4:127.0.0.1:40001"))
    assert h.core.live_holder("ring", h.now) == "ipv4:127.0.0.1:40001"
    lease = h.core.devices["ring"].lease_id
    # A heartbeat with the live lease from a new connection (the agent reconnected) moves it.
    h.feed(HeartbeatReceived("ring", lease, DeviceTelemetry(), AgentState(), h.now, h.now, "ipv4:127.0.0.1:40002"))
    assert h.core.live_holder("ring", h.now) == "ipv4:127.0.0.1:40002"
    # A heartbeat with a wrong lease proves nothing and moves nothing.
    with pytest.raises(NotFound):
        h.feed(HeartbeatReceived("ring", "f" * 16, DeviceTelemetry(), AgentState(), h.now, h.now, "ipv4:10.0.0.1:9"))
    assert h.core.live_holder("ring", h.now) == "ipv4:127.0.0.1:40002"
    for _ in range(30):
        h.tick()
    assert h.core.live_holder("ring", h.now) is None  # the lease ran out


def test_a_restored_lease_is_held_by_an_unknown_connection_until_it_heartbeats() -> None:
    h = Harness()
    h.core.restore(RestoredState(devices=[(RING, "a" * 16)]), h.now, h.now)
    assert h.core.live_holder("ring", h.now) == "a connection not seen since the coordinator restarted"
    h.feed(HeartbeatReceived("ring", "a" * 16, DeviceTelemetry(), AgentState(), h.now, h.now, "ipv4:127.0.0.1:5"))
    assert h.core.live_holder("ring", h.now) == "ipv4:127.0.0.1:5"


def test_results_are_matched_to_the_plan_of_their_epoch() -> None:
    h = Harness()
    running_cluster(h, GLASSES, RING, WATCH, EARBUD)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    first = h.pending_deploy
    assert first is not None
    assert h.core.pipeline_of("app-1", first.epoch) is not None  # deploying: results may come early
    h.finish_deploy()
    plan = h.core.pipeline_of("app-1", first.epoch)
    assert plan is not None and plan.target_device == "ring"
    assert h.core.pipeline_of("app-1", first.epoch + 7) is None
    assert h.core.pipeline_of("app-9", first.epoch) is None
    assert h.core.lease_device(h.leases["ring"]) == "ring"
    assert h.core.lease_device("0" * 16) is None


def test_sources_counts_from_heartbeats_make_the_apps_admitted_and_skipped() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    h.finish_deploy()

    def beat(device: str, *sources: SourceCount) -> None:
        state = h.core.devices[device].state or AgentState()
        telemetry = DeviceTelemetry(sources=sources)
        h.feed(HeartbeatReceived(device, h.leases[device], telemetry, state, h.now, h.now))

    beat("glasses", SourceCount("app-1", 1, 10, 3), SourceCount("app-9", 1, 99, 0))  # app-9: unknown, ignored
    beat("glasses", SourceCount("app-1", 1, 8, 2), SourceCount("app-1", 2, 5, 0))  # a stale lower count
    stats = h.core.app_info(h.core.apps["app-1"], h.now).stats
    assert (stats.frames_admitted, stats.frames_skipped) == (15, 3)
    h.feed(ResultReported(h.leases["ring"], Result("app-1", 1, 1, 0.0, 0.0, device_id="ring"), h.now))
    assert h.core.app_info(h.core.apps["app-1"], h.now).stats.frames_in_flight == 14


def test_each_frame_is_counted_once_whatever_copies_are_reported() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    h.finish_deploy()

    def report(seq: int, dropped: bool = False) -> list[object]:
        result = Result("app-1", 1, seq, 0.0, 0.001, device_id="ring", dropped=dropped)
        return [i for i in h.feed(ResultReported(h.leases["ring"], result, h.now)) if isinstance(i, FanOutResult)]

    assert report(1) and not report(1)  # delivered, then a replayed copy: once
    assert report(2, dropped=True) and report(2)  # a copy dropped, the replay delivered: delivered
    assert not report(2, dropped=True) and not report(1, dropped=True)  # later drops of a delivered frame
    assert report(3, dropped=True) and not report(3, dropped=True)
    stats = h.core.apps["app-1"].stats
    assert (stats.delivered, stats.dropped, stats.duplicates) == (2, 1, 4)


# -- failures, rollback, quarantine -----------------------------------------------------------


def test_rollback_keeps_the_previous_epoch_and_quarantines_the_failing_device() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "display"))
    first = h.finish_deploy()
    h.submit(app_spec("app-2", "camera", "haptics", target_device="ring"))
    second = h.pending_deploy
    assert second is not None and second.previous_epoch == first.epoch
    h.finish_deploy(DeployOutcome.FAILED, {"ring": "sensor recording not found"})
    assert h.core.epoch == first.epoch  # the previous epoch stays active
    assert h.core.stats.deploy_failures == 1
    devices = {d.spec.device_id: d for d in h.core.list_devices(h.now, h.now)}
    assert "sensor recording not found" in devices["ring"].quarantine_reason
    assert h.core.current_plan(h.now).quarantined.keys() == {"ring"}
    # Planning went on without ring: app-2 (pinned to ring) waits, app-1 keeps running.
    assert h.pending_deploy is None
    info = h.core.app_info(h.core.apps["app-2"], h.now)
    assert info.state is AppState.WAITING and "quarantined" in info.reason


def test_a_device_failing_every_deploy_never_blocks_other_apps() -> None:
    h = Harness()
    running_cluster(h, GLASSES, RING, WATCH, EARBUD)
    h.submit(app_spec("app-1", "microphone", "speaker"))  # earbud only
    h.finish_deploy()
    h.agents_report_truth()
    # ring fails whatever it is given; the camera app needs ring for its pinned output.
    h.submit(app_spec("app-2", "camera", "haptics", target_device="ring"))
    backoffs = []
    for _ in range(3):
        assert h.pending_deploy is not None and "ring" in deployed_devices(h.pending_deploy)
        h.finish_deploy(DeployOutcome.FAILED, {"ring": "refused"})
        quarantine = h.core.quarantines["ring"]
        backoffs.append(quarantine.until - h.now)
        # Other apps are unaffected: app-1 keeps its deployed plan and epoch.
        assert h.core.plan.plan_for("app-1") is not None
        assert h.core.app_info(h.core.apps["app-1"], h.now).state is not AppState.WAITING
        for _ in range(200):
            if h.pending_deploy is not None:
                break
            h.tick(0.5)
            h.agents_report_truth()
    assert backoffs == [5.0, 10.0, 20.0]
    assert h.core.stats.quarantines == 3
    # Once it deploys fine after its quarantine, it is forgiven.
    assert h.pending_deploy is not None
    h.finish_deploy()
    assert "ring" not in h.core.quarantines


def test_a_timeout_of_a_device_that_already_left_blames_nobody() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    h.feed(DeviceDeregistered("ring", h.leases["ring"], h.now))
    h.finish_deploy(DeployOutcome.TIMED_OUT, {"ring": "did not answer"})
    assert "ring" not in h.core.quarantines


def test_a_crashed_deploy_is_retried_after_the_backoff() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "display"))
    h.finish_deploy(DeployOutcome.CRASHED)
    assert h.pending_deploy is None
    h.tick(1.0)
    assert h.pending_deploy is None
    h.tick(1.5)
    assert h.pending_deploy is not None


def test_planning_failure_is_reported_and_retried() -> None:
    h = Harness()
    running_cluster(h)
    h.planner = _raising_planner  # type: ignore[assignment]
    with pytest.raises(RuntimeError):
        h.submit(app_spec("app-1", "camera", "display"))
    plan_id = next(i.plan_id for i in reversed(h.log) if isinstance(i, StartPlanning))
    h.planner = Harness().planner
    h.feed(PlanFailed(plan_id, "RuntimeError: boom", h.now))
    assert "planning failed" in h.core.apps["app-1"].reason
    h.tick(2.5)
    assert h.pending_deploy is not None


def _raising_planner(*_: object) -> None:
    raise RuntimeError("boom")


def test_watchdog_cancels_a_deploy_that_never_answers() -> None:
    h = Harness(CoreConfig(lease_ttl_s=500.0, heartbeat_s=1.0, watchdog_s=30.0, calibrate=False))
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "display"))
    h.tick(31.0)
    assert any(isinstance(i, CancelDeploy) and "still running" in i.reason for i in h.log)


# -- reconciliation with what agents really hold -------------------------------------------------


def test_drift_is_repaired_within_two_heartbeats() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    first = h.finish_deploy()
    h.agents_report_truth()
    assert h.pending_deploy is None
    # Someone undeployed ring's epoch behind the coordinator's back.
    assert h.heartbeat("ring", AgentState()) == []  # one report may predate a step
    h.heartbeat("ring", AgentState())
    again = h.pending_deploy
    assert again is not None and again.epoch == first.epoch + 1
    assert [p.stages for p in again.plan.plans] == [p.stages for p in first.plan.plans]  # same stages
    assert h.core.stats.drift_repairs == 1
    # What ring still holds travels without bytes; what it lost is sent again.
    assert again.held["ring"] == frozenset()
    assert again.held["glasses"]


def test_stale_epochs_are_undeployed() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "display"))
    h.finish_deploy()
    h.agents_report_truth()
    stale = AgentState(active_epoch=1, loaded_epochs=(1, 7))
    h.heartbeat("watch", stale)
    out = h.heartbeat("watch", stale)
    # watch runs nothing of epoch 1: both epochs it holds are stale.
    assert {(i.address, i.epoch) for i in out if isinstance(i, UndeployStale)} == {
        (WATCH.address, 1),
        (WATCH.address, 7),
    }


def test_a_restarted_agent_is_redeployed_at_once() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    h.finish_deploy()
    h.agents_report_truth()
    h.register(RING)  # a new process, holding nothing
    assert h.pending_deploy is not None


def test_epochs_are_numbered_past_what_agents_hold() -> None:
    h = Harness()
    h.register(GLASSES, AgentState(active_epoch=41, loaded_epochs=(41,)))
    h.register(RING)
    h.register(WATCH)
    h.submit(app_spec("app-1", "camera", "display"))
    assert h.pending_deploy is not None and h.pending_deploy.epoch == 42


# -- app state -----------------------------------------------------------------------------


def test_an_app_whose_frames_stopped_is_stalled_not_running() -> None:
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "display"))
    h.finish_deploy()
    lease = h.leases["glasses"]
    h.feed(ResultReported(lease, result("app-1", 1, 1), h.now))
    assert h.core.app_info(h.core.apps["app-1"], h.now).state is AppState.RUNNING
    for _ in range(8):
        h.tick(1.0)
        h.agents_report_truth()
    info = h.core.app_info(h.core.apps["app-1"], h.now)
    assert info.state is AppState.STALLED and "no frame outcome" in info.reason
    h.feed(ResultReported(lease, result("app-1", 1, 2), h.now))
    assert h.core.app_info(h.core.apps["app-1"], h.now).state is AppState.RUNNING


def test_results_need_a_live_lease() -> None:
    h = Harness()
    running_cluster(h)
    with pytest.raises(NotFound):
        h.feed(ResultReported("forged", result("app-1", 1, 1), h.now))


# -- restart from persisted state -------------------------------------------------------------


def test_restart_from_persisted_state_resumes_without_redeploying(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    h = Harness(store=store)
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "display"))
    h.finish_deploy()
    h.submit(app_spec("app-2", "camera", "haptics", target_device="ring"))
    h.finish_deploy()
    h.agents_report_truth()
    store.close()

    r = h.restored_from(tmp_path)
    assert sorted(r.core.apps) == ["app-1", "app-2"]
    assert r.core.epoch == h.core.epoch
    assert {d.spec.device_id for d in r.core.list_devices(r.now, r.now) if d.state is DeviceState.ONLINE} == {
        "glasses",
        "ring",
        "watch",
    }
    # The same plan comes out; agents that kept running carry on with their old leases.
    assert r.pending_deploy is None
    r.core._deployed.expected = dict(h.core._deployed.expected)
    r.agents_report_truth()
    assert r.pending_deploy is None
    # New work numbers past everything the previous run handed out.
    assert r.core.peek_app_id() == "app-3"
    r.feed(DeviceDeregistered("ring", r.leases["ring"], r.now))
    assert r.pending_deploy is not None and r.pending_deploy.epoch > h.core.epoch


def test_restart_forgets_devices_that_did_not_come_back(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    h = Harness(store=store)
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    h.finish_deploy()
    store.close()
    r = h.restored_from(tmp_path)
    for _ in range(30):
        r.tick()
        for d in ("glasses", "watch"):
            r.heartbeat(d, AgentState())
    assert not r.core.devices["ring"].online
    info = r.core.app_info(r.core.apps["app-1"], r.now)
    assert info.state is AppState.WAITING


def test_restart_keeps_quarantines(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    h = Harness(store=store)
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "haptics", target_device="ring"))
    h.finish_deploy(DeployOutcome.FAILED, {"ring": "refused"})
    store.close()
    r = h.restored_from(tmp_path)
    assert "refused" in r.core.quarantines["ring"].reason


def test_held_state(tmp_path: Path) -> None:
    """A sanity check of the harness itself: reported holdings match what was deployed."""
    h = Harness()
    running_cluster(h)
    h.submit(app_spec("app-1", "camera", "display"))
    deploy = h.finish_deploy()
    held = h.core._deployed.expected["glasses"]
    assert state_holding(deploy.epoch, held).holds(deploy.epoch) == held
