"""Files and text of the planner benchmark: CSV, JSON, a PNG chart and the summary table.

:mod:`.bench` computes; this module only formats and writes. The chart needs matplotlib
(Agg backend, no display); without it every other output is still written and the caller
is told why the PNG is missing.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from synergy.planning.bench import BenchResult, BenchRow

__all__ = ["PLANNING_TARGETS_MS", "format_summary", "write_outputs"]

#: Planning-time targets of the fast method per size bucket (p95, milliseconds).
PLANNING_TARGETS_MS = {"small": 100.0, "medium": 100.0, "large": 2000.0}


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def write_outputs(result: BenchResult, summary: Mapping[str, Any], out_dir: Path) -> list[str]:
    """Write bench.csv, bench.json and bench.png into ``out_dir``; returns notes for the user."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "bench.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=[f.name for f in fields(BenchRow)])
        writer.writeheader()
        for row in result.rows:
            writer.writerow(asdict(row))
    payload = {"summary": _clean(dict(summary)), **_clean(result.to_dict())}
    (out_dir / "bench.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")
    notes = [f"wrote {out_dir / 'bench.csv'} and {out_dir / 'bench.json'}"]
    try:
        # Optional (the dev extra): only the chart needs it, so it is imported only here.
        import matplotlib
    except ImportError:
        notes.append("matplotlib is not installed: skipped bench.png (pip install matplotlib)")
        return notes
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _chart(result, plt, out_dir / "bench.png")
    notes.append(f"wrote {out_dir / 'bench.png'}")
    return notes


