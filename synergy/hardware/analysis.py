"""Read an ONNX model as the MAX7800x executes it: hardware layers, CPU work and cut points.

:func:`analyze_model` groups the graph's nodes into hardware layers (docs/models.md, see
:mod:`synergy.hardware.grouping`), fills every :class:`~synergy.hardware.model.HardwareLayer`
field (parameters, bytes at the layer's bit width, shapes, cycles of HARDWARE.md §2), lists the
CPU work before the first and after the last layer, and computes every cut point: the tensors
that cross the cut between layer ``i`` and ``i + 1`` (skip connections included).

Operators no MAX7800x can run are collected over the whole model and reported in one
:class:`~synergy.errors.ModelError`, one line per offending node. Limits that depend on the
board (depthwise, dilation, memories, layer count) are not errors here: the partition checker
(:mod:`synergy.hardware.checker`) reports them per board.

Conventions of the result: shapes include the batch dimension of 1; a layer's ``in_shape`` is
the data entering its pooling / op (the concatenation for a Concat, one operand for an
element-wise layer, the tensor before Flatten for a Linear); a tensor travels as int8 when the
graph rounds and clamps it to [-128, 127] (or it is the graph input, or a copy / max-pool of
int8 data), as float32 otherwise (a wide last layer, a float model exported from PyTorch that
does not emulate the chip's numerics). A partition's sub-model says in its metadata
(:data:`PARTITION_KEY`) how its inputs travel and whether it ends the model, so analysing it
again gives the same layers as the whole model's analysis.

Analyses are cached by the model's skeleton (its bytes without weight values, which the
analysis does not depend on), so asking twice costs a hash of a few kilobytes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import OrderedDict
from dataclasses import dataclass

import onnx

from synergy.errors import ModelError
from synergy.hardware.cycles import layer_cycles
from synergy.hardware.grouping import (
    ACTIVATION_NODES,
    ELTWISE_NODES,
    NUMERIC_BINARY_NODES,
    NUMERIC_UNARY_NODES,
    POOL_NODES,
    LayerDraft,
    group_layers,
)
from synergy.hardware.layer_rules import LayerFacts, describe_layer
from synergy.hardware.model import CpuOp, CutPoint, HardwareLayer, HardwareModel, TensorSpec
from synergy.hardware.onnx_graph import GraphView, skeleton

__all__ = ["PARTITION_KEY", "WEIGHT_BITS_KEY", "analyze_model", "weight_bits_of"]

#: metadata_props key holding {initializer name: bit width} (docs/models.md).
WEIGHT_BITS_KEY = "synergy.weight_bits"
#: metadata_props key of a partition's sub-model (:func:`synergy.models.partition.split_model`):
#: a JSON object with the model's name, the layer range ``first``..``last``, the model's layer
#: count ``layers`` and the wire dtype of every entering tensor ``inputs``. The analysis of the
#: sub-model reads the last two so that it describes the partition's layers exactly as the
#: whole model's analysis did (float32 cut tensors, no 32-bit output before the model's end).
PARTITION_KEY = "synergy.partition"
DEFAULT_WEIGHT_BITS = 8
#: Analyses kept in memory (keyed by the model's bytes and name).
CACHE_SIZE = 64

#: CPU cost of work the accelerator cannot do, in CPU cycles per element of the larger of the
#: node's input and output (assumptions to calibrate: a Cortex-M4F exp() costs ~50 cycles, a
#: copy ~4 cycles per byte-sized element).
CPU_CYCLES_PER_ELEMENT = {
    "Softmax": 60,
    "LogSoftmax": 70,
    "Sigmoid": 50,
    "Tanh": 50,
    "Exp": 50,
    "ArgMax": 3,
    "ReduceMax": 3,
    "Reshape": 4,
    "Transpose": 4,
    "Flatten": 4,
    "SpaceToDepth": 4,
    "DepthToSpace": 4,
}
DEFAULT_CPU_CYCLES_PER_ELEMENT = 10
#: Operators that only move or select int8 values: their output stays int8 on the wire.
VALUE_PRESERVING_NODES = frozenset(
    {
        "Reshape",
        "Transpose",
        "Flatten",
        "Identity",
        "SpaceToDepth",
        "DepthToSpace",
        "Squeeze",
        "Unsqueeze",
        "Concat",
        "Slice",
        "Split",
        "MaxPool",
        "Relu",
    }
)

#: Sort offset of a problem between two layers (after the layer it follows).
_BETWEEN = 0.5

_cache: OrderedDict[tuple[str, str], HardwareModel] = OrderedDict()


def analyze_model(model: onnx.ModelProto, name: str) -> HardwareModel:
    """The hardware layers, CPU work and cut points of ``model`` (see the module docstring).

    Raises :class:`ModelError` listing every node no MAX7800x can run.
    """
    # Weight values do not change the analysis: key the cache by the model's skeleton.
    light = skeleton(model)
    key = (hashlib.blake2b(light.SerializeToString(), digest_size=20).hexdigest(), name)
    cached = _cache.get(key)
    if cached is not None:
        _cache.move_to_end(key)
        return cached
    result = _Analysis(model, light, name).run()
    _cache[key] = result
    if len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    return result


def weight_bits_of(model: onnx.ModelProto) -> dict[str, int]:
    """The model's ``synergy.weight_bits`` metadata: initializer name -> bit width."""
    for prop in model.metadata_props:
        if prop.key == WEIGHT_BITS_KEY:
            try:
                data = json.loads(prop.value)
            except json.JSONDecodeError as exc:
                raise ModelError(f"metadata {WEIGHT_BITS_KEY!r} is not JSON: {exc}") from exc
            if not isinstance(data, dict) or not all(isinstance(v, int) for v in data.values()):
                raise ModelError(f"metadata {WEIGHT_BITS_KEY!r} must map initializer names to integers")
            return {str(k): int(v) for k, v in data.items()}
    return {}


