"""The agent's pipeline runtime: segments of apps by epoch, their workers, sources and streams.

A *segment* is this device's part of one app's pipeline in one epoch (a
:class:`~synergy.deployment.SegmentAssignment`). Each segment has a bounded inbox and one
worker that runs its partition (if any) and hands the frame on — to the next agent's stream
(:class:`~agent.dataplane.FrameStream`), or to the output when this device delivers. Sources
of an epoch run only while that epoch is active.

Sources capture at the plan's rate and, by default, admit a frame only when the pipeline has
room for it (skipping the capture at the sensor otherwise): frames never queue behind a
bottleneck. Accounting: every frame a source admits reaches its target (targets drop repeats
of a seq) or is reported dropped with the reason by the stage that gave up on it. When an
epoch retires, the frames it still holds here are replayed on the new epoch's path (see
:meth:`Runtime._hand_over`), given back to their sender, or — past the replay bound —
dropped with the reason.

What the runtime holds is reported as an :class:`~synergy.deployment.AgentState` (active
epoch, loaded epochs, every segment with the digest of the partition it really runs), so the
coordinator can compare it with what it deployed and repair any drift.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import structlog

from agent.board import Board, LoadedPartition
from agent.dataplane import REPLAY_MAX_AGE_S, AckFn, DropLog, FrameStream, Radio, receive
from agent.sensors import EmulatedSensor
from synergy.deployment import AgentState, HeldSegment, SegmentAssignment
from synergy.errors import FailedPrecondition, InvalidArgument, NotFound, SynergyError
from synergy.hardware.model import TensorSpec
from synergy.reports import DeviceTelemetry, FrameOutcome, Result, SourceCount, StageTiming, WireTensor
from synergy.tasks import TaskOwner
from synergy.types import CLIENT_SOURCE, DeviceSpec, LinkProfile
from synergy.wire.frames import FrameAck, FrameTransport, GrpcFrameTransport, StreamTarget
from synergy.wire.tensors import Array, Frame, check_matches, encode_array

__all__ = ["ResultSink", "Runtime", "Telemetry", "TransportFactory"]

log = structlog.get_logger(__name__)

#: Frames waiting in front of one segment's worker.
INBOX_SIZE = 4
#: How many recently delivered seqs a target remembers to drop duplicates.
DEDUP_WINDOW = 4096
#: How long retiring an epoch waits for its frames to drain.
DRAIN_TIMEOUT_S = 10.0
#: Outputs up to this size are read as class scores in a result's summary; larger ones are maps.
SUMMARY_MAX_CLASSES = 1000
#: Source counters (per app and epoch) an agent keeps reporting after their epoch retired.
SOURCE_COUNTS_KEPT = 64

#: Opens the frame transport to a peer agent's address.
TransportFactory = Callable[[str], FrameTransport]


class ResultSink(Protocol):
    """Where final outcomes go (the reporter): never blocks the pipeline."""

    def submit(self, result: Result) -> None: ...


@dataclass
class Telemetry:
    frames_in: int = 0
    frames_out: int = 0
    bytes_to_peers: int = 0
    bytes_from_peers: int = 0
    frames_dropped: int = 0
    accelerator_busy_s: float = 0.0
    #: Peer streams that broke, and re-opened after a break (of retired epochs; see Runtime).
    stream_breaks: int = 0
    stream_reopens: int = 0
    #: (app, epoch) -> [predicted seconds, measured seconds total, samples]
    stage_times: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    #: (app, epoch) -> [frames a source here admitted, frames it skipped at the sensor]
    sources: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    #: Frames a retiring epoch handed to the new epoch's path on this device.
    frames_replayed: int = 0
    #: Partitions run on the board, every app and epoch (stage_times go with their epoch; the
    #: metrics endpoint needs a total that never goes back).
    partition_runs: int = 0


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
    #: The device of the previous segment, the one peer allowed to stream into this one.
    upstream: str = ""
    #: At a source: queue every captured frame (True) or admit one only when the pipeline has
    #: room and skip the others at the sensor (False, the default: the freshest frames).
    every_frame: bool = False
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

    @property
    def digest(self) -> str:
        return self.partition.key if self.partition is not None else ""

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """What this segment hands on: its partition's outputs, or its inputs unchanged."""
        return tuple(self.partition.spec.outputs) if self.partition is not None else self.inputs

    def has_room(self) -> bool:
        """Whether a frame admitted now would start through the pipeline without queueing
        behind another: nothing waits in the inbox, and the next hop has a credit for it and
        for every frame this segment is working on."""
        if self.inbox.qsize():
            return False
        return self.stream is None or self.stream.free_credits > self.busy


