"""``synergy bench --quick`` runs and writes well-formed outputs (tens of seconds: not a unit test).

No timing assertions: benchmarks are commands that print figures; this only checks their shape.
Run with ``make test-slow``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from synergy.cli.bench_cmd import register

pytestmark = pytest.mark.slow


def test_bench_quick_writes_well_formed_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--quick", "--json", "--out", str(tmp_path)])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert {"ratio_vs_baseline", "min_ratio_vs_best_baseline", "max_gap_to_exact", "planning_ms_p95"} <= set(summary)
    assert {"source_only", "pipeedge", "exo", "greedy_first_fit", "random"} <= set(summary["ratio_vs_baseline"])
    assert all(isinstance(v, float) for v in summary["planning_ms_p95"].values())
    assert "[1/" in captured.err  # progress on stderr
    rows = (tmp_path / "bench.csv").read_text().splitlines()
    assert rows[0].startswith("workload,size,devices,apps,method,throughput")
    data = json.loads((tmp_path / "bench.json").read_text())
    assert len(rows) - 1 == len(data["rows"]) > 0
    assert {r["method"] for r in data["rows"]} >= {"synergy", "exact", "source_only"}
    png = tmp_path / "bench.png"
    assert not png.exists() or png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
