"""The cost model: busy seconds of one frame of one app on every resource it touches.

DESIGN.md §5 and HARDWARE.md §2-§4. Every term is a busy time on one resource of one device
(its accelerator, its CPU, its radio):

========================  =============  =======================================================
term                      resource       seconds per frame
========================  =============  =======================================================
sensing                   (rate cap)     the sensor's frame period caps the app's rate
input load                CPU            bytes entering the partition / board CPU copy rate
inference                 accelerator    (1 + cycles of the layers) / CNN clock
output unload             CPU            bytes leaving the partition / board CPU copy rate
CPU-only work             CPU            CPU-op cycles (softmax, unfolding...) / CPU clock
inference overhead        CPU            :data:`INFERENCE_OVERHEAD_CPU_S` (configure, start, IRQ)
transfer                  radio x 2      (bytes + per-message overhead) / bandwidth, busy on
                                         the sender's *and* the receiver's radio, per hop
                                         (:mod:`.links`: pair links, a relay through a
                                         medium's central)
air time                  medium         the same seconds again on a shared medium's air
                                         (``<medium>.air``), when both ends are on one
weight reload             accel + CPU    (weights + bias) / weight-load rate + fixed part, paid
                                         at every switch when partitions sharing an
                                         accelerator do not fit together (joint, see
                                         :mod:`.throughput`)
delivery                  CPU            :data:`DELIVERY_CPU_S` + output bytes / copy rate on
                                         the target device
========================  =============  =======================================================

Accelerator and CPU times are multiplied by a per-device calibration factor (device id ->
factor, 1.0 when absent) so the live coordinator can feed measured drift back in.

Per model and board the partition terms are precomputed as ``L x L`` numpy matrices
(:class:`BoardTable`) because the search evaluates thousands of layer ranges; a concrete
plan's cost (:meth:`CostModel.frame_cost`) reads them.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, NamedTuple, TypeVar, cast

import numpy as np
from numpy.typing import NDArray

from synergy.errors import InvalidArgument
from synergy.hardware.boards import BoardProfile
from synergy.hardware.model import HardwareModel
from synergy.planning.fit import FitChecker, Footprint, default_checker, estimate_fit
from synergy.planning.links import air_resource, link_between, route
from synergy.types import DeviceSpec, LinkProfile, Stage

__all__ = [
    "BoardTable",
    "CostModel",
    "CostParameters",
    "CostTerm",
    "DEFAULT_PARAMETERS",
    "DELIVERY_CPU_S",
    "DEFAULT_RADIO_ACTIVE_POWER_W",
    "DeviceWork",
    "FrameCost",
    "INFERENCE_OVERHEAD_CPU_S",
    "ModelProfile",
    "NETWORK_OVERHEAD_CYCLES",
    "PartitionFootprint",
    "WEIGHT_RELOAD_FIXED_S",
    "link_between",
    "transfer_seconds",
]

#: HARDWARE.md §2: a network costs 1 cycle plus the sum of its layers.
NETWORK_OVERHEAD_CYCLES = 1
#: CPU time to configure and start the CNN and take its completion interrupt (assumption:
#: a few hundred register writes at 100 MHz).
INFERENCE_OVERHEAD_CPU_S = 20e-6
#: CPU time to hand a result to its output driver (display, haptics...) on the target.
DELIVERY_CPU_S = 100e-6
#: Fixed part of a weight reload: ``cnn_init``, bias and layer registers (they do not survive
#: ``cnn_disable``), on top of the bytes / weight-load rate term (HARDWARE.md §2).
WEIGHT_RELOAD_FIXED_S = 0.5e-3
#: Radio power while sending or receiving (assumption: a BLE companion MCU draws 3-5 mA at
#: 3 V; HARDWARE.md §4 leaves it as a board parameter).
DEFAULT_RADIO_ACTIVE_POWER_W = 0.012
#: An extra frame buffer is needed to overlap CPU, accelerator and radio across frames;
#: this many frames' input and output must fit beside the widest layer.
OVERLAP_EXTRA_FRAMES = 1

Matrix = NDArray[np.float64]


@dataclass(frozen=True)
class CostParameters:
    """The calibratable constants of the cost model (defaults: the module constants)."""

    inference_overhead_cpu_s: float = INFERENCE_OVERHEAD_CPU_S
    delivery_cpu_s: float = DELIVERY_CPU_S
    reload_fixed_s: float = WEIGHT_RELOAD_FIXED_S
    radio_active_power_w: float = DEFAULT_RADIO_ACTIVE_POWER_W
    overlap_extra_frames: int = OVERLAP_EXTRA_FRAMES


DEFAULT_PARAMETERS = CostParameters()


def transfer_seconds(nbytes: int, link: LinkProfile) -> float:
    """Radio busy time of one message of ``nbytes`` payload (0 when nothing is sent)."""
    if nbytes <= 0:
        return 0.0
    return (nbytes + link.per_message_overhead_bytes) / link.bandwidth_bytes_per_s


class PartitionFootprint(NamedTuple):
    """A partition as its device holds it: memory for co-residence and overlap, reload time.

    A named tuple, not a dataclass: a fresh process makes tens of thousands of these from
    the disk cache, and a tuple is made several times faster.
    """

    weight_bytes: int
    bias_bytes: int
    layers: int
    #: Widest layer's input + output (the data memory the partition needs at all).
    peak_data_bytes: int
    #: One frame's input + output (the extra buffer that overlapping needs).
    frame_buffer_bytes: int
    #: Seconds to (re)load its weights and bias (calibrated), on accelerator and CPU.
    reload_s: float

    @property
    def footprint(self) -> Footprint:
        return Footprint(self.weight_bytes, self.bias_bytes, self.layers)


@dataclass(frozen=True)
class DeviceWork:
    """One frame's busy seconds on one device's accelerator, CPU and radio."""

    device_id: str
    accel_s: float = 0.0
    cpu_s: float = 0.0
    radio_s: float = 0.0
    partition: PartitionFootprint | None = None


@dataclass(frozen=True)
class CostTerm:
    """One line of a frame's cost breakdown (for people and for drift comparison)."""

    term: str
    device_id: str
    resource: str
    seconds: float


