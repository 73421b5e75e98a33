"""Online estimation: factors from measured stage times, and when they are worth a re-plan."""

from __future__ import annotations

import pytest

from coordinator.calibration import FACTOR_RANGE, FACTOR_STEP, Calibrator
from synergy.reports import StageTiming


def timing(predicted: float, measured: float, samples: int) -> StageTiming:
    return StageTiming(app_id="a", epoch=1, predicted_s=predicted, measured_s=measured, samples=samples)


def test_factor_is_frame_weighted_measured_over_predicted() -> None:
    calibrator = Calibrator(min_samples=10)
    calibrator.observe("watch", [timing(0.010, 0.030, 10), timing(0.020, 0.020, 30)])
    # (0.030*10 + 0.020*30) / (0.010*10 + 0.020*30) = 0.9 / 0.7 = 1.2857, on the 5% grid:
    # 1.05 ** 5 = 1.2763 (log 1.2857 / log 1.05 = 5.15).
    assert calibrator.factors()["watch"] == pytest.approx(1.05**5)
    assert calibrator.factors()["watch"] == pytest.approx(0.9 / 0.7, rel=FACTOR_STEP - 1)


def test_devices_measured_alike_get_one_factor_and_plan_as_one_class() -> None:
    # Raw factors differ in the third digit on every device; equal factors keep equal
    # devices in one planning class (else every device is a class of its own).
    calibrator = Calibrator(min_samples=1)
    for device, measured in (("a", 0.01280), ("b", 0.01285), ("c", 0.01291)):
        calibrator.observe(device, [timing(0.010, measured, 50)])
    assert len(set(calibrator.factors().values())) == 1
    calibrator.observe("unchanged", [timing(0.010, 0.010, 50)])
    assert calibrator.factors()["unchanged"] == 1.0


def test_too_few_frames_do_not_count_and_outliers_are_clamped() -> None:
    calibrator = Calibrator(min_samples=10)
    calibrator.observe("ring", [timing(0.01, 0.5, 5)])
    assert calibrator.factors() == {}
    calibrator.observe("ring", [timing(0.001, 5.0, 50)])
    assert calibrator.factors()["ring"] == FACTOR_RANGE[1]


def test_drift_is_relative_to_the_factors_the_plan_used() -> None:
    calibrator = Calibrator(drift=0.25, min_samples=1)
    calibrator.observe("glasses", [timing(0.01, 0.012, 100)])
    calibrator.observe("watch", [timing(0.01, 0.03, 100)])
    assert set(calibrator.drifted({})) == {"watch"}  # 1.2 is within 25 % of 1.0; 3.0 is not
    assert calibrator.drifted({"watch": 2.8}) == {}
    calibrator.forget("watch")
    assert calibrator.drifted({}) == {}
