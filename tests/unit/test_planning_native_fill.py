"""The water-filling in C (synergy/planning/_fill.c) computes what the Python and numpy
versions compute, bit for bit, and refuses malformed input with a Python error."""

from __future__ import annotations

import contextlib
import math
import random
import resource
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from synergy.planning import batch, shortlist, throughput
from synergy.planning.bench import load_models
from synergy.planning.cost import CostModel
from synergy.planning.random_spaces import RANDOM_MODELS, random_workloads, sized_workload
from synergy.planning.registry import MethodPlanner, PlanningOptions

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
        arrays = SimpleNamespace(
            work=work,
            total=work.sum(axis=0),
            cap=rng.choice([1.0, 30.0, np.inf], templates) * rng.random(templates),
        )
        util = rng.choice([0.0, 0.3, 0.99, 1.0, 1.5], (devices + 1, 3))
        util[-1] = 0.0  # the padding row
        with np.errstate(divide="ignore"):
            inv_free = 1.0 / np.maximum(1.0 - util, 0.0)
        serial = rng.random(devices + 1) < 0.3
        dev = rng.integers(0, devices + 1, (positions, templates))
        out = np.empty(templates)
        _fill.proxy_rates(arrays.work, arrays.total, dev, inv_free, serial, arrays.cap, out)
        expected = shortlist._proxy_rates(arrays, dev, inv_free, serial)  # type: ignore[arg-type]
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
    monkeypatch.setattr(batch, "_native_fill_many", None)
    monkeypatch.setattr(batch, "water_fill", throughput.python_water_fill)
    monkeypatch.setattr(throughput, "water_fill", throughput.python_water_fill)
    monkeypatch.setattr(shortlist, "_native_proxy_rates", None)
    assert _plans(workloads) == native
