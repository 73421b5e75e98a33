"""Baselines from the literature, re-implemented on Synergy's cost model (DESIGN.md §5).

Every baseline places each app by its own rule and returns a :class:`Selection`; the
registry evaluates it with the same joint model as our methods, so every comparison is on
equal terms. Baselines do not overlap CPU, accelerator and radio work across frames (that
is one of Synergy's contributions), hence ``allow_parallel=False``.

Baselines are meant to be reasonable, not strawmen: where a rule leaves a choice between
equally good devices (two identical boards, two cameras), each app takes the one its
predecessors (in arrival order) left least loaded, not the first one in the space file —
otherwise every camera app would pile onto one board.

=====================  ======================================================================
name                   rule
=====================  ======================================================================
source_only            the whole model on the app's source device
best_single_device     the whole model on the one device where the app alone runs fastest
neurosurgeon           one split: a head on the source device and the tail on one other
                       device (or all on one of them), the cut of lowest latency
pipeedge               per app, the device sequence and cuts of minimum bottleneck stage
                       (compute + communication), ignoring the other apps
exo                    layers split over all devices in proportion to their weight memory
greedy_first_fit       apps in arrival order; layers packed into the devices' remaining
                       weight memory, source first, then the devices in order
random                 a seeded, uniformly drawn feasible candidate per app
spread                 (for integration tests) the model split evenly by layer count over
                       up to 3 distinct devices, source first and target last
=====================  ======================================================================
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from synergy.planning.candidates import SOURCE_SLOT, CandidateGenerator
from synergy.planning.problem import Candidate, PlanningProblem, Selection
from synergy.planning.search import resource_loads, standalone_rate
from synergy.types import Stage

__all__ = [
    "SPREAD_MAX_DEVICES",
    "best_single_device",
    "exo",
    "greedy_first_fit",
    "neurosurgeon",
    "pipeedge",
    "random_plan",
    "source_only",
    "spread",
]

#: The "spread" method splits a model over at most this many devices.
SPREAD_MAX_DEVICES = 3


def _rate(cand: Candidate) -> float:
    """The candidate's rate alone in the space with serialized devices (no overlap)."""
    return standalone_rate(resource_loads(cand, False), cand.cost.cap_hz)


#: Device id -> busy fraction the apps placed so far put on it (each at its own rate alone).
DeviceLoad = dict[str, float]


def _load_of(cand: Candidate, load: Mapping[str, float]) -> float:
    """How much of the candidate's work lands on busy devices (busy fraction x seconds)."""
    return sum((load.get(w.device_id, 0.0) * (w.accel_s + w.cpu_s + w.radio_s) for w in cand.cost.work), 0.0)


def _add_load(cand: Candidate, load: DeviceLoad) -> None:
    rate = _rate(cand)
    for w in cand.cost.work:
        load[w.device_id] = load.get(w.device_id, 0.0) + rate * (w.accel_s + w.cpu_s + w.radio_s)


def _pick(cands: Sequence[Candidate], load: Mapping[str, float]) -> Candidate | None:
    """The fastest alone, then the lowest latency, then the least-loaded devices."""
    return max(cands, key=lambda c: (_rate(c), -c.cost.latency_s, -_load_of(c, load)), default=None)


def _target_for(problem: PlanningProblem, i: int, near: str) -> str:
    """The app's target: ``near`` itself when it has the output, else the first target."""
    return near if near in problem.targets[i] else problem.targets[i][0]


def _whole(problem: PlanningProblem, i: int, device: str, source: str, target: str) -> Candidate | None:
    last = len(problem.apps[i].model.layers) - 1
    if not problem.fits(i, device, 0, last):
        return None
    return problem.candidate(i, source, [Stage(device, 0, last)], target)


def _result(problem: PlanningProblem, picks: dict[int, Candidate], reasons: dict[int, str]) -> Selection:
    chosen = tuple(picks.get(i) for i in range(len(problem.apps)))
    return Selection(chosen, allow_parallel=False, reasons=reasons)


def _each_app(
    problem: PlanningProblem,
    choose: Callable[[int, DeviceLoad], Candidate | str],
    *,
    allow_parallel: bool = False,
) -> Selection:
    """Run ``choose`` for every app (in arrival order) that has no problem of its own.

    ``choose`` gets the app and the load the earlier apps put on the devices (for breaking
    ties), and returns the app's candidate, or a string naming why the method cannot place it.
    """
    picks: dict[int, Candidate] = {}
    reasons: dict[int, str] = {}
    load: DeviceLoad = {}
    for i in range(len(problem.apps)):
        if problem.problems[i]:
            continue
        choice = choose(i, load)
        if isinstance(choice, str):
            reasons[i] = choice
        else:
            picks[i] = choice
            _add_load(choice, load)
    chosen = tuple(picks.get(i) for i in range(len(problem.apps)))
    return Selection(chosen, allow_parallel=allow_parallel, reasons=reasons)