def _chart(result: BenchResult, plt: Any, path: Path) -> None:
    workloads = list(result.workloads)
    methods = [m for m in result.methods if any(r.method == m for r in result.rows)]
    by = {(r.workload, r.method): r for r in result.rows}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(max(10, len(workloads) * 0.7), 9))
    width = 0.8 / max(len(methods), 1)
    colours = plt.get_cmap("tab20")
    for k, method in enumerate(methods):
        xs = [i + k * width for i in range(len(workloads))]
        ys = [by[(w, method)].throughput if (w, method) in by else 0.0 for w in workloads]
        top.bar(xs, [max(y, 1e-3) for y in ys], width=width, label=method, color=colours(k % 20))
    top.set_yscale("log")
    top.set_ylabel("system throughput (inferences/s)")
    top.set_xticks([i + 0.4 for i in range(len(workloads))])
    top.set_xticklabels(workloads, rotation=60, ha="right", fontsize=7)
    top.legend(fontsize=7, ncol=4)
    top.set_title("Predicted system throughput per workload (same cost model for every method)")
    for method, marker in (("synergy", "o"), ("exact", "x")):
        rows = [r for r in result.rows if r.method == method]
        bottom.scatter(
            [r.devices * 100 + r.apps for r in rows], [max(r.planning_ms, 1e-3) for r in rows], marker=marker,
            label=method,
        )
    bottom.set_yscale("log")
    bottom.set_xlabel("devices x 100 + apps")
    bottom.set_ylabel("planning time (ms)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _pct(x: float) -> str:
    return "    n/a" if x is None or not math.isfinite(x) else f"{100 * x:+6.1f}%"


def _num(x: float, fmt: str = "7.2f") -> str:
    return "    n/a" if x is None or not math.isfinite(x) else format(x, fmt)


def format_summary(summary: Mapping[str, Any]) -> str:
    """The table ``synergy bench`` prints: geometric means first, arithmetic beside them."""
    ours = summary["method"]
    fair = summary.get("fairness", {})
    lines = [
        f"Synergy ({ours}) vs baselines over {summary['workloads']} workloads, same cost model, default objective",
        "ratios are ours / theirs per workload; 'geo' is their geometric mean (the headline), 'mean' the arithmetic",
        f"{'method':<22}{'thr x geo':>10}{'(mean)':>9}{'latency':>9}{'J/inf':>8}{'Jain':>7}{'min rate':>10}"
        f"{'starved':>9}",
    ]
    own = fair.get(ours, {})
    lines.append(
        f"{ours + ' (ours)':<22}{'':>10}{'':>9}{'':>9}{'':>8}{_num(own.get('jain_mean', math.nan), '7.2f')}"
        f"{_num(own.get('min_app_rate_median', math.nan), '10.2f')}{own.get('starved_workloads', 0):>9}"
    )
    for name, ratio in summary["ratio_vs_baseline_geomean"].items():
        f = fair.get(name, {})
        lines.append(
            f"{name:<22}{_num(ratio, '10.2f')}{_num(summary['ratio_vs_baseline'][name], '9.2f')}"
            f"{_pct(summary['latency_change_vs_baseline'][name]):>9}"
            f"{_pct(summary['energy_per_inference_change_vs_baseline'][name]):>8}"
            f"{_num(f.get('jain_mean', math.nan), '7.2f')}{_num(f.get('min_app_rate_median', math.nan), '10.2f')}"
            f"{f.get('starved_workloads', 0) if f else '':>9}"
            + (
                f"   ({summary['baseline_placed_nothing'][name]} workloads where it placed nothing left out)"
                if summary["baseline_placed_nothing"].get(name)
                else ""
            )
        )
    lines.append(
        "latency, J/inf: geometric-mean change of the mean app latency and of energy per inference; Jain: mean "
        "Jain's index of the app rates; min rate: median over workloads of the slowest app's rate (frames/s); "
        "starved: workloads where some app gets < 0.1 frames/s"
    )
    lines.append(
        f"below the best baseline under the default objective (less shortfall below the floors, then more "
        f"throughput): {summary.get('below_best_baseline', 0)} of {summary['workloads']} workloads (target: 0)"
    )
    lines.append(
        f"  in raw throughput alone some baseline carries more frames on {summary.get('baseline_more_frames', 0)} "
        f"workloads (lowest ratio {_num(summary['min_ratio_vs_best_baseline'], '.3f')}, "
        f"{summary['min_ratio_workload'] or '-'}) by starving or leaving out apps"
    )
    for name, wins in summary.get("ablation_wins", {}).items():
        lines.append(
            f"ablation {name} better than {ours} under the default objective: {wins} of {summary['workloads']} "
            f"workloads (largest throughput excess {_pct(summary['ablation_max_excess'][name]).strip()}; target: never)"
        )
    lines.append(
        f"exact: proved optimal on {summary['exact_finished']} of {summary.get('exact_tried', 0)} workloads it ran on; "
        f"gap of {ours} there: max {_pct(summary['max_gap_to_exact']).strip()}"
        f" ({summary.get('max_gap_workload') or '-'}), mean {_pct(summary['mean_gap_to_exact']).strip()} "
        "(target: within 2%)"
    )
    if "below_floor" in summary:
        lines.append(
            f"apps below their floor (half the max-min fair rate): {summary['below_floor']} workloads; "
            f"lowest rate / floor {_num(summary['min_floor_ratio'], '.3f')} (target >= 1)"
        )
    objectives = summary.get("objectives", {})
    if len(objectives) > 1:
        lines.append(
            f"{ours} under each objective (throughput: geometric mean of its / the default's; medians over workloads)"
        )
        lines.append(
            f"{'objective':<22}{'thr x geo':>10}{'min rate':>10}{'Jain':>7}{'worst lat ms':>14}{'power mW':>10}"
            f"{'mJ/inf':>8}"
        )
        for name, f in objectives.items():
            label = name.split("/", 1)[1] if "/" in name else "throughput (default)"
            lines.append(
                f"{label:<22}{_num(f['throughput_vs_default_geomean'], '10.2f')}"
                f"{_num(f['min_app_rate_median'], '10.2f')}{_num(f['jain_mean'], '7.2f')}"
                f"{_num(f['worst_latency_ms_median'], '14.1f')}{_num(f['power_mw_median'], '10.1f')}"
                f"{_num(f['energy_mj_geomean'], '8.2f')}"
            )
    lines.append("planning time of the fast method (ms; re-plan with warm caches, and the first plan):")
    for size in sorted(summary["planning_ms_p95"]):
        bucket = size.split(" ")[0]
        target = PLANNING_TARGETS_MS.get(bucket)
        lines.append(
            f"  {size:<28} p50 {_num(summary['planning_ms_p50'][size], '7.1f')}  "
            f"p95 {_num(summary['planning_ms_p95'][size], '7.1f')}"
            + (f" (target p95 < {target:.0f})" if target else "")
            + f"   first plan p95 {_num(summary['planning_ms_cold_p95'][size], '7.1f')}"
        )
    lines.append(f"one-off fit-table build for all models and boards: {summary['table_build_ms']:.0f} ms")
    return "\n".join(lines)
