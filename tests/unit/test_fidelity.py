"""The fidelity report's arithmetic and its flags (the measuring itself runs in tests/slow)."""

from __future__ import annotations

import json

from synergy.fidelity import AppFidelity, WorkloadFidelity, format_report, report_json


def app(measured_rate: float, measured_latency: float) -> AppFidelity:
    return AppFidelity("kws", "kws20_v3", "earbud => earbud[0-8] => ring", 8.0, measured_rate, 40.0,
                       measured_latency, measured_latency * 1.1, 80, 0)  # fmt: skip


def test_ratios_and_the_bounds() -> None:
    assert app(8.0, 40.0).within
    assert app(7.3, 40.0).rate_ratio == 7.3 / 8.0 and not app(7.1, 40.0).within  # rate off by over 10%
    assert app(8.0, 49.0).within and not app(8.0, 51.0).within  # latency off by over 25%


def test_a_saturated_host_is_flagged_not_counted() -> None:
    busy = WorkloadFidelity("w", 3, 0.97, (app(4.0, 90.0),))
    calm = WorkloadFidelity("w", 3, 0.40, (app(8.0, 40.0),), problem="the plan changed during the window")
    text = format_report([busy, calm])
    busy_part, calm_part = text.split("\n\n")[:2]
    assert "HOST SATURATED" in busy_part and "HOST SATURATED" not in calm_part
    assert "note: the plan changed during the window" in text
    entries = json.loads(json.dumps(report_json([busy, calm])))
    assert [e["host_saturated"] for e in entries] == [True, False]
    assert entries[1]["apps"][0]["within"] is True and entries[0]["apps"][0]["rate_ratio"] == 0.5
