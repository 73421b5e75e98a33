"""One planning problem: the devices, the apps, the cost model, and what every method shares.

A :class:`PlanningProblem` validates the input, works out each app's possible sources and
targets (or why it has none), groups interchangeable devices into classes (same board,
link and calibration), builds :class:`Candidate` execution plans with their per-frame cost,
evaluates candidates together (:func:`synergy.planning.throughput.evaluate`) and turns the
chosen ones into a :class:`~synergy.types.JointPlan`. Every method — ours and the
baselines — goes through it, so every comparison runs on the same cost model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from synergy.errors import InvalidArgument
from synergy.hardware.boards import BoardProfile
from synergy.planning.api import PlanningApp
from synergy.planning.cost import CostModel, FrameCost
from synergy.planning.links import is_plain, through_port
from synergy.planning.memory import flash_overcommit, sram_violation
from synergy.planning.throughput import Evaluation, evaluate
from synergy.types import DeviceSpec, ExecutionPlan, JointPlan, LinkProfile, Stage

if TYPE_CHECKING:  # objectives builds on this module
    from synergy.planning.objectives import Goal

__all__ = [
    "ALL_STAGES_DEVICES",
    "Candidate",
    "DEFAULT_MAX_ENDPOINTS",
    "DEFAULT_MAX_STAGES",
    "DeviceClass",
    "MAX_SEQUENCES",
    "PlanningProblem",
    "Selection",
    "sequence_count",
]

#: Devices one app's model may be split over, unless the model needs more to fit at all.
DEFAULT_MAX_STAGES = 3
#: Sources (and targets) considered per app; the fastest sensors / local outputs first.
DEFAULT_MAX_ENDPOINTS = 4
#: Spaces of at most this many devices may open every stage count (:meth:`PlanningProblem.stage_limit`).
ALL_STAGES_DEVICES = 6
#: Slot sequences per app (over all its source / target pairs) above which only the
#: fastest-linked device classes serve as helpers
#: (:meth:`~synergy.planning.candidates.CandidateGenerator.helper_classes`).
MAX_SEQUENCES = 2_400


def sequence_count(classes: int, limit: int) -> int:
    """Slot sequences of 1..limit slots per (source, target) pair with ``classes`` helper classes."""
    total = 2 + classes
    for k in range(2, limit + 1):
        total += (1 + classes) * classes ** (k - 2) * (1 + classes)
    return total


@dataclass(frozen=True)
class DeviceClass:
    """Devices that cost the same for any partition: same board, link and calibration."""

    index: int
    board: BoardProfile
    link: LinkProfile
    factor: float
    members: tuple[str, ...]


@dataclass(frozen=True)
class Candidate:
    """One concrete execution plan of one app, with its cost of one frame."""

    app_index: int
    source: str
    stages: tuple[Stage, ...]
    target: str
    cost: FrameCost

    @property
    def key(self) -> tuple[str, tuple[Stage, ...], str]:
        return (self.source, self.stages, self.target)

    @property
    def stage_devices(self) -> tuple[str, ...]:
        return tuple(s.device_id for s in self.stages)

    @property
    def devices(self) -> tuple[str, ...]:
        """Every device the candidate keeps busy (source, stages, target)."""
        return tuple(w.device_id for w in self.cost.work)


#: (rates, latencies, energies) of a plan's apps, or None when a board's flash overflows.
_Rates = tuple[list[float], list[float], list[float]] | None
#: Candidates of one app by (source, stages, target).
_Store = dict[tuple[str, tuple[Stage, ...], str], Candidate]


class CandidateReuse(Protocol):
    """What keeps the candidates earlier planning calls made (the candidate generator)."""

    def reused_plans(self, app_index: int) -> _Store | None: ...


@dataclass(frozen=True)
class Selection:
    """A method's answer before it becomes a JointPlan: one candidate (or None) per app."""

    chosen: tuple[Candidate | None, ...]
    allow_parallel: bool = True
    optimal: bool = False
    #: Extra unplaced reasons a method found (e.g. a baseline's own rule failed).
    reasons: Mapping[int, str] = field(default_factory=dict)


