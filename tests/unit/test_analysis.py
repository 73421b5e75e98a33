"""ONNX -> hardware layers, CPU work and cut points (synergy.hardware.analysis)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from synergy.errors import ModelError
from synergy.hardware.analysis import analyze_model
from synergy.hardware.model import TensorSpec
from synergy.models.zoo import ZOO_NAMES, build_model

try:  # tests/unit is not a package: pytest puts it on sys.path
    from hw_builders import GraphBuilder, tiny_cnn
except ImportError:  # pragma: no cover - if tests/unit becomes a package
    from tests.unit.hw_builders import GraphBuilder, tiny_cnn


def test_tiny_cnn_layers() -> None:
    hw = analyze_model(tiny_cnn(), "tiny")
    assert [layer.op for layer in hw.layers] == ["conv2d", "conv2d", "conv2d", "eltwise", "conv2d", "linear"]
    first, pooled, _, add, avg, linear = hw.layers
    assert first.in_shape == (1, 3, 16, 16) and first.out_shape == (1, 8, 16, 16)
    assert (first.kernel, first.pad, first.activation, first.in_channels, first.out_channels) == (
        (3, 3),
        1,
        "relu",
        3,
        8,
    )
    assert first.weights == 8 * 3 * 9 and first.weight_bytes == 216 and first.bias_bytes == 0
    assert first.out_bytes == 8 * 16 * 16 and first.output_width == 8 and first.clamped
    assert (pooled.pool, pooled.pool_size, pooled.pool_stride) == ("max", (2, 2), (2, 2))
    assert add.eltwise == "add" and add.eltwise_operands == 2 and len(add.inputs) == 2
    assert avg.pool == "avg" and avg.weight_bits == 4 and avg.weight_bytes == avg.weights // 2
    assert linear.flatten and linear.in_shape == (1, 16, 4, 4) and linear.in_channels == 16
    assert linear.output_width == 32 and not linear.clamped and linear.out_bytes == 10 * 4
    assert linear.bias_bytes == 10 and linear.weights == 10 * 256
    assert all(layer.cycles > 0 for layer in hw.layers)
    assert hw.total_cycles == 1 + sum(layer.cycles for layer in hw.layers)


def test_tiny_cnn_cpu_work_and_cuts() -> None:
    hw = analyze_model(tiny_cnn(), "tiny")
    assert [(op.op_type, op.after_layer) for op in hw.cpu_ops] == [("Softmax", 5)]
    assert hw.cpu_ops[0].cycles > 0
    assert hw.inputs == (TensorSpec("input", (1, 3, 16, 16), "int8"),)
    assert hw.outputs[0].dtype == "float32" and hw.outputs[0].shape == (1, 10)
    assert len(hw.cuts) == len(hw.layers) - 1
    # The skip connection crosses the cut between the residual's two convs.
    assert [t.name for t in hw.cuts[2].tensors] == [hw.layers[1].output, hw.layers[2].output]
    assert all(t.dtype == "int8" for cut in hw.cuts for t in cut.tensors)
    assert hw.cuts[0].nbytes == 8 * 16 * 16
    assert hw.entering(3) == hw.cuts[2].tensors and hw.leaving(5) == hw.outputs


def test_pooling_after_the_eltwise_and_concat() -> None:
    g = GraphBuilder((1, 4, 8, 8))
    a = g.conv(g.input, 4, 8)
    b = g.conv(a, 8, 8)
    pooled_sum = g.pool(g.node("Add", [a, b]))
    c = g.conv(pooled_sum, 8, 8)
    d = g.conv(c, 8, 4)
    cat = g.node("Concat", [c, d], axis=1)
    e = g.conv(cat, 12, 6, kernel=1, pad=0)
    hw = analyze_model(g.build([e]), "mixed")
    fused = hw.layers[2]
    assert (fused.eltwise, fused.pool, fused.pool_first, fused.eltwise_operands) == ("add", "max", False, 2)
    assert fused.in_shape == (1, 8, 8, 8) and fused.out_shape == (1, 8, 4, 4)
    last = hw.layers[-1]
    assert last.in_channels == 12 and last.inputs == (hw.layers[2].output, hw.layers[3].output)
    assert last.kernel == (1, 1) and last.output_width == 8


def test_conv1d_matmul_bias_and_depthwise() -> None:
    g = GraphBuilder((1, 16, 32))
    x = g.conv(g.input, 16, 16, kernel=5, pad=2, dims=1)
    x = g.conv(x, 16, 16, kernel=3, pad=1, dims=1, groups=16, pool=("max", 2, 2))
    flat = g.node("Flatten", [x], axis=1)
    w = g.weights((16 * 16, 5))
    y = g.node("MatMul", [flat, w])
    y = g.node("Add", [y, g.const(np.arange(5, dtype=np.float32))])
    hw = analyze_model(g.build([y]), "one_d")
    conv1d, depthwise, linear = hw.layers
    assert conv1d.op == "conv1d" and conv1d.kernel == (5,) and conv1d.pad == 2
    assert depthwise.depthwise and depthwise.groups == 16 and depthwise.weights == 16 * 3
    assert linear.op == "linear" and linear.bias_bytes == 5 and linear.flatten and linear.output_width == 32


def test_unsupported_operators_are_reported_in_one_error() -> None:
    g = GraphBuilder((1, 3, 16, 16))
    a = g.conv(g.input, 3, 8, stride=2)
    b = g.conv(a, 8, 8, kernel=5, pad=2)
    s = g.node("Sigmoid", [b])
    c = g.conv(s, 8, 4)
    model = g.build([c])
    with pytest.raises(ModelError) as info:
        analyze_model(model, "bad")
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0].startswith("model 'bad' cannot run")
    assert any("layer 0" in line and "(Conv)" in line and "stride" in line for line in lines)
    assert any("layer 1" in line and "5x5" in line for line in lines)
    assert any("(Sigmoid)" in line and "cannot run Sigmoid" in line for line in lines)
    assert "Traceback" not in message


def test_analysis_is_cached_and_keyed_by_structure() -> None:
    model = tiny_cnn()
    assert analyze_model(model, "tiny") is analyze_model(model, "tiny")
    assert analyze_model(model, "other").name == "other"


# HARDWARE.md §5: layers, weights and weight bytes (at the zoo's bit widths).
ZOO_FACTS = {
    "convnet5": (5, 71_148, 71_148, 10),
    "kws20_v3": (9, 169_472, 169_472, None),
    "simplenet": (14, 381_792, 165_228, None),
    "ressimplenet": (17, 381_792, 381_792, None),
    "widenet": (14, 725_128, 312_200, None),
    "unet": (19, 278_176, 278_176, None),
    "efficientnetv2": (33, 753_952, 753_952, 5_236),
    "mobilenetv2_075": (73, 1_341_960, 1_341_960, None),
}


@pytest.mark.parametrize("name", sorted(ZOO_FACTS))
def test_zoo_counts_match_hardware_md(name: str) -> None:
    layers, weights, weight_bytes, bias = ZOO_FACTS[name]
    hw = analyze_model(build_model(name), name)
    assert len(hw.layers) == layers
    assert sum(layer.weights for layer in hw.layers) == weights
    assert hw.weight_bytes == weight_bytes
    if bias is not None:
        assert sum(layer.bias_bytes for layer in hw.layers) == bias


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_every_zoo_model_analyses(name: str) -> None:
    hw = analyze_model(build_model(name), name)
    assert hw.layers[-1].output_width in (8, 32)
    assert all(layer.index == i for i, layer in enumerate(hw.layers))
    for cut in hw.cuts:
        assert cut.tensors, f"cut after layer {cut.after_layer} carries nothing"


def test_unet_unfolds_on_the_cpu() -> None:
    hw = analyze_model(build_model("unet"), "unet")
    assert [op.after_layer for op in hw.cpu_ops] == [len(hw.layers) - 1]
    assert hw.layers[0].in_shape == (1, 48, 88, 88)


def test_a_partition_reads_back_as_its_layers() -> None:
    from synergy.models.partition import split_model

    model = tiny_cnn()
    hw = analyze_model(model, "tiny")
    part = split_model(model, hw, 2, 4)
    sub = analyze_model(onnx.load_from_string(part.onnx), "tiny_2_4")
    assert [layer.op for layer in sub.layers] == [layer.op for layer in hw.layers[2:5]]
    assert [layer.cycles for layer in sub.layers] == [layer.cycles for layer in hw.layers[2:5]]
    assert sub.inputs == hw.entering(2) and sub.outputs == hw.leaving(4)
