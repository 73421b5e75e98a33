"""The water-filling in C (synergy/planning/_fill.c) computes what the Python and numpy
versions compute, bit for bit, and refuses malformed input with a Python error."""

from __future__ import annotations

import contextlib
import math
import random
import resource
from typing import Any

import numpy as np
import pytest

from synergy.hardware.boards import MAX78000, MAX78002
from synergy.planning import batch, shortlist, throughput
from synergy.planning.bench import load_models
from synergy.planning.cost import CostModel, DeviceWork, FrameCost
from synergy.planning.random_spaces import RANDOM_MODELS, random_workloads, sized_workload
from synergy.planning.registry import MethodPlanner, PlanningOptions
from synergy.planning.synthetic import device
from tests.planning_costs import SMALL, random_cost

try:
    from synergy.planning import _fill
except ImportError:  # pragma: no cover - the failure below says what to do
    _fill = None  # type: ignore[assignment]

Demand = tuple[tuple[int, float], ...]


def test_the_extension_is_built_and_used() -> None:
    assert _fill is not None, (
        "synergy.planning._fill was not built (no C compiler or Python headers when the package was "
        "installed): install gcc and python3-dev, then `make venv` again"
    )
    assert batch.NATIVE
    assert throughput.water_fill is _fill.fill


def _demand(rng: random.Random, resources: int) -> Demand:
    # Zero and negative seconds too: both versions skip them alike.
    choices = (lambda: rng.uniform(1e-5, 0.05), lambda: rng.uniform(1e-4, 1.0), lambda: 0.0, lambda: -0.01)
    return tuple((rng.randrange(resources) * 7 + 3, rng.choice(choices)()) for _ in range(rng.randint(0, 6)))


def _cap(rng: random.Random) -> float:
    return rng.choice([rng.uniform(0.1, 100.0), math.inf, 30.0, 0.0, 1.0])


def _outcome(fn: Any, *args: Any) -> tuple[object, list[Any] | None]:
    try:
        return None, fn(*args)
    except (ValueError, AssertionError) as exc:
        return type(exc), None


@pytest.mark.parametrize("seed", range(8))
def test_batched_filling_equals_numpy_bit_for_bit(seed: int) -> None:
    assert _fill is not None
    rng = random.Random(seed)
    for _ in range(400):
        resources, apps = rng.randint(1, 30), rng.randint(0, 8)
        base = [_demand(rng, resources) for _ in range(apps)]
        caps = [_cap(rng) for _ in range(apps)]
        trials = [
            (
                _demand(rng, resources),
                rng.choice([rng.uniform(0.1, 100.0), math.inf, 5.0]),
                {k: _demand(rng, resources) for k in rng.sample(range(apps), rng.randint(0, min(apps, 2)))},
            )
            for _ in range(rng.randint(1, 25))
        ]
        # Exact equality: the C version's operations are numpy's, in numpy's order.
        assert _outcome(_fill.fill_many, base, caps, trials) == _outcome(batch._water_fill_many, base, caps, trials)


@pytest.mark.parametrize("seed", range(8))
def test_single_filling_equals_python_bit_for_bit(seed: int) -> None:
    assert _fill is not None
    rng = random.Random(100 + seed)
    for _ in range(600):
        resources, apps = rng.randint(1, 30), rng.randint(0, 10)
        demands = [_demand(rng, resources) for _ in range(apps)]
        caps = [rng.choice([_cap(rng), -1.0]) for _ in range(apps)]
        assert _outcome(_fill.fill, demands, caps) == _outcome(throughput.python_water_fill, demands, caps)


def test_an_app_with_no_work_and_no_cap_is_refused_alike() -> None:
    assert _fill is not None
    for fill in (_fill.fill, throughput.python_water_fill):
        with pytest.raises(ValueError, match="finite rate cap"):
            fill([()], [math.inf])
    for fill_many in (_fill.fill_many, batch._water_fill_many):
        with pytest.raises(ValueError, match="finite rate cap"):
            fill_many([((1, 0.5),)], [2.0], [((), math.inf, {})])


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (([((1, 0.5),)], [1.0, 2.0]), "differ in length"),
        (([((1, "x"),)], [1.0]), "must be real number"),
        (([((1,),)], [1.0]), "a demand pair"),
        (([[(-4, 0.5)]], [1.0]), "must not be negative"),
        (([((1 << 70, 0.5),)], [1.0]), "too big|too large"),
        ((None, [1.0]), "must be a sequence"),
        (([((1, 0.5),)], ["a"]), "must be real number"),
    ],
)
def test_malformed_single_input_is_a_python_error(args: tuple[Any, Any], error: str) -> None:
    assert _fill is not None
    with pytest.raises((TypeError, ValueError, OverflowError), match=error):
        _fill.fill(*args)


