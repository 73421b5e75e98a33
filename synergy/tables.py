"""Plain-text tables for people: the generic renderer and the apps table.

Shared by the ``synergy`` CLI (every command also has ``--json`` for scripts) and by
``synergy demo``'s live view, so it lives outside :mod:`synergy.cli`: library code never
imports the CLI.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from synergy.types import AppInfo, JointPlan

__all__ = ["MAX_CELL_CHARS", "ellipsize", "format_apps", "frame_number", "plan_placements", "render_table"]

#: The widest a table cell is shown; longer text is cut with an ellipsis (the JSON has it whole).
MAX_CELL_CHARS = 80
#: The low 32 bits of a result's sequence number count its frames (the high bits are the epoch
#: of a sensor's frame, the coordinator's run of an Infer input).
_FRAME_BITS = 0xFFFF_FFFF


def ellipsize(text: str, width: int = MAX_CELL_CHARS) -> str:
    """``text`` cut to ``width`` characters, the last one an ellipsis when anything was cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def frame_number(seq: int) -> int:
    """The frame count in a result's sequence number (``8589934850`` is frame 258 of epoch 2)."""
    return seq & _FRAME_BITS


def render_table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    empty: str = "(none)",
    max_width: int = MAX_CELL_CHARS,
) -> str:
    """Left-aligned text columns, numbers right-aligned, with a header rule; cells longer than
    ``max_width`` characters are ellipsized."""
    if not rows:
        return empty
    cells = [[ellipsize(_cell(v), max_width) for v in row] for row in rows]
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
    """The apps table: name, owner, state, placement (or why it waits), measured rate and latency,
    frames delivered, dropped, in flight and skipped at the sensor ("hidden" for another
    client's app, whose figures the coordinator does not show)."""
    rows = [
        [
            a.app_id,
            a.spec.name if a.spec.name and a.spec.name != a.app_id else "-",
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
            "name",
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
