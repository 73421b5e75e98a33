"""Normalise a foreign ONNX export (PyTorch, the vendor's ai8x tools) into the form of docs/models.md.

Exporters leave things in an inference graph that the accelerator never sees as operators:
batch-norm that ai8x folds into the convolution at export, dropout, renaming ``Identity``
nodes, a global pooling where the chip has a plain one, ``Reshape(x, [1, -1])`` (or a
``Shape -> Gather -> Concat`` chain computing ``[batch, -1]``) where the chip flattens.
:func:`normalize_model` rewrites exactly these, each time into an equivalent graph (the outputs
are the same up to float rounding), and nothing else:

- **batch**: a symbolic batch dimension of the graph inputs and outputs becomes 1 (models run
  one frame at a time);
- **Dropout** (inference mode, mask unused) is removed; so is an ``Identity`` that only
  renames a tensor (its input has no other reader). An ``Identity`` whose input is read
  elsewhere too is kept: that copy is the chip's passthrough layer (a residual kept in
  memory). A node is only removed when no graph input or output loses its name; a Dropout
  that cannot be removed becomes an ``Identity``;
- **BatchNormalization** is folded into the ``Conv``, ``ConvTranspose`` (``group`` 1) or
  ``Gemm`` right before it when that node's output feeds only the batch-norm and its weights
  are constants: ``w' = w * s``, ``b' = (b - mean) * s + beta`` with
  ``s = gamma / sqrt(var + eps)`` per output channel. Any other batch-norm stays (and the
  hardware analysis reports it);
- **GlobalAveragePool / GlobalMaxPool**, and **ReduceMean / ReduceMax** over all spatial axes
  (``x.mean((2, 3))``), become ``AveragePool`` / ``MaxPool`` whose window is the whole (known)
  spatial size; a reduction without ``keepdims`` is followed by a ``Flatten`` named after it;
- **Reshape** to ``[batch, C * H * W]`` of a tensor of known shape becomes ``Flatten(axis=1)``;
- nodes whose outputs nobody reads any more (the shape computations of such a Reshape) and
  initializers nobody reads (batch-norm statistics) are removed; node names are kept (the only
  new node is such a ``Flatten``);
- ONNX shape inference runs on the result, which must pass ``onnx.checker``.

A model that needs none of this (the zoo's models, a partition's sub-model) comes back as the
very same object, bytes unchanged. :mod:`synergy.models.loader` applies the normalisation to
model files and uploaded bytes, not to zoo models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from synergy.errors import ModelError
from synergy.hardware.onnx_graph import skeleton

__all__ = ["normalize_model"]

#: The batch size the normalised model runs with (docs/models.md: batch 1).
BATCH = 1
#: BatchNormalization's default epsilon (ONNX).
DEFAULT_BN_EPSILON = 1e-5
#: Nodes a batch-norm folds into, and the weight axis of their output channels.
_FOLD_TARGETS = {"Conv": 0, "ConvTranspose": 1, "Gemm": 0}
_GLOBAL_POOLS = {"GlobalAveragePool": "AveragePool", "GlobalMaxPool": "MaxPool"}
_REDUCTIONS = {"ReduceMean": "AveragePool", "ReduceMax": "MaxPool"}

Shape = tuple[int | None, ...]


def normalize_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with the rewrites of the module docstring; ``model`` itself if none applies.

    Raises :class:`ModelError` when shape inference or the ONNX checker refuses the result.
    """
    work = onnx.ModelProto()
    work.CopyFrom(model)
    editor = _Editor(work)
    changed = editor.fix_batch()
    shapes = _shapes(work)
    changed = editor.drop_no_ops() or changed
    changed = editor.fold_batch_norms() or changed
    changed = editor.global_pools(shapes) or changed
    changed = editor.reductions_to_pools(shapes) or changed
    changed = editor.reshapes_to_flatten(shapes) or changed
    changed = editor.remove_dead_nodes() or changed
    if not changed:
        return model
    editor.commit()
    try:
        result = onnx.shape_inference.infer_shapes(work, data_prop=True)
    except Exception as exc:  # onnx raises several unrelated types here
        raise ModelError(f"shape inference failed after normalising the model: {exc}") from exc
    try:
        onnx.checker.check_model(result)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:  # pragma: no cover - a bug of ours
        raise ModelError(f"normalising the model made it invalid: {exc}") from exc
    return result


def _shapes(model: onnx.ModelProto) -> dict[str, Shape]:
    """Inferred shapes (None for unknown dimensions); empty when inference fails."""
    try:
        inferred = onnx.shape_inference.infer_shapes(skeleton(model), data_prop=True)
    except Exception:  # the hardware analysis reports shape problems with its own words
        return {}
    shapes: dict[str, Shape] = {}
    for info in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        tensor_type = info.type.tensor_type
        if info.type.HasField("tensor_type") and tensor_type.HasField("shape"):
            shapes[info.name] = tuple(
                int(d.dim_value) if d.HasField("dim_value") else None for d in tensor_type.shape.dim
            )
    return shapes


