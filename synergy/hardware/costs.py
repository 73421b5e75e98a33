"""Per-frame busy times of a partition on a board (DESIGN.md §5, HARDWARE.md §2).

These are the stage costs the planner adds up per resource:

- accelerator: ``(1 + sum of the layers' cycles) / cnn_clock`` (the izer's estimator; one
  network start cycle per partition run);
- CPU: loading the entering tensors into the accelerator's data memory and unloading the
  leaving ones (``bytes / board.cpu_copy_bytes_per_s``), plus the CPU work the partition owns
  (softmax, unfolding, ...: ``cycles / board.cpu_clock_hz``);
- weight load: ``weight bytes / board.weight_load_bytes_per_s`` (bias included), paid once
  when the partition is loaded, and again at every switch when partitions sharing the
  accelerator do not fit its weight memory together.

Every rate is a :class:`~synergy.hardware.boards.BoardProfile` field: named assumptions to be
calibrated by measurements (HARDWARE.md §2, "Other per-frame costs"). A board without an
accelerator (``accelerator == "cpu"``) runs the layers in software at
:data:`CPU_CYCLES_PER_MAC` cycles per multiply-accumulate (an assumption for CMSIS-NN-style
int8 kernels on a Cortex-M4F).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from synergy.hardware.boards import BoardProfile
from synergy.hardware.cycles import NETWORK_START_CYCLES
from synergy.hardware.model import CpuOp, HardwareLayer, HardwareModel

__all__ = [
    "CPU_CYCLES_PER_MAC",
    "PartitionTimes",
    "layer_macs",
    "layer_time_s",
    "partition_cpu_ops",
    "partition_times",
]

#: Software inference cost on a board without accelerator (assumption: int8 SIMD MACs).
CPU_CYCLES_PER_MAC = 2.0
CPU_ACCELERATOR = "cpu"


@dataclass(frozen=True)
class PartitionTimes:
    """Seconds of busy time per frame for one partition on one board, by resource."""

    #: CNN accelerator busy time (0 on a CPU-only board).
    accelerator_s: float
    #: CPU copying the entering tensors into data memory.
    input_load_s: float
    #: CPU copying the leaving tensors out of data memory.
    output_unload_s: float
    #: CPU work of the partition (operators the accelerator cannot run, or every layer on a
    #: CPU-only board).
    cpu_ops_s: float
    #: Loading the partition's weights and bias once (not per frame unless reloaded).
    weight_load_s: float

    @property
    def cpu_s(self) -> float:
        """CPU busy time per frame."""
        return self.input_load_s + self.output_unload_s + self.cpu_ops_s

    @property
    def frame_s(self) -> float:
        """Busy time per frame when nothing overlaps (accelerator + CPU, no weight reload)."""
        return self.accelerator_s + self.cpu_s


def _has_accelerator(board: BoardProfile) -> bool:
    return board.accelerator.lower() != CPU_ACCELERATOR and board.cnn_clock_hz > 0


def layer_macs(layer: HardwareLayer) -> int:
    """Multiply-accumulates of one layer (0 for passthrough / element-wise layers)."""
    if layer.weights == 0:
        return 0
    if layer.op == "linear":
        return layer.weights
    out_pixels = math.prod(layer.out_shape[2:]) if len(layer.out_shape) > 2 else 1
    per_output = layer.weights // max(1, layer.out_channels)
    return out_pixels * layer.out_channels * per_output


def layer_time_s(layer: HardwareLayer, board: BoardProfile) -> float:
    """Seconds ``layer`` takes on ``board`` (CNN clock, or software on a CPU-only board)."""
    if _has_accelerator(board):
        return layer.cycles / board.cnn_clock_hz
    return layer_macs(layer) * CPU_CYCLES_PER_MAC / board.cpu_clock_hz


def partition_cpu_ops(model: HardwareModel, first: int, last: int) -> tuple[CpuOp, ...]:
    """The CPU work run by the partition holding layers ``first..last``.

    CPU work after layer ``i`` runs on the partition that holds layer ``i``; work before the
    first layer runs on the first partition.
    """
    return tuple(op for op in model.cpu_ops if first <= op.after_layer <= last or (first == 0 and op.after_layer < 0))


def partition_times(model: HardwareModel, first: int, last: int, board: BoardProfile) -> PartitionTimes:
    """Busy times per frame of layers ``first..last`` (inclusive) of ``model`` on ``board``."""
    layers = model.layers[first : last + 1]
    cpu_cycles = sum(op.cycles for op in partition_cpu_ops(model, first, last))
    if _has_accelerator(board):
        accelerator = (NETWORK_START_CYCLES + sum(layer.cycles for layer in layers)) / board.cnn_clock_hz
    else:
        accelerator = 0.0
        cpu_cycles += int(sum(layer_macs(layer) for layer in layers) * CPU_CYCLES_PER_MAC)
    entering = sum(t.nbytes for t in model.entering(first))
    leaving = sum(t.nbytes for t in model.leaving(last))
    weights = sum(layer.weight_bytes + layer.bias_bytes for layer in layers)
    return PartitionTimes(
        accelerator_s=accelerator,
        input_load_s=entering / board.cpu_copy_bytes_per_s,
        output_unload_s=leaving / board.cpu_copy_bytes_per_s,
        cpu_ops_s=cpu_cycles / board.cpu_clock_hz,
        weight_load_s=weights / board.weight_load_bytes_per_s,
    )
