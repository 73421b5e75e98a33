"""Cost model: the terms of one frame, calibration, links, fit tables, template costs."""

from __future__ import annotations

import itertools

import pytest

from synergy.hardware.boards import MAX78000, MAX78002
from synergy.hardware.model import FitReport, HardwareModel
from synergy.planning.candidates import CandidateGenerator
from synergy.planning.cost import (
    DELIVERY_CPU_S,
    INFERENCE_OVERHEAD_CPU_S,
    RECENT_LIMIT,
    CostModel,
    link_between,
    transfer_seconds,
)
from synergy.planning.fit import Footprint, co_resident_violation, estimate_fit
from synergy.planning.problem import PlanningProblem
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.types import LINK_PRESETS, LinkProfile, Stage

MODEL = chain_model(
    "chain3",
    [LayerSpec(100_000, 50_000, 2_000), LayerSpec(200_000, 60_000, 500), LayerSpec(50_000, 10_000, 40)],
    input_bytes=3_072,
    cpu_cycles=10_000,
)


def test_two_stage_frame_has_every_term() -> None:
    link = LINK_PRESETS["ble5_2m"]
    src = device("src", sensors=[("camera", 30.0)], link="ble5_2m")
    dst = device("dst", outputs=["display"], link="ble5_2m")
    devices = {d.device_id: d for d in (src, dst)}
    cost = CostModel(checker=estimate_fit).frame_cost(
        MODEL, src, [Stage("src", 0, 0), Stage("dst", 1, 2)], dst, devices, sensor_type="camera", breakdown=True
    )
    work = {w.device_id: w for w in cost.work}
    copy = MAX78000.cpu_copy_bytes_per_s
    # Inference: (1 + cycles) / CNN clock on each device.
    assert work["src"].accel_s == pytest.approx((1 + 100_000) / 50e6)
    assert work["dst"].accel_s == pytest.approx((1 + 250_000) / 50e6)
    # CPU: input load + output unload + CPU work (softmax after the last layer) + overhead.
    assert work["src"].cpu_s == pytest.approx((3_072 + 2_000) / copy + INFERENCE_OVERHEAD_CPU_S)
    delivery = DELIVERY_CPU_S + 40 / copy
    softmax = 10_000 / 100e6
    assert work["dst"].cpu_s == pytest.approx((2_000 + 40) / copy + softmax + INFERENCE_OVERHEAD_CPU_S + delivery)
    # The cut's 2,000 bytes busy both radios.
    hop = (2_000 + link.per_message_overhead_bytes) / link.bandwidth_bytes_per_s
    assert work["src"].radio_s == pytest.approx(hop)
    assert work["dst"].radio_s == pytest.approx(hop)
    expected = work["src"].accel_s + work["src"].cpu_s + hop + link.latency_s + work["dst"].accel_s + work["dst"].cpu_s
    assert cost.latency_s == pytest.approx(expected)
    assert cost.cap_hz == 30.0 and cost.cap_reason == "src.camera"
    assert {t.term for t in cost.terms} >= {"inference", "transfer_send", "transfer_receive", "delivery"}


def test_max_rate_caps_below_the_sensor() -> None:
    src = device("src", sensors=[("camera", 30.0)], outputs=["display"])
    cost = CostModel(checker=estimate_fit).frame_cost(
        MODEL, src, [Stage("src", 0, 2)], src, {"src": src}, sensor_type="camera", max_rate_hz=5.0
    )
    assert (cost.cap_hz, cost.cap_reason) == (5.0, "max_rate_hz")


def test_calibration_scales_accelerator_and_cpu_only() -> None:
    a = device("a", sensors=[("camera", 30.0)], outputs=["display"])
    b = device("b", outputs=["display"])
    devices = {"a": a, "b": b}
    stages = [Stage("a", 0, 1), Stage("b", 2, 2)]
    base = CostModel(checker=estimate_fit)
    slow = base.with_calibration({"a": 2.0})
    plain = {w.device_id: w for w in base.frame_cost(MODEL, a, stages, b, devices, sensor_type="camera").work}
    drift = {w.device_id: w for w in slow.frame_cost(MODEL, a, stages, b, devices, sensor_type="camera").work}
    assert drift["a"].accel_s == pytest.approx(2 * plain["a"].accel_s)
    assert drift["a"].cpu_s == pytest.approx(2 * plain["a"].cpu_s)
    assert drift["a"].radio_s == pytest.approx(plain["a"].radio_s)
    assert drift["b"].accel_s == pytest.approx(plain["b"].accel_s)


def test_link_between_takes_the_slower_and_later() -> None:
    fast = LinkProfile("fast", 1e6, 0.001, 4)
    slow = LinkProfile("slow", 1e4, 0.02, 2)
    pair = link_between(fast, slow)
    assert pair.bandwidth_bytes_per_s == 1e4
    assert pair.latency_s == 0.02
    assert pair.per_message_overhead_bytes == 4
    assert transfer_seconds(996, pair) == pytest.approx(0.1)
    assert transfer_seconds(0, pair) == 0.0


def test_vectorised_fit_table_agrees_with_the_estimate_on_every_range() -> None:
    model = chain_model("big", [LayerSpec(1000, 150_000, 100) for _ in range(6)], input_bytes=100)
    cost = CostModel(checker=estimate_fit)
    for board in (MAX78000, MAX78002):
        table = cost.table(model, board)
        for f, last in itertools.combinations_with_replacement(range(6), 2):
            assert table.fits(f, last) == estimate_fit(model, f, last, board).fits


