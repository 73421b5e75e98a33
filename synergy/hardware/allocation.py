"""Where a partition's kernels, biases and activations live on the chip (HARDWARE.md §1).

The partition checker (:mod:`synergy.hardware.checker`) asks whether they fit; model
synthesis (:mod:`synergy.models.synth`) writes the same processor choices into the YAML, so
the two never disagree.

**Kernels.** A layer with ``C_in`` input channels runs in ``m = ceil(C_in / 64)`` passes over
``P = ceil(C_in / m)`` processors (rounded up to a multiple of 4 above 64 channels). Each of
them holds ``k`` kernels of ``b`` taps at ``w`` bits in ``ceil(k * b * w / 72)`` words, at the
same offset on every processor of the layer, as the izer stores them (``k = m * C_out``; ``m``
for a depthwise layer; ``m * H * W * C_out`` 1-tap kernels for a Linear after flatten).
:func:`place_weights` packs the layers like a careful network author would: widest blocks
first (then the tallest), each on the block of ``P`` consecutive processors starting at a
multiple of 4 that leaves the most headroom, on top of what the block already holds (a
skyline packing; the izer itself searches first-fit in the processors the YAML names).

**Bias.** One byte per output channel, all of a layer's bias in one quadrant's bias memory,
allocated first-fit-decreasing into the least used quadrant (what the izer does); a depthwise
layer's bias sits with its processors, spread over the quadrants they span.

**Data.** A tensor takes ``H * W * ceil(C / 64) * 4`` bytes in each data-memory instance it
uses (HWC, four channels per 32-bit word; four times that for 32-bit output).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from synergy.hardware.boards import (
    PROCESSORS,
    PROCESSORS_PER_DATA_INSTANCE,
    PROCESSORS_PER_QUADRANT,
    WEIGHT_WORD_BITS,
    BoardProfile,
)
from synergy.hardware.model import HardwareLayer

__all__ = [
    "LayerPlacement",
    "bias_overflow",
    "data_format",
    "data_need",
    "instance_bytes",
    "kernel_words",
    "layer_processors",
    "place_weights",
    "weight_overflow",
]

#: Each data-memory word holds 4 channels of one pixel (HWC).
DATA_WORD_BYTES = 4
#: A wide (32-bit) value takes four bytes instead of one.
WIDE_VALUE_FACTOR = 4
WIDE_OUTPUT_WIDTH = 32
#: Blocks of processors start at a data-memory instance boundary (4 processors).
PLACEMENT_ALIGNMENT = PROCESSORS_PER_DATA_INSTANCE
#: Bias values are one byte each.
BIAS_BYTES_PER_CHANNEL = 1


@dataclass(frozen=True)
class LayerPlacement:
    """Where a layer's kernels live: processors ``first .. first + count - 1`` at ``offset``."""

    first_processor: int
    processors: int
    offset: int
    words: int

    @property
    def mask(self) -> int:
        return ((1 << self.processors) - 1) << self.first_processor


def layer_processors(channels: int, board_processors: int = PROCESSORS) -> tuple[int, int]:
    """(passes, processors used) for ``channels`` input channels."""
    passes = max(1, math.ceil(channels / board_processors))
    used = math.ceil(channels / passes)
    if channels > board_processors:
        used = math.ceil(used / PROCESSORS_PER_DATA_INSTANCE) * PROCESSORS_PER_DATA_INSTANCE
    return passes, min(used, board_processors)


def kernel_words(layer: HardwareLayer, passes: int) -> int:
    """Weight words each processor of the layer needs: ceil(k * b * w / 72)."""
    if layer.op == "linear":
        taps = 1
        pixels = math.prod(layer.in_shape[2:]) if layer.flatten else 1
        kernels = passes * pixels * layer.out_channels
    else:
        taps = math.prod(layer.kernel) if layer.kernel else 1
        kernels = passes if layer.depthwise else passes * layer.out_channels
    return math.ceil(kernels * taps * layer.weight_bits / WEIGHT_WORD_BITS)


