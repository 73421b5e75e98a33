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


def test_bench_random_prints_the_checks_of_the_issue(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(
        ["bench", "--random", "2", "--seed", "4", "--node-budget", "2000", "--out", str(tmp_path)]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    for line in (
        "over 2 workloads",
        "below the best baseline under the default objective",
        "ablation synergy_no_joint better than synergy",
        "ablation synergy_no_parallel better than synergy",
        "exact: proved optimal on",
        "apps below their floor",
        "synergy under each objective",
    ):
        assert line in out
    # Each objective wins on what it optimises, against the default, in every workload.
    rows = {(r["workload"], r["method"]): r for r in json.loads((tmp_path / "bench.json").read_text())["rows"]}
    for workload in {w for w, _ in rows}:
        default = rows[(workload, "synergy")]
        assert rows[(workload, "synergy/fair")]["min_app_rate"] >= default["min_app_rate"] * (1 - 1e-9)
        assert rows[(workload, "synergy/latency")]["worst_latency_ms"] <= default["worst_latency_ms"] * (1 + 1e-9)
    data = json.loads((tmp_path / "bench.json").read_text())
    exact = [r for r in data["rows"] if r["method"] == "exact"]
    assert exact and all(r["proof"].startswith(("optimal over", "not proven")) for r in exact)
    assert {"jain", "min_app_rate", "energy_mj", "shortfall"} <= set(data["rows"][0])


def test_bench_planning_time_prints_cold_and_warm_side_by_side(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from synergy.cli import bench_cmd

    # One small size and one run keep this test short; the command is the same.
    monkeypatch.setattr(bench_cmd, "TIMING_SIZES", ((3, 2),))
    monkeypatch.setattr(bench_cmd, "TIMING_TARGETS_MS", {"3 dev x 2 apps": 100.0})
    monkeypatch.setattr(bench_cmd, "QUICK_TIMING_RUNS", 1)
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--planning-time", "--quick"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("size"))
    assert "cold, empty cache" in header and "cold, disk cache" in header and "warm" in header
    row = next(line for line in lines if line.startswith("3 dev x 2 apps"))
    figures = [float(x) for x in row.replace("/", " ").split()[5:]]
    assert len(figures) == 7 and all(x >= 0 for x in figures)  # 3 x (p50, p95) and the target
    # The figures say which code scored the plans (CI builds the C extension and compiles the
    # planner modules).
    assert "scoring and ranking: C extension synergy.planning._fill; planner modules: compiled with mypyc)" in lines
    speed = next(line for line in lines if line.startswith("machine speed:"))
    before, after = (float(w) for w in speed.replace(" ms", " ").split() if w.replace(".", "").isdigit())
    assert before > 0 and after > 0
