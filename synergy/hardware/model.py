"""What Synergy knows about a model once it is read as the chip executes it.

These are the contract types between the hardware analysis (``synergy.hardware.analysis``:
ONNX -> hardware layers, the cycle formula, the partition checker, the partitioner), the
orchestrator (``synergy.planning``) and the daemons. They are plain frozen dataclasses so
they can be cached, compared and shipped between processes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["CpuOp", "CutPoint", "FitReport", "HardwareLayer", "HardwareModel", "TensorSpec"]

#: Wire dtypes. Activations of MAX7800x models are int8 on the chip and on the wire; only the
#: last layer may produce 32-bit ("wide") values, which travel as float32.
DTYPE_BYTES = {"int8": 1, "float32": 4, "int32": 4}


@dataclass(frozen=True)
class TensorSpec:
    """A named tensor as it travels between partitions (batch dimension included)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"

    @property
    def elements(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.elements * DTYPE_BYTES[self.dtype]


@dataclass(frozen=True)
class HardwareLayer:
    """One accelerator layer: [element-wise over operands] [pooling] op [activation].

    ``nodes`` are the ONNX node names the layer consists of; ``inputs`` the ONNX tensor
    names it reads from outside itself (several for element-wise layers and concatenations);
    ``output`` the tensor it produces.
    """

    index: int
    #: "conv1d", "conv2d", "convtranspose2d", "linear", "passthrough" or "eltwise".
    op: str
    nodes: tuple[str, ...]
    inputs: tuple[str, ...]
    output: str
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]
    kernel: tuple[int, ...] = ()
    pad: int = 0
    #: Pooling fused before the op: "max", "avg" or "" and its window / stride.
    pool: str = ""
    pool_size: tuple[int, ...] = ()
    pool_stride: tuple[int, ...] = ()
    #: Element-wise op over ``eltwise_operands`` operands: "add", "sub", "xor", "or" or "".
    eltwise: str = ""
    eltwise_operands: int = 1
    #: "relu", "abs" or "none".
    activation: str = "none"
    flatten: bool = False
    groups: int = 1
    dilation: int = 1
    in_channels: int = 0
    out_channels: int = 0
    #: Weight bit width (1, 2, 4 or 8) and the parameter count / bytes at that width.
    weight_bits: int = 8
    weights: int = 0
    weight_bytes: int = 0
    bias_bytes: int = 0
    #: 8 (int8, clamped) or 32 (wide, last layer only).
    output_width: int = 8
    #: Output size in bytes as the chip stores it (int8, or 4 bytes per value when wide).
    out_bytes: int = 0
    #: CNN clock cycles per HARDWARE.md §2.
    cycles: int = 0
    #: With element-wise operands and pooling: pool each operand first (True, the usual case)
    #: or pool the element-wise result (False). Changes the cycle count (HARDWARE.md §2).
    pool_first: bool = True
    #: Runs as a streaming (FIFO) layer: about 1.5x the cycles (HARDWARE.md §2).
    streaming: bool = False
    #: The graph clamps the output to [-128, 127] (the chip's numerics), so it is an int8
    #: on the wire; False for a wide last layer or a graph that does not emulate the clamp.
    clamped: bool = True

    @property
    def depthwise(self) -> bool:
        return self.groups > 1


@dataclass(frozen=True)
class CpuOp:
    """Work the accelerator cannot do (softmax, argmax, unfolding, ...), done by the CPU."""

    name: str
    op_type: str
    #: Index of the hardware layer it follows (-1: before the first layer).
    after_layer: int
    #: Estimated CPU cycles per frame.
    cycles: int


@dataclass(frozen=True)
class CutPoint:
    """A place to cut a model between hardware layers ``after_layer`` and ``after_layer + 1``.

    ``tensors`` are all tensors that cross the cut (skip connections included), i.e. what
    one partition sends to the next.
    """

    after_layer: int
    tensors: tuple[TensorSpec, ...]

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors)


@dataclass(frozen=True)
class HardwareModel:
    """A model read as a sequence of hardware layers, independent of any board."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    layers: tuple[HardwareLayer, ...]
    cpu_ops: tuple[CpuOp, ...] = ()
    #: cuts[i] is the cut after layer i (i = 0 .. len(layers) - 2).
    cuts: tuple[CutPoint, ...] = ()

    @property
    def input_bytes(self) -> int:
        return sum(t.nbytes for t in self.inputs)

    @property
    def output_bytes(self) -> int:
        return sum(t.nbytes for t in self.outputs)

    @property
    def weight_bytes(self) -> int:
        return sum(layer.weight_bytes for layer in self.layers)

    @property
    def total_cycles(self) -> int:
        """Cycles of the whole network: 1 + sum of the layers (HARDWARE.md §2)."""
        return 1 + sum(layer.cycles for layer in self.layers)

    def entering(self, first: int) -> tuple[TensorSpec, ...]:
        """The tensors a partition starting at layer ``first`` receives."""
        return self.inputs if first == 0 else self.cuts[first - 1].tensors

    def leaving(self, last: int) -> tuple[TensorSpec, ...]:
        """The tensors a partition ending at layer ``last`` sends on."""
        return self.outputs if last == len(self.layers) - 1 else self.cuts[last].tensors


@dataclass(frozen=True)
class FitReport:
    """Whether a partition fits a board; each reason names the constraint, need and capacity."""

    fits: bool
    reasons: tuple[str, ...] = ()
