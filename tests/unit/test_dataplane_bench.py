"""``synergy bench --dataplane --quick`` runs and prints a well-formed table (no timing asserted)."""

from __future__ import annotations

import math

from agent.dataplane_bench import QUICK, TRANSPORTS, format_table, run_dataplane_bench

ROWS = (
    "1 KB frame, p50 latency",
    "1 KB frame, p99 latency",
    "1 KB frames, throughput",
    "1 MB tensors",
    "8 MB tensors",
)


async def test_the_quick_benchmark_fills_every_cell_with_a_positive_number() -> None:
    progress: list[str] = []
    table = await run_dataplane_bench(QUICK, progress=progress.append)
    assert [row.label for row in table.rows] == list(ROWS)
    assert all(set(row.values) == set(TRANSPORTS) for row in table.rows)
    cells = table.cells()
    assert len(cells) == len(ROWS) * (len(TRANSPORTS) + 2)
    assert all(math.isfinite(c) and c > 0 for c in cells), cells
    assert progress, "progress is reported"
    text = format_table(table)
    assert "TLS off" in text
    lines = [line for line in text.splitlines() if line.startswith("| ")]
    assert lines[0].split(" | ")[1:4] == list(TRANSPORTS)
    assert [line.split(" | ")[0].lstrip("| ") for line in lines[1:]] == list(ROWS)
    assert all("n/a" not in line for line in lines)
