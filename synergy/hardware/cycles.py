"""CNN clock cycles of one hardware layer: the izer's latency estimator (HARDWARE.md §2).

The vendor's synthesis tool ("izer") estimates how many CNN clock cycles a layer takes by
counting the elementary states of the accelerator's input state machine: every read, every
write into the convolution cache (TRAM) and every output write costs one clock. Its estimate
matches measured MAX78000 silicon within a few percent on small networks; we use the same
formula for the MAX78002 (at its own clock) until calibrated.

:func:`geometry_cycles` is the formula itself over explicit parameters
(:class:`LayerGeometry`); :func:`layer_geometry` derives those parameters from a
:class:`~synergy.hardware.model.HardwareLayer` (Conv1d as an L x 1 image, ConvTranspose2d as a
3x3 convolution over the x2 upsampled grid, Linear after flatten as a 1x1 convolution over the
flattened grid); :func:`layer_cycles` composes the two. A whole network costs
:data:`NETWORK_START_CYCLES` plus the sum of its layers (:func:`network_cycles`).

Known simplification: the MAX78000's "pre-read" term for element-wise layers that pool after
the element-wise operation depends on where the izer placed the layer's kernels; it is small
and ignored here (as the izer's own unit tests do).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

from synergy.hardware.boards import PROCESSORS
from synergy.hardware.model import HardwareLayer

__all__ = [
    "NETWORK_START_CYCLES",
    "LayerGeometry",
    "geometry_cycles",
    "layer_cycles",
    "layer_geometry",
    "network_cycles",
    "passes",
]

#: One clock per elementary state of the input state machine (the izer's constants).
READ_STATE_CYCLES = 1
CACHE_WRITE_CYCLES = 1
OUTPUT_WRITE_CYCLES = 1
#: A flattening (MLP) layer costs one extra clock.
FLATTEN_EXTRA_CYCLES = 1
#: A network costs one clock to start on top of its layers.
NETWORK_START_CYCLES = 1
#: A streaming (FIFO) layer costs about 1.5x a regular one; the izer computes (15 t + 9) // 10.
STREAMING_NUMERATOR = 15
STREAMING_DENOMINATOR = 10
STREAMING_ROUNDING = 9
#: ConvTranspose2d runs as a 3x3 convolution over the x2 zero-stuffed grid whose padding is
#: (kernel - 1 - pad) = 2 - pad for the 3x3 kernel the chip supports.
CONVTRANSPOSE_UPSAMPLE = 2
CONVTRANSPOSE_PAD_COMPLEMENT = 2
#: Output channels a depthwise layer writes per output position and pass (see layer_geometry).
DEPTHWISE_WRITTEN_CHANNELS = 1


@dataclass(frozen=True)
class LayerGeometry:
    """The parameters of the izer's latency formula for one layer.

    Rows and columns are after pooling (and after the x2 upsampling of a transposed
    convolution); ``out_cols`` are the columns the layer produces per output row.
    """

    in_channels: int
    pooled_rows: int
    pooled_cols: int
    out_channels: int
    out_cols: int
    kernel_rows: int = 1
    kernel_cols: int = 1
    pad_rows: int = 0
    pad_cols: int = 0
    pool_rows: int = 1
    pool_cols: int = 1
    #: Element-wise operands (1 when there is no element-wise operation).
    operands: int = 1
    pool_first: bool = True
    passthrough: bool = False
    flatten: bool = False
    streaming: bool = False
    #: Output time slots of a passthrough layer (about ceil(C_out / output processors)).
    out_slots: int = 1
    #: Input passes; by default ceil(in_channels / processors).
    multipass: int = 0

    @property
    def passes(self) -> int:
        return self.multipass if self.multipass > 0 else passes(self.in_channels)


def passes(channels: int, processors: int = PROCESSORS) -> int:
    """Input passes the chip needs for ``channels`` channels over ``processors`` processors."""
    return max(1, math.ceil(channels / processors))


def geometry_cycles(g: LayerGeometry) -> int:
    """CNN clock cycles of one layer (HARDWARE.md §2), excluding the network's start cycle."""
    m = g.passes
    elements = g.operands
    window = g.pool_rows * g.pool_cols
    if g.pool_first:
        # Pool each operand, then combine: every input position is visited per operand.
        pad_cost = m * elements * (READ_STATE_CYCLES + CACHE_WRITE_CYCLES)
        data_cost = m * elements * (window * READ_STATE_CYCLES + CACHE_WRITE_CYCLES)
        row_multiplier = 1
    else:
        # Combine the operands, then pool: the whole row is revisited once per pass.
        pad_cost = m * (READ_STATE_CYCLES + CACHE_WRITE_CYCLES)
        data_cost = m * (elements * READ_STATE_CYCLES * window + CACHE_WRITE_CYCLES)
        row_multiplier = m

    if g.passthrough:
        total = g.pooled_rows * g.pooled_cols * (data_cost + m * g.out_slots)
    else:
        pr, pc = g.pad_rows, g.pad_cols
        column_pad = 2 * pc * (pad_cost + OUTPUT_WRITE_CYCLES)
        pad_row = column_pad + row_multiplier * g.pooled_cols * (pad_cost + OUTPUT_WRITE_CYCLES)
        row_before_window = column_pad + row_multiplier * g.pooled_cols * (data_cost + OUTPUT_WRITE_CYCLES)
        left_pad = pc * (pad_cost + OUTPUT_WRITE_CYCLES)
        right_pad = pad_cost * pc
        filling_cols = g.kernel_cols - 1 - pc
        producing_cols = g.out_cols - pc
        data_row = (
            left_pad
            + row_multiplier * filling_cols * (data_cost + OUTPUT_WRITE_CYCLES)
            + row_multiplier * producing_cols * data_cost
            + right_pad
        )
        bottom_pad_row = (
            left_pad
            + row_multiplier * filling_cols * (pad_cost + OUTPUT_WRITE_CYCLES)
            + row_multiplier * producing_cols * pad_cost
            + right_pad
        )
        # One output value per clock per pass; a single-channel single-pass layer pays once more.
        single_output = g.out_channels if (g.out_channels == 1 and m == 1) else 0
        output_row = m * g.out_cols * g.out_channels + single_output
        rows_before_window = g.kernel_rows - 1 - pr
        total = (
            (FLATTEN_EXTRA_CYCLES if g.flatten else 0)
            + pr * pad_row
            + rows_before_window * row_before_window
            + (data_row + output_row) * (g.pooled_rows - rows_before_window)
            + pr * (bottom_pad_row + output_row)
        )
    if g.streaming:
        total = (STREAMING_NUMERATOR * total + STREAMING_ROUNDING) // STREAMING_DENOMINATOR
    return total


