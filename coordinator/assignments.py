"""From an execution plan to each device's pipeline segments (what Deploy carries).

An app's pipeline is: sense on the source device, run each stage's layers, deliver on the
target device. Consecutive steps on one device form one *segment*; frames flow from segment
k to segment k + 1 over a peer-to-peer stream. Segment k's inputs are exactly the tensors
segment k - 1 sends: the model's inputs until some layers ran, then the tensors crossing the
cut after the last layer run so far (skip connections included).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

from coordinator.models import StoredPartition
from synergy.deployment import PartitionPayload, PeerRef, SegmentAssignment
from synergy.errors import FailedPrecondition
from synergy.hardware.model import HardwareModel
from synergy.types import AppSpec, DeviceSpec, ExecutionPlan

__all__ = ["Segment", "build_segments", "segments_to_assignments"]


@dataclass
class Segment:
    """One device's part of one app's pipeline."""

    index: int
    device_id: str
    senses: bool = False
    layers: tuple[int, int] | None = None
    delivers: bool = False
    #: Number of layers run before this segment receives a frame (-1: none yet).
    last_layer_before: int = -1
    notes: list[str] = field(default_factory=list)


def build_segments(plan: ExecutionPlan) -> list[Segment]:
    steps: list[tuple[str, str, tuple[int, int] | None]] = [("source", plan.source_device, None)]
    steps += [("stage", s.device_id, (s.first_layer, s.last_layer)) for s in plan.stages]
    steps.append(("target", plan.target_device, None))
    segments: list[Segment] = []
    layers_done = -1
    for kind, device, layers in steps:
        if not segments or segments[-1].device_id != device:
            segments.append(Segment(len(segments), device, last_layer_before=layers_done))
        segment = segments[-1]
        if kind == "source":
            segment.senses = True
        elif kind == "target":
            segment.delivers = True
        elif layers is not None:
            if layers[0] != layers_done + 1:
                raise FailedPrecondition(f"app {plan.app_id}: stage {layers} does not follow layer {layers_done}")
            first = segment.layers[0] if segment.layers else layers[0]
            segment.layers = (first, layers[1])
            layers_done = layers[1]
    return segments


def segments_to_assignments(
    app: AppSpec,
    plan: ExecutionPlan,
    model: HardwareModel,
    devices: Mapping[str, DeviceSpec],
    partition_for: Callable[[int, int], StoredPartition],
    source_rate_hz: float,
    held: Mapping[str, Collection[str]],
) -> dict[str, list[SegmentAssignment]]:
    """Every device's Deploy assignments for this app, keyed by device id.

    ``held`` names, per device, the partition digests it already holds: those travel without
    their ONNX bytes.
    """
    if plan.stages and plan.stages[-1].last_layer != len(model.layers) - 1:
        raise FailedPrecondition(f"app {app.app_id}: the plan does not run every layer of {model.name}")
    segments = build_segments(plan)
    out: dict[str, list[SegmentAssignment]] = {}
    for segment in segments:
        all_done = segment.last_layer_before == len(model.layers) - 1
        inputs = model.outputs if all_done else model.entering(segment.last_layer_before + 1)
        partition = None
        if segment.layers is not None:
            stored = partition_for(*segment.layers)
            part = stored.partition
            already_there = stored.digest in held.get(segment.device_id, ())
            partition = PartitionPayload(
                first_layer=part.first,
                last_layer=part.last,
                onnx=b"" if already_there else part.onnx,
                inputs=tuple(part.inputs),
                outputs=tuple(part.outputs),
                digest=stored.digest,
            )
        peer = None
        if segment.index + 1 < len(segments):
            nxt = devices[segments[segment.index + 1].device_id]
            peer = PeerRef(nxt.device_id, nxt.address, nxt.link)
        assignment = SegmentAssignment(
            app_id=app.app_id,
            segment=segment.index,
            inputs=tuple(inputs),
            model=model.name,
            sensor_type=app.source_type if segment.senses else "",
            rate_hz=source_rate_hz if segment.senses else 0.0,
            partition=partition,
            output_type=app.target_type if segment.delivers else "",
            next=peer,
            upstream=segments[segment.index - 1].device_id if segment.index > 0 else "",
            every_frame=app.every_frame if segment.senses else False,
        )
        out.setdefault(segment.device_id, []).append(assignment)
    return out
