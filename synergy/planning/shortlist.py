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
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from synergy.planning.candidates import CandidateGenerator
from synergy.planning.problem import Candidate
from synergy.planning.templates import PAD_SLOT, SOURCE_SLOT, TARGET_SLOT, TemplateSet

_ProxyRates = Callable[[Any, Any, Any, Any, Any, Any, Any], None]
_SelectRanked = Callable[[Any, Any, Any, int, int, Any, Any], tuple[int, int]]
try:
    from synergy.planning._fill import proxy_rates as _built_proxy_rates
    from synergy.planning._fill import select_ranked as _built_select_ranked

    _native_proxy_rates: _ProxyRates | None = _built_proxy_rates
    _native_select_ranked: _SelectRanked | None = _built_select_ranked
except ImportError:  # built without a C compiler: numpy's (_proxy_rates, _select), the same
    _native_proxy_rates = None
    _native_select_ranked = None

__all__ = ["Load", "Ranker"]


@dataclass
class Load:
    """How busy the devices are under a partial plan (busy fractions per resource)."""

    #: device -> utilisation of (accelerator, CPU, radio); a serialized device repeats one figure.
    util: dict[str, tuple[float, float, float]] = field(default_factory=dict)
    serial: set[str] = field(default_factory=set)
    #: device -> its busiest resource, for choosing the least-loaded device of a class.
    device: dict[str, float] = field(default_factory=dict)
    #: Per class, its members from least to most loaded (made on first use by a ranker; a load
    #: is read-only once made, and the search ranks under one load many times).
    members: tuple[tuple[str, ...], ...] | None = None


@dataclass(frozen=True)
class _Arrays:
    """One app's templates as arrays (built once per app and planning call)."""

    templates: TemplateSet
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
    #: Templates by rate alone (fastest first), then latency, then number; and each
    #: template's place in that order.
    static_order: NDArray[np.int64]
    static_rank: NDArray[np.int64]
    #: Per group: the positions of its class slots (in slot order).
    class_positions: tuple[tuple[int, ...], ...]


_PAD = -2
_CLASS = -1
_Number = TypeVar("_Number", bound=np.generic)


