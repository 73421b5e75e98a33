"""Selecting one candidate per app: the objective, and the exact branch and bound.

DESIGN.md §5 (2, 3). Every method maximises the same objective, the system throughput of
the joint plan as :func:`~synergy.planning.throughput.evaluate` computes it (shared weight
memory, parallelization, max-min fair rates), ties broken by the lower total latency
(:func:`score`). The fast method lives in :mod:`.fast`.

:func:`exact_search` is a depth-first branch and bound over the concrete candidates of every
app (dominated ones pruned). The bound relaxes the joint plan to one resource at a time (a
fractional knapsack of the apps' loads on it, each app capped by its own best rate);
identical unused devices are interchangeable, so only the first of them is tried. It proves
optimality (``optimal=True``) unless it runs out of its node budget.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from synergy.planning.candidates import CandidateGenerator
from synergy.planning.objectives import objective_score, throughput_level
from synergy.planning.problem import Candidate, PlanningProblem, Selection
from synergy.planning.throughput import RESOURCE_KINDS, SERIAL_RESOURCE, throughput

__all__ = [
    "DEFAULT_MAX_CANDIDATES",
    "DEFAULT_NODE_BUDGET",
    "Score",
    "better",
    "exact_search",
    "resource_loads",
    "score",
    "standalone_rate",
]

#: Branches (candidates bounded or explored) before the exact method gives up proving
#: optimality.
DEFAULT_NODE_BUDGET = 500_000
#: Concrete candidates of one app above which the exact method does not even start.
DEFAULT_MAX_CANDIDATES = 5_000
#: Relative improvement that counts (below it, floating-point noise).
_IMPROVEMENT = 1e-9

#: Compared lexicographically, bigger is better (:func:`better`).
Score = tuple[float, ...]


def score(problem: PlanningProblem, chosen: Sequence[Candidate], allow_parallel: bool) -> Score:
    """The problem's objective (:mod:`.objectives`); without one, (throughput, -total latency)."""
    if problem.goal is not None:
        return objective_score(problem.goal, problem, chosen, allow_parallel)
    if not chosen:
        return (0.0, 0.0)
    total, latency = throughput([c.cost for c in chosen], problem.by_id, allow_parallel=allow_parallel)
    return (total, -latency)


def better(a: Score, b: Score) -> bool:
    """Whether ``a`` beats ``b``: the first element that differs beyond noise decides."""
    for x, y in zip(a, b, strict=False):
        if x == y:
            continue
        slack = _IMPROVEMENT * max(abs(x), abs(y)) + 1e-12 if math.isfinite(x) and math.isfinite(y) else 0.0
        if x > y + slack:
            return True
        if x < y - slack:
            return False
    return False


def _prune_level(problem: PlanningProblem, incumbent: Score) -> float:
    """The weighted throughput a branch's bound must beat (-inf: no pruning is sound)."""
    if problem.goal is None:
        return incumbent[0]
    level = throughput_level(problem.goal, incumbent)
    return -math.inf if level is None else level


def resource_loads(cand: Candidate, allow_parallel: bool) -> dict[str, float]:
    """A candidate's busy seconds per resource (reloads excluded: a lower bound)."""
    out: dict[str, float] = {}
    for w in cand.cost.work:
        if allow_parallel:
            for kind, s in zip(RESOURCE_KINDS, (w.accel_s, w.cpu_s, w.radio_s), strict=True):
                if s > 0:
                    out[f"{w.device_id}.{kind}"] = s
        else:
            out[f"{w.device_id}.{SERIAL_RESOURCE}"] = w.accel_s + w.cpu_s + w.radio_s
    for name, seconds in cand.cost.shared:
        out[name] = out.get(name, 0.0) + seconds
    return out


def standalone_rate(loads: Mapping[str, float], cap: float) -> float:
    """The rate a candidate reaches with the whole space to itself."""
    peak = max(loads.values(), default=0.0)
    return min(cap, 1.0 / peak) if peak > 0 else cap


