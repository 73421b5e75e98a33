"""MCU memory limits: flash per partition (checker) and per board (joint), SRAM for radio frames.

Figures by hand: MAX78000 stores 512 KB - 64 KB = 458,752 B of weights in flash and holds
128 KB - 32 KB = 98,304 B of radio frames in SRAM; MAX78002 2,555,904 B and 360,448 B.
"""

from __future__ import annotations

import dataclasses

import pytest

from synergy.hardware.boards import MAX78000, MAX78002
from synergy.hardware.checker import check_partition
from synergy.hardware.mcu import mcu_memory
from synergy.planning.cost import CostModel
from synergy.planning.fit import estimate_fit
from synergy.planning.registry import MethodPlanner, PlanningOptions, PlanOutcome
from synergy.planning.synthetic import LayerSpec, app, chain_model, device
from synergy.types import DeviceSpec


def plan(method: str, devices: list[DeviceSpec], apps: list) -> PlanOutcome:  # type: ignore[type-arg]
    return MethodPlanner(method, PlanningOptions(), CostModel(checker=estimate_fit)).plan(devices, apps)


def test_mcu_figures_per_board() -> None:
    small, large = mcu_memory(MAX78000), mcu_memory(MAX78002)
    assert small is not None and large is not None
    assert (small.weight_flash_bytes, small.frame_sram_bytes) == (458_752, 98_304)
    assert (large.weight_flash_bytes, large.frame_sram_bytes) == (2_555_904, 360_448)
    assert mcu_memory(dataclasses.replace(MAX78000, accelerator="cpu")) is None


def test_checker_refuses_a_partition_whose_weights_overflow_flash_naming_the_figures() -> None:
    # A board description with a large weight memory but a MAX78000's MCU: flash is the limit.
    roomy = dataclasses.replace(MAX78000, name="roomy", weight_words_per_processor=(2_000,) * 64)
    model = chain_model("wide", [LayerSpec(10_000, 250_000, 64), LayerSpec(10_000, 250_000, 64)], input_bytes=64)
    report = check_partition(model, 0, 1, roomy)
    assert not report.fits
    assert (
        "flash: partition stores 500000 B of weights and bias, roomy has 458752 B "
        "(512 KB flash less 64 KB of firmware)"
    ) in report.reasons
    assert check_partition(model, 0, 0, roomy).fits


@pytest.mark.parametrize("method", ["synergy", "source_only", "exact"])
def test_partitions_that_overflow_one_boards_flash_together_leave_the_last_app_waiting(method: str) -> None:
    # 300 KB of weights each: either fits the 442 KB weight memory (and 458,752 B of flash)
    # alone; both would store 600,000 B on the only board.
    heavy = chain_model("heavy", [LayerSpec(50_000, 150_000, 256), LayerSpec(50_000, 150_000, 64)], input_bytes=512)
    only = [device("watch", sensors=[("imu", 100.0)], outputs=["haptics"])]
    outcome = plan(method, only, [app("first", heavy, "imu", "haptics"), app("second", heavy, "imu", "haptics")])
    assert [p.app_id for p in outcome.plan.plans] == ["first"]
    assert outcome.plan.unplaced["second"].endswith(
        "flash: watch would store 600000 B of weights and bias, max78000 has 458752 B "
        "(512 KB flash less 64 KB of firmware)"
    )


def test_a_frame_too_big_for_sram_never_crosses_a_radio() -> None:
    # Layer 0 makes a 150,000 B activation: more than a MAX78000 holds for its radio.
    fat = chain_model("fat", [LayerSpec(100_000, 100_000, 150_000), LayerSpec(100_000, 100_000, 64)], input_bytes=3_072)
    devices = [device("glasses", sensors=[("camera", 30.0)], outputs=["display"]), device("belt")]
    apps = [app("a", fat, "camera", "display")]
    exo = plan("exo", devices, apps)  # splits by weight share: layer 0 | layer 1
    assert exo.plan.unplaced["a"] == (
        "exo: SRAM: glasses must hold 150000 B of frames for its radio, max78000 has 98304 B "
        "(128 KB SRAM less 32 KB of firmware)"
    )
    ours = plan("synergy", devices, apps).plan.plans[0]
    cuts = [s for s in ours.stages if s.first_layer == 1 and s.device_id != ours.stages[0].device_id]
    assert not cuts  # never cut after layer 0 across devices
    assert ours.predicted_rate_hz == pytest.approx(30.0)


def test_a_source_that_only_relays_must_hold_the_input_frame() -> None:
    # A 200,000 B input cannot leave a MAX78000 source; the model does not fit the source
    # (its data memory), so the app cannot run at all, and says why.
    big_input = chain_model("big_input", [LayerSpec(10_000, 10_000, 64)], input_bytes=200_000)
    small_source = dataclasses.replace(MAX78000, data_instances=1)  # cannot run layer 0
    devices = [
        dataclasses.replace(device("glasses", sensors=[("camera", 30.0)], outputs=["display"]), board=small_source),
        device("belt", MAX78002),
    ]
    outcome = plan("synergy", devices, [app("a", big_input, "camera", "display")])
    assert "a" in outcome.plan.unplaced
    # With a MAX78002 source (360,448 B of frame SRAM) relaying works.
    devices[0] = dataclasses.replace(devices[0], board=dataclasses.replace(small_source, accelerator="MAX78002"))
    relayed = plan("synergy", devices, [app("a", big_input, "camera", "display")])
    assert [s.device_id for s in relayed.plan.plans[0].stages] == ["belt"]