class Runtime:
    def __init__(
        self,
        device: DeviceSpec,
        board: Board,
        reporter: ResultSink,
        radio: Radio,
        *,
        transport: TransportFactory = GrpcFrameTransport,
    ) -> None:
        self.device = device
        self.board = board
        self.reporter = reporter
        self.radio = radio
        self.telemetry = Telemetry()
        self.active_epoch = 0
        self._transport = transport
        self._epochs: dict[int, dict[tuple[str, int, int], Segment]] = {}
        #: Deploys in progress, by epoch: an Undeploy of that epoch cancels its deploy.
        self._deploying: dict[int, asyncio.Task[object]] = {}
        self._retiring: dict[int, asyncio.Task[int]] = {}
        self._retirements = TaskOwner("retirements")
        self._workers: dict[int, TaskOwner] = {}
        self._sources: dict[int, TaskOwner] = {}
        self._delivered: dict[str, OrderedDict[int, None]] = {}
        #: Open inbound frame streams per (app, epoch, segment); retiring waits for them.
        self._inbound: dict[tuple[str, int, int], int] = {}
        self._log = log.bind(device=device.device_id)
        self._drops = DropLog(self._log)
        #: Called whenever what this agent holds changed (membership reports it at once).
        self.on_state_change: Callable[[], None] = lambda: None

    # -- what this agent holds ------------------------------------------------------------

    @property
    def loaded_epochs(self) -> list[int]:
        return sorted(self._epochs)

    def state(self) -> AgentState:
        """What this agent really holds, for Register, every Heartbeat and Status."""
        return AgentState(
            active_epoch=self.active_epoch,
            loaded_epochs=tuple(sorted(self._epochs)),
            segments=tuple(
                sorted(
                    HeldSegment(s.app_id, s.epoch, s.index, s.digest)
                    for segments in self._epochs.values()
                    for s in segments.values()
                )
            ),
        )

    # -- control plane ---------------------------------------------------------------------

    async def deploy(self, epoch: int, assignments: Sequence[SegmentAssignment]) -> None:
        """Load every segment of ``epoch`` or none: a refusal — or a cancellation — unloads what was loaded.

        Partitions load in worker threads (parsing, analysing and building sessions are slow);
        the event loop keeps serving frames meanwhile.
        """
        if epoch in self._epochs or epoch in self._deploying:
            raise FailedPrecondition(f"epoch {epoch} is already deployed on {self.device.device_id}")
        task = asyncio.current_task()
        assert task is not None
        self._deploying[epoch] = task
        loaded: list[LoadedPartition] = []
        segments: dict[tuple[str, int, int], Segment] = {}
        try:
            for assignment in assignments:
                segment = await self._segment(epoch, assignment, loaded)
                if segment.key in segments:
                    raise InvalidArgument(f"app {segment.app_id} segment {segment.index} is assigned twice")
                segments[segment.key] = segment
        except BaseException:
            for partition in loaded:
                self.board.unload(partition.key)
            raise
        finally:
            del self._deploying[epoch]
        self._epochs[epoch] = segments
        workers = TaskOwner(f"epoch{epoch}")
        self._workers[epoch] = workers
        for segment in segments.values():
            if segment.next_address:
                segment.stream = FrameStream(
                    transport=self._transport(segment.next_address),
                    target=StreamTarget(segment.app_id, epoch, segment.index + 1),
                    peer_link=segment.next_link or self.device.link,
                    radio=self.radio,
                    on_drop=self._dropped_in_flight,
                    on_sent=self._count_sent,
                    on_return=self._hand_over,
                    label=segment.label,
                )
                segment.stream.start()
            workers.spawn(self._work(segment), f"worker:{segment.label}")
        self._log.info("epoch_deployed", epoch=epoch, segments=[s.label for s in segments.values()])
        self.on_state_change()

    async def _segment(self, epoch: int, a: SegmentAssignment, loaded: list[LoadedPartition]) -> Segment:
        label = f"app {a.app_id} segment {a.segment}"
        if not a.inputs:
            raise InvalidArgument(f"{label}: no input tensors declared")
        if a.output_type and not self.device.has_output(a.output_type):
            raise InvalidArgument(f"{label}: this device has no {a.output_type!r} output")
        if not a.output_type and a.next is None:
            raise InvalidArgument(f"{label}: neither delivers nor names a next hop")
        if a.partition is not None:
            check_matches(a.inputs, a.partition.inputs)
        sensor = None
        if a.sensor_type and a.sensor_type != CLIENT_SOURCE:
            spec = self.device.sensor(a.sensor_type)
            if spec is None:
                raise InvalidArgument(f"{label}: this device has no {a.sensor_type!r} sensor")
            if a.rate_hz <= 0:
                raise InvalidArgument(f"{label}: source rate must be positive")
            # May read a recording from disk.
            sensor = await asyncio.to_thread(EmulatedSensor, spec, self.device.device_id)
        partition = None
        if a.partition is not None:
            partition = await self.board.load(a.partition, f"{a.model} {label}")
            loaded.append(partition)  # no await in between: a cancellation cannot lose it
        link = a.next.link if a.next is not None and a.next.link is not None else None
        if link is not None and link.bandwidth_bytes_per_s <= 0:
            link = None
        return Segment(
            app_id=a.app_id,
            epoch=epoch,
            index=a.segment,
            model=a.model,
            inputs=a.inputs,
            partition=partition,
            sensor=sensor,
            rate_hz=a.rate_hz,
            output_type=a.output_type,
            next_address=a.next.address if a.next is not None else "",
            next_link=link,
            upstream=a.upstream,
            every_frame=a.every_frame,
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
        self.on_state_change()

    async def stop_sources(self) -> None:
        """Stop every source (shutdown): no new frame enters any pipeline here."""
        sources, self._sources = self._sources, {}
        await asyncio.gather(*(owner.close() for owner in sources.values()))

    async def undeploy(self, epoch: int, drain_timeout_s: float = DRAIN_TIMEOUT_S) -> int:
        """Stop ``epoch``'s sources, let its frames drain (bounded), unload it. Returns frames drained.

        An epoch not deployed here is a no-op (returns 0); one still being deployed stops loading.
        """
        segments = self._epochs.get(epoch)
        if segments is None:
            deploying = self._deploying.get(epoch)
            if deploying is not None:  # the coordinator gave up on it: stop loading (it unloads itself)
                deploying.cancel()
            return 0
        # Retiring runs to its end in a task of its own, whoever stops waiting for it (an
        # Undeploy call that timed out), and callers at once (shutdown and an Undeploy) share it.
        task = self._retiring.get(epoch)
        if task is None:
            task = self._retirements.spawn(self._undeploy(epoch, segments, drain_timeout_s), f"retire{epoch}")
            self._retiring[epoch] = task
            task.add_done_callback(lambda _: self._retiring.pop(epoch, None))
        return await asyncio.shield(task)

    async def _undeploy(self, epoch: int, segments: dict[tuple[str, int, int], Segment], drain_timeout_s: float) -> int:
        sources = self._sources.pop(epoch, None)
        if sources is not None:
            await sources.close()
        if self.active_epoch == epoch:
            self.active_epoch = 0
        deadline = time.monotonic() + drain_timeout_s
        # Segments retire concurrently, each after its upstream: an app's pipeline is acyclic,
        # so waiting for inbound streams to close first never deadlocks.
        drained = sum(await asyncio.gather(*(self._retire(s, deadline) for s in segments.values())))
        workers = self._workers.pop(epoch, None)
        if workers is not None:
            await workers.close()
        for segment in segments.values():
            while not segment.inbox.empty():
                frame, ack = segment.inbox.get_nowait()
                self._hand_over(frame, ack, None, f"epoch {epoch} retired before the frame was processed")
            if segment.partition is not None:
                self.board.unload(segment.partition.key)
            if segment.stream is not None:
                self.telemetry.stream_breaks += segment.stream.breaks
                self.telemetry.stream_reopens += segment.stream.reopens
        del self._epochs[epoch]
        for key in [k for k in self.telemetry.stage_times if k[1] == epoch]:
            del self.telemetry.stage_times[key]
        # Source counters outlive their epoch (the coordinator keeps the last value it heard),
        # but not forever: the oldest go once there are many.
        for key in sorted(self.telemetry.sources, key=lambda k: k[1])[:-SOURCE_COUNTS_KEPT]:
            del self.telemetry.sources[key]
        self._drops.flush()
        self._log.info("epoch_undeployed", epoch=epoch, drained=drained)
        self.on_state_change()
        return drained

    async def _retire(self, segment: Segment, deadline: float) -> int:
        """Wait for upstream to finish sending, drain the inbox, close the outbound stream."""
        processed_before = segment.processed
        # A next hop that is down is not waited for: what waits for it goes to the new epoch.
        while (  # noqa: ASYNC110 - a bounded poll
            self._segment_busy(segment)
            and time.monotonic() < deadline
            and not (segment.stream is not None and segment.stream.failing)
        ):
            await asyncio.sleep(0.01)
        if segment.stream is not None:
            await segment.stream.close(max(0.0, deadline - time.monotonic()), handover=self._hand_over)
        return segment.processed - processed_before

    def _segment_busy(self, segment: Segment) -> bool:
        return bool(self._inbound.get(segment.key) or segment.inbox.qsize() or segment.busy)

    def inbound_opened(self, target: StreamTarget) -> None:
        # Counted apart from the segment: upstream may connect before this epoch is deployed here.
        key = (target.app_id, target.epoch, target.segment)
        self._inbound[key] = self._inbound.get(key, 0) + 1

    def inbound_closed(self, target: StreamTarget) -> None:
        key = (target.app_id, target.epoch, target.segment)
        left = self._inbound.get(key, 0) - 1
        if left > 0:
            self._inbound[key] = left
        else:
            self._inbound.pop(key, None)

    async def close(self, drain_timeout_s: float = 1.0) -> None:
        """Retire every epoch at once, each draining until one shared deadline."""
        await self.stop_sources()
        await asyncio.gather(*(self.undeploy(epoch, drain_timeout_s) for epoch in list(self._epochs)))

    # -- data plane ------------------------------------------------------------------------

    def upstream_of(self, target: StreamTarget) -> str | None:
        """The device this agent's deployment names as the upstream of ``target``; None when
        it holds no such segment, or the segment is fed by no peer (segment 0)."""
        segment = self._epochs.get(target.epoch, {}).get((target.app_id, target.epoch, target.segment))
        if segment is None or segment.index == 0 or not segment.upstream:
            return None
        return segment.upstream

    def segment_for(self, app_id: str, epoch: int, index: int) -> Segment:
        segment = self._epochs.get(epoch, {}).get((app_id, epoch, index))
        if segment is None:
            raise NotFound(
                f"no segment {index} of app {app_id} in epoch {epoch} on {self.device.device_id}; "
                f"deployed epochs: {self.loaded_epochs}"
            )
        return segment

    def receive(self, frames: AsyncIterator[Frame]) -> AsyncGenerator[FrameAck, None]:
        """One inbound frame stream: its acks (see :func:`agent.dataplane.receive`)."""
        return receive(frames, self.accept)

    async def accept(self, frame: Frame, ack: AckFn) -> None:
        """A frame from a peer: validate and queue it (waits while the inbox is full)."""
        self.telemetry.frames_in += 1
        self.telemetry.bytes_from_peers += frame.nbytes
        try:
            segment = self.segment_for(frame.app_id, frame.epoch, frame.segment)
            check_matches(frame.specs(), segment.inputs)
        except SynergyError as exc:
            self._drop(frame, str(exc), ack)
            return
        await segment.inbox.put((frame, ack))

    async def inject(self, app_id: str, seq: int, tensors: dict[str, Array]) -> int:
        """An input of a client-fed app, entering at this device's source segment."""
        epoch = self.active_epoch
        segment = self.segment_for(app_id, epoch, 0)
        frame = Frame(app_id, epoch, 0, seq, time.time(), tensors, self.device.device_id)
        check_matches(frame.specs(), segment.inputs)
        await segment.inbox.put((frame, None))
        return epoch

    async def _sense(self, segment: Segment) -> None:
        """Capture at the segment's rate (the plan's rate for the app). By default a frame is
        admitted only when the pipeline has room for it (:meth:`Segment.has_room`) and skipped
        at the sensor otherwise, so no frame waits behind a bottleneck and latency stays that
        of the pipeline; with ``every_frame`` each capture is queued (back-pressure slows the
        sensor, nothing is skipped)."""
        assert segment.sensor is not None
        period = 1.0 / segment.rate_hz
        counts = self.telemetry.sources.setdefault((segment.app_id, segment.epoch), [0, 0])
        counter = 0
        # Each app's source at a phase of its own within the period (as independent sensors
        # are): sources of several apps sharing a device would otherwise capture at the same
        # instants, every period, and their frames queue for the shared chip and radio.
        next_capture = time.monotonic() + period * (zlib.crc32(segment.app_id.encode()) % 1000) / 1000
        while True:
            next_capture = max(next_capture + period, time.monotonic())
            await asyncio.sleep(max(0.0, next_capture - time.monotonic()))
            if not segment.every_frame and not segment.has_room():
                counts[1] += 1
                continue
            # seq is unique per app across epochs: the epoch in the high bits.
            seq = (segment.epoch << 32) | counter
            tensors = segment.sensor.capture(seq, segment.inputs)
            frame = Frame(
                segment.app_id, segment.epoch, segment.index, seq, time.time(), tensors, self.device.device_id
            )
            # With every_frame this blocks under back-pressure: the sensor samples less often.
            # A frame counts as admitted once it is in: cancelled while waiting, it never was.
            await segment.inbox.put((frame, None))
            counter += 1
            counts[0] += 1

    async def _work(self, segment: Segment) -> None:
        while True:
            frame, ack = await segment.inbox.get()
            segment.busy += 1
            handed_on = False
            try:
                out = await self._compute(segment, frame)
                if segment.stream is not None:
                    # From here on the stream accounts for it, and acknowledges it upstream
                    # once the next hop is done with it (acks travel back from the target).
                    # A source keeps the captured input with it, to replay from if it is lost.
                    await segment.stream.send(out, ack, frame if segment.index == 0 else None)
                else:
                    self._deliver(segment, out)
                    if ack is not None:
                        ack(FrameOutcome.ACCEPTED, "")
                handed_on = True
                segment.processed += 1
            except asyncio.CancelledError:
                if not handed_on:
                    self._hand_over(frame, ack, None, f"{segment.label}: epoch retired while the frame was processed")
                raise
            except SynergyError as exc:
                self._drop(frame, f"{segment.label}: {exc}", ack)
            except Exception as exc:
                self._log.exception("segment_failed", segment=segment.label)
                self._drop(frame, f"{segment.label}: internal error {type(exc).__name__}: {exc}", ack)
            finally:
                segment.busy -= 1

    async def _compute(self, segment: Segment, frame: Frame) -> Frame:
        tensors = frame.tensors
        if segment.partition is not None:
            tensors, timing = await self.board.run(segment.partition, tensors)
            self.telemetry.partition_runs += 1
            self.telemetry.accelerator_busy_s += timing.elapsed_s
            entry = self.telemetry.stage_times.setdefault((segment.app_id, segment.epoch), [timing.modelled_s, 0.0, 0])
            entry[1] += timing.elapsed_s
            entry[2] += 1
        return Frame(
            frame.app_id, frame.epoch, segment.index + 1, frame.seq, frame.capture_time, tensors, self.device.device_id
        )

    def _deliver(self, segment: Segment, frame: Frame) -> None:
        seen = self._delivered.setdefault(frame.app_id, OrderedDict())
        if frame.seq in seen:
            self._log.debug("duplicate_frame_ignored", app=frame.app_id, seq=frame.seq)
            return
        seen[frame.seq] = None
        while len(seen) > DEDUP_WINDOW:
            seen.popitem(last=False)
        summary = _summarize(frame)
        done = time.time()
        self._log.debug(
            "output",
            output=segment.output_type,
            app=frame.app_id,
            epoch=frame.epoch,
            seq=frame.seq,
            result=summary,
            latency_ms=round(1000 * (done - frame.capture_time), 2),
        )
        self.reporter.submit(
            Result(
                app_id=frame.app_id,
                epoch=frame.epoch,
                seq=frame.seq,
                capture_time_unix=frame.capture_time,
                done_time_unix=done,
                tensors=tuple(
                    WireTensor(spec, encode_array(array, spec))
                    for spec, array in zip(frame.specs(), frame.tensors.values(), strict=True)
                ),
                device_id=self.device.device_id,
                output_type=segment.output_type,
                summary=summary,
            )
        )

    def _drop(self, frame: Frame, reason: str, ack: AckFn | None) -> None:
        self.telemetry.frames_dropped += 1
        self._drops.dropped(frame, reason)
        if ack is not None:
            ack(FrameOutcome.REJECTED, reason)
        self.reporter.submit(
            Result(
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

    def _hand_over(self, frame: Frame, done: AckFn | None, origin: Frame | None, reason: str) -> None:
        """A frame its path no longer carries (its epoch retires here, or the next hop gave it
        back): replayed on the active epoch's path when the frame is within the replay bound
        and a segment here takes it — these very tensors (as its input: it runs on them; or
        as its output: its stream sends them on), or else the captured input it came from
        (``origin``, at a source: it starts again from there); otherwise RETURNED to the hop
        it came from, which may have a path for it, or, with none (a source), dropped and
        reported with ``reason`` and why."""
        age = time.time() - frame.capture_time
        if age > REPLAY_MAX_AGE_S:
            bound = f"past the replay bound ({age:.1f} s > {REPLAY_MAX_AGE_S:g} s)"
            self._drop(frame, f"{reason}; not replayed: {bound}", done)
            return
        found = self._replay_target(frame)
        if found is None and origin is not None:
            found = self._replay_target(origin)
            frame = origin if found is not None else frame
        if found is None:
            if done is not None:
                done(FrameOutcome.RETURNED, f"{reason}; returned: no path for it on {self.device.device_id}")
            else:
                self._drop(frame, f"{reason}; not replayed: no segment of the active epoch here carries it", None)
            return
        segment, runs = found
        moved = Frame(
            frame.app_id,
            segment.epoch,
            segment.index if runs else segment.index + 1,
            frame.seq,
            frame.capture_time,
            frame.tensors,
            self.device.device_id,
        )
        self.telemetry.frames_replayed += 1
        self._workers[segment.epoch].spawn(self._replay(segment, runs, moved, done, reason), f"replay:{segment.label}")

    def _replay_target(self, frame: Frame) -> tuple[Segment, bool] | None:
        """The active epoch's segment here that continues ``frame``: (segment, runs it)."""
        active = self.active_epoch
        if not active or active == frame.epoch or active not in self._epochs or active not in self._workers:
            return None
        specs = frozenset(frame.specs())
        found = None
        for t in self._epochs[active].values():
            if t.app_id != frame.app_id:
                continue
            if frozenset(t.inputs) == specs:
                return (t, True)
            if t.stream is not None and frozenset(t.outputs) == specs:
                found = (t, False)
        return found

    async def _replay(self, segment: Segment, runs: bool, frame: Frame, done: AckFn | None, reason: str) -> None:
        try:
            if runs:
                await segment.inbox.put((frame, done))
            else:
                assert segment.stream is not None
                await segment.stream.send(frame, done)
        except asyncio.CancelledError:
            self._drop(frame, f"{reason}; epoch {frame.epoch} retired too before the replay", done)
            raise

    def _dropped_in_flight(self, frame: Frame, reason: str) -> None:
        self._drop(frame, reason, None)

    def _count_sent(self, nbytes: int) -> None:
        self.telemetry.frames_out += 1
        self.telemetry.bytes_to_peers += nbytes

    # -- reports ---------------------------------------------------------------------------

    def stage_timings(self) -> tuple[StageTiming, ...]:
        return tuple(
            StageTiming(app, epoch, v[0], v[1] / v[2] if v[2] else 0.0, int(v[2]))
            for (app, epoch), v in self.telemetry.stage_times.items()
        )

    def device_telemetry(self, bytes_to_coordinator: int) -> DeviceTelemetry:
        t = self.telemetry
        return DeviceTelemetry(
            frames_in=t.frames_in,
            frames_out=t.frames_out,
            bytes_to_peers=t.bytes_to_peers,
            bytes_from_peers=t.bytes_from_peers,
            bytes_to_coordinator=bytes_to_coordinator,
            frames_dropped=t.frames_dropped,
            accelerator_busy_s=t.accelerator_busy_s,
            stage_timings=self.stage_timings(),
            sources=tuple(SourceCount(app, epoch, c[0], c[1]) for (app, epoch), c in t.sources.items()),
            frames_replayed=t.frames_replayed,
        )

    def stream_counts(self) -> tuple[int, int]:
        """(breaks, re-opens) of every peer stream, retired or live."""
        live = [s.stream for segs in self._epochs.values() for s in segs.values() if s.stream is not None]
        return (
            self.telemetry.stream_breaks + sum(s.breaks for s in live),
            self.telemetry.stream_reopens + sum(s.reopens for s in live),
        )


def _summarize(frame: Frame) -> str:
    """A person-readable gist of a model output: the top class and its score."""
    if not frame.tensors:
        return ""
    first = next(iter(frame.tensors.values()))
    if first.size == 0:
        return ""
    if first.size > SUMMARY_MAX_CLASSES:
        # A map, not class scores: say so without converting megabytes (it cost 55% of the
        # time of a hop carrying 8 MB).
        return f"map of {first.size} values"
    values = first.astype(np.float64).ravel()
    top = int(values.argmax())
    return f"class {top} (score {values[top]:.0f})"
