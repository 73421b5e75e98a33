"""Planning methods by name: ours, the baselines, the ablations and a test helper.

``get_planner(name, **options)`` returns a :class:`MethodPlanner`, a
:data:`~synergy.planning.api.Planner` (``planner(devices, apps) -> JointPlan``) that also
offers :meth:`MethodPlanner.plan` with the evaluation and the optimality flag. Every
method runs on the same :class:`~synergy.planning.cost.CostModel`; a planner keeps its cost
model (and its per-model tables) across calls, and :meth:`MethodPlanner.calibrated` makes
one with the live coordinator's calibration factors that shares those tables.

Options (all methods accept all of them): ``seed`` (random baseline), ``calibration``
(device id -> factor), ``parameters`` (:class:`~synergy.planning.cost.CostParameters`),
``node_budget`` (exact), ``max_stages`` and ``max_endpoints`` (candidate space),
``fast`` (:class:`~synergy.planning.fast.FastConfig`, the fast method's effort),
``objective`` (``throughput`` by default, ``fair``, ``latency`` or ``energy``; see
:mod:`synergy.planning.objectives`). Every method's selection passes admission control
(:func:`~synergy.planning.objectives.admit`): an app whose ``min_rate_hz`` is not met waits,
unplaced, with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from synergy.errors import InvalidArgument, NotFound
from synergy.gc_pause import gc_paused
from synergy.planning import baselines
from synergy.planning.api import Planner, PlanningApp
from synergy.planning.candidates import CandidateGenerator
from synergy.planning.cost import CostModel, CostParameters
from synergy.planning.fast import FastConfig, fast_search
from synergy.planning.objectives import DEFAULT_OBJECTIVE, OBJECTIVES, Goal, admit, goal_for
from synergy.planning.problem import DEFAULT_MAX_ENDPOINTS, DEFAULT_MAX_STAGES, PlanningProblem, Selection
from synergy.planning.search import DEFAULT_MAX_CANDIDATES, DEFAULT_NODE_BUDGET, better, exact_search, score
from synergy.planning.throughput import Evaluation, rates
from synergy.types import DeviceSpec, JointPlan

__all__ = [
    "BASELINES",
    "METHODS",
    "MethodInfo",
    "MethodPlanner",
    "PlanOutcome",
    "PlanningOptions",
    "get_planner",
    "proof_statement",
]


@dataclass(frozen=True)
class MethodInfo:
    name: str
    #: One line for ``--list-methods``.
    doc: str
    #: "ours", "baseline", "ablation" or "testing".
    kind: str


@dataclass(frozen=True)
class PlanningOptions:
    seed: int = 0
    calibration: Mapping[str, float] = field(default_factory=dict)
    parameters: CostParameters = field(default_factory=CostParameters)
    node_budget: int = DEFAULT_NODE_BUDGET
    max_stages: int = DEFAULT_MAX_STAGES
    max_endpoints: int = DEFAULT_MAX_ENDPOINTS
    fast: FastConfig = field(default_factory=FastConfig)
    #: What every method maximises (:mod:`synergy.planning.objectives`).
    objective: str = DEFAULT_OBJECTIVE


@dataclass(frozen=True)
class PlanOutcome:
    """A method's joint plan, its predicted behaviour and whether it is proven optimal."""

    plan: JointPlan
    evaluation: Evaluation
    optimal: bool
    #: What the plan was judged by: the objective, every app's minimum and floor (by index).
    goal: Goal | None = None
    #: What the method proved about the plan, in words ("" for methods that prove nothing).
    proof: str = ""


#: Effort of the fair search that sets the floors: greedy placement and one pass of moves.
FAIR_PASS = FastConfig(passes=1, evaluation_budget=150)

_Method = Callable[[PlanningProblem, CandidateGenerator, PlanningOptions], Selection]


def _baseline(fn: Callable[[PlanningProblem, CandidateGenerator], Selection]) -> _Method:
    return lambda problem, gen, options: fn(problem, gen)


def _random(problem: PlanningProblem, gen: CandidateGenerator, options: PlanningOptions) -> Selection:
    return baselines.random_plan(problem, gen, seed=options.seed)