def _partition_of(model: onnx.ModelProto) -> tuple[dict[str, str], bool]:
    """(wire dtype per graph input, whether the graph ends the model) from ``PARTITION_KEY``.

    A whole model (no such metadata) has int8 inputs and ends the model.
    """
    for prop in model.metadata_props:
        if prop.key == PARTITION_KEY:
            try:
                data = json.loads(prop.value)
            except json.JSONDecodeError as exc:
                raise ModelError(f"metadata {PARTITION_KEY!r} is not JSON: {exc}") from exc
            if not isinstance(data, dict):
                raise ModelError(f"metadata {PARTITION_KEY!r} must be a JSON object")
            inputs = data.get("inputs", {})
            dtypes = {str(k): str(v) for k, v in inputs.items()} if isinstance(inputs, dict) else {}
            last, layers = data.get("last"), data.get("layers")
            ends = not (isinstance(last, int) and isinstance(layers, int)) or last >= layers - 1
            return dtypes, ends
    return {}, True


@dataclass(frozen=True)
class _Problem:
    #: Sort key: the layer the problem is in, or between (x.5).
    order: float
    where: str
    node: str
    op_type: str
    why: str


class _Analysis:
    def __init__(self, model: onnx.ModelProto, light: onnx.ModelProto, name: str) -> None:
        self.name = name
        self.view = GraphView(model, light)
        self.bits = weight_bits_of(model)
        #: A partition's sub-model: how its inputs travel, and whether its last layer is the
        #: model's last (the only one that may produce 32-bit output).
        self.input_dtypes, self.ends_model = _partition_of(model)
        self.problems: list[_Problem] = []
        #: Stage of every dynamic tensor: the layer producing it (-1: input / CPU pre-work).
        self.stage: dict[str, int] = {}
        self.int8: dict[str, bool] = {}

    def run(self) -> HardwareModel:
        view = self.view
        if not view.graph_inputs:
            raise ModelError(f"model {self.name!r} has no graph input")
        drafts, _assigned = group_layers(view)
        layer_of_node = {node: i for i, draft in enumerate(drafts) for node in draft.all_nodes()}
        output_node = {view.producer[d.output]: i for i, d in enumerate(drafts)}
        for name in view.graph_inputs:
            self.stage[name] = -1
            # Graph inputs are int8 samples (docs/models.md); a partition may receive float32.
            self.int8[name] = self.input_dtypes.get(name, "int8") == "int8"

        layers: list[HardwareLayer] = []
        leftovers: list[int] = []
        for index, node in enumerate(view.nodes):
            if not view.is_dynamic_node(index):
                continue
            if index in layer_of_node:
                i = layer_of_node[index]
                for out in node.output:
                    self.stage[out] = i
                if index in output_node:
                    layers.append(self._layer(i, drafts[i], last=self.ends_model and i == len(drafts) - 1))
                continue
            leftovers.append(index)
            stage = max((self.stage.get(t, -1) for t in view.dynamic_inputs(index)), default=-1)
            preserving = node.op_type in VALUE_PRESERVING_NODES
            is_int8 = preserving and all(self.int8.get(t, False) for t in view.dynamic_inputs(index))
            for out in node.output:
                self.stage[out] = stage
                self.int8[out] = is_int8

        cpu_ops = self._cpu_ops(leftovers, layer_of_node)
        if self.problems:
            raise ModelError(self._message())
        if not layers:
            raise ModelError(f"model {self.name!r} has no hardware layer (no Conv, Gemm, pooling, ...)")
        inputs = tuple(self._spec(t) for t in view.graph_inputs)
        outputs = tuple(self._spec(t) for t in view.graph_outputs)
        return HardwareModel(
            name=self.name,
            inputs=inputs,
            outputs=outputs,
            layers=tuple(layers),
            cpu_ops=cpu_ops,
            cuts=self._cuts(len(layers), layer_of_node, {op.name: op.after_layer for op in cpu_ops}),
        )

    # --- layers ----------------------------------------------------------------------------

    def _layer(self, index: int, draft: LayerDraft, last: bool) -> HardwareLayer:
        view = self.view
        facts = LayerFacts(view=view, draft=draft, bits=self.bits, int8=self.int8)
        layer, problems = describe_layer(facts, index, last)
        for node_index, why in problems:
            node = view.nodes[node_index]
            self.problems.append(_Problem(index, f"layer {index}", view.ids[node_index], node.op_type, why))
        self.int8[draft.output] = layer.clamped
        return _with_cycles(layer)

    # --- CPU work --------------------------------------------------------------------------

    def _cpu_ops(self, leftovers: list[int], layer_of_node: dict[int, int]) -> tuple[CpuOp, ...]:
        view = self.view
        leftover_set = set(leftovers)
        # The first layer each leftover node feeds, directly or through other leftovers.
        feeds: dict[int, int | None] = {}
        for index in reversed(leftovers):
            readers = [c for out in view.nodes[index].output for c in view.consumers.get(out, [])]
            fed = [layer_of_node[r] for r in readers if r in layer_of_node]
            fed += [f for r in readers if r in leftover_set and (f := feeds.get(r)) is not None]
            feeds[index] = min(fed) if fed else None
        ops: list[CpuOp] = []
        for index in leftovers:
            node = view.nodes[index]
            stage = self.stage[node.output[0]] if node.output else -1
            fed_layer = feeds[index]
            if fed_layer is not None and stage >= 0:
                where = f"between layers {stage} and {fed_layer}"
                self.problems.append(
                    _Problem(stage + _BETWEEN, where, view.ids[index], node.op_type, self._why_not(index))
                )
                continue
            ops.append(CpuOp(view.ids[index], node.op_type, stage, self._cpu_cycles(index)))
        return tuple(ops)

    def _why_not(self, index: int) -> str:
        op_type = self.view.nodes[index].op_type
        if op_type in ACTIVATION_NODES or op_type in NUMERIC_UNARY_NODES | NUMERIC_BINARY_NODES:
            return (
                "not part of a hardware layer: an activation or the output scaling must directly "
                "follow a convolution, linear, pooling or element-wise layer"
            )
        if op_type in POOL_NODES or op_type in ELTWISE_NODES:
            return "cannot be fused here (its input is read elsewhere too)"
        if op_type == "BatchNormalization":
            return (
                "the accelerator cannot run a batch-norm between layers; it is folded into a Conv, "
                "ConvTranspose or Gemm directly before it whose output it alone reads (fold it at export)"
            )
        return (
            f"the accelerator cannot run {op_type}; the CPU runs work only before the first or after "
            "the last hardware layer"
        )

    def _cpu_cycles(self, index: int) -> int:
        view = self.view
        node = view.nodes[index]
        elements = 0
        for name in (*view.dynamic_inputs(index), *node.output):
            shape = view.shapes.get(name)
            if shape is not None:
                elements = max(elements, math.prod(shape))
        per_element = CPU_CYCLES_PER_ELEMENT.get(node.op_type, DEFAULT_CPU_CYCLES_PER_ELEMENT)
        return elements * per_element

    # --- cut points ------------------------------------------------------------------------

    def _spec(self, tensor: str) -> TensorSpec:
        dtype = "int8" if self.int8.get(tensor, False) else "float32"
        return TensorSpec(tensor, self.view.shape(tensor), dtype)

    def _cuts(self, count: int, layer_of_node: dict[int, int], cpu_stage: dict[str, int]) -> tuple[CutPoint, ...]:
        """For every cut after layer i: tensors produced at or before i and read after i."""
        view = self.view
        last_reader: dict[str, int] = {}
        produced_order: list[str] = list(view.graph_inputs)
        for index, node in enumerate(view.nodes):
            if not view.is_dynamic_node(index):
                continue
            reader_stage = layer_of_node.get(index, cpu_stage.get(view.ids[index], -1))
            for tensor in view.dynamic_inputs(index):
                last_reader[tensor] = max(last_reader.get(tensor, -1), reader_stage)
            produced_order.extend(out for out in node.output if out)
        for tensor in view.graph_outputs:
            last_reader[tensor] = count  # delivered after the last layer
        crossing: list[tuple[int, int, str]] = []
        for tensor in dict.fromkeys(produced_order):
            produced = self.stage.get(tensor, -1)
            read = last_reader.get(tensor, -1)
            if read > produced and read >= 0:
                crossing.append((produced, read, tensor))
        cuts: list[CutPoint] = []
        for i in range(count - 1):
            tensors = tuple(self._spec(t) for produced, read, t in crossing if produced <= i < read)
            cuts.append(CutPoint(after_layer=i, tensors=tensors))
        return tuple(cuts)

    # --- errors ----------------------------------------------------------------------------

    def _message(self) -> str:
        lines = [f"model {self.name!r} cannot run on a MAX7800x accelerator:"]
        problems = sorted(self.problems, key=lambda p: p.order)  # stable: graph order within a layer
        lines += [f"  {p.where}: node {p.node!r} ({p.op_type}): {p.why}" for p in problems]
        return "\n".join(lines)


def _with_cycles(layer: HardwareLayer) -> HardwareLayer:
    from dataclasses import replace

    return replace(layer, cycles=layer_cycles(layer))
