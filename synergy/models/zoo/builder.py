"""Write an ONNX graph one hardware layer at a time, following docs/models.md exactly.

Each call to :meth:`ModelBuilder.layer` appends one MAX7800x hardware layer as the node chain
the analyser expects::

    [Add | Sub | Concat] -> [MaxPool | AveragePool] -> [Conv | ConvTranspose | Flatten+Gemm
    | Identity] -> [Relu] -> Mul(2^-shift) -> Add(0.5) -> Floor -> Clip(-128, 127)

The last layer of a classifier may be ``wide`` (32-bit output): it stops after the op.

Weights are deterministic integers in the range of the layer's bit width, drawn from one
``numpy.random.default_rng(seed)`` per model in layer order, so the same model always has the
same bytes. Each layer's output shift is calibrated right away: the builder evaluates the new
layer with the numpy reference (:mod:`.reference`) on the activations of a deterministic int8
input and picks the power of two that brings the largest value just inside [-128, 127].

Names are readable and unique: node ``l03_conv``, ``l03_relu``, ``l03_q_mul``...; weight
``l03_conv_w`` / ``l03_conv_b``; the layer's int8 output tensor ``l03_out``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from synergy.models.zoo import reference
from synergy.models.zoo.reference import Array

__all__ = [
    "Conv",
    "ConvTranspose",
    "LayerOp",
    "Linear",
    "ModelBuilder",
    "OPSET",
    "Passthrough",
    "Pool",
    "WEIGHT_BITS_KEY",
    "layer_outputs",
    "sample_input",
    "with_layer_outputs",
]

#: The opset the zoo writes (docs/models.md accepts 13 to 21).
OPSET = 17
#: IR version 8 is the one that introduced opset 17; older runtimes load it too.
IR_VERSION = 8
#: metadata_props key holding {weight initializer name: bit width} as JSON.
WEIGHT_BITS_KEY = "synergy.weight_bits"
#: Bit widths the accelerator supports for weights.
SUPPORTED_WEIGHT_BITS = (1, 2, 4, 8)
#: int8 activation range every hardware layer clamps to.
INT8_MIN, INT8_MAX = -128, 127
#: Range of the output shift the izer accepts for one layer (assumption: +-15, as its
#: ``output_shift`` field); a calibrated shift outside is clamped.
MAX_OUTPUT_SHIFT = 15

#: Shared constants of the requantize chain (one initializer each for the whole model).
_HALF = "q_half"
_CLIP_MIN = "q_min"
_CLIP_MAX = "q_max"


@dataclass(frozen=True)
class Pool:
    """Pooling fused before the op: ``kind`` "max" or "avg", square window, no padding."""

    kind: Literal["max", "avg"]
    size: int = 2
    #: 0 means the same as ``size`` (the usual non-overlapping pooling).
    stride: int = 0


@dataclass(frozen=True)
class Conv:
    """``Conv`` stride 1 (1-D or 2-D from the input rank); depthwise means group = channels."""

    out_channels: int
    kernel: int = 3
    pad: int = 1
    depthwise: bool = False
    bias: bool = False


@dataclass(frozen=True)
class ConvTranspose:
    """``ConvTranspose`` 3x3, strides 2, pads 1, output_padding 1: upsamples x2."""

    out_channels: int
    bias: bool = False


@dataclass(frozen=True)
class Linear:
    """``Flatten`` + ``Gemm`` (weight [out, in], transB=1)."""

    out_features: int
    bias: bool = False


@dataclass(frozen=True)
class Passthrough:
    """``Identity``: the chip's passthrough / re-format layer (copies data to a new place)."""


LayerOp = Conv | ConvTranspose | Linear | Passthrough | None


def _int8_samples(shape: Sequence[int], seed: int) -> Array:
    rng = np.random.default_rng(seed)
    return rng.integers(INT8_MIN, INT8_MAX + 1, size=tuple(shape)).astype(np.float64)


def sample_input(model: onnx.ModelProto, seed: int = 0) -> NDArray[np.float32]:
    """A deterministic int8-valued float32 input for ``model``'s single graph input.

    Seed 0 is the input the builder calibrated the output shifts on.
    """
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return _int8_samples(dims, seed).astype(np.float32)


