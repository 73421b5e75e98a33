"""The planner benchmark: every method on every workload, on the same cost model.

:func:`run_bench` plans each workload of :mod:`.workloads` with each method and records the
predicted system throughput, mean latency, average power and the planning time;
:func:`summarize` turns the rows into the figures ``synergy bench`` prints (Synergy's
throughput ratio over each baseline, latency / power change, the fast method's gap to the
exact optimum, planning-time percentiles by size). Writing files and the chart lives in
:mod:`.bench_report`.

Planning time is the median wall-clock time of ``planner.plan`` calls with warm caches, as in the
live coordinator, which re-plans the same models on the same kinds of devices: the
per-(model, board) fit tables are built once (reported as ``table_build_ms``) and the cuts
of each device-class sequence are solved on the first plan of a workload (that first plan
is reported separately as ``cold_ms``). The clock is passed in, so this module stays
testable without timing assumptions.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from synergy.hardware.analysis import analyze_model
from synergy.hardware.model import HardwareModel
from synergy.models.loader import load_model
from synergy.planning.cost import CostModel
from synergy.planning.objectives import DEFAULT_OBJECTIVE, OBJECTIVES
from synergy.planning.registry import BASELINES, MethodPlanner, PlanningOptions, PlanOutcome
from synergy.planning.workloads import MODEL_NAMES, Workload, make_workloads

__all__ = [
    "BenchResult",
    "BenchRow",
    "DEFAULT_METHODS",
    "OTHER_OBJECTIVES",
    "EXACT_NODE_BUDGET",
    "load_models",
    "run_bench",
    "summarize",
]

#: Methods the benchmark compares: ours, the exact optimum, baselines, ablations.
DEFAULT_METHODS = ("synergy", "exact", *BASELINES, "synergy_no_joint", "synergy_no_parallel")
#: The fast method is also run under each of the other objectives; its rows are named
#: ``synergy/<objective>`` and reported apart (what each objective trades for what).
OTHER_OBJECTIVES = tuple(o for o in OBJECTIVES if o != DEFAULT_OBJECTIVE)
#: Node budget of the exact method in the benchmark (it reports whether it finished).
EXACT_NODE_BUDGET = 200_000
QUICK_EXACT_NODE_BUDGET = 20_000
#: Timed runs per method and workload (the median is reported).
TIMING_REPEATS = 3
#: The exact method is only tried where the candidate space is small enough to matter.
EXACT_MAX_DEVICES = 8
#: A rate below this (frames per second) counts as starved in the fairness figures.
STARVED_HZ = 0.1
#: Relative difference in throughput that counts as "better" (below it: rounding).
_SLACK = 1e-6


@dataclass(frozen=True)
class BenchRow:
    workload: str
    size: str
    devices: int
    apps: int
    method: str
    throughput: float
    latency_ms: float
    power_w: float
    planning_ms: float
    placed: int
    optimal: bool
    bottleneck: str
    #: The slowest app's rate (an app left unplaced counts as 0).
    min_app_rate: float = math.nan
    #: Jain's fairness index of the app rates (1: all equal; 1/n: one app has everything).
    jain: float = math.nan
    #: The lowest rate / floor over apps with a floor (inf: no app has one).
    floor_ratio: float = math.inf
    #: Average power / system throughput, millijoules per inference (idle power included).
    energy_mj: float = math.nan
    #: What the method proved (the exact method), else "".
    proof: str = ""
    #: Sum over apps of how far (as a fraction) each rate lies below its floor in the
    #: default objective (half its max-min fair rate, as the fast method's goal sets it):
    #: 0 when no app is starved. The default objective ranks by this before throughput.
    shortfall: float = 0.0
    #: The slowest app's latency (ms): what the ``latency`` objective minimises.
    worst_latency_ms: float = math.nan


@dataclass
class BenchResult:
    rows: list[BenchRow] = field(default_factory=list)
    table_build_ms: float = 0.0
    #: Per workload: the fast method's first plan, which also solves the cuts of every
    #: device-class sequence of its models (memoised for every later plan).
    cold_ms: dict[str, float] = field(default_factory=dict)
    methods: tuple[str, ...] = ()
    workloads: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": [asdict(r) for r in self.rows],
            "table_build_ms": self.table_build_ms,
            "cold_ms": dict(self.cold_ms),
            "methods": list(self.methods),
            "workloads": list(self.workloads),
        }


def load_models(names: Iterable[str] = MODEL_NAMES) -> dict[str, HardwareModel]:
    """Zoo models through the model loader and the hardware analysis (cached by them)."""
    out: dict[str, HardwareModel] = {}
    for name in names:
        proto, display = load_model(name)
        out[name] = analyze_model(proto, display)
    return out


def run_bench(
    *,
    quick: bool = False,
    methods: Sequence[str] = DEFAULT_METHODS,
    models: Mapping[str, HardwareModel] | None = None,
    clock: Callable[[], float],
    progress: Callable[[str], None] = lambda _: None,
    workloads: Sequence[Workload] | None = None,
    node_budget: int | None = None,
    repeats: int = TIMING_REPEATS,
    exact_max_devices: int = EXACT_MAX_DEVICES,
    exact_max_stages: Callable[[Workload], int] | None = None,
    objectives: Sequence[str] = OTHER_OBJECTIVES,
) -> BenchResult:
    """Plan every workload with every method; ``clock()`` returns seconds (perf_counter).

    ``node_budget`` bounds the exact method (default: the bench's); ``exact_max_stages``
    gives it, per workload, a larger candidate space than the fast method's (by default
    the same, :data:`~synergy.planning.problem.DEFAULT_MAX_STAGES`). The fast method also
    plans under each of ``objectives`` (rows ``synergy/<objective>``).
    """
    models = models if models is not None else load_models()
    chosen = list(workloads) if workloads is not None else make_workloads(models)
    if quick:
        chosen = [w for w in chosen if w.quick]
    cost = CostModel()
    start = clock()
    for model in {id(m): m for m in models.values()}.values():
        for board in {id(d.board): d.board for w in chosen for d in w.devices}.values():
            cost.table(model, board)
    runs = [*((m, DEFAULT_OBJECTIVE) for m in methods), *(("synergy", o) for o in objectives)]
    result = BenchResult(
        table_build_ms=(clock() - start) * 1000,
        methods=tuple(m if o == DEFAULT_OBJECTIVE else f"{m}/{o}" for m, o in runs),
        workloads=tuple(w.name for w in chosen),
    )
    budget = node_budget if node_budget is not None else QUICK_EXACT_NODE_BUDGET if quick else EXACT_NODE_BUDGET
    for k, workload in enumerate(chosen, 1):
        progress(f"[{k}/{len(chosen)}] {workload.name}: {len(workload.devices)} devices, {len(workload.apps)} apps")
        t0 = clock()
        first = MethodPlanner("synergy", PlanningOptions(), cost).plan(workload.devices, workload.apps)
        result.cold_ms[workload.name] = (clock() - t0) * 1000
        # Every method is judged against the same floors: those of the default objective.
        floors = first.goal.floors if first.goal is not None else ()
        for method, objective in runs:
            if method == "exact" and len(workload.devices) > exact_max_devices:
                continue
            options = PlanningOptions(node_budget=budget, objective=objective)
            if method == "exact" and exact_max_stages is not None:
                options = PlanningOptions(node_budget=budget, max_stages=exact_max_stages(workload))
            planner = MethodPlanner(method, options, cost)
            # The median of a few runs (planning is deterministic, the machine is not); the
            # exact method, slow by design, runs once.
            times = []
            for _ in range(1 if method == "exact" else max(1, repeats)):
                t0 = clock()
                outcome = planner.plan(workload.devices, workload.apps)
                times.append((clock() - t0) * 1000)
            elapsed = statistics.median(times)
            ev = outcome.evaluation
            latencies = ev.latencies_s
            fairness = _fairness(outcome, workload, floors)
            result.rows.append(
                BenchRow(
                    workload=workload.name,
                    size=workload.size,
                    devices=len(workload.devices),
                    apps=len(workload.apps),
                    method=method if objective == DEFAULT_OBJECTIVE else f"{method}/{objective}",
                    throughput=outcome.plan.system_throughput,
                    latency_ms=1000 * statistics.fmean(latencies) if latencies else math.nan,
                    power_w=ev.power_w,
                    planning_ms=elapsed,
                    placed=len(outcome.plan.plans),
                    optimal=outcome.optimal,
                    bottleneck=outcome.plan.bottleneck,
                    min_app_rate=fairness[0],
                    jain=fairness[1],
                    floor_ratio=fairness[2],
                    energy_mj=1000 * ev.power_w / ev.system_throughput if ev.system_throughput > 0 else math.nan,
                    proof=outcome.proof,
                    shortfall=fairness[3],
                    worst_latency_ms=1000 * max(latencies) if latencies else math.nan,
                )
            )
    return result


def _fairness(
    outcome: PlanOutcome, workload: Workload, floors: Sequence[float]
) -> tuple[float, float, float, float]:
    """(slowest app's rate, Jain's index of the rates, lowest rate / floor, shortfall) of a plan."""
    got = {p.app_id: p.predicted_rate_hz for p in outcome.plan.plans}
    rates = [got.get(a.spec.app_id, 0.0) for a in workload.apps]
    if not rates:
        return math.nan, math.nan, math.inf, 0.0
    squares = sum(r * r for r in rates)
    jain = sum(rates) ** 2 / (len(rates) * squares) if squares > 0 else math.nan
    ratios = [r / f for r, f in zip(rates, floors, strict=False) if f > 0]
    shortfall = sum(max(0.0, (f - r) / f) for r, f in zip(rates, floors, strict=False) if f > 0)
    return min(rates), jain, min(ratios, default=math.inf), shortfall


def _beats(a: BenchRow, b: BenchRow) -> bool:
    """Whether ``a`` is better than ``b`` under the default objective: less shortfall below
    the floors, then (at equal shortfall) more throughput."""
    if a.shortfall < b.shortfall - 1e-6:
        return True
    return a.shortfall <= b.shortfall + 1e-6 and a.throughput > b.throughput * (1 + _SLACK)


def _median(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.median(finite) if finite else math.nan


def _mean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else math.nan


def _geomean(values: Sequence[float]) -> float:
    finite = [v for v in values if math.isfinite(v) and v > 0]
    return statistics.geometric_mean(finite) if finite else math.nan


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(result: BenchResult, ours: str = "synergy") -> dict[str, Any]:
    """The headline figures (see the module docstring); NaN where nothing to compare."""
    by: dict[tuple[str, str], BenchRow] = {(r.workload, r.method): r for r in result.rows}
    workloads = result.workloads
    variants = [m for m in result.methods if m.startswith(f"{ours}/")]
    baselines = [m for m in result.methods if m not in (ours, "exact", *variants)]
    ratio_arith: dict[str, float] = {}
    ratio_geo: dict[str, float] = {}
    latency_change: dict[str, float] = {}
    power_change: dict[str, float] = {}
    energy_change: dict[str, float] = {}
    skipped: dict[str, int] = {}
    for base in baselines:
        ratios, lat, pw, energy = [], [], [], []
        skipped[base] = 0
        for w in workloads:
            a, b = by.get((w, ours)), by.get((w, base))
            if a is None or b is None:
                continue
            if b.throughput <= 0:
                skipped[base] += 1  # the baseline placed nothing: the ratio is unbounded
                continue
            ratios.append(a.throughput / b.throughput)
            if b.latency_ms > 0 and not math.isnan(a.latency_ms) and not math.isnan(b.latency_ms):
                lat.append(a.latency_ms / b.latency_ms)
            if b.power_w > 0:
                pw.append(a.power_w / b.power_w)
            if a.throughput > 0 and b.power_w > 0:
                energy.append((a.power_w / a.throughput) / (b.power_w / b.throughput))
        ratio_arith[base] = statistics.fmean(ratios) if ratios else math.nan
        ratio_geo[base] = statistics.geometric_mean(ratios) if ratios else math.nan
        # Ratios are multiplicative: their geometric mean is the change a typical workload sees.
        latency_change[base] = statistics.geometric_mean(lat) - 1 if lat else math.nan
        power_change[base] = statistics.geometric_mean(pw) - 1 if pw else math.nan
        energy_change[base] = statistics.geometric_mean(energy) - 1 if energy else math.nan
    literature = [m for m in baselines if m in BASELINES]
    min_vs_best = math.inf
    worst = ""
    for w in workloads:
        a = by.get((w, ours))
        rivals = [by[(w, m)].throughput for m in literature if (w, m) in by]
        if a is None or not rivals or max(rivals) <= 0:
            continue
        r = a.throughput / max(rivals)
        if r < min_vs_best:
            min_vs_best, worst = r, w
    gaps: list[float] = []
    exact_done = 0
    exact_tried = 0
    worst_gap = ""
    for w in workloads:
        a, e = by.get((w, ours)), by.get((w, "exact"))
        if a is None or e is None:
            continue
        exact_tried += 1
        if not e.optimal:
            continue
        exact_done += 1
        gap = max(0.0, (e.throughput - a.throughput) / e.throughput) if e.throughput > 0 else 0.0
        if not gaps or gap > max(gaps):
            worst_gap = w
        gaps.append(gap)
    below_best = sum(
        1
        for w in workloads
        if (a := by.get((w, ours))) is not None
        and any(_beats(by[(w, m)], a) for m in literature if (w, m) in by)
    )
    # Raw throughput beside it: a baseline that starves apps may carry more frames in total.
    more_frames = sum(
        1
        for w in workloads
        if (a := by.get((w, ours))) is not None
        and any(by[(w, m)].throughput > a.throughput * (1 + _SLACK) for m in literature if (w, m) in by)
    )
    ablations = [m for m in result.methods if m.startswith(f"{ours}_")]
    ablation_wins: dict[str, int] = {}
    ablation_max: dict[str, float] = {}
    for m in ablations:
        excess = [
            by[(w, m)].throughput / by[(w, ours)].throughput - 1
            for w in workloads
            if (w, m) in by and (w, ours) in by and by[(w, ours)].throughput > 0
        ]
        ablation_wins[m] = sum(
            1 for w in workloads if (w, m) in by and (w, ours) in by and _beats(by[(w, m)], by[(w, ours)])
        )
        ablation_max[m] = max(excess, default=math.nan)
    fairness: dict[str, dict[str, float]] = {}
    for m in [ours, *baselines]:
        rows = [by[(w, m)] for w in workloads if (w, m) in by]
        jains = [r.jain for r in rows if not math.isnan(r.jain)]
        mins = [r.min_app_rate for r in rows if not math.isnan(r.min_app_rate)]
        fairness[m] = {
            "jain_mean": statistics.fmean(jains) if jains else math.nan,
            "min_app_rate_median": statistics.median(mins) if mins else math.nan,
            "starved_workloads": sum(1 for x in mins if x < STARVED_HZ),
            "energy_mj_geomean": _geomean([r.energy_mj for r in rows]),
        }
    objectives: dict[str, dict[str, float]] = {}
    for m in [ours, *variants]:
        rows = [by[(w, m)] for w in workloads if (w, m) in by and (w, ours) in by]
        paired = [(r, by[(r.workload, ours)]) for r in rows]
        objectives[m] = {
            "throughput_vs_default_geomean": _geomean([r.throughput / d.throughput for r, d in paired
                                                       if d.throughput > 0]),
            "min_app_rate_median": _median([r.min_app_rate for r in rows]),
            "jain_mean": _mean([r.jain for r in rows]),
            "worst_latency_ms_median": _median([r.worst_latency_ms for r in rows]),
            "power_mw_median": _median([1000 * r.power_w for r in rows]),
            "energy_mj_geomean": _geomean([r.energy_mj for r in rows]),
        }
    floor_ratios = [by[(w, ours)].floor_ratio for w in workloads if (w, ours) in by]
    below_floor = sum(1 for x in floor_ratios if x < 1 - 1e-6)
    sizes = sorted({r.size for r in result.rows})
    p50 = {s: _percentile([r.planning_ms for r in result.rows if r.method == ours and r.size == s], 0.5)
           for s in sizes}
    p95 = {s: _percentile([r.planning_ms for r in result.rows if r.method == ours and r.size == s], 0.95)
           for s in sizes}
    cold_p95 = {
        s: _percentile([ms for w, ms in result.cold_ms.items() if by.get((w, ours)) and by[(w, ours)].size == s], 0.95)
        for s in sizes
    }
    exact_p95 = {
        s: _percentile([r.planning_ms for r in result.rows if r.method == "exact" and r.size == s], 0.95)
        for s in sizes
    }
    return {
        "method": ours,
        "workloads": len(workloads),
        "ratio_vs_baseline": ratio_arith,
        "ratio_vs_baseline_geomean": ratio_geo,
        "latency_change_vs_baseline": latency_change,
        "power_change_vs_baseline": power_change,
        "energy_per_inference_change_vs_baseline": energy_change,
        "baseline_placed_nothing": skipped,
        "min_ratio_vs_best_baseline": min_vs_best if min_vs_best < math.inf else math.nan,
        "min_ratio_workload": worst,
        "max_gap_to_exact": max(gaps) if gaps else math.nan,
        "mean_gap_to_exact": statistics.fmean(gaps) if gaps else math.nan,
        "exact_finished": exact_done,
        "exact_tried": exact_tried,
        "max_gap_workload": worst_gap,
        "below_best_baseline": below_best,
        "baseline_more_frames": more_frames,
        "ablation_wins": ablation_wins,
        "ablation_max_excess": ablation_max,
        "fairness": fairness,
        "objectives": objectives,
        "below_floor": below_floor,
        "min_floor_ratio": min(floor_ratios, default=math.inf),
        "planning_ms_p50": p50,
        "planning_ms_p95": p95,
        "planning_ms_cold_p95": cold_p95,
        "exact_planning_ms_p95": exact_p95,
        "table_build_ms": result.table_build_ms,
    }
