"""Bring your own model: ONNX exports as PyTorch writes them are accepted or refused per node.

The models are built with onnx.helper the way ``torch.onnx.export`` lays them out (torch is not
needed): node names such as ``/conv1/Conv``, tensors ``/conv1/Conv_output_0``, parameters
``conv1.weight``, float weights and biases, BatchNormalization, Dropout, Flatten or a Reshape
computed from ``Shape``, ``Gemm`` with ``transB=1`` for ``nn.Linear`` and a Softmax at the end.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from synergy.errors import ModelError
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import MAX78000
from synergy.hardware.checker import check_partition, greedy_partitions
from synergy.hardware.cycles import LayerGeometry, geometry_cycles, layer_cycles
from synergy.hardware.model import HardwareModel
from synergy.models.importer import normalize_model
from synergy.models.loader import load_model, model_from_bytes
from synergy.models.partition import split_model
from synergy.models.synth import network_description, synthesize
from synergy.models.zoo import ZOO_NAMES, build_model

Arrays = dict[str, np.ndarray]
OPSET = 17


class TorchExport:
    """Builds a graph the way torch.onnx.export names and lays it out."""

    def __init__(self, shape: list[int | str], seed: int = 0, input_name: str = "input") -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.input = input_name
        self.inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, shape)]

    def param(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.asarray(value, dtype=np.float32), name))
        return name

    def randn(self, name: str, shape: tuple[int, ...], scale: float = 0.1) -> str:
        return self.param(name, self.rng.standard_normal(shape) * scale)

    def node(self, op: str, scope: str, inputs: list[str], outputs: int = 1, **attrs: Any) -> str:
        name = f"/{scope}/{op}" if scope else f"/{op}"
        names = [f"{name}_output_{i}" for i in range(outputs)]
        self.nodes.append(helper.make_node(op, inputs, names, name=name, **attrs))
        return names[0]

    def conv(
        self,
        x: str,
        scope: str,
        cin: int,
        cout: int,
        kernel: int = 3,
        pad: int = 1,
        stride: int = 1,
        bias: bool = True,
        dims: int = 2,
    ) -> str:
        inputs = [x, self.randn(f"{scope}.weight", (cout, cin, *[kernel] * dims))]
        if bias:
            inputs.append(self.randn(f"{scope}.bias", (cout,)))
        return self.node(
            "Conv",
            scope,
            inputs,
            dilations=[1] * dims,
            group=1,
            kernel_shape=[kernel] * dims,
            pads=[pad] * 2 * dims,
            strides=[stride] * dims,
        )

    def conv_transpose(self, x: str, scope: str, cin: int, cout: int) -> str:
        w = self.randn(f"{scope}.weight", (cin, cout, 3, 3))
        return self.node(
            "ConvTranspose",
            scope,
            [x, w, self.randn(f"{scope}.bias", (cout,))],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
            output_padding=[1, 1],
        )

    def bn(self, x: str, scope: str, channels: int) -> str:
        rng = self.rng
        params = [
            self.param(f"{scope}.weight", rng.uniform(0.5, 1.5, channels)),
            self.param(f"{scope}.bias", rng.standard_normal(channels) * 0.1),
            self.param(f"{scope}.running_mean", rng.standard_normal(channels) * 0.1),
            self.param(f"{scope}.running_var", rng.uniform(0.5, 2.0, channels)),
        ]
        return self.node("BatchNormalization", scope, [x, *params], epsilon=1e-5, momentum=0.9)

    def relu(self, x: str, scope: str) -> str:
        return self.node("Relu", scope, [x])

    def maxpool(self, x: str, scope: str, size: int = 2, dims: int = 2, **attrs: Any) -> str:
        attrs = {
            "ceil_mode": 0,
            "kernel_shape": [size] * dims,
            "pads": [0] * 2 * dims,
            "strides": [size] * dims,
            **attrs,
        }
        return self.node("MaxPool", scope, [x], **attrs)

    def dropout(self, x: str, scope: str) -> str:
        ratio = self.param(f"/{scope}/ratio", np.array(0.5))
        training = f"/{scope}/training_mode"
        self.initializers.append(numpy_helper.from_array(np.array(False), training))
        return self.node("Dropout", scope, [x, ratio, training])

    def flatten(self, x: str) -> str:
        return self.node("Flatten", "", [x], axis=1)

    def linear(self, x: str, scope: str, fin: int, fout: int) -> str:
        w = self.randn(f"{scope}.weight", (fout, fin))
        b = self.randn(f"{scope}.bias", (fout,))
        return self.node("Gemm", scope, [x, w, b], alpha=1.0, beta=1.0, transB=1)

    def softmax(self, x: str) -> str:
        return self.node("Softmax", "", [x], axis=1)

    def build(self, output: str, name: str = "main_graph") -> onnx.ModelProto:
        out = helper.make_tensor_value_info("output", TensorProto.FLOAT, None)
        # torch names the graph output after the user's name: rename the last tensor.
        for node in self.nodes:
            for i, o in enumerate(node.output):
                if o == output:
                    node.output[i] = "output"
            for i, o in enumerate(node.input):
                if o == output:
                    node.input[i] = "output"
        graph = helper.make_graph(self.nodes, name, self.inputs, [out], self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="pytorch")
        model.ir_version = 8
        inferred = onnx.shape_inference.infer_shapes(model)
        model.graph.output[0].CopyFrom(next(o for o in inferred.graph.output if o.name == "output"))
        onnx.checker.check_model(model, full_check=True)
        return model


def lenet(reshape: str = "flatten", bn: bool = True, dropout: bool = True) -> onnx.ModelProto:
    """Conv-BN-ReLU-MaxPool x2, Flatten (or a Reshape), Linear-ReLU-Dropout, Linear, Softmax."""
    batch: int | str = "batch_size" if reshape == "shape" else 1
    t = TorchExport([batch, 3, 16, 16])
    x = t.conv(t.input, "conv1", 3, 8, bias=not bn)
    if bn:
        x = t.bn(x, "bn1", 8)
    x = t.maxpool(t.relu(x, "relu"), "pool")
    x = t.conv(x, "conv2", 8, 16)
    if bn:
        x = t.bn(x, "bn2", 16)
    x = t.relu(x, "relu_1")
    if dropout:
        x = t.dropout(x, "drop1")
    x = t.maxpool(x, "pool_1")
    if reshape == "flatten":
        x = t.flatten(x)
    elif reshape == "constant":  # x.view(1, -1) with static shapes
        target = t.node("Constant", "", [], value=numpy_helper.from_array(np.array([1, -1], np.int64)))
        x = t.node("Reshape", "", [x, target])
    else:  # x.view(x.size(0), -1) exported with a dynamic batch
        shape = t.node("Shape", "", [x])
        index = t.node("Constant", "", [], value=numpy_helper.from_array(np.array(0, np.int64)))
        size = t.node("Gather", "", [shape, index], axis=0)
        axes = t.param("/Unsqueeze_axes", np.array([0]))
        t.initializers[-1] = numpy_helper.from_array(np.array([0], np.int64), "/Unsqueeze_axes")
        batch_dim = t.node("Unsqueeze", "", [size, axes])
        minus_one = t.param("/Concat_minus_one", np.array([-1]))
        t.initializers[-1] = numpy_helper.from_array(np.array([-1], np.int64), "/Concat_minus_one")
        target = t.node("Concat", "", [batch_dim, minus_one], axis=0)
        x = t.node("Reshape", "", [x, target])
    x = t.relu(t.linear(x, "fc1", 16 * 4 * 4, 32), "relu_2")
    if dropout:
        x = t.dropout(x, "drop2")
    x = t.softmax(t.linear(x, "fc2", 32, 10))
    return t.build(x)


def run(model: onnx.ModelProto | bytes, feeds: Arrays) -> Arrays:
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, {i.name: feeds[i.name] for i in session.get_inputs()}), strict=True))


def int8_input(model: onnx.ModelProto, seed: int = 3) -> Arrays:
    rng = np.random.default_rng(seed)
    feeds: Arrays = {}
    for info in model.graph.input:
        dims = [d.dim_value or 1 for d in info.type.tensor_type.shape.dim]
        feeds[info.name] = rng.integers(-128, 128, size=dims).astype(np.float32)
    return feeds


def assert_same_outputs(before: onnx.ModelProto, after: onnx.ModelProto) -> None:
    feeds = int8_input(after)
    expected, actual = run(before, feeds), run(after, feeds)
    assert expected.keys() == actual.keys()
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-4, atol=1e-5, err_msg=name)


def node_names(model: onnx.ModelProto) -> list[str]:
    return [n.name for n in model.graph.node]


# --- loading and normalising -------------------------------------------------------------------


def test_a_pytorch_export_loads_from_a_file_normalised(tmp_path: Path) -> None:
    original = lenet()
    path = tmp_path / "lenet_bn.onnx"
    path.write_bytes(original.SerializeToString())
    model, name = load_model(str(path))
    assert name == "lenet_bn"
    ops = [n.op_type for n in model.graph.node]
    assert "BatchNormalization" not in ops and "Dropout" not in ops
    # Node names are kept; only the folded / removed nodes are gone.
    assert set(node_names(model)) <= set(node_names(original))
    assert "/conv1/Conv" in node_names(model) and "/fc1/Gemm" in node_names(model)
    # Folded statistics are gone from the initializers; the Conv gained a bias.
    initializers = {t.name for t in model.graph.initializer}
    assert not any("running" in name for name in initializers)
    conv1 = next(n for n in model.graph.node if n.name == "/conv1/Conv")
    assert len(conv1.input) == 3 and conv1.output[0] == "/bn1/BatchNormalization_output_0"
    assert model.graph.value_info, "shape inference ran"
    onnx.checker.check_model(model, full_check=True)
    assert_same_outputs(original, model)


def test_uploaded_bytes_are_normalised_too() -> None:
    model = model_from_bytes(lenet().SerializeToString(), "upload.onnx")
    assert "BatchNormalization" not in [n.op_type for n in model.graph.node]


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_zoo_models_are_already_normal(name: str) -> None:
    model = build_model(name)
    assert normalize_model(model) is model


@pytest.mark.parametrize(
    "build",
    [
        lambda: lenet(),
        lambda: lenet(reshape="constant"),
        lambda: lenet(reshape="shape"),
        lambda: lenet(bn=False, dropout=True),
    ],
    ids=["flatten", "reshape_constant", "reshape_shape_chain", "dropout_only"],
)
def test_normalising_keeps_the_outputs(build: object) -> None:
    assert callable(build)
    original = build()
    normal = normalize_model(original)
    assert normal is not original
    assert_same_outputs(original, normal)


def test_batch_norm_folds_into_gemm_and_conv_transpose() -> None:
    t = TorchExport([1, 4, 8, 8], seed=5)
    x = t.relu(t.bn(t.conv(t.input, "conv1", 4, 8, bias=False), "bn1", 8), "relu")
    x = t.relu(t.bn(t.conv_transpose(x, "up", 8, 8), "bn_up", 8), "relu_1")
    x = t.maxpool(x, "pool", size=4)
    x = t.flatten(x)
    x = t.relu(t.bn(t.linear(x, "fc1", 8 * 4 * 4, 16), "bn_fc", 16), "relu_2")
    model = t.build(t.softmax(t.linear(x, "fc2", 16, 4)))
    normal = normalize_model(model)
    assert "BatchNormalization" not in [n.op_type for n in normal.graph.node]
    assert_same_outputs(model, normal)
    hw = analyze_model(normal, "bn_everywhere")
    assert [layer.op for layer in hw.layers] == ["conv2d", "convtranspose2d", "passthrough", "linear", "linear"]


def test_reshape_from_the_batch_size_becomes_a_flatten() -> None:
    model = lenet(reshape="shape")
    normal = normalize_model(model)
    ops = [n.op_type for n in normal.graph.node]
    assert "Shape" not in ops and "Gather" not in ops and "Concat" not in ops
    reshape = next(n for n in normal.graph.node if n.name == "/Reshape")
    assert reshape.op_type == "Flatten" and len(reshape.input) == 1
    dims = normal.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 16, 16]
    hw = analyze_model(normal, "view")
    assert hw.layers[3].nodes == ("/Reshape", "/fc1/Gemm", "/relu_2/Relu") and hw.layers[3].flatten


def test_global_average_pool_becomes_a_standalone_pooling_layer() -> None:
    t = TorchExport([1, 3, 8, 8])
    x = t.relu(t.conv(t.input, "conv1", 3, 16), "relu")
    x = t.node("GlobalAveragePool", "avgpool", [x])
    x = t.softmax(t.linear(t.flatten(x), "fc", 16, 5))
    model = t.build(x)
    normal = normalize_model(model)
    assert_same_outputs(model, normal)
    hw = analyze_model(normal, "gap")
    assert [layer.op for layer in hw.layers] == ["conv2d", "passthrough", "linear"]
    pool, linear = hw.layers[1], hw.layers[2]
    assert (pool.pool, pool.pool_size, pool.pool_stride, pool.out_shape) == ("avg", (8, 8), (8, 8), (1, 16, 1, 1))
    assert not linear.flatten and linear.in_shape == (1, 16, 1, 1)


@pytest.mark.parametrize("keepdims", [0, 1])
def test_a_spatial_mean_becomes_a_pooling_layer(keepdims: int) -> None:
    t = TorchExport([1, 3, 8, 8])
    x = t.relu(t.conv(t.input, "conv1", 3, 16), "relu")
    x = t.node("ReduceMean", "", [x], axes=[2, 3], keepdims=keepdims)  # x.mean((2, 3))
    if keepdims:
        x = t.flatten(x)
    model = t.build(t.softmax(t.linear(x, "fc", 16, 5)))
    normal = normalize_model(model)
    assert_same_outputs(model, normal)
    ops = {n.name: n.op_type for n in normal.graph.node}
    assert ops["/ReduceMean"] == "AveragePool"
    assert ("/ReduceMean_flatten" in ops) == (not keepdims)
    hw = analyze_model(normal, "mean")
    assert [layer.op for layer in hw.layers] == ["conv2d", "passthrough", "linear"]
    assert hw.layers[1].pool_size == (8, 8) and hw.layers[1].out_shape == (1, 16, 1, 1)


def test_identities_that_rename_go_copies_stay() -> None:
    t = TorchExport([1, 4, 8, 8])
    a = t.relu(t.conv(t.input, "conv1", 4, 4), "relu")
    renamed = t.node("Identity", "rename", [a])
    b = t.relu(t.conv(renamed, "conv2", 4, 4), "relu_1")
    copy = t.node("Identity", "copy", [b])  # b is read by conv3 too: a passthrough copy
    c = t.conv(b, "conv3", 4, 4)
    out = t.node("Add", "", [c, copy])
    end = t.node("Identity", "end", [out])  # torch's graph-output Identity
    model = t.build(end)
    normal = normalize_model(model)
    names = node_names(normal)
    assert "/rename/Identity" not in names and "/end/Identity" not in names
    assert "/copy/Identity" in names
    assert [o.name for o in normal.graph.output] == ["output"]
    assert next(n for n in normal.graph.node if n.name == "/Add").output[0] == "output"
    assert_same_outputs(model, normal)


def test_an_identity_from_the_input_to_an_output_is_kept() -> None:
    t = TorchExport([1, 4, 8, 8])
    echo = helper.make_node("Identity", ["input"], ["echo"], name="/echo/Identity")
    x = t.relu(t.conv(t.input, "conv1", 4, 4), "relu")
    model = t.build(x)
    model.graph.node.append(echo)
    model.graph.output.append(helper.make_tensor_value_info("echo", TensorProto.FLOAT, [1, 4, 8, 8]))
    onnx.checker.check_model(model)
    # Removing it would rename the graph input or output.
    assert normalize_model(model) is model


def test_batch_norm_that_cannot_fold_is_reported_by_name() -> None:
    t = TorchExport([1, 4, 8, 8])
    x = t.relu(t.conv(t.input, "conv1", 4, 8), "relu")
    x = t.bn(x, "bn1", 8)  # after the ReLU: nothing to fold into
    x = t.relu(t.conv(x, "conv2", 8, 8), "relu_1")
    model = model_from_bytes(t.build(x).SerializeToString(), "bn_after_relu.onnx")
    assert "BatchNormalization" in [n.op_type for n in model.graph.node]
    with pytest.raises(ModelError) as info:
        analyze_model(model, "bn_after_relu")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "'/bn1/BatchNormalization' (BatchNormalization)" in lines[1] and "fold" in lines[1]


# --- the analysis --------------------------------------------------------------------------------


def test_pooling_before_a_linear_becomes_its_own_layer() -> None:
    hw = analyze_model(normalize_model(lenet()), "lenet")
    assert [layer.op for layer in hw.layers] == ["conv2d", "conv2d", "passthrough", "linear", "linear"]
    conv1, conv2, pool, fc1, fc2 = hw.layers
    assert conv1.nodes == ("/conv1/Conv", "/relu/Relu") and conv1.bias_bytes == 8
    assert conv2.pool == "max" and conv2.nodes[0] == "/pool/MaxPool"
    assert pool.nodes == ("/pool_1/MaxPool",)
    assert (pool.pool, pool.pool_size, pool.pool_stride) == ("max", (2, 2), (2, 2))
    assert pool.in_shape == (1, 16, 8, 8) and pool.out_shape == (1, 16, 4, 4) and pool.weights == 0
    assert fc1.flatten and fc1.in_shape == (1, 16, 4, 4) and fc1.nodes == ("/Flatten", "/fc1/Gemm", "/relu_2/Relu")
    assert fc1.weights == 256 * 32 and fc1.activation == "relu"
    assert fc2.output_width == 32 and fc2.out_bytes == 10 * 4
    # HARDWARE.md §2 passthrough: Hp * Wp * (d + m * s), d = m * E * (ph * pw + 1).
    m, operands, slots = 1, 1, 1
    d = m * operands * (2 * 2 + 1)
    assert pool.cycles == 4 * 4 * (d + m * slots) == 96
    geometry = LayerGeometry(16, 4, 4, 16, 4, pool_rows=2, pool_cols=2, passthrough=True, out_slots=1)
    assert geometry_cycles(geometry) == pool.cycles == layer_cycles(pool)


def test_softmax_is_cpu_work_and_float_cuts_travel_as_float32() -> None:
    hw = analyze_model(normalize_model(lenet()), "lenet")
    assert [(op.name, op.op_type, op.after_layer) for op in hw.cpu_ops] == [("/Softmax", "Softmax", 4)]
    assert hw.inputs[0].dtype == "int8"  # the graph input is int8 samples (docs/models.md)
    # Nothing clamps to int8: every cut carries float32 values, 4 bytes each.
    for cut in hw.cuts:
        assert cut.tensors and all(t.dtype == "float32" for t in cut.tensors)
    assert hw.cuts[2].tensors[0].name == "/pool_1/MaxPool_output_0"
    assert hw.cuts[2].nbytes == 16 * 4 * 4 * 4
    assert hw.outputs[0].dtype == "float32" and hw.outputs[0].shape == (1, 10)


def chain(model: onnx.ModelProto, hw: HardwareModel, cuts: list[int]) -> None:
    feeds = int8_input(model)
    expected = run(model, feeds)
    tensors = dict(feeds)
    bounds = [0, *(c + 1 for c in cuts), len(hw.layers)]
    for first, end in itertools.pairwise(bounds):
        part = split_model(model, hw, first, end - 1)
        produced = run(part.onnx, tensors)
        for spec in part.outputs:
            assert produced[spec.name].shape == spec.shape
        tensors.update(produced)
        # The agent analyses the partition again: it must read back as the same layers.
        sub = analyze_model(part.model(), f"{hw.name}_{first}_{end - 1}")
        assert sub.inputs == hw.entering(first) and sub.outputs == hw.leaving(end - 1)
        assert [replace(layer, index=layer.index + first) for layer in sub.layers] == list(hw.layers[first:end])
    for name, value in expected.items():
        np.testing.assert_allclose(tensors[name], value, rtol=1e-5, atol=1e-6, err_msg=f"cut at {cuts}")


@pytest.mark.parametrize("reshape", ["flatten", "shape"])
def test_partitions_run_and_equal_the_whole_model(reshape: str) -> None:
    model = normalize_model(lenet(reshape=reshape))
    hw = analyze_model(model, "lenet")
    count = len(hw.layers)
    for cut in range(count - 1):
        chain(model, hw, [cut])
    chain(model, hw, list(range(count - 1)))
    # Right after the standalone pooling layer: the pooled tensor crosses, as float32.
    part = split_model(model, hw, 2, 2)
    assert [n.name for n in part.model().graph.node] == ["/pool_1/MaxPool"]
    assert [t.dtype for t in part.outputs] == ["float32"]


def test_the_checker_and_synthesis_take_the_standalone_pooling_layer(tmp_path: Path) -> None:
    model = normalize_model(lenet())
    hw = analyze_model(model, "lenet")
    assert check_partition(hw, 0, len(hw.layers) - 1, MAX78000).fits
    assert greedy_partitions(hw, MAX78000) == ((0, len(hw.layers) - 1),)
    entry = network_description(hw, 0, len(hw.layers) - 1, MAX78000)["layers"][2]
    assert entry["operation"] == "Passthrough" and entry["max_pool"] == 2 and entry["pool_stride"] == 2
    manifest = synthesize(model, hw, [2], MAX78000, tmp_path)
    assert len(manifest["partitions"]) == 2


def test_shared_weights_are_not_changed_for_the_other_reader() -> None:
    t = TorchExport([1, 4, 8, 8], seed=9)
    w = t.randn("shared.weight", (4, 4, 3, 3))
    a = t.node("Conv", "c1", [t.input, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    a = t.relu(t.bn(a, "bn1", 4), "r1")
    b = t.relu(t.node("Conv", "c2", [a, w], kernel_shape=[3, 3], pads=[1, 1, 1, 1]), "r2")
    model = t.build(b)
    normal = normalize_model(model)
    convs = {n.name: n for n in normal.graph.node if n.op_type == "Conv"}
    assert convs["/c2/Conv"].input[1] == "shared.weight" and convs["/c1/Conv"].input[1] != "shared.weight"
    assert_same_outputs(model, normal)


def test_a_clip_without_rounding_is_a_float_layer() -> None:
    t = TorchExport([1, 3, 8, 8])
    x = t.conv(t.input, "conv1", 3, 4)
    x = t.node("Clip", "act", [x, t.param("lo", np.array(-128.0)), t.param("hi", np.array(127.0))])
    x = t.conv(x, "conv2", 4, 4)
    hw = analyze_model(normalize_model(t.build(x)), "hardtanh")
    assert not hw.layers[0].clamped and hw.cuts[0].tensors[0].dtype == "float32"


# --- refusals ----------------------------------------------------------------------------------


def _relu6() -> onnx.ModelProto:
    t = TorchExport([1, 3, 8, 8])
    x = t.conv(t.input, "conv1", 3, 4)
    x = t.node("Clip", "act", [x, t.param("lo", np.array(0.0)), t.param("hi", np.array(6.0))])
    return t.build(t.conv(x, "conv2", 4, 4))


def _concat_rows() -> onnx.ModelProto:
    t = TorchExport([1, 3, 8, 8])
    a, b = t.conv(t.input, "c1", 3, 4), t.conv(t.input, "c2", 3, 4)
    return t.build(t.conv(t.node("Concat", "", [a, b], axis=2), "c3", 4, 4))


def _matmul_4d() -> onnx.ModelProto:
    t = TorchExport([1, 3, 8, 8])
    x = t.relu(t.conv(t.input, "conv1", 3, 4), "relu")
    return t.build(t.node("MatMul", "fc", [x, t.randn("fc.weight", (8, 8))]))


@pytest.mark.parametrize(
    ("build", "node", "reason"),
    [
        (_relu6, "'/act/Clip' (Clip)", "Clip to [0.0, 6.0]"),
        (_concat_rows, "'/Concat' (Concat)", "axis 2"),
        (_matmul_4d, "'/fc/MatMul' (MatMul)", "4-D tensor"),
    ],
    ids=["relu6", "concat_rows", "matmul_4d"],
)
def test_what_the_chip_cannot_do_is_named(build: object, node: str, reason: str) -> None:
    assert callable(build)
    model = model_from_bytes(build().SerializeToString(), "upload.onnx")
    with pytest.raises(ModelError) as info:
        analyze_model(model, "bad")
    lines = str(info.value).splitlines()
    assert len(lines) == 2 and node in lines[1] and reason in lines[1]


def test_unsupported_operators_in_the_middle_are_one_error_naming_each_node() -> None:
    t = TorchExport([1, 3, 16, 16])
    x = t.relu(t.bn(t.conv(t.input, "conv1", 3, 8), "bn1", 8), "relu")
    x = t.node("Erf", "act", [x])
    x = t.relu(t.conv(x, "conv2", 8, 8, kernel=5, pad=2), "relu_1")
    x = t.maxpool(x, "pool", size=3, pads=[1, 1, 1, 1], strides=[2, 2])
    x = t.softmax(t.linear(t.flatten(x), "fc", 8 * 8 * 8, 10))
    model = model_from_bytes(t.build(x).SerializeToString(), "upload.onnx")
    with pytest.raises(ModelError) as info:
        analyze_model(model, "gelu_net")
    message = str(info.value)
    lines = message.splitlines()
    assert lines[0] == "model 'gelu_net' cannot run on a MAX7800x accelerator:"
    assert len(lines) == 4, message
    assert "'/act/Erf' (Erf)" in lines[1] and "cannot run Erf" in lines[1] and "between layers 0 and 1" in lines[1]
    assert "'/conv2/Conv' (Conv)" in lines[2] and "5x5" in lines[2]
    assert "'/pool/MaxPool' (MaxPool)" in lines[3] and "padding" in lines[3]
    assert "Traceback" not in message


def test_an_lstm_between_convolutions_is_refused_naming_every_node() -> None:
    t = TorchExport([1, 16, 32])
    x = t.relu(t.conv(t.input, "conv1", 16, 16, dims=1), "relu")
    seq = t.node("Transpose", "", [x], perm=[2, 0, 1])  # [L, 1, C]
    hidden = 16
    w = t.randn("lstm.weight_ih", (1, 4 * hidden, 16))
    r = t.randn("lstm.weight_hh", (1, 4 * hidden, hidden))
    y = t.node("LSTM", "lstm", [seq, w, r], hidden_size=hidden)  # [L, 1, 1, H]
    axes = t.param("/Squeeze_axes", np.array([1]))
    t.initializers[-1] = numpy_helper.from_array(np.array([1], np.int64), axes)
    y = t.node("Squeeze", "", [y, axes])
    back = t.node("Transpose", "back", [y], perm=[1, 2, 0])  # [1, H, L]
    x = t.relu(t.conv(back, "conv2", hidden, 8, dims=1), "relu_1")
    model = model_from_bytes(t.build(x).SerializeToString(), "lstm.onnx")
    with pytest.raises(ModelError) as info:
        analyze_model(model, "lstm_net")
    message = str(info.value)
    for node in ("/Transpose", "/lstm/LSTM", "/Squeeze", "/back/Transpose"):
        assert f"node {node!r}" in message
    assert len(message.splitlines()) == 5 and "Traceback" not in message


def test_a_stride_2_convolution_is_refused_naming_the_stride() -> None:
    t = TorchExport([1, 3, 16, 16])
    x = t.relu(t.bn(t.conv(t.input, "conv1", 3, 8), "bn1", 8), "relu")
    x = t.relu(t.bn(t.conv(x, "conv2", 8, 16, stride=2, bias=False), "bn2", 16), "relu_1")
    x = t.softmax(t.linear(t.flatten(x), "fc", 16 * 8 * 8, 10))
    model = model_from_bytes(t.build(x).SerializeToString(), "resnetish.onnx")
    with pytest.raises(ModelError) as info:
        analyze_model(model, "resnetish")
    lines = str(info.value).splitlines()
    assert len(lines) == 2
    assert "layer 1: node '/conv2/Conv' (Conv): stride [2, 2]" in lines[1]
    assert "pooling" in lines[1]


@pytest.mark.parametrize(("size", "refused"), [(15, True), (16, False)])
def test_ceil_mode_pooling_is_refused_only_when_it_adds_a_partial_window(size: int, refused: bool) -> None:
    t = TorchExport([1, 3, size, size])
    x = t.relu(t.conv(t.input, "conv1", 3, 8), "relu")
    x = t.maxpool(x, "pool", ceil_mode=1)
    pooled = math.ceil((size - 2) / 2) + 1
    x = t.conv(x, "conv2", 8, 8)
    model = model_from_bytes(t.build(x).SerializeToString(), "ceil.onnx")
    if not refused:
        hw = analyze_model(model, "ceil")
        assert hw.layers[1].in_shape == (1, 8, size, size) and hw.layers[1].out_shape == (1, 8, pooled, pooled)
        return
    with pytest.raises(ModelError) as info:
        analyze_model(model, "ceil")
    assert "'/pool/MaxPool' (MaxPool)" in str(info.value) and "ceil_mode" in str(info.value)
