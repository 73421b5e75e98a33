"""The status view (pure: snapshot in, lines out), its JSON, per-app bottlenecks, and the Screen."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any, cast

import pytest

from synergy.devices import preset_device
from synergy.reports import DeviceTelemetry
from synergy.status_view import StatusSnapshot, app_bottleneck, render_status, snapshot, status_json, utilisation
from synergy.terminal import ALTERNATE_OFF, ALTERNATE_ON, HOME_CLEAR, SHOW_CURSOR, Screen, fit, truncate
from synergy.types import (
    AppInfo,
    AppSpec,
    AppState,
    AppStats,
    BoardPort,
    DeviceInfo,
    DeviceState,
    ExecutionPlan,
    JointPlan,
    Stage,
)

NOW = 1_700_000_000.0
PORT = BoardPort("/dev/ttyACM0", 921600, "synergy-fw 0.3", 1, 92160.0, 80000.0)


def device(preset: str, *, busy_s: float = 0.0, seen: float = NOW, **changes: object) -> DeviceInfo:
    info = DeviceInfo(
        spec=preset_device(preset),
        state=DeviceState.ONLINE,
        last_seen_unix=seen,
        telemetry=DeviceTelemetry(accelerator_busy_s=busy_s),
    )
    return dataclasses.replace(info, **changes)  # type: ignore[arg-type]


def app(app_id: str, name: str, source: str, model: str, state: AppState, **changes: object) -> AppInfo:
    spec = AppSpec(app_id, name=name, model=model, source_type=source, target_type="display")
    info = AppInfo(app_id, spec, state)
    return dataclasses.replace(info, **changes)  # type: ignore[arg-type]


GLASSES = device("glasses", busy_s=10.0)
WATCH = device("watch", busy_s=4.0)
RING = device(
    "ring",
    state=DeviceState.OFFLINE,
    seen=NOW - 12,
    quarantine_reason="failed deploying epoch 2: refused",
)
DIGITS = app(
    "app-1",
    "digits",
    "camera",
    "convnet5",
    AppState.RUNNING,
    stats=AppStats(frames_delivered=120, frames_dropped=2, rate_hz=14.912, latency_ms=4.23),
)
KWS = app(
    "app-2",
    "kws",
    "imu",
    "kws20_v3",
    AppState.RUNNING,
    stats=AppStats(frames_delivered=300, rate_hz=7.5, latency_ms=15.4),
)
WAITING = app(
    "app-3",
    "words",
    "microphone",
    "kws20_v3",
    AppState.WAITING,
    reason="no device has a microphone sensor",
)
PLAN = JointPlan(
    epoch=3,
    plans=(
        ExecutionPlan("app-1", "glasses", (Stage("glasses", 0, 4),), "glasses", predicted_rate_hz=15.0),
        ExecutionPlan("app-2", "watch", (Stage("watch", 0, 3), Stage("glasses", 4, 8)), "watch", predicted_rate_hz=7.5),
    ),
    system_throughput=22.5,
    bottleneck="glasses.accelerator",
    method="synergy",
    unplaced={"app-3": "no device has a microphone sensor"},
)
SNAP = StatusSnapshot(
    devices=(GLASSES, WATCH, RING),
    apps=(DIGITS, KWS, WAITING),
    plan=PLAN,
    utilisation={"glasses": 0.423},
    coordinator="127.0.0.1:50051",
    taken_unix=NOW,
)

#: The whole view (wider than this file's lines: it is the 200-column view).
EXPECTED_200 = """\
status
plan: epoch 3 (synergy), predicted 22.50 frames/s, bottleneck glasses.accelerator

devices (2 online, 1 offline)
device   kind     state    board     accel  link     note
-------  -------  -------  --------  -----  -------  ----------------------------------------------
glasses  glasses  online   MAX78000  42%    ble5_2m
watch    watch    online   MAX78002  -      ble5_2m
ring     ring     offline  MAX78000  -      ble5_2m  quarantined: failed deploying epoch 2: refused

apps (2 running, 1 waiting)
app    name    model     state      fps  lat_ms  done  drop  bottleneck           where / why
-----  ------  --------  -------  -----  ------  ----  ----  -------------------  --------------------------------------------
app-1  digits  convnet5  running  14.91    4.20   120     2  glasses.camera       glasses => glasses[0-4] => glasses
app-2  kws     kws20_v3  running   7.50   15.40   300     0  glasses.accelerator  watch => watch[0-3] -> glasses[4-8] => watch
app-3  words   kws20_v3  waiting   0.00    0.00     0     0  -                    no device has a microphone sensor"""  # noqa: E501

#: 60 columns: the columns that repeat others (kind, name, model) are left out, then lines cut.
EXPECTED_60 = """\
status
plan: epoch 3 (synergy), predicted 22.50 frames/s, bottlene…

devices (2 online, 1 offline)
device   state    board     accel  link     note
-------  -------  --------  -----  -------  ---------------…
glasses  online   MAX78000  42%    ble5_2m
watch    online   MAX78002  -      ble5_2m
ring     offline  MAX78000  -      ble5_2m  quarantined: fa…

