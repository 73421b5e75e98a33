"""The board interface, and the emulated backend on onnxruntime.

One narrow interface (DESIGN.md §7): load a partition, run it, unload it, report limits and
usage. The emulated board enforces the chip's real limits with the same checker the
coordinator uses (a partition that does not fit is refused with the constraint named), runs
the partition in onnxruntime, and — when chip timing is on — takes as long as the modelled
chip would: accelerator cycles at the CNN clock, CPU copies in and out, and a weight reload
whenever it must switch between partitions that do not fit its weight memory together.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from synergy.deployment import PartitionPayload
from synergy.errors import DoesNotFit, InvalidArgument, NotFound
from synergy.hardware.boards import BoardProfile
from synergy.hardware.checker import check_partition
from synergy.hardware.costs import partition_times
from synergy.wire.tensors import Array, narrow

if TYPE_CHECKING:
    import onnxruntime as ort

__all__ = ["Board", "EmulatedBoard", "LoadedPartition", "RunTiming"]


@dataclass(frozen=True)
class LoadedPartition:
    key: str
    spec: PartitionPayload
    weight_bytes: int
    #: Modelled per-frame times on this board (seconds).
    accelerator_s: float
    cpu_s: float
    weight_load_s: float

    @property
    def modelled_s(self) -> float:
        return self.accelerator_s + self.cpu_s


@dataclass(frozen=True)
class RunTiming:
    compute_s: float
    modelled_s: float
    reload_s: float
    elapsed_s: float


class Board(Protocol):
    profile: BoardProfile

    async def load(self, spec: PartitionPayload, label: str) -> LoadedPartition:
        """Check and prepare a partition (refused with the reason); cancelled, it holds nothing."""
        ...

    async def run(self, partition: LoadedPartition, inputs: dict[str, Array]) -> tuple[dict[str, Array], RunTiming]: ...

    def unload(self, key: str) -> None: ...

    def weight_bytes_loaded(self) -> int: ...


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class EmulatedBoard:
    """A MAX7800x emulated on the host: real limits, real numerics, optionally chip timing."""

    def __init__(self, profile: BoardProfile, *, chip_timing: bool = True, slowdown: float = 1.0) -> None:
        if slowdown <= 0:
            raise InvalidArgument(f"slowdown must be positive, got {slowdown}")
        self.profile = profile
        self.chip_timing = chip_timing
        #: Emulates a board slower (> 1) or faster (< 1) than its profile says, e.g. a lower
        #: real clock: the time taken is the modelled time times this. What the board reports
        #: as predicted stays the profile's, so the coordinator's calibration sees the gap.
        self.slowdown = slowdown
        self._sessions: dict[str, ort.InferenceSession] = {}
        self._loaded: dict[str, LoadedPartition] = {}
        self._refs: dict[str, int] = {}
        # The accelerator runs one partition at a time, whatever the apps.
        self._accelerator = asyncio.Lock()
        self._resident: str = ""

    async def load(self, spec: PartitionPayload, label: str) -> LoadedPartition:
        """Check the partition against this board and prepare it; refuses with the reason.

        The heavy part (hashing, parsing, analysing, building the onnxruntime session) runs in
        a worker thread and touches no state of the board; the result is recorded on the event
        loop only once it is complete, so a load cancelled half-way leaves nothing behind.
        """
        if not spec.onnx:
            # Sent without bytes: the coordinator believes this board still holds it.
            if spec.digest not in self._loaded:
                raise NotFound(f"{label}: partition {spec.digest[:12]} is not loaded here; send its ONNX bytes")
            return self._acquire(spec.digest)
        key = await asyncio.to_thread(_digest, spec.onnx)
        if spec.digest and spec.digest != key:
            raise InvalidArgument(f"{label}: partition bytes do not match their digest {spec.digest[:12]}")
        if key in self._loaded:
            return self._acquire(key)
        loaded, session = await asyncio.to_thread(self._prepare, spec, key, label)
        if key in self._loaded:  # a concurrent load of the same bytes finished first
            return self._acquire(key)
        self._sessions[key] = session
        self._loaded[key] = loaded
        self._refs[key] = 1
        return loaded

    def _acquire(self, key: str) -> LoadedPartition:
        self._refs[key] += 1
        return self._loaded[key]

    def _prepare(self, spec: PartitionPayload, key: str, label: str) -> tuple[LoadedPartition, ort.InferenceSession]:
        """Everything slow about a load, in a worker thread: no shared state is touched."""
        # Imported on the first load, not at start: onnx and onnxruntime are about 30 MB of an
        # agent's memory, which an agent that runs no partition (a sensor, a display) never needs.
        import onnx
        import onnxruntime as ort

        from synergy.hardware.analysis import analyze_model

        try:
            proto = onnx.load_from_string(spec.onnx)
        except Exception as exc:
            raise InvalidArgument(f"{label}: partition is not valid ONNX: {exc}") from exc
        hardware = analyze_model(proto, label)
        report = check_partition(hardware, 0, len(hardware.layers) - 1, self.profile)
        if not report.fits:
            raise DoesNotFit(
                f"{label}: layers {spec.first_layer}-{spec.last_layer} do not fit {self.profile.name}: "
                + "; ".join(report.reasons)
            )
        options = ort.SessionOptions()
        # One thread: several emulated boards share the host's cores like separate chips.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(spec.onnx, options, providers=["CPUExecutionProvider"])
        times = partition_times(hardware, 0, len(hardware.layers) - 1, self.profile)
        loaded = LoadedPartition(
            key=key,
            spec=spec,
            weight_bytes=hardware.weight_bytes,
            accelerator_s=times.accelerator_s,
            cpu_s=times.cpu_s,
            weight_load_s=times.weight_load_s,
        )
        return loaded, session

    def unload(self, key: str) -> None:
        if key not in self._refs:
            return
        self._refs[key] -= 1
        if self._refs[key] <= 0:
            del self._refs[key], self._loaded[key], self._sessions[key]
            if self._resident == key:
                self._resident = ""

    def weight_bytes_loaded(self) -> int:
        return sum(p.weight_bytes for p in self._loaded.values())

    def _reload_needed(self, key: str) -> bool:
        # Weights persist while powered; a switch costs a reload only when the partitions
        # this board holds do not fit its weight memory together.
        return bool(self._resident) and self._resident != key and self.weight_bytes_loaded() > self.profile.weight_bytes

    async def run(self, partition: LoadedPartition, inputs: dict[str, Array]) -> tuple[dict[str, Array], RunTiming]:
        session = self._sessions.get(partition.key)
        if session is None:
            raise InvalidArgument(f"partition {partition.key[:12]} is not loaded on {self.profile.name}")
        async with self._accelerator:
            started = time.perf_counter()
            reload_s = partition.weight_load_s if self._reload_needed(partition.key) else 0.0
            self._resident = partition.key
            # Widening, inference and narrowing all scale with the tensors: off the event loop.
            outputs = await asyncio.to_thread(_infer, session, partition.spec, inputs)
            compute_s = time.perf_counter() - started
            modelled_s = partition.modelled_s + reload_s
            target_s = modelled_s * self.slowdown
            if self.chip_timing and target_s > compute_s:
                await asyncio.sleep(target_s - compute_s)
            elapsed_s = time.perf_counter() - started
        return outputs, RunTiming(compute_s, modelled_s, reload_s, elapsed_s)


def _infer(session: ort.InferenceSession, spec: PartitionPayload, inputs: dict[str, Array]) -> dict[str, Array]:
    feed = {t.name: inputs[t.name].astype(np.float32) for t in spec.inputs}
    values = session.run([t.name for t in spec.outputs], feed)
    return {t.name: narrow(value, t) for t, value in zip(spec.outputs, values, strict=True)}
