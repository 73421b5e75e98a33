"""Partition fit checks against board limits (synergy.hardware.checker)."""

from __future__ import annotations

import dataclasses

import onnx
import pytest

from synergy.errors import DoesNotFit
from synergy.hardware.allocation import instance_bytes, layer_processors, place_weights
from synergy.hardware.analysis import WEIGHT_BITS_KEY, analyze_model
from synergy.hardware.boards import MAX78000, MAX78002
from synergy.hardware.checker import check_partition, greedy_partitions, raise_if_not_fits
from synergy.hardware.model import CutPoint, HardwareLayer, HardwareModel, TensorSpec
from synergy.models.zoo import build_model


def zoo(name: str) -> HardwareModel:
    return analyze_model(build_model(name), name)


def whole(hw: HardwareModel, board: object) -> tuple[bool, tuple[str, ...]]:
    report = check_partition(hw, 0, len(hw.layers) - 1, board)  # type: ignore[arg-type]
    return report.fits, report.reasons


def layer(index: int = 0, **kwargs: object) -> HardwareLayer:
    base: dict[str, object] = {
        "index": index,
        "op": "conv2d",
        "nodes": (f"n{index}",),
        "inputs": (f"t{index}",),
        "output": f"t{index + 1}",
        "in_shape": (1, 64, 8, 8),
        "out_shape": (1, 64, 8, 8),
        "kernel": (3, 3),
        "pad": 1,
        "in_channels": 64,
        "out_channels": 64,
        "weights": 64 * 64 * 9,
        "weight_bytes": 64 * 64 * 9,
    }
    base.update(kwargs)
    return HardwareLayer(**base)  # type: ignore[arg-type]


def model_of(*layers: HardwareLayer) -> HardwareModel:
    first, last = layers[0], layers[-1]
    return HardwareModel(
        name="synthetic",
        inputs=(TensorSpec(first.inputs[0], first.in_shape),),
        outputs=(TensorSpec(last.output, last.out_shape),),
        layers=tuple(layers),
        cuts=tuple(CutPoint(i, ()) for i in range(len(layers) - 1)),
    )


def without_bits(model: onnx.ModelProto) -> onnx.ModelProto:
    stripped = onnx.ModelProto()
    stripped.CopyFrom(model)
    del stripped.metadata_props[:]
    stripped.metadata_props.extend(p for p in model.metadata_props if p.key != WEIGHT_BITS_KEY)
    return stripped


def test_widenet_at_8_bit_is_refused_for_weight_memory_and_fits_mixed() -> None:
    eight_bit = analyze_model(without_bits(build_model("widenet")), "widenet_8bit")
    assert eight_bit.weight_bytes == 725_128
    fits, reasons = whole(eight_bit, MAX78000)
    assert not fits
    assert reasons == (
        "weight memory: partition needs 725128 B, max78000 has 442368 B",
        "flash: partition stores 725128 B of weights and bias, max78000 has 458752 B "
        "(512 KB flash less 64 KB of firmware)",
    )
    mixed = zoo("widenet")
    assert mixed.weight_bytes == 312_200
    assert whole(mixed, MAX78000) == (True, ())


@pytest.mark.parametrize("name", ["efficientnetv2", "mobilenetv2_075"])
def test_depthwise_models_need_a_max78002(name: str) -> None:
    hw = zoo(name)
    fits, reasons = whole(hw, MAX78000)
    assert not fits
    assert any(r.startswith("depthwise convolution: layers ") and r.endswith("max78000 has none") for r in reasons)
    assert f"layer count: partition needs {len(hw.layers)} hardware layers, max78000 runs at most 32" in reasons
    assert whole(hw, MAX78002) == (True, ())


@pytest.mark.parametrize("name", ["convnet5", "kws20_v3", "simplenet", "ressimplenet", "widenet", "unet"])
def test_small_zoo_models_fit_one_max78000(name: str) -> None:
    assert whole(zoo(name), MAX78000) == (True, ())


@pytest.mark.parametrize(("name", "boards"), [("efficientnetv2_nodw", 2), ("mobilenetv2_075_nodw", 4)])
def test_models_without_depthwise_split_over_several_max78000(name: str, boards: int) -> None:
    hw = zoo(name)
    ranges = greedy_partitions(hw, MAX78000)
    assert ranges is not None, f"{name}: some layer alone does not fit a MAX78000: " + "; ".join(
        r for i in range(len(hw.layers)) for r in check_partition(hw, i, i, MAX78000).reasons
    )
    assert len(ranges) <= boards, f"{name} needs {len(ranges)} MAX78000 boards: {ranges}"
    for first, last in ranges:
        assert check_partition(hw, first, last, MAX78000).fits


