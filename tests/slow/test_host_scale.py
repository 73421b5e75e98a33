"""Host scale: 32 emulated agents on this machine register and run a workload (figures, no timing asserts).

Runs :func:`synergy.scale_probe.probe` once at 32 agents (real processes, mutual TLS, chip
timing and link shaping on, one app per device) and prints its figures: planned and measured
rate, CPU per delivered frame (coordinator, whole cluster), agent RSS idle and loaded, lease
expiries. It checks only what must hold on any host: every agent registered, every app was
accepted, and the workload delivered. Run with ``make test-slow`` (or
``pytest -s tests/slow/test_host_scale.py``); the same figures for 8/16/24/32 agents come from
``python -m synergy.scale_probe``.

The coordinator runs with ``--no-calibration``: on a host this loaded, measured stage times are
several times the model's, every such drift asks for a re-plan, and calibrated planning of 32
devices does not finish within the planner's watchdog (see docs/architecture.md, "Host scale").
"""

from __future__ import annotations

from pathlib import Path

import pytest

from synergy.scale_probe import probe, table_header, table_row

pytestmark = pytest.mark.slow

AGENTS = 32


@pytest.mark.timeout(290)
async def test_32_agents_register_and_run_a_workload(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    figures = await probe(
        AGENTS, seconds=15.0, warmup_s=5.0, log_dir=tmp_path / "logs", coordinator_args=["--no-calibration"]
    )
    with capsys.disabled():
        print(f"\nhost scale: {AGENTS} emulated agents, one app each")
        print(table_header())
        print(table_row(figures))
    assert figures.registered == AGENTS, figures.errors
    assert figures.apps_submitted == AGENTS and figures.submit_errors == 0, figures.errors
    assert figures.delivered > 0, "the workload delivered nothing"
