"""Describe one grouped hardware layer and check it against what any MAX7800x can run.

:func:`describe_layer` turns a :class:`~synergy.hardware.grouping.LayerDraft` into a
:class:`~synergy.hardware.model.HardwareLayer` (without cycles) and lists the reasons, node by
node, why no MAX7800x could run it (HARDWARE.md §1: stride 1, 1x1 / 3x3 kernels, pads 0-2,
pooling without padding, 2-16 element-wise operands, flatten limits, ...). Limits that differ
between chips (depthwise, dilation, channels, memories) are left to the partition checker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnx

from synergy.hardware.grouping import ACTIVATION_NODES, ELTWISE_NODES, POOL_NODES, LayerDraft
from synergy.hardware.model import HardwareLayer
from synergy.hardware.onnx_graph import GraphView

__all__ = ["LayerFacts", "describe_layer"]

#: Operator limits common to both chips (HARDWARE.md §1).
CONV2D_KERNELS = frozenset({(1, 1), (3, 3)})
CONV1D_MAX_KERNEL = 9
CONV_MAX_PAD = 2
CONV_STRIDE = 1
CONVTRANSPOSE_KERNEL = (3, 3)
CONVTRANSPOSE_STRIDE = 2
POOL_MAX_WINDOW = 16
POOL_MAX_STRIDE = 16
ELTWISE_MIN_OPERANDS = 2
ELTWISE_MAX_OPERANDS = 16
MAX_DILATION = 16
FLATTEN_MAX_INPUTS = 16_384
FLATTEN_MAX_PIXELS = 256
ALLOWED_WEIGHT_BITS = frozenset({1, 2, 4, 8})
DEFAULT_WEIGHT_BITS = 8
#: Nodes that make a layer's output integer (the chip rounds half up: Add 0.5, Floor).
ROUNDING_NODES = frozenset({"Floor", "Round"})
#: The chip concatenates along channels only.
CONCAT_AXIS = 1
#: A Linear reads a [batch, features] tensor (or flattens one).
LINEAR_INPUT_RANK = 2
#: The chip's activations are int8; its clamp after every layer.
INT8_MIN = -128
INT8_MAX = 127
#: Bias values are 8 bit, one per output channel.
BIAS_BYTES_PER_CHANNEL = 1
#: A wide (32-bit) output value takes four bytes.
WIDE_OUTPUT_BYTES = 4
WIDE_OUTPUT_WIDTH = 32
NARROW_OUTPUT_WIDTH = 8
BITS_PER_BYTE = 8


@dataclass(frozen=True)
class LayerFacts:
    """What describing a layer needs from the analysis."""

    view: GraphView
    draft: LayerDraft
    #: Weight initializer name -> bit width (metadata ``synergy.weight_bits``).
    bits: Mapping[str, int]
    #: Whether each tensor produced so far travels as int8.
    int8: Mapping[str, bool]


@dataclass
class _Fields:
    """The layer's fields as they are discovered, part by part."""

    op: str = "passthrough"
    kernel: tuple[int, ...] = ()
    pad: int = 0
    pool: str = ""
    pool_size: tuple[int, ...] = ()
    pool_stride: tuple[int, ...] = ()
    pool_first: bool = True
    eltwise: str = ""
    eltwise_operands: int = 1
    activation: str = "none"
    flatten: bool = False
    groups: int = 1
    dilation: int = 1
    weight_bits: int = DEFAULT_WEIGHT_BITS
    weights: int = 0
    weight_bytes: int = 0
    bias_channels: int = 0
    has_bias: bool = False


def _ints(node: onnx.NodeProto, name: str, default: list[int]) -> list[int]:
    for attribute in node.attribute:
        if attribute.name == name:
            return [int(v) for v in attribute.ints]
    return default


def _int(node: onnx.NodeProto, name: str, default: int) -> int:
    for attribute in node.attribute:
        if attribute.name == name:
            return int(attribute.i)
    return default


def _float(node: onnx.NodeProto, name: str, default: float) -> float:
    for attribute in node.attribute:
        if attribute.name == name:
            return float(attribute.f)
    return default


def _string(node: onnx.NodeProto, name: str, default: str) -> str:
    for attribute in node.attribute:
        if attribute.name == name:
            return attribute.s.decode()
    return default