class _Editor:
    """The main graph as a mutable node list, with readers and producers on demand."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        graph = model.graph
        self.nodes: list[onnx.NodeProto] = list(graph.node)
        self.initializers: dict[str, onnx.TensorProto] = {t.name: t for t in graph.initializer}
        self.graph_inputs = {i.name for i in graph.input}
        self.graph_outputs = {o.name for o in graph.output}

    # --- queries ---------------------------------------------------------------------------

    def producer(self, name: str) -> onnx.NodeProto | None:
        for node in self.nodes:
            if name in node.output:
                return node
        return None

    def readers(self, name: str) -> list[onnx.NodeProto]:
        return [node for node in self.nodes if name in node.input]

    def used(self, name: str) -> bool:
        return name in self.graph_outputs or any(name in node.input for node in self.nodes)

    def _names(self) -> set[str]:
        names = set(self.initializers) | self.graph_inputs | self.graph_outputs
        for node in self.nodes:
            names.update(node.input)
            names.update(node.output)
        return names

    def fresh(self, stem: str) -> str:
        names = self._names()
        name, count = stem, 1
        while name in names:
            count += 1
            name = f"{stem}_{count}"
        return name

    def constant(self, name: str) -> np.ndarray | None:
        """The value of an initializer, a Constant node or an Identity of one (else None)."""
        if name in self.initializers:
            return numpy_helper.to_array(self.initializers[name])
        node = self.producer(name)
        if node is None:
            return None
        if node.op_type == "Identity":
            return self.constant(node.input[0])
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    return numpy_helper.to_array(attribute.t)
        return None

    def is_constant(self, name: str) -> bool:
        return self.constant(name) is not None

    def _has_subgraphs(self) -> bool:
        return any(
            a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for n in self.nodes for a in n.attribute
        )

    # --- edits -----------------------------------------------------------------------------

    def _replace_uses(self, old: str, new: str) -> None:
        for node in self.nodes:
            for position, name in enumerate(node.input):
                if name == old:
                    node.input[position] = new

    def _remove(self, node: onnx.NodeProto) -> None:
        self.nodes = [n for n in self.nodes if n is not node]

    def only_reader(self, name: str, node: onnx.NodeProto) -> bool:
        readers = self.readers(name)
        return len(readers) == 1 and readers[0] is node

    def _private(self, name: str, node: onnx.NodeProto) -> bool:
        """``name`` is an initializer only ``node`` reads (so it may be overwritten)."""
        return (
            bool(name)
            and name in self.initializers
            and name not in self.graph_inputs | self.graph_outputs
            and self.only_reader(name, node)
        )

    def _set_value(
        self, node: onnx.NodeProto, position: int, value: np.ndarray, stem: str, spare: tuple[str, onnx.NodeProto]
    ) -> None:
        """Make input ``position`` of ``node`` the constant ``value``.

        An initializer only ``node`` reads is overwritten under its name; else the initializer
        ``spare[0]`` if only ``spare[1]`` (a node about to go) reads it; else a new one.
        """
        current = node.input[position] if len(node.input) > position else ""
        if self._private(current, node):
            name = current
        elif self._private(*spare):
            name = spare[0]
        else:
            name = self.fresh(stem)
        self.initializers[name] = numpy_helper.from_array(value, name)
        while len(node.input) <= position:
            node.input.append("")
        node.input[position] = name

    def _bypass(self, node: onnx.NodeProto) -> bool:
        """Remove a node whose first output equals its first input; False if names forbid it."""
        source, target = node.input[0], node.output[0]
        if target not in self.graph_outputs:
            self._remove(node)
            self._replace_uses(target, source)
            return True
        producer = self.producer(source)
        if (
            producer is None
            or producer.op_type == "Constant"
            or source in self.graph_inputs | self.graph_outputs | set(self.initializers)
        ):
            return False
        # The graph output keeps its name: the producer writes it directly.
        self._remove(node)
        producer.output[list(producer.output).index(source)] = target
        self._replace_uses(source, target)
        return True

    def commit(self) -> None:
        """Write the edited nodes and initializers back into the model."""
        graph = self.model.graph
        del graph.node[:]
        graph.node.extend(self.nodes)
        used = {name for node in self.nodes for name in node.input} | self.graph_outputs
        kept = [t for name, t in self.initializers.items() if name in used]
        del graph.initializer[:]
        graph.initializer.extend(kept)
        kept_names = {t.name for t in kept}
        declared = [i for i in graph.input if i.name not in self.initializers or i.name in kept_names]
        del graph.input[:]
        graph.input.extend(declared)
        # Shapes are inferred again from scratch.
        del graph.value_info[:]

    # --- rewrites --------------------------------------------------------------------------

    def fix_batch(self) -> bool:
        """A symbolic (or unknown) first dimension of the graph inputs and outputs becomes 1."""
        graph = self.model.graph
        changed = False
        for info in (*graph.input, *graph.output):
            if info.name in self.initializers or not info.type.HasField("tensor_type"):
                continue
            tensor_type = info.type.tensor_type
            if not tensor_type.HasField("shape") or len(tensor_type.shape.dim) < 2:
                continue
            first = tensor_type.shape.dim[0]
            if not first.HasField("dim_value"):
                first.Clear()
                first.dim_value = BATCH
                changed = True
        if changed:
            del graph.value_info[:]  # they may name the symbolic batch
        return changed

    def drop_no_ops(self) -> bool:
        if self._has_subgraphs():
            return False
        changed = False
        for node in list(self.nodes):
            if node.op_type == "Dropout" and self._inference_dropout(node):
                if self._bypass(node):
                    changed = True
                else:
                    node.op_type = "Identity"
                    del node.input[1:]
                    del node.output[1:]
                    del node.attribute[:]
                    changed = True
            elif node.op_type == "Identity" and self._renaming_identity(node):
                changed = self._bypass(node) or changed
        return changed

    def _inference_dropout(self, node: onnx.NodeProto) -> bool:
        if len(node.output) > 1 and node.output[1] and self.used(node.output[1]):
            return False  # the mask is read
        if len(node.input) > 2 and node.input[2]:
            mode = self.constant(node.input[2])
            if mode is None or bool(np.asarray(mode).reshape(-1)[0]):
                return False  # training mode, or not known to be off
        return True

    def _renaming_identity(self, node: onnx.NodeProto) -> bool:
        source = node.input[0]
        if not source or self.is_constant(source):
            return False  # an Identity of a weight is not a layer anyway
        # A copy of a tensor read elsewhere too may be the chip's passthrough layer: keep it.
        return self.only_reader(source, node)

    def fold_batch_norms(self) -> bool:
        if self._has_subgraphs():
            return False
        changed = False
        for node in list(self.nodes):
            if node.op_type == "BatchNormalization":
                changed = self._fold(node) or changed
        return changed

    def _fold(self, bn: onnx.NodeProto) -> bool:
        if any(a.name == "training_mode" and a.i for a in bn.attribute):
            return False
        if any(name and self.used(name) for name in bn.output[1:]):
            return False
        source = bn.input[0]
        target = self.producer(source)
        if target is None or target.op_type not in _FOLD_TARGETS or len(target.output) != 1:
            return False
        if source in self.graph_outputs:
            return False  # the un-normalised value is a result too
        if len(bn.input) < 5 or not self.only_reader(source, bn):
            return False
        params: list[np.ndarray] = []
        for name in bn.input[1:5]:
            value = self.constant(name) if name else None
            if value is None:
                return False
            params.append(np.asarray(value, dtype=np.float64).reshape(-1))
        gamma, beta, mean, var = params
        weight = self.constant(target.input[1]) if len(target.input) > 1 else None
        has_bias = len(target.input) > 2 and bool(target.input[2])
        bias = self.constant(target.input[2]) if has_bias else None
        if weight is None or (has_bias and bias is None):
            return False
        epsilon = next((a.f for a in bn.attribute if a.name == "epsilon"), DEFAULT_BN_EPSILON)
        scale = gamma / np.sqrt(var + epsilon)
        folded = self._folded(target, np.asarray(weight), bias, scale, mean, beta)
        if folded is None:
            return False
        new_weight, new_bias = folded
        dtype = np.asarray(weight).dtype
        stem = target.name.strip("/").replace("/", "_") or target.op_type.lower()
        self._set_value(target, 1, new_weight.astype(dtype), f"{stem}_folded_weight", ("", bn))
        self._set_value(target, 2, new_bias.astype(dtype), f"{stem}_folded_bias", (bn.input[2], bn))
        if target.op_type == "Gemm":
            for attribute in target.attribute:
                if attribute.name == "beta":
                    attribute.f = 1.0
        target.output[0] = bn.output[0]
        self._remove(bn)
        return True

    @staticmethod
    def _folded(
        target: onnx.NodeProto,
        weight: np.ndarray,
        bias: np.ndarray | None,
        scale: np.ndarray,
        mean: np.ndarray,
        beta: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """(weight, bias) with the batch-norm folded in, or None if the shapes do not allow it."""
        attributes = {a.name: helper.get_attribute_value(a) for a in target.attribute}
        channels = scale.shape[0]
        values = np.asarray(weight, dtype=np.float64)
        if target.op_type == "Gemm":
            if values.ndim != 2:
                return None
            axis = 0 if attributes.get("transB", 0) else 1
            alpha_beta = float(attributes.get("beta", 1.0))
            old_bias = np.zeros(channels) if bias is None else np.asarray(bias, dtype=np.float64) * alpha_beta
            if old_bias.size not in (1, channels):
                return None
            old_bias = np.broadcast_to(old_bias.reshape(-1), (channels,))
        else:
            if values.ndim < 3 or (target.op_type == "ConvTranspose" and attributes.get("group", 1) != 1):
                return None
            axis = _FOLD_TARGETS[target.op_type]
            old_bias = np.zeros(channels) if bias is None else np.asarray(bias, dtype=np.float64).reshape(-1)
            if old_bias.shape != (channels,):
                return None
        if values.shape[axis] != channels:
            return None
        shape = [1] * values.ndim
        shape[axis] = channels
        return values * scale.reshape(shape), (old_bias - mean) * scale + beta

    def global_pools(self, shapes: dict[str, Shape]) -> bool:
        changed = False
        for node in self.nodes:
            if node.op_type not in _GLOBAL_POOLS:
                continue
            spatial = shapes.get(node.input[0], (None,))[2:]
            if not spatial or any(d is None for d in spatial):
                continue
            window = [int(d) for d in spatial if d is not None]
            node.op_type = _GLOBAL_POOLS[node.op_type]
            del node.attribute[:]
            node.attribute.extend(
                [helper.make_attribute("kernel_shape", window), helper.make_attribute("strides", window)]
            )
            changed = True
        return changed

    def reductions_to_pools(self, shapes: dict[str, Shape]) -> bool:
        """``ReduceMean`` / ``ReduceMax`` over all spatial axes (``x.mean((2, 3))``) -> pooling.

        With ``keepdims=0`` a ``Flatten`` named after the reduction follows the pooling.
        """
        changed = False
        for node in list(self.nodes):
            if node.op_type not in _REDUCTIONS:
                continue
            source = shapes.get(node.input[0])
            if source is None or len(source) < 3 or not _known(source[2:]):
                continue
            attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            if len(node.input) > 1 and node.input[1]:
                value = self.constant(node.input[1])
                axes = None if value is None else [int(a) for a in np.asarray(value).reshape(-1)]
            else:
                axes = attributes.get("axes")
            rank = len(source)
            if axes is None or sorted(int(a) % rank for a in axes) != list(range(2, rank)):
                continue
            window = [int(d) for d in source[2:] if d is not None]
            output = node.output[0]
            keep = bool(attributes.get("keepdims", 1))
            node.op_type = _REDUCTIONS[node.op_type]
            del node.input[1:]
            del node.attribute[:]
            node.attribute.extend(
                [helper.make_attribute("kernel_shape", window), helper.make_attribute("strides", window)]
            )
            if not keep:
                pooled = self.fresh(f"{output}_pooled")
                node.output[0] = pooled
                flatten = helper.make_node("Flatten", [pooled], [output], name=self.fresh_node(f"{node.name}_flatten"))
                flatten.attribute.append(helper.make_attribute("axis", 1))
                self.nodes.insert(self.nodes.index(node) + 1, flatten)
            changed = True
        return changed

    def fresh_node(self, stem: str) -> str:
        names = {node.name for node in self.nodes}
        name, count = stem, 1
        while name in names:
            count += 1
            name = f"{stem}_{count}"
        return name

    def reshapes_to_flatten(self, shapes: dict[str, Shape]) -> bool:
        changed = False
        for node in self.nodes:
            if node.op_type != "Reshape":
                continue
            source = shapes.get(node.input[0])
            result = shapes.get(node.output[0])
            if source is None or result is None or len(source) < 3 or not _known(source):
                continue
            flat = (source[0], math.prod(d for d in source[1:] if d is not None))
            if result != flat:
                continue
            node.op_type = "Flatten"
            del node.input[1:]
            del node.attribute[:]
            node.attribute.append(helper.make_attribute("axis", 1))
            changed = True
        return changed

    def remove_dead_nodes(self) -> bool:
        """Drop nodes none of whose outputs is read or a graph output (repeatedly)."""
        if self._has_subgraphs():
            return False
        changed = False
        while True:
            read = {name for node in self.nodes for name in node.input} | self.graph_outputs
            dead = [node for node in self.nodes if not any(out in read for out in node.output if out)]
            if not dead:
                return changed
            for node in dead:
                self._remove(node)
            changed = True


def _known(shape: Iterable[int | None]) -> bool:
    return all(d is not None for d in shape)
