"""The host-scale probe's pure parts: the workload it brings up and the table it prints."""

from __future__ import annotations

import argparse

import pytest

from synergy.scale_probe import ScaleFigures, _parse_counts, table_header, table_row, workload


def test_the_workload_gives_every_agent_its_own_device_and_app() -> None:
    pairs = workload(9)
    ids = [spec.name for spec, _ in pairs]
    assert len(set(ids)) == 9 and ids[:4] == ["glasses-00", "watch-01", "ring-02", "earbud-03"]
    for spec, app in pairs:
        assert ("--device-id", spec.name) == spec.args[2:4]
        assert app.source_device == spec.name and app.target_device == ""
    assert {app.source_type for _, app in pairs} == {"camera", "imu", "microphone"}


def test_the_table_has_a_cell_under_every_heading_and_errors_below() -> None:
    row = table_row(ScaleFigures(agents=32, registered=32, rate_ratio=0.5, errors=["submit app-x: refused"]))
    line, error = row.splitlines()
    assert len(line.split()) == len(table_header().split())
    assert len(line) == len(table_header())
    assert error == "  ! submit app-x: refused"


def test_agent_counts_are_bounded() -> None:
    assert _parse_counts("8, 16,32") == [8, 16, 32]
    for bad in ("", "0", "65", "8,-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="agent counts"):
            _parse_counts(bad)