@dataclass(frozen=True)
class FrameCost:
    """The cost of one frame of one app under a concrete plan, before joint effects."""

    work: tuple[DeviceWork, ...]
    latency_s: float
    #: Energy of one frame on every involved device (accelerator, CPU, radio), joules.
    energy_j: float
    #: Rate cap from the source (sensor frame rate, and the app's max rate) and its name.
    cap_hz: float
    cap_reason: str
    terms: tuple[CostTerm, ...] = ()
    #: Busy seconds on resources no single device owns: a shared medium's air time.
    shared: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class ModelProfile:
    """Per-layer vectors of one model, with prefix sums for O(1) range queries."""

    layers: int
    cycles_cum: Matrix
    cpu_cycles_cum: Matrix
    weight_cum: Matrix
    bias_cum: Matrix
    #: Bytes a partition starting at layer f receives / ending at layer l sends.
    enter_bytes: NDArray[np.int64]
    leave_bytes: NDArray[np.int64]
    #: peak[f, l]: widest layer (input + output bytes) in f..l.
    peak_data: NDArray[np.int64]

    @staticmethod
    def of(model: HardwareModel) -> ModelProfile:
        n = len(model.layers)
        cycles = np.array([layer.cycles for layer in model.layers], dtype=np.float64)
        cpu = np.zeros(n, dtype=np.float64)
        for op in model.cpu_ops:
            # Work before the first layer is done by the first partition's CPU, work after
            # a layer by the CPU of the partition that ends or contains that layer.
            cpu[min(max(op.after_layer, 0), n - 1)] += op.cycles
        weight = np.array([layer.weight_bytes for layer in model.layers], dtype=np.float64)
        bias = np.array([layer.bias_bytes for layer in model.layers], dtype=np.float64)
        enter = np.array([sum(t.nbytes for t in model.entering(f)) for f in range(n)], dtype=np.int64)
        leave = np.array([sum(t.nbytes for t in model.leaving(i)) for i in range(n)], dtype=np.int64)
        data = np.array(
            [math.prod(ly.in_shape) * max(1, ly.eltwise_operands) + ly.out_bytes for ly in model.layers],
            dtype=np.int64,
        )
        peak = np.zeros((n, n), dtype=np.int64)
        for f in range(n):
            peak[f, f:] = np.maximum.accumulate(data[f:])

        def cum(v: Matrix) -> Matrix:
            return np.concatenate(([0.0], np.cumsum(v)))

        return ModelProfile(n, cum(cycles), cum(cpu), cum(weight), cum(bias), enter, leave, peak)

    def range_sum(self, cum: Matrix) -> Matrix:
        """``out[f, l] = sum(v[f..l])`` for l >= f (garbage below the diagonal)."""
        return cum[None, 1:] - cum[:-1, None]