#: Baselines in the order reports list them.
BASELINES: Mapping[str, tuple[str, _Method]] = {
    "source_only": ("the whole model on the app's source device", _baseline(baselines.source_only)),
    "best_single_device": (
        "the whole model on the one device where the app alone runs fastest",
        _baseline(baselines.best_single_device),
    ),
    "neurosurgeon": (
        "one latency-optimal split between the source and one other device",
        _baseline(baselines.neurosurgeon),
    ),
    "pipeedge": (
        "per app, the min-bottleneck split over any devices, ignoring the other apps",
        _baseline(baselines.pipeedge),
    ),
    "exo": ("layers split over all devices in proportion to their weight memory", _baseline(baselines.exo)),
    "greedy_first_fit": (
        "apps in arrival order, layers packed into the devices' free weight memory",
        _baseline(baselines.greedy_first_fit),
    ),
    "random": ("a seeded random feasible candidate per app", _random),
}


def _seeds(problem: PlanningProblem, gen: CandidateGenerator, options: PlanningOptions) -> list[Selection]:
    # A baseline's rule may break an MCU memory limit; only what it could deploy is a seed.
    seeds = [problem.within_memory(method(problem, gen, options)) for _, method in BASELINES.values()]
    # The fair plan that set the floors meets every floor: with it as a seed, the search can
    # always end with no app below its floor.
    if problem.fair_selection is not None:
        seeds.append(problem.fair_selection)
    return seeds


#: Spaces of at most this many devices and apps also get a search with serialized devices:
#: a second start, cheap there, whose plan is sometimes a percent or two better.
SERIAL_RESTART_UP_TO = (4, 3)
#: ... and so do spaces beyond this many devices or apps: there the local search is least
#: reliable (random space r1-22, 9 devices and 8 apps: 119 frames/s from one start, 151 with
#: the second; the ablation without overlap alone found 148) and the planning time allowed
#: is 2 s, not 100 ms. In 120 random spaces no space in between gained from it (22 of them
#: had at most 4 devices and more apps: the same plans with one start, in about half the time).
SERIAL_RESTART_ABOVE = (8, 6)


def serial_restart(problem: PlanningProblem) -> bool:
    """Whether the fast method also runs a whole search with every device serialized."""
    devices, apps = len(problem.devices), len(problem.apps)
    small = devices <= SERIAL_RESTART_UP_TO[0] and apps <= SERIAL_RESTART_UP_TO[1]
    return small or devices > SERIAL_RESTART_ABOVE[0] or apps > SERIAL_RESTART_ABOVE[1]


def _synergy(problem: PlanningProblem, gen: CandidateGenerator, options: PlanningOptions) -> Selection:
    seeds = _seeds(problem, gen, options)
    found = fast_search(problem, gen, seeds=seeds, config=options.fast)
    # Overlapping a device's CPU, accelerator and radio speeds up each of its apps, but the
    # max-min fair shares it changes can lower the sum of rates: running the same plan with
    # every device serialized is a plan too, and so is the best serialized search.
    options_ = [found, Selection(found.chosen, False, found.optimal, found.reasons)]
    if serial_restart(problem):
        options_.append(fast_search(problem, gen, allow_parallel=False, seeds=seeds, config=options.fast))
    best = found
    best_score = score(problem, [c for c in found.chosen if c is not None], True)
    for option in options_[1:]:
        s = score(problem, [c for c in option.chosen if c is not None], option.allow_parallel)
        if better(s, best_score):
            best, best_score = option, s
    return best


def _exact(problem: PlanningProblem, gen: CandidateGenerator, options: PlanningOptions) -> Selection:
    seeds = _seeds(problem, gen, options)
    fast = fast_search(problem, gen, seeds=seeds, config=options.fast)
    return exact_search(problem, gen, node_budget=options.node_budget, seeds=[fast, *seeds])


def _no_joint(problem: PlanningProblem, gen: CandidateGenerator, options: PlanningOptions) -> Selection:
    return fast_search(problem, gen, joint=False)