def source_only(problem: PlanningProblem, gen: CandidateGenerator) -> Selection:
    def choose(i: int, load: DeviceLoad) -> Candidate | str:
        cands = [
            c for s in problem.sources[i] if (c := _whole(problem, i, s, s, _target_for(problem, i, s))) is not None
        ]
        best = _pick(cands, load)
        if best is not None:
            return best
        s = problem.sources[i][0]
        why = problem.cost.table(problem.apps[i].model, problem.by_id[s].board).whole_model_reason
        return f"source_only: the model does not fit its source {s!r}: {why}"

    return _each_app(problem, choose)


def best_single_device(problem: PlanningProblem, gen: CandidateGenerator) -> Selection:
    order = {d.device_id: k for k, d in enumerate(problem.devices)}

    def choose(i: int, load: DeviceLoad) -> Candidate | str:
        # Devices of one class cost the same: of those that are neither the source nor the
        # target, only the least-loaded can win the tie-break, so only it is costed (on 32
        # devices this is most of the baseline's time).
        cands = []
        for s in problem.sources[i]:
            for t in problem.targets[i]:
                devices = [d for c in problem.classes for d in _class_choices(c.members, (s, t), load, order)]
                for d in sorted(devices, key=order.__getitem__):
                    if (c := _whole(problem, i, d, s, t)) is not None:
                        cands.append(c)
        best = _pick(cands, load)
        return "best_single_device: no single device holds the whole model" if best is None else best

    return _each_app(problem, choose)


def _class_choices(
    members: Sequence[str], ends: Sequence[str], load: Mapping[str, float], order: Mapping[str, int]
) -> list[str]:
    """The endpoints among ``members`` and the least-loaded other member (ties: space order)."""
    others = [m for m in members if m not in ends]
    kept = [m for m in members if m in ends]
    if others:
        kept.append(min(others, key=lambda m: (load.get(m, 0.0), order[m])))
    return kept


def neurosurgeon(problem: PlanningProblem, gen: CandidateGenerator) -> Selection:
    def choose(i: int, load: DeviceLoad) -> Candidate | str:
        # One device, or a head on the source and the tail on one other device; among the
        # templates' cuts is the latency-optimal one of every such pair (Neurosurgeon's
        # objective is the latency of one inference).
        templates = gen.templates(i)
        options = np.flatnonzero(
            (templates.lengths == 1) | ((templates.lengths == 2) & (templates.first_slot == SOURCE_SLOT))
        )
        if not len(options):
            return "neurosurgeon: no split between the source and one other device fits"
        ties = _fastest(templates.latency[options], templates.bottleneck[options], options)
        ties_ = [gen.least_loaded(templates[k], load) for k in ties]
        return min(ties_, key=lambda c: _load_of(c, load))

    return _each_app(problem, choose)


def _fastest(primary: NDArray[np.float64], secondary: NDArray[np.float64], numbers: NDArray[np.int64]) -> list[int]:
    """The ``numbers`` whose (primary, secondary) is least, in order."""
    best = primary.min()
    at_best = primary == best
    second = secondary[at_best].min()
    ties: list[int] = numbers[at_best & (secondary == second)].tolist()
    return ties


def pipeedge(problem: PlanningProblem, gen: CandidateGenerator) -> Selection:
    picks: dict[int, Candidate] = {}
    load: DeviceLoad = {}
    for i in range(len(problem.apps)):
        templates = gen.templates(i)
        if not templates:
            continue
        # Each app alone: the pipeline of least bottleneck stage (compute + communication on
        # each device), as if nothing else ran; among equal pipelines, the least-loaded devices.
        numbers = np.arange(len(templates))
        ties = [gen.least_loaded(templates[k], load) for k in _fastest(templates.serial, templates.latency, numbers)]
        picks[i] = min(ties, key=lambda c: _load_of(c, load))
        _add_load(picks[i], load)
    return _result(problem, picks, {})


def _proportional(problem: PlanningProblem, i: int, devices: Sequence[str]) -> list[Stage]:
    """Contiguous ranges whose weight shares follow the devices' weight-memory shares."""
    model = problem.apps[i].model
    caps = [problem.by_id[d].board.weight_bytes for d in devices]
    total_cap = sum(caps)
    weights = [max(layer.weight_bytes, 1) for layer in model.layers]
    total_w = sum(weights)
    bounds = list(itertools.accumulate(c / total_cap for c in caps))
    owner = []
    done = 0.0
    for w in weights:
        mid = (done + w / 2) / total_w
        owner.append(next(k for k, b in enumerate(bounds) if mid <= b + 1e-12))
        done += w
    stages: list[Stage] = []
    for k, group in itertools.groupby(range(len(weights)), key=lambda layer: owner[layer]):
        layers = list(group)
        stages.append(Stage(devices[k], layers[0], layers[-1]))
    return stages


