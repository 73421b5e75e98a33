"""The deployment vocabulary shared by the coordinator and the agents.

What the coordinator sends an agent for one epoch (:class:`SegmentAssignment`, with the
:class:`PartitionPayload` it runs and the :class:`PeerRef` it streams to), and what an agent
reports it really holds (:class:`AgentState`). Converted to and from protobuf only in
:mod:`synergy.wire.deployment`.
"""

from __future__ import annotations

from dataclasses import dataclass

from synergy.hardware.model import TensorSpec
from synergy.types import LinkProfile

__all__ = ["AgentState", "HeldSegment", "PartitionPayload", "PeerRef", "SegmentAssignment"]


@dataclass(frozen=True)
class PartitionPayload:
    """A contiguous range of hardware layers as an ONNX sub-model.

    ``onnx`` is empty when the agent already holds the partition named by ``digest`` (only
    what changed travels).
    """

    first_layer: int
    last_layer: int
    onnx: bytes
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    #: sha256 of the ONNX bytes.
    digest: str = ""


@dataclass(frozen=True)
class PeerRef:
    """The agent of the next segment, and its link (a hop runs at the slower of both links)."""

    device_id: str
    address: str
    link: LinkProfile | None = None


@dataclass(frozen=True)
class SegmentAssignment:
    """One device's segment of one app's pipeline: it may sense, run a partition and deliver."""

    app_id: str
    #: Position in the pipeline, 0 = source.
    segment: int
    #: What this segment receives (or generates, at the source).
    inputs: tuple[TensorSpec, ...]
    #: Model name, for logs.
    model: str = ""
    #: Set when this segment senses.
    sensor_type: str = ""
    #: Source rate (sensor rate capped by the app's max rate); 0 unless it senses.
    rate_hz: float = 0.0
    partition: PartitionPayload | None = None
    #: Set when this segment delivers.
    output_type: str = ""
    #: The next segment's agent; None at the target.
    next: PeerRef | None = None
    #: The device of the previous segment: the one peer whose frame stream into this segment
    #: is accepted. Empty at segment 0 (it senses, or is fed by the coordinator's Inject).
    upstream: str = ""
    #: At a source: queue every frame instead of skipping those the pipeline has no room for.
    every_frame: bool = False

    @property
    def digest(self) -> str:
        return self.partition.digest if self.partition is not None else ""


@dataclass(frozen=True, order=True)
class HeldSegment:
    """One segment an agent really holds."""

    app_id: str
    epoch: int
    segment: int
    digest: str = ""


@dataclass(frozen=True)
class AgentState:
    """What an agent really holds: its active epoch, the epochs loaded, their segments."""

    active_epoch: int = 0
    loaded_epochs: tuple[int, ...] = ()
    segments: tuple[HeldSegment, ...] = ()

    def holds(self, epoch: int) -> frozenset[tuple[str, int, str]]:
        """(app, segment, digest) of every segment of ``epoch``."""
        return frozenset((s.app_id, s.segment, s.digest) for s in self.segments if s.epoch == epoch)