def test_weight_memory_reason_names_processor_need_and_capacity() -> None:
    # 120 channels run in 2 passes over 60 processors: a 120 -> 120 3x3 layer needs 240 words on
    # each of them, a 1x1 one 27. Three 3x3 and two 1x1 weigh 417,600 B (under 442,368 B) but
    # need 774 words on the 60 processors they share.
    conv3 = layer(
        in_shape=(1, 120, 4, 4),
        out_shape=(1, 120, 4, 4),
        in_channels=120,
        out_channels=120,
        weights=120 * 120 * 9,
        weight_bytes=120 * 120 * 9,
    )
    conv1 = dataclasses.replace(conv3, kernel=(1, 1), pad=0, weights=120 * 120, weight_bytes=120 * 120)
    hw = model_of(*(dataclasses.replace(x, index=i) for i, x in enumerate([conv3, conv1, conv3, conv1, conv3])))
    assert hw.weight_bytes == 417_600
    report = check_partition(hw, 0, 4, MAX78000)
    assert report.reasons == ("weight memory: processor 0 needs 774 words, has 768 (60 processors over)",)
    placements, tops = place_weights(hw.layers, MAX78000)
    assert max(tops) == 774 and all(p is not None and p.processors == 60 for p in placements)
    assert check_partition(hw, 0, 3, MAX78000).fits
    assert check_partition(hw, 0, 4, MAX78002).fits


def test_processors_and_passes() -> None:
    assert layer_processors(3, 64) == (1, 3)
    assert layer_processors(64, 64) == (1, 64)
    assert layer_processors(100, 64) == (2, 52)  # 50 rounded up to a multiple of 4
    assert layer_processors(1024, 64) == (16, 64)


def test_bias_memory_per_quadrant_and_channels() -> None:
    biased = [
        layer(i, out_shape=(1, 300, 8, 8), out_channels=300, bias_bytes=300, weights=9, weight_bytes=9)
        for i in range(5)
    ]
    report = check_partition(model_of(*biased), 0, 4, MAX78000)
    assert "bias memory: layer 4 needs 300 B in one quadrant, the most free is 212 B of 512 B" in report.reasons
    too_wide = layer(out_shape=(1, 1000, 8, 8), out_channels=1000, bias_bytes=1000)
    reasons = check_partition(model_of(too_wide), 0, 0, MAX78000).reasons
    assert "bias: layer 0 has bias for 1000 output channels, max78000 allows bias for at most 512" in reasons
    many = [layer(i, out_shape=(1, 500, 8, 8), out_channels=500, bias_bytes=500) for i in range(5)]
    reasons = check_partition(model_of(*many), 0, 4, MAX78000).reasons
    assert "bias memory: partition needs 2500 B, max78000 has 2048 B" in reasons


def test_data_memory_sizes_and_operators() -> None:
    assert instance_bytes((1, 64, 88, 88)) == 88 * 88 * 4
    assert instance_bytes((1, 128, 8, 8)) == 8 * 8 * 2 * 4
    assert instance_bytes((1, 100), wide=True) == 2 * 4 * 4
    big = layer(in_shape=(1, 16, 100, 100), out_shape=(1, 64, 100, 100), in_channels=16)
    reasons = check_partition(model_of(big), 0, 0, MAX78000).reasons
    assert "data memory: layer 0 output needs 40000 B per instance, has 32768 B" in reasons
    assert check_partition(model_of(big), 0, 0, MAX78002).fits
    huge_input = layer(in_shape=(1, 3, 200, 200), out_shape=(1, 4, 200, 200), in_channels=3, out_channels=4)
    reasons = check_partition(model_of(huge_input), 0, 0, MAX78000).reasons
    assert (
        "input pixels: layer 0 reads 40000 pixels per channel, max78000 holds 8192 (HWC) or 32768 (CHW) "
        "without streaming"
    ) in reasons
    dilated = layer(dilation=2)
    assert "dilation: layers 0 need it, max78000 has none" in check_partition(model_of(dilated), 0, 0, MAX78000).reasons
    huge = layer(in_channels=2048, in_shape=(1, 2048, 1, 1), out_shape=(1, 64, 1, 1))
    assert (
        "channels: layer 0 needs 2048 channels, max78000 allows 1024"
        in check_partition(model_of(huge), 0, 0, MAX78000).reasons
    )


def test_raise_if_not_fits_lists_every_reason() -> None:
    hw = zoo("efficientnetv2")
    report = check_partition(hw, 0, len(hw.layers) - 1, MAX78000)
    with pytest.raises(DoesNotFit) as info:
        raise_if_not_fits(report, "efficientnetv2 on max78000")
    assert str(info.value).startswith("efficientnetv2 on max78000 does not fit: ")
    for reason in report.reasons:
        assert reason in str(info.value)
    raise_if_not_fits(check_partition(hw, 0, 3, MAX78000), "first layers")


def test_cpu_boards_and_bad_ranges() -> None:
    hw = zoo("convnet5")
    cpu = dataclasses.replace(MAX78000, name="pi", accelerator="cpu")
    assert check_partition(hw, 0, 4, cpu).fits
    assert not check_partition(hw, 3, 9, MAX78000).fits