# -- exact ---------------------------------------------------------------------------------


@dataclass
class _Node:
    budget: int
    nodes: int = 0
    exhausted: bool = False


def _symmetry_groups(problem: PlanningProblem) -> dict[str, tuple[str, ...]]:
    """Devices interchangeable in every respect: same class, sensors, outputs and roles."""
    pinned = {a.spec.source_device for a in problem.apps} | {a.spec.target_device for a in problem.apps}
    groups: dict[tuple[object, ...], list[str]] = {}
    for d in problem.devices:
        roles = tuple(
            (d.device_id in problem.sources[i], d.device_id in problem.targets[i]) for i in range(len(problem.apps))
        )
        key: tuple[object, ...] = (
            problem.class_of[d.device_id],
            d.sensors,
            d.outputs,
            roles,
            d.device_id if d.device_id in pinned else "",
        )
        groups.setdefault(key, []).append(d.device_id)
    return {m: tuple(g) for g in groups.values() for m in g}


def _best_seed(
    problem: PlanningProblem, seeds: Sequence[Selection], allow_parallel: bool, n: int
) -> Selection:
    best: tuple[Score, tuple[Candidate | None, ...]] = ((-math.inf,), (None,) * n)
    for seed in seeds:
        s = score(problem, [c for c in seed.chosen if c is not None], allow_parallel)
        if better(s, best[0]):
            best = (s, seed.chosen)
    return Selection(best[1], allow_parallel=allow_parallel, optimal=False)


