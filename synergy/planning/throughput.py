"""The throughput model: what a joint plan achieves when all its apps run at once.

DESIGN.md §5. Given one :class:`~synergy.planning.cost.FrameCost` per app (busy seconds per
frame on each device's accelerator, CPU and radio):

1. **Shared weight memory.** Partitions of several apps on one accelerator that do not fit
   in its weight memory together pay a weight reload at every switch. It keeps the
   accelerator and the CPU busy at once: on an overlapping device both resources carry it,
   on a serialized device (one resource) it is counted once.
2. **Parallelization** (the paper's "multiple computation units"). A device overlaps its
   CPU, accelerator and radio work across consecutive frames when its data memory can hold
   an extra frame buffer beside the widest layer; each of its resources is then separate.
   Otherwise its resources serialize: their busy times add into one resource ``<dev>.all``.
   Whether to overlap is decided per device (overlapping never hurts when it fits).
3. **Rates.** Every resource offers one busy second per second. Rates are shared max-min
   fairly (water-filling), each capped by its source rate and ``max_rate_hz``. The system
   throughput is the sum of the rates; the bottleneck is the first resource to saturate.
4. **Flash.** Every partition a board serves is stored in its MCU's flash; a plan whose
   partitions on one board overflow it cannot be deployed (:mod:`.memory`).
5. **Latency and energy.** Per app: the sum of its stage times, transfers, link latencies
   and reloads (no queueing); energy per frame from the boards' active powers; the average
   power adds every device's idle power.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from synergy.hardware.boards import BoardProfile
from synergy.planning.cost import FrameCost
from synergy.planning.fit import co_resident_violation
from synergy.planning.memory import flash_limit, flash_overcommit
from synergy.types import DeviceSpec

__all__ = [
    "Evaluation",
    "throughput",
    "RESOURCE_KINDS",
    "SERIAL_RESOURCE",
    "evaluate",
    "max_min_fair",
    "rates",
]

#: Names of a device's separate resources, in the order of DeviceWork's fields.
RESOURCE_KINDS = ("accelerator", "cpu", "radio")
#: Name of a device's single resource when its work serializes.
SERIAL_RESOURCE = "all"
#: Relative tolerance for "this resource / cap is exhausted" in the water-filling.
_SATURATION_EPS = 1e-9


@dataclass(frozen=True)
class Evaluation:
    """A joint plan's predicted behaviour (per-app tuples in input order)."""

    rates_hz: tuple[float, ...]
    latencies_s: tuple[float, ...]
    energies_j: tuple[float, ...]
    #: What limits each app: a resource name ("watch.radio") or its cap ("glasses.camera").
    limits: tuple[str, ...]
    system_throughput: float
    bottleneck: str
    power_w: float
    parallel_devices: frozenset[str]
    #: Devices whose partitions do not fit together, with the constraint.
    reloading: Mapping[str, str]
    #: Busy fraction of every used resource.
    utilisation: Mapping[str, float]
    #: Per app: busy seconds per frame on each resource (reloads included).
    loads: tuple[Mapping[str, float], ...] = ()
    #: Devices whose flash cannot store every partition placed on them, with the figures
    #: (such a plan cannot be deployed; :func:`throughput` scores it minus infinity).
    overcommitted: Mapping[str, str] = field(default_factory=dict)


def max_min_fair(
    demands: Sequence[Sequence[tuple[int, float]]],
    caps: Sequence[float],
    n_resources: int,
) -> tuple[list[float], list[int], int]:
    """Water-filling: max-min fair rates of apps sharing resources of capacity 1.

    ``demands[i]`` lists (resource index, busy seconds per frame) of app i. Returns the
    rates, for every app the resource that stopped it (-1: its cap), and the first
    resource to saturate (-1: none, every app reached its cap).
    """
    n = len(demands)
    rates = [0.0] * n
    limit = [-1] * n
    residual = [1.0] * n_resources
    # Total demand of the still-rising apps per resource (and how many they are), updated
    # as apps freeze; a resource nobody rises on any more drops out exactly (no float dust).
    use = [0.0] * n_resources
    users = [0] * n_resources
    active = [i for i in range(n) if caps[i] > 0]
    for i in active:
        for r, s in demands[i]:
            if s > 0:
                use[r] += s
                users[r] += 1
    touched = sorted(r for r in range(n_resources) if users[r])
    level = 0.0
    first = -1
    while active:
        step = min(caps[i] for i in active) - level
        for r in touched:
            t = residual[r] / use[r]
            if t < step:
                step = t
        if math.isinf(step):  # an app with no work and no cap: nothing to share
            raise ValueError("an app with no work must have a finite rate cap")
        level += step
        saturated: set[int] = set()
        for r in touched:
            residual[r] -= step * use[r]
            if residual[r] <= _SATURATION_EPS:
                saturated.add(r)
        if saturated and first < 0:
            first = min(saturated, key=lambda r: residual[r])
        still: list[int] = []
        for i in active:
            hit = -1
            for r, s in demands[i]:
                if s > 0 and r in saturated:
                    hit = r
                    break
            if hit >= 0 or caps[i] - level <= _SATURATION_EPS * max(caps[i], 1.0):
                rates[i] = level
                limit[i] = hit
                for r, s in demands[i]:
                    if s > 0:
                        use[r] -= s
                        users[r] -= 1
            else:
                still.append(i)
        if len(still) == len(active):  # pragma: no cover - every round freezes someone
            raise AssertionError("water-filling made no progress")
        active = still
        touched = [r for r in touched if users[r]]
    return rates, limit, first


