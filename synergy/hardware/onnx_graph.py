"""A read-only view of an ONNX graph for the hardware analysis and the partitioner.

It answers the questions both ask over and over: which node produces a tensor, which nodes
read it, is it a constant (and which value), what is its shape. Shapes come from ONNX shape
inference, run once per model. Node identifiers are stable and unique even when the model
leaves node names empty or repeats them (:func:`node_ids`), so a layer's ``nodes`` can name
the nodes of any model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from synergy.errors import ModelError

__all__ = ["GraphView", "node_ids", "skeleton"]

#: The batch dimension; models run one frame at a time.
BATCH = 1


def node_ids(nodes: Sequence[onnx.NodeProto]) -> list[str]:
    """A unique identifier per node: its name, or ``<op_type>#<index>`` when empty or repeated."""
    seen: dict[str, int] = {}
    for node in nodes:
        if node.name:
            seen[node.name] = seen.get(node.name, 0) + 1
    return [
        node.name if node.name and seen[node.name] == 1 else f"{node.op_type}#{index}"
        for index, node in enumerate(nodes)
    ]


@dataclass(frozen=True)
class _ConstantValue:
    value: np.ndarray | None


class GraphView:
    """Producers, consumers, constants and shapes of one model's main graph."""

    def __init__(self, model: onnx.ModelProto, light: onnx.ModelProto | None = None) -> None:
        graph = model.graph
        self.model = model
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self.ids = node_ids(self.nodes)
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.graph_inputs = [i.name for i in graph.input if i.name not in self.initializers]
        self.graph_outputs = [o.name for o in graph.output]
        self._graph_output_set = set(self.graph_outputs)
        self.producer: dict[str, int] = {}
        self.consumers: dict[str, list[int]] = {}
        for index, node in enumerate(self.nodes):
            for name in node.output:
                if name:
                    self.producer[name] = index
            for name in dict.fromkeys(node.input):
                if name:
                    self.consumers.setdefault(name, []).append(index)
        self._constants: dict[str, _ConstantValue] = {name: _ConstantValue(None) for name in self.initializers}
        self._find_constants()
        self.shapes = self._infer_shapes(light if light is not None else skeleton(model))

    # --- constants -------------------------------------------------------------------------

    def _find_constants(self) -> None:
        """Mark initializers, Constant outputs and anything computed only from them."""
        # Nodes without inputs other than Constant (RandomNormal, ...) are not constants.
        for node in self.nodes:
            inputs = [name for name in node.input if name]
            if node.op_type == "Constant" or (inputs and all(n in self._constants for n in inputs)):
                for name in node.output:
                    self._constants[name] = _ConstantValue(None)

    def is_constant(self, name: str) -> bool:
        return name in self._constants

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer or a Constant node's output (None if unknown)."""
        entry = self._constants.get(name)
        if entry is None:
            return None
        if entry.value is not None:
            return entry.value
        value: np.ndarray | None = None
        if name in self.initializers:
            value = numpy_helper.to_array(self.initializers[name])
        elif name in self.producer:
            node = self.nodes[self.producer[name]]
            if node.op_type == "Constant":
                for attribute in node.attribute:
                    if attribute.name == "value":
                        value = numpy_helper.to_array(attribute.t)
                    elif attribute.name in ("value_float", "value_int"):
                        value = np.asarray(onnx.helper.get_attribute_value(attribute))
                    elif attribute.name in ("value_floats", "value_ints"):
                        value = np.asarray(list(onnx.helper.get_attribute_value(attribute)))
        self._constants[name] = _ConstantValue(value)
        return value

    def constant_shape(self, name: str) -> tuple[int, ...] | None:
        """Shape of a constant without materialising large initializers."""
        if name in self.initializers:
            return tuple(int(d) for d in self.initializers[name].dims)
        value = self.constant(name)
        return None if value is None else tuple(int(d) for d in value.shape)

    def dynamic_inputs(self, index: int) -> list[str]:
        """Inputs of node ``index`` that carry data (not constants, not omitted)."""
        return [name for name in self.nodes[index].input if name and name not in self._constants]

    def is_dynamic_node(self, index: int) -> bool:
        return any(name not in self._constants for name in self.nodes[index].output if name)

    def is_graph_output(self, name: str) -> bool:
        return name in self._graph_output_set

    # --- shapes ----------------------------------------------------------------------------

    @staticmethod
    def _infer_shapes(light: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
        try:
            inferred = onnx.shape_inference.infer_shapes(light, strict_mode=True, data_prop=True)
        except Exception as exc:  # onnx raises several unrelated types here
            raise ModelError(f"shape inference failed: {exc}") from exc
        shapes: dict[str, tuple[int, ...]] = {}
        for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
            shape = _static_shape(info)
            if shape is not None:
                shapes[info.name] = shape
        return shapes

    def shape(self, name: str) -> tuple[int, ...]:
        shape = self.shapes.get(name)
        if shape is None:
            shape = self.constant_shape(name)
        if shape is None:
            raise ModelError(f"tensor {name!r} has no static shape after shape inference")
        return shape


def skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without its weight values: what shape inference and the analysis depend on.

    Large initializers become graph inputs of the same type and shape; small integer ones
    (Reshape targets) keep their values so shape inference can propagate them. Metadata is
    kept (bit widths). Serialising the skeleton is a cheap, faithful key for the analysis.
    """
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.metadata_props.extend(model.metadata_props)
    graph = light.graph
    graph.node.extend(model.graph.node)
    graph.input.extend(model.graph.input)
    graph.output.extend(model.graph.output)
    graph.value_info.extend(model.graph.value_info)
    declared = {i.name for i in model.graph.input}
    for tensor in model.graph.initializer:
        if math.prod(tensor.dims) <= _SMALL_CONSTANT:
            graph.initializer.append(tensor)
        elif tensor.name not in declared:
            graph.input.append(onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, list(tensor.dims)))
    return light


#: Initializers up to this many elements (Reshape targets, Clip bounds, scales) keep their
#: values in the skeleton, so that data propagation can compute shapes from them.
_SMALL_CONSTANT = 64


def _static_shape(info: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    if not info.type.HasField("tensor_type") or not info.type.tensor_type.HasField("shape"):
        return None
    dims: list[int] = []
    for position, dim in enumerate(info.type.tensor_type.shape.dim):
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif position == 0:
            dims.append(BATCH)  # a symbolic batch dimension: we run one frame at a time
        else:
            return None
    return tuple(dims)