def test_binary_searched_fit_table_matches_a_monotone_checker() -> None:
    model = chain_model("m", [LayerSpec(1000, 1000, 100) for _ in range(9)], input_bytes=100)
    calls: list[tuple[int, int]] = []

    def checker(m: HardwareModel, first: int, last: int, board: object) -> FitReport:
        calls.append((first, last))
        return FitReport(last - first < 3 and first != 4, ("layers",))

    table = CostModel(checker=checker).table(model, MAX78000)
    for f, last in itertools.combinations_with_replacement(range(9), 2):
        assert table.fits(f, last) == (last - f < 3 and f != 4)
    assert len(calls) < 9 * 10 // 2  # fewer checks than ranges


def test_co_residence_names_the_constraint() -> None:
    half = MAX78000.weight_bytes // 2 + 1
    assert co_resident_violation([Footprint(half, 0, 1), Footprint(half, 0, 1)], MAX78000).startswith("weight memory")
    assert co_resident_violation([Footprint(10, 0, 20), Footprint(10, 0, 20)], MAX78000).startswith("hardware layers")
    assert co_resident_violation([Footprint(half, 0, 1)], MAX78000) == ""


def test_template_candidates_cost_exactly_what_frame_cost_computes() -> None:
    devices = [
        device("glasses", sensors=[("camera", 30.0)], outputs=["display"], link="ble5_2m"),
        device("watch", MAX78002, outputs=["display"], link="usb_hs"),
        device("ring", link="ble_24k"),
    ]
    cost = CostModel(checker=estimate_fit)
    problem = PlanningProblem(devices, [app("a", MODEL, "camera", "display")], cost)
    reference = PlanningProblem(devices, [app("a", MODEL, "camera", "display")], cost)
    gen = CandidateGenerator(problem)
    assert gen.templates(0)
    for template in gen.templates(0):
        cand = gen.instantiate(template, gen.choose_devices(template, {}))
        ref = reference.candidate(0, cand.source, cand.stages, cand.target).cost
        assert [w.device_id for w in cand.cost.work] == [w.device_id for w in ref.work]
        for mine, theirs in zip(cand.cost.work, ref.work, strict=True):
            expected = (theirs.accel_s, theirs.cpu_s, theirs.radio_s)
            assert (mine.accel_s, mine.cpu_s, mine.radio_s) == pytest.approx(expected)
            assert mine.partition == theirs.partition
        assert cand.cost.latency_s == pytest.approx(ref.latency_s)
        assert cand.cost.energy_j == pytest.approx(ref.energy_j)
        assert template.bottleneck_s == pytest.approx(max(max(w.accel_s, w.cpu_s, w.radio_s) for w in ref.work))


def test_recent_results_keep_only_the_most_recently_used() -> None:
    model = chain_model("recent", [LayerSpec(1000, 100, 10)], input_bytes=100)
    cost = CostModel()
    made: list[int] = []

    def make(k: int) -> dict[str, int]:
        made.append(k)
        return {"k": k}

    first = cost.recent(model, ("kept", 0), lambda: make(0))
    for k in range(1, RECENT_LIMIT + 5):
        cost.recent(model, ("kept", k), lambda k=k: make(k))  # type: ignore[misc]
        assert cost.recent(model, ("kept", 0), lambda: make(-1)) is first  # used again: stays
    assert -1 not in made
    assert cost.recent(model, ("kept", 1), lambda: make(-2)) == {"k": -2}  # dropped, made again
    calibrated = cost.with_calibration({"x": 1.2})
    assert calibrated.recent(model, ("kept", 0), lambda: make(-3)) is first  # shared caches


def test_entries_imported_for_later_are_read_only_when_a_lookup_they_may_answer_misses() -> None:
    model = chain_model("later", [LayerSpec(1000, 100, 10)], input_bytes=100)
    cost = CostModel()
    reads: list[int] = []

    def read() -> dict[object, object]:
        reads.append(1)
        return {("cut", 1): "stored one", ("cut", 2): "stored two"}

    cost.import_later(model, read, lambda raw: f"decoded {raw}", lambda key: key[0] == "cut")  # type: ignore[index]
    assert cost.memo(model, ("other", 1), lambda: "computed") == "computed"
    assert reads == []  # a key they cannot hold: nothing read
    assert cost.memo(model, ("cut", 2), lambda: "computed") == "decoded stored two"
    assert cost.memo(model, ("cut", 1), lambda: "computed") == "decoded stored one"
    assert cost.memo(model, ("cut", 3), lambda: "computed 3") == "computed 3"
    assert reads == [1]  # read once


def test_entries_that_cannot_be_read_later_are_misses() -> None:
    model = chain_model("later-broken", [LayerSpec(1000, 100, 10)], input_bytes=100)
    cost = CostModel()

    def read() -> dict[object, object]:
        raise ValueError("truncated")

    cost.import_later(model, read, lambda raw: raw, lambda key: True)
    assert cost.memo(model, ("cut", 1), lambda: "computed") == "computed"
    assert cost.memo(model, ("cut", 1), lambda: "again") == "computed"