def layer_outputs(model: onnx.ModelProto) -> list[str]:
    """Names of the int8 hardware-layer outputs (the ``Clip`` outputs), in graph order."""
    return [node.output[0] for node in model.graph.node if node.op_type == "Clip"]


def with_layer_outputs(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` that also exposes every hardware-layer output as a graph output."""
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    known = {output.name for output in exposed.graph.output}
    for name in layer_outputs(model):
        if name not in known:
            exposed.graph.output.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, None))
    return exposed


def _choose_shift(values: Array) -> int:
    """The power-of-two output shift that puts the largest magnitude just inside int8.

    A positive shift divides (the usual case), a negative one multiplies small accumulators
    up so that weak layers still use the int8 range.
    """
    peak = float(np.max(np.abs(values))) if values.size else 0.0
    if peak == 0.0:
        return 0
    shift = math.ceil(math.log2(peak / INT8_MAX))
    return max(-MAX_OUTPUT_SHIFT, min(MAX_OUTPUT_SHIFT, shift))


@dataclass
class ModelBuilder:
    """Accumulates nodes, initializers and calibration values of one model."""

    name: str
    input_shape: tuple[int, ...]
    seed: int
    description: str = ""
    input_name: str = "input"
    _rng: np.random.Generator = field(init=False, repr=False)
    _nodes: list[onnx.NodeProto] = field(default_factory=list, init=False, repr=False)
    _initializers: list[TensorProto] = field(default_factory=list, init=False, repr=False)
    _weight_bits: dict[str, int] = field(default_factory=dict, init=False, repr=False)
    #: Calibration value of every tensor produced so far (float64, batch 1).
    _values: dict[str, Array] = field(default_factory=dict, init=False, repr=False)
    _layers: int = field(default=0, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._values[self.input_name] = _int8_samples(self.input_shape, seed=0)
        for name, value in ((_HALF, 0.5), (_CLIP_MIN, INT8_MIN), (_CLIP_MAX, INT8_MAX)):
            self._constant(name, value)

    @property
    def input(self) -> str:
        return self.input_name

    @property
    def layer_count(self) -> int:
        return self._layers

    def shape(self, tensor: str) -> tuple[int, ...]:
        return tuple(self._values[tensor].shape)

    # ------------------------------------------------------------------ layers

    def layer(
        self,
        sources: str | Sequence[str],
        op: LayerOp,
        *,
        merge: Literal["add", "sub", "concat"] | None = None,
        pool: Pool | None = None,
        relu: bool = True,
        bits: int = 8,
        wide: bool = False,
        output_name: str | None = None,
    ) -> str:
        """Append one hardware layer and return the name of its output tensor.

        ``sources`` are earlier tensors; several need ``merge`` (element-wise add/sub, or a
        channel concatenation, which is free on the chip and belongs to this layer). Pooling
        comes after the merge (``pool_first: false`` in izer terms), then the op.
        """
        if bits not in SUPPORTED_WEIGHT_BITS:
            raise ValueError(f"weight bits must be one of {SUPPORTED_WEIGHT_BITS}, not {bits}")
        prefix = f"l{self._layers:02d}"
        inputs = [sources] if isinstance(sources, str) else list(sources)
        if len(inputs) > 1 and merge is None:
            raise ValueError(f"{prefix}: {len(inputs)} sources need a merge")
        current = self._merge(prefix, inputs, merge) if len(inputs) > 1 else inputs[0]
        if pool is not None:
            current = self._pool(prefix, current, pool)
        if op is not None:
            current = self._op(prefix, current, op, bits)
        if relu:
            current = self._node("Relu", f"{prefix}_relu", [current], np.maximum(self._values[current], 0))
        last_name = output_name or f"{prefix}_out"
        if wide:
            current = self._rename(current, last_name)
        else:
            weighted = isinstance(op, Conv | ConvTranspose | Linear)
            # Layers without weights (passthrough, standalone add or pooling) have no
            # accumulator to scale on the chip: they copy, saturate or average as is.
            shift = _choose_shift(self._values[current]) if weighted else 0
            current = self._requantize(prefix, current, shift, last_name)
        self._layers += 1
        return current

    def passthrough(self, source: str) -> str:
        """A passthrough (re-format) layer: the chip copies ``source`` for a later add."""
        return self.layer(source, Passthrough(), relu=False)

    def add(self, *sources: str) -> str:
        """A standalone element-wise add layer (residual connection)."""
        return self.layer(sources, None, merge="add", relu=False)

    def depth_to_space(self, source: str, block: int, output_name: str) -> str:
        """CPU post-processing after the last hardware layer: ONNX ``DepthToSpace`` (DCR)."""
        value = self._values[source]
        _, channels, height, width = value.shape
        out_channels = channels // (block * block)
        moved = value.reshape(1, block, block, out_channels, height, width).transpose(0, 3, 4, 1, 5, 2)
        result = moved.reshape(1, out_channels, height * block, width * block)
        return self._node(
            "DepthToSpace", "unfold", [source], result, output=output_name, blocksize=block, mode="DCR"
        )

    # ------------------------------------------------------------------ result

    def finish(self, outputs: Sequence[str]) -> onnx.ModelProto:
        """The finished model with ``outputs`` as its graph outputs."""
        produced = [node.output[0] for node in self._nodes]
        value_info = [self._value_info(name) for name in produced if name not in outputs]
        graph = helper.make_graph(
            self._nodes,
            self.name,
            inputs=[self._value_info(self.input_name)],
            outputs=[self._value_info(name) for name in outputs],
            initializer=self._initializers,
            value_info=value_info,
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="synergy.models.zoo",
            doc_string=self.description,
        )
        helper.set_model_props(model, {WEIGHT_BITS_KEY: json.dumps(self._weight_bits, sort_keys=True)})
        return model

    # ------------------------------------------------------------------ parts of a layer

    def _merge(self, prefix: str, inputs: list[str], merge: str | None) -> str:
        values = [self._values[name] for name in inputs]
        if merge == "concat":
            return self._node("Concat", f"{prefix}_concat", inputs, np.concatenate(values, axis=1), axis=1)
        op_type = "Add" if merge == "add" else "Sub"
        # One node per extra operand, as docs/models.md describes element-wise chains.
        current, total = inputs[0], values[0]
        for position, operand in enumerate(inputs[1:], start=1):
            total = total + self._values[operand] if op_type == "Add" else total - self._values[operand]
            suffix = "" if len(inputs) == 2 else str(position)
            current = self._node(op_type, f"{prefix}_{op_type.lower()}{suffix}", [current, operand], total)
        return current

    def _pool(self, prefix: str, source: str, pool: Pool) -> str:
        stride = pool.stride or pool.size
        spatial = len(self.shape(source)) - 2
        result = reference.pool(self._values[source], pool.kind, pool.size, stride)
        op_type = "MaxPool" if pool.kind == "max" else "AveragePool"
        return self._node(
            op_type,
            f"{prefix}_{pool.kind}pool",
            [source],
            result,
            kernel_shape=[pool.size] * spatial,
            strides=[stride] * spatial,
        )

    def _op(
        self, prefix: str, source: str, op: Conv | ConvTranspose | Linear | Passthrough, bits: int
    ) -> str:
        value = self._values[source]
        in_channels = value.shape[1]
        if isinstance(op, Passthrough):
            return self._node("Identity", f"{prefix}_pass", [source], value.copy())
        if isinstance(op, Linear):
            flat = self._node("Flatten", f"{prefix}_flatten", [source], value.reshape(1, -1), axis=1)
            weight = self._weights(f"{prefix}_fc_w", (op.out_features, value.size), bits)
            bias = self._bias(f"{prefix}_fc_b", op.out_features) if op.bias else None
            result = reference.linear(value, weight, bias)
            return self._node(
                "Gemm",
                f"{prefix}_fc",
                self._args(flat, weight_name=f"{prefix}_fc", bias=op.bias),
                result,
                transB=1,
            )
        if isinstance(op, ConvTranspose):
            weight = self._weights(f"{prefix}_convt_w", (in_channels, op.out_channels, 3, 3), bits)
            bias = self._bias(f"{prefix}_convt_b", op.out_channels) if op.bias else None
            result = reference.conv_transpose_x2(value, weight, bias)
            return self._node(
                "ConvTranspose",
                f"{prefix}_convt",
                self._args(source, weight_name=f"{prefix}_convt", bias=op.bias),
                result,
                kernel_shape=[3, 3],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                output_padding=[1, 1],
            )
        spatial = value.ndim - 2
        groups = in_channels if op.depthwise else 1
        if op.depthwise and op.out_channels != in_channels:
            raise ValueError(f"{prefix}: depthwise conv must keep {in_channels} channels")
        kernel = (op.kernel,) * spatial
        weight = self._weights(f"{prefix}_conv_w", (op.out_channels, in_channels // groups, *kernel), bits)
        bias = self._bias(f"{prefix}_conv_b", op.out_channels) if op.bias else None
        result = reference.conv(value, weight, bias, op.pad, groups)
        return self._node(
            "Conv",
            f"{prefix}_conv",
            self._args(source, weight_name=f"{prefix}_conv", bias=op.bias),
            result,
            kernel_shape=list(kernel),
            pads=[op.pad] * (2 * spatial),
            strides=[1] * spatial,
            group=groups,
        )

    def _requantize(self, prefix: str, source: str, shift: int, output: str) -> str:
        scale_name = f"{prefix}_q_scale"
        self._constant(scale_name, 2.0**-shift)
        value = self._values[source]
        scaled = self._node("Mul", f"{prefix}_q_mul", [source, scale_name], value * 2.0**-shift)
        halved = self._node("Add", f"{prefix}_q_add", [scaled, _HALF], self._values[scaled] + 0.5)
        floored = self._node("Floor", f"{prefix}_q_floor", [halved], np.floor(self._values[halved]))
        return self._node(
            "Clip",
            f"{prefix}_q_clip",
            [floored, _CLIP_MIN, _CLIP_MAX],
            reference.requantize(value, shift),
            output=output,
        )

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _args(source: str, *, weight_name: str, bias: bool) -> list[str]:
        return [source, f"{weight_name}_w"] + ([f"{weight_name}_b"] if bias else [])

    def _weights(self, name: str, shape: tuple[int, ...], bits: int) -> Array:
        """Integers uniform over the symmetric part of the b-bit range (1-bit: -1/+1).

        Symmetric so the weights have zero mean: with the asymmetric range the -2^(b-1) tail
        makes low-bit layers strongly negative and ReLU would silence most of their outputs.
        """
        if bits == 1:
            values = self._rng.integers(0, 2, size=shape, dtype=np.int8) * 2 - 1
        else:
            top = 2 ** (bits - 1) - 1
            values = self._rng.integers(-top, top + 1, size=shape, dtype=np.int8)
        weight = values.astype(np.float64)
        self._initializers.append(numpy_helper.from_array(weight.astype(np.float32), name))
        self._weight_bits[name] = bits
        return weight

    def _bias(self, name: str, count: int) -> Array:
        bias = self._rng.integers(INT8_MIN, INT8_MAX + 1, size=(count,), dtype=np.int8).astype(np.float64)
        self._initializers.append(numpy_helper.from_array(bias.astype(np.float32), name))
        return bias

    def _constant(self, name: str, value: float) -> None:
        self._initializers.append(numpy_helper.from_array(np.array(value, dtype=np.float32), name))

    def _node(
        self,
        op_type: str,
        name: str,
        inputs: list[str],
        value: Array,
        *,
        output: str | None = None,
        **attributes: int | str | list[int],
    ) -> str:
        out = output or name
        if out in self._values:
            raise ValueError(f"tensor {out!r} is produced twice")
        node = helper.make_node(op_type, inputs, [out], name=name)
        node.attribute.extend(helper.make_attribute(key, attributes[key]) for key in sorted(attributes))
        self._nodes.append(node)
        self._values[out] = value
        return out

    def _rename(self, tensor: str, name: str) -> str:
        """Make the last node write ``name`` instead of ``tensor`` (for a wide last layer)."""
        if tensor == name:
            return tensor
        node = self._nodes[-1]
        if node.output[0] != tensor:
            raise ValueError(f"{tensor!r} is not the newest tensor")
        node.output[0] = name
        self._values[name] = self._values.pop(tensor)
        return name

    def _value_info(self, name: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(self.shape(name)))
