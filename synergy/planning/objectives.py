"""What a joint plan is judged by: the objectives a user may choose, floors and admission.

Every objective ranks plans by a tuple, compared lexicographically (bigger is better):

==============  ================================================================================
objective       score
==============  ================================================================================
``throughput``  (default) shortfall below minimums, shortfall below floors, then the weighted
                sum of rates, then the total latency
``fair``        shortfall below minimums, then the rates divided by the weights, sorted
                ascending (lexicographic max-min fairness), then the sum of rates
``latency``     shortfall below minimums and floors, then the worst app latency, then the
                weighted sum of rates
``energy``      shortfall below minimums and floors, then the power the apps draw at their
                required rates (minimum or floor), then the weighted sum of rates
==============  ================================================================================

A *shortfall* is the sum over apps of how far (as a fraction) each app's rate lies below its
target; an app left unplaced has rate 0. A plan that overflows some board's flash scores
below every other plan.

**No starvation.** Maximising the sum of rates alone may give one app a frame a minute so
that another runs faster. By default every app has a *floor*: :data:`FAIR_FLOOR_SHARE` of
its *max-min fair rate*, the rate it gets in the plan that the ``fair`` objective finds
(the planner runs that search first). So no app runs at less than half of what a fair
division of the space would give it, and the throughput objective then maximises the
weighted sum of rates above the floors. The floor is soft (the search gets as close as it
can); an app's own ``min_rate_hz`` is hard:

**Admission control** (:func:`admit`). An app whose ``min_rate_hz`` the plan does not give
it is taken out (the lowest weight first, then the latest to arrive), and the others are
re-evaluated; it waits, unplaced, with the reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from synergy.errors import InvalidArgument
from synergy.planning.problem import Candidate, PlanningProblem, Selection
from synergy.planning.throughput import rates

__all__ = [
    "DEFAULT_OBJECTIVE",
    "FAIR_FLOOR_SHARE",
    "OBJECTIVES",
    "Goal",
    "admit",
    "goal_for",
    "objective_score",
    "placed_scorer",
]

OBJECTIVES = ("throughput", "fair", "latency", "energy")
DEFAULT_OBJECTIVE = "throughput"
#: Share of an app's max-min fair rate below which the default objective counts it as
#: starved (a policy choice: at most half of its fair rate may be traded for throughput).
FAIR_FLOOR_SHARE = 0.5
#: Relative slack when checking a rate against a minimum (floating-point noise).
_RATE_SLACK = 1e-9


@dataclass(frozen=True)
class Goal:
    """An objective with every app's targets (per app index, frames per second)."""

    objective: str
    weights: tuple[float, ...]
    minimums: tuple[float, ...]
    floors: tuple[float, ...]
    #: The rate each app reaches alone on its best execution plan (0: it has none).
    alone: tuple[float, ...]
    #: The apps with a minimum, with a floor (what a shortfall sums over; the search scores
    #: thousands of plans with one goal).
    with_minimum: tuple[int, ...] = field(init=False, repr=False, compare=False)
    with_floor: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "with_minimum", tuple(i for i, t in enumerate(self.minimums) if t > 0))
        object.__setattr__(self, "with_floor", tuple(i for i, t in enumerate(self.floors) if t > 0))


