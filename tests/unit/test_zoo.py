"""The model zoo: valid ONNX, docs/models.md conventions, chip numerics, HARDWARE.md §5 counts."""

from __future__ import annotations

import functools
import itertools
import json
import math
import re

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from numpy.typing import NDArray
from onnx import numpy_helper

from synergy.errors import NotFound
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import MAX78000, BoardProfile
from synergy.hardware.checker import check_partition
from synergy.hardware.model import HardwareModel
from synergy.models.zoo import ZOO_NAMES, _cached_model, build_model, describe
from synergy.models.zoo.builder import WEIGHT_BITS_KEY, layer_outputs, sample_input, with_layer_outputs

WEIGHTED_OPS = ("Conv", "ConvTranspose", "Gemm")

#: name -> (hardware layers, weight parameters, bias parameters, weight bytes at their bit widths).
#: HARDWARE.md §5 gives the first eight; it states none for the *_nodw variants, whose counts
#: are those of the depthwise-free blocks of docs/models.md "No-depthwise variants" (full 3x3
#: in -> in + 1x1 project; EfficientNetV2 head 512, MobileNetV2 head at 4 bit).
EXPECTED = {
    "convnet5": (5, 71_148, 10, 71_148),
    "kws20_v3": (9, 169_472, 0, 169_472),
    "simplenet": (14, 381_792, 0, 165_228),
    "ressimplenet": (17, 381_792, 0, 381_792),
    "widenet": (14, 725_128, 0, 312_200),
    "unet": (19, 278_176, 908, 278_176),
    "efficientnetv2": (33, 753_952, 5_236, 753_952),
    "mobilenetv2_075": (73, 1_341_960, 0, 1_341_960),
    "efficientnetv2_nodw": (29, 682_080, 2_148, 682_080),
    "mobilenetv2_075_nodw": (57, 1_058_680, 0, 943_480),
}


def _initializers(model: onnx.ModelProto) -> dict[str, NDArray[np.float32]]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


