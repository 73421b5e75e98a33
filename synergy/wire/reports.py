"""Reports <-> protobuf: results, telemetry, coordinator counters, app and device views.

The ``*_from_proto`` converters validate first (:mod:`synergy.wire.validate`): numbers are
finite and bounded, enum values known.
"""

from __future__ import annotations

from synergy import limits
from synergy.reports import (
    CoordinatorStats,
    DeviceTelemetry,
    FrameOutcome,
    Result,
    SourceCount,
    StageTiming,
    WireTensor,
)
from synergy.types import AppInfo, AppState, AppStats, DeviceInfo, DeviceState
from synergy.v1 import agent_pb2, apps_pb2, common_pb2
from synergy.wire import validate
from synergy.wire.convert import app_spec_from_proto, app_spec_to_proto, device_from_proto, device_to_proto
from synergy.wire.tensors import spec_from_meta, spec_to_meta

__all__ = [
    "app_info_from_proto",
    "app_info_to_proto",
    "device_info_from_proto",
    "device_info_to_proto",
    "outcome_from_proto",
    "outcome_to_proto",
    "result_from_proto",
    "result_to_proto",
    "stats_from_proto",
    "stats_to_proto",
    "telemetry_from_proto",
    "telemetry_to_proto",
]

_OUTCOME_TO_PROTO: dict[FrameOutcome, int] = {
    FrameOutcome.ACCEPTED: agent_pb2.FRAME_OUTCOME_ACCEPTED,
    FrameOutcome.REJECTED: agent_pb2.FRAME_OUTCOME_REJECTED,
    FrameOutcome.RETURNED: agent_pb2.FRAME_OUTCOME_RETURNED,
}
_OUTCOME_FROM_PROTO: dict[int, FrameOutcome] = {v: k for k, v in _OUTCOME_TO_PROTO.items()}
_APP_STATE_TO_PROTO = {
    AppState.WAITING: common_pb2.APP_STATE_WAITING,
    AppState.RUNNING: common_pb2.APP_STATE_RUNNING,
    AppState.STALLED: common_pb2.APP_STATE_STALLED,
}
_APP_STATE_FROM_PROTO = {v: k for k, v in _APP_STATE_TO_PROTO.items()}
_DEVICE_STATE_TO_PROTO = {
    DeviceState.ONLINE: common_pb2.DEVICE_STATE_ONLINE,
    DeviceState.OFFLINE: common_pb2.DEVICE_STATE_OFFLINE,
}
_DEVICE_STATE_FROM_PROTO = {v: k for k, v in _DEVICE_STATE_TO_PROTO.items()}
#: What a client reads: the known values, and UNSPECIFIED (an unset field) as the safe state.
_APP_STATE_READ = {common_pb2.APP_STATE_UNSPECIFIED: AppState.WAITING, **_APP_STATE_FROM_PROTO}
_DEVICE_STATE_READ = {common_pb2.DEVICE_STATE_UNSPECIFIED: DeviceState.OFFLINE, **_DEVICE_STATE_FROM_PROTO}


def outcome_to_proto(outcome: FrameOutcome) -> int:
    return _OUTCOME_TO_PROTO[outcome]


def outcome_from_proto(value: int) -> FrameOutcome | None:
    """The outcome an ack carries; None for an unknown value (the caller refuses it)."""
    return _OUTCOME_FROM_PROTO.get(value)


def result_to_proto(result: Result) -> common_pb2.Result:
    return common_pb2.Result(
        app_id=result.app_id,
        epoch=result.epoch,
        seq=result.seq,
        capture_time_unix=result.capture_time_unix,
        done_time_unix=result.done_time_unix,
        tensors=[common_pb2.Tensor(meta=spec_to_meta(t.spec), data=t.data) for t in result.tensors],
        device_id=result.device_id,
        output_type=result.output_type,
        dropped=result.dropped,
        drop_reason=result.drop_reason,
        summary=result.summary,
    )


