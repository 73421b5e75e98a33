"""Execution-plan candidates of one app: sources x targets x device sequences x cuts.

DESIGN.md §5 (1). A *template* fixes an app's source and target device and a sequence of
*slots*: the source itself, the target itself, or "some device of class c" (devices of one
class are interchangeable for cost: same board, link and calibration). For every slot
sequence the cuts of the model into contiguous layer ranges are chosen by dynamic
programming over L x L cost matrices (numpy), one slot per range, every range checked
against its board:

* the cuts minimising the app's own bottleneck (overlapped devices), then its latency;
* the same with serialized devices (busy times add);
* the cuts minimising latency alone (Neurosurgeon's objective);
* the cuts minimising the largest weight-memory share, which keeps partitions of several
  apps resident together (no reloads).

A range is feasible on a slot when its board's checker accepts it and the slot's MCU can
hold the frames it receives and sends over the radio (:mod:`.memory`).

Any other cut of a sequence is worse for the app alone in all four respects, so the joint
search loses little by skipping it. A template becomes a concrete :class:`Candidate` once
its class slots get distinct devices: the fast method picks the least-loaded ones, the
exact method enumerates them all (:meth:`CandidateGenerator.concrete`, with dominated
candidates pruned).
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from synergy.planning.cost import BoardTable, DeviceWork, FrameCost, Matrix, PartitionFootprint
from synergy.planning.links import link_between
from synergy.planning.memory import sram_limit
from synergy.planning.problem import MAX_SEQUENCES, Candidate, PlanningProblem, sequence_count
from synergy.planning.templates import (
    SOURCE_SLOT,
    TARGET_SLOT,
    EndpointPair,
    PartFigures,
    SequenceTable,
    Template,
    TemplateSet,
    Work,
    sequence_table,
)
from synergy.types import LinkProfile, Stage

__all__ = [
    "CandidateGenerator",
    "RawCut",
    "SOURCE_SLOT",
    "TARGET_SLOT",
    "Template",
    "TemplateSet",
    "cut_from_raw",
    "cut_to_raw",
    "is_cut_key",
    "is_cut_list",
    "prune_dominated",
]

#: Relative slack when masking "as good as the optimum" in the tie-break passes.
_TIE_SLACK = 1e-9
#: Per-resource features of a candidate on one device, for dominance pruning.
_FEATURES = 8
#: Slot matrices kept by one generator (a few MB at most: L <= ~70).
_SLOT_CACHE_LIMIT = 2_000
#: Candidates of one app kept across planning calls (a few kB each).
_REUSED_LIMIT = 20_000


@dataclass
class _Reused:
    """An app's candidates kept across planning calls, by (template id, devices), with the
    templates those ids belong to (kept alive, so that no other object takes their ids), and
    the candidates made from stages (the baselines') by their key."""

    templates: TemplateSet
    by_key: dict[tuple[int, tuple[str, ...]], Candidate]
    by_plan: dict[tuple[str, tuple[Stage, ...], str], Candidate]


class _Cut(NamedTuple):
    """A solved slot sequence: ranges, per-slot work, endpoint work outside the slots.

    A named tuple: a first plan makes thousands of them, several times faster than frozen
    dataclasses.
    """

    ranges: tuple[tuple[int, int], ...]
    bottleneck_s: float
    latency_s: float
    slot_work: tuple[Work, ...]
    #: (SOURCE_SLOT or TARGET_SLOT, work) for endpoints that hold no slot.
    endpoint_work: tuple[tuple[int, Work], ...]
    #: Per slot: the partition as its device holds it (reload time calibrated).
    slot_parts: tuple[PartFigures, ...] = ()
    #: The app's own bottleneck when no device overlaps its resources (busy times add).
    serial_s: float = 0.0

    def features(self) -> tuple[float, ...]:
        """Everything a joint plan charges this cut for (lower is better), for dominance."""
        memory = tuple(x for p in self.slot_parts for x in (p[0], p[1], p[2], p[3] + p[4], p[5]))
        return tuple(x for w in self.slot_work for x in w) + memory


#: A solved slot sequence as plain tuples (what :mod:`.disk_cache` stores: plain tuples of
#: numbers unpickle several times faster than named tuples or dataclasses).
RawCut = tuple[Any, ...]


def cut_to_raw(cut: _Cut) -> RawCut:
    return tuple(cut)


def cut_from_raw(raw: RawCut) -> _Cut:
    # One tuple made, nothing converted: the nested figures are already what a cut holds.
    return _Cut._make(raw)


def _serial(work: Sequence[Work], endpoints: Sequence[tuple[int, Work]]) -> float:
    """The largest busy time of one device when its three resources take turns."""
    return max(
        max((a + c + r for a, c, r in work), default=0.0),
        max((a + c + r for _, (a, c, r) in endpoints), default=0.0),
    )


#: First item of the memo keys of solved cuts.
_CUTS = "cuts"


def is_cut_key(key: object) -> bool:
    """Whether a memo key names the solved cuts of a slot sequence."""
    return type(key) is tuple and len(key) > 0 and key[0] == _CUTS


def is_cut_list(value: object) -> bool:
    """Whether a memo entry is a list of solved cuts (the entries :mod:`.disk_cache` stores)."""
    return isinstance(value, list) and all(isinstance(c, _Cut) for c in value)


@dataclass(frozen=True)
class _Slot:
    table: BoardTable
    factor: float
    link: LinkProfile
    extra_radio_s: float
    extra_cpu_s: float


def _send(nbytes: Matrix, link: LinkProfile | None) -> Matrix:
    if link is None:
        return np.zeros_like(nbytes)
    return np.where(nbytes > 0, (nbytes + link.per_message_overhead_bytes) / link.bandwidth_bytes_per_s, 0.0)


def _dp(costs: Sequence[Matrix], use_sum: bool) -> tuple[float, tuple[tuple[int, int], ...]]:
    """Best cut of L layers into len(costs) ranges; range j costs costs[j][first, last].

    Minimises the maximum (or, with ``use_sum``, the sum) of the range costs.
    """
    value = costs[0][0, :].copy()
    choices: list[np.ndarray] = []
    for cost in costs[1:]:
        prev = value[:-1, None]
        combined = prev + cost[1:, :] if use_sum else np.maximum(prev, cost[1:, :])
        arg = np.argmin(combined, axis=0)
        value = combined[arg, np.arange(combined.shape[1])]
        choices.append(arg + 1)
    n = value.shape[0]
    best = float(value[n - 1])
    if not np.isfinite(best):
        return best, ()
    ranges: list[tuple[int, int]] = []
    last = n - 1
    for arg in choices[::-1]:  # (not reversed(): mypyc fails on it over numpy values)
        first = int(arg[last])
        ranges.append((first, last))
        last = first - 1
    ranges.append((0, last))
    return best, tuple(reversed(ranges))


def _value_token(value: object) -> str:
    return hashlib.blake2b(repr(value).encode(), digest_size=12).hexdigest()


def _undominated(cuts: list[_Cut]) -> list[_Cut]:
    """Drop cuts of one slot sequence that another cut beats or equals on every charge."""
    feats = [c.features() for c in cuts]
    keep: list[_Cut] = []
    for i, cut in enumerate(cuts):
        dominated = any(
            j != i
            and all(a <= b for a, b in zip(feats[j], feats[i], strict=True))
            and (feats[j] != feats[i] or j < i)
            for j in range(len(cuts))
        )
        if not dominated:
            keep.append(cut)
    return keep


class CandidateGenerator:
    """Templates and concrete candidates of every app of one problem (memoised)."""

    def __init__(self, problem: PlanningProblem) -> None:
        self.problem = problem
        self._templates: dict[int, TemplateSet] = {}
        # Memo keys name a class by a digest of its value: hashing a board (64 weight-memory
        # figures) at every one of thousands of lookups was a large part of a first plan, and
        # a digest is the same in every process (the disk cache keeps these keys).
        self._class_key = [_value_token((c.board, c.link, c.factor)) for c in problem.classes]
        self._order = {d.device_id: i for i, d in enumerate(problem.devices)}
        self._helpers: dict[tuple[int, int], tuple[int, ...]] = {}
        #: Per-slot cost matrices of the cut solver (see :meth:`_solve`), keyed by the table.
        self._slot_cache: dict[tuple[object, ...], tuple[BoardTable, tuple[Any, ...]]] = {}
        #: (app, source device) -> the app's rate cap there, and what imposes it.
        self._caps: dict[tuple[int, str], tuple[float, str]] = {}
        #: (template by id, its class slots' devices) -> candidate. The fast method asks for
        #: the same few hundred instances thousands of times; a template is made once by its
        #: set, which this generator holds, so its id is stable.
        self._instances: dict[tuple[int, tuple[str, ...]], Candidate] = {}
        #: Stages by (device, first layer, last layer): candidates share many, and a frozen
        #: dataclass is slow to make.
        self._stages: dict[tuple[str, int, int], Stage] = {}
        #: Per device: its accelerator's, CPU's and radio's active power (a frame's energy).
        self._power: dict[str, tuple[float, float, float]] = {}
        #: Per app, the same across planning calls (:meth:`_reusable`).
        self._reused: dict[int, _Reused] = {}
        #: The device choices of :class:`~synergy.planning.shortlist.Ranker` (every ranker of
        #: this problem shares them).
        self.ranker_choices: dict[tuple[int, tuple[tuple[str, ...], ...]], tuple[object, Any]] = {}
        #: ... and the candidates it made from them.
        self.ranked_candidates: dict[tuple[int, int], Candidate] = {}
        #: The fast method's loads and shortlists (:mod:`~synergy.planning.fast`), shared by
        #: its searches of this problem (the fair one, then the main one, place the same apps
        #: in the same order first).
        self.search_loads: dict[tuple[bool, tuple[int, ...]], Any] = {}
        self.search_shortlists: dict[tuple[object, ...], tuple[Any, list[Candidate]]] = {}
        # The baselines' candidates (made from stages by the problem) are reused like ours.
        problem.reuse = self

    # -- templates -------------------------------------------------------------------------

    def templates(self, app_index: int) -> TemplateSet:
        """Every feasible template of the app, best own bottleneck first."""
        hit = self._templates.get(app_index)
        if hit is not None:
            return hit
        p = self.problem
        # Re-plans of one space (the live coordinator's, after an app comes or a factor
        # drifts) ask for the same templates again: keep them with the model's cached cuts.
        result = p.cost.memo(
            p.apps[app_index].model, ("templates", self.signature(app_index)), lambda: self._build(app_index)
        )
        self._templates[app_index] = result
        return result

    def signature(self, app_index: int) -> tuple[object, ...]:
        """Everything an app's templates depend on besides its model (a cache key)."""
        p = self.problem
        spec = p.apps[app_index].spec
        return (
            app_index,
            spec.source_type,
            spec.max_rate_hz,
            p.problems[app_index],
            p.sources[app_index],
            p.targets[app_index],
            p.stage_limit(app_index) if not p.problems[app_index] else 0,
            tuple(self._class_key),
            tuple((d.device_id, p.class_of[d.device_id], d.sensors) for d in p.devices),
            p.cost.params,
        )

    def _build(self, app_index: int) -> TemplateSet:
        p = self.problem
        pairs: list[EndpointPair] = []
        if not p.problems[app_index]:
            spec = p.apps[app_index].spec
            for source in p.sources[app_index]:
                cap = p.cost.source_cap(p.by_id[source], spec.source_type, spec.max_rate_hz)[0]
                for target in p.targets[app_index]:
                    pairs.append(EndpointPair(source, target, cap, self._sequence_table(app_index, source, target)))
        return TemplateSet(app_index, pairs)

    def _sequence_table(self, app_index: int, source: str, target: str) -> SequenceTable:
        """The solved cuts of every slot sequence from ``source`` to ``target``.

        Pairs whose source and target are of the same classes (and are, or are not, one
        device) have the same sequences and cuts, and so have other apps of the model and
        other spaces with the same kinds of devices: the table is kept by the model's memo
        under the classes' values and the number of members each may give a slot.
        """
        p = self.problem
        limit = p.stage_limit(app_index)
        pairs = self.pairs(app_index)
        helpers = self.helper_classes(limit, pairs)
        ckey = self._class_key
        key = (
            "sequences",
            ckey[p.class_of[source]],
            ckey[p.class_of[target]],
            source == target,
            limit,
            tuple((c, ckey[c], len(self._available(c, source, target))) for c in helpers),
        )
        return p.cost.memo(
            p.apps[app_index].model,
            key,
            lambda: sequence_table(
                [
                    (slots, self._cuts(app_index, source, target, slots))
                    for slots in self._slot_sequences(source, target, limit, pairs)
                ]
            ),
        )

    def _available(self, cls: int, source: str, target: str) -> tuple[str, ...]:
        return tuple(m for m in self.problem.classes[cls].members if m not in (source, target))

    def helper_classes(self, limit: int, pairs: int = 1) -> tuple[int, ...]:
        """The device classes a class slot may take in sequences of up to ``limit`` slots.

        All of them, unless an app with ``pairs`` (source, target) pairs would get more than
        :data:`MAX_SEQUENCES` slot sequences: a body of 32 devices on five kinds of link and
        two boards has ten classes and ~1,000 sequences of three slots per pair, 16 pairs per
        app, which nobody can solve in planning time. Then only the classes with the fastest
        links are helpers: first the fastest of each board (so every operator stays
        available), then by link rate, as many as the budget allows. The exact method states
        this limit in what it proved.
        """
        hit = self._helpers.get((limit, pairs))
        if hit is not None:
            return hit
        classes = self.problem.classes
        every = tuple(range(len(classes)))
        budget = MAX_SEQUENCES / max(pairs, 1)
        if sequence_count(len(classes), limit) <= budget:
            self._helpers[(limit, pairs)] = every
            return every

        def speed(c: int) -> tuple[float, float, int, int]:
            link, board = classes[c].link, classes[c].board
            return (-link.bandwidth_bytes_per_s, link.latency_s, -board.weight_bytes, c)

        by_speed = sorted(every, key=speed)
        first_per_board: dict[object, int] = {}
        for c in by_speed:
            first_per_board.setdefault(classes[c].board, c)
        chosen = list(first_per_board.values())
        for c in by_speed:
            if c not in chosen and sequence_count(len(chosen) + 1, limit) <= budget:
                chosen.append(c)
        result = tuple(sorted(chosen))
        self._helpers[(limit, pairs)] = result
        return result

    def pairs(self, app_index: int) -> int:
        """The app's (source, target) pairs."""
        return len(self.problem.sources[app_index]) * len(self.problem.targets[app_index])

    def _slot_sequences(self, source: str, target: str, limit: int, pairs: int = 1) -> Iterator[tuple[int, ...]]:
        classes = self.helper_classes(limit, pairs)
        counts = {c: len(self._available(c, source, target)) for c in classes}
        same = source == target
        for k in range(1, limit + 1):
            if k == 1:
                options: list[Sequence[int]] = [[SOURCE_SLOT] + ([] if same else [TARGET_SLOT]) + list(classes)]
            else:
                options = [[SOURCE_SLOT, *classes], *([classes] * (k - 2)), [TARGET_SLOT, *classes]]
            for seq in itertools.product(*options):
                if same and SOURCE_SLOT in seq and TARGET_SLOT in seq:
                    continue
                if all(seq.count(c) <= counts[c] for c in set(seq) if c >= 0):
                    yield tuple(seq)

    def _cuts(self, app_index: int, source: str, target: str, slots: tuple[int, ...]) -> list[_Cut]:
        p = self.problem
        model = p.apps[app_index].model
        if len(slots) > len(model.layers):
            return []
        # Solutions depend only on the classes (board, link, calibration) of the slots and
        # endpoints, so they are shared across apps of one model and across planning calls.
        ckey = self._class_key
        key = (
            _CUTS,
            tuple(s if s < 0 else ckey[s] for s in slots),
            ckey[p.class_of[source]],
            ckey[p.class_of[target]],
            source == target,
        )
        return p.cost.memo(model, key, lambda: self._solve(app_index, source, target, slots))

    def _solve(self, app_index: int, source: str, target: str, slots: tuple[int, ...]) -> list[_Cut]:
        p = self.problem
        model = p.apps[app_index].model
        prof = p.cost.profile(model)
        n = prof.layers
        enter = prof.enter_bytes.astype(np.float64)
        leave = prof.leave_bytes.astype(np.float64)
        src, tgt = p.by_id[source], p.by_id[target]
        same = source == target
        is_s = [s == SOURCE_SLOT or (same and s == TARGET_SLOT) for s in slots]
        is_t = [s == TARGET_SLOT or (same and s == SOURCE_SLOT) for s in slots]
        attrs = [
            (src.link, src.board, p.cost.factor(source))
            if s == SOURCE_SLOT
            else (tgt.link, tgt.board, p.cost.factor(target))
            if s == TARGET_SLOT
            else (p.classes[s].link, p.classes[s].board, p.classes[s].factor)
            for s in slots
        ]
        links = [a[0] for a in attrs]
        boards = [a[1] for a in attrs]
        factors = [a[2] for a in attrs]
        in_link = None if is_s[0] else link_between(src.link, links[0])
        out_link = None if is_t[-1] else link_between(links[-1], tgt.link)
        tx_in = float(_send(enter[:1], in_link)[0])
        rx_out = float(_send(leave[-1:], out_link)[0])
        delivery = (p.cost.params.delivery_cpu_s + model.output_bytes / tgt.board.cpu_copy_bytes_per_s) * p.cost.factor(
            target
        )
        # Work of the endpoints that no slot holds: constant for every cut.
        s_held, t_held = any(is_s), any(is_t)
        endpoint_work: list[tuple[int, Work]] = []
        if same and not s_held:
            endpoint_work.append((SOURCE_SLOT, (0.0, delivery, tx_in + rx_out)))
        else:
            if not s_held:
                endpoint_work.append((SOURCE_SLOT, (0.0, 0.0, tx_in)))
            if not t_held:
                endpoint_work.append((TARGET_SLOT, (0.0, delivery, rx_out)))
        # An endpoint that only relays holds the frame it sends or receives in its SRAM.
        if in_link is not None and enter[0] > sram_limit(src.board):
            return []
        if out_link is not None and leave[-1] > sram_limit(tgt.board):
            return []
        const_par = max((max(w) for _, w in endpoint_work), default=0.0)
        const_latency = (tx_in + (in_link.latency_s if in_link else 0.0)) + (
            rx_out + (out_link.latency_s if out_link else 0.0)
        ) + delivery
        par: list[Matrix] = []
        parts: list[tuple[Matrix, Matrix, Matrix]] = []
        ser: list[Matrix] = []
        lat: list[Matrix] = []
        mem: list[Matrix] = []
        tables: list[BoardTable] = []
        k = len(slots)
        for j, board in enumerate(boards):
            table = p.cost.table(model, board)
            tables.append(table)
            prev = in_link if j == 0 else link_between(links[j - 1], links[j])
            nxt = out_link if j == k - 1 else link_between(links[j], links[j + 1])
            receives = j > 0 or in_link is not None
            sends = j < k - 1 or out_link is not None
            extra_radio = (tx_in if is_s[j] and j != 0 else 0.0) + (rx_out if is_t[j] and j != k - 1 else 0.0)
            extra_cpu = delivery if is_t[j] else 0.0
            hop = prev.latency_s if (prev is not None and j > 0) else 0.0
            # A slot's matrices depend only on these; sequences share most slots, and
            # building the L x L matrices is most of a solve's time.
            key = (id(table), factors[j], prev if receives else None, nxt if sends else None, j > 0, extra_radio,
                   extra_cpu, hop)
            hit = self._slot_cache.get(key)
            if hit is None or hit[0] is not table:
                rx = _send(enter, prev) if receives else np.zeros(n)
                tx = _send(leave, nxt) if sends else np.zeros(n)
                radio = rx[:, None] + tx[None, :] + extra_radio
                accel = table.accel_s * factors[j]
                cpu = table.cpu_s * factors[j] + extra_cpu
                # Frames crossing a radio are held whole in SRAM (:mod:`.memory`).
                held = (enter * receives)[:, None] + (leave * sends)[None, :]
                bad = ~table.feasible | (held > sram_limit(board))
                matrices = (
                    (accel, cpu, radio),
                    np.where(bad, np.inf, np.maximum(np.maximum(accel, cpu), radio)),
                    np.where(bad, np.inf, accel + cpu + radio),
                    np.where(bad, np.inf, accel + cpu - extra_cpu + rx[:, None] * (j > 0) + hop),
                    np.where(bad, np.inf, table.weight_bytes / board.weight_bytes),
                )
                if len(self._slot_cache) >= _SLOT_CACHE_LIMIT:
                    self._slot_cache.clear()
                hit = self._slot_cache[key] = (table, matrices)
            slot_parts, slot_par, slot_ser, slot_lat, slot_mem = hit[1]
            parts.append(slot_parts)
            par.append(slot_par)
            ser.append(slot_ser)
            lat.append(slot_lat)
            mem.append(slot_mem)

        results: dict[tuple[tuple[int, int], ...], _Cut] = {}

        def keep(ranges: tuple[tuple[int, int], ...]) -> None:
            if not ranges or ranges in results:
                return
            b = max(max(float(par[j][f, last]) for j, (f, last) in enumerate(ranges)), const_par)
            latency = sum((float(lat[j][f, last]) for j, (f, last) in enumerate(ranges)), 0.0) + const_latency
            work = tuple(
                (float(a[f, last]), float(c[f, last]), float(r[f, last]))
                for (a, c, r), (f, last) in zip(parts, ranges, strict=True)
            )
            # In PartitionFootprint's field order (weight, bias, layers, peak data, frame buffer,
            # reload seconds), as plain tuples (PartFigures).
            memory = tuple(
                (
                    int(tables[j].weight_bytes[f, last]),
                    int(tables[j].bias_bytes[f, last]),
                    last - f + 1,
                    int(prof.peak_data[f, last]),
                    int(prof.enter_bytes[f] + prof.leave_bytes[last]) * p.cost.params.overlap_extra_frames,
                    float(tables[j].reload_s[f, last]) * factors[j],
                )
                for j, (f, last) in enumerate(ranges)
            )
            ends = tuple(endpoint_work)
            results[ranges] = _Cut(ranges, b, latency, work, ends, memory, _serial(work, ends))

        for primary in (par, ser, mem):
            best, ranges = _dp(primary, use_sum=False)
            if not ranges:
                return []
            bound = best * (1 + _TIE_SLACK) + 1e-15
            masked = [np.where(m <= bound, lt, np.inf) for m, lt in zip(primary, lat, strict=True)]
            _, tie = _dp(masked, use_sum=True)
            keep(tie or ranges)
        _, fastest = _dp(lat, use_sum=True)
        keep(fastest)
        return _undominated(list(results.values()))

    # -- concrete candidates ---------------------------------------------------------------

    def open_slots(self, template: Template) -> dict[int, tuple[str, ...]]:
        """Devices each class slot of the template may take (excluding source and target)."""
        return {c: self._available(c, template.source, template.target) for c in set(template.slots) if c >= 0}

    def instantiate(self, template: Template, chosen: Sequence[str]) -> Candidate:
        """The candidate whose class slots (in order) run on ``chosen`` devices.

        Its frame cost is assembled from the template's per-slot work (the same terms
        :meth:`~synergy.planning.cost.CostModel.frame_cost` computes, without recomputing).
        """
        fast_key = (id(template), tuple(chosen))
        known = self._instances.get(fast_key)
        if known is not None:
            return known
        store = self._reusable(template.app_index)
        reusable = store.by_key if store is not None else None
        cand = reusable.get(fast_key) if reusable is not None else None
        if cand is not None:
            cand = self.problem.remember_candidate(cand)
        else:
            cand = self._instantiate(template, chosen)
            if reusable is not None:
                if len(reusable) >= _REUSED_LIMIT:
                    reusable.clear()
                reusable[fast_key] = cand
        self._instances[fast_key] = cand
        return cand

    def _reusable(self, app_index: int) -> _Reused | None:
        """The app's candidates made by earlier planning calls on the same templates.

        With plain links a candidate is a function of its template and devices alone (the
        template's signature fixes the devices' classes, boards and the source's cap), so
        the live coordinator's re-plans reuse them, and with them every figure derived from
        their frame costs. Pair links and shared air time make the cost depend on more than
        the signature says: there, candidates are made anew for each call. Only the stores of
        the most recent signatures are kept (:meth:`~synergy.planning.cost.CostModel.recent`).
        """
        if not self.problem.plain_links:
            return None
        hit = self._reused.get(app_index)
        if hit is None:
            p = self.problem
            templates = self.templates(app_index)
            key = ("instances", self.signature(app_index))
            store = p.cost.recent(p.apps[app_index].model, key, lambda: _Reused(templates, {}, {}))
            if store.templates is not templates:
                # The templates were made again (the memo was cleared): the store's keys are
                # ids of the old ones, which new objects may take. Start afresh; holding the
                # templates keeps every id in the store alive and unique.
                store.templates, store.by_key = templates, {}
            hit = self._reused[app_index] = store
        return hit

    def reused_plans(self, app_index: int) -> dict[tuple[str, tuple[Stage, ...], str], Candidate] | None:
        """The app's candidates made from stages by earlier planning calls (see :meth:`_reusable`),
        by (source, stages, target); None when candidates are not reused."""
        store = self._reusable(app_index)
        if store is None:
            return None
        if len(store.by_plan) >= _REUSED_LIMIT:
            store.by_plan.clear()
        return store.by_plan

    def best_alone(self, app_index: int) -> float:
        """The rate the app reaches alone in the space on its best template (0: none)."""
        templates = self.templates(app_index)
        if not len(templates):
            return 0.0
        b, cap = templates.bottleneck, templates.cap
        with np.errstate(divide="ignore"):
            alone = np.where(b > 0, np.minimum(cap, 1.0 / np.where(b > 0, b, 1.0)), cap)
        return float(alone.max())

    def _instantiate(self, template: Template, chosen: Sequence[str]) -> Candidate:
        p = self.problem
        it = iter(chosen)
        devices = [
            template.source if slot == SOURCE_SLOT else template.target if slot == TARGET_SLOT else next(it)
            for slot in template.slots
        ]
        known = self._stages
        stages = tuple(
            known.get((d, f, last)) or known.setdefault((d, f, last), Stage(d, f, last))
            for d, (f, last) in zip(devices, template.ranges, strict=True)
        )
        key = (template.source, stages, template.target)
        hit = p.cached_candidate(template.app_index, key)
        if hit is not None:
            return hit
        if not p.plain_links:
            # Pair links, relays and shared air time depend on the devices, not only on
            # their classes: the template's per-slot work is an estimate, the cost model exact.
            return p.candidate(template.app_index, template.source, stages, template.target)
        source = template.source
        rows: list[tuple[str, Work, PartFigures | None]] = [
            *zip(devices, template.slot_work, template.slot_parts, strict=True),
            *((d, w, None) for d, w in template.endpoint_work),
        ]
        # The source first, as frame_cost lists it (a stable partition; it usually is first).
        if rows[0][0] != source or any(row[0] == source for row in rows[1:]):
            rows = [row for row in rows if row[0] == source] + [row for row in rows if row[0] != source]
        power = self._power
        work: list[DeviceWork] = []
        energy = 0.0
        for device, (a, c, r), part in rows:
            watts = power.get(device)
            if watts is None:
                board = p.by_id[device].board
                watts = power[device] = (
                    board.cnn_active_power_w, board.cpu_active_power_w, p.cost.params.radio_active_power_w
                )
            work.append(DeviceWork(device, a, c, r, None if part is None else PartitionFootprint._make(part)))
            energy += a * watts[0] + c * watts[1] + r * watts[2]
        cap, reason = self._source_cap(template.app_index, source)
        cost = FrameCost(tuple(work), template.latency_s, energy, cap, reason)
        return p.remember_candidate(Candidate(template.app_index, template.source, stages, template.target, cost))

    def _source_cap(self, app_index: int, source: str) -> tuple[float, str]:
        hit = self._caps.get((app_index, source))
        if hit is None:
            spec = self.problem.apps[app_index].spec
            hit = self._caps[(app_index, source)] = self.problem.cost.source_cap(
                self.problem.by_id[source], spec.source_type, spec.max_rate_hz
            )
        return hit

    def count_assignments(self, template: Template) -> int:
        """How many concrete candidates the template expands to."""
        pools = self.open_slots(template)
        total = 1
        for cls in set(template.slots):
            if cls >= 0:
                total *= math.perm(len(pools[cls]), template.slots.count(cls))
        return total

    def assignments(self, template: Template) -> Iterator[tuple[str, ...]]:
        """Every injective choice of devices for the template's class slots."""
        positions = [s for s in template.slots if s >= 0]
        if not positions:
            yield ()
            return
        pools = self.open_slots(template)
        classes = sorted(set(positions))
        per_class = [list(itertools.permutations(pools[c], positions.count(c))) for c in classes]
        for combo in itertools.product(*per_class):
            iters = {c: iter(devs) for c, devs in zip(classes, combo, strict=True)}
            yield tuple(next(iters[c]) for c in positions)

    def ranked_members(self, device_load: Mapping[str, float]) -> list[list[str]]:
        """Per class, its devices from least to most loaded (ties: space order)."""
        return [
            sorted(c.members, key=lambda d: (device_load.get(d, 0.0), self._order[d])) for c in self.problem.classes
        ]

    def choose_devices(self, template: Template, device_load: Mapping[str, float]) -> tuple[str, ...]:
        """For each class slot, the least-loaded free device of its class (ties: space order)."""
        pools = self.open_slots(template)
        chosen: list[str] = []
        for slot in template.slots:
            if slot < 0:
                continue
            best = ""
            best_key = (math.inf, 0)
            for d in pools[slot]:
                if d in chosen:
                    continue
                key = (device_load.get(d, 0.0), self._order[d])
                if key < best_key:
                    best, best_key = d, key
            chosen.append(best)
        return tuple(chosen)

    def least_loaded(self, template: Template, device_load: Mapping[str, float]) -> Candidate:
        """Instantiate with, for each class slot, the least-loaded free device of its class."""
        return self.instantiate(template, self.choose_devices(template, device_load))

    def concrete(self, app_index: int, *, prune: bool = True, limit: int = 0) -> list[Candidate]:
        """All concrete candidates of the app (``limit`` > 0 stops early), dominated ones pruned."""
        out: dict[tuple[str, tuple[Stage, ...], str], Candidate] = {}
        for template in self.templates(app_index):
            for chosen in self.assignments(template):
                cand = self.instantiate(template, chosen)
                out.setdefault(cand.key, cand)
                if limit and len(out) >= limit:
                    break
            if limit and len(out) >= limit:
                break
        cands = list(out.values())
        return prune_dominated(cands, self.problem) if prune else cands


def _features(cand: Candidate, index: Mapping[str, int], media: Mapping[str, int]) -> np.ndarray:
    """Per device: accel, cpu, radio, weight, bias, layers, data need, reload; per medium: air time
    (lower = better)."""
    v = np.zeros(len(index) * _FEATURES + len(media))
    for name, seconds in cand.cost.shared:
        v[len(index) * _FEATURES + media[name]] += seconds
    for w in cand.cost.work:
        base = index[w.device_id] * _FEATURES
        v[base : base + 3] = (w.accel_s, w.cpu_s, w.radio_s)
        if w.partition is not None:
            part = w.partition
            v[base + 3 : base + 8] = (
                part.weight_bytes,
                part.bias_bytes,
                part.layers,
                part.peak_data_bytes + part.frame_buffer_bytes,
                part.reload_s,
            )
    return v


def prune_dominated(cands: Sequence[Candidate], problem: PlanningProblem) -> list[Candidate]:
    """Drop candidates another one on the same devices beats or equals on every charge.

    A candidate that uses no more of any resource, weight/bias/layer/data memory and
    reload time on each of its devices, with at least the same rate cap, is never worse in
    a joint plan (every joint term is monotone in those quantities). Only candidates on
    the same set of devices are compared (that is where cut variants compete), which keeps
    pruning linear in the number of device sets.
    """
    groups: dict[tuple[str, ...], list[Candidate]] = {}
    for cand in cands:
        groups.setdefault(tuple(sorted(cand.devices)), []).append(cand)
    kept: list[Candidate] = []
    for devices, members in groups.items():
        if len(members) < 2:
            kept.extend(members)
            continue
        index = {d: i for i, d in enumerate(devices)}
        media: dict[str, int] = {}
        for c in members:
            for name, _ in c.cost.shared:
                media.setdefault(name, len(media))
        feats = np.stack([_features(c, index, media) for c in members])
        caps = np.array([c.cost.cap_hz for c in members])
        # Sorted so that a dominating candidate always comes before those it dominates.
        order = np.lexsort((np.array([c.cost.latency_s for c in members]), -caps, feats.sum(axis=1)))
        mine: list[int] = []
        for i in order:
            if mine:
                k = np.array(mine)
                if (np.all(feats[k] <= feats[i] + 1e-15, axis=1) & (caps[k] >= caps[i])).any():
                    continue
            mine.append(int(i))
        kept.extend(members[i] for i in sorted(mine))
    return kept
