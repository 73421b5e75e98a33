"""Hand-made hardware models, devices and apps for planner tests and examples (no ONNX).

A planner only needs what :class:`~synergy.hardware.model.HardwareModel` records: per layer
its cycles, weight / bias bytes and output size, and what crosses each cut. This module
builds such models from a short list of numbers so tests can compute expected throughputs
by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from synergy.hardware.boards import MAX78000, BoardProfile
from synergy.hardware.model import CpuOp, CutPoint, HardwareLayer, HardwareModel, TensorSpec
from synergy.planning.api import PlanningApp
from synergy.types import LINK_PRESETS, AppSpec, DeviceSpec, LinkProfile, OutputSpec, SensorSpec

__all__ = ["LayerSpec", "app", "chain_model", "device"]


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a synthetic chain: its cycles, weights and output size (int8 bytes)."""

    cycles: int
    weight_bytes: int
    out_bytes: int
    bias_bytes: int = 0
    depthwise: bool = False


def chain_model(
    name: str,
    layers: Sequence[LayerSpec],
    *,
    input_bytes: int,
    cpu_cycles: int = 0,
) -> HardwareModel:
    """A straight chain: layer i reads layer i-1's output (the model input for layer 0).

    Tensors are 1-D ``[1, n]`` int8 so byte counts are exact; ``cpu_cycles`` of CPU work
    (e.g. a softmax) follow the last layer.
    """
    hw: list[HardwareLayer] = []
    in_name, in_bytes = "input", input_bytes
    for i, spec in enumerate(layers):
        out = f"l{i:02d}_out"
        hw.append(
            HardwareLayer(
                index=i,
                op="conv2d",
                nodes=(f"l{i:02d}_conv",),
                inputs=(in_name,),
                output=out,
                in_shape=(1, in_bytes),
                out_shape=(1, spec.out_bytes),
                kernel=(3, 3),
                pad=1,
                activation="relu",
                groups=2 if spec.depthwise else 1,
                in_channels=16,
                out_channels=16,
                weights=spec.weight_bytes,
                weight_bytes=spec.weight_bytes,
                bias_bytes=spec.bias_bytes,
                out_bytes=spec.out_bytes,
                cycles=spec.cycles,
            )
        )
        in_name, in_bytes = out, spec.out_bytes
    cuts = tuple(
        CutPoint(i, (TensorSpec(hw[i].output, (1, layers[i].out_bytes)),)) for i in range(len(layers) - 1)
    )
    ops = (CpuOp("softmax", "Softmax", len(layers) - 1, cpu_cycles),) if cpu_cycles else ()
    return HardwareModel(
        name=name,
        inputs=(TensorSpec("input", (1, input_bytes)),),
        outputs=(TensorSpec(hw[-1].output, (1, layers[-1].out_bytes)),),
        layers=tuple(hw),
        cpu_ops=ops,
        cuts=cuts,
    )


def device(
    name: str,
    board: BoardProfile = MAX78000,
    *,
    sensors: Sequence[tuple[str, float]] = (),
    outputs: Sequence[str] = (),
    link: str | LinkProfile = "usb_hs",
) -> DeviceSpec:
    """A device for tests: ``sensors`` as (type, rate) pairs, ``link`` a preset name or profile."""
    profile = LINK_PRESETS[link] if isinstance(link, str) else link
    return DeviceSpec(
        device_id=name,
        board=board,
        sensors=tuple(SensorSpec(t, r) for t, r in sensors),
        outputs=tuple(OutputSpec(o) for o in outputs),
        link=profile,
    )


def app(
    name: str,
    model: HardwareModel,
    source: str,
    target: str,
    *,
    source_device: str = "",
    target_device: str = "",
    max_rate_hz: float = 0.0,
) -> PlanningApp:
    """A planning app for tests (id and name both ``name``)."""
    spec = AppSpec(name, name, model.name, source, target, source_device, target_device, max_rate_hz)
    return PlanningApp(spec, model)