def exo(problem: PlanningProblem, gen: CandidateGenerator) -> Selection:
    def choose(i: int, load: DeviceLoad) -> Candidate | str:
        s = problem.sources[i][0]
        t = _target_for(problem, i, s)
        middle = [d.device_id for d in problem.devices if d.device_id not in (s, t)]
        ring = [s, *middle] + ([t] if t != s else [])
        stages = _proportional(problem, i, ring)
        bad = [st for st in stages if not problem.fits(i, st.device_id, st.first_layer, st.last_layer)]
        if bad:
            st = bad[0]
            return (
                f"exo: layers {st.first_layer}-{st.last_layer} (memory-proportional share) do not fit {st.device_id!r}"
            )
        return problem.candidate(i, s, stages, t)

    return _each_app(problem, choose)


def greedy_first_fit(problem: PlanningProblem, gen: CandidateGenerator) -> Selection:
    picks: dict[int, Candidate] = {}
    reasons: dict[int, str] = {}
    free = {d.device_id: d.board.weight_bytes for d in problem.devices}
    for i in range(len(problem.apps)):  # arrival order
        if problem.problems[i]:
            continue
        model = problem.apps[i].model
        s = problem.sources[i][0]
        t = _target_for(problem, i, s)
        order = [s, *(d.device_id for d in problem.devices if d.device_id != s)]
        stages: list[Stage] = []
        first = 0
        n = len(model.layers)
        for device in order:
            if first >= n:
                break
            last = first - 1
            room = free[device]
            while last + 1 < n and problem.fits(i, device, first, last + 1):
                if sum(ly.weight_bytes for ly in model.layers[first : last + 2]) > room:
                    break
                last += 1
            if last >= first:
                stages.append(Stage(device, first, last))
                first = last + 1
        if first < n:
            reasons[i] = f"greedy_first_fit: no room left for layers {first}-{n - 1} in the devices' weight memory"
            continue
        for st in stages:
            free[st.device_id] -= sum(ly.weight_bytes for ly in model.layers[st.first_layer : st.last_layer + 1])
        picks[i] = problem.candidate(i, s, stages, t)
    return _result(problem, picks, reasons)


def random_plan(problem: PlanningProblem, gen: CandidateGenerator, *, seed: int = 0) -> Selection:
    rng = random.Random(seed)
    picks: dict[int, Candidate] = {}
    for i in range(len(problem.apps)):
        templates = gen.templates(i)
        if not templates:
            continue
        template = rng.choice(templates)
        pools = gen.open_slots(template)
        chosen: list[str] = []
        for slot in template.slots:
            if slot >= 0:
                chosen.append(rng.choice([d for d in pools[slot] if d not in chosen]))
        picks[i] = gen.instantiate(template, chosen)
    return _result(problem, picks, {})


def spread(problem: PlanningProblem, gen: CandidateGenerator) -> Selection:
    def choose(i: int, load: DeviceLoad) -> Candidate | str:
        found = _spread_one(problem, i, len(problem.apps[i].model.layers))
        return "spread: no even split over 1-3 devices fits their boards" if found is None else found

    return _each_app(problem, choose, allow_parallel=True)


def _even(n_layers: int, parts: int) -> list[tuple[int, int]]:
    edges = [round(n_layers * k / parts) for k in range(parts + 1)]
    return [(edges[k], edges[k + 1] - 1) for k in range(parts)]


def _spread_one(problem: PlanningProblem, i: int, n_layers: int) -> Candidate | None:
    most = min(SPREAD_MAX_DEVICES, n_layers, len(problem.devices))
    for parts in range(most, 0, -1):
        ranges = _even(n_layers, parts)
        for s in problem.sources[i]:
            for t in problem.targets[i]:
                # Preference order: the source, the target, then the others in space order;
                # combinations come out in that order, so those holding s and t come first.
                preferred = [s] + ([t] if t != s else [])
                preferred += [d.device_id for d in problem.devices if d.device_id not in (s, t)]
                for combo in itertools.combinations(preferred, parts):
                    middle = [d for d in combo if d not in (s, t)]
                    devices = ([s] if s in combo else []) + middle + ([t] if t in combo and t != s else [])
                    if all(problem.fits(i, d, f, last) for d, (f, last) in zip(devices, ranges, strict=True)):
                        stages = [Stage(d, f, last) for d, (f, last) in zip(devices, ranges, strict=True)]
                        return problem.candidate(i, s, stages, t)
    return None
