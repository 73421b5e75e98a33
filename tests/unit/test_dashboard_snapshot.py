"""The dashboard's snapshot builder (a pure function) and the pure parts of its server."""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

import pytest
from core_harness import app_spec, device

from coordinator.dashboard.server import SnapshotFeed, _local_host_header
from coordinator.dashboard.snapshot import SpaceView, build_snapshot
from coordinator.replans import CauseKind, ReplanCause, ReplanLog, ReplanOutcome
from synergy.binds import parse_bind
from synergy.errors import InvalidArgument
from synergy.reports import CoordinatorStats, DeviceTelemetry
from synergy.types import (
    AppInfo,
    AppState,
    AppStats,
    BoardPort,
    DeviceInfo,
    DeviceState,
    ExecutionPlan,
    JointPlan,
    Stage,
)

#: Monotonic and wall clock read together: monotonic 100 is Unix 1_700_000_100.
NOW, NOW_UNIX = 200.0, 1_700_000_200.0
PORT = BoardPort("/dev/ttyACM0", 921600, "synergy-fw 0.3", 1, 92160.0, 80000.0)
#: Maps whose keys are ids from the space, not field names.
ID_KEYED = {"unplaced", "quarantined", "calibration"}


def view(**changes: Any) -> SpaceView:
    glasses = DeviceInfo(
        spec=device("glasses", port=7001),
        state=DeviceState.ONLINE,
        last_seen_unix=NOW_UNIX - 0.5,
        telemetry=DeviceTelemetry(frames_in=10, frames_out=9, accelerator_busy_s=0.25),
    )
    ring = DeviceInfo(
        spec=dataclasses.replace(device("ring", port=7002), board_port=PORT),
        state=DeviceState.OFFLINE,
        last_seen_unix=NOW_UNIX - 9.0,
        telemetry=DeviceTelemetry(),
        quarantine_reason="failed deploying epoch 2: refused",
        quarantined_until_unix=NOW_UNIX + 5.0,
    )
    plan = JointPlan(
        epoch=3,
        plans=(
            ExecutionPlan(
                "app-2",
                "glasses",
                (Stage("glasses", 0, 3), Stage("ring", 4, 7)),
                "ring",
                predicted_rate_hz=14.0,
                predicted_latency_s=0.0425,
                parallel_devices=("glasses",),
            ),
        ),
        system_throughput=float("inf"),  # not finite: must leave as null
        method="synergy",
        unplaced={"app-10": "no device has a microphone"},
    )
    apps = [
        AppInfo(
            "app-10",
            app_spec("app-10", "microphone", "haptics"),
            AppState.WAITING,
            reason="no device has a microphone",
        ),
        AppInfo(
            "app-2",
            dataclasses.replace(app_spec("app-2"), name="<b>digits</b>"),
            AppState.RUNNING,
            layers=8,
            stats=AppStats(90, 2, 14.5, 41.25, frames_admitted=95, frames_skipped=7),
            owner="tests",
        ),
    ]
    log = ReplanLog()
    log.request(ReplanCause(CauseKind.APP_SUBMITTED, "app-2", 100.0))
    log.started(1, 100.0)
    log.deploying(3)
    log.finished(ReplanOutcome.DEPLOYED, 101.0)
    log.request(ReplanCause(CauseKind.DEVICE_LEFT, "ring", 190.0, "lease expired"))
    log.started(2, 190.0)
    log.request(ReplanCause(CauseKind.APP_SUBMITTED, "app-10", 195.0))
    fields: dict[str, Any] = {
        "devices": [ring, glasses],
        "apps": apps,
        "plan": plan,
        "stats": CoordinatorStats(epoch=3, replans=3, calibration={"glasses": 1.05}),
        "rounds": log.rounds,
        "current_round": log.current,
        "pending_causes": log.pending,
        "now": NOW,
        "now_unix": NOW_UNIX,
        "about": {"address": "127.0.0.1:50051", "planner": "synergy", "tls": True},
    }
    fields.update(changes)
    return SpaceView(**fields)


def test_the_snapshot_is_plain_json_with_snake_case_keys() -> None:
    snapshot = build_snapshot(view())
    text = json.dumps(snapshot, allow_nan=False)  # raises on NaN or infinity
    assert json.loads(text) == snapshot

    def keys(value: Any, parent: str = "") -> list[str]:
        if isinstance(value, dict):
            own = [] if parent in ID_KEYED else list(value)
            return own + [k for key, v in value.items() for k in keys(v, key)]
        if isinstance(value, list):
            return [k for v in value for k in keys(v, parent)]
        return []

    bad = [k for k in keys(snapshot) if not re.fullmatch(r"[a-z][a-z0-9_]*", k)]
    assert bad == []
    assert snapshot["plan"]["system_throughput"] is None
    assert snapshot["coordinator"] == {"address": "127.0.0.1:50051", "planner": "synergy", "tls": True}
    assert (snapshot["version"], snapshot["epoch"], snapshot["ready"]) == (1, 3, True)


def test_devices_carry_their_parts_state_quarantine_and_board_port() -> None:
    devices = {d["device_id"]: d for d in build_snapshot(view())["devices"]}
    assert list(devices) == ["glasses", "ring"]  # sorted by id
    glasses, ring = devices["glasses"], devices["ring"]
    assert glasses["state"] == "online" and glasses["quarantine_reason"] == ""
    assert glasses["sensors"] == [{"type": "camera", "rate_hz": 15.0}] and glasses["outputs"] == ["display"]
    assert glasses["board"]["accelerator"] == "MAX78000" and glasses["board_port"] is None
    assert glasses["link"]["name"] and isinstance(glasses["link"]["bandwidth_bytes_per_s"], float)
    assert glasses["telemetry"]["frames_in"] == 10 and glasses["telemetry"]["accelerator_busy_s"] == 0.25
    assert ring["state"] == "offline"
    assert ring["quarantine_reason"] == "failed deploying epoch 2: refused"
    assert ring["quarantined_until_unix"] == NOW_UNIX + 5.0
    assert ring["board_port"] == {
        "transport": "serial",
        "path": "/dev/ttyACM0",
        "baud": 921600,
        "firmware": "synergy-fw 0.3",
        "protocol_version": 1,
        "measured_wire_bytes_per_s": 92160.0,
        "measured_payload_bytes_per_s": 80000.0,
    }


