"""Does a partition (a contiguous range of hardware layers) fit a board? (HARDWARE.md §1)

:func:`check_partition` runs every check and returns a :class:`FitReport` whose reasons name
the constraint, the need and the capacity, e.g. ``weight memory: processor 12 needs 812
words, has 768``. The checks:

- operator support: depthwise convolution and dilation only where the board has them;
- layer count, channels per layer, rows/columns per tensor, input pixels of the first layer
  without streaming, streaming layers;
- weight memory: the total first; when it fits, exactly per processor
  (:func:`synergy.hardware.allocation.place_weights`);
- bias memory: the total first; when it fits, per quadrant; bias only for layers with at most
  ``max_bias_channels`` outputs;
- data memory: every layer's output fits one data-memory instance, and so do the input and
  output of the widest layer (:func:`synergy.hardware.allocation.data_need`). Skip tensors
  held across layers are not counted;
- flash: the partition's weights and bias are stored in the MCU's flash, less what the
  firmware takes (:mod:`synergy.hardware.mcu`). Several partitions on one board must fit
  there *together*; that joint check, and the SRAM that frames crossing a radio need,
  depend on the plan and live in the planner (:mod:`synergy.planning.memory`).

:func:`raise_if_not_fits` turns a failed report into :class:`~synergy.errors.DoesNotFit`;
:func:`greedy_partitions` finds the fewest contiguous partitions that each fit a board.
Boards whose accelerator is ``"cpu"`` run everything in software: every partition fits.

Reports are memoised per model (while it lives) and board: a planner may ask for every
partition of every model on every board, many times.
"""

from __future__ import annotations

import math
import weakref

from synergy.errors import DoesNotFit
from synergy.hardware.allocation import (
    WIDE_OUTPUT_WIDTH,
    bias_overflow,
    data_format,
    data_need,
    instance_bytes,
    weight_overflow,
)
from synergy.hardware.boards import BoardProfile
from synergy.hardware.mcu import mcu_memory
from synergy.hardware.model import FitReport, HardwareLayer, HardwareModel

__all__ = ["check_partition", "greedy_partitions", "raise_if_not_fits"]

CPU_ACCELERATOR = "cpu"
#: Layer indices shown in one reason before "and N more".
SHOWN_INDICES = 8


class _BoardView:
    """One model on one board: per-layer facts, prefix sums and the reports asked so far."""

    def __init__(self, model: HardwareModel, board: BoardProfile) -> None:
        # The layers, not the model: the model must stay collectable (the cache is keyed by it).
        self.layers = layers = model.layers
        self.board = board
        self.layer_reasons = [self._layer_reasons(layer) for layer in layers]
        self.data_need = [data_need(layer) for layer in layers]
        self.weight_prefix = _prefix_sums([layer.weight_bytes for layer in layers])
        self.bias_prefix = _prefix_sums([layer.bias_bytes for layer in layers])
        self.reports: dict[tuple[int, int], FitReport] = {}

    def _layer_reasons(self, layer: HardwareLayer) -> list[str]:
        board = self.board
        reasons: list[str] = []
        channels = max(layer.in_channels, layer.out_channels)
        if channels > board.max_channels:
            reasons.append(
                f"channels: layer {layer.index} needs {channels} channels, {board.name} allows {board.max_channels}"
            )
        dims = (*layer.in_shape[2:], *layer.out_shape[2:])
        if dims and max(dims) > board.max_tensor_dim:
            reasons.append(
                f"tensor size: layer {layer.index} needs {max(dims)} rows or columns, "
                f"{board.name} allows {board.max_tensor_dim}"
            )
        if layer.bias_bytes and layer.out_channels > board.max_bias_channels:
            reasons.append(
                f"bias: layer {layer.index} has bias for {layer.out_channels} output channels, "
                f"{board.name} allows bias for at most {board.max_bias_channels}"
            )
        out_bytes = instance_bytes(layer.out_shape, layer.output_width == WIDE_OUTPUT_WIDTH)
        if out_bytes > board.data_instance_bytes:
            reasons.append(
                f"data memory: layer {layer.index} output needs {out_bytes} B per instance, "
                f"has {board.data_instance_bytes} B"
            )
        return reasons

    def report(self, first: int, last: int) -> FitReport:
        key = (first, last)
        report = self.reports.get(key)
        if report is None:
            report = self._check(first, last)
            self.reports[key] = report
        return report

    def _check(self, first: int, last: int) -> FitReport:
        board = self.board
        layers = self.layers[first : last + 1]
        reasons: list[str] = []
        if len(layers) > board.max_layers:
            reasons.append(
                f"layer count: partition needs {len(layers)} hardware layers, "
                f"{board.name} runs at most {board.max_layers}"
            )
        depthwise = [layer.index for layer in layers if layer.depthwise]
        if depthwise and not board.supports_depthwise:
            reasons.append(f"depthwise convolution: layers {_indices(depthwise)} need it, {board.name} has none")
        dilated = [layer.index for layer in layers if layer.dilation > 1]
        if dilated and not board.supports_dilation:
            reasons.append(f"dilation: layers {_indices(dilated)} need it, {board.name} has none")
        streaming = sum(1 for layer in layers if layer.streaming)
        if streaming > board.max_streaming_layers:
            reasons.append(
                f"streaming: partition needs {streaming} streaming layers, {board.name} "
                f"allows {board.max_streaming_layers}"
            )
        reasons += [reason for i in range(first, last + 1) for reason in self.layer_reasons[i]]
        if data_format(layers[0], board) is None:
            pixels = math.prod(layers[0].in_shape[2:])
            reasons.append(
                f"input pixels: layer {first} reads {pixels} pixels per channel, {board.name} "
                f"holds {board.max_pixels_hwc} (HWC) or {board.max_pixels_chw} (CHW) without streaming"
            )
        weight_total = self.weight_prefix[last + 1] - self.weight_prefix[first]
        if weight_total > board.weight_bytes:
            reasons.append(f"weight memory: partition needs {weight_total} B, {board.name} has {board.weight_bytes} B")
        else:
            reasons += filter(None, [weight_overflow(layers, board)])
        bias_total = self.bias_prefix[last + 1] - self.bias_prefix[first]
        if bias_total > board.bias_bytes:
            reasons.append(f"bias memory: partition needs {bias_total} B, {board.name} has {board.bias_bytes} B")
        else:
            reasons += filter(None, [bias_overflow(layers, board)])
        mcu = mcu_memory(board)
        if mcu is not None and weight_total + bias_total > mcu.weight_flash_bytes:
            reasons.append(
                f"flash: partition stores {weight_total + bias_total} B of weights and bias, {board.name} "
                f"has {mcu.weight_flash_bytes} B ({mcu.describe_flash()})"
            )
        need, widest = max((self.data_need[i], i) for i in range(first, last + 1))
        if need > board.data_instance_bytes:
            reasons.append(
                f"data memory: layer {widest} needs {need} B per instance for input and output, "
                f"has {board.data_instance_bytes} B"
            )
        return FitReport(not reasons, tuple(reasons))


