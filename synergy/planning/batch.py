"""Scoring many plans that differ in one app at once: the fast method's inner loop, in numpy.

A local move scores tens of plans that keep every other app where it is and try one app
elsewhere. :func:`rates_with` computes what :func:`~synergy.planning.throughput.rates` would
for each of them, sharing the work of the apps that stay:

* the others' per-device memory figures are summed once; each trial adds its own devices
  and re-judges only those (flash, weight reload, overlap);
* the others' demands are reused unless the trial changes whether one of their devices
  overlaps its work;
* the max-min fair water-filling runs on all trials together, one array per step.

* a trial that makes a device of the others reload its weights or stop overlapping its work
  re-derives the demands of the apps on that device (reload seconds are joint).

The answers equal the ordinary path's up to floating-point rounding (a unit test compares
them on random plans).

When the package was built with its C extension (``_fill.c``, see ``setup.py``) all of this
runs there (``rates_many``: the frame costs packed once each, :func:`~.throughput.packed`);
the code below is what runs without it, and unit tests compare the two bit for bit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from synergy.planning.cost import FrameCost
from synergy.planning.throughput import (
    Numbered,
    aggregate,
    board_table,
    device_flags,
    native_rates_many,
    numbered_demands,
    packed,
    water_fill,
)
from synergy.types import DeviceSpec

__all__ = ["NATIVE", "Rates", "rates_with"]

#: Whether plans are scored in C (else the Python and numpy code below).
NATIVE = native_rates_many is not None

#: (rates, latencies, energies per frame) per app, or None when a board's flash overflows.
Rates = tuple[list[float], list[float], list[float]] | None

#: Same tolerance as the ordinary water-filling.
_EPS = 1e-9
#: Below this many trials the plain water-filling per trial is faster than numpy's.
MIN_BATCH = 6


def rates_with(
    base: Sequence[FrameCost],
    trials: Sequence[FrameCost],
    devices: Mapping[str, DeviceSpec],
    *,
    allow_parallel: bool = True,
) -> list[Rates]:
    """For each trial: ``rates([*base, trial])`` (figures in that order: base apps, then the trial)."""
    if not trials:
        return []
    if native_rates_many is not None:
        # Everything below in C (_fill.c), the same figures bit for bit (a unit test).
        return native_rates_many(
            [packed(c) for c in base], [packed(c) for c in trials], board_table(devices), allow_parallel, MIN_BATCH
        )
    agg = aggregate(base)
    flags = {d: device_flags(a, devices[d].board, allow_parallel) for d, a in agg.items()}
    if any(over for over, _, _ in flags.values()):
        return [None] * len(trials)  # adding partitions never makes a flash fit
    parallel = frozenset(d for d, (_, _, overlap) in flags.items() if overlap)
    reloading = frozenset(d for d, (_, reload, _) in flags.items() if reload)
    base_demands = [numbered_demands(c, parallel, reloading, devices) for c in base]
    # Which base apps use each device (to redo their demands when its state changes).
    users: dict[str, list[int]] = {}
    for k, cost in enumerate(base):
        for w in cost.work:
            users.setdefault(w.device_id, []).append(k)

    out: list[Rates] = [None] * len(trials)
    # Per trial kept: its own figures and the base apps whose figures it changes.
    batched: list[tuple[int, Numbered, dict[int, Numbered]]] = []
    for t, trial in enumerate(trials):
        extra = aggregate([trial], {d: list(agg[d]) for d in {w.device_id for w in trial.work} if d in agg})
        over = False
        overlap_here: set[str] = set()
        reload_here: set[str] = set()
        changed: dict[str, tuple[bool, bool]] = {}
        for d, a in extra.items():
            o, r, p = device_flags(a, devices[d].board, allow_parallel)
            over |= o
            if p:
                overlap_here.add(d)
            if r:
                reload_here.add(d)
            if d in flags and flags[d][1:] != (r, p):
                changed[d] = (r, p)
        if over:
            continue
        redone: dict[int, Numbered] = {}
        if changed:
            now_parallel, now_reloading = set(parallel), set(reloading)
            for d, (r, p) in changed.items():
                (now_parallel.add if p else now_parallel.discard)(d)
                (now_reloading.add if r else now_reloading.discard)(d)
            for k in {k for d in changed for k in users.get(d, ())}:
                redone[k] = numbered_demands(base[k], now_parallel, now_reloading, devices)
        batched.append((t, numbered_demands(trial, overlap_here, reload_here, devices), redone))
    if len(batched) < MIN_BATCH:
        for t, mine, redone in batched:
            demands = [redone.get(k, d) for k, d in enumerate(base_demands)] + [mine]
            got = water_fill([d[0] for d in demands], [*(c.cap_hz for c in base), trials[t].cap_hz])
            out[t] = (got, [d[1] for d in demands], [d[2] for d in demands])
        return out
    rows = _water_fill_many(
        [d[0] for d in base_demands],
        [c.cap_hz for c in base],
        [(mine[0], trials[t].cap_hz, {k: d[0] for k, d in redone.items()}) for t, mine, redone in batched],
    )
    for (t, mine, redone), got in zip(batched, rows, strict=True):
        demands = [redone.get(k, d) for k, d in enumerate(base_demands)] + [mine]
        out[t] = (got, [d[1] for d in demands], [d[2] for d in demands])
    return out


def _water_fill_many(
    base: Sequence[Sequence[tuple[int, float]]],
    base_caps: Sequence[float],
    trials: Sequence[tuple[Sequence[tuple[int, float]], float, Mapping[int, Sequence[tuple[int, float]]]]],
) -> list[list[float]]:
    """Max-min fair rates of the base apps plus one app per trial (with the base apps whose
    demands the trial changes), every trial at once."""
    numbers: dict[int, int] = {}
    for app in base:
        for r, _ in app:
            numbers.setdefault(r, len(numbers))
    for mine, _, redone in trials:
        for r, _ in mine:
            numbers.setdefault(r, len(numbers))
        for app in redone.values():
            for r, _ in app:
                numbers.setdefault(r, len(numbers))
    # (At least two resources: over one, einsum sums the apps in another order than over
    # several, and the C version's order is the one over several; a column no app uses
    # changes no figure.)
    n_trials, n_apps, n_res = len(trials), len(base) + 1, max(len(numbers), 2)
    shared = np.zeros((n_apps, n_res))
    for i, app in enumerate(base):
        for r, s in app:
            shared[i, numbers[r]] = s
    work = np.repeat(shared[None, :, :], n_trials, axis=0)
    for t, (mine, _, redone) in enumerate(trials):
        for r, s in mine:
            work[t, -1, numbers[r]] = s
        for k, app in redone.items():
            work[t, k, :] = 0.0
            for r, s in app:
                work[t, k, numbers[r]] = s
    np.maximum(work, 0.0, out=work)
    caps = [[*base_caps, cap] for _, cap, _ in trials]
    cap = np.asarray(caps, dtype=np.float64)
    got = np.zeros((n_trials, n_apps))
    active = cap > 0
    uses = work > 0
    # (The step of a plan whose only unfrozen app has no work and no cap would be infinite.)
    if (active & ~uses.any(axis=2) & np.isinf(cap)).any():
        raise ValueError("an app with no work must have a finite rate cap")
    residual = np.ones((n_trials, n_res))
    level = np.zeros(n_trials)
    cap_slack = _EPS * np.maximum(cap, 1.0)
    open_cap = np.where(active, cap, np.inf)
    # Float copies for the sums (einsum would convert the booleans at every step).
    weight = active.astype(np.float64)
    used = uses.astype(np.float64)
    # A plan whose apps are all frozen takes an infinite step (inf - inf, 0 x inf: NaN) that
    # changes only its own level and residuals, which nothing reads any more.
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(n_apps + 1):
            if not active.any():
                break
            use = np.einsum("tar,ta->tr", work, weight)
            per = np.where(use > 0, residual / use, np.inf).min(axis=1)
            step = np.minimum(open_cap.min(axis=1) - level, per)
            level += step
            residual -= step[:, None] * use
            saturated = (residual <= _EPS) & (use > 0)
            hit = np.einsum("tar,tr->ta", used, saturated.astype(np.float64)) > 0
            frozen = active & (hit | (cap - level[:, None] <= cap_slack))
            got = np.where(frozen, level[:, None], got)
            active &= ~frozen
            open_cap[frozen] = np.inf
            weight[frozen] = 0.0
    if active.any():  # pragma: no cover - every step freezes an app of every running plan
        raise AssertionError("water-filling made no progress")
    rows: list[list[float]] = got.tolist()
    return rows