@dataclass(frozen=True)
class BoardTable:
    """Every layer range of one model on one board: fit and uncalibrated costs (L x L)."""

    board: BoardProfile
    feasible: NDArray[np.bool_]
    accel_s: Matrix
    cpu_s: Matrix
    weight_bytes: Matrix
    bias_bytes: Matrix
    reload_s: Matrix
    #: Why the whole model does not fit this board ("" when it does).
    whole_model_reason: str

    def fits(self, first: int, last: int) -> bool:
        return bool(self.feasible[first, last])

    def __reduce__(self) -> tuple[type[BoardTable], tuple[Any, ...]]:
        # Pickled (the disk cache) as a call of the constructor: where this module is compiled
        # (mypyc), a frozen dataclass's fields cannot be set the way pickle sets them by default.
        return (BoardTable, tuple(getattr(self, f.name) for f in fields(self)))


@dataclass
class _Caches:
    profiles: dict[int, tuple[HardwareModel, ModelProfile]] = field(default_factory=dict)
    tables: dict[tuple[int, int], tuple[HardwareModel, BoardProfile, BoardTable]] = field(default_factory=dict)
    memo: dict[tuple[int, Hashable], tuple[HardwareModel, Any]] = field(default_factory=dict)
    #: Board object id -> (that object, the first equal board seen): tables are per value.
    boards: dict[int, tuple[BoardProfile, BoardProfile]] = field(default_factory=dict)
    by_value: dict[BoardProfile, BoardProfile] = field(default_factory=dict)
    #: Large derived results, the most recently used last (:meth:`CostModel.recent`).
    recent: OrderedDict[tuple[int, Hashable], tuple[HardwareModel, Any]] = field(default_factory=OrderedDict)
    recent_lock: threading.Lock = field(default_factory=threading.Lock)
    #: Model id -> memo entries read when a lookup for one of them first misses.
    later: dict[int, _Later] = field(default_factory=dict)


@dataclass(frozen=True)
class _Later:
    """Memo entries of one model that are read only when a lookup they may answer misses."""

    model: HardwareModel
    read: Callable[[], Mapping[Hashable, Any]]
    decode: Callable[[Any], Any]
    #: Whether a key may be among them (others miss without reading them).
    holds: Callable[[Hashable], bool]


@dataclass(frozen=True)
class _Undecoded:
    """A memo entry as it was stored (e.g. read from disk), decoded on first use: a fresh
    process reads thousands of solved cuts and a plan uses some of them."""

    raw: Any
    decode: Callable[[Any], Any]


#: Cached analyses kept per cost model (models and boards are few; re-plans reuse them).
_CACHE_LIMIT = 256
#: Derived results (solved cuts per slot sequence) kept per cost model.
_MEMO_LIMIT = 100_000
#: Large derived results kept per cost model (:meth:`CostModel.recent`): an app's candidates
#: kept across re-plans are one, and a coordinator whose calibration drifts makes a new one
#: per app at every re-plan.
RECENT_LIMIT = 48
_T = TypeVar("_T")


