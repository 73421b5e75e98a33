"""Plain-text tables for people: the generic renderer and the apps table.

Shared by the ``synergy`` CLI (every command also has ``--json`` for scripts) and by
``synergy demo``'s live view, so it lives outside :mod:`synergy.cli`: library code never
imports the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from synergy.types import AppInfo, JointPlan

__all__ = ["format_apps", "plan_placements", "render_table"]


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]], *, empty: str = "(none)") -> str:
    """Left-aligned text columns, numbers right-aligned, with a header rule."""
    if not rows:
        return empty
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(row[i]) for row in rows) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out += [line(r) for r in cells]
    return "\n".join(out)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def plan_placements(plan: JointPlan) -> dict[str, str]:
    """Per app id, where it runs: ``source => device[first-last] -> ... => target``."""
    out: dict[str, str] = {}
    for p in plan.plans:
        stages = " -> ".join(f"{s.device_id}[{s.first_layer}-{s.last_layer}]" for s in p.stages)
        out[p.app_id] = f"{p.source_device} => {stages} => {p.target_device}"
    return out


def format_apps(apps: Sequence[AppInfo], placements: Mapping[str, str]) -> str:
    """The apps table: owner, state, placement (or why it waits), measured rate and latency,
    frames delivered, dropped, in flight and skipped at the sensor ("hidden" for another
    client's app, whose figures the coordinator does not show)."""
    rows = [
        [
            a.app_id,
            a.owner or "-",
            a.spec.model,
            f"{a.spec.source_type}->{a.spec.target_type}",
            a.state.value,
            placements.get(a.app_id, a.reason or "-"),
            *(
                ["hidden"] * 6
                if a.stats_hidden
                else [
                    round(a.stats.rate_hz, 2),
                    round(a.stats.latency_ms, 1),
                    a.stats.frames_delivered,
                    a.stats.frames_dropped,
                    a.stats.frames_in_flight,
                    a.stats.frames_skipped,
                ]
            ),
        ]
        for a in apps
    ]
    return render_table(
        [
            "app",
            "owner",
            "model",
            "io",
            "state",
            "where (source => device[layers] => target)",
            "fps",
            "lat_ms",
            "done",
            "drop",
            "flight",
            "skip",
        ],
        rows,
    )
