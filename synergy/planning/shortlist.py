"""Ranking an app's templates under a load: which candidates are worth a full evaluation.

The fast method (:mod:`.fast`) scores candidates with the full joint objective, which costs
tens of microseconds each; an app has hundreds of templates. This module ranks all of them
at once (numpy over a templates x positions array) by a cheap proxy — the rate the app
would reach from the capacity the other apps leave, on the least-loaded devices of each
class — and returns the best few plus a *ladder*: the best template in each band of the
app's own speed. The sum of max-min fair rates can rise when a heavy app runs slower on
resources of its own, which the proxy alone would never propose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import numpy as np
from numpy.typing import NDArray

from synergy.planning.candidates import SOURCE_SLOT, CandidateGenerator, Template
from synergy.planning.problem import Candidate

__all__ = ["Load", "Ranker"]


@dataclass
class Load:
    """How busy the devices are under a partial plan (busy fractions per resource)."""

    #: device -> utilisation of (accelerator, CPU, radio); a serialized device repeats one figure.
    util: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    serial: set[str] = field(default_factory=set)
    #: device -> its busiest resource, for choosing the least-loaded device of a class.
    device: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class _Arrays:
    """One app's templates as arrays (built once per app and planning call)."""

    templates: tuple[Template, ...]
    #: Per template: index of its (source, target, slots) group.
    group: NDArray[np.int64]
    #: The distinct (class, occurrence, source, target) of the groups' class slots: the
    #: device each takes depends only on these and on the load order of the class's members.
    combos: tuple[tuple[int, int, str, str], ...]
    #: Per group and class slot, the number of its combination (the last number: none).
    combo_index: NDArray[np.int64]
    #: Per template and position: fixed device index, or -1 for a class slot, -2 padding.
    fixed: NDArray[np.int64]
    #: Per template and position: ordinal of the class slot within its template.
    ordinal: NDArray[np.int64]
    #: Busy seconds per frame on (accelerator, CPU, radio), per kind, position and template
    #: (in this order: numpy is fast along long contiguous rows, slow over short last axes).
    work: NDArray[np.float64]
    #: Per position and template: the three kinds' work summed (a serialized device's).
    total: NDArray[np.float64]
    #: Per template: the source's rate cap, the rate alone, the latency.
    cap: NDArray[np.float64]
    alone: NDArray[np.float64]
    latency: NDArray[np.float64]
    #: Templates by rate alone (fastest first), then latency, then number.
    static_order: NDArray[np.int64]
    #: Per template: the positions of its class slots (in slot order).
    class_positions: tuple[tuple[int, ...], ...]


_PAD = -2
_CLASS = -1