class _Describer:
    def __init__(self, facts: LayerFacts, index: int, last: bool) -> None:
        self.view = facts.view
        self.draft = facts.draft
        self.facts = facts
        self.index = index
        self.last = last
        self.problems: list[tuple[int, str]] = []
        self.fields = _Fields()

    def problem(self, node: int, why: str) -> None:
        self.problems.append((node, why))

    # --- parts -----------------------------------------------------------------------------

    def _pool(self, node_index: int) -> tuple[str, tuple[int, ...], tuple[int, ...]]:
        node = self.view.nodes[node_index]
        kernel = tuple(_ints(node, "kernel_shape", []))
        strides = tuple(_ints(node, "strides", [1] * len(kernel)))
        pads = _ints(node, "pads", [0] * 2 * len(kernel))
        if any(pads) or _string(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            self.problem(node_index, "pooling with padding; the chip pools without padding")
        if any(d != 1 for d in _ints(node, "dilations", [1] * len(kernel))):
            self.problem(node_index, "dilated pooling is not supported")
        if not kernel or any(not 1 <= k <= POOL_MAX_WINDOW for k in kernel):
            self.problem(node_index, f"pooling window {kernel}; the chip pools 1..{POOL_MAX_WINDOW}")
        if any(not 1 <= s <= POOL_MAX_STRIDE for s in strides):
            self.problem(node_index, f"pooling stride {strides}; the chip supports 1..{POOL_MAX_STRIDE}")
        if _int(node, "ceil_mode", 0) and kernel and len(strides) == len(kernel):
            # ceil_mode only matters when it adds a partial window at the edge.
            in_shape = self.view.shape(self.view.dynamic_inputs(node_index)[0])
            whole = tuple((size - k) // s + 1 for size, k, s in zip(in_shape[2:], kernel, strides, strict=False))
            if whole != tuple(self.view.shape(node.output[0])[2:]):
                self.problem(
                    node_index, "pooling with ceil_mode adds a partial window; the chip pools whole windows only"
                )
        return POOL_NODES[node.op_type], kernel, strides

    def _pooling(self) -> None:
        draft = self.draft
        if draft.pool is not None:
            kind, size, stride = self._pool(draft.pool)
            self._set_pool(kind, size, stride, pool_first=not draft.eltwise)
        elif draft.operand_pools:
            described = {self._pool(p) for p in draft.operand_pools}
            if len(described) > 1 or len(draft.operand_pools) != len(draft.operands):
                self.problem(draft.operand_pools[0], "element-wise operands pooled differently")
            kind, size, stride = next(iter(described))
            self._set_pool(kind, size, stride, pool_first=True)

    def _set_pool(self, kind: str, size: tuple[int, ...], stride: tuple[int, ...], pool_first: bool) -> None:
        self.fields.pool, self.fields.pool_size, self.fields.pool_stride = kind, size, stride
        self.fields.pool_first = pool_first

    def _eltwise(self) -> None:
        draft = self.draft
        if not draft.eltwise:
            return
        view = self.view
        kinds = {ELTWISE_NODES[view.nodes[n].op_type] for n in draft.eltwise}
        if len(kinds) > 1:
            self.problem(draft.eltwise[0], f"mixed element-wise operations {sorted(kinds)} in one layer")
        operands = len(draft.operands)
        if not ELTWISE_MIN_OPERANDS <= operands <= ELTWISE_MAX_OPERANDS:
            self.problem(
                draft.eltwise[0],
                f"{operands} element-wise operands; the chip combines {ELTWISE_MIN_OPERANDS}..{ELTWISE_MAX_OPERANDS}",
            )
        shapes = {view.shape(t) for t in draft.operands}
        if len(shapes) > 1:
            self.problem(draft.eltwise[0], f"element-wise operands of different shapes {sorted(shapes)}")
        self.fields.eltwise, self.fields.eltwise_operands = sorted(kinds)[0], operands

    def _concat(self) -> None:
        concat = self.draft.concat
        if concat is None:
            return
        node = self.view.nodes[concat]
        rank = len(self.view.shape(node.output[0]))
        axis = _int(node, "axis", CONCAT_AXIS)
        if axis % max(rank, 1) != CONCAT_AXIS:
            self.problem(concat, f"Concat along axis {axis}; the chip concatenates channels (axis {CONCAT_AXIS})")

    def _post(self) -> tuple[bool, bool]:
        """Activation and clamp; returns (clamped, has numerics other than a bias add).

        Clamped means the output is an int8 value: clipped to [-128, 127] *and* rounded
        (``Floor`` or ``Round``); a float model's clip alone leaves fractions, so it is not.
        """
        view = self.view
        activations: list[str] = []
        clamped = False
        scaled = False
        rounded = False
        for position, node_index in enumerate(self.draft.post):
            node = view.nodes[node_index]
            if node.op_type in ACTIVATION_NODES:
                activations.append(ACTIVATION_NODES[node.op_type])
            elif node.op_type == "Clip":
                clamped = self._clip(node_index) or clamped
            elif node.op_type in ("Mul", "Div", "Add", "Sub"):
                constant = next(n for n in node.input if view.is_constant(n))
                shape = view.constant_shape(constant) or ()
                if math.prod(shape) > 1 and not self._bias_add(position, node.op_type, shape):
                    self.problem(node_index, f"per-channel {node.op_type}; the chip scales a layer by one shift")
                scaled = True
            else:
                rounded = rounded or node.op_type in ROUNDING_NODES
                scaled = True
        if len(activations) > 1:
            self.problem(self.draft.post[0], f"several activations {activations} in one layer")
        self.fields.activation = activations[0] if activations else "none"
        return clamped and rounded, scaled

    def _bias_add(self, position: int, op_type: str, shape: tuple[int, ...]) -> bool:
        """A per-channel Add right after a MatMul is the Linear layer's bias."""
        anchor = self.draft.anchor
        if position != 0 or op_type != "Add" or anchor is None or self.fields.has_bias:
            return False
        if self.view.nodes[anchor].op_type != "MatMul":
            return False
        self.fields.has_bias, self.fields.bias_channels = True, math.prod(shape)
        return True

    def _clip(self, node_index: int) -> bool:
        view = self.view
        node = view.nodes[node_index]
        bounds: list[float | None] = []
        for position, default_name in ((1, "min"), (2, "max")):
            value: float | None = None
            if len(node.input) > position and node.input[position]:
                array = view.constant(node.input[position])
                value = None if array is None else float(np.asarray(array).reshape(-1)[0])
            else:
                value = _float(node, default_name, math.nan)
                value = None if math.isnan(value) else value
            bounds.append(value)
        low, high = bounds
        # [-128, 127] is the chip's clamp; [0, 127] the same after a ReLU. Anything else (ReLU6
        # is Clip(0, 6)) is an activation the chip does not have.
        if low is None or high is None or high != INT8_MAX or low not in (INT8_MIN, 0):
            self.problem(node_index, f"Clip to [{low}, {high}] is not the chip's int8 clamp [-128, 127]")
            return False
        return True

    # --- ops -------------------------------------------------------------------------------

    def _weights(self, weight: str, bias: str | None) -> None:
        view = self.view
        shape = view.constant_shape(weight)
        if shape is None:
            self.problem(self.draft.anchor or 0, "weights are not a constant")
            return
        bits = self.facts.bits.get(weight, DEFAULT_WEIGHT_BITS)
        if bits not in ALLOWED_WEIGHT_BITS:
            self.problem(self.draft.anchor or 0, f"{bits}-bit weights; the chip uses 1, 2, 4 or 8 bits")
        count = math.prod(shape)
        self.fields.weight_bits, self.fields.weights = bits, count
        self.fields.weight_bytes = math.ceil(count * bits / BITS_PER_BYTE)
        if bias:
            self.fields.has_bias = True
            self.fields.bias_channels = math.prod(view.constant_shape(bias) or (0,))

    def _conv(self, node_index: int, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
        node = self.view.nodes[node_index]
        weight = node.input[1]
        self._weights(weight, node.input[2] if len(node.input) > 2 and node.input[2] else None)
        if self.view.constant_shape(weight) is None:
            return  # reported by _weights; nothing more to say about its kernel
        kernel = tuple(self.view.constant_shape(weight) or ())[2:]
        spatial = len(kernel)
        strides = _ints(node, "strides", [1] * spatial)
        pads = _ints(node, "pads", [0] * 2 * spatial)
        dilations = _ints(node, "dilations", [1] * spatial)
        group = _int(node, "group", 1)
        if _string(node, "auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            self.problem(node_index, "auto_pad is not supported; give explicit pads")
        if any(s != CONV_STRIDE for s in strides):
            self.problem(
                node_index,
                f"stride {strides}; the chip convolves with stride 1 only: downsample with a pooling fused "
                "before a stride-1 convolution instead (ai8x models use a 2x2 pooling; this changes the model)",
            )
        if len(set(pads)) > 1:
            self.problem(node_index, f"asymmetric pads {pads}")
        pad = pads[0] if pads else 0
        if pad > CONV_MAX_PAD:
            self.problem(node_index, f"pad {pad}; the chip pads 0..{CONV_MAX_PAD}")
        if len(set(dilations)) > 1:
            self.problem(node_index, f"unequal dilations {dilations}")
        dilation = max(dilations) if dilations else 1
        if dilation > MAX_DILATION:
            self.problem(node_index, f"dilation {dilation}; the MAX78002 dilates 1..{MAX_DILATION}")
        in_channels = in_shape[1]
        out_channels = out_shape[1]
        if group != 1 and not (group == in_channels == out_channels):
            self.problem(node_index, f"grouped convolution (groups={group}); the chip supports 1 or depthwise")
        if spatial == 1:
            op = "conv1d"
            if not 1 <= kernel[0] <= CONV1D_MAX_KERNEL:
                self.problem(node_index, f"Conv1d kernel {kernel[0]}; the chip supports 1..{CONV1D_MAX_KERNEL}")
        elif spatial == 2:
            op = "conv2d"
            if kernel not in CONV2D_KERNELS:
                self.problem(node_index, f"kernel {kernel[0]}x{kernel[1]}; the chip supports 1x1 and 3x3")
        else:
            op = "conv2d"
            self.problem(node_index, f"{spatial}-D convolution; the chip convolves 1-D and 2-D")
        fields = self.fields
        fields.op, fields.kernel, fields.pad, fields.groups, fields.dilation = op, kernel, pad, group, dilation

    def _conv_transpose(self, node_index: int, in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> None:
        node = self.view.nodes[node_index]
        weight = node.input[1]
        self._weights(weight, node.input[2] if len(node.input) > 2 and node.input[2] else None)
        kernel = tuple(self.view.constant_shape(weight) or ())[2:]
        strides = tuple(_ints(node, "strides", [1] * len(kernel)))
        pads = _ints(node, "pads", [0] * 2 * len(kernel))
        if kernel != CONVTRANSPOSE_KERNEL or strides != (CONVTRANSPOSE_STRIDE,) * 2:
            self.problem(node_index, f"ConvTranspose {kernel} stride {strides}; the chip upsamples 3x3 stride 2")
        if _int(node, "group", 1) != 1:
            self.problem(node_index, "grouped transposed convolution is not supported")
        if tuple(out_shape[2:]) != tuple(CONVTRANSPOSE_STRIDE * s for s in in_shape[2:]):
            self.problem(node_index, f"ConvTranspose {in_shape} -> {out_shape} does not upsample exactly x2")
        if len(set(pads)) > 1:
            self.problem(node_index, f"asymmetric pads {pads}")
        self.fields.op, self.fields.kernel, self.fields.pad = "convtranspose2d", kernel, pads[0] if pads else 0

    def _linear(self, node_index: int, in_shape: tuple[int, ...]) -> None:
        view = self.view
        node = view.nodes[node_index]
        weight = node.input[1]
        if not view.is_constant(weight):
            self.problem(node_index, "product of two activations (attention); the chip multiplies by weights only")
            return
        if node.op_type == "Gemm":
            if _int(node, "transA", 0) or _float(node, "alpha", 1.0) != 1.0 or _float(node, "beta", 1.0) != 1.0:
                self.problem(node_index, "Gemm with transA or alpha/beta other than 1")
            bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
        else:
            bias = None
        self._weights(weight, bias)
        self.fields.op, self.fields.kernel, self.fields.pad = "linear", (1, 1), 0
        if self.draft.flatten is None and len(in_shape) != LINEAR_INPUT_RANK:
            self.problem(
                node_index,
                f"{node.op_type} over a {len(in_shape)}-D tensor {in_shape}; the chip's Linear reads a flattened "
                "[1, features] input (Flatten before it)",
            )
        pixels = math.prod(in_shape[2:])
        if self.draft.flatten is not None and pixels > 1:
            self.fields.flatten = True
            inputs = math.prod(in_shape[1:])
            if self.draft.pool is not None:
                self.problem(self.draft.flatten, "pooling and flatten in one layer; pool in a layer before")
            if inputs > FLATTEN_MAX_INPUTS or pixels > FLATTEN_MAX_PIXELS:
                self.problem(
                    self.draft.flatten,
                    f"flatten of {inputs} values over {pixels} pixels; the chip flattens at most "
                    f"{FLATTEN_MAX_INPUTS} values and {FLATTEN_MAX_PIXELS} pixels",
                )

    # --- the layer -------------------------------------------------------------------------

    def _data_input(self) -> str:
        """The tensor entering the layer's pooling / op (see the analysis module docstring)."""
        view = self.view
        draft = self.draft
        if draft.concat is not None:
            return view.nodes[draft.concat].output[0]
        if draft.eltwise:
            return draft.operands[0]
        for part in (draft.pool, draft.flatten, draft.anchor):
            if part is not None:
                inputs = view.dynamic_inputs(part)
                if inputs:
                    return inputs[0]
        raise AssertionError("a layer without input")  # pragma: no cover - grouping guarantees one

    def describe(self) -> HardwareLayer:
        view = self.view
        draft = self.draft
        nodes = sorted(draft.all_nodes())
        inside = {out for n in nodes for out in view.nodes[n].output}
        inputs = list(dict.fromkeys(t for n in nodes for t in view.dynamic_inputs(n) if t not in inside))
        data_input = self._data_input()
        in_shape = view.shape(data_input)
        out_shape = view.shape(draft.output)
        self._eltwise()
        self._concat()
        self._pooling()
        anchor = draft.anchor if draft.anchor is not None else -1
        op_type = view.nodes[anchor].op_type if anchor >= 0 else ""
        if op_type == "Conv":
            self._conv(anchor, in_shape, view.shape(view.nodes[anchor].output[0]))
        elif op_type == "ConvTranspose":
            self._conv_transpose(anchor, in_shape, view.shape(view.nodes[anchor].output[0]))
        elif op_type in ("Gemm", "MatMul"):
            self._linear(anchor, in_shape)
        else:
            self.fields.op = "eltwise" if draft.eltwise and draft.anchor is None else "passthrough"
        clamped, scaled = self._post()
        out_channels = out_shape[1] if len(out_shape) > 1 else 1
        in_channels = in_shape[1] if len(in_shape) > 1 else 1
        if not clamped and not scaled and self._preserves_int8(inputs):
            clamped = True  # a copy or max-pool of int8 data stays int8
        wide = self.last and not clamped
        f = self.fields
        return HardwareLayer(
            index=self.index,
            op=f.op,
            nodes=tuple(view.ids[n] for n in nodes),
            inputs=tuple(inputs),
            output=draft.output,
            in_shape=in_shape,
            out_shape=out_shape,
            kernel=f.kernel,
            pad=f.pad,
            pool=f.pool,
            pool_size=f.pool_size,
            pool_stride=f.pool_stride,
            eltwise=f.eltwise,
            eltwise_operands=f.eltwise_operands,
            activation=f.activation,
            flatten=f.flatten,
            groups=f.groups,
            dilation=f.dilation,
            in_channels=in_channels,
            out_channels=out_channels,
            weight_bits=f.weight_bits,
            weights=f.weights,
            weight_bytes=f.weight_bytes,
            bias_bytes=f.bias_channels * BIAS_BYTES_PER_CHANNEL,
            output_width=WIDE_OUTPUT_WIDTH if wide else NARROW_OUTPUT_WIDTH,
            out_bytes=math.prod(out_shape) * (WIDE_OUTPUT_BYTES if wide else 1),
            pool_first=f.pool_first,
            clamped=clamped,
        )

    def _preserves_int8(self, inputs: list[str]) -> bool:
        draft = self.draft
        copies = self.fields.op == "passthrough" and not draft.eltwise
        no_average = self.fields.pool != "avg"
        only_relu = all(self.view.nodes[n].op_type == "Relu" for n in draft.post)
        return copies and no_average and only_relu and all(self.facts.int8.get(t, False) for t in inputs)


def describe_layer(facts: LayerFacts, index: int, last: bool) -> tuple[HardwareLayer, list[tuple[int, str]]]:
    """The layer (cycles not yet filled in) and (node index, why) for each unsupported part."""
    describer = _Describer(facts, index, last)
    layer = describer.describe()
    return layer, describer.problems