def _no_parallel(problem: PlanningProblem, gen: CandidateGenerator, options: PlanningOptions) -> Selection:
    return fast_search(
        problem,
        gen,
        allow_parallel=False,
        seeds=_seeds(problem, gen, options),
        config=options.fast,
    )


def _spread(problem: PlanningProblem, gen: CandidateGenerator, options: PlanningOptions) -> Selection:
    return baselines.spread(problem, gen)


_IMPLEMENTATIONS: dict[str, tuple[MethodInfo, _Method]] = {
    "synergy": (
        MethodInfo("synergy", "fast joint planner: data-intensity order, greedy, local moves and pair moves", "ours"),
        _synergy,
    ),
    "exact": (
        MethodInfo("exact", "branch and bound over all candidates; proves optimality within a node budget", "ours"),
        _exact,
    ),
    **{name: (MethodInfo(name, doc, "baseline"), fn) for name, (doc, fn) in BASELINES.items()},
    "synergy_no_joint": (
        MethodInfo("synergy_no_joint", "each app takes its own best candidate, ignoring the others",
                   "ablation"),
        _no_joint,
    ),
    "synergy_no_parallel": (
        MethodInfo("synergy_no_parallel", "synergy without overlapping CPU, accelerator and radio work",
                   "ablation"),
        _no_parallel,
    ),
    "spread": (
        MethodInfo("spread", "split every model evenly over up to 3 devices (multi-device tests)", "testing"),
        _spread,
    ),
}

#: Every method by name, in report order.
METHODS: Mapping[str, MethodInfo] = {name: info for name, (info, _) in _IMPLEMENTATIONS.items()}


class MethodPlanner:
    """A named planning method with its options and cost model (a :data:`Planner`)."""

    def __init__(self, name: str, options: PlanningOptions, cost_model: CostModel | None = None) -> None:
        self.name = name
        self.options = options
        self._method = _IMPLEMENTATIONS[name][1]
        self.cost_model = cost_model or CostModel(options.parameters, options.calibration)

    def __call__(self, devices: Sequence[DeviceSpec], apps: Sequence[PlanningApp]) -> JointPlan:
        return self.plan(devices, apps).plan

    def plan(self, devices: Sequence[DeviceSpec], apps: Sequence[PlanningApp]) -> PlanOutcome:
        """Plan and also return the evaluation and whether the plan is proven optimal."""
        # A full collection in the middle of a plan walks every object of the process and
        # cost more than the plan (:mod:`synergy.gc_pause`).
        with gc_paused():
            return self._plan(devices, apps)

    def _plan(self, devices: Sequence[DeviceSpec], apps: Sequence[PlanningApp]) -> PlanOutcome:
        problem = PlanningProblem(
            devices,
            apps,
            self.cost_model,
            max_stages=self.options.max_stages,
            max_endpoints=self.options.max_endpoints,
        )
        gen = CandidateGenerator(problem)
        try:
            return self._plan_with(problem, gen)
        finally:
            problem.reuse = None  # the generator and the problem refer to each other

    def _plan_with(self, problem: PlanningProblem, gen: CandidateGenerator) -> PlanOutcome:
        alone = best_alone_rates(problem, gen)
        objective = self.options.objective
        fair_rates = None
        if objective != "fair" and METHODS[self.name].kind != "baseline":
            fair_rates = self._fair_rates(problem, gen, alone)
        goal = goal_for(problem, alone, objective, fair_rates)
        problem.goal = goal
        selection = admit(problem, self._method(problem, gen, self.options), goal)
        plan, evaluation = problem.joint_plan(self.name, selection)
        proof = ""
        if self.name == "exact":
            proof = proof_statement(problem, gen, selection.optimal, self.options.node_budget)
        return PlanOutcome(plan, evaluation, selection.optimal, goal, proof)

    def _fair_rates(self, problem: PlanningProblem, gen: CandidateGenerator, alone: Sequence[float]) -> list[float]:
        """Each app's rate in the max-min fair plan (the floors are shares of these).

        A floor is a soft target at half of this rate, so a short fair search (the greedy
        placement and one pass of moves, :data:`FAIR_PASS`) is enough; an app alone in the
        space has its best rate alone as its fair rate and needs no search at all.
        """
        placeable = [i for i in range(len(problem.apps)) if gen.templates(i)]
        if len(placeable) <= 1:
            return list(alone)
        problem.goal = goal_for(problem, alone, "fair")
        parallel = self.name != "synergy_no_parallel"
        fair = fast_search(problem, gen, allow_parallel=parallel, config=FAIR_PASS)
        problem.fair_selection = fair
        fair_rates = [0.0] * len(problem.apps)
        placed = [c for c in fair.chosen if c is not None]
        got = rates([c.cost for c in placed], problem.by_id, allow_parallel=fair.allow_parallel)
        for c, r in zip(placed, got[0] if got is not None else [0.0] * len(placed), strict=True):
            fair_rates[c.app_index] = r
        return fair_rates

    def calibrated(self, calibration: Mapping[str, float]) -> MethodPlanner:
        """The same method with new calibration factors (sharing the cached tables)."""
        options = PlanningOptions(**{**self.options.__dict__, "calibration": dict(calibration)})
        return MethodPlanner(self.name, options, self.cost_model.with_calibration(calibration))


