"""Small ONNX models following docs/models.md, for the hardware-analysis tests.

Each layer is ``[pool] op [Relu] [Mul 2^-shift, Add 0.5, Floor, Clip -128..127]`` with
integer weights, so every activation is an int8 value carried in float32.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class GraphBuilder:
    def __init__(self, shape: tuple[int, ...], input_name: str = "input", seed: int = 0) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs = [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, list(shape))]
        self.input = input_name
        self.bits: dict[str, int] = {}
        self.rng = np.random.default_rng(seed)
        self.count = 0
        self.shapes: dict[str, tuple[int, ...]] = {input_name: shape}

    def _name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, value: np.ndarray, stem: str = "c") -> str:
        name = self._name(stem)
        self.initializers.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs: object) -> str:
        out = self._name(op.lower() + "_out")
        self.nodes.append(helper.make_node(op, inputs, [out], name=self._name(op.lower()), **attrs))
        return out

    def numerics(self, x: str, shift: int = 6) -> str:
        x = self.node("Mul", [x, self.const(np.array(2.0**-shift, np.float32))])
        x = self.node("Add", [x, self.const(np.array(0.5, np.float32))])
        x = self.node("Floor", [x])
        return self.node("Clip", [x, self.const(np.array(-128.0, np.float32)), self.const(np.array(127.0, np.float32))])

    def pool(self, x: str, kind: str = "max", size: int = 2, stride: int = 2, dims: int = 2) -> str:
        op = "MaxPool" if kind == "max" else "AveragePool"
        return self.node(op, [x], kernel_shape=[size] * dims, strides=[stride] * dims)

    def weights(self, shape: tuple[int, ...], bits: int = 8) -> str:
        low, high = (-1, 1) if bits == 1 else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
        values = self.rng.integers(low, high + 1, size=shape).astype(np.float32)
        if bits == 1:
            values[values == 0] = 1
        name = self.const(values, "w")
        if bits != 8:
            self.bits[name] = bits
        return name

    def conv(
        self,
        x: str,
        in_ch: int,
        out_ch: int,
        kernel: int = 3,
        pad: int = 1,
        dims: int = 2,
        pool: tuple[str, int, int] | None = None,
        relu: bool = True,
        clamp: bool = True,
        groups: int = 1,
        bits: int = 8,
        bias: bool = False,
        dilation: int = 1,
        stride: int = 1,
    ) -> str:
        if pool is not None:
            x = self.pool(x, pool[0], pool[1], pool[2], dims)
        w = self.weights((out_ch, in_ch // groups, *([kernel] * dims)), bits)
        inputs = [x, w]
        if bias:
            inputs.append(self.const(self.rng.integers(-128, 128, size=out_ch).astype(np.float32), "b"))
        x = self.node(
            "Conv",
            inputs,
            kernel_shape=[kernel] * dims,
            pads=[pad] * 2 * dims,
            group=groups,
            dilations=[dilation] * dims,
            strides=[stride] * dims,
        )
        if relu:
            x = self.node("Relu", [x])
        return self.numerics(x) if clamp else x

    def conv_transpose(self, x: str, in_ch: int, out_ch: int, relu: bool = False) -> str:
        w = self.weights((in_ch, out_ch, 3, 3))
        x = self.node(
            "ConvTranspose", [x, w], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1]
        )
        if relu:
            x = self.node("Relu", [x])
        return self.numerics(x)

    def linear(
        self,
        x: str,
        in_features: int,
        out_features: int,
        wide: bool = True,
        bias: bool = True,
        flatten: bool = True,
        relu: bool = False,
    ) -> str:
        if flatten:
            x = self.node("Flatten", [x], axis=1)
        w = self.weights((out_features, in_features))
        inputs = [x, w]
        if bias:
            inputs.append(self.const(self.rng.integers(-128, 128, size=out_features).astype(np.float32), "b"))
        x = self.node("Gemm", inputs, transB=1)
        if relu:
            x = self.node("Relu", [x])
        return x if wide else self.numerics(x)

    def add(self, *xs: str, clamp: bool = True) -> str:
        out = xs[0]
        for other in xs[1:]:
            out = self.node("Add", [out, other])
        return self.numerics(out, shift=0) if clamp else out

    def build(self, outputs: list[str], name: str = "test", shapes: bool = False) -> onnx.ModelProto:
        graph_outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
        graph = helper.make_graph(self.nodes, name, self.inputs, graph_outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = 8
        if self.bits:
            helper.set_model_props(model, {"synergy.weight_bits": json.dumps(self.bits)})
        model = onnx.shape_inference.infer_shapes(model)
        # Give graph outputs their inferred types so the model is complete.
        known = {v.name: v for v in model.graph.value_info}
        for output in model.graph.output:
            if output.name in known:
                output.CopyFrom(known[output.name])
        onnx.checker.check_model(model, full_check=True)
        return model


def tiny_cnn() -> onnx.ModelProto:
    """3x16x16 -> conv 8 -> mp2 conv 16 (residual) -> ap2 conv 16 -> flatten -> linear 10 -> softmax."""
    g = GraphBuilder((1, 3, 16, 16))
    a = g.conv(g.input, 3, 8)
    b = g.conv(a, 8, 16, pool=("max", 2, 2))
    c = g.conv(b, 16, 16)
    d = g.add(b, c)
    e = g.conv(d, 16, 16, pool=("avg", 2, 2), bits=4)
    f = g.linear(e, 16 * 4 * 4, 10)
    s = g.node("Softmax", [f], axis=1)
    return g.build([s], "tiny_cnn")


def sample_input(shape: tuple[int, ...], seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, size=shape).astype(np.float32)
