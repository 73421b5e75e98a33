"""Scoring many one-app variations at once gives what scoring each plan alone gives."""

from __future__ import annotations

import random

import pytest

from synergy.planning import batch, throughput
from synergy.planning.batch import rates_with
from synergy.planning.synthetic import device
from synergy.planning.throughput import rates
from tests.planning_costs import random_cost


@pytest.mark.parametrize("kernel", ["native", "numpy"])
@pytest.mark.parametrize("seed", range(60))
def test_batched_rates_equal_one_plan_at_a_time(seed: int, kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if kernel == "numpy":  # what runs where the C extension was not built
        monkeypatch.setattr(batch, "native_rates_many", None)
        monkeypatch.setattr(batch, "water_fill", throughput.python_water_fill)
        monkeypatch.setattr(throughput, "native_rates_many", None)
        monkeypatch.setattr(throughput, "water_fill", throughput.python_water_fill)
    rng = random.Random(seed)
    devices = {name: device(name) for name in "abcdef"}
    names = sorted(devices)
    base = [random_cost(rng, names) for _ in range(rng.randint(0, 5))]
    trials = [random_cost(rng, names) for _ in range(rng.randint(1, 12))]
    for parallel in (True, False):
        batched = rates_with(base, trials, devices, allow_parallel=parallel)
        for trial, got in zip(trials, batched, strict=True):
            alone = rates([*base, trial], devices, allow_parallel=parallel)
            if alone is None:
                assert got is None
                continue
            assert got is not None
            assert got[0] == pytest.approx(alone[0], rel=1e-9, abs=1e-12)
            assert got[1] == pytest.approx(alone[1]) and got[2] == pytest.approx(alone[2])


def test_no_trials_no_work() -> None:
    assert rates_with([], [], {}) == []