def best_alone_rates(problem: PlanningProblem, gen: CandidateGenerator) -> list[float]:
    """Per app: the rate it reaches alone in the space on its best template (0: none)."""
    return [gen.best_alone(i) for i in range(len(problem.apps))]


def proof_statement(problem: PlanningProblem, gen: CandidateGenerator, optimal: bool, node_budget: int) -> str:
    """Precisely what the exact method's answer is optimal over (or that it is not proven)."""
    if not optimal:
        return (
            f"not proven: the search stopped at its node budget ({node_budget} branches) or an app has more "
            f"than {DEFAULT_MAX_CANDIDATES} concrete candidates; this is the best plan it found"
        )
    stages = max(
        (problem.stage_limit(i) for i in range(len(problem.apps)) if not problem.problems[i]), default=0
    )
    every = " (every stage count)" if stages >= len(problem.devices) else ""
    helpers = min(
        (
            len(gen.helper_classes(problem.stage_limit(i), gen.pairs(i)))
            for i in range(len(problem.apps))
            if not problem.problems[i]
        ),
        default=len(problem.classes),
    )
    limited = (
        f", the devices between source and target drawn from the {helpers} of {len(problem.classes)} device "
        "classes with the fastest links (at least one per board)"
        if helpers < len(problem.classes)
        else ""
    )
    links = (
        "; the cut points are chosen with each device's own link figures, the plans scored with the pair "
        "links, relays and shared air time"
        if not problem.plain_links
        else ""
    )
    return (
        f"optimal over every joint plan in which each app runs on at most {stages} of the {len(problem.devices)} "
        f"devices{every}, from one of its {problem.max_endpoints} fastest sources to one of its "
        f"{problem.max_endpoints} first targets, each device sequence cut at the points one of four rules "
        "chooses (least bottleneck with devices overlapped, least bottleneck serialized, least weight-memory "
        f"share, least latency), cuts that another beats on every resource left out{limited}{links}"
    )


def get_planner(name: str, **options: Any) -> MethodPlanner:
    """The planner called ``name``; unknown names raise NotFound listing the known ones."""
    if name not in _IMPLEMENTATIONS:
        raise NotFound(f"unknown planning method {name!r}; known: {', '.join(METHODS)}")
    known = set(PlanningOptions.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidArgument(f"unknown planner option(s) {unknown}; known: {sorted(known)}")
    objective = options.get("objective", DEFAULT_OBJECTIVE)
    if objective not in OBJECTIVES:
        raise InvalidArgument(f"unknown objective {objective!r}; known: {', '.join(OBJECTIVES)}")
    return MethodPlanner(name, PlanningOptions(**options))


def _check_planner_type(planner: MethodPlanner) -> Planner:
    return planner  # a MethodPlanner is a Planner (checked by mypy)
