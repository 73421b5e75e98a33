"""Cut an ONNX model into the sub-models that run its partitions (ranges of hardware layers).

:func:`partition_ranges` turns cuts into layer ranges.

:func:`split_model` keeps the nodes of layers ``first..last`` (and the CPU work those layers
own: work before the first layer goes with the first partition, work after layer ``i`` with
the partition holding ``i``), the constants they need and nothing else. The sub-model's graph
inputs are exactly the tensors entering the partition (``hw.entering(first)``) and its graph
outputs exactly the tensors leaving it (``hw.leaving(last)``), under their original names, so
partitions chain by name. A tensor crossing the partition without being read by it (a skip
connection) is forwarded: the graph output is the graph input itself, which onnx.checker and
onnxruntime accept and which, unlike an Identity node, keeps the tensor's name and adds no
hardware layer when the partition itself is analysed.

Activations stay float32 in the sub-model (int8 values carried in float32, docs/models.md);
the TensorSpecs say how they travel on the wire. The sub-model's metadata
(:data:`~synergy.hardware.analysis.PARTITION_KEY`) records the layer range, the model's layer
count and the entering tensors' wire dtypes, so analysing the sub-model gives back the same
layers (a float32 cut stays float32; only the model's last layer outputs 32 bit).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import onnx
from onnx import ModelProto, TensorProto, helper

from synergy.errors import InvalidArgument, ModelError
from synergy.hardware.analysis import PARTITION_KEY, WEIGHT_BITS_KEY, weight_bits_of
from synergy.hardware.costs import partition_cpu_ops
from synergy.hardware.model import HardwareModel, TensorSpec
from synergy.hardware.onnx_graph import node_ids

__all__ = ["PARTITION_KEY", "Partition", "partition_ranges", "split_model"]


@dataclass(frozen=True)
class Partition:
    """One partition's sub-model: ONNX bytes and the tensors it receives and sends."""

    first: int
    last: int
    #: The serialized sub-model (onnx.ModelProto bytes).
    onnx: bytes
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def model(self) -> ModelProto:
        """The sub-model, parsed."""
        return onnx.load_from_string(self.onnx)


def partition_ranges(cuts: Sequence[int], layers: int) -> list[tuple[int, int]]:
    """(first, last) per partition for cuts after the given layers (sorted, unique, in range)."""
    ordered = sorted(set(cuts))
    if any(not 0 <= c < layers - 1 for c in ordered):
        raise InvalidArgument(f"cuts {list(cuts)} must lie between layers 0 and {layers - 2}")
    starts = [0, *(c + 1 for c in ordered)]
    ends = [*ordered, layers - 1]
    return list(zip(starts, ends, strict=True))


def _value_info(spec: TensorSpec) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(spec.name, TensorProto.FLOAT, list(spec.shape))


def _select_nodes(model: onnx.ModelProto, hw: HardwareModel, first: int, last: int) -> list[int]:
    """Indices (graph order) of the nodes the partition runs, constants they need included."""
    graph = model.graph
    ids = node_ids(graph.node)
    index_of = {node_id: i for i, node_id in enumerate(ids)}
    wanted = {node_id for layer in hw.layers[first : last + 1] for node_id in layer.nodes}
    wanted |= {op.name for op in partition_cpu_ops(hw, first, last)}
    missing = sorted(wanted - index_of.keys())
    if missing:
        raise ModelError(f"model {hw.name!r} does not match its analysis: no node(s) {missing[:5]}")
    selected = {index_of[node_id] for node_id in wanted}
    producer = {out: i for i, node in enumerate(graph.node) for out in node.output if out}
    initializers = {t.name for t in graph.initializer}
    available = {t.name for t in hw.entering(first)} | initializers
    # Pull in what the selected nodes read and nobody provides: constants (and nodes computed
    # only from constants). Anything else would be an activation from another partition.
    pending = list(selected)
    while pending:
        node = graph.node[pending.pop()]
        for name in node.input:
            if not name or name in available or producer.get(name) in selected:
                continue
            source = producer.get(name)
            if source is None or not _is_constant(graph, source, producer, initializers):
                raise ModelError(
                    f"partition {first}..{last} of {hw.name!r} reads {name!r}, which neither enters "
                    "the partition nor is a constant"
                )
            selected.add(source)
            pending.append(source)
    return sorted(selected)


def _is_constant(graph: onnx.GraphProto, index: int, producer: dict[str, int], initializers: set[str]) -> bool:
    node = graph.node[index]
    if node.op_type == "Constant":
        return True
    inputs = [name for name in node.input if name]
    return bool(inputs) and all(
        name in initializers or (name in producer and _is_constant(graph, producer[name], producer, initializers))
        for name in inputs
    )


def split_model(model: onnx.ModelProto, hw: HardwareModel, first: int, last: int) -> Partition:
    """The sub-model running layers ``first..last`` (inclusive) of ``model``; see the module doc."""
    if not 0 <= first <= last < len(hw.layers):
        raise InvalidArgument(f"partition {first}..{last} outside layers 0..{len(hw.layers) - 1} of {hw.name!r}")
    inputs = hw.entering(first)
    outputs = hw.leaving(last)
    graph = model.graph
    nodes = [graph.node[i] for i in _select_nodes(model, hw, first, last)]
    used = {name for node in nodes for name in node.input if name}
    initializers = [t for t in graph.initializer if t.name in used]
    sub_graph = helper.make_graph(
        nodes,
        f"{graph.name or hw.name}_layers_{first}_{last}",
        [_value_info(t) for t in inputs],
        [_value_info(t) for t in outputs],
        initializers,
    )
    sub = helper.make_model(sub_graph, opset_imports=list(model.opset_import))
    sub.ir_version = model.ir_version
    sub.producer_name = model.producer_name or "synergy"
    metadata = {p.key: p.value for p in model.metadata_props if p.key not in (WEIGHT_BITS_KEY, PARTITION_KEY)}
    bits = {name: b for name, b in weight_bits_of(model).items() if name in used}
    if bits:
        metadata[WEIGHT_BITS_KEY] = json.dumps(bits, sort_keys=True)
    # Which model and layer range this is; the layer count and the entering tensors' wire
    # dtypes let the sub-model's own analysis describe its layers as the whole model's did.
    metadata[PARTITION_KEY] = json.dumps(
        {
            "model": hw.name,
            "first": first,
            "last": last,
            "layers": len(hw.layers),
            "inputs": {t.name: t.dtype for t in inputs},
        }
    )
    helper.set_model_props(sub, metadata)
    try:
        onnx.checker.check_model(sub)
    except onnx.checker.ValidationError as exc:  # pragma: no cover - would be a bug of ours
        raise ModelError(f"partition {first}..{last} of {hw.name!r} is not valid ONNX: {exc}") from exc
    return Partition(first, last, sub.SerializeToString(), inputs, outputs)