def exact_search(
    problem: PlanningProblem,
    gen: CandidateGenerator,
    *,
    allow_parallel: bool = True,
    node_budget: int = DEFAULT_NODE_BUDGET,
    seeds: Sequence[Selection] = (),
    max_candidates: int = DEFAULT_MAX_CANDIDATES,
) -> Selection:
    """Branch and bound over the apps' concrete candidates (plus the seeds' choices).

    A space where some app expands to more than ``max_candidates`` concrete candidates is
    too large to prove anything in reasonable time: the best seed is returned, not proven.
    """
    n = len(problem.apps)
    if any(sum(gen.count_assignments(t) for t in gen.templates(i)) > max_candidates for i in range(n)):
        return _best_seed(problem, seeds, allow_parallel, n)
    lists: list[list[Candidate]] = []
    for i in range(n):
        cands = gen.concrete(i)
        keys = {c.key for c in cands}
        for seed in seeds:
            extra = seed.chosen[i] if i < len(seed.chosen) else None
            if extra is not None and extra.key not in keys:
                cands.append(extra)
                keys.add(extra.key)
        lists.append(cands)
    placeable = [i for i in range(n) if lists[i]]
    names: dict[str, int] = {}
    loads: dict[int, list[tuple[int, float]]] = {}
    alone: dict[int, float] = {}
    weights = [a.spec.weight for a in problem.apps]
    # The one-resource relaxation below is in frames per second; scaled by the smallest
    # weight it stays a valid cut of the weighted sum.
    w_min = min(weights, default=1.0)
    for cs in lists:
        for c in cs:
            per = resource_loads(c, allow_parallel)
            loads[id(c)] = [(names.setdefault(r, len(names)), s) for r, s in per.items()]
            alone[id(c)] = standalone_rate(per, c.cost.cap_hz)
    for i in placeable:
        lists[i].sort(key=lambda c: (-alone[id(c)], c.cost.latency_s))
    # Most constrained apps first: fewer branches near the root.
    order = sorted(placeable, key=lambda i: len(lists[i]))
    best_alone = {i: weights[i] * alone[id(lists[i][0])] for i in placeable}
    groups = _symmetry_groups(problem)
    device_index = {d.device_id: k for k, d in enumerate(problem.devices)}

    incumbent: list[Candidate | None] = [None] * n
    incumbent_score: Score = (-math.inf,)
    seed_reasons: Mapping[int, str] = {}
    for seed in seeds:
        chosen = [c for c in seed.chosen if c is not None]
        s = score(problem, chosen, allow_parallel)
        if better(s, incumbent_score):
            incumbent_score, incumbent, seed_reasons = s, list(seed.chosen), seed.reasons

    state = _Node(node_budget)
    current: list[Candidate | None] = [None] * n
    # Per resource: (seconds per frame, own rate bound) of the assigned apps using it, and
    # how much the one-resource relaxation takes off the sum of the apps' own bounds.
    users: list[list[tuple[float, float]]] = [[] for _ in names]
    reduction = [0.0] * len(names)

    def knapsack_reduction(items: list[tuple[float, float]]) -> float:
        # Relax every resource but this one: apps on it share one busy second per second
        # (a fractional knapsack, lightest first); the others keep their own bounds.
        if len(items) < 2:
            return 0.0
        room, got, on = 1.0, 0.0, 0.0
        for secs, cap in sorted(items):
            on += cap
            if room > 0:
                x = min(cap, room / secs)
                got += x
                room -= x * secs
        return on - got

    def symmetric_ok(cand: Candidate, used: set[str]) -> bool:
        mine = {cand.source, cand.target, *cand.stage_devices}
        for d in mine:
            if d in used:
                continue
            for other in groups[d]:
                if device_index[other] >= device_index[d]:
                    break
                if other not in used and other not in mine:
                    return False  # an identical, lower-numbered unused device was skipped
        return True

    def dfs(depth: int, used: set[str], total: float) -> None:
        nonlocal incumbent, incumbent_score
        if depth == len(order):
            chosen = [c for c in current if c is not None]
            s = score(problem, chosen, allow_parallel)
            if better(s, incumbent_score):
                incumbent_score, incumbent = s, list(current)
            return
        app = order[depth]
        for cand in lists[app]:
            # Every examined branch counts against the budget, pruned or not: a node's
            # children are many, and bounding each of them is the work.
            state.nodes += 1
            if state.nodes >= state.budget:
                state.exhausted = True
                break
            if not symmetric_ok(cand, used):
                continue
            child_total = total - best_alone[app] + weights[app] * alone[id(cand)]
            level = _prune_level(problem, incumbent_score)
            if child_total <= level * (1 + _IMPROVEMENT):
                break  # sorted by own rate: every later candidate is bounded lower still
            cap = alone[id(cand)]
            saved = []
            for r, secs in loads[id(cand)]:
                saved.append(reduction[r])
                users[r].append((secs, cap))
                reduction[r] = knapsack_reduction(users[r])
            bound = child_total - w_min * max(reduction, default=0.0)
            if bound > level * (1 + _IMPROVEMENT):
                current[app] = cand
                dfs(depth + 1, used | {cand.source, cand.target, *cand.stage_devices}, child_total)
                current[app] = None
            for (r, _), old in zip(loads[id(cand)], saved, strict=True):
                users[r].pop()
                reduction[r] = old
            if state.exhausted:
                break
        # Leaving the app out: only ever best when every placement breaks a hard limit
        # (flash shared with the others), and then the bound lets this branch through.
        without = total - best_alone[app]
        if not state.exhausted and without > _prune_level(problem, incumbent_score) * (1 + _IMPROVEMENT):
            dfs(depth + 1, used, without)

    if order:
        dfs(0, set(), sum(best_alone.values(), 0.0))
    reasons: dict[int, str] = {}
    placed = [c for c in incumbent if c is not None]
    for i in placeable:
        if incumbent[i] is None:
            ev = problem.evaluate([*placed, lists[i][0]], allow_parallel=allow_parallel)
            reasons[i] = seed_reasons.get(i) or "; ".join(ev.overcommitted.values()) or "left out by the search"
    return Selection(tuple(incumbent), allow_parallel=allow_parallel, optimal=not state.exhausted, reasons=reasons)
