"""The coordinator's state store: round trips, one coordinator per directory, damage refused."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from coordinator.store import DB_NAME, StateStore
from synergy.devices import preset_device
from synergy.errors import FailedPrecondition, InvalidArgument
from synergy.types import AppSpec, ExecutionPlan, JointPlan, Stage

APP = AppSpec("app-1", "reader", "convnet5", "camera", "display", target_device="glasses", max_rate_hz=5.0)
PLAN = JointPlan(
    epoch=3,
    plans=(ExecutionPlan("app-1", "glasses", (Stage("glasses", 0, 4),), "glasses", 15.0, 0.002),),
    system_throughput=15.0,
    method="synergy",
    unplaced={"app-2": "no camera"},
)


def test_everything_written_reads_back(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    glasses = preset_device("glasses", "glasses")
    store.add_app(APP, "convnet5", "d1", b"onnx-bytes", next_app=1, owner="alice")
    store.save_device(glasses, "lease-1")
    store.save_counters(next_app=1, next_epoch=3)
    store.save_deployment(PLAN, {"glasses": frozenset({("app-1", 0, "p1")})})
    store.save_quarantines({"ring": ("refused", 1234.5, 2)})
    assert store.next_boot() == 1
    store.close()

    again = StateStore.open(tmp_path)
    state = again.load()
    assert [a.spec for a in state.apps] == [APP]
    assert state.apps[0].onnx == b"onnx-bytes" and state.apps[0].model_name == "convnet5"
    assert state.apps[0].owner == "alice"
    assert state.devices == ((glasses, "lease-1"),)
    assert (state.next_app, state.next_epoch) == (1, 3)
    assert state.plan == PLAN
    assert state.expected == {"glasses": frozenset({("app-1", 0, "p1")})}
    assert state.quarantines == {"ring": ("refused", 1234.5, 2)}
    assert again.next_boot() == 2
    again.close()


def test_a_state_dir_from_before_app_owners_is_upgraded(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    store.add_app(APP, "convnet5", "d1", b"onnx-bytes", next_app=1)
    store.close()
    # Make it what schema 1 wrote: no owner column.
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("ALTER TABLE apps DROP COLUMN owner")
    db.execute("UPDATE meta SET value = 1 WHERE key = 'schema'")
    db.commit()
    db.close()

    again = StateStore.open(tmp_path)
    state = again.load()
    assert [(a.spec, a.owner) for a in state.apps] == [(APP, "")]  # only an admin acts on it
    again.add_app(replace(APP, app_id="app-2"), "convnet5", "d1", b"onnx-bytes", next_app=2, owner="bob")
    assert [a.owner for a in again.load().apps] == ["", "bob"]
    again.close()
    reopened = StateStore.open(tmp_path)  # now schema 2: opens as it is
    assert len(reopened.load().apps) == 2
    reopened.close()


def test_removing_the_last_app_of_a_model_drops_the_model(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    store.add_app(APP, "convnet5", "d1", b"x", next_app=1)
    store.remove_app("app-1")
    assert store.load().apps == ()
    rows = sqlite3.connect(tmp_path / DB_NAME).execute("SELECT COUNT(*) FROM models").fetchone()
    assert rows == (0,)
    store.close()


def test_a_directory_held_by_a_running_coordinator_is_refused(tmp_path: Path) -> None:
    first = StateStore.open(tmp_path)
    try:
        with pytest.raises(FailedPrecondition, match="in use by another running coordinator"):
            StateStore.open(tmp_path)
    finally:
        first.close()
    StateStore.open(tmp_path).close()  # released on close


def test_a_damaged_record_is_refused_not_trusted(tmp_path: Path) -> None:
    store = StateStore.open(tmp_path)
    store.save_device(preset_device("ring", "ring"), "lease")
    store.close()
    db = sqlite3.connect(tmp_path / DB_NAME)
    db.execute("UPDATE devices SET spec = ?", (b"\xff\xfe garbage",))
    db.commit()
    db.close()
    store = StateStore.open(tmp_path)
    with pytest.raises(InvalidArgument, match="device"):
        store.load()
    store.close()


def test_an_unusable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(Exception, match="state dir"):
        StateStore.open(blocker / "state")
