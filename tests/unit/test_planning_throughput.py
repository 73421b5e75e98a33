"""Throughput model: max-min fairness, caps, serialization vs overlap, reloads, energy.

Every expected number here is computed by hand from the per-frame busy times.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from synergy.hardware.boards import MAX78000
from synergy.planning.cost import DeviceWork, FrameCost, PartitionFootprint
from synergy.planning.synthetic import device
from synergy.planning.throughput import evaluate, max_min_fair, rates, throughput, utilisation

SMALL = PartitionFootprint(
    weight_bytes=1000, bias_bytes=0, layers=2, peak_data_bytes=4096, frame_buffer_bytes=2048, reload_s=0.002
)


def frame(*work: DeviceWork, cap: float = 1000.0, latency: float = 0.01, energy: float = 0.0) -> FrameCost:
    return FrameCost(tuple(work), latency, energy, cap, "src.camera")


def test_two_apps_share_one_resource_equally() -> None:
    rates, limit, first = max_min_fair([[(0, 0.01)], [(0, 0.02)]], [1000.0, 1000.0], 1)
    # Equal rates x with 0.01 x + 0.02 x = 1.
    assert rates == pytest.approx([1 / 0.03, 1 / 0.03])
    assert limit == [0, 0]
    assert first == 0


def test_a_capped_app_leaves_the_rest_to_the_other() -> None:
    rates, limit, _ = max_min_fair([[(0, 0.01)], [(0, 0.01)]], [10.0, 1000.0], 1)
    assert rates == pytest.approx([10.0, 90.0])
    assert limit == [-1, 0]


def test_progressive_filling_over_two_resources() -> None:
    # A needs 0.1 s of r0 and 0.01 s of r1; B only 0.01 s of r1. r0 stops A at 10/s,
    # B then takes what A leaves of r1: (1 - 10 * 0.01) / 0.01 = 90/s.
    rates, limit, first = max_min_fair([[(0, 0.1), (1, 0.01)], [(1, 0.01)]], [1e6, 1e6], 2)
    assert rates == pytest.approx([10.0, 90.0])
    assert limit == [0, 1]
    assert first == 0


def test_all_apps_at_their_cap_saturate_nothing() -> None:
    rates, limit, first = max_min_fair([[(0, 0.001)], [(1, 0.001)]], [30.0, 20.0], 2)
    assert rates == pytest.approx([30.0, 20.0])
    assert limit == [-1, -1]
    assert first == -1


def test_water_filling_terminates_despite_float_dust() -> None:
    # A case from the benchmark: after the first freeze the demand left on resource 0 was
    # 1.6e-15 (float dust) and the old loop never ended.
    demands = [
        [(0, 18.17092964), (1, 18.102749113333335)],
        [(2, 0.00140316), (3, 0.00013152)],
        [(4, 0.01187252), (5, 0.00812852), (6, 0.0081666667), (2, 6.14e-06), (3, 0.00013322667), (7, 0.0081666667)],
        [(4, 0.01187252), (5, 0.00812852), (6, 0.0081666667), (2, 6.14e-06), (3, 0.00013322667), (7, 0.0081666667)],
        [(0, 0.0027578466666666667)],
        [(4, 0.00705284), (5, 0.0045333667), (6, 0.0055), (2, 4.1e-06), (3, 0.00013237333), (7, 0.0055)],
    ]
    rates, _, _ = max_min_fair(demands, [30.0, 100.0, 30.0, 30.0, 30.0, 30.0], 8)
    assert rates[0] == pytest.approx(rates[4])
    assert rates[1:4] == pytest.approx([100.0, 30.0, 30.0])


def test_overlapping_device_is_limited_by_its_busiest_resource() -> None:
    devices = {"d": device("d")}
    cost = frame(DeviceWork("d", accel_s=0.005, cpu_s=0.002, radio_s=0.003, partition=SMALL))
    ev = evaluate([cost], devices)
    assert ev.rates_hz[0] == pytest.approx(200.0)
    assert ev.bottleneck == "d.accelerator"
    assert ev.parallel_devices == frozenset({"d"})


def test_serialized_device_adds_its_busy_times() -> None:
    devices = {"d": device("d")}
    cost = frame(DeviceWork("d", accel_s=0.005, cpu_s=0.002, radio_s=0.003, partition=SMALL))
    ev = evaluate([cost], devices, allow_parallel=False)
    assert ev.rates_hz[0] == pytest.approx(100.0)
    assert ev.bottleneck == "d.all"
    assert ev.parallel_devices == frozenset()


def test_no_overlap_when_the_extra_frame_buffer_does_not_fit() -> None:
    data = MAX78000.data_bytes
    big = PartitionFootprint(1000, 0, 2, peak_data_bytes=data - 100, frame_buffer_bytes=200, reload_s=0.0)
    devices = {"d": device("d")}
    ev = evaluate([frame(DeviceWork("d", 0.005, 0.002, 0.003, big))], devices)
    assert ev.parallel_devices == frozenset()
    assert ev.rates_hz[0] == pytest.approx(100.0)


def test_partitions_that_do_not_fit_together_pay_a_reload_every_frame() -> None:
    half = MAX78000.weight_bytes // 2 + 1000
    part = PartitionFootprint(half, 0, 3, 4096, 1024, reload_s=0.01)
    devices = {"d": device("d")}
    a = frame(DeviceWork("d", 0.002, 0.001, 0.0, part), latency=0.003)
    b = frame(DeviceWork("d", 0.002, 0.001, 0.0, part), latency=0.003)
    ev = evaluate([a, b], devices)
    assert "weight memory" in ev.reloading["d"]
    # Each frame: accelerator 0.002 + 0.01 reload; two apps share it: 2 x 0.012 x r = 1.
    assert ev.rates_hz == pytest.approx((1 / 0.024, 1 / 0.024))
    assert ev.latencies_s == pytest.approx((0.013, 0.013))


def test_a_reload_on_a_serialized_device_is_counted_once() -> None:
    half = MAX78000.weight_bytes // 2 + 1000
    part = PartitionFootprint(half, 0, 3, 4096, 1024, reload_s=0.01)
    devices = {"d": device("d")}
    a = frame(DeviceWork("d", 0.002, 0.001, 0.0, part))
    ev = evaluate([a, a], devices, allow_parallel=False)
    assert "weight memory" in ev.reloading["d"]
    # One resource d.all: 0.002 + 0.001 + 0.01 (the reload once, not on accelerator and CPU
    # both) per frame; two apps: 2 x 0.013 x r = 1.
    assert ev.rates_hz == pytest.approx((1 / 0.026, 1 / 0.026))
    assert ev.loads[0] == pytest.approx({"d.all": 0.013})


def test_partitions_that_fit_together_stay_resident() -> None:
    part = PartitionFootprint(1000, 0, 3, 4096, 1024, reload_s=0.01)
    devices = {"d": device("d")}
    a = frame(DeviceWork("d", 0.002, 0.001, 0.0, part))
    ev = evaluate([a, a], devices)
    assert ev.reloading == {}
    assert ev.rates_hz == pytest.approx((250.0, 250.0))


def test_transfers_load_both_radios_and_the_shared_one_limits() -> None:
    devices = {"a": device("a"), "b": device("b"), "c": device("c")}
    # Two apps send from a: a's radio carries both transfers.
    one = frame(DeviceWork("a", 0.0, 0.0, 0.004), DeviceWork("b", 0.001, 0.0, 0.004))
    two = frame(DeviceWork("a", 0.0, 0.0, 0.004), DeviceWork("c", 0.001, 0.0, 0.004))
    ev = evaluate([one, two], devices)
    assert ev.bottleneck == "a.radio"
    assert ev.rates_hz == pytest.approx((125.0, 125.0))
    assert ev.system_throughput == pytest.approx(250.0)


def test_power_is_idle_power_plus_rate_times_energy() -> None:
    devices = {"a": device("a"), "b": device("b")}
    cost = frame(DeviceWork("a", 0.01, 0.0, 0.0, SMALL), cap=20.0, energy=0.002)
    ev = evaluate([cost], devices)
    assert ev.rates_hz[0] == pytest.approx(20.0)
    assert ev.power_w == pytest.approx(2 * MAX78000.idle_power_w + 20.0 * 0.002)


def test_lean_throughput_matches_the_full_evaluation() -> None:
    devices = {"a": device("a"), "b": device("b")}
    costs = [
        frame(DeviceWork("a", 0.003, 0.001, 0.002, SMALL), DeviceWork("b", 0.0, 0.0, 0.002), latency=0.02),
        frame(DeviceWork("b", 0.004, 0.001, 0.0, SMALL), latency=0.01),
    ]
    ev = evaluate(costs, devices)
    total, latency = throughput(costs, devices)
    assert total == pytest.approx(ev.system_throughput)
    assert latency == pytest.approx(sum(ev.latencies_s))


@pytest.mark.parametrize("seed", range(40))
def test_lean_rates_match_the_full_evaluation_on_random_plans(seed: int) -> None:
    # The search's rates() skips names and water-fills on numbered resources; it must give
    # evaluate()'s figures on any plan: overlapping or not, reloading or not, shared air.
    rng = random.Random(seed)
    devices = {name: device(name) for name in "abcde"}
    big = PartitionFootprint(
        weight_bytes=150_000, bias_bytes=0, layers=40, peak_data_bytes=4096, frame_buffer_bytes=2048, reload_s=0.004
    )
    costs = []
    for _ in range(rng.randint(1, 6)):
        work = [
            DeviceWork(
                d,
                rng.choice([0.0, rng.uniform(1e-4, 0.02)]),
                rng.uniform(0.0, 0.01),
                rng.choice([0.0, rng.uniform(1e-4, 0.05)]),
                rng.choice([None, SMALL, big]),
            )
            for d in rng.sample(sorted(devices), rng.randint(1, 3))
        ]
        shared = (("body.air", rng.uniform(1e-4, 0.03)),) if rng.random() < 0.3 else ()
        cost = frame(*work, cap=rng.choice([5.0, 30.0, 1000.0]), latency=rng.uniform(0.01, 0.1))
        costs.append(dataclasses.replace(cost, shared=shared))
    for parallel in (True, False):
        ev = evaluate(costs, devices, allow_parallel=parallel)
        lean = rates(costs, devices, allow_parallel=parallel)
        busy = utilisation(costs, devices, allow_parallel=parallel)
        assert busy == pytest.approx(dict(ev.utilisation), rel=1e-9, abs=1e-12)
        if ev.overcommitted:
            assert lean is None  # a plan that overflows a board's flash has no rates
            continue
        assert lean is not None
        assert lean[0] == pytest.approx(list(ev.rates_hz), rel=1e-9, abs=1e-12)
        assert lean[1] == pytest.approx(list(ev.latencies_s))