@pytest.mark.parametrize(
    ("trials", "error"),
    [
        ([((), 1.0)], "a trial must be"),
        ([((), 1.0, [])], "must be a dict"),
        ([((), 1.0, {5: ()})], "not a base app"),
        ([((), 1.0, {"a": ()})], "integer"),
        ([((), None, {})], "must be real number"),
        (7, "must be a sequence"),
    ],
)
def test_malformed_batch_input_is_a_python_error(trials: Any, error: str) -> None:
    assert _fill is not None
    with pytest.raises((TypeError, ValueError, IndexError), match=error):
        _fill.fill_many([((1, 0.5),)], [1.0], trials)


def test_random_garbage_never_crashes() -> None:
    assert _fill is not None
    rng = random.Random(3)
    atoms: list[Any] = [None, 1, -1, 0.5, math.nan, math.inf, "x", (), [], {}, (1, 0.5), ((1, 0.5),), {0: ()}]

    def junk(depth: int = 0) -> Any:
        if depth > 2 or rng.random() < 0.4:
            return rng.choice(atoms)
        maker = rng.choice([list, tuple])
        return maker(junk(depth + 1) for _ in range(rng.randint(0, 3)))

    for _ in range(3000):
        for fn, arity in ((_fill.fill, 2), (_fill.fill_many, 3)):
            with contextlib.suppress(TypeError, ValueError, IndexError, OverflowError, AssertionError):
                fn(*[junk() for _ in range(arity)])


def test_no_memory_is_leaked() -> None:
    assert _fill is not None
    base = [((1, 0.01), (2, 0.02)), ((2, 0.03),)]
    trials = [(((1, 0.02), (3, 0.01)), 30.0, {0: ((1, 0.05),)}) for _ in range(20)]

    def round_trip() -> None:
        for _ in range(2000):
            _fill.fill_many(base, [10.0, 20.0], trials)
            _fill.fill([*base, trials[0][0]], [10.0, 20.0, 5.0])
            with contextlib.suppress(TypeError):
                _fill.fill_many(base, [10.0, 20.0], [((), 1.0, [])])

    round_trip()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(5):
        round_trip()
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 2_000, f"the peak resident size grew by {grown_kb} kB over 10,000 calls"


@pytest.mark.parametrize("seed", range(6))
def test_ranking_proxy_equals_numpy_bit_for_bit(seed: int) -> None:
    assert _fill is not None
    rng = np.random.default_rng(seed)
    for _ in range(200):
        positions, templates, devices = int(rng.integers(1, 8)), int(rng.integers(1, 300)), int(rng.integers(1, 9))
        # Work that some kinds do not use (zeros) on devices some of which are full (inf).
        work = rng.random((3, positions, templates)) * (rng.random((3, positions, templates)) < 0.6)
        total = work.sum(axis=0)
        cap = rng.choice([1.0, 30.0, np.inf], templates) * rng.random(templates)
        util = rng.choice([0.0, 0.3, 0.99, 1.0, 1.5], (devices + 1, 3))
        util[-1] = 0.0  # the padding row
        with np.errstate(divide="ignore"):
            inv_free = 1.0 / np.maximum(1.0 - util, 0.0)
        serial = rng.random(devices + 1) < 0.3
        dev = rng.integers(0, devices + 1, (positions, templates))
        out = np.empty(templates)
        _fill.proxy_rates(work, total, dev, inv_free, serial, cap, out)
        expected = shortlist._proxy_rates(work, total, cap, dev, inv_free, serial)
        assert np.array_equal(out, expected, equal_nan=True)


def test_ranking_proxy_refuses_mismatched_arrays() -> None:
    assert _fill is not None
    work, total, dev = np.zeros((3, 2, 4)), np.zeros((2, 4)), np.zeros((2, 4), dtype=np.int64)
    inv_free, serial, cap, out = np.ones((3, 3)), np.zeros(3, dtype=np.bool_), np.ones(4), np.empty(4)
    with pytest.raises(ValueError, match="shapes"):
        _fill.proxy_rates(work, total, dev, inv_free, serial, np.ones(5), out)
    with pytest.raises(TypeError, match="float64"):
        _fill.proxy_rates(work.astype(np.float32), total, dev, inv_free, serial, cap, out)
    with pytest.raises(ValueError, match="C-contiguous"):
        _fill.proxy_rates(work, total, dev.T, inv_free, serial, cap, out)
    with pytest.raises(IndexError, match="out of range"):
        _fill.proxy_rates(work, total, dev + 7, inv_free, serial, cap, out)
    with pytest.raises(ValueError, match="read-only"):
        frozen = np.empty(4)
        frozen.flags.writeable = False
        _fill.proxy_rates(work, total, dev, inv_free, serial, cap, frozen)


def _plans(workloads: list[Any]) -> list[tuple[object, ...]]:
    out = []
    for w in workloads:
        outcome = MethodPlanner("synergy", PlanningOptions(), CostModel()).plan(w.devices, w.apps)
        out.append(tuple((p.app_id, p.source_device, p.stages, p.target_device) for p in outcome.plan.plans))
    return out