#: Board limits used per evaluation: weight, bias and data bytes are properties summing
#: per-processor tuples, too slow to recompute thousands of times per plan.
_LIMITS: dict[int, tuple[BoardProfile, tuple[int, int, int, int]]] = {}


def _limits(board: BoardProfile) -> tuple[int, int, int, int]:
    hit = _LIMITS.get(id(board))
    if hit is None or hit[0] is not board:
        if len(_LIMITS) > 256:
            _LIMITS.clear()
        hit = _LIMITS[id(board)] = (
            board,
            (board.weight_bytes, board.bias_bytes, board.max_layers, board.data_bytes),
        )
    return hit[1]


def _device_state(
    costs: Sequence[FrameCost], devices: Mapping[str, DeviceSpec], allow_parallel: bool
) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """Devices that must reload weights, devices that overlap, devices whose flash overflows."""
    # device -> [partitions, weight, bias, layers, widest layer, largest frame buffer]
    agg: dict[str, list[int]] = {}
    for cost in costs:
        for w in cost.work:
            a = agg.get(w.device_id)
            if a is None:
                a = agg[w.device_id] = [0, 0, 0, 0, 0, 0]
            p = w.partition
            if p is not None:
                a[0] += 1
                a[1] += p.weight_bytes
                a[2] += p.bias_bytes
                a[3] += p.layers
                a[4] = max(a[4], p.peak_data_bytes)
                a[5] = max(a[5], p.frame_buffer_bytes)
    reloading: dict[str, str] = {}
    parallel: set[str] = set()
    overcommitted: dict[str, str] = {}
    for device_id, a in agg.items():
        board = devices[device_id].board
        weight, bias, layers, data = _limits(board)
        if a[0] >= 2 and a[1] + a[2] > flash_limit(board):
            overcommitted[device_id] = flash_overcommit(device_id, board, [a[1] + a[2]])
        if a[0] >= 2 and (a[1] > weight or a[2] > bias or a[3] > layers):
            prints = [
                w.partition.footprint
                for c in costs
                for w in c.work
                if w.device_id == device_id and w.partition is not None
            ]
            reloading[device_id] = co_resident_violation(prints, board)
        # Overlapping needs an extra frame buffer beside the widest layer.
        if allow_parallel and a[4] + a[5] <= data:
            parallel.add(device_id)
    return reloading, parallel, overcommitted


#: Resource names per device, built once (the search evaluates many plans).
_NAMES: dict[str, tuple[str, str, str, str]] = {}


def _names(device_id: str) -> tuple[str, str, str, str]:
    names = _NAMES.get(device_id)
    if names is None:
        if len(_NAMES) > 4096:
            _NAMES.clear()
        accel, cpu, radio = (f"{device_id}.{kind}" for kind in RESOURCE_KINDS)
        names = _NAMES[device_id] = (accel, cpu, radio, f"{device_id}.{SERIAL_RESOURCE}")
    return names


@dataclass
class _Demands:
    names: list[str]
    demands: list[list[tuple[int, float]]]
    latencies: list[float]
    energies: list[float]
    reloading: dict[str, str]
    parallel: set[str]
    overcommitted: dict[str, str]


