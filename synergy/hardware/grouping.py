"""Group an ONNX graph's nodes into hardware layers (docs/models.md, "A hardware layer").

A hardware layer is a chain ``[element-wise | concat] [pooling] op [activation] [numerics]``.
Grouping works on the dataflow, not on the node order:

1. every *op* node (Conv, ConvTranspose, Gemm, MatMul, Identity) anchors a layer; walking
   back from its data input it absorbs a Flatten (before a Linear), a pooling, an element-wise
   tree (pooled per operand or pooled after) or a Concat, as long as each absorbed tensor has
   no other reader (a fused intermediate is never written to memory on the chip). A Linear
   (Gemm, MatMul) never absorbs a pooling: the chip cannot pool in a Linear layer, so the
   pooling (``MaxPool -> Flatten -> Gemm``, as PyTorch exports it) stays a layer of its own;
2. element-wise, pooling and Concat nodes left over become standalone layers (element-wise
   or passthrough), grown the same way; they are taken downstream first so that
   ``Add -> MaxPool`` becomes one layer pooling after the element-wise operation;
3. every layer then absorbs the activation and the chip's numerics (``Mul``, ``Add 0.5``,
   ``Floor``, ``Clip``) that follow it, again while each tensor has a single reader.

Whatever is left is not part of any layer; :mod:`synergy.hardware.analysis` decides whether
it is CPU work (before the first or after the last layer) or an unsupported operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from synergy.hardware.onnx_graph import GraphView

__all__ = ["LayerDraft", "group_layers", "role"]

OP_NODES = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul", "Identity"})
LINEAR_NODES = frozenset({"Gemm", "MatMul"})
POOL_NODES = {"MaxPool": "max", "AveragePool": "avg"}
ELTWISE_NODES = {"Add": "add", "Sub": "sub", "BitwiseXor": "xor", "BitwiseOr": "or", "Xor": "xor", "Or": "or"}
ACTIVATION_NODES = {"Relu": "relu", "Abs": "abs"}
#: The chip's numerics after the op: output shift, round half up, clamp (and a Linear's bias).
NUMERIC_UNARY_NODES = frozenset({"Floor", "Clip", "Round"})
NUMERIC_BINARY_NODES = frozenset({"Mul", "Div", "Add", "Sub"})
FLATTEN_NODES = frozenset({"Flatten", "Reshape"})
CONCAT_NODE = "Concat"


def role(view: GraphView, index: int) -> str:
    """What node ``index`` can be inside a hardware layer.

    One of "op", "pool", "eltwise", "concat", "flatten", "activation", "numeric", "constant"
    or "other" (not part of any layer).
    """
    node = view.nodes[index]
    op_type = node.op_type
    if not view.is_dynamic_node(index):
        return "constant"
    dynamic = view.dynamic_inputs(index)
    if op_type in OP_NODES:
        return "op"
    if op_type in POOL_NODES:
        return "pool"
    if op_type in ELTWISE_NODES and len(dynamic) >= 2:
        return "eltwise"
    if op_type == CONCAT_NODE:
        return "concat"
    if op_type in ACTIVATION_NODES:
        return "activation"
    if op_type in NUMERIC_UNARY_NODES:
        return "numeric"
    if op_type in NUMERIC_BINARY_NODES and len(dynamic) == 1:
        return "numeric"
    if op_type in FLATTEN_NODES:
        return "flatten"
    return "other"


@dataclass
class LayerDraft:
    """The nodes of one hardware layer, by part (node indices into the graph view)."""

    #: "op" (anchored by an op node), "eltwise", "pool" or "concat" (standalone).
    kind: str
    anchor: int | None = None
    flatten: int | None = None
    #: Pooling applied to the op's input (after the element-wise operation if any).
    pool: int | None = None
    #: Pooling applied to every element-wise operand before combining them (pool first).
    operand_pools: list[int] = field(default_factory=list)
    eltwise: list[int] = field(default_factory=list)
    #: The element-wise operands (tensors read from outside, before their pooling).
    operands: list[str] = field(default_factory=list)
    concat: int | None = None
    #: Activation and numerics after the op, in order.
    post: list[int] = field(default_factory=list)
    #: The tensor the layer produces.
    output: str = ""

    def core_nodes(self) -> list[int]:
        nodes = [*self.operand_pools, *self.eltwise]
        for part in (self.concat, self.pool, self.flatten, self.anchor):
            if part is not None:
                nodes.append(part)
        return nodes

    def all_nodes(self) -> list[int]:
        return [*self.core_nodes(), *self.post]


class _Grouper:
    def __init__(self, view: GraphView) -> None:
        self.view = view
        self.roles = [role(view, i) for i in range(len(view.nodes))]
        self.assigned: set[int] = set()

    def _fusable_producer(self, tensor: str, wanted: str) -> int | None:
        """The producer of ``tensor`` if it has role ``wanted`` and can fuse into its reader.

        Fusing needs the tensor to have exactly one reader and not be a graph output: a fused
        intermediate is never written to the chip's data memory.
        """
        view = self.view
        index = view.producer.get(tensor)
        if index is None or index in self.assigned or self.roles[index] != wanted:
            return None
        if view.is_graph_output(tensor) or len(view.consumers.get(tensor, ())) != 1:
            return None
        return index

    def _take(self, index: int) -> None:
        self.assigned.add(index)

    def _grow_eltwise(self, draft: LayerDraft, root: int, pool_operands: bool) -> None:
        """Absorb the element-wise tree under ``root`` (chained nodes of one type)."""
        view = self.view
        op_type = view.nodes[root].op_type
        self._take(root)
        draft.eltwise.append(root)
        for position, tensor in enumerate(view.dynamic_inputs(root)):
            child = self._fusable_producer(tensor, "eltwise")
            # a - b - c is Sub(Sub(a, b), c): only the left operand of a Sub chains.
            chains = child is not None and view.nodes[child].op_type == op_type
            if chains and (op_type != "Sub" or position == 0):
                assert child is not None
                self._grow_eltwise(draft, child, pool_operands)
                continue
            if pool_operands:
                pool = self._fusable_producer(tensor, "pool")
                if pool is not None:
                    self._take(pool)
                    draft.operand_pools.append(pool)
                    tensor = view.dynamic_inputs(pool)[0]
            draft.operands.append(tensor)

    def _grow_inputs(self, draft: LayerDraft, tensor: str, allow_pool: bool) -> None:
        """Absorb the pooling, element-wise tree or Concat feeding ``tensor`` into the layer."""
        if allow_pool:
            pool = self._fusable_producer(tensor, "pool")
            if pool is not None:
                self._take(pool)
                draft.pool = pool
                tensor = self.view.dynamic_inputs(pool)[0]
        eltwise = self._fusable_producer(tensor, "eltwise")
        if eltwise is not None:
            self._grow_eltwise(draft, eltwise, pool_operands=allow_pool and draft.pool is None)
            return
        concat = self._fusable_producer(tensor, "concat")
        if concat is not None:
            self._take(concat)
            draft.concat = concat

    def _grow_post(self, draft: LayerDraft, tensor: str) -> None:
        view = self.view
        while not view.is_graph_output(tensor):
            readers = view.consumers.get(tensor, [])
            if len(readers) != 1:
                break
            reader = readers[0]
            if reader in self.assigned or self.roles[reader] not in ("activation", "numeric"):
                break
            self._take(reader)
            draft.post.append(reader)
            tensor = view.nodes[reader].output[0]
        draft.output = tensor

    def _anchor_layer(self, index: int) -> LayerDraft:
        view = self.view
        draft = LayerDraft(kind="op", anchor=index)
        self._take(index)
        inputs = view.dynamic_inputs(index)
        if inputs:
            tensor = inputs[0]
            linear = view.nodes[index].op_type in LINEAR_NODES
            if linear:
                flatten = self._fusable_producer(tensor, "flatten")
                if flatten is not None:
                    self._take(flatten)
                    draft.flatten = flatten
                    tensor = view.dynamic_inputs(flatten)[0]
            # A Linear layer cannot pool (HARDWARE.md §1): a pooling feeding it is left over
            # and becomes a standalone pooling layer (passthrough with pooling) just before.
            self._grow_inputs(draft, tensor, allow_pool=not linear)
        self._grow_post(draft, view.nodes[index].output[0])
        return draft

    def _standalone_layer(self, index: int) -> LayerDraft:
        view = self.view
        kind = self.roles[index]
        draft = LayerDraft(kind=kind)
        if kind == "eltwise":
            self._grow_eltwise(draft, index, pool_operands=True)
        elif kind == "pool":
            self._take(index)
            draft.pool = index
            self._grow_inputs(draft, view.dynamic_inputs(index)[0], allow_pool=False)
            if draft.eltwise:
                draft.kind = "eltwise"
        else:
            self._take(index)
            draft.concat = index
        self._grow_post(draft, view.nodes[index].output[0])
        return draft

    def run(self) -> list[LayerDraft]:
        drafts: list[LayerDraft] = []
        for index, node_role in enumerate(self.roles):
            if node_role == "op" and index not in self.assigned:
                drafts.append(self._anchor_layer(index))
        # Downstream first: the last node of a leftover chain anchors it.
        for index in range(len(self.roles) - 1, -1, -1):
            if self.roles[index] in ("eltwise", "pool", "concat") and index not in self.assigned:
                drafts.append(self._standalone_layer(index))
        # Graph order is topological, so ordering layers by the node producing their output
        # puts every layer after the layers it reads from.
        drafts.sort(key=lambda d: self.view.producer[d.output])
        return drafts


def group_layers(view: GraphView) -> tuple[list[LayerDraft], set[int]]:
    """The model's hardware layers in execution order, and the node indices they use."""
    grouper = _Grouper(view)
    drafts = grouper.run()
    return drafts, grouper.assigned