class Ranker:
    """Ranks the templates of every app of one problem under changing loads."""

    def __init__(self, gen: CandidateGenerator) -> None:
        self.gen = gen
        self.device_index = {d.device_id: k for k, d in enumerate(gen.problem.devices)}
        self.device_ids = [d.device_id for d in gen.problem.devices]
        self._arrays: dict[int, _Arrays] = {}
        self._band_cache: dict[int, tuple[float, _Arrays, NDArray[np.int64], int]] = {}
        #: (arrays by id, load order of every class) -> (those arrays, device per template and
        #: position). Kept by the generator, so that every search of one problem (the fair one,
        #: the main one) shares them; each entry holds its arrays, so no other arrays take
        #: their id while it exists.
        self._choices = gen.ranker_choices
        #: (device array by id, template number) -> its candidate; the arrays are the choices'.
        self._candidates = gen.ranked_candidates

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
        pairs = templates.pairs
        n = len(templates)
        width = max((p.table.codes.shape[1] for p in pairs), default=1)
        index = self.device_index
        # Per (pair, sequence) group: its devices, class-slot ordinals and combinations, from
        # the kind's table with the pair's source and target put in (numpy, a few calls per
        # pair); per template, its group's rows and its cut's work.
        fixed_parts, ordinal_parts, combo_parts, work_parts = [], [], [], []
        combos: list[tuple[int, int, str, str]] = []
        class_positions: list[tuple[int, ...]] = []
        for pair in pairs:
            table = pair.table
            codes = _padded(table.codes, width, PAD_SLOT)
            fixed = np.where(codes >= 0, _CLASS, _PAD)
            fixed[codes == SOURCE_SLOT] = index[pair.source]
            fixed[codes == TARGET_SLOT] = index[pair.target]
            fixed_parts.append(fixed)
            ordinal_parts.append(_padded(table.ordinals, width, 0))
            # Pairs differ in source or target, so no two pairs share a combination.
            combo_parts.append(np.where(table.combo_index >= 0, table.combo_index + len(combos), -1))
            combos += [(cls, k, pair.source, pair.target) for cls, k in table.combos]
            class_positions += table.class_positions
            work_parts.append(_padded(table.work, width, 0.0))
        if pairs:
            group = templates.sequence_offsets[templates.pair] + np.concatenate(
                [p.table.sequence for p in pairs]
            )[templates.row]
            fixed = np.concatenate(fixed_parts)[group]
            ordinal = np.concatenate(ordinal_parts)[group]
            slots_wide = max(c.shape[1] for c in combo_parts)
            combo_index = np.concatenate([_padded(c, slots_wide, -1) for c in combo_parts])
            combo_index[combo_index < 0] = len(combos)
            work = np.concatenate(work_parts)[templates.row]
        else:
            group = np.zeros(0, dtype=np.int64)
            fixed = ordinal = np.zeros((0, width), dtype=np.int64)
            combo_index = np.zeros((0, 1), dtype=np.int64)
            work = np.zeros((0, width, 3))
        cap, bottleneck, latency = templates.cap, templates.bottleneck, templates.latency
        with np.errstate(divide="ignore"):
            alone = np.where(bottleneck > 0, np.minimum(cap, 1.0 / np.maximum(bottleneck, 1e-300)), cap)
        static_order = np.lexsort((np.arange(n), latency, -alone))
        static_rank = np.empty(n, dtype=np.int64)
        static_rank[static_order] = np.arange(n)
        by_kind = np.ascontiguousarray(work.transpose(2, 1, 0))
        return _Arrays(
            templates, group, tuple(combos), combo_index, fixed, ordinal, by_kind,
            by_kind.sum(axis=0), cap, alone, latency, static_order, static_rank, tuple(class_positions),
        )

    def _choose(self, arr: _Arrays, load: Load) -> NDArray[np.int64]:
        """Per position and template, its device index: the fixed ones, and for class slots
        the least-loaded free member of the class (padding: an idle extra row)."""
        order = load.members
        if order is None:
            order = load.members = tuple(tuple(members) for members in self.gen.ranked_members(load.device))
        # Loads change at every step, the order they put the members of each class in much
        # less often (classes are small): the choice depends only on that order.
        key = (id(arr), order)
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
        if _native_proxy_rates is not None:
            # The same expression element by element, in C (bit for bit: a unit test).
            rate = np.empty(len(arr.cap))
            _native_proxy_rates(arr.work, arr.total, dev, inv_free, serial, arr.cap, rate)
        else:
            rate = _proxy_rates(arr.work, arr.total, arr.cap, dev, inv_free, serial)
        # Ties in the proxy rate go to the faster template alone, then the lower latency
        # (arr.static_order), which a stable sort keeps.
        bands, count = self._bands(app, arr, step)
        if _native_select_ranked is not None:
            top, firsts = _select_native(rate, arr.static_rank, bands, count, size, ladder)
        else:
            top, firsts = _select(rate, arr.static_order, bands, count, size, ladder)
        rungs = firsts
        if len(firsts) > ladder:
            # Spread the rungs over the whole range of speeds, fastest and slowest included.
            picks = sorted({round(k * (len(firsts) - 1) / max(ladder - 1, 1)) for k in range(ladder)})
            rungs = firsts[picks]
        seen: set[int] = set()
        return self._build_candidates(arr, dev, top, seen), self._build_candidates(arr, dev, rungs, seen)

    def _bands(self, app: int, arr: _Arrays, step: float) -> tuple[NDArray[np.int64], int]:
        """Per template, its band of own speed (numbered from 0) for ladders of ``step``; the
        number of bands."""
        hit = self._band_cache.get(app)
        if hit is None or hit[0] != step or hit[1] is not arr:
            bands, count = speed_bands(arr.alone, step)
            hit = self._band_cache[app] = (step, arr, bands, count)
        return hit[2], hit[3]

    def _positions(self, arr: _Arrays, load: Load) -> NDArray[np.int64]:
        """Device index per position and template (padding points at an idle extra row)."""
        return self._choose(arr, load)

    def _build_candidates(
        self, arr: _Arrays, dev: NDArray[np.int64], rows: NDArray[np.int64], seen: set[int]
    ) -> list[Candidate]:
        out: list[Candidate] = []
        ids = self.device_ids
        # The device arrays are the choices' (kept by the generator), so their ids name them.
        made = self._candidates
        at = id(dev)
        for k in rows.tolist():
            cand = made.get((at, k))
            if cand is None:
                row = dev[:, k].tolist()
                positions = arr.class_positions[int(arr.group[k])]
                cand = made[(at, k)] = self.gen.instantiate(arr.templates[k], [ids[row[p]] for p in positions])
            # One candidate object per key in a problem: its id names the key.
            if id(cand) not in seen:
                seen.add(id(cand))
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