def result_from_proto(msg: common_pb2.Result, *, path: str = "result") -> Result:
    """A frame's outcome, validated (:func:`synergy.wire.validate.result`)."""
    validate.result(msg, path)
    return Result(
        app_id=msg.app_id,
        epoch=msg.epoch,
        seq=msg.seq,
        capture_time_unix=msg.capture_time_unix,
        done_time_unix=msg.done_time_unix,
        tensors=tuple(WireTensor(spec_from_meta(t.meta), t.data) for t in msg.tensors),
        device_id=msg.device_id,
        output_type=msg.output_type,
        dropped=msg.dropped,
        drop_reason=msg.drop_reason,
        summary=msg.summary,
    )


def telemetry_to_proto(t: DeviceTelemetry) -> common_pb2.DeviceTelemetry:
    return common_pb2.DeviceTelemetry(
        frames_in=t.frames_in,
        frames_out=t.frames_out,
        bytes_to_peers=t.bytes_to_peers,
        bytes_from_peers=t.bytes_from_peers,
        bytes_to_coordinator=t.bytes_to_coordinator,
        frames_dropped=t.frames_dropped,
        accelerator_busy_s=t.accelerator_busy_s,
        stage_timings=[
            common_pb2.StageTiming(
                app_id=s.app_id, epoch=s.epoch, predicted_s=s.predicted_s, measured_s=s.measured_s, samples=s.samples
            )
            for s in t.stage_timings
        ],
        sources=[
            common_pb2.SourceCount(app_id=c.app_id, epoch=c.epoch, admitted=c.admitted, skipped=c.skipped)
            for c in t.sources
        ],
        frames_replayed=t.frames_replayed,
    )


def telemetry_from_proto(msg: common_pb2.DeviceTelemetry, *, path: str = "telemetry") -> DeviceTelemetry:
    """A heartbeat's counters, validated (:func:`synergy.wire.validate.telemetry`)."""
    validate.telemetry(msg, path)
    return DeviceTelemetry(
        frames_in=msg.frames_in,
        frames_out=msg.frames_out,
        bytes_to_peers=msg.bytes_to_peers,
        bytes_from_peers=msg.bytes_from_peers,
        bytes_to_coordinator=msg.bytes_to_coordinator,
        frames_dropped=msg.frames_dropped,
        accelerator_busy_s=msg.accelerator_busy_s,
        stage_timings=tuple(
            StageTiming(s.app_id, s.epoch, s.predicted_s, s.measured_s, s.samples) for s in msg.stage_timings
        ),
        sources=tuple(SourceCount(c.app_id, c.epoch, c.admitted, c.skipped) for c in msg.sources),
        frames_replayed=msg.frames_replayed,
    )


_STAT_COUNTERS = (
    "epoch",
    "activation_bytes_relayed",
    "result_bytes_received",
    "input_bytes_forwarded",
    "results_received",
    "replans",
    "deploy_failures",
    "partitions_sent",
    "partitions_reused",
    "partition_bytes_sent",
    "recalibrations",
    "quarantines",
    "drift_repairs",
    "deploys_cancelled",
)


def stats_to_proto(stats: CoordinatorStats) -> apps_pb2.CoordinatorStats:
    msg = apps_pb2.CoordinatorStats(**{name: getattr(stats, name) for name in _STAT_COUNTERS})
    msg.calibration.update(stats.calibration)
    return msg


def stats_from_proto(msg: apps_pb2.CoordinatorStats) -> CoordinatorStats:
    for name in _STAT_COUNTERS:
        validate.count(getattr(msg, name), f"stats.{name}", high=limits.MAX_COUNTER)
    for device_id, factor in msg.calibration.items():
        validate.identifier(device_id, "stats.calibration")
        validate.real(factor, f"stats.calibration[{validate.show(device_id)}]", high=limits.MAX_CALIBRATION_FACTOR)
    return CoordinatorStats(
        **{name: getattr(msg, name) for name in _STAT_COUNTERS}, calibration=dict(msg.calibration)
    )