def _demands(costs: Sequence[FrameCost], devices: Mapping[str, DeviceSpec], allow_parallel: bool) -> _Demands:
    """Every app's busy seconds per frame on each resource, joint effects included."""
    reloading, parallel, overcommitted = _device_state(costs, devices, allow_parallel)
    names: list[str] = []
    index: dict[str, int] = {}
    demands: list[list[tuple[int, float]]] = []
    latencies: list[float] = []
    energies: list[float] = []
    for cost in costs:
        per: dict[int, float] = {}
        latency, energy = cost.latency_s, cost.energy_j
        for w in cost.work:
            a, c, r = w.accel_s, w.cpu_s, w.radio_s
            device = w.device_id
            reload = 0.0
            if reloading and w.partition is not None and device in reloading:
                # Weights are written by the CPU while the accelerator cannot run.
                reload = w.partition.reload_s
                latency += reload
                energy += reload * devices[device].board.cpu_active_power_w
            device_names = _names(device)
            if device in parallel:
                # Separate resources: the reload keeps both the accelerator and the CPU busy.
                pairs: tuple[tuple[str, float], ...] = (
                    (device_names[0], a + reload),
                    (device_names[1], c + reload),
                    (device_names[2], r),
                )
            else:
                # One serial resource: the reload's seconds pass once, not once per unit.
                pairs = ((device_names[3], a + c + r + reload),)
            for name, seconds in pairs:
                if seconds > 0:
                    k = index.get(name)
                    if k is None:
                        k = index[name] = len(names)
                        names.append(name)
                    per[k] = per.get(k, 0.0) + seconds
        demands.append(list(per.items()))
        latencies.append(latency)
        energies.append(energy)
    return _Demands(names, demands, latencies, energies, reloading, parallel, overcommitted)


def throughput(
    costs: Sequence[FrameCost], devices: Mapping[str, DeviceSpec], *, allow_parallel: bool = True
) -> tuple[float, float]:
    """(system throughput, total latency) only: what the search compares, computed lean.

    A joint plan that overflows some board's flash cannot be deployed: its throughput is
    minus infinity, below every feasible plan (and below placing nothing).
    """
    d = _demands(costs, devices, allow_parallel)
    if d.overcommitted:
        return -math.inf, sum(d.latencies)
    rates, _, _ = max_min_fair(d.demands, [c.cap_hz for c in costs], len(d.names))
    return sum(rates), sum(d.latencies)


def rates(
    costs: Sequence[FrameCost], devices: Mapping[str, DeviceSpec], *, allow_parallel: bool = True
) -> tuple[list[float], list[float], list[float]] | None:
    """(rates, latencies, energies per frame) per app, computed lean; None if flash overflows."""
    d = _demands(costs, devices, allow_parallel)
    if d.overcommitted:
        return None
    got, _, _ = max_min_fair(d.demands, [c.cap_hz for c in costs], len(d.names))
    return got, d.latencies, d.energies


def evaluate(
    costs: Sequence[FrameCost],
    devices: Mapping[str, DeviceSpec],
    *,
    allow_parallel: bool = True,
) -> Evaluation:
    """Rates, latency, energy and power of apps running together (one FrameCost each)."""
    d = _demands(costs, devices, allow_parallel)
    names, demands, latencies, energies = d.names, d.demands, d.latencies, d.energies
    reloading, parallel = d.reloading, d.parallel
    caps = [c.cap_hz for c in costs]
    rates, limit, first = max_min_fair(demands, caps, len(names))
    limits = tuple(names[r] if r >= 0 else costs[i].cap_reason for i, r in enumerate(limit))
    if first >= 0:
        bottleneck = names[first]
    elif costs:
        bottleneck = limits[min(range(len(costs)), key=lambda i: rates[i])]
    else:
        bottleneck = ""
    util: dict[str, float] = {}
    for i, dem in enumerate(demands):
        for r, s in dem:
            util[names[r]] = util.get(names[r], 0.0) + rates[i] * s
    idle = sum(d.board.idle_power_w for d in devices.values())
    power = idle + sum(rate * e for rate, e in zip(rates, energies, strict=True))
    return Evaluation(
        rates_hz=tuple(rates),
        latencies_s=tuple(latencies),
        energies_j=tuple(energies),
        limits=limits,
        system_throughput=sum(rates),
        bottleneck=bottleneck,
        power_w=power,
        parallel_devices=frozenset(parallel),
        reloading=reloading,
        utilisation=util,
        loads=tuple({names[r]: s for r, s in dem} for dem in demands),
        overcommitted=d.overcommitted,
    )
