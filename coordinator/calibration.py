"""Online estimation: per-device calibration factors from measured stage times.

DESIGN.md §5. Every heartbeat carries, per (app, epoch) partition on the device, the time the
cost model predicted for one frame and the mean time the device measured. A device's factor
is measured / predicted over all its partitions, weighted by frames; the planner multiplies
the device's accelerator and CPU times by it. When a factor drifts from the one the deployed
plan was made with by more than the threshold, the coordinator re-plans with the new factors.

Pure: no clock, no I/O; the coordinator feeds it heartbeats and asks whether to re-plan.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from synergy.reports import StageTiming

__all__ = ["Calibrator"]

#: Relative change of a factor that is worth a re-plan.
DEFAULT_DRIFT = 0.25
#: Frames a device must have measured before its factor counts.
DEFAULT_MIN_SAMPLES = 20
#: Factors are clamped to this range: a wildly off measurement should not wreck the planner.
FACTOR_RANGE = (0.1, 20.0)
#: Factors are rounded to powers of this step. Devices cost the same for the planner only
#: when their factors are equal (a device class); raw measurements differ in the third
#: digit on every device, which made each device its own class. A 5% grid is well inside
#: the noise of a measured stage time and five times finer than the drift that triggers a
#: re-plan. (It does not make the first calibrated plan of a large space fast: 32 agents of
#: three kinds whose factors fall on 6 grid values still form ~18 classes, each solving its
#: cuts anew: ~13 s, against ~13 s with 32 raw factors; see docs/orchestrator.md.)
FACTOR_STEP = 1.05


@dataclass
class _DeviceTimes:
    predicted_s: float = 0.0
    measured_s: float = 0.0
    samples: int = 0


class Calibrator:
    def __init__(self, drift: float = DEFAULT_DRIFT, min_samples: int = DEFAULT_MIN_SAMPLES) -> None:
        self.drift = drift
        self.min_samples = min_samples
        self._devices: dict[str, _DeviceTimes] = {}

    def observe(self, device_id: str, timings: Iterable[StageTiming]) -> None:
        """Replace the device's figures with those of its latest heartbeat."""
        times = _DeviceTimes()
        for timing in timings:
            if timing.samples <= 0 or timing.predicted_s <= 0:
                continue
            times.predicted_s += timing.predicted_s * timing.samples
            times.measured_s += timing.measured_s * timing.samples
            times.samples += timing.samples
        if times.samples:
            self._devices[device_id] = times

    def forget(self, device_id: str) -> None:
        self._devices.pop(device_id, None)

    def factors(self) -> dict[str, float]:
        """Device id -> measured / predicted, for devices with enough frames measured."""
        low, high = FACTOR_RANGE
        return {
            device: min(high, max(low, _on_grid(t.measured_s / t.predicted_s)))
            for device, t in self._devices.items()
            if t.samples >= self.min_samples and t.predicted_s > 0
        }

    def drifted(self, planned_with: Mapping[str, float]) -> dict[str, float]:
        """Factors that moved more than ``drift`` from those the current plan used."""
        return {
            device: factor
            for device, factor in self.factors().items()
            if abs(factor / planned_with.get(device, 1.0) - 1.0) > self.drift
        }


def _on_grid(factor: float) -> float:
    """The nearest power of :data:`FACTOR_STEP` (1.0 stays 1.0)."""
    return round(FACTOR_STEP ** round(math.log(factor) / math.log(FACTOR_STEP)), 6)