def app_info_to_proto(info: AppInfo) -> common_pb2.App:
    return common_pb2.App(
        app_id=info.app_id,
        spec=app_spec_to_proto(info.spec),
        state=_APP_STATE_TO_PROTO[info.state],
        reason=info.reason,
        layers=info.layers,
        stats=common_pb2.AppStats(
            frames_delivered=info.stats.frames_delivered,
            frames_dropped=info.stats.frames_dropped,
            rate_hz=info.stats.rate_hz,
            latency_ms=info.stats.latency_ms,
            frames_admitted=info.stats.frames_admitted,
            frames_skipped=info.stats.frames_skipped,
        ),
        owner=info.owner,
        stats_hidden=info.stats_hidden,
        inputs=[spec_to_meta(s) for s in info.inputs],
    )


def app_info_from_proto(msg: common_pb2.App, *, path: str = "app") -> AppInfo:
    """An app as the coordinator reports it, validated; UNSPECIFIED state reads as WAITING."""
    validate.identifier(msg.app_id, f"{path}.app_id")
    validate.enum_value(msg.state, f"{path}.state", _APP_STATE_READ)
    validate.text(msg.reason, f"{path}.reason")
    validate.count(msg.layers, f"{path}.layers", high=limits.MAX_LAYER_INDEX + 1)
    _app_stats(msg.stats, f"{path}.stats")
    validate.name(msg.owner, f"{path}.owner")
    return AppInfo(
        app_id=msg.app_id,
        spec=app_spec_from_proto(msg.spec, msg.app_id, path=f"{path}.spec"),
        state=_APP_STATE_READ[msg.state],
        reason=msg.reason,
        layers=msg.layers,
        stats=AppStats(
            frames_delivered=msg.stats.frames_delivered,
            frames_dropped=msg.stats.frames_dropped,
            rate_hz=msg.stats.rate_hz,
            latency_ms=msg.stats.latency_ms,
            frames_admitted=msg.stats.frames_admitted,
            frames_skipped=msg.stats.frames_skipped,
        ),
        owner=msg.owner,
        stats_hidden=msg.stats_hidden,
        inputs=tuple(spec_from_meta(m) for m in msg.inputs),
    )


def _app_stats(msg: common_pb2.AppStats, path: str) -> None:
    validate.count(msg.frames_delivered, f"{path}.frames_delivered", high=limits.MAX_COUNTER)
    validate.count(msg.frames_dropped, f"{path}.frames_dropped", high=limits.MAX_COUNTER)
    validate.count(msg.frames_admitted, f"{path}.frames_admitted", high=limits.MAX_COUNTER)
    validate.count(msg.frames_skipped, f"{path}.frames_skipped", high=limits.MAX_COUNTER)
    validate.real(msg.rate_hz, f"{path}.rate_hz", high=limits.MAX_RATE_HZ)
    validate.real(msg.latency_ms, f"{path}.latency_ms", high=limits.MAX_SECONDS * 1e3)


def device_info_to_proto(info: DeviceInfo) -> common_pb2.Device:
    return common_pb2.Device(
        capabilities=device_to_proto(info.spec),
        state=_DEVICE_STATE_TO_PROTO[info.state],
        last_seen_unix=info.last_seen_unix,
        telemetry=telemetry_to_proto(info.telemetry),
        quarantine_reason=info.quarantine_reason,
        quarantined_until_unix=info.quarantined_until_unix,
    )


def device_info_from_proto(msg: common_pb2.Device, *, path: str = "device") -> DeviceInfo:
    """A device as the coordinator reports it, validated; UNSPECIFIED state reads as OFFLINE."""
    validate.enum_value(msg.state, f"{path}.state", _DEVICE_STATE_READ)
    validate.real(msg.last_seen_unix, f"{path}.last_seen_unix", high=limits.MAX_UNIX_TIME)
    validate.text(msg.quarantine_reason, f"{path}.quarantine_reason")
    validate.real(msg.quarantined_until_unix, f"{path}.quarantined_until_unix", high=limits.MAX_UNIX_TIME)
    return DeviceInfo(
        spec=device_from_proto(msg.capabilities, path=f"{path}.capabilities"),
        state=_DEVICE_STATE_READ[msg.state],
        last_seen_unix=msg.last_seen_unix,
        telemetry=telemetry_from_proto(msg.telemetry, path=f"{path}.telemetry"),
        quarantine_reason=msg.quarantine_reason,
        quarantined_until_unix=msg.quarantined_until_unix,
    )