def speed_bands(alone: NDArray[np.float64], step: float) -> tuple[NDArray[np.int64], int]:
    """Per template, its band of own speed (``alone``, numbered from 0) for ladders of
    ``step``; the number of bands."""
    raw = np.floor(np.log(np.maximum(alone, 1e-9)) / math.log(step)).astype(np.int64)
    bands = raw - raw.min() if len(raw) else raw
    return bands, int(bands.max()) + 1 if len(bands) else 0


def _select(
    rate: NDArray[np.float64],
    static_order: NDArray[np.int64],
    bands: NDArray[np.int64],
    count: int,
    size: int,
    ladder: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """The ``size`` first templates in proxy order (ties: ``static_order``); and when templates
    remain and ``ladder`` > 0, per band of own speed the first remaining one, by template
    number (fastest band first: templates are numbered by own speed)."""
    order = static_order[np.argsort(-rate[static_order], kind="stable")]
    firsts: NDArray[np.int64] = np.zeros(0, dtype=np.int64)
    if size < len(order) and ladder > 0:
        rest = order[size:]
        # The first template of each band in proxy order (the best of its band).
        first = np.full(count, len(rest))
        np.minimum.at(first, bands[rest], np.arange(len(rest)))
        firsts = np.sort(rest[first[first < len(rest)]])
    return order[:size], firsts


def _select_native(
    rate: NDArray[np.float64],
    static_rank: NDArray[np.int64],
    bands: NDArray[np.int64],
    count: int,
    size: int,
    ladder: int,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """:func:`_select` in C, without sorting every template (the same answer: a unit test);
    ``static_rank`` is the inverse of its ``static_order``."""
    assert _native_select_ranked is not None
    top = np.empty(min(size, len(rate)), dtype=np.int64)
    firsts = np.empty(max(count, 1), dtype=np.int64)
    n_top, n_firsts = _native_select_ranked(rate, static_rank, bands, size, ladder, top, firsts[:count])
    return top[:n_top], firsts[:n_firsts]


def _proxy_rates(
    work: NDArray[np.float64],
    total: NDArray[np.float64],
    cap: NDArray[np.float64],
    dev: NDArray[np.int64],
    inv_free: NDArray[np.float64],
    serial: NDArray[np.bool_],
) -> NDArray[np.float64]:
    """Per template: the rate it would reach from the capacity the load leaves (``inv_free``:
    per device row, the inverse of each kind's free share), capped by its source (``work``,
    ``total`` and ``cap`` as in :class:`_Arrays`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        need = work[0] * inv_free[:, 0][dev]  # (P, T)
        np.fmax(need, work[1] * inv_free[:, 1][dev], out=need)
        np.fmax(need, work[2] * inv_free[:, 2][dev], out=need)
        serial_here = serial[dev]
        if serial_here.any():
            need = np.where(serial_here, total * inv_free[:, 0][dev], need)
        rate: NDArray[np.float64] = np.fmin(cap, 1.0 / np.fmax.reduce(need, axis=0))
    return rate


def _padded(values: NDArray[_Number], width: int, fill: float) -> NDArray[_Number]:
    """``values`` with its second axis filled up to ``width`` with ``fill``."""
    have = values.shape[1]
    if have >= width:
        return values
    out = np.full((values.shape[0], width, *values.shape[2:]), fill, dtype=values.dtype)
    out[:, :have] = values
    return out
