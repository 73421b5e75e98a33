"""The agent's pipeline runtime: segments of apps by epoch, their workers, sources and streams.

A *segment* is this device's part of one app's pipeline in one epoch (see
``coordinator.assignments``). Each segment has a bounded inbox and one worker that runs its
partition (if any) and hands the frame on — to the next agent's stream, or to the output
when this device delivers. Sources of an epoch run only while that epoch is active.

Loss accounting: every frame a source emits reaches its target exactly once (targets
de-duplicate by seq) or is reported dropped with the reason by the stage that lost it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import structlog

from agent.board import Board, LoadedPartition, PartitionSpec
from agent.peers import FrameStream, Radio
from agent.reporter import Reporter
from agent.sensors import EmulatedSensor
from synergy.errors import FailedPrecondition, InvalidArgument, NotFound, SynergyError
from synergy.hardware.model import TensorSpec
from synergy.tasks import TaskOwner
from synergy.types import DeviceSpec, LinkProfile
from synergy.v1 import agent_pb2, common_pb2
from synergy.wire.tensors import Frame, array_to_proto, check_matches, spec_from_meta

__all__ = ["AckFn", "Runtime", "Telemetry"]

log = structlog.get_logger(__name__)

#: Frames waiting in front of one segment's worker.
INBOX_SIZE = 4
#: How many recently delivered seqs a target remembers to drop duplicates.
DEDUP_WINDOW = 4096
#: How long retiring an epoch waits for its frames to drain.
DRAIN_TIMEOUT_S = 10.0

AckFn = Callable[[int, str], None]


@dataclass
class Telemetry:
    frames_in: int = 0
    frames_out: int = 0
    bytes_to_peers: int = 0
    bytes_from_peers: int = 0
    frames_dropped: int = 0
    accelerator_busy_s: float = 0.0
    #: (app, epoch) -> [predicted seconds, measured seconds total, samples]
    stage_times: dict[tuple[str, int], list[float]] = field(default_factory=dict)


@dataclass
class Segment:
    app_id: str
    epoch: int
    index: int
    model: str
    inputs: tuple[TensorSpec, ...]
    partition: LoadedPartition | None
    sensor: EmulatedSensor | None
    rate_hz: float
    output_type: str
    next_address: str
    next_link: LinkProfile | None
    inbox: asyncio.Queue[tuple[Frame, AckFn | None]] = field(default_factory=lambda: asyncio.Queue(INBOX_SIZE))
    stream: FrameStream | None = None
    busy: int = 0
    processed: int = 0

    @property
    def key(self) -> tuple[str, int, int]:
        return (self.app_id, self.epoch, self.index)

    @property
    def label(self) -> str:
        return f"{self.app_id}/e{self.epoch}/s{self.index}"


class Runtime:
    def __init__(self, device: DeviceSpec, board: Board, reporter: Reporter, radio: Radio) -> None:
        self.device = device
        self.board = board
        self.reporter = reporter
        self.radio = radio
        self.telemetry = Telemetry()
        self.active_epoch = 0
        self._epochs: dict[int, dict[tuple[str, int, int], Segment]] = {}
        self._workers: dict[int, TaskOwner] = {}
        self._sources: dict[int, TaskOwner] = {}
        self._delivered: dict[str, OrderedDict[int, None]] = {}
        #: Open inbound frame streams per (app, epoch, segment); retiring waits for them.
        self._inbound: dict[tuple[str, int, int], int] = {}
        self._log = log.bind(device=device.device_id)

    # -- control plane ---------------------------------------------------------------------

    @property
    def loaded_epochs(self) -> list[int]:
        return sorted(self._epochs)

    async def deploy(self, epoch: int, assignments: Sequence[agent_pb2.Assignment]) -> None:
        """Load every segment of ``epoch`` or none: a refusal unloads what was loaded."""
        if epoch in self._epochs:
            raise FailedPrecondition(f"epoch {epoch} is already deployed on {self.device.device_id}")
        segments: dict[tuple[str, int, int], Segment] = {}
        try:
            for assignment in assignments:
                segment = self._segment(epoch, assignment)
                segments[segment.key] = segment
        except BaseException:
            for segment in segments.values():
                if segment.partition is not None:
                    self.board.unload(segment.partition.key)
            raise
        self._epochs[epoch] = segments
        workers = TaskOwner(f"epoch{epoch}")
        self._workers[epoch] = workers
        for segment in segments.values():
            if segment.next_address:
                segment.stream = FrameStream(
                    address=segment.next_address,
                    target=(segment.app_id, epoch, segment.index + 1),
                    peer_link=segment.next_link or self.device.link,
                    radio=self.radio,
                    on_drop=self._dropped_in_flight,
                    on_sent=self._count_sent,
                    label=segment.label,
                )
                segment.stream.start()
            workers.spawn(self._work(segment), f"worker:{segment.label}")
        self._log.info("epoch_deployed", epoch=epoch, segments=[s.label for s in segments.values()])

    def _segment(self, epoch: int, a: agent_pb2.Assignment) -> Segment:
        label = f"app {a.app_id} segment {a.segment}"
        inputs = tuple(spec_from_meta(m) for m in a.inputs)
        if not inputs:
            raise InvalidArgument(f"{label}: no input tensors declared")
        sensor = None
        if a.sensor_type and a.sensor_type != "client":
            spec = self.device.sensor(a.sensor_type)
            if spec is None:
                raise InvalidArgument(f"{label}: this device has no {a.sensor_type!r} sensor")
            if a.rate_hz <= 0:
                raise InvalidArgument(f"{label}: source rate must be positive")
            sensor = EmulatedSensor(spec, self.device.device_id)
        if a.output_type and not self.device.has_output(a.output_type):
            raise InvalidArgument(f"{label}: this device has no {a.output_type!r} output")
        if not a.output_type and not a.next.address:
            raise InvalidArgument(f"{label}: neither delivers nor names a next hop")
        partition = None
        if a.HasField("partition"):
            p = a.partition
            spec_p = PartitionSpec(
                first_layer=p.first_layer,
                last_layer=p.last_layer,
                onnx=p.onnx,
                inputs=tuple(spec_from_meta(m) for m in p.inputs),
                outputs=tuple(spec_from_meta(m) for m in p.outputs),
                digest=p.digest,
            )
            check_matches(inputs, spec_p.inputs)
            partition = self.board.load(spec_p, f"{a.model} {label}")
        link = None
        if a.next.HasField("link") and a.next.link.bandwidth_bytes_per_s > 0:
            link = LinkProfile(
                a.next.link.name,
                a.next.link.bandwidth_bytes_per_s,
                a.next.link.latency_s,
                a.next.link.per_message_overhead_bytes,
            )
        return Segment(
            app_id=a.app_id,
            epoch=epoch,
            index=a.segment,
            model=a.model,
            inputs=inputs,
            partition=partition,
            sensor=sensor,
            rate_hz=a.rate_hz,
            output_type=a.output_type,
            next_address=a.next.address,
            next_link=link,
        )

    def activate(self, epoch: int) -> None:
        """Sources of ``epoch`` start; sources of every other epoch stop."""
        if epoch not in self._epochs:
            raise NotFound(f"epoch {epoch} is not deployed on {self.device.device_id}")
        for other, owner in list(self._sources.items()):
            if other != epoch:
                self._sources.pop(other)
                owner.cancel()
        if epoch not in self._sources:
            owner = TaskOwner(f"sources{epoch}")
            self._sources[epoch] = owner
            for segment in self._epochs[epoch].values():
                if segment.sensor is not None:
                    owner.spawn(self._sense(segment), f"source:{segment.label}")
        self.active_epoch = epoch
        self._log.info("epoch_activated", epoch=epoch)

    async def undeploy(self, epoch: int, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> int:
        """Stop ``epoch``'s sources, let its frames drain (bounded), unload it. Returns frames drained."""
        segments = self._epochs.get(epoch)
        if segments is None:
            return 0
        sources = self._sources.pop(epoch, None)
        if sources is not None:
            await sources.close()
        if self.active_epoch == epoch:
            self.active_epoch = 0
        deadline = time.monotonic() + drain_timeout_s
        # Segments retire concurrently, each after its upstream: an app's pipeline is acyclic,
        # so waiting for inbound streams to close first never deadlocks.
        drained = sum(await asyncio.gather(*(self._retire(s, deadline) for s in segments.values())))
        workers = self._workers.pop(epoch)
        await workers.close()
        for segment in segments.values():
            while not segment.inbox.empty():
                frame, ack = segment.inbox.get_nowait()
                await self._drop(frame, f"epoch {epoch} retired before the frame was processed", ack)
            if segment.partition is not None:
                self.board.unload(segment.partition.key)
        del self._epochs[epoch]
        for key in [k for k in self.telemetry.stage_times if k[1] == epoch]:
            del self.telemetry.stage_times[key]
        self._log.info("epoch_undeployed", epoch=epoch)
        return drained

    async def _retire(self, segment: Segment, deadline: float) -> int:
        """Wait for upstream to finish sending, drain the inbox, close the outbound stream."""
        processed_before = segment.processed
        while self._segment_busy(segment) and time.monotonic() < deadline:  # noqa: ASYNC110 - bounded poll
            await asyncio.sleep(0.01)
        if segment.stream is not None:
            await segment.stream.close(max(0.0, deadline - time.monotonic()))
        return segment.processed - processed_before

    def _segment_busy(self, segment: Segment) -> bool:
        return bool(self._inbound.get(segment.key) or segment.inbox.qsize() or segment.busy)

    def inbound_opened(self, app_id: str, epoch: int, index: int) -> None:
        # Counted apart from the segment: upstream may connect before this epoch is deployed here.
        key = (app_id, epoch, index)
        self._inbound[key] = self._inbound.get(key, 0) + 1

    def inbound_closed(self, app_id: str, epoch: int, index: int) -> None:
        key = (app_id, epoch, index)
        left = self._inbound.get(key, 0) - 1
        if left > 0:
            self._inbound[key] = left
        else:
            self._inbound.pop(key, None)

    async def reset(self) -> None:
        """Drop every deployment (after registering anew, the coordinator redeploys)."""
        for epoch in list(self._epochs):
            await self.undeploy(epoch, drain_timeout_s=0.5)

    # -- data plane ------------------------------------------------------------------------

    def segment_for(self, app_id: str, epoch: int, index: int) -> Segment:
        segment = self._epochs.get(epoch, {}).get((app_id, epoch, index))
        if segment is None:
            raise NotFound(
                f"no segment {index} of app {app_id} in epoch {epoch} on {self.device.device_id}; "
                f"deployed epochs: {self.loaded_epochs}"
            )
        return segment

    async def accept(self, frame: Frame, ack: AckFn) -> None:
        """A frame from a peer: validate and queue it (waits while the inbox is full)."""
        self.telemetry.frames_in += 1
        self.telemetry.bytes_from_peers += frame.nbytes
        try:
            segment = self.segment_for(frame.app_id, frame.epoch, frame.segment)
            check_matches(frame.specs(), segment.inputs)
        except SynergyError as exc:
            await self._drop(frame, str(exc), ack)
            return
        await segment.inbox.put((frame, ack))

    async def inject(self, app_id: str, seq: int, tensors: dict[str, np.ndarray]) -> int:
        """An input of a client-fed app, entering at this device's source segment."""
        epoch = self.active_epoch
        segment = self.segment_for(app_id, epoch, 0)
        frame = Frame(app_id, epoch, 0, seq, time.time(), tensors, self.device.device_id)
        check_matches(frame.specs(), segment.inputs)
        await segment.inbox.put((frame, None))
        return epoch

    async def _sense(self, segment: Segment) -> None:
        assert segment.sensor is not None
        period = 1.0 / segment.rate_hz
        counter = 0
        next_capture = time.monotonic()
        while True:
            next_capture = max(next_capture + period, time.monotonic())
            await asyncio.sleep(max(0.0, next_capture - time.monotonic()))
            # seq is unique per app across epochs: the epoch in the high bits.
            seq = (segment.epoch << 32) | counter
            counter += 1
            tensors = segment.sensor.capture(seq, segment.inputs)
            frame = Frame(
                segment.app_id, segment.epoch, segment.index, seq, time.time(), tensors, self.device.device_id
            )
            # Blocks under back-pressure: the sensor then samples less often (no frame is lost).
            await segment.inbox.put((frame, None))

    async def _work(self, segment: Segment) -> None:
        while True:
            frame, ack = await segment.inbox.get()
            segment.busy += 1
            try:
                await self._process(segment, frame)
                segment.processed += 1
                if ack is not None:
                    ack(agent_pb2.FRAME_OUTCOME_ACCEPTED, "")
            except SynergyError as exc:
                await self._drop(frame, f"{segment.label}: {exc}", ack)
            except Exception as exc:
                self._log.exception("segment_failed", segment=segment.label)
                await self._drop(frame, f"{segment.label}: internal error {type(exc).__name__}: {exc}", ack)
            finally:
                segment.busy -= 1

    async def _process(self, segment: Segment, frame: Frame) -> None:
        tensors = frame.tensors
        if segment.partition is not None:
            tensors, timing = await self.board.run(segment.partition, tensors)
            self.telemetry.accelerator_busy_s += timing.elapsed_s
            entry = self.telemetry.stage_times.setdefault((segment.app_id, segment.epoch), [timing.modelled_s, 0.0, 0])
            entry[1] += timing.elapsed_s
            entry[2] += 1
        out = Frame(
            frame.app_id, frame.epoch, segment.index + 1, frame.seq, frame.capture_time, tensors, self.device.device_id
        )
        if segment.stream is not None:
            await segment.stream.send(out)
        else:
            self._deliver(segment, out)

    def _deliver(self, segment: Segment, frame: Frame) -> None:
        seen = self._delivered.setdefault(frame.app_id, OrderedDict())
        if frame.seq in seen:
            self._log.info("duplicate_frame_ignored", app=frame.app_id, seq=frame.seq)
            return
        seen[frame.seq] = None
        while len(seen) > DEDUP_WINDOW:
            seen.popitem(last=False)
        summary = _summarize(frame)
        self._log.info(
            "output",
            output=segment.output_type,
            app=frame.app_id,
            epoch=frame.epoch,
            seq=frame.seq,
            result=summary,
            latency_ms=round(1000 * (time.time() - frame.capture_time), 2),
        )
        result = common_pb2.Result(
            app_id=frame.app_id,
            epoch=frame.epoch,
            seq=frame.seq,
            capture_time_unix=frame.capture_time,
            done_time_unix=time.time(),
            tensors=[array_to_proto(a, s) for s, a in zip(frame.specs(), frame.tensors.values(), strict=True)],
            device_id=self.device.device_id,
            output_type=segment.output_type,
            summary=summary,
        )
        self.reporter.submit(result)

    async def _drop(self, frame: Frame, reason: str, ack: AckFn | None) -> None:
        self.telemetry.frames_dropped += 1
        self._log.warning("frame_dropped", app=frame.app_id, epoch=frame.epoch, seq=frame.seq, reason=reason)
        if ack is not None:
            ack(agent_pb2.FRAME_OUTCOME_REJECTED, reason)
        self.reporter.submit(
            common_pb2.Result(
                app_id=frame.app_id,
                epoch=frame.epoch,
                seq=frame.seq,
                capture_time_unix=frame.capture_time,
                done_time_unix=time.time(),
                device_id=self.device.device_id,
                dropped=True,
                drop_reason=reason,
            )
        )

    async def _dropped_in_flight(self, frame: Frame, reason: str) -> None:
        await self._drop(frame, reason, None)

    def _count_sent(self, nbytes: int) -> None:
        self.telemetry.frames_out += 1
        self.telemetry.bytes_to_peers += nbytes

    def stage_timings(self) -> list[common_pb2.StageTiming]:
        return [
            common_pb2.StageTiming(
                app_id=app, epoch=epoch, predicted_s=v[0], measured_s=v[1] / v[2] if v[2] else 0.0, samples=int(v[2])
            )
            for (app, epoch), v in self.telemetry.stage_times.items()
        ]

    async def close(self) -> None:
        for epoch in list(self._epochs):
            await self.undeploy(epoch, drain_timeout_s=1.0)


def _summarize(frame: Frame) -> str:
    """A person-readable gist of a model output: the top class and its score."""
    if not frame.tensors:
        return ""
    values = next(iter(frame.tensors.values())).astype(np.float64).ravel()
    if values.size == 0:
        return ""
    top = int(values.argmax())
    return f"class {top} (score {values[top]:.0f})" if values.size <= 1000 else f"map of {values.size} values"
