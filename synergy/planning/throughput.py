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
3. **Rates.** Every resource offers one busy second per second (a shared medium's air time,
   ``<medium>.air``, is one more resource that several devices' transfers use; :mod:`.links`). Rates are shared max-min
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
import struct
import threading
from collections.abc import Callable, Mapping, Sequence, Set
from dataclasses import dataclass, field

from synergy.hardware.boards import BoardProfile
from synergy.planning.cost import FrameCost, PartitionFootprint
from synergy.planning.fit import co_resident_violation
from synergy.planning.memory import flash_limit, flash_overcommit
from synergy.types import DeviceSpec

_Fill = Callable[[Sequence[Sequence[tuple[int, float]]], Sequence[float]], list[float]]
#: (rates, latencies, energies) per app, or None (flash overflows): one plan's figures.
Figures = tuple[list[float], list[float], list[float]] | None
_RatesMany = Callable[
    [Sequence[bytes], Sequence[bytes], dict[int, tuple[int, int, int, int, int, float]], bool, int], list[Figures]
]
try:
    from synergy.planning._fill import fill as _built_fill
    from synergy.planning._fill import rates_many as _built_rates_many

    _native_fill: _Fill | None = _built_fill
    native_rates_many: _RatesMany | None = _built_rates_many
except ImportError:  # built without a C compiler: the Python versions below, the same figures
    _native_fill = None
    native_rates_many = None

__all__ = [
    "Evaluation",
    "throughput",
    "RESOURCE_KINDS",
    "SERIAL_RESOURCE",
    "evaluate",
    "max_min_fair",
    "rates",
    "utilisation",
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
_LIMITS: dict[int, tuple[BoardProfile, tuple[int, int, int, int, int]]] = {}


def _limits(board: BoardProfile) -> tuple[int, int, int, int, int]:
    """(weight, bias, layers, data bytes, flash bytes) of a board."""
    hit = _LIMITS.get(id(board))
    if hit is None or hit[0] is not board:
        if len(_LIMITS) > 256:
            _LIMITS.clear()
        hit = _LIMITS[id(board)] = (
            board,
            (board.weight_bytes, board.bias_bytes, board.max_layers, board.data_bytes, flash_limit(board)),
        )
    return hit[1]


#: One device's share of one frame, flattened for the evaluation loop: device, busy seconds
#: (accelerator, CPU, radio), resource names, the partition and its memory figures.
_Row = tuple[str, float, float, float, tuple[str, str, str, str], PartitionFootprint | None, int, int, int, int, int]
#: Rows per frame cost, built once per cost object (the search evaluates the same candidates
#: in thousands of combinations); the cost is kept beside them so its id stays its own.
_ROWS: dict[int, tuple[FrameCost, tuple[_Row, ...]]] = {}
_ROWS_LIMIT = 200_000


def _rows(cost: FrameCost) -> tuple[_Row, ...]:
    hit = _ROWS.get(id(cost))
    if hit is not None and hit[0] is cost:
        return hit[1]
    if len(_ROWS) >= _ROWS_LIMIT:
        _ROWS.clear()
    rows = []
    for w in cost.work:
        p = w.partition
        rows.append(
            (w.device_id, w.accel_s, w.cpu_s, w.radio_s, _names(w.device_id), p)
            + (
                (p.weight_bytes, p.bias_bytes, p.layers, p.peak_data_bytes, p.frame_buffer_bytes)
                if p is not None
                else (0, 0, 0, 0, 0)
            )
        )
    out = tuple(rows)
    _ROWS[id(cost)] = (cost, out)
    return out


#: Per (frame cost, which of its devices overlap): its demands when no device reloads.
_PLAIN: dict[tuple[int, tuple[bool, ...]], tuple[FrameCost, tuple[tuple[str, float], ...]]] = {}


def _plain_demands(rows: Sequence[_Row], overlap: Sequence[bool]) -> tuple[tuple[str, float], ...]:
    """(resource, busy seconds) of one frame without reloads."""
    out: dict[str, float] = {}
    for row, separate in zip(rows, overlap, strict=True):
        _, a, c, r, names = row[:5]
        pairs = ((names[0], a), (names[1], c), (names[2], r)) if separate else ((names[3], a + c + r),)
        for name, seconds in pairs:
            if seconds > 0:
                out[name] = out.get(name, 0.0) + seconds
    return tuple(out.items())


def aggregate(costs: Sequence[FrameCost], into: dict[str, list[int]] | None = None) -> dict[str, list[int]]:
    """Per device: [partitions, weight, bias, layers, widest layer, largest frame buffer]."""
    agg: dict[str, list[int]] = {} if into is None else into
    for cost in costs:
        for device_id, _, _, _, _, p, weight, bias, layers, peak, frame in _rows(cost):
            a = agg.get(device_id)
            if a is None:
                a = agg[device_id] = [0, 0, 0, 0, 0, 0]
            if p is not None:
                a[0] += 1
                a[1] += weight
                a[2] += bias
                a[3] += layers
                if peak > a[4]:
                    a[4] = peak
                if frame > a[5]:
                    a[5] = frame
    return agg


def device_flags(a: Sequence[int], board: BoardProfile, allow_parallel: bool) -> tuple[bool, bool, bool]:
    """(flash overflows, weights reload, work overlaps) of a device with aggregate ``a``."""
    weight_limit, bias_limit, layer_limit, data, flash = _limits(board)
    shared = a[0] >= 2
    return (
        shared and a[1] + a[2] > flash,
        shared and (a[1] > weight_limit or a[2] > bias_limit or a[3] > layer_limit),
        allow_parallel and a[4] + a[5] <= data,
    )


def _device_state(
    costs: Sequence[FrameCost], devices: Mapping[str, DeviceSpec], allow_parallel: bool
) -> tuple[dict[str, str], set[str], dict[str, str]]:
    """Devices that must reload weights, devices that overlap, devices whose flash overflows."""
    agg = aggregate(costs)
    reloading: dict[str, str] = {}
    parallel: set[str] = set()
    overcommitted: dict[str, str] = {}
    for device_id, a in agg.items():
        board = devices[device_id].board
        weight_limit, bias_limit, layer_limit, data, flash = _limits(board)
        if a[0] >= 2 and a[1] + a[2] > flash:
            overcommitted[device_id] = flash_overcommit(device_id, board, [a[1] + a[2]])
        if a[0] >= 2 and (a[1] > weight_limit or a[2] > bias_limit or a[3] > layer_limit):
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

    def slot(name: str) -> int:
        k = index.get(name)
        if k is None:
            k = index[name] = len(names)
            names.append(name)
        return k

    for cost in costs:
        rows = _rows(cost)
        if not reloading:
            # The common case: the candidate's demands depend only on which of its devices
            # overlap, and the search scores each candidate in many combinations.
            overlap = tuple(row[0] in parallel for row in rows)
            hit = _PLAIN.get((id(cost), overlap))
            if hit is None or hit[0] is not cost:
                if len(_PLAIN) >= _ROWS_LIMIT:
                    _PLAIN.clear()
                hit = _PLAIN[(id(cost), overlap)] = (cost, _plain_demands(rows, overlap) + cost.shared)
            demands.append([(slot(name), seconds) for name, seconds in hit[1]])
            latencies.append(cost.latency_s)
            energies.append(cost.energy_j)
            continue
        per: dict[int, float] = {}
        latency, energy = cost.latency_s, cost.energy_j
        for device, a, c, r, device_names, partition, *_ in rows:
            reload = 0.0
            if reloading and partition is not None and device in reloading:
                # Weights are written by the CPU while the accelerator cannot run.
                reload = partition.reload_s
                latency += reload
                energy += reload * devices[device].board.cpu_active_power_w
            if device in parallel:
                # Separate resources: the reload keeps both the accelerator and the CPU busy.
                separate = ((device_names[0], a + reload), (device_names[1], c + reload), (device_names[2], r))
                for name, seconds in separate:
                    if seconds > 0:
                        k = slot(name)
                        per[k] = per.get(k, 0.0) + seconds
            else:
                # One serial resource: the reload's seconds pass once, not once per unit.
                seconds = a + c + r + reload
                if seconds > 0:
                    k = slot(device_names[3])
                    per[k] = per.get(k, 0.0) + seconds
        for name, seconds in cost.shared:
            k = slot(name)
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
        return -math.inf, sum(d.latencies, 0.0)
    rates, _, _ = max_min_fair(d.demands, [c.cap_hz for c in costs], len(d.names))
    return sum(rates, 0.0), sum(d.latencies, 0.0)


def rates(
    costs: Sequence[FrameCost], devices: Mapping[str, DeviceSpec], *, allow_parallel: bool = True
) -> tuple[list[float], list[float], list[float]] | None:
    """(rates, latencies, energies per frame) per app, computed lean; None if flash overflows.

    The search's inner loop: the same figures as :func:`evaluate`, without names. When no
    device reloads (the common case) every app's demands come from a per-candidate cache
    keyed by resource numbers, and the water-filling runs on them directly.
    """
    if native_rates_many is not None and costs:
        # The same steps in C (_fill.c): the last app as a batch of one beside the others
        # (below the batched filling's size from two trials on: the plain filling, as here).
        return native_rates_many(
            [packed(c) for c in costs[:-1]], [packed(costs[-1])], board_table(devices), allow_parallel, 2
        )[0]
    parallel: set[str] = set()
    reloading: set[str] = set()
    for device_id, a in aggregate(costs).items():
        over, reload, overlap = device_flags(a, devices[device_id].board, allow_parallel)
        if over:
            return None
        if reload:
            reloading.add(device_id)
        if overlap:
            parallel.add(device_id)
    out = [numbered_demands(cost, parallel, reloading, devices) for cost in costs]
    return water_fill([o[0] for o in out], [c.cap_hz for c in costs]), [o[1] for o in out], [o[2] for o in out]


def utilisation(
    costs: Sequence[FrameCost], devices: Mapping[str, DeviceSpec], *, allow_parallel: bool = True
) -> dict[str, float]:
    """Busy fraction of every used resource, as :func:`evaluate` reports it, computed lean
    (a plan that overflows a flash still gets its figures, as there)."""
    parallel: set[str] = set()
    reloading: set[str] = set()
    for device_id, a in aggregate(costs).items():
        _, reload, overlap = device_flags(a, devices[device_id].board, allow_parallel)
        if reload:
            reloading.add(device_id)
        if overlap:
            parallel.add(device_id)
    out = [numbered_demands(cost, parallel, reloading, devices)[0] for cost in costs]
    got = water_fill(out, [c.cap_hz for c in costs])
    busy: dict[str, float] = {}
    for rate, demand in zip(got, out, strict=True):
        for r, seconds in demand:
            name = _NAMES_BY_NUMBER[r]
            busy[name] = busy.get(name, 0.0) + rate * seconds
    return busy


#: Resource name -> a number of its own, for the lean path (names are few: 4 per device).
_NUMBERS: dict[str, int] = {}
#: The names again, by number.
_NAMES_BY_NUMBER: list[str] = []
_NUMBERING = threading.Lock()
#: One app's frame on numbered resources: (resource, busy seconds) pairs, latency, energy.
Numbered = tuple[tuple[tuple[int, float], ...], float, float]
#: Per (frame cost, which of its devices overlap and which reload): its numbered demands.
_NUMBERED: dict[tuple[int, int], tuple[FrameCost, Numbered]] = {}


def _number(name: str) -> int:
    k = _NUMBERS.get(name)
    if k is None:
        with _NUMBERING:  # planners may run in threads: a name gets one number, in both tables
            k = _NUMBERS.get(name)
            if k is None:
                _NAMES_BY_NUMBER.append(name)
                k = _NUMBERS[name] = len(_NAMES_BY_NUMBER) - 1
    return k


#: A frame cost packed for the C module (_fill.c's PackedHeader, PackedRow, PackedShared):
#: native 8-byte fields, no padding.
_HEAD = struct.Struct("@2q3d")
_ROW = struct.Struct("@11q4d")
_SHARED = struct.Struct("@qd")
#: Packed costs by cost (the cost kept, so that its id stays its own).
_PACKED: dict[int, tuple[FrameCost, bytes]] = {}
#: Per device: the numbers of its accelerator, CPU, radio and serial resources.
_DEVICE_NUMBERS: dict[str, tuple[int, ...]] = {}


def packed(cost: FrameCost) -> bytes:
    """``cost`` as the C module reads it (made once per cost: the search scores each in
    many plans). A device is named by its serial resource's number."""
    hit = _PACKED.get(id(cost))
    if hit is not None and hit[0] is cost:
        return hit[1]
    if len(_PACKED) >= _ROWS_LIMIT:
        _PACKED.clear()
    parts = [_HEAD.pack(len(cost.work), len(cost.shared), cost.latency_s, cost.energy_j, cost.cap_hz)]
    for w in cost.work:
        numbers = _DEVICE_NUMBERS.get(w.device_id)
        if numbers is None:
            if len(_DEVICE_NUMBERS) > 4096:
                _DEVICE_NUMBERS.clear()
            numbers = _DEVICE_NUMBERS[w.device_id] = tuple(_number(name) for name in _names(w.device_id))
        accel, cpu, radio, serial = numbers
        p = w.partition
        memory = (
            (p.weight_bytes, p.bias_bytes, p.layers, p.peak_data_bytes, p.frame_buffer_bytes)
            if p is not None
            else (0, 0, 0, 0, 0)
        )
        reload_s = p.reload_s if p is not None else 0.0
        seconds = (w.accel_s, w.cpu_s, w.radio_s, reload_s)
        parts.append(_ROW.pack(serial, accel, cpu, radio, serial, p is not None, *memory, *seconds))
    parts += [_SHARED.pack(_number(name), seconds) for name, seconds in cost.shared]
    out = b"".join(parts)
    _PACKED[id(cost)] = (cost, out)
    return out


#: Per device number: its board's weight, bias, layer, data and flash limits, and CPU power.
BoardTable = dict[int, tuple[int, int, int, int, int, float]]
#: Board tables by devices mapping: (the mapping, its specs when the table was made, table).
_BOARDS: dict[int, tuple[Mapping[str, DeviceSpec], tuple[DeviceSpec, ...], BoardTable]] = {}


def board_table(devices: Mapping[str, DeviceSpec]) -> BoardTable:
    """Per device (by its serial resource's number): its board's limits and CPU power, for the
    C module. Made once per mapping (a planning problem's), again if its devices change."""
    specs = tuple(devices.values())
    hit = _BOARDS.get(id(devices))
    if hit is not None and hit[0] is devices and hit[1] == specs:
        return hit[2]
    if len(_BOARDS) >= 64:
        _BOARDS.clear()
    table = {
        _number(_names(device_id)[3]): (*_limits(spec.board), spec.board.cpu_active_power_w)
        for device_id, spec in devices.items()
    }
    _BOARDS[id(devices)] = (devices, specs, table)
    return table


def numbered_demands(
    cost: FrameCost,
    parallel: Set[str],
    reloading: Set[str] = frozenset(),
    devices: Mapping[str, DeviceSpec] | None = None,
) -> Numbered:
    """One frame's (resource number, busy seconds) pairs, latency and energy, given which
    devices overlap their work and which reload weights (``devices`` needed for those)."""
    rows = _rows(cost)
    mask = 0
    for bit, row in enumerate(rows):
        if row[0] in parallel:
            mask |= 1 << (2 * bit)
        if row[5] is not None and row[0] in reloading:
            mask |= 2 << (2 * bit)
    hit = _NUMBERED.get((id(cost), mask))
    if hit is not None and hit[0] is cost:
        return hit[1]
    if len(_NUMBERED) >= _ROWS_LIMIT:
        _NUMBERED.clear()
    if not mask & _RELOAD_BITS:
        overlap = tuple(bool(mask >> (2 * bit) & 1) for bit in range(len(rows)))
        named = _plain_demands(rows, overlap) + cost.shared
        value: Numbered = (tuple((_number(n), s) for n, s in named), cost.latency_s, cost.energy_j)
    else:
        if devices is None:
            raise ValueError("reloading devices need the space's devices (their CPU power)")
        per: dict[str, float] = {}
        latency, energy = cost.latency_s, cost.energy_j
        for bit, (device, a, c, r, names, partition, *_) in enumerate(rows):
            reload = partition.reload_s if partition is not None and mask >> (2 * bit) & 2 else 0.0
            if reload:
                # Weights are written by the CPU while the accelerator cannot run.
                latency += reload
                energy += reload * devices[device].board.cpu_active_power_w
            pairs: tuple[tuple[str, float], ...]
            if mask >> (2 * bit) & 1:
                # Separate resources: the reload keeps both the accelerator and the CPU busy.
                pairs = ((names[0], a + reload), (names[1], c + reload), (names[2], r))
            else:
                # One serial resource: the reload's seconds pass once, not once per unit.
                pairs = ((names[3], a + c + r + reload),)
            for name, seconds in pairs:
                if seconds > 0:
                    per[name] = per.get(name, 0.0) + seconds
        for name, seconds in cost.shared:
            per[name] = per.get(name, 0.0) + seconds
        value = (tuple((_number(n), s) for n, s in per.items()), latency, energy)
    _NUMBERED[(id(cost), mask)] = (cost, value)
    return value


#: Every reload bit of a :func:`numbered_demands` mask (two bits per device row).
_RELOAD_BITS = int("10" * 64, 2)


def python_water_fill(demands: Sequence[Sequence[tuple[int, float]]], caps: Sequence[float]) -> list[float]:
    """:func:`max_min_fair`'s rates alone, on resources numbered sparsely (dicts, not lists).

    :func:`water_fill` is this, or the same steps in C when the package was built with its
    extension (``synergy/planning/_fill.c``).
    """
    n = len(demands)
    got = [0.0] * n
    residual: dict[int, float] = {}
    use: dict[int, float] = {}
    users: dict[int, int] = {}
    active = [i for i in range(n) if caps[i] > 0]
    for i in active:
        for r, s in demands[i]:
            if s > 0:
                use[r] = use.get(r, 0.0) + s
                users[r] = users.get(r, 0) + 1
                residual[r] = 1.0
    level = 0.0
    while active:
        step = min(caps[i] for i in active) - level
        for r, u in use.items():
            t = residual[r] / u
            if t < step:
                step = t
        if math.isinf(step):
            raise ValueError("an app with no work must have a finite rate cap")
        level += step
        saturated = set()
        for r, u in use.items():
            left = residual[r] - step * u
            residual[r] = left
            if left <= _SATURATION_EPS:
                saturated.add(r)
        still: list[int] = []
        for i in active:
            frozen = caps[i] - level <= _SATURATION_EPS * max(caps[i], 1.0)
            if not frozen and saturated:
                frozen = any(s > 0 and r in saturated for r, s in demands[i])
            if frozen:
                got[i] = level
                for r, s in demands[i]:
                    if s > 0:
                        users[r] -= 1
                        if users[r]:
                            use[r] -= s
                        else:
                            del use[r]
            else:
                still.append(i)
        if len(still) == len(active):  # pragma: no cover - every round freezes someone
            raise AssertionError("water-filling made no progress")
        active = still
    return got


#: The water-filling of one plan: in C when built (the same figures, bit for bit), else Python.
water_fill: _Fill = (
    _native_fill if _native_fill is not None else python_water_fill
)


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
    idle = sum((d.board.idle_power_w for d in devices.values()), 0.0)
    power = idle + sum((rate * e for rate, e in zip(rates, energies, strict=True)), 0.0)
    return Evaluation(
        rates_hz=tuple(rates),
        latencies_s=tuple(latencies),
        energies_j=tuple(energies),
        limits=limits,
        system_throughput=sum(rates, 0.0),
        bottleneck=bottleneck,
        power_w=power,
        parallel_devices=frozenset(parallel),
        reloading=reloading,
        utilisation=util,
        loads=tuple({names[r]: s for r, s in dem} for dem in demands),
        overcommitted=d.overcommitted,
    )