def test_apps_carry_state_reason_figures_and_their_pipeline() -> None:
    apps = build_snapshot(view())["apps"]
    assert [a["app_id"] for a in apps] == ["app-2", "app-10"]  # by number, not as text
    running, waiting = apps
    assert running["name"] == "<b>digits</b>"  # data, as given: the page shows it as text
    assert (running["state"], running["reason"], running["owner"]) == ("running", "", "tests")
    assert running["stats"] == {
        "rate_hz": 14.5,
        "latency_ms": 41.25,
        "frames_delivered": 90,
        "frames_dropped": 2,
        "frames_admitted": 95,
        "frames_skipped": 7,
        "frames_in_flight": 3,
    }
    assert running["pipeline"] == {
        "epoch": 3,
        "source_device": "glasses",
        "stages": [
            {"device_id": "glasses", "first_layer": 0, "last_layer": 3},
            {"device_id": "ring", "first_layer": 4, "last_layer": 7},
        ],
        "target_device": "ring",
        "devices": ["glasses", "ring"],
        "parallel_devices": ["glasses"],
        "predicted_rate_hz": 14.0,
        "predicted_latency_ms": 42.5,
    }
    assert waiting["state"] == "waiting" and waiting["pipeline"] is None
    assert waiting["reason"] == "no device has a microphone"


def test_replans_list_the_running_round_the_waiting_causes_and_recent_epochs() -> None:
    replans = build_snapshot(view())["replans"]
    current = replans["current"]
    assert (current["round_id"], current["outcome"], current["phase"]) == (2, "running", "planning")
    assert current["started_at_unix"] == NOW_UNIX - 10.0 and current["finished_at_unix"] is None
    assert current["causes"] == [
        {
            "kind": "device_left",
            "subject": "ring",
            "detail": "lease expired",
            "text": "device ring left: lease expired",
            "at_unix": NOW_UNIX - 10.0,
        }
    ]
    assert [c["text"] for c in replans["pending"]] == ["app app-10 submitted"]
    (deployed,) = replans["recent"]
    assert (deployed["epoch"], deployed["outcome"], deployed["phase"]) == (3, "deployed", "finished")
    assert deployed["finished_at_unix"] == NOW_UNIX - 99.0


def test_recent_rounds_are_newest_first_and_bounded() -> None:
    log = ReplanLog()
    for i in range(30):
        log.started(i + 1, float(i))
        log.finished(ReplanOutcome.UNCHANGED, float(i))
    recent = build_snapshot(view(rounds=log.rounds, current_round=None, pending_causes=()))["replans"]["recent"]
    assert [r["round_id"] for r in recent] == list(range(30, 10, -1))


def test_an_empty_space_is_a_valid_snapshot() -> None:
    empty = SpaceView(devices=(), apps=(), plan=JointPlan(), stats=CoordinatorStats(), ready=False)
    snapshot = build_snapshot(empty)
    assert snapshot["devices"] == [] and snapshot["apps"] == [] and snapshot["ready"] is False
    assert snapshot["replans"] == {"current": None, "pending": [], "recent": []}


# -- the server's pure parts -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("127.0.0.1:8080", ("127.0.0.1", 8080)), (":0", ("127.0.0.1", 0)), ("[::1]:9000", ("::1", 9000))],
)
def test_http_bind_parses(bind: str, expected: tuple[str, int]) -> None:
    assert parse_bind(bind, "--http-bind", 8080) == expected


@pytest.mark.parametrize("bind", ["8080", "localhost", "127.0.0.1:http", "127.0.0.1:70000", "", "[nope]:80"])
def test_a_bad_http_bind_names_the_flag(bind: str) -> None:
    with pytest.raises(InvalidArgument, match="--http-bind"):
        parse_bind(bind, "--http-bind", 8080)


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1:8080", True),
        ("[::1]:8080", True),
        ("localhost:8080", True),
        ("dash.localhost", True),
        ("10.0.0.5", True),
        ("attacker.example:8080", False),
        ("127.0.0.1.nip.io", False),
    ],
)
def test_a_loopback_dashboard_answers_only_local_host_names(host: str, allowed: bool) -> None:
    assert _local_host_header(host, "127.0.0.1") is allowed


def test_the_feed_moves_its_version_only_when_the_content_changes() -> None:
    clock = [0.0]  # seconds since NOW, on both clocks
    epoch = [3]

    def read() -> SpaceView:
        plan = dataclasses.replace(view().plan, epoch=epoch[0])
        return view(now=NOW + clock[0], now_unix=NOW_UNIX + clock[0], plan=plan)

    feed = SnapshotFeed(read, period_s=0.5)
    version, body = feed.latest(10.0)
    assert json.loads(body)["epoch"] == 3
    assert feed.latest(10.2) == (version, body)  # within the period: not even rebuilt
    clock[0] += 1.0  # time passes, nothing happens: only the generation time moves
    assert feed.latest(11.0)[0] == version
    epoch[0] = 4
    moved, body = feed.latest(12.0)
    assert moved == version + 1 and json.loads(body)["epoch"] == 4
