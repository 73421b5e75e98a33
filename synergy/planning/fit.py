"""The planner's one door to the partition checker: does layers ``first..last`` fit a board?

The real checker (:func:`synergy.hardware.checker.check_partition`, exact per-processor
weight packing, data-memory instances, streaming...) is owned by the hardware analysis. The
planner reaches it only through :func:`default_checker`, so that the orchestrator and the
agents' emulated boards refuse exactly the same partitions. :func:`estimate_fit` is the
first-estimate check of HARDWARE.md §1 (total bytes instead of per-processor words): the cost
model's vectorised fast path, and a checker tests can reason about by hand.

Also here: whether several partitions can stay resident on one accelerator *together*
(:func:`co_resident_violation`), which decides the weight-reload cost of the cost model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from synergy.hardware.boards import BoardProfile
from synergy.hardware.checker import check_partition
from synergy.hardware.model import FitReport, HardwareModel

__all__ = [
    "FitChecker",
    "Footprint",
    "co_resident_violation",
    "default_checker",
    "estimate_fit",
]

#: ``checker(model, first, last, board) -> FitReport`` (inclusive layer range).
FitChecker = Callable[[HardwareModel, int, int, BoardProfile], FitReport]


def default_checker() -> FitChecker:
    """The hardware analysis' partition checker: the one the agents' boards apply too."""
    return check_partition


def _layer_data_bytes(in_shape: Sequence[int], out_bytes: int, operands: int) -> int:
    return math.prod(in_shape) * max(1, operands) + out_bytes


def estimate_fit(model: HardwareModel, first: int, last: int, board: BoardProfile) -> FitReport:
    """HARDWARE.md §1 first estimates: layer count, total weight / bias bytes, operators, data."""
    layers = model.layers[first : last + 1]
    reasons: list[str] = []
    if len(layers) > board.max_layers:
        reasons.append(f"hardware layers: need {len(layers)}, {board.name} has {board.max_layers}")
    weight = sum(layer.weight_bytes for layer in layers)
    if weight > board.weight_bytes:
        reasons.append(f"weight memory: need {weight} B, {board.name} has {board.weight_bytes} B")
    bias = sum(layer.bias_bytes for layer in layers)
    if bias > board.bias_bytes:
        reasons.append(f"bias memory: need {bias} B, {board.name} has {board.bias_bytes} B")
    for layer in layers:
        if layer.depthwise and not board.supports_depthwise:
            reasons.append(f"operator: layer {layer.index} is depthwise, unsupported on {board.name}")
        if layer.dilation > 1 and not board.supports_dilation:
            reasons.append(f"operator: layer {layer.index} is dilated, unsupported on {board.name}")
        if max(layer.in_channels, layer.out_channels) > board.max_channels:
            reasons.append(
                f"channels: layer {layer.index} has {max(layer.in_channels, layer.out_channels)}, "
                f"{board.name} allows {board.max_channels}"
            )
        need = _layer_data_bytes(layer.in_shape, layer.out_bytes, layer.eltwise_operands)
        if need > board.data_bytes:
            reasons.append(f"data memory: layer {layer.index} needs {need} B, {board.name} has {board.data_bytes} B")
    return FitReport(not reasons, tuple(reasons))


@dataclass(frozen=True)
class Footprint:
    """What one resident partition occupies on an accelerator (for co-residence)."""

    weight_bytes: int
    bias_bytes: int
    layers: int


def co_resident_violation(footprints: Sequence[Footprint], board: BoardProfile) -> str:
    """The constraint that stops these partitions staying loaded together, or "" if none.

    Each partition fits alone (the checker said so); together they must share the weight
    memory, the bias memory and the layer-configuration registers. This is the first
    estimate (total bytes): per-processor packing can only make it worse, which the live
    calibration then shows as drift.
    """
    if len(footprints) < 2:
        return ""
    weight = sum(f.weight_bytes for f in footprints)
    if weight > board.weight_bytes:
        return f"weight memory: {weight} B of {board.weight_bytes} B"
    bias = sum(f.bias_bytes for f in footprints)
    if bias > board.bias_bytes:
        return f"bias memory: {bias} B of {board.bias_bytes} B"
    layers = sum(f.layers for f in footprints)
    if layers > board.max_layers:
        return f"hardware layers: {layers} of {board.max_layers}"
    return ""