@functools.cache
def _windows(count: int, used: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate block starts (multiples of 4) and the processor indices of each block."""
    starts = np.arange(0, count - used + 1, PLACEMENT_ALIGNMENT)
    return starts, starts[:, None] + np.arange(used)[None, :]


@functools.cache
def _window_capacity(capacity: tuple[int, ...], used: int) -> np.ndarray:
    """Words of the tightest processor of each candidate block."""
    _, blocks = _windows(len(capacity), used)
    minima: np.ndarray = np.asarray(capacity, dtype=np.int64)[blocks].min(axis=1)
    return minima


def place_weights(
    layers: Sequence[HardwareLayer], board: BoardProfile
) -> tuple[tuple[LayerPlacement | None, ...], tuple[int, ...]]:
    """Kernel placement of ``layers`` (in layer order; None without weights) and words per processor."""
    count = board.processors
    tops = np.zeros(count, dtype=np.int64)
    needs: list[tuple[int, int, int]] = []
    for position, layer in enumerate(layers):
        if layer.weights:
            passes, used = layer_processors(layer.in_channels, count)
            needs.append((used, kernel_words(layer, passes), position))
    placements: list[LayerPlacement | None] = [None] * len(layers)
    # Widest first, then tallest: wide layers stack without holes, narrow ones fill beside.
    for used, words, position in sorted(needs, key=lambda n: (-n[0], -n[1], n[2])):
        starts, blocks = _windows(count, used)
        offsets = tops[blocks].max(axis=1)
        # Headroom left on the tightest processor of each candidate block (negative: overflow).
        headroom = _window_capacity(board.weight_words_per_processor, used) - (offsets + words)
        best = int(headroom.argmax())
        start, offset = int(starts[best]), int(offsets[best])
        tops[start : start + used] = offset + words
        placements[position] = LayerPlacement(start, used, offset, words)
    return tuple(placements), tuple(int(t) for t in tops)


def weight_overflow(layers: Sequence[HardwareLayer], board: BoardProfile) -> str | None:
    """The weight-memory reason for the processor most over capacity, or None if all fit."""
    _, tops = place_weights(layers, board)
    excess = [need - have for need, have in zip(tops, board.weight_words_per_processor, strict=True)]
    over = sum(1 for e in excess if e > 0)
    if over == 0:
        return None
    processor = excess.index(max(excess))
    others = f" ({over} processors over)" if over > 1 else ""
    return (
        f"weight memory: processor {processor} needs {tops[processor]} words, "
        f"has {board.weight_words_per_processor[processor]}{others}"
    )


def bias_overflow(layers: Sequence[HardwareLayer], board: BoardProfile) -> str | None:
    """The bias-memory reason for the first layer whose bias finds no quadrant, or None."""
    quadrants = board.processors // PROCESSORS_PER_QUADRANT
    used = [0] * quadrants
    capacity = board.bias_bytes_per_quadrant
    regular: list[HardwareLayer] = []
    for layer in layers:
        if not layer.bias_bytes or layer.out_channels > board.max_bias_channels:
            continue
        if not layer.depthwise:
            regular.append(layer)
            continue
        # Depthwise: each processor's channels keep their bias in that processor's quadrant.
        passes, processors = layer_processors(layer.in_channels, board.processors)
        for processor in range(processors):
            used[processor // PROCESSORS_PER_QUADRANT] += passes * BIAS_BYTES_PER_CHANNEL
    for layer in sorted(regular, key=lambda x: -x.bias_bytes):
        quadrant = used.index(min(used))
        if used[quadrant] + layer.bias_bytes > capacity:
            return (
                f"bias memory: layer {layer.index} needs {layer.bias_bytes} B in one quadrant, "
                f"the most free is {capacity - used[quadrant]} B of {capacity} B"
            )
        used[quadrant] += layer.bias_bytes
    worst = max(range(quadrants), key=lambda q: used[q])
    if used[worst] > capacity:
        return f"bias memory: quadrant {worst} needs {used[worst]} B, has {capacity} B"
    return None


def instance_bytes(shape: Sequence[int], wide: bool = False) -> int:
    """Bytes a tensor takes in each data-memory instance it uses (HWC, 4 channels a word)."""
    channels = shape[1] if len(shape) > 1 else 1
    pixels = math.prod(shape[2:]) if len(shape) > 2 else 1
    passes = max(1, math.ceil(channels / PROCESSORS))
    return pixels * passes * DATA_WORD_BYTES * (WIDE_VALUE_FACTOR if wide else 1)


def _row_bytes(shape: Sequence[int], wide: bool = False) -> int:
    rows = shape[2] if len(shape) > 2 else 1
    return instance_bytes(shape, wide) // max(1, rows)


def data_need(layer: HardwareLayer) -> int:
    """Bytes per data-memory instance for the layer's input and output.

    A layer may write its output over input it has already read (the vendor's UNet does:
    ``out_offset`` 0x0550 just under ``in_offset`` 0x0700), so it needs the smaller of
    ``in + out`` and ``max(in, out) + kernel rows`` of the larger tensor.
    """
    wide = layer.output_width == WIDE_OUTPUT_WIDTH
    out_bytes = instance_bytes(layer.out_shape, wide)
    in_bytes = instance_bytes(layer.in_shape) * max(1, layer.eltwise_operands)
    kernel_rows = layer.kernel[0] if layer.kernel else 1
    margin = kernel_rows * max(_row_bytes(layer.in_shape), _row_bytes(layer.out_shape, wide))
    return min(in_bytes + out_bytes, max(in_bytes, out_bytes) + margin)


def data_format(layer: HardwareLayer, board: BoardProfile) -> str | None:
    """ "HWC" or "CHW" for a partition's first layer input, None if neither fits unstreamed."""
    pixels = math.prod(layer.in_shape[2:]) if len(layer.in_shape) > 2 else 1
    if pixels <= board.max_pixels_hwc:
        return "HWC"
    if pixels <= board.max_pixels_chw:
        return "CHW"
    return None
