"""Random frame costs for the planner's scoring tests: partitions that make boards reload
their weights, stop overlapping their work or overflow their flash, and shared air time."""

from __future__ import annotations

import random

from synergy.planning.cost import DeviceWork, FrameCost, PartitionFootprint

SMALL = PartitionFootprint(1000, 0, 2, 4096, 2048, 0.002)
#: Two of these on one board overflow its weight memory (reload) but not its flash.
BIG = PartitionFootprint(150_000, 0, 40, 4096, 2048, 0.004)
#: A wide layer, and a large frame buffer: together on one device they stop it overlapping.
WIDE = PartitionFootprint(1000, 0, 2, 400_000, 50_000, 0.002)
FRAMES = PartitionFootprint(1000, 0, 2, 4096, 150_000, 0.002)
#: Two of these overflow a MAX78000's flash.
HUGE = PartitionFootprint(300_000, 0, 10, 4096, 2048, 0.004)


def random_cost(rng: random.Random, names: list[str], *, repeat_devices: bool = False) -> FrameCost:
    """A frame cost on 1-3 of ``names`` (with ``repeat_devices``, maybe one of them twice, as a
    source that also runs a stage is listed)."""
    devices = rng.sample(names, rng.randint(1, 3))
    if repeat_devices:
        devices += rng.sample(names, rng.randint(0, 1))
    work = tuple(
        DeviceWork(
            d,
            rng.choice([0.0, rng.uniform(1e-4, 0.02)]),
            rng.uniform(0.0, 0.01),
            rng.choice([0.0, rng.uniform(1e-4, 0.05)]),
            rng.choice([None, SMALL, SMALL, SMALL, WIDE, FRAMES, BIG, HUGE]),
        )
        for d in devices
    )
    shared = (("body.air", rng.uniform(1e-4, 0.03)),) if rng.random() < 0.3 else ()
    return FrameCost(work, rng.uniform(0.01, 0.1), rng.uniform(0, 1e-3), rng.choice([5.0, 30.0, 1e3]), "x", (), shared)
