"""Scoring many one-app variations at once gives what scoring each plan alone gives."""

from __future__ import annotations

import random

import pytest

from synergy.planning import batch
from synergy.planning.batch import rates_with
from synergy.planning.cost import DeviceWork, FrameCost, PartitionFootprint
from synergy.planning.synthetic import device
from synergy.planning.throughput import rates

SMALL = PartitionFootprint(1000, 0, 2, 4096, 2048, 0.002)
#: Two of these on one board overflow its weight memory (reload) but not its flash.
BIG = PartitionFootprint(150_000, 0, 40, 4096, 2048, 0.004)
#: A wide layer, and a large frame buffer: together on one device they stop it overlapping.
WIDE = PartitionFootprint(1000, 0, 2, 400_000, 50_000, 0.002)
FRAMES = PartitionFootprint(1000, 0, 2, 4096, 150_000, 0.002)
#: Two of these overflow a MAX78000's flash.
HUGE = PartitionFootprint(300_000, 0, 10, 4096, 2048, 0.004)


def random_cost(rng: random.Random, names: list[str]) -> FrameCost:
    work = tuple(
        DeviceWork(
            d,
            rng.choice([0.0, rng.uniform(1e-4, 0.02)]),
            rng.uniform(0.0, 0.01),
            rng.choice([0.0, rng.uniform(1e-4, 0.05)]),
            rng.choice([None, SMALL, SMALL, SMALL, WIDE, FRAMES, BIG, HUGE]),
        )
        for d in rng.sample(names, rng.randint(1, 3))
    )
    shared = (("body.air", rng.uniform(1e-4, 0.03)),) if rng.random() < 0.3 else ()
    return FrameCost(work, rng.uniform(0.01, 0.1), rng.uniform(0, 1e-3), rng.choice([5.0, 30.0, 1e3]), "x", (), shared)


@pytest.mark.parametrize("kernel", ["native", "numpy"])
@pytest.mark.parametrize("seed", range(60))
def test_batched_rates_equal_one_plan_at_a_time(seed: int, kernel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if kernel == "numpy":  # what runs where the C extension was not built
        monkeypatch.setattr(batch, "_native_fill_many", None)
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