class CostModel:
    """Stage costs of frames on devices; caches per-model tables (pure: no clocks, no I/O).

    ``calibration`` maps a device id to the factor its accelerator and CPU times are
    multiplied by (measured / predicted, from the live coordinator).
    """

    def __init__(
        self,
        params: CostParameters = DEFAULT_PARAMETERS,
        calibration: Mapping[str, float] | None = None,
        checker: FitChecker | None = None,
    ) -> None:
        self.params = params
        self.calibration: Mapping[str, float] = dict(calibration or {})
        self.checker: FitChecker = checker or default_checker()
        self._caches = _Caches()
        #: Frame costs this model worked out from scratch (:meth:`frame_cost`): a re-plan that
        #: reuses its candidates works out none (a test checks it).
        self.frame_costs_made = 0

    def with_calibration(self, calibration: Mapping[str, float]) -> CostModel:
        """A cost model sharing this one's caches, with other calibration factors."""
        other = CostModel(self.params, calibration, self.checker)
        other._caches = self._caches
        return other

    def factor(self, device_id: str) -> float:
        return float(self.calibration.get(device_id, 1.0))

    # -- per model / board tables -------------------------------------------------------

    def profile(self, model: HardwareModel) -> ModelProfile:
        hit = self._caches.profiles.get(id(model))
        if hit is not None and hit[0] is model:
            return hit[1]
        if len(self._caches.profiles) >= _CACHE_LIMIT:
            self._caches.profiles.clear()
        profile = ModelProfile.of(model)
        self._caches.profiles[id(model)] = (model, profile)
        return profile

    def canonical_board(self, board: BoardProfile) -> BoardProfile:
        """The first board seen that equals ``board`` by value (one object per kind of board).

        Tables and solved cuts are cached per board object; boards decoded from the wire are
        distinct objects with equal values, and must share those caches.
        """
        hit = self._caches.boards.get(id(board))
        if hit is not None and hit[0] is board:
            return hit[1]
        if len(self._caches.boards) >= _CACHE_LIMIT:
            self._caches.boards.clear()
        if len(self._caches.by_value) >= _CACHE_LIMIT:
            self._caches.by_value.clear()
        canonical = self._caches.by_value.setdefault(board, board)
        self._caches.boards[id(board)] = (board, canonical)
        return canonical

    def table(self, model: HardwareModel, board: BoardProfile) -> BoardTable:
        board = self.canonical_board(board)
        key = (id(model), id(board))
        hit = self._caches.tables.get(key)
        if hit is not None and hit[0] is model and hit[1] is board:
            return hit[2]
        if len(self._caches.tables) >= _CACHE_LIMIT:
            self._caches.tables.clear()
        table = self._build_table(model, board)
        self._caches.tables[key] = (model, board, table)
        return table

    def _build_table(self, model: HardwareModel, board: BoardProfile) -> BoardTable:
        prof = self.profile(model)
        n = prof.layers
        feasible = self._feasibility(model, board, n)
        upper = np.triu(np.ones((n, n), dtype=np.bool_))
        cycles = prof.range_sum(prof.cycles_cum) + NETWORK_OVERHEAD_CYCLES
        accel = np.where(upper, cycles / board.cnn_clock_hz, np.inf)
        copy_bytes = prof.enter_bytes[:, None] + prof.leave_bytes[None, :]
        cpu = (
            copy_bytes / board.cpu_copy_bytes_per_s
            + prof.range_sum(prof.cpu_cycles_cum) / board.cpu_clock_hz
            + self.params.inference_overhead_cpu_s
        )
        cpu = np.where(upper, cpu, np.inf)
        weight = prof.range_sum(prof.weight_cum)
        bias = prof.range_sum(prof.bias_cum)
        reload = (weight + bias) / board.weight_load_bytes_per_s + self.params.reload_fixed_s
        whole = self.checker(model, 0, n - 1, board)
        reason = "" if whole.fits else "; ".join(whole.reasons) or "does not fit"
        return BoardTable(board, feasible & upper, accel, cpu, weight, bias, reload, reason)

    def _feasibility(self, model: HardwareModel, board: BoardProfile, n: int) -> NDArray[np.bool_]:
        """fits[f, l] for every range, assuming that adding layers never makes a range fit.

        That monotonicity (every limit is a sum or a maximum over the layers) lets a binary
        search per first layer find the longest range that fits: O(L log L) checks
        instead of O(L^2).
        """
        if self.checker is estimate_fit:
            return _estimate_feasibility(model, board, self.profile(model))
        fits = np.zeros((n, n), dtype=np.bool_)
        for f in range(n):
            lo, hi = f - 1, n - 1  # invariant: [f, lo] fits (lo = f - 1: nothing), hi + 1 does not
            if self.checker(model, f, n - 1, board).fits:
                lo = n - 1
            else:
                hi = n - 2
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    if self.checker(model, f, mid, board).fits:
                        lo = mid
                    else:
                        hi = mid - 1
            if lo >= f:
                fits[f, f : lo + 1] = True
        return fits

    def memo(self, model: HardwareModel, key: Hashable, compute: Callable[[], _T]) -> _T:
        """A derived result about ``model`` (e.g. solved cuts), computed once per key."""
        full = (id(model), key)
        hit = self._caches.memo.get(full)
        if hit is not None and hit[0] is model:
            value = hit[1]
            if type(value) is _Undecoded:
                try:
                    value = value.decode(value.raw)
                except Exception:  # a stored entry that does not decode is a miss
                    value = compute()
                self._caches.memo[full] = (model, value)
            return cast(_T, value)
        later = self._caches.later.get(id(model))
        if later is not None and later.model is model and later.holds(key):
            del self._caches.later[id(model)]
            try:
                entries = later.read()
            except Exception:  # entries that cannot be read are misses: the work is redone
                entries = {}
            self.import_model(model, (), entries, decode=later.decode)
            return self.memo(model, key, compute)
        if len(self._caches.memo) >= _MEMO_LIMIT:
            self._caches.memo.clear()
        value = compute()
        self._caches.memo[full] = (model, value)
        return value

    def recent(self, model: HardwareModel, key: Hashable, compute: Callable[[], _T]) -> _T:
        """Like :meth:`memo`, for results too large to keep many of: only the
        :data:`RECENT_LIMIT` most recently used are kept (least recently used dropped)."""
        full = (id(model), key)
        caches = self._caches
        with caches.recent_lock:
            hit = caches.recent.get(full)
            if hit is not None and hit[0] is model:
                caches.recent.move_to_end(full)
                return cast(_T, hit[1])
        value = compute()
        with caches.recent_lock:
            caches.recent[full] = (model, value)
            caches.recent.move_to_end(full)
            while len(caches.recent) > RECENT_LIMIT:
                caches.recent.popitem(last=False)
        return value

    # -- persistence (synergy.planning.disk_cache) ----------------------------------------

    def export_model(self, model: HardwareModel) -> tuple[list[BoardTable], dict[Hashable, Any]]:
        """What this cost model has worked out about ``model``: its fit tables, its memo."""
        tables = [table for m, _, table in self._caches.tables.values() if m is model]
        memo = {
            key: value
            for (_, key), (m, value) in self._caches.memo.items()
            if m is model and type(value) is not _Undecoded
        }
        return tables, memo

    def import_model(
        self,
        model: HardwareModel,
        tables: Sequence[BoardTable],
        memo: Mapping[Hashable, Any],
        decode: Callable[[Any], Any] | None = None,
    ) -> None:
        """Take tables and memo entries worked out earlier (by :meth:`export_model`) for ``model``.

        With ``decode``, the entries are stored as given and each is decoded when a plan
        first asks for it (entries never asked for are not exported again). The caller
        vouches that they were computed for an equal model, with equal parameters and
        checker; entries already present win.
        """
        for table in tables:
            board = self.canonical_board(table.board)
            self._caches.tables.setdefault((id(model), id(board)), (model, board, table))
        for key, value in memo.items():
            stored = value if decode is None else _Undecoded(value, decode)
            self._caches.memo.setdefault((id(model), key), (model, stored))

    def import_later(
        self,
        model: HardwareModel,
        read: Callable[[], Mapping[Hashable, Any]],
        decode: Callable[[Any], Any],
        holds: Callable[[Hashable], bool],
    ) -> None:
        """Memo entries for ``model`` that ``read()`` gives, read only when a lookup of a key
        they may hold (``holds(key)``) first misses, then taken as :meth:`import_model` takes
        them with ``decode``. A failing ``read`` gives nothing."""
        self._caches.later[id(model)] = _Later(model, read, decode, holds)

    # -- concrete plans ------------------------------------------------------------------

    def partition_footprint(
        self, model: HardwareModel, first: int, last: int, device: DeviceSpec
    ) -> PartitionFootprint:
        table = self.table(model, device.board)
        prof = self.profile(model)
        buffers = int(prof.enter_bytes[first] + prof.leave_bytes[last]) * self.params.overlap_extra_frames
        return PartitionFootprint(
            weight_bytes=int(table.weight_bytes[first, last]),
            bias_bytes=int(table.bias_bytes[first, last]),
            layers=last - first + 1,
            peak_data_bytes=int(prof.peak_data[first, last]),
            frame_buffer_bytes=buffers,
            reload_s=float(table.reload_s[first, last]) * self.factor(device.device_id),
        )

    def source_cap(self, source: DeviceSpec, sensor_type: str, max_rate_hz: float) -> tuple[float, str]:
        """The rate cap of an app sensing on ``source``, and what imposes it."""
        sensor = source.sensor(sensor_type)
        if sensor is None:
            raise InvalidArgument(f"device {source.device_id!r} has no {sensor_type!r} sensor")
        rate = sensor.rate_hz
        reason = f"{source.device_id}.{sensor_type}"
        if 0 < max_rate_hz < rate:
            return max_rate_hz, "max_rate_hz"
        return rate, reason

    def frame_cost(
        self,
        model: HardwareModel,
        source: DeviceSpec,
        stages: Sequence[Stage],
        target: DeviceSpec,
        devices: Mapping[str, DeviceSpec],
        *,
        sensor_type: str,
        max_rate_hz: float = 0.0,
        breakdown: bool = False,
    ) -> FrameCost:
        """Busy seconds of one frame: source -> stages (in order) -> target."""
        self.frame_costs_made += 1
        prof = self.profile(model)
        acc: dict[str, list[float]] = {}  # device -> [accel, cpu, radio]
        parts: dict[str, PartitionFootprint] = {}
        terms: list[CostTerm] = []
        latency = 0.0

        def add(device: str, resource: int, seconds: float, term: str) -> None:
            acc.setdefault(device, [0.0, 0.0, 0.0])[resource] += seconds
            if breakdown:
                terms.append(CostTerm(term, device, ("accelerator", "cpu", "radio")[resource], seconds))

        air: dict[str, float] = {}

        def send(nbytes: int, a: DeviceSpec, b: DeviceSpec) -> float:
            path = route(a, b, devices)
            spent = 0.0
            for hop in path.hops:
                seconds = transfer_seconds(nbytes, hop.link)
                add(hop.sender, 2, seconds, "transfer_send")
                add(hop.receiver, 2, seconds, "transfer_receive")
                if path.medium:
                    name = air_resource(path.medium)
                    air[name] = air.get(name, 0.0) + seconds
                    if breakdown:
                        terms.append(CostTerm("air_time", path.medium, "air", seconds))
                spent += seconds + hop.link.latency_s
            return spent

        acc[source.device_id] = [0.0, 0.0, 0.0]
        prev = source
        for stage in stages:
            device = devices[stage.device_id]
            f, last = stage.first_layer, stage.last_layer
            if device.device_id != prev.device_id:
                latency += send(int(prof.enter_bytes[f]), prev, device)
            table = self.table(model, device.board)
            k = self.factor(device.device_id)
            accel_s = float(table.accel_s[f, last]) * k
            cpu_s = float(table.cpu_s[f, last]) * k
            add(device.device_id, 0, accel_s, "inference")
            add(device.device_id, 1, cpu_s, "input_load+output_unload+cpu_work")
            latency += accel_s + cpu_s
            parts[device.device_id] = self.partition_footprint(model, f, last, device)
            prev = device
        if target.device_id != prev.device_id:
            latency += send(int(prof.leave_bytes[-1]), prev, target)
        delivery = (self.params.delivery_cpu_s + model.output_bytes / target.board.cpu_copy_bytes_per_s) * self.factor(
            target.device_id
        )
        add(target.device_id, 1, delivery, "delivery")
        latency += delivery

        work = tuple(DeviceWork(d, a, c, r, parts.get(d)) for d, (a, c, r) in acc.items())
        energy = sum((self.energy_j(w, devices[w.device_id].board) for w in work), 0.0)
        cap, reason = self.source_cap(source, sensor_type, max_rate_hz)
        return FrameCost(work, latency, energy, cap, reason, tuple(terms), tuple(air.items()))

    def energy_j(self, work: DeviceWork, board: BoardProfile) -> float:
        """Active energy of one frame's work on one device (idle power is added per device)."""
        return (
            work.accel_s * board.cnn_active_power_w
            + work.cpu_s * board.cpu_active_power_w
            + work.radio_s * self.params.radio_active_power_w
        )


def _estimate_feasibility(model: HardwareModel, board: BoardProfile, prof: ModelProfile) -> NDArray[np.bool_]:
    """:func:`estimate_fit` for every range at once (vectorised)."""
    n = prof.layers
    idx = np.arange(n)
    count = idx[None, :] - idx[:, None] + 1
    ok = (count >= 1) & (count <= board.max_layers)
    ok &= prof.range_sum(prof.weight_cum) <= board.weight_bytes
    ok &= prof.range_sum(prof.bias_cum) <= board.bias_bytes
    single = np.array([estimate_fit(model, i, i, board).fits for i in range(n)], dtype=np.int64)
    bad_cum = np.concatenate(([0], np.cumsum(1 - single)))
    ok &= (bad_cum[None, 1:] - bad_cum[:-1, None]) == 0
    return ok