class Ranker:
    """Ranks the templates of every app of one problem under changing loads."""

    def __init__(self, gen: CandidateGenerator) -> None:
        self.gen = gen
        self.device_index = {d.device_id: k for k, d in enumerate(gen.problem.devices)}
        self.device_ids = [d.device_id for d in gen.problem.devices]
        self._arrays: dict[int, _Arrays] = {}
        #: (arrays by id, load order of every class) -> (those arrays, device per template and
        #: position). Kept by the generator, so that every search of one problem (the fair one,
        #: the main one) shares them; each entry holds its arrays, so no other arrays take
        #: their id while it exists.
        self._choices = gen.ranker_choices

    def arrays(self, app: int) -> _Arrays:
        hit = self._arrays.get(app)
        if hit is None:
            # Built from the templates alone, so cached with them across planning calls.
            key = ("ranker arrays", self.gen.signature(app))
            hit = self._arrays[app] = self.gen.problem.cost.memo(
                self.gen.problem.apps[app].model, key, lambda: self._build(app)
            )
        return hit

    def _build(self, app: int) -> _Arrays:
        templates = self.gen.templates(app)
        width = max((len(t.slots) + len(t.endpoint_work) for t in templates), default=1)
        n = len(templates)
        index = self.device_index
        # The templates of one (source, target, slot sequence) group share their fixed devices,
        # slot ordinals and endpoint work (the endpoints' work is the same for every cut of a
        # sequence): those are one row per group; only the slots' work is per template. Rows
        # are built as flat lists and converted once (numpy converts them several times faster
        # than nested lists, and per-element assignment slower still).
        groups: dict[tuple[str, str, tuple[int, ...]], int] = {}
        reps: list[Template] = []
        group: list[int] = []
        fixed_rows: list[int] = []
        ordinal_rows: list[int] = []
        positions_of: list[tuple[int, ...]] = []
        #: Per group: its endpoints' work, then zeros up to the row's width.
        tails: list[list[float]] = []
        work_flat: list[float] = []
        for t in templates:
            key = (t.source, t.target, t.slots)
            g = groups.get(key)
            if g is None:
                g = groups[key] = len(reps)
                reps.append(t)
                # (Slot codes and fixed codes share values: translate, do not copy.)
                row = [
                    _CLASS if c >= 0 else index[t.source] if c == SOURCE_SLOT else index[t.target] for c in t.slots
                ]
                row += [index[device] for device, _ in t.endpoint_work]
                fixed_rows += row
                fixed_rows += [_PAD] * (width - len(row))
                ords, m = [0] * width, 0
                for p, slot in enumerate(t.slots):
                    if slot >= 0:
                        ords[p] = m
                        m += 1
                ordinal_rows += ords
                positions_of.append(tuple(p for p, slot in enumerate(t.slots) if slot >= 0))
                tail = [x for _, w in t.endpoint_work for x in w]
                tails.append(tail + [0.0] * (3 * (width - len(t.slots)) - len(tail)))
            group.append(g)
            for w in t.slot_work:
                work_flat += w
            work_flat += tails[g]
        group_index = np.array(group, dtype=np.int64)
        fixed = np.array(fixed_rows, dtype=np.int64).reshape(len(reps), width)[group_index]
        ordinal = np.array(ordinal_rows, dtype=np.int64).reshape(len(reps), width)[group_index]
        work = np.array(work_flat, dtype=np.float64).reshape(n, width, 3)
        class_positions = [positions_of[g] for g in group]
        combos, combo_index = _combos(reps)
        cap = np.array([t.cap_hz for t in templates])
        bottleneck = np.array([t.bottleneck_s for t in templates])
        alone = np.where(bottleneck > 0, np.minimum(cap, 1.0 / np.maximum(bottleneck, 1e-300)), cap)
        latency = np.array([t.latency_s for t in templates])
        static_order = np.lexsort((np.arange(n), latency, -alone))
        by_kind = np.ascontiguousarray(work.transpose(2, 1, 0))
        return _Arrays(
            tuple(templates), group_index, combos, combo_index, fixed, ordinal, by_kind,
            by_kind.sum(axis=0), cap, alone, latency, static_order, tuple(class_positions),
        )

    def _choose(self, arr: _Arrays, load: Mapping[str, float]) -> NDArray[np.int64]:
        """Per position and template, its device index: the fixed ones, and for class slots
        the least-loaded free member of the class (padding: an idle extra row)."""
        order = self.gen.ranked_members(load)
        # Loads change at every step, the order they put the members of each class in much
        # less often (classes are small): the choice depends only on that order.
        key = (id(arr), tuple(tuple(members) for members in order))
        hit = self._choices.get(key)
        if hit is not None and hit[0] is arr:
            return cast(NDArray[np.int64], hit[1])
        # The k-th slot of class c in a group takes the k-th member of c in load order that
        # is neither the group's source nor its target: one answer per distinct (c, k,
        # source, target), of which there are far fewer than groups.
        picked = np.zeros(len(arr.combos) + 1, dtype=np.int64)
        for n, (cls, k, source, target) in enumerate(arr.combos):
            free = [d for d in order[cls] if d != source and d != target]
            picked[n] = self.device_index[free[k]] if k < len(free) else 0
        chosen = picked[arr.combo_index]
        dev = np.where(arr.fixed == _CLASS, chosen[arr.group[:, None], arr.ordinal], arr.fixed)
        out = np.ascontiguousarray(np.where(arr.fixed == _PAD, len(self.device_ids), dev).T)
        self._choices[key] = (arr, out)
        return out

    def rank(
        self,
        app: int,
        load: Load,
        allow_parallel: bool,
        size: int,
        ladder: int,
        step: float,
    ) -> tuple[list[Candidate], list[Candidate]]:
        """The ``size`` best candidates by proxy, then up to ``ladder`` rungs of own speed."""
        arr = self.arrays(app)
        if not arr.templates:
            return [], []
        dev = self._positions(arr, load)
        n_dev = len(self.device_ids)
        util = np.zeros((n_dev + 1, 3))
        serial = np.zeros(n_dev + 1, dtype=np.bool_)
        for device, u in load.util.items():
            util[self.device_index[device]] = u
        for device in load.serial:
            serial[self.device_index[device]] = True
        if not allow_parallel:
            serial[:] = True
        # The rate a position allows is min over kinds of free / work; its inverse, the
        # busiest kind's work / free, takes one multiplication (0 x inf, a kind a position
        # does not use on a full device, is NaN, which fmax skips).
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_free = 1.0 / np.maximum(1.0 - util, 0.0)
            need = arr.work[0] * inv_free[:, 0][dev]  # (P, T)
            np.fmax(need, arr.work[1] * inv_free[:, 1][dev], out=need)
            np.fmax(need, arr.work[2] * inv_free[:, 2][dev], out=need)
            serial_here = serial[dev]
            if serial_here.any():
                need = np.where(serial_here, arr.total * inv_free[:, 0][dev], need)
            rate = np.fmin(arr.cap, 1.0 / np.fmax.reduce(need, axis=0))
        # Ties in the proxy rate go to the faster template alone, then the lower latency
        # (arr.static_order), which a stable sort keeps.
        order = arr.static_order[np.argsort(-rate[arr.static_order], kind="stable")]
        top = order[:size]
        rungs: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        if size < len(order) and ladder > 0:
            rest = order[size:]
            bands = np.floor(np.log(np.maximum(arr.alone[rest], 1e-9)) / math.log(step))
            _, first = np.unique(bands, return_index=True)
            firsts = np.sort(rest[first])  # one per band, fastest band first
            if len(firsts) > ladder:
                # Spread the rungs over the whole range of speeds, fastest and slowest included.
                picks = sorted({round(k * (len(firsts) - 1) / max(ladder - 1, 1)) for k in range(ladder)})
                firsts = firsts[picks]
            rungs = firsts
        seen: set[tuple[object, ...]] = set()
        return self._build_candidates(arr, dev, top, seen), self._build_candidates(arr, dev, rungs, seen)

    def _positions(self, arr: _Arrays, load: Load) -> NDArray[np.int64]:
        """Device index per position and template (padding points at an idle extra row)."""
        return self._choose(arr, load.device)

    def _build_candidates(
        self, arr: _Arrays, dev: NDArray[np.int64], rows: NDArray[np.int64], seen: set[tuple[object, ...]]
    ) -> list[Candidate]:
        out: list[Candidate] = []
        ids = self.device_ids
        for k in rows.tolist():
            row = dev[:, k].tolist()
            cand = self.gen.instantiate(arr.templates[k], [ids[row[p]] for p in arr.class_positions[k]])
            if cand.key not in seen:
                seen.add(cand.key)
                out.append(cand)
        return out

    def throttled(self, app: int, load: Load, device: str, kind: int, floor: float, count: int) -> list[Candidate]:
        """The ``count`` plans that use least of one resource per second at their own rate alone
        (``kind``: 0 accelerator, 1 CPU, 2 radio, -1 all three of a serialized device), among
        those whose own rate reaches ``floor``: an app that must leave a contested resource to
        others, as slow as it may be."""
        arr = self.arrays(app)
        if not arr.templates or device not in self.device_index:
            return []
        dev = self._positions(arr, load)
        here = dev == self.device_index[device]
        work = arr.total if kind < 0 else arr.work[kind]
        usage = np.where(here, work, 0.0).sum(axis=0) * arr.alone
        usage = np.where(arr.alone >= floor, usage, np.inf)
        index = np.arange(len(arr.templates))
        order = np.lexsort((index, -arr.alone, usage))
        order = order[np.isfinite(usage[order])][:count]
        return self._build_candidates(arr, dev, order, set())


def _combos(reps: Sequence[Template]) -> tuple[tuple[tuple[int, int, str, str], ...], NDArray[np.int64]]:
    """The distinct (class, occurrence, source, target) of the groups' class slots, and per
    group and slot the number of its combination (the last number: none)."""
    width = max((sum(1 for s in t.slots if s >= 0) for t in reps), default=0)
    numbers: dict[tuple[int, int, str, str], int] = {}
    rows: list[list[int]] = []
    for t in reps:
        seen: dict[int, int] = {}
        row = []
        for slot in t.slots:
            if slot < 0:
                continue
            k = seen.get(slot, 0)
            seen[slot] = k + 1
            row.append(numbers.setdefault((slot, k, t.source, t.target), len(numbers)))
        rows.append(row)
    index = np.full((len(reps), max(width, 1)), len(numbers), dtype=np.int64)
    for g, row in enumerate(rows):
        index[g, : len(row)] = row
    return tuple(numbers), index