def _pooled(size: int, window: int, stride: int) -> int:
    return (size - window) // stride + 1


def layer_geometry(layer: HardwareLayer) -> LayerGeometry:
    """The latency parameters of ``layer`` (shapes include the batch dimension)."""
    in_spatial = tuple(layer.in_shape[2:]) or (1,)
    out_spatial = tuple(layer.out_shape[2:]) or (1,)
    pool_size = tuple(layer.pool_size) if layer.pool else (1,) * len(in_spatial)
    pool_stride = tuple(layer.pool_stride) if layer.pool else (1,) * len(in_spatial)
    pooled = tuple(_pooled(s, w, st) for s, w, st in zip(in_spatial, pool_size, pool_stride, strict=False))
    # 1-D tensors are an L x 1 image: rows carry the samples, one column.
    rows = pooled[0]
    cols = pooled[1] if len(pooled) > 1 else 1
    out_channels = layer.out_channels or (layer.out_shape[1] if len(layer.out_shape) > 1 else 1)
    # A depthwise layer writes all channels of a pass in parallel (each processor convolves
    # its own channel, no adder tree across processors): the izer counts one output channel
    # per pass (its kernel count per processor divided by the passes).
    written_channels = DEPTHWISE_WRITTEN_CHANNELS if layer.groups > 1 else out_channels
    base = LayerGeometry(
        in_channels=layer.in_channels or layer.in_shape[1],
        pooled_rows=rows,
        pooled_cols=cols,
        out_channels=written_channels,
        out_cols=cols,
        pool_rows=pool_size[0],
        pool_cols=pool_size[1] if len(pool_size) > 1 else 1,
        operands=max(1, layer.eltwise_operands) if layer.eltwise else 1,
        pool_first=layer.pool_first,
        streaming=layer.streaming,
    )
    kernel_rows = layer.kernel[0] if layer.kernel else 1
    kernel_cols = layer.kernel[1] if len(layer.kernel) > 1 else 1
    out_cols = out_spatial[1] if len(out_spatial) > 1 else 1
    if layer.op in ("passthrough", "eltwise"):
        return replace(base, passthrough=True, out_slots=passes(out_channels))
    if layer.op == "linear":
        # A 1x1 convolution from C to C_out channels over the (flattened) H x W grid.
        return replace(base, flatten=layer.flatten)
    if layer.op == "convtranspose2d":
        pad = CONVTRANSPOSE_PAD_COMPLEMENT - layer.pad
        return replace(
            base,
            pooled_rows=rows * CONVTRANSPOSE_UPSAMPLE,
            pooled_cols=cols * CONVTRANSPOSE_UPSAMPLE,
            out_cols=out_cols,
            kernel_rows=kernel_rows,
            kernel_cols=kernel_cols,
            pad_rows=pad,
            pad_cols=pad,
        )
    if layer.op == "conv1d":
        return replace(base, pooled_cols=1, out_cols=1, kernel_rows=kernel_rows, pad_rows=layer.pad)
    return replace(
        base,
        out_cols=out_cols,
        kernel_rows=kernel_rows,
        kernel_cols=kernel_cols,
        pad_rows=layer.pad,
        pad_cols=layer.pad,
    )


def layer_cycles(layer: HardwareLayer) -> int:
    """CNN clock cycles of one hardware layer."""
    return geometry_cycles(layer_geometry(layer))


def network_cycles(layers: Iterable[HardwareLayer]) -> int:
    """Cycles of a network (or partition) run as one: the start cycle plus its layers."""
    return NETWORK_START_CYCLES + sum(layer.cycles for layer in layers)