def _weighted_nodes(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    return [node for node in model.graph.node if node.op_type in WEIGHTED_OPS]


def _layer_prefix(node_name: str) -> str:
    match = re.match(r"(l\d\d)_", node_name)
    assert match, f"node {node_name!r} has no layer prefix"
    return match.group(1)


@functools.cache
def _layer_values(name: str, seed: int) -> dict[str, NDArray[np.float32]]:
    """Every hardware-layer output and graph output of zoo model ``name`` under onnxruntime."""
    model = build_model(name)
    exposed = with_layer_outputs(model)
    session = ort.InferenceSession(exposed.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {model.graph.input[0].name: sample_input(model, seed)})
    return {meta.name: value for meta, value in zip(session.get_outputs(), outputs, strict=True)}


def test_zoo_names_are_the_ten_models() -> None:
    assert ZOO_NAMES == (
        "convnet5",
        "kws20_v3",
        "simplenet",
        "ressimplenet",
        "widenet",
        "unet",
        "efficientnetv2",
        "mobilenetv2_075",
        "efficientnetv2_nodw",
        "mobilenetv2_075_nodw",
    )
    assert set(EXPECTED) == set(ZOO_NAMES)


def test_unknown_name_is_not_found_and_lists_the_zoo() -> None:
    with pytest.raises(NotFound) as caught:
        build_model("resnet50")
    assert "resnet50" in str(caught.value)
    assert all(name in str(caught.value) for name in ZOO_NAMES)
    with pytest.raises(NotFound):
        describe("resnet50")


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_describe_is_one_line(name: str) -> None:
    text = describe(name)
    assert text and "\n" not in text


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_model_passes_the_onnx_checker(name: str) -> None:
    model = build_model(name)
    onnx.checker.check_model(model, full_check=True)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    assert len(model.graph.input) == 1
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_layer_and_parameter_counts_match_hardware_md(name: str) -> None:
    model = build_model(name)
    inits = _initializers(model)
    weighted = _weighted_nodes(model)
    weights = sum(inits[node.input[1]].size for node in weighted)
    biases = sum(inits[node.input[2]].size for node in weighted if len(node.input) > 2)
    bits = json.loads(_metadata(model)[WEIGHT_BITS_KEY])
    # Weight bytes = sum(params * bits / 8); every count here is a multiple of 8.
    weight_bytes = sum(inits[node.input[1]].size * bits[node.input[1]] / 8 for node in weighted)
    layers = len({_layer_prefix(node.name) for node in model.graph.node if node.name.startswith("l")})
    assert (layers, weights, biases, weight_bytes) == EXPECTED[name]


def _metadata(model: onnx.ModelProto) -> dict[str, str]:
    return {prop.key: prop.value for prop in model.metadata_props}


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_weights_are_integers_in_their_bit_width(name: str) -> None:
    model = build_model(name)
    inits = _initializers(model)
    bits = json.loads(_metadata(model)[WEIGHT_BITS_KEY])
    weighted = _weighted_nodes(model)
    assert set(bits) == {node.input[1] for node in weighted}
    for node in weighted:
        weight, width = inits[node.input[1]], bits[node.input[1]]
        low, high = (-1, 1) if width == 1 else (-(2 ** (width - 1)), 2 ** (width - 1) - 1)
        assert np.array_equal(weight, np.round(weight)), node.name
        assert weight.min() >= low and weight.max() <= high, node.name
        if len(node.input) > 2:
            bias = inits[node.input[2]]
            assert np.array_equal(bias, np.round(bias)) and bias.min() >= -128 and bias.max() <= 127


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_layer_ends_in_the_chip_numerics(name: str) -> None:
    model = build_model(name)
    inits = _initializers(model)
    producer = {node.output[0]: node for node in model.graph.node}
    names = [node.name for node in model.graph.node]
    assert len(names) == len(set(names)), "node names must be unique"
    clips = [node for node in model.graph.node if node.op_type == "Clip"]
    assert clips
    for clip in clips:
        floor = producer[clip.input[0]]
        add = producer[floor.input[0]]
        mul = producer[add.input[0]]
        assert (floor.op_type, add.op_type, mul.op_type) == ("Floor", "Add", "Mul")
        assert float(inits[add.input[1]]) == 0.5
        scale = float(inits[mul.input[1]])
        assert scale > 0 and math.log2(scale) == round(math.log2(scale)), f"{mul.name}: {scale}"
        assert (float(inits[clip.input[1]]), float(inits[clip.input[2]])) == (-128.0, 127.0)
        assert len({_layer_prefix(n.name) for n in (clip, floor, add, mul)}) == 1


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_runs_in_onnxruntime_with_int8_layer_outputs(name: str) -> None:
    model = build_model(name)
    values = _layer_values(name, seed=1)
    names = layer_outputs(model)
    assert len(names) >= EXPECTED[name][0] - 1
    for tensor in names:
        value = values[tensor]
        assert np.array_equal(value, np.floor(value)), tensor
        assert value.min() >= -128 and value.max() <= 127, tensor
        # A different input than the calibration one still drives every layer.
        assert np.abs(value).max() >= 8, f"{tensor} is (nearly) dead"
    for output in model.graph.output:
        assert np.isfinite(values[output.name]).all()


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_output_shifts_use_the_int8_range_on_the_calibration_input(name: str) -> None:
    """The shift is the smallest power of two that keeps the peak inside int8: peaks land in
    [64, 127] on the calibration input (layers without weights do not scale)."""
    model = build_model(name)
    values = _layer_values(name, seed=0)
    weighted_layers = {_layer_prefix(node.name) for node in _weighted_nodes(model)}
    for clip in (node for node in model.graph.node if node.op_type == "Clip"):
        if _layer_prefix(clip.name) in weighted_layers:
            peak = np.abs(values[clip.output[0]]).max()
            assert 64 <= peak <= 127, f"{clip.output[0]}: peak {peak}"


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_builds_are_deterministic(name: str) -> None:
    build = _cached_model.__wrapped__
    assert build(name).SerializeToString() == build(name).SerializeToString()


def test_build_model_returns_a_private_copy() -> None:
    first = build_model("convnet5")
    reference = first.SerializeToString()
    first.graph.node.pop()
    first.metadata_props.clear()
    assert build_model("convnet5").SerializeToString() == reference


def test_unet_unfolds_to_four_classes_at_full_resolution() -> None:
    model = build_model("unet")
    values = _layer_values("unet", seed=1)
    assert values["segmentation"].shape == (1, 4, 352, 352)
    transposed = [node for node in model.graph.node if node.op_type == "ConvTranspose"]
    assert len(transposed) == 3
    for node in transposed:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["strides"] == [2, 2] and attrs["pads"] == [1, 1, 1, 1]
        assert attrs["output_padding"] == [1, 1] and attrs["kernel_shape"] == [3, 3]
    assert sum(node.op_type == "Concat" for node in model.graph.node) == 3


@pytest.mark.parametrize(
    ("name", "depthwise"),
    [("efficientnetv2", 4), ("mobilenetv2_075", 17), ("efficientnetv2_nodw", 0), ("mobilenetv2_075_nodw", 0)],
)
def test_depthwise_convs_only_in_the_depthwise_variants(name: str, depthwise: int) -> None:
    model = build_model(name)
    groups = [
        onnx.helper.get_attribute_value(attr)
        for node in model.graph.node
        if node.op_type == "Conv"
        for attr in node.attribute
        if attr.name == "group"
    ]
    assert sum(group > 1 for group in groups) == depthwise


def test_stride_two_is_a_max_pool_before_a_stride_one_conv() -> None:
    for name in ("convnet5", "simplenet", "mobilenetv2_075", "mobilenetv2_075_nodw"):
        model = build_model(name)
        for node in model.graph.node:
            if node.op_type in ("Conv", "MaxPool", "AveragePool"):
                attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
                if node.op_type == "Conv":
                    assert set(attrs["strides"]) == {1}
                else:
                    assert "pads" not in attrs


#: MAX78000 boards HARDWARE.md §5 splits each depthwise-free variant over (the paper's split).
NODW_BOARDS = {"efficientnetv2_nodw": 2, "mobilenetv2_075_nodw": 4}


def _grow_partitions(model: HardwareModel, board: BoardProfile) -> list[tuple[int, int]]:
    """Cut points by growing each partition while the checker accepts it (fewest partitions:
    a sub-range of a fitting range fits too)."""
    ranges: list[tuple[int, int]] = []
    first, count = 0, len(model.layers)
    while first < count:
        alone = check_partition(model, first, first, board)
        assert alone.fits, f"layer {first} alone does not fit {board.name}: {alone.reasons}"
        last = first
        while last + 1 < count and check_partition(model, first, last + 1, board).fits:
            last += 1
        ranges.append((first, last))
        first = last + 1
    return ranges


@pytest.mark.parametrize(
    ("name", "block_inputs"),
    [
        ("efficientnetv2_nodw", [48, 96, 96, 128]),
        ("mobilenetv2_075_nodw", [24, 12, 20, 20, 24, 24, 24, 48, 48, 48, 48, 72, 72, 72, 120, 120, 120]),
    ],
)
def test_nodw_variants_have_no_depthwise_conv(name: str, block_inputs: list[int]) -> None:
    """Every depthwise conv of the original (4 and 17) became one full 3x3 conv in -> in on the
    block's input channels, without the expansion."""
    model = build_model(name)
    convs = [node for node in model.graph.node if node.op_type == "Conv"]
    for node in convs:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["group"] == 1, node.name
    hardware = analyze_model(model, name)
    assert not any(layer.depthwise for layer in hardware.layers)
    inits = _initializers(model)
    shapes = [inits[node.input[1]].shape for node in convs]
    square_3x3 = [shape[0] for shape in shapes if shape[2:] == (3, 3) and shape[0] == shape[1]]
    assert square_3x3 == block_inputs


@pytest.mark.parametrize(
    ("name", "bits"),
    [("efficientnetv2_nodw", {8: 20}), ("mobilenetv2_075_nodw", {8: 36, 4: 1})],
)
def test_nodw_weight_bits(name: str, bits: dict[int, int]) -> None:
    """8-bit throughout, except MobileNetV2's 1x1 head 240 -> 960 at 4 bit."""
    model = build_model(name)
    widths = json.loads(_metadata(model)[WEIGHT_BITS_KEY])
    counts: dict[int, int] = {}
    for width in widths.values():
        counts[width] = counts.get(width, 0) + 1
    assert counts == bits
    inits = _initializers(model)
    low = [name for name, width in widths.items() if width != 8]
    assert all(inits[weight].shape[:2] == (960, 240) for weight in low)


@pytest.mark.parametrize("name", sorted(NODW_BOARDS))
def test_nodw_variants_split_over_max78000_boards(name: str) -> None:
    """HARDWARE.md §5: EfficientNetV2 over 2 MAX78000s, MobileNetV2-0.75 over 4."""
    hardware = analyze_model(build_model(name), name)
    ranges = _grow_partitions(hardware, MAX78000)
    assert len(ranges) <= NODW_BOARDS[name], ranges
    assert ranges[0][0] == 0 and ranges[-1][1] == len(hardware.layers) - 1
    assert all(left[1] + 1 == right[0] for left, right in itertools.pairwise(ranges))
    for first, last in ranges:
        report = check_partition(hardware, first, last, MAX78000)
        assert report.fits, (first, last, report.reasons)
        layers = hardware.layers[first : last + 1]
        assert sum(layer.weight_bytes for layer in layers) <= MAX78000.weight_bytes
        assert len(layers) <= MAX78000.max_layers


@pytest.mark.parametrize("name", ["efficientnetv2", "mobilenetv2_075"])
def test_depthwise_originals_do_not_fit_a_max78000(name: str) -> None:
    hardware = analyze_model(build_model(name), name)
    depthwise = [layer.index for layer in hardware.layers if layer.depthwise]
    assert depthwise
    report = check_partition(hardware, depthwise[0], depthwise[0], MAX78000)
    assert not report.fits and any("depthwise" in reason for reason in report.reasons)
