"""A submit whose state write fails (a full disk) is refused and changes nothing; a remove
likewise. Driven through the real driver and state store, no sockets."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from coordinator.service import Coordinator, CoordinatorConfig, ModelSource
from coordinator.store import StateStore
from synergy.deployment import AgentState
from synergy.devices import preset_device
from synergy.errors import ResourceExhausted
from synergy.types import AppSpec

CAMERA_APP = AppSpec(app_id="", name="", model="", source_type="camera", target_type="display")


def disk_full(*_: object) -> None:
    raise ResourceExhausted("state store: database or disk is full")


async def test_a_submit_that_cannot_be_stored_changes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    coordinator = Coordinator(CoordinatorConfig(state_dir=tmp_path, submit_wait_s=0.1))
    await coordinator.start()
    try:
        coordinator.ready.set()
        glasses = dataclasses.replace(preset_device("glasses", "glasses"), address="127.0.0.1:7001")
        coordinator.register(glasses, AgentState())
        store = coordinator.store
        assert store is not None
        monkeypatch.setattr(store, "add_app", disk_full)
        with pytest.raises(ResourceExhausted, match="disk is full"):
            await coordinator.submit(CAMERA_APP, ModelSource(zoo_name="convnet5"))
        assert coordinator.core.apps == {}
        assert coordinator.core.peek_app_id() == "app-1"  # the id was not consumed
        monkeypatch.undo()
        accepted = await coordinator.submit(CAMERA_APP, ModelSource(zoo_name="convnet5"))
        assert accepted.app_id == "app-1"
        monkeypatch.setattr(store, "remove_app", disk_full)
        with pytest.raises(ResourceExhausted):
            await coordinator.remove("app-1")
        assert "app-1" in coordinator.core.apps  # not removed in memory while it stays on disk
    finally:
        await coordinator.shutdown()
    # What is on disk agrees with what was answered.
    reopened = StateStore.open(tmp_path)
    try:
        assert [a.spec.app_id for a in reopened.load().apps] == ["app-1"]
    finally:
        reopened.close()
