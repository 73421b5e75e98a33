"""The fast planning method "synergy": data-intensity order, greedy, local moves and pair moves.

DESIGN.md §5 (3). Maximises the same objective as the exact method (:func:`.search.score`):

1. **Order.** Apps that pull the most bytes per second from their sources go first: they
   have the fewest good places (a camera's frames should not cross a slow radio).
2. **Greedy.** Each app in turn scores, with the full joint objective, a shortlist of its
   templates instantiated on the least-loaded devices (:mod:`.shortlist` ranks all
   templates by the rate the app would get from the capacity the others leave, plus a
   ladder of slower ones) and keeps the best.
3. **Local improvement.** Re-place one app at a time given all the others (a longer
   shortlist, or all of its templates when it has few). When no single move helps, try
   pair moves: *swaps* (two apps that share a saturated resource change together, each
   from a short list ranked as if neither were placed) and, if those fail too,
   *re-insertions* (remove two apps, put one back as if the other did not exist, then the
   other). Last, *retreats*: all apps on a saturated resource are removed and put back
   one by one, each of them in turn first.
   Stops when nothing improves or the evaluation budget is spent.
4. **Seeds.** The baselines' plans are scored too; a seed that beats the result is improved
   the same way and kept if it stays better, so the method never ends below a baseline.

Everything is deterministic (no clocks, no randomness); the effort is bounded by the number
of full evaluations of the objective (:attr:`FastConfig.evaluation_budget`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from synergy.planning.batch import rates_with
from synergy.planning.candidates import CandidateGenerator
from synergy.planning.links import AIR
from synergy.planning.memory import sram_violation
from synergy.planning.objectives import placed_scorer, score_of_rates
from synergy.planning.problem import Candidate, PlanningProblem, Selection
from synergy.planning.search import Score, better, score
from synergy.planning.shortlist import Load, Ranker
from synergy.planning.throughput import RESOURCE_KINDS, rates, utilisation

__all__ = [
    "DEFAULT_EVALUATION_BUDGET",
    "DEFAULT_MOVE_SHORTLIST",
    "FastConfig",
    "DEFAULT_PASSES",
    "DEFAULT_SHORTLIST",
    "EXHAUSTIVE_TEMPLATES",
    "fast_search",
]

#: Candidates per app scored with the full objective while placing greedily.
DEFAULT_SHORTLIST = 8
#: Candidates per app scored with the full objective in one local move.
DEFAULT_MOVE_SHORTLIST = 24
#: An app with at most this many templates has all of them scored in a move.
EXHAUSTIVE_TEMPLATES = 48
#: Improvement passes (each: one move per app, then swaps).
DEFAULT_PASSES = 4
#: Candidates per app tried in a swap, by proxy and from the ladder (pairs: the square).
SWAP_SHORTLIST = 3
SWAP_LADDER_MAX = 3
#: Own-speed bands of the ladder grow by this factor; at most this many rungs.
LADDER_STEP = 1.5
LADDER_MAX = 12
#: Utilisation from which a resource counts as saturated (floating-point slack).
SATURATED = 1e-6
#: Full evaluations of the objective after which improvement stops (deterministic effort).
DEFAULT_EVALUATION_BUDGET = 650
#: Plans per app that leave a contested resource to others (a retreat tries them).
THROTTLED = 6
#: A retreating app's own rate must clear its floor by this much (sharing its other
#: resources costs it some of that rate).
FLOOR_MARGIN = 0.05
#: Evaluations the retreats (tried once, after the passes) may spend beyond that.
DEFAULT_RETREAT_BUDGET = 300


@dataclass(frozen=True)
class FastConfig:
    """Effort knobs of the fast method (the defaults are what ``synergy`` uses)."""

    shortlist: int = DEFAULT_SHORTLIST
    move_shortlist: int = DEFAULT_MOVE_SHORTLIST
    exhaustive_templates: int = EXHAUSTIVE_TEMPLATES
    swap_shortlist: int = SWAP_SHORTLIST
    ladder_step: float = LADDER_STEP
    ladder_max: int = LADDER_MAX
    swap_ladder_max: int = SWAP_LADDER_MAX
    passes: int = DEFAULT_PASSES
    evaluation_budget: int = DEFAULT_EVALUATION_BUDGET
    retreat_budget: int = DEFAULT_RETREAT_BUDGET
    throttled: int = THROTTLED


def _load(problem: PlanningProblem, chosen: Sequence[Candidate], allow_parallel: bool) -> Load:
    out = Load()
    if not chosen:
        return out
    parts: dict[str, list[float]] = {}
    for name, u in utilisation([c.cost for c in chosen], problem.by_id, allow_parallel=allow_parallel).items():
        device, kind = name.rsplit(".", 1)
        if kind == AIR:
            continue  # a shared medium, no device's own: the ranking proxy leaves it out
        slot = parts.setdefault(device, [0.0, 0.0, 0.0])
        if kind == "accelerator":
            slot[0] = u
        elif kind == "cpu":
            slot[1] = u
        elif kind == "radio":
            slot[2] = u
        else:
            slot[0] = slot[1] = slot[2] = u
            out.serial.add(device)
    out.util = {d: (v[0], v[1], v[2]) for d, v in parts.items()}
    out.device = {d: max(v) for d, v in parts.items()}
    return out


def _intensity(problem: PlanningProblem, i: int) -> float:
    """Bytes per second the app would pull from its source at its cap."""
    app = problem.apps[i]
    rates = [
        problem.cost.source_cap(problem.by_id[s], app.spec.source_type, app.spec.max_rate_hz)[0]
        for s in problem.sources[i]
    ]
    return app.model.input_bytes * max(rates, default=0.0)


class _Search:
    def __init__(
        self, problem: PlanningProblem, gen: CandidateGenerator, allow_parallel: bool, config: FastConfig
    ) -> None:
        self.problem = problem
        self.gen = gen
        self.allow_parallel = allow_parallel
        self.config = config
        self.evaluations = 0
        self.ranker = Ranker(gen)
        #: Why an app was left unplaced although it has candidates.
        self.reasons: dict[int, str] = {}
        self._scores: dict[tuple[int, ...], Score] = {}
        #: Loads by (parallel or not, the placed candidates' ids), read-only once made, and
        #: shortlists by (parallel or not, app, load by id, size, rungs, ladder step), with the
        #: load: shared by every search of the problem (kept by the generator, which also
        #: holds the candidates whose ids the keys are).
        self._loads: dict[tuple[bool, tuple[int, ...]], Load] = gen.search_loads
        self._shortlists: dict[tuple[object, ...], tuple[Load, list[Candidate]]] = gen.search_shortlists
        #: Placeable apps by data intensity, most intense first.
        self.order: list[int] = []
        self.retreated = False

    @property
    def spent(self) -> bool:
        return self.evaluations >= self.config.evaluation_budget

    def score(self, chosen: Sequence[Candidate | None]) -> Score:
        self.evaluations += 1
        # Moves, swaps and seeds revisit plans already scored (a candidate is one object
        # per key per problem, so identities name a plan); the budget still counts them.
        key = tuple(id(c) for c in chosen)
        hit = self._scores.get(key)
        if hit is None:
            placed = [c for c in chosen if c is not None]
            goal = self.problem.goal
            if goal is None:
                hit = score(self.problem, placed, self.allow_parallel)
            else:
                # The rates of a plan do not depend on the goal: the fair search and the main
                # one share them (objective_score is score_of_rates of these rates).
                shared = self.problem.evaluated
                rates_key = (self.allow_parallel, -1, key)
                if rates_key not in shared:
                    shared[rates_key] = rates([c.cost for c in placed], self.problem.by_id,
                                              allow_parallel=self.allow_parallel)
                hit = score_of_rates(goal, len(self.problem.apps), placed, shared[rates_key])
            self._scores[key] = hit
        return hit

    def score_many(self, chosen: Sequence[Candidate | None], app: int, cands: Sequence[Candidate]) -> list[Score]:
        """:meth:`score` of ``chosen`` with ``app`` replaced by each of ``cands``, at once.

        The plans share every other app, so :func:`~.batch.rates_with` scores them together.
        """
        self.evaluations += len(cands)
        ids = [id(c) for c in chosen]
        keys = [(*ids[:app], id(cand), *ids[app + 1 :]) for cand in cands]
        out = [self._scores.get(key) for key in keys]
        todo = [k for k, hit in enumerate(out) if hit is None]
        if todo:
            others = [c for j, c in enumerate(chosen) if j != app and c is not None]
            # Rates shared with the other searches of this problem: keyed by the app tried too,
            # as the batch's order of apps (the others, then it) is part of its arithmetic.
            shared = self.problem.evaluated
            rates_keys = [(self.allow_parallel, app, keys[k]) for k in todo]
            new = [k for k, rk in zip(todo, rates_keys, strict=True) if rk not in shared]
            if new:
                fresh = rates_with(
                    [c.cost for c in others], [cands[k].cost for k in new], self.problem.by_id,
                    allow_parallel=self.allow_parallel,
                )
                for k, result in zip(new, fresh, strict=True):
                    shared[(self.allow_parallel, app, keys[k])] = result
            got = [shared[rk] for rk in rates_keys]
            goal = self.problem.goal
            placed_apps = [*(c.app_index for c in others), app]
            scorer = placed_scorer(goal, len(self.problem.apps), placed_apps) if goal is not None else None
            for k, result in zip(todo, got, strict=True):
                if scorer is not None:
                    value = scorer(result)
                elif result is None:
                    placed = [*others, cands[k]]
                    value = (-math.inf, -sum((c.cost.latency_s for c in placed), 0.0))
                else:
                    value = (sum(result[0], 0.0), -sum(result[1], 0.0))
                out[k] = self._scores[keys[k]] = value
        return [hit for hit in out if hit is not None]

    def best_of(
        self, chosen: Sequence[Candidate | None], app: int, cands: Sequence[Candidate]
    ) -> tuple[Score, Candidate] | None:
        """The best of ``cands`` for ``app`` beside the others of ``chosen`` (first wins ties)."""
        best: tuple[Score, Candidate] | None = None
        for cand, s in zip(cands, self.score_many(chosen, app, cands), strict=True):
            if best is None or better(s, best[0]):
                best = (s, cand)
        return best

    def load_without(self, chosen: Sequence[Candidate | None], skip: Sequence[int]) -> Load:
        others = [c for j, c in enumerate(chosen) if j not in skip and c is not None]
        # Passes and pair moves ask again for the loads of placements they saw before.
        key = (self.allow_parallel, tuple(id(c) for c in others))
        hit = self._loads.get(key)
        if hit is None:
            hit = self._loads[key] = _load(self.problem, others, self.allow_parallel)
        return hit

    def shortlist(self, app: int, load: Load, size: int, ladder: int | None = None) -> list[Candidate]:
        """Proxy-ranked candidates then ladder rungs."""
        rungs = self.config.ladder_max if ladder is None else ladder
        # Passes revisit an app under a placement of the others they saw before (the same
        # load object, :meth:`load_without`); each entry holds its load, so its id stays its own.
        key = (self.allow_parallel, app, id(load), size, rungs, self.config.ladder_step)
        hit = self._shortlists.get(key)
        if hit is None or hit[0] is not load:
            top, ladder_part = self.ranker.rank(app, load, self.allow_parallel, size, rungs, self.config.ladder_step)
            hit = self._shortlists[key] = (load, top + ladder_part)
        return list(hit[1])

    def endpoint_variants(self, cand: Candidate | None) -> list[Candidate]:
        """The same stages from another source or to another target of the app.

        The proxy ranks whole templates, and among hundreds of them one that differs only in
        where the result is delivered rarely makes the shortlist; yet delivering to another
        display can free the radio a heavy app's input crosses.
        """
        if cand is None:
            return []
        p = self.problem
        i = cand.app_index
        profile = p.cost.profile(p.apps[i].model)
        out = []
        pairs = [(cand.source, t) for t in p.targets[i] if t != cand.target]
        pairs += [(s, cand.target) for s in p.sources[i] if s != cand.source]
        for source, target in pairs:
            if sram_violation(profile, source, cand.stages, target, p.by_id):
                continue
            out.append(p.candidate(i, source, cand.stages, target))
        return out

    def throttled(self, app: int, load: Load, resource: str) -> list[Candidate]:
        """Plans of the app that leave most of ``resource`` to others while reaching its floor."""
        goal = self.problem.goal
        floor = max(goal.floors[app], goal.minimums[app]) * (1 + FLOOR_MARGIN) if goal is not None else 0.0
        device, kind = resource.rsplit(".", 1)
        index = RESOURCE_KINDS.index(kind) if kind in RESOURCE_KINDS else -1
        return self.ranker.throttled(app, load, device, index, floor, self.config.throttled)

    def move_size(self, app: int) -> int:
        n = len(self.gen.templates(app))
        return n if n <= self.config.exhaustive_templates else self.config.move_shortlist

    def greedy(self, order: Sequence[int]) -> list[Candidate | None]:
        chosen: list[Candidate | None] = [None] * len(self.problem.apps)
        for i in order:
            load = self.load_without(chosen, ())
            best = self.best_of(chosen, i, self.shortlist(i, load, self.config.shortlist))
            if best is not None and math.isfinite(best[0][0]):
                chosen[i] = best[1]
            elif best is not None:
                # Every placement tried breaks a hard limit beside the apps placed before it.
                trial = list(chosen)
                trial[i] = best[1]
                ev = self.problem.evaluate([c for c in trial if c is not None], allow_parallel=self.allow_parallel)
                self.reasons[i] = "; ".join(ev.overcommitted.values())
        return chosen

    def improve(self, chosen: list[Candidate | None]) -> tuple[list[Candidate | None], Score]:
        best = self.score(chosen)
        # Apps left out by the greedy pass (every placement it tried broke a hard limit
        # beside the apps placed before them) move too: beside other placements they may fit.
        movable = [i for i in range(len(chosen)) if self.gen.templates(i)]
        for _ in range(self.config.passes):
            chosen, best, moved = self.moves(chosen, best, movable)
            swapped = False
            if not moved:
                chosen, best, swapped = self.swaps(chosen, best, movable)
                if not swapped:
                    chosen, best, swapped = self.reinsert(chosen, best, movable)
            if not (moved or swapped) or self.spent:
                break
        if not self.retreated:
            # Once per search, however the passes ended: retreats need all apps on a
            # resource to change together, which no pass above tries.
            self.retreated = True
            chosen, best, retreated = self.retreat(chosen, best, movable)
            if retreated:
                chosen, best, _ = self.moves(chosen, best, movable)
        return chosen, best

    def moves(
        self, chosen: list[Candidate | None], best: Score, movable: Sequence[int]
    ) -> tuple[list[Candidate | None], Score, bool]:
        """Re-place one app at a time given all the others."""
        improved = False
        for i in movable:
            if self.spent:
                break
            load = self.load_without(chosen, (i,))
            current = chosen[i]
            options = [
                c for c in (*self.shortlist(i, load, self.move_size(i)), *self.endpoint_variants(current))
                if c is not current
            ]
            found = self.best_of(chosen, i, options)
            if found is not None and better(found[0], best):
                best, improved = found[0], True
                chosen = list(chosen)
                chosen[i] = found[1]
        return chosen, best, improved

    def swaps(
        self, chosen: list[Candidate | None], best: Score, movable: Sequence[int]
    ) -> tuple[list[Candidate | None], Score, bool]:
        """Re-place two apps that share a saturated resource at once.

        Some gains need two apps to change together (e.g. a heavy app slows down on a
        resource of its own so that a light one can have the shared link); both get short
        shortlists computed as if neither were placed.
        """
        improved = False
        ev = self.problem.evaluate([c for c in chosen if c is not None], allow_parallel=self.allow_parallel)
        saturated = {name for name, u in ev.utilisation.items() if u >= 1.0 - SATURATED}
        uses: dict[int, set[str]] = {}
        for pos, i in enumerate(i for i, c in enumerate(chosen) if c is not None):
            uses[i] = set(ev.loads[pos]) & saturated
        size, rungs = self.config.swap_shortlist, self.config.swap_ladder_max
        for pos, a in enumerate(movable):
            for b in movable[pos + 1 :]:
                if self.spent:
                    return chosen, best, improved
                if not uses.get(a, set()) & uses.get(b, set()):
                    continue
                load = self.load_without(chosen, (a, b))
                list_a = self.shortlist(a, load, size, rungs)
                list_b = self.shortlist(b, load, size, rungs)
                for ca in list_a:
                    for cb in list_b:
                        if ca is chosen[a] and cb is chosen[b]:
                            continue
                        trial = list(chosen)
                        trial[a], trial[b] = ca, cb
                        s = self.score(trial)
                        if better(s, best):
                            chosen, best, improved = trial, s, True
        return chosen, best, improved

    def reinsert(
        self, chosen: list[Candidate | None], best: Score, movable: Sequence[int]
    ) -> tuple[list[Candidate | None], Score, bool]:
        """Ruin and recreate pairs: remove two apps, put one back, then the other.

        The first goes back as if the second did not exist (it may take what the second
        held); the second then picks from its shortlist and ladder given the first. Both
        orders are tried. This finds e.g. "the light app takes the heavy app's device and
        the heavy app retreats to a slow path of its own", which no single move can.
        """
        improved = False
        size, rungs = self.config.shortlist, self.config.ladder_max
        for pos, a in enumerate(movable):
            for b in movable[pos + 1 :]:
                for first, second in ((a, b), (b, a)):
                    if self.spent:
                        return chosen, best, improved
                    base = list(chosen)
                    base[first] = base[second] = None
                    load = self.load_without(base, ())
                    placed = self.best_of(base, first, self.shortlist(first, load, size, 0))
                    if placed is None:
                        continue
                    base[first] = placed[1]
                    load = self.load_without(base, ())
                    found = self.best_of(base, second, self.shortlist(second, load, size, rungs))
                    if found is not None and better(found[0], best):
                        best, improved = found[0], True
                        chosen = list(base)
                        chosen[second] = found[1]
        return chosen, best, improved


    def retreat(
        self, chosen: list[Candidate | None], best: Score, movable: Sequence[int]
    ) -> tuple[list[Candidate | None], Score, bool]:
        """Ruin and recreate every app on a saturated resource, one of them placed first.

        Rates are shared max-min fairly, so an app leaves a contested resource to the others
        only when something caps it lower: a slower plan of its own, or a second resource it
        shares with other slowed apps. Under the throughput objective the best plan often
        gives the app that needs the contested resource least all of it and the others just
        their floors (three camera apps on a ring's slow radio), which takes all of them
        changing at once: no single or pair move finds it. Here all the apps on the resource
        are removed; the winner goes back first as if alone, then the others one by one
        (in both orders of data intensity), each taking what scores best beside those already
        back, from its shortlist and ladder of slower plans.
        """
        goal = self.problem.goal
        if goal is not None and goal.objective != "throughput":
            return chosen, best, False
        ev = self.problem.evaluate([c for c in chosen if c is not None], allow_parallel=self.allow_parallel)
        saturated = sorted(name for name, u in ev.utilisation.items() if u >= 1.0 - SATURATED)
        uses: dict[int, Mapping[str, float]] = {}
        for pos, i in enumerate(i for i, c in enumerate(chosen) if c is not None):
            uses[i] = ev.loads[pos]
        improved = False
        # Its own allowance: reached last, it would otherwise find the budget spent.
        limit = self.evaluations + self.config.retreat_budget
        for resource in saturated:
            on = [i for i in movable if resource in uses.get(i, {})]
            if len(on) < 3:
                continue  # two apps: the pair moves (swaps, re-insertions) cover them
            for winner in on:
                rest = [j for j in self.order if j in on and j != winner]
                for others in (rest, rest[::-1]):
                    if self.evaluations >= limit:
                        return chosen, best, improved
                    trial = list(chosen)
                    for j in on:
                        trial[j] = None
                    for app in (winner, *others):
                        load = self.load_without(trial, ())
                        if app == winner:
                            options = self.shortlist(app, load, self.config.shortlist, 0)
                        else:
                            options = [
                                *self.shortlist(app, load, self.config.shortlist, self.config.ladder_max),
                                *self.throttled(app, load, resource),
                            ]
                        placed = self.best_of(trial, app, options)
                        if placed is not None:
                            trial[app] = placed[1]
                    s = self.score(trial)
                    if better(s, best):
                        chosen, best, improved = trial, s, True
        return chosen, best, improved


def fast_search(
    problem: PlanningProblem,
    gen: CandidateGenerator,
    *,
    allow_parallel: bool = True,
    joint: bool = True,
    seeds: Sequence[Selection] = (),
    config: FastConfig = FastConfig(),
) -> Selection:
    """Greedy in order of data intensity + local improvement; the best of it and the seeds.

    With ``joint=False`` (the ablation) every app takes its own best candidate as if it
    were alone: no load awareness, no improvement, no seeds.
    """
    n = len(problem.apps)
    placeable = [i for i in range(n) if gen.templates(i)]
    order = sorted(placeable, key=lambda i: -_intensity(problem, i))
    search = _Search(problem, gen, allow_parallel, config)
    search.order = order
    if not joint:
        chosen: list[Candidate | None] = [None] * n
        for i in order:
            chosen[i] = search.shortlist(i, Load(), 1, 0)[0]
        return Selection(tuple(chosen), allow_parallel=allow_parallel)
    chosen, best = search.improve(search.greedy(order))
    for seed in seeds:
        # A seed (e.g. a baseline's plan) fills the apps it could not place with ours (or,
        # when that breaks a hard limit, stays as it is); it is improved only when it
        # already beats what we have.
        filled = [s if s is not None else c for s, c in zip(seed.chosen, chosen, strict=True)]
        for start in (filled, list(seed.chosen)):
            if better(search.score(start), best):
                improved, s = search.improve(start)
                if better(s, best):
                    chosen, best = improved, s
                break
    reasons = {i: why for i, why in search.reasons.items() if chosen[i] is None and why}
    return Selection(tuple(chosen), allow_parallel=allow_parallel, reasons=reasons)