def _prefix_sums(values: list[int]) -> list[int]:
    sums = [0]
    for value in values:
        sums.append(sums[-1] + value)
    return sums


def _indices(indices: list[int]) -> str:
    shown = ", ".join(str(i) for i in indices[:SHOWN_INDICES])
    more = len(indices) - SHOWN_INDICES
    return shown + (f" and {more} more" if more > 0 else "")


#: Per model (by identity; dropped when the model is collected): per board, its view.
_views: dict[int, dict[BoardProfile, _BoardView]] = {}


def _view(model: HardwareModel, board: BoardProfile) -> _BoardView:
    per_board = _views.get(id(model))
    if per_board is None:
        per_board = {}
        _views[id(model)] = per_board
        weakref.finalize(model, _views.pop, id(model), None)
    view = per_board.get(board)
    if view is None:
        view = _BoardView(model, board)
        per_board[board] = view
    return view


def check_partition(model: HardwareModel, first: int, last: int, board: BoardProfile) -> FitReport:
    """Whether layers ``first..last`` (inclusive) of ``model`` fit ``board``, and why not."""
    if not 0 <= first <= last < len(model.layers):
        return FitReport(False, (f"partition: layers {first}..{last} outside 0..{len(model.layers) - 1}",))
    if board.accelerator.lower() == CPU_ACCELERATOR:
        return FitReport(True)
    return _view(model, board).report(first, last)


def raise_if_not_fits(report: FitReport, where: str) -> None:
    """Raise :class:`DoesNotFit` naming ``where`` and every reason when ``report`` fails."""
    if not report.fits:
        raise DoesNotFit(f"{where} does not fit: " + "; ".join(report.reasons))


def greedy_partitions(model: HardwareModel, board: BoardProfile) -> tuple[tuple[int, int], ...] | None:
    """Fewest contiguous partitions that each fit ``board``; None if a layer alone does not fit.

    Each partition grows while it still fits; since a sub-range of a fitting range fits too,
    growing greedily gives the fewest partitions for one kind of board.
    """
    ranges: list[tuple[int, int]] = []
    first = 0
    count = len(model.layers)
    while first < count:
        if not check_partition(model, first, first, board).fits:
            return None
        last = first
        while last + 1 < count and check_partition(model, first, last + 1, board).fits:
            last += 1
        ranges.append((first, last))
        first = last + 1
    return tuple(ranges)