class PlanningProblem:
    """The shared, immutable context of one planning call (plus memoised candidates)."""

    def __init__(
        self,
        devices: Sequence[DeviceSpec],
        apps: Sequence[PlanningApp],
        cost_model: CostModel,
        *,
        max_stages: int = DEFAULT_MAX_STAGES,
        max_endpoints: int = DEFAULT_MAX_ENDPOINTS,
    ) -> None:
        ids = [d.device_id for d in devices]
        if len(set(ids)) != len(ids):
            raise InvalidArgument(f"duplicate device ids in the space: {sorted(ids)}")
        app_ids = [a.spec.app_id for a in apps]
        if len(set(app_ids)) != len(app_ids):
            raise InvalidArgument(f"duplicate app ids: {sorted(app_ids)}")
        for app in apps:
            if not app.model.layers:
                raise InvalidArgument(f"app {app.spec.app_id!r}: model {app.model.name!r} has no hardware layers")
        if max_stages < 1 or max_endpoints < 1:
            raise InvalidArgument("max_stages and max_endpoints must be at least 1")
        # A real board's links are only as fast as the serial port every byte crosses.
        self.devices = tuple(through_port(d) for d in devices)
        self.by_id: dict[str, DeviceSpec] = {d.device_id: d for d in self.devices}
        self.apps = tuple(apps)
        self.cost = cost_model
        self.max_stages = max_stages
        self.max_endpoints = max_endpoints
        self.classes, self.class_of = self._classes()
        #: Every transfer is one hop on its own link (no pair links, no shared medium):
        #: candidates can be assembled from their class templates without the cost model.
        self.plain_links = is_plain(self.by_id)
        self.sources: list[tuple[str, ...]] = []
        self.targets: list[tuple[str, ...]] = []
        #: Why an app cannot be placed at all ("" when it may be).
        self.problems: list[str] = []
        for app in self.apps:
            sources, targets, problem = self._endpoints(app)
            self.sources.append(sources)
            self.targets.append(targets)
            self.problems.append(problem)
        self._candidates: dict[tuple[int, tuple[str, tuple[Stage, ...], str]], Candidate] = {}
        #: Per app, candidates that earlier planning calls made and that this one may reuse
        #: (the candidate generator sets itself here; None: none are). The two refer to each
        #: other: whoever plans sets this back to None when done, so that reference counting,
        #: not the cyclic collector, frees both.
        self.reuse: CandidateReuse | None = None
        #: Rates of the plans a search evaluated, for the other searches of this problem (the
        #: rates do not depend on the objective): (overlap allowed, the app a batch tried or
        #: -1, the plan's candidate ids) -> (rates, latencies, energies) or None.
        self.evaluated: dict[tuple[bool, int, tuple[int, ...]], _Rates] = {}
        #: The objective every search method maximises (None: throughput, then latency).
        self.goal: Goal | None = None
        #: The plan of the fair search that set the floors (a seed for ours), if one ran.
        self.fair_selection: Selection | None = None

    # -- setup ---------------------------------------------------------------------------

    def _classes(self) -> tuple[tuple[DeviceClass, ...], dict[str, int]]:
        # By value, not identity: the live coordinator decodes one board object per agent
        # from the wire, and equal boards must still share a class (and its solved cuts).
        # A medium's members, its central and devices with pair links differ in where their
        # bytes go, so they are classes of their own.
        groups: dict[tuple[object, ...], list[DeviceSpec]] = {}
        for d in self.devices:
            board = self.cost.canonical_board(d.board)
            key = (board, d.link, self.cost.factor(d.device_id), d.medium, d.central, d.peer_links)
            groups.setdefault(key, []).append(d)
        classes = tuple(
            DeviceClass(
                i,
                self.cost.canonical_board(members[0].board),
                members[0].link,
                self.cost.factor(members[0].device_id),
                tuple(m.device_id for m in members),
            )
            for i, members in enumerate(groups.values())
        )
        return classes, {m: c.index for c in classes for m in c.members}

    def _endpoints(self, app: PlanningApp) -> tuple[tuple[str, ...], tuple[str, ...], str]:
        spec = app.spec
        if spec.source_device:
            pinned = self.by_id.get(spec.source_device)
            if pinned is None:
                return (), (), f"source_device: {spec.source_device!r} is not in the space"
            if pinned.sensor(spec.source_type) is None:
                return (), (), f"sensor: pinned source {spec.source_device!r} has no {spec.source_type!r} sensor"
            sources: list[DeviceSpec] = [pinned]
        else:
            sources = [d for d in self.devices if d.sensor(spec.source_type) is not None]
            if not sources:
                return (), (), f"sensor: no device has a {spec.source_type!r} sensor"
            # The fastest sensors first: a source's frame rate caps the app.
            sources.sort(key=lambda d: -self._sensor_rate(d, spec.source_type))
        if spec.target_device:
            pinned = self.by_id.get(spec.target_device)
            if pinned is None:
                return (), (), f"target_device: {spec.target_device!r} is not in the space"
            if not pinned.has_output(spec.target_type):
                return (), (), f"output: pinned target {spec.target_device!r} has no {spec.target_type!r} output"
            targets: list[DeviceSpec] = [pinned]
        else:
            targets = [d for d in self.devices if d.has_output(spec.target_type)]
            if not targets:
                return (), (), f"output: no device has a {spec.target_type!r} output"
            # Targets that are also sources first: delivering locally costs no transfer.
            source_ids = {d.device_id for d in sources}
            targets.sort(key=lambda d: d.device_id not in source_ids)
        keep = self.max_endpoints
        return tuple(d.device_id for d in sources[:keep]), tuple(d.device_id for d in targets[:keep]), ""

    @staticmethod
    def _sensor_rate(device: DeviceSpec, sensor_type: str) -> float:
        sensor = device.sensor(sensor_type)
        return sensor.rate_hz if sensor is not None else 0.0

    # -- candidates ------------------------------------------------------------------------

    def candidate(self, app_index: int, source: str, stages: Sequence[Stage], target: str) -> Candidate:
        """The (memoised) candidate running ``stages`` between ``source`` and ``target``."""
        stage_tuple = tuple(stages)
        key = (app_index, (source, stage_tuple, target))
        hit = self._candidates.get(key)
        if hit is not None:
            return hit
        store = self.reuse.reused_plans(app_index) if self.reuse is not None else None
        if store is not None:
            hit = store.get(key[1])
            if hit is not None:
                self._candidates[key] = hit
                return hit
        app = self.apps[app_index]
        cost = self.cost.frame_cost(
            app.model,
            self.by_id[source],
            stage_tuple,
            self.by_id[target],
            self.by_id,
            sensor_type=app.spec.source_type,
            max_rate_hz=app.spec.max_rate_hz,
        )
        cand = Candidate(app_index, source, stage_tuple, target, cost)
        self._candidates[key] = cand
        if store is not None:
            store[key[1]] = cand
        return cand

    def cached_candidate(
        self, app_index: int, key: tuple[str, tuple[Stage, ...], str]
    ) -> Candidate | None:
        return self._candidates.get((app_index, key))

    def remember_candidate(self, cand: Candidate) -> Candidate:
        """Memoise a candidate built elsewhere (e.g. from a template); the first one wins."""
        return self._candidates.setdefault((cand.app_index, cand.key), cand)

    def fits(self, app_index: int, device_id: str, first: int, last: int) -> bool:
        """Whether layers first..last of the app's model fit the device's board."""
        table = self.cost.table(self.apps[app_index].model, self.by_id[device_id].board)
        return table.fits(first, last)

    def min_parts(self, app_index: int) -> int:
        """Fewest partitions the model needs on the space's boards (0: some layer fits none)."""
        model = self.apps[app_index].model
        tables = [self.cost.table(model, c.board) for c in self.classes]
        n = len(model.layers)
        first, parts = 0, 0
        while first < n:
            best = first - 1
            for table in tables:
                row = table.feasible[first]
                if row[first]:
                    last = first
                    while last + 1 < n and row[last + 1]:
                        last += 1
                    best = max(best, last)
            if best < first:
                return 0
            parts += 1
            first = best + 1
        return parts

    def stage_limit(self, app_index: int) -> int:
        """Devices an app may be split over: the configured limit, or what the model needs.

        On a space of at most :data:`ALL_STAGES_DEVICES` devices every stage count is open
        when that keeps the app's slot sequences within :data:`MAX_SEQUENCES` with every
        class (six USB boards of one kind: yes; five boards on five kinds of link: no): there
        a pipeline over every device can beat any three-stage plan by half.
        """
        n = len(self.devices)
        pairs = len(self.sources[app_index]) * len(self.targets[app_index])
        if n <= ALL_STAGES_DEVICES and sequence_count(len(self.classes), n) * pairs <= MAX_SEQUENCES:
            return n
        return min(n, max(self.max_stages, self.min_parts(app_index)))

    def unplaceable_reason(self, app_index: int) -> str:
        """Name the constraint that stops an app whose candidate list came out empty."""
        if self.problems[app_index]:
            return self.problems[app_index]
        app = self.apps[app_index]
        model = app.model
        for layer in model.layers:
            reasons = []
            for c in self.classes:
                table = self.cost.table(model, c.board)
                if not table.fits(layer.index, layer.index):
                    report = self.cost.checker(model, layer.index, layer.index, c.board)
                    reasons.append(f"{c.board.name}: {', '.join(report.reasons) or 'does not fit'}")
                else:
                    break
            else:
                detail = "; ".join(reasons)
                return f"layer {layer.index} ({layer.op}) fits no board of the space: {detail}"
        need = self.min_parts(app_index)
        whole = "; ".join(
            f"{c.board.name}: {self.cost.table(model, c.board).whole_model_reason}"
            for c in self.classes
            if self.cost.table(model, c.board).whole_model_reason
        )
        return (
            f"devices: model {model.name!r} needs at least {need} devices in a row "
            f"({whole or 'split required'}), the space offers {len(self.devices)}"
        )

    # -- evaluation ------------------------------------------------------------------------

    def evaluate(self, chosen: Sequence[Candidate], *, allow_parallel: bool = True) -> Evaluation:
        return evaluate([c.cost for c in chosen], self.by_id, allow_parallel=allow_parallel)

    def objective(self, chosen: Sequence[Candidate], *, allow_parallel: bool = True) -> float:
        return self.evaluate(chosen, allow_parallel=allow_parallel).system_throughput

    def within_memory(self, selection: Selection, method: str = "") -> Selection:
        """The selection without the apps that break an MCU memory limit, each with its reason.

        Per app: a device that cannot hold the frames crossing its radio (SRAM). Jointly:
        a board whose flash cannot store every partition placed on it loses the app that
        arrived last among those it serves, until the rest fit. Methods whose candidates
        already respect both limits come out unchanged.
        """
        chosen = list(selection.chosen)
        reasons = dict(selection.reasons)
        prefix = f"{method}: " if method else ""
        for i, cand in enumerate(chosen):
            if cand is None:
                continue
            why = sram_violation(
                self.cost.profile(self.apps[i].model), cand.source, cand.stages, cand.target, self.by_id
            )
            if why:
                chosen[i], reasons[i] = None, prefix + why
        while True:
            stored: dict[str, list[tuple[int, int]]] = {}
            for i, cand in enumerate(chosen):
                for w in cand.cost.work if cand is not None else ():
                    if w.partition is not None:
                        kept = w.partition.weight_bytes + w.partition.bias_bytes
                        stored.setdefault(w.device_id, []).append((i, kept))
            for device_id, parts in stored.items():
                why = flash_overcommit(device_id, self.by_id[device_id].board, [b for _, b in parts])
                if why:
                    last = max(i for i, _ in parts)
                    chosen[last], reasons[last] = None, prefix + why
                    break
            else:
                break
        if chosen == list(selection.chosen):
            return selection
        return Selection(tuple(chosen), selection.allow_parallel, selection.optimal, reasons)

    def joint_plan(self, method: str, selection: Selection) -> tuple[JointPlan, Evaluation]:
        """The JointPlan (epoch 0) of a selection, with its evaluation."""
        selection = self.within_memory(selection, method)
        placed = [c for c in selection.chosen if c is not None]
        ev = self.evaluate(placed, allow_parallel=selection.allow_parallel)
        plans = []
        for cand, rate, latency in zip(placed, ev.rates_hz, ev.latencies_s, strict=True):
            involved = {cand.source, *cand.stage_devices, cand.target}
            plans.append(
                ExecutionPlan(
                    app_id=self.apps[cand.app_index].spec.app_id,
                    source_device=cand.source,
                    stages=cand.stages,
                    target_device=cand.target,
                    predicted_rate_hz=rate,
                    predicted_latency_s=latency,
                    parallel_devices=tuple(d for d in sorted(involved) if d in ev.parallel_devices),
                )
            )
        unplaced: dict[str, str] = {}
        for i, picked in enumerate(selection.chosen):
            if picked is None:
                reason = selection.reasons.get(i) or self.unplaceable_reason(i)
                unplaced[self.apps[i].spec.app_id] = reason
        joint = JointPlan(
            epoch=0,
            plans=tuple(plans),
            system_throughput=ev.system_throughput,
            bottleneck=ev.bottleneck,
            method=method,
            unplaced=unplaced,
        )
        return joint, ev

