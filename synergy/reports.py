"""What flows back from the devices: frame outcomes, results, telemetry, coordinator counters.

Plain dataclasses; converted to and from protobuf only in :mod:`synergy.wire.reports`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from synergy.hardware.model import TensorSpec

__all__ = [
    "CoordinatorStats",
    "DeviceTelemetry",
    "FrameOutcome",
    "Result",
    "SourceCount",
    "StageTiming",
    "WireTensor",
]


class FrameOutcome(enum.Enum):
    """What a receiving stage says about one frame."""

    #: Processed and handed on: the sender may forget it.
    ACCEPTED = "accepted"
    #: Will never be processed (the reason says why); the receiver reports the drop.
    REJECTED = "rejected"
    #: Given back unprocessed and unreported (its epoch retired at the receiver with no path
    #: for it): the sender replays it on its own new path, or reports it dropped.
    RETURNED = "returned"


@dataclass(frozen=True)
class WireTensor:
    """A tensor as it travels: its spec and its little-endian C-order bytes."""

    spec: TensorSpec
    data: bytes

    def array(self) -> np.ndarray:
        # Local import: synergy.wire.tensors owns the bytes <-> array rules.
        from synergy.wire.tensors import decode_array

        return decode_array(self.spec, self.data)


@dataclass(frozen=True)
class Result:
    """One frame's outcome at its target: delivered with the final tensors, or dropped."""

    app_id: str
    epoch: int
    seq: int
    capture_time_unix: float
    done_time_unix: float
    tensors: tuple[WireTensor, ...] = ()
    #: Where it was delivered (or dropped).
    device_id: str = ""
    output_type: str = ""
    dropped: bool = False
    drop_reason: str = ""
    #: e.g. "class 7 (score 1234)".
    summary: str = ""

    @property
    def latency_s(self) -> float:
        return max(0.0, self.done_time_unix - self.capture_time_unix)

    @property
    def nbytes(self) -> int:
        return sum(len(t.data) for t in self.tensors)


@dataclass(frozen=True)
class StageTiming:
    """Measured mean time of one partition on a device, beside the cost model's prediction."""

    app_id: str
    epoch: int
    predicted_s: float
    measured_s: float
    samples: int


@dataclass(frozen=True)
class SourceCount:
    """What a source admitted into one app's pipeline in one epoch, and skipped at the sensor."""

    app_id: str
    epoch: int
    admitted: int
    skipped: int


@dataclass(frozen=True)
class DeviceTelemetry:
    """Counters an agent reports with every heartbeat."""

    frames_in: int = 0
    frames_out: int = 0
    bytes_to_peers: int = 0
    bytes_from_peers: int = 0
    bytes_to_coordinator: int = 0
    frames_dropped: int = 0
    accelerator_busy_s: float = 0.0
    stage_timings: tuple[StageTiming, ...] = ()
    sources: tuple[SourceCount, ...] = ()
    frames_replayed: int = 0


@dataclass
class CoordinatorStats:
    """Counters of the coordinator itself (proves it carries no activations)."""

    epoch: int = 0
    activation_bytes_relayed: int = 0
    result_bytes_received: int = 0
    input_bytes_forwarded: int = 0
    results_received: int = 0
    replans: int = 0
    deploy_failures: int = 0
    partitions_sent: int = 0
    partitions_reused: int = 0
    partition_bytes_sent: int = 0
    recalibrations: int = 0
    quarantines: int = 0
    drift_repairs: int = 0
    deploys_cancelled: int = 0
    #: device -> measured / predicted factor the planner uses.
    calibration: Mapping[str, float] = field(default_factory=dict)
