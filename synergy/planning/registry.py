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
from synergy.planning import baselines
from synergy.planning.api import Planner, PlanningApp
from synergy.planning.candidates import CandidateGenerator
from synergy.planning.cost import CostModel, CostParameters
from synergy.planning.fast import FastConfig, fast_search
from synergy.planning.objectives import DEFAULT_OBJECTIVE, OBJECTIVES, admit, goal_for
from synergy.planning.problem import DEFAULT_MAX_ENDPOINTS, DEFAULT_MAX_STAGES, PlanningProblem, Selection
from synergy.planning.search import DEFAULT_NODE_BUDGET, exact_search
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
    return [problem.within_memory(method(problem, gen, options)) for _, method in BASELINES.values()]


def _synergy(problem: PlanningProblem, gen: CandidateGenerator, options: PlanningOptions) -> Selection:
    return fast_search(
        problem, gen, seeds=_seeds(problem, gen, options), config=options.fast
    )


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
        problem = PlanningProblem(
            devices,
            apps,
            self.cost_model,
            max_stages=self.options.max_stages,
            max_endpoints=self.options.max_endpoints,
        )
        gen = CandidateGenerator(problem)
        alone = best_alone_rates(problem, gen)
        objective = self.options.objective
        fair_rates = None
        if objective != "fair" and METHODS[self.name].kind != "baseline":
            # The floors are shares of the max-min fair rates: find the fair plan first.
            problem.goal = goal_for(problem, alone, "fair")
            parallel = self.name != "synergy_no_parallel"
            fair = fast_search(problem, gen, allow_parallel=parallel, config=self.options.fast)
            fair_rates = [0.0] * len(problem.apps)
            placed = [c for c in fair.chosen if c is not None]
            got = rates([c.cost for c in placed], problem.by_id, allow_parallel=fair.allow_parallel)
            for c, r in zip(placed, got[0] if got is not None else [0.0] * len(placed), strict=True):
                fair_rates[c.app_index] = r
        goal = goal_for(problem, alone, objective, fair_rates)
        problem.goal = goal
        selection = admit(problem, self._method(problem, gen, self.options), goal)
        plan, evaluation = problem.joint_plan(self.name, selection)
        return PlanOutcome(plan, evaluation, selection.optimal)

    def calibrated(self, calibration: Mapping[str, float]) -> MethodPlanner:
        """The same method with new calibration factors (sharing the cached tables)."""
        options = PlanningOptions(**{**self.options.__dict__, "calibration": dict(calibration)})
        return MethodPlanner(self.name, options, self.cost_model.with_calibration(calibration))


def best_alone_rates(problem: PlanningProblem, gen: CandidateGenerator) -> list[float]:
    """Per app: the rate it reaches alone in the space on its best template (0: none)."""
    return [
        max((min(t.cap_hz, 1.0 / t.bottleneck_s) if t.bottleneck_s > 0 else t.cap_hz for t in gen.templates(i)),
            default=0.0)
        for i in range(len(problem.apps))
    ]


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