def goal_for(
    problem: PlanningProblem,
    best_alone: Sequence[float],
    objective: str = DEFAULT_OBJECTIVE,
    fair_rates: Sequence[float] | None = None,
) -> Goal:
    """The goal of ``objective`` given each app's best rate alone and its max-min fair rate.

    Without ``fair_rates`` (e.g. for the fair search itself) no app has a floor.
    """
    if objective not in OBJECTIVES:
        raise InvalidArgument(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    n = len(problem.apps)
    floors = tuple(FAIR_FLOOR_SHARE * r for r in fair_rates) if fair_rates is not None else (0.0,) * n
    return Goal(
        objective=objective,
        weights=tuple(a.spec.weight for a in problem.apps),
        minimums=tuple(a.spec.min_rate_hz for a in problem.apps),
        floors=floors,
        alone=tuple(best_alone),
    )


def _shortfall(got: Sequence[float], targets: Sequence[float], at: Sequence[int]) -> float:
    """Summed relative shortfall of ``got`` below ``targets`` over the apps ``at`` (those
    with a target), in app order."""
    # (A list, not a generator: the search sums thousands of these; same order, same sum.)
    return sum([max(0.0, (targets[i] - got[i]) / targets[i]) for i in at], 0.0)


def objective_score(
    goal: Goal, problem: PlanningProblem, chosen: Sequence[Candidate], allow_parallel: bool
) -> tuple[float, ...]:
    """The goal's score of the placed candidates (the other apps count as rate 0)."""
    result = rates([c.cost for c in chosen], problem.by_id, allow_parallel=allow_parallel)
    return score_of_rates(goal, len(problem.apps), chosen, result)


def score_of_rates(
    goal: Goal,
    n: int,
    chosen: Sequence[Candidate],
    result: tuple[Sequence[float], Sequence[float], Sequence[float]] | None,
) -> tuple[float, ...]:
    """:func:`objective_score` from the placed candidates' (rates, latencies, energies) in
    their order (None: the plan overflows a board's flash)."""
    return score_of_placed_rates(goal, n, [c.app_index for c in chosen], result)


def score_of_placed_rates(
    goal: Goal,
    n: int,
    apps: Sequence[int],
    result: tuple[Sequence[float], Sequence[float], Sequence[float]] | None,
) -> tuple[float, ...]:
    """:func:`score_of_rates` with the placed apps given by index (the search scores many
    plans of the same apps)."""
    if result is None:
        return (-math.inf,)
    got_placed, latencies, energies = result
    got = [0.0] * n
    energy = [0.0] * n
    for i, r, e in zip(apps, got_placed, energies, strict=True):
        got[i] = r
        energy[i] = e
    hard = -_shortfall(got, goal.minimums, goal.with_minimum)
    weighted = sum([w * r for w, r in zip(goal.weights, got, strict=True)], 0.0)
    if goal.objective == "fair":
        levels = sorted(r / w for r, w in zip(got, goal.weights, strict=True))
        return (0.0, hard, *levels, sum(got, 0.0))
    soft = -_shortfall(got, goal.floors, goal.with_floor)
    if goal.objective == "latency":
        return (0.0, hard, soft, -max(latencies, default=0.0), weighted)
    if goal.objective == "energy":
        required = [max(m, f) for m, f in zip(goal.minimums, goal.floors, strict=True)]
        power = sum((r * e for r, e in zip(required, energy, strict=True)), 0.0)
        return (0.0, hard, soft, -power, weighted)
    return (0.0, hard, soft, weighted, -sum(latencies, 0.0))


def placed_scorer(
    goal: Goal, n: int, apps: Sequence[int]
) -> Callable[[tuple[Sequence[float], Sequence[float], Sequence[float]] | None], tuple[float, ...]]:
    """:func:`score_of_placed_rates` of ``goal``, ``n`` and ``apps`` as a function of the figures,
    with what depends only on which apps are placed where worked out once (a search scores tens
    of plans of the same apps at a time). The same sums in the same order: the same scores."""
    if goal.objective != "throughput":
        return lambda result: score_of_placed_rates(goal, n, apps, result)
    position = {i: j for j, i in enumerate(apps)}
    # Per app with a target: the target and where its rate is (-1: unplaced, rate 0), in app
    # order; the weighted sum over the placed apps in app order (an unplaced app adds 0.0, which
    # changes no sum).
    hard = [(goal.minimums[i], position.get(i, -1)) for i in goal.with_minimum]
    soft = [(goal.floors[i], position.get(i, -1)) for i in goal.with_floor]
    weighted = [(goal.weights[i], position[i]) for i in sorted(position)]

    def score(result: tuple[Sequence[float], Sequence[float], Sequence[float]] | None) -> tuple[float, ...]:
        if result is None:
            return (-math.inf,)
        got, latencies = result[0], result[1]
        return (
            0.0,
            -sum([max(0.0, (t - (got[j] if j >= 0 else 0.0)) / t) for t, j in hard], 0.0),
            -sum([max(0.0, (t - (got[j] if j >= 0 else 0.0)) / t) for t, j in soft], 0.0),
            sum([w * got[j] for w, j in weighted], 0.0),
            -sum(latencies, 0.0),
        )

    return score


def throughput_level(goal: Goal, score: tuple[float, ...]) -> float | None:
    """The weighted throughput of a plan that meets every minimum and floor, else None.

    Only then may the exact method prune by a bound on throughput alone.
    """
    if goal.objective != "throughput" or len(score) < 4 or score[0] != 0.0 or score[1] < 0 or score[2] < 0:
        return None
    return score[3]


def admit(problem: PlanningProblem, selection: Selection, goal: Goal) -> Selection:
    """Take out the apps whose ``min_rate_hz`` the plan does not meet, with the reason."""
    chosen = list(selection.chosen)
    reasons = dict(selection.reasons)
    for i, minimum in enumerate(goal.minimums):
        if minimum > 0 and chosen[i] is None and i not in reasons and 0 < goal.alone[i] < minimum:
            reasons[i] = (
                f"admission: needs {minimum:g} frames/s, reaches at most {goal.alone[i]:.3g} even alone in this space"
            )
    while True:
        placed = [c for c in chosen if c is not None]
        result = rates([c.cost for c in placed], problem.by_id, allow_parallel=selection.allow_parallel)
        if result is None:
            break
        short = [
            (goal.weights[c.app_index], -c.app_index, c.app_index, r)
            for c, r in zip(placed, result[0], strict=True)
            if r < goal.minimums[c.app_index] * (1 - _RATE_SLACK)
        ]
        if not short:
            break
        _, _, i, r = min(short)
        chosen[i] = None
        if goal.alone[i] < goal.minimums[i]:
            reasons[i] = (
                f"admission: needs {goal.minimums[i]:g} frames/s, reaches at most {goal.alone[i]:.3g} "
                "even alone in this space"
            )
        else:
            reasons[i] = (
                f"admission: needs {goal.minimums[i]:g} frames/s, the plan gives it {r:.3g} beside the other apps"
            )
    if chosen == list(selection.chosen) and reasons == dict(selection.reasons):
        return selection
    return Selection(tuple(chosen), selection.allow_parallel, selection.optimal, reasons)