apps (2 running, 1 waiting)
app    state      fps  lat_ms  done  drop  bottleneck      …
-----  -------  -----  ------  ----  ----  ----------------…
app-1  running  14.91    4.20   120     2  glasses.camera  …
app-2  running   7.50   15.40   300     0  glasses.accelera…
app-3  waiting   0.00    0.00     0     0  -               …"""


def test_the_view_at_width_200() -> None:
    assert render_status(SNAP, 200, title="status") == EXPECTED_200.splitlines()


def test_the_view_at_width_60() -> None:
    lines = render_status(SNAP, 60, title="status")
    assert lines == EXPECTED_60.splitlines()
    assert max(map(len, lines)) == 60


def test_at_80_columns_every_app_keeps_its_bottleneck() -> None:
    rows = [line for line in render_status(SNAP, 80) if line.startswith("app-")]
    assert [row.split()[6] for row in rows] == ["glasses.camera", "glasses.accelerator", "-"]
    assert all(len(row) <= 80 for row in rows)


def test_an_empty_space() -> None:
    lines = render_status(StatusSnapshot(), 60)
    assert lines == [
        "plan: no epoch deployed yet",
        "",
        "devices",
        "(no devices)",
        "",
        "apps",
        "(no apps)",
    ]


def test_a_waiting_app_shows_its_reason_and_no_bottleneck() -> None:
    alone = StatusSnapshot(devices=(GLASSES,), apps=(WAITING,), plan=JointPlan(epoch=1, unplaced=dict(PLAN.unplaced)))
    (row,) = [line for line in render_status(alone, 200) if line.startswith("app-3")]
    assert row.split()[3] == "waiting" and row.split()[8] == "-"  # state; bottleneck: none
    assert row.endswith("  no device has a microphone sensor")
    assert app_bottleneck(WAITING, alone.plan, alone.devices) == ""


def test_width_200_cuts_a_long_reason() -> None:
    reason = "admission: needs 40 frames/s, reaches at most 15 even alone in this space; " * 4
    long = dataclasses.replace(WAITING, reason=reason)
    (row,) = [line for line in render_status(dataclasses.replace(SNAP, apps=(long,)), 200) if line.startswith("app-3")]
    assert len(row) == 200 and row.endswith("…")
    assert reason.startswith(row[row.index("admission"):-1])


def test_height_keeps_the_first_lines_and_says_how_many_more() -> None:
    lines = render_status(SNAP, 200, 8, title="status")
    assert len(lines) == 8
    assert lines[:7] == EXPECTED_200.splitlines()[:7]
    assert lines[7] == f"... {len(EXPECTED_200.splitlines()) - 7} more lines (a taller terminal shows them)"


def test_another_clients_app_shows_hidden_figures() -> None:
    hidden = dataclasses.replace(DIGITS, stats=AppStats(), stats_hidden=True, owner="bob")
    theirs = dataclasses.replace(SNAP, apps=(hidden,))
    (row,) = [line for line in render_status(theirs, 200) if line.startswith("app-1")]
    assert row.split()[4:8] == ["hidden"] * 4
    assert status_json(theirs)["apps"] == [
        pytest.approx(
            {
                "app_id": "app-1",
                "name": "digits",
                "model": "convnet5",
                "source_type": "camera",
                "target_type": "display",
                "owner": "bob",
                "state": "running",
                "reason": "",
                "stats_hidden": True,
                "rate_hz": None,
                "latency_ms": None,
                "frames_delivered": None,
                "frames_dropped": None,
                "frames_in_flight": None,
                "frames_skipped": None,
                "predicted_rate_hz": 15.0,
                "predicted_latency_ms": 0.0,
                "bottleneck": "glasses.camera",
                "where": "glasses => glasses[0-4] => glasses",
            }
        )
    ]


# -- bottlenecks -------------------------------------------------------------------------------


def test_an_app_at_its_sensor_rate_is_limited_by_the_sensor() -> None:
    assert app_bottleneck(DIGITS, PLAN, SNAP.devices) == "glasses.camera"


def test_an_app_at_its_own_max_rate_is_limited_by_it() -> None:
    capped = dataclasses.replace(DIGITS, spec=dataclasses.replace(DIGITS.spec, max_rate_hz=5.0))
    plan = dataclasses.replace(PLAN, plans=(dataclasses.replace(PLAN.plans[0], predicted_rate_hz=5.0),))
    assert app_bottleneck(capped, plan, SNAP.devices) == "max_rate_hz"


def test_below_its_cap_an_app_is_limited_by_the_system_bottleneck_on_its_path() -> None:
    assert app_bottleneck(KWS, PLAN, SNAP.devices) == "glasses.accelerator"
    elsewhere = dataclasses.replace(PLAN, bottleneck="ring.radio")
    assert app_bottleneck(KWS, elsewhere, SNAP.devices) == ""  # some other saturated resource


def test_a_shared_medium_is_on_the_path_of_its_members() -> None:
    on_air = [
        dataclasses.replace(d, spec=dataclasses.replace(d.spec, medium="body")) for d in (GLASSES, WATCH)
    ]
    plan = dataclasses.replace(PLAN, bottleneck="body.air")
    assert app_bottleneck(KWS, plan, on_air) == "body.air"
    assert app_bottleneck(KWS, plan, SNAP.devices) == ""  # not on that medium


# -- utilisation -------------------------------------------------------------------------------


def test_utilisation_is_busy_time_between_two_heartbeats() -> None:
    first = snapshot([GLASSES, WATCH], [], PLAN, taken_unix=NOW)
    assert first.utilisation == {}  # one snapshot: not known
    later = [
        dataclasses.replace(GLASSES, last_seen_unix=NOW + 2, telemetry=DeviceTelemetry(accelerator_busy_s=10.5)),
        WATCH,  # no heartbeat since: nothing to compare yet
    ]
    second = snapshot(later, [], PLAN, previous=first, taken_unix=NOW + 2)
    assert second.utilisation == pytest.approx({"glasses": 0.25})
    # No newer heartbeat: the last figure stays; a counter that went back (a restarted agent): none.
    restarted = dataclasses.replace(WATCH, last_seen_unix=NOW + 3, telemetry=DeviceTelemetry(accelerator_busy_s=1))
    assert utilisation(second, [later[0], restarted]) == pytest.approx({"glasses": 0.25})


# -- JSON --------------------------------------------------------------------------------------


def test_json_is_snake_case_with_numbers_as_numbers() -> None:
    document = status_json(SNAP)
    text = json.dumps(document, allow_nan=False)  # strict JSON
    assert json.loads(text) == document
    assert document["plan"] == {
        "epoch": 3,
        "predicted_throughput_hz": 22.5,
        "bottleneck": "glasses.accelerator",
        "method": "synergy",
        "quarantined": {},
        "unplaced": {"app-3": "no device has a microphone sensor"},
    }
    glasses, watch, ring = cast(list[dict[str, Any]], document["devices"])
    assert glasses["accelerator_utilisation"] == 0.423 and watch["accelerator_utilisation"] is None
    assert ring["state"] == "offline" and ring["quarantine_reason"].startswith("failed deploying")
    digits, kws, waiting = cast(list[dict[str, Any]], document["apps"])
    assert digits["frames_delivered"] == 120 and digits["rate_hz"] == 14.912
    assert digits["bottleneck"] == "glasses.camera"
    assert kws["bottleneck"] == "glasses.accelerator"
    assert waiting["state"] == "waiting" and waiting["reason"] and waiting["where"] is None
    assert waiting["bottleneck"] is None and waiting["predicted_rate_hz"] is None


def test_json_has_no_infinity() -> None:
    unbounded = dataclasses.replace(SNAP, plan=dataclasses.replace(PLAN, system_throughput=float("inf")))
    document = status_json(unbounded)
    assert document["plan"]["predicted_throughput_hz"] is None  # type: ignore[index]
    json.dumps(document, allow_nan=False)


def test_a_real_boards_port_rate_is_shown() -> None:
    ported = dataclasses.replace(GLASSES, spec=dataclasses.replace(GLASSES.spec, board_port=PORT))
    lines = render_status(StatusSnapshot(devices=(ported,)), 200)
    assert any("ble5_2m, board 80.0 kB/s" in line for line in lines)
    assert status_json(StatusSnapshot(devices=(ported,)))["devices"][0]["board_port_bytes_per_s"] == 80000.0  # type: ignore[index]


# -- fitting and drawing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "width", "cut"), [("abcdef", 6, "abcdef"), ("abcdef", 5, "abcd…"), ("abc", 1, "…"), ("abc", 0, "")]
)
def test_truncate(line: str, width: int, cut: str) -> None:
    assert truncate(line, width) == cut


def test_fit_height_zero_and_one() -> None:
    assert fit(["a", "b"], 10, 0) == []
    assert fit(["a", "b"], 10, 1) == ["... 2 mor…"]


def test_a_terminal_screen_redraws_in_place() -> None:
    out = io.StringIO()
    with Screen(out, alternate=True, tty=True) as screen:
        screen.draw(["one", "two"])
        screen.draw(["three"])
    text = out.getvalue()
    assert text.startswith(ALTERNATE_ON)
    assert text.count(HOME_CLEAR) == 2
    assert text.endswith(f"{HOME_CLEAR}three{SHOW_CURSOR}{ALTERNATE_OFF}")
    assert f"{HOME_CLEAR}one\ntwo{HOME_CLEAR}" in text


def test_a_screen_elsewhere_prints_snapshots_separated_by_a_blank_line() -> None:
    out = io.StringIO()
    with Screen(out, alternate=True, tty=False) as screen:
        screen.draw(["one", "two"])
        screen.draw(["three"])
        assert screen.size()[1] is None  # nothing to fit a height to
    assert out.getvalue() == "one\ntwo\n\nthree\n"


def test_the_last_frame_stays_above_what_follows_without_the_alternate_screen() -> None:
    out = io.StringIO()
    with Screen(out, tty=True) as screen:
        screen.draw(["frame"])
    assert out.getvalue().endswith(f"{HOME_CLEAR}frame\n{SHOW_CURSOR}")