def test_plans_are_the_same_without_the_extension(monkeypatch: pytest.MonkeyPatch) -> None:
    models = load_models(RANDOM_MODELS)
    workloads = [sized_workload(8, 6, 3, models), *random_workloads(4, 9, models)]
    native = _plans(workloads)
    monkeypatch.setattr(batch, "water_fill", throughput.python_water_fill)
    monkeypatch.setattr(throughput, "water_fill", throughput.python_water_fill)
    monkeypatch.setattr(shortlist, "_native_proxy_rates", None)
    monkeypatch.setattr(batch, "native_rates_many", None)
    monkeypatch.setattr(throughput, "native_rates_many", None)
    assert _plans(workloads) == native


# -- rates_many: batch.rates_with and throughput.rates whole ------------------------------------

def _python_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(batch, "native_rates_many", None)
    monkeypatch.setattr(throughput, "native_rates_many", None)


@pytest.mark.parametrize("seed", range(10))
def test_rates_in_c_equal_python_bit_for_bit(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    assert throughput.native_rates_many is not None
    rng = random.Random(seed)
    cases = []
    for _ in range(60):
        devices = {name: device(name, board=rng.choice([MAX78000, MAX78002])) for name in "abcdef"}
        names = sorted(devices)
        base = [random_cost(rng, names, repeat_devices=True) for _ in range(rng.randint(0, 5))]
        trials = [random_cost(rng, names, repeat_devices=True) for _ in range(rng.randint(1, 12))]
        cases.append((devices, base, trials))

    def figures() -> list[object]:
        out: list[object] = []
        for devices, base, trials in cases:
            for parallel in (True, False):
                out.append(batch.rates_with(base, trials, devices, allow_parallel=parallel))
                out.append([throughput.rates([*base, t], devices, allow_parallel=parallel) for t in trials])
        return out

    native = figures()
    _python_paths(monkeypatch)
    assert figures() == native
    # (Reloads, lost overlap and flash overflows all occur among these cases.)
    assert any(r is None for batch_figures in native[::2] for r in batch_figures)  # type: ignore[attr-defined]


def test_rates_in_c_refuse_malformed_input() -> None:
    assert throughput.native_rates_many is not None
    devices = {name: device(name) for name in "ab"}
    cost = FrameCost((DeviceWork("a", 0.01, 0.0, 0.0, SMALL),), 0.01, 0.0, 5.0, "x")
    good, boards = throughput.packed(cost), throughput.board_table(devices)
    rates_many = throughput.native_rates_many
    assert rates_many([], [good], boards, True, 6)[0] is not None
    with pytest.raises(ValueError, match="wrong size"):
        rates_many([], [good[:-1]], boards, True, 6)
    with pytest.raises(TypeError, match="must be bytes"):
        rates_many([], ["x"], boards, True, 6)
    with pytest.raises(KeyError, match="no board"):
        rates_many([], [good], {}, True, 6)
    with pytest.raises(TypeError, match="a board must be"):
        rates_many([], [good], dict.fromkeys(boards, (1, 2)), True, 6)
    with pytest.raises(TypeError):
        rates_many([], [good], [], True, 6)
    rng = random.Random(1)
    for _ in range(2000):  # random bytes: an error or figures, never a crash
        blob = bytes(rng.randrange(256) for _ in range(rng.choice([40, 160, 176, rng.randrange(300)])))
        with contextlib.suppress(ValueError, TypeError, KeyError, OverflowError, AssertionError):
            rates_many([blob], [good, blob], boards, bool(rng.random() < 0.5), 6)


def test_a_changed_devices_mapping_gets_a_new_board_table() -> None:
    devices = {"a": device("a", board=MAX78000)}
    first = throughput.board_table(devices)
    assert throughput.board_table(devices) is first
    devices["a"] = device("a", board=MAX78002)
    assert throughput.board_table(devices) != first


@pytest.mark.parametrize("seed", range(6))
def test_ranked_selection_equals_numpy(seed: int) -> None:
    assert _fill is not None
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n = int(rng.integers(1, 400))
        # Ties in the rate (a few distinct values), infinite and NaN rates too.
        rate = rng.choice([0.5, 1.0, 2.0, np.inf, np.nan, 0.0, -0.0, rng.random()], n)
        static_order = rng.permutation(n)
        static_rank = np.empty(n, dtype=np.int64)
        static_rank[static_order] = np.arange(n)
        bands, count = shortlist.speed_bands(rng.random(n) * 100, 1.5)
        size, ladder = int(rng.integers(0, 30)), int(rng.integers(0, 6))
        expected = shortlist._select(rate, static_order, bands, count, size, ladder)
        got = shortlist._select_native(rate, static_rank, bands, count, size, ladder)
        assert [a.tolist() for a in got] == [a.tolist() for a in expected]
