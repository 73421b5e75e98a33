from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeviceState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DEVICE_STATE_UNSPECIFIED: _ClassVar[DeviceState]
    DEVICE_STATE_ONLINE: _ClassVar[DeviceState]
    DEVICE_STATE_OFFLINE: _ClassVar[DeviceState]

class AppState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APP_STATE_UNSPECIFIED: _ClassVar[AppState]
    APP_STATE_WAITING: _ClassVar[AppState]
    APP_STATE_RUNNING: _ClassVar[AppState]
    APP_STATE_STALLED: _ClassVar[AppState]
DEVICE_STATE_UNSPECIFIED: DeviceState
DEVICE_STATE_ONLINE: DeviceState
DEVICE_STATE_OFFLINE: DeviceState
APP_STATE_UNSPECIFIED: AppState
APP_STATE_WAITING: AppState
APP_STATE_RUNNING: AppState
APP_STATE_STALLED: AppState

class Board(_message.Message):
    __slots__ = ("name", "accelerator", "weight_words_per_processor", "bias_bytes_per_quadrant", "data_instances", "data_instance_bytes", "max_layers", "max_channels", "max_tensor_dim", "max_pixels_hwc", "max_pixels_chw", "max_streaming_layers", "max_bias_channels", "cnn_clock_hz", "cpu_clock_hz", "supports_depthwise", "supports_dilation", "out_offset_pingpong", "cpu_copy_bytes_per_s", "weight_load_bytes_per_s", "cnn_active_power_w", "cpu_active_power_w", "idle_power_w", "notes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_WORDS_PER_PROCESSOR_FIELD_NUMBER: _ClassVar[int]
    BIAS_BYTES_PER_QUADRANT_FIELD_NUMBER: _ClassVar[int]
    DATA_INSTANCES_FIELD_NUMBER: _ClassVar[int]
    DATA_INSTANCE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MAX_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    MAX_TENSOR_DIM_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_HWC_FIELD_NUMBER: _ClassVar[int]
    MAX_PIXELS_CHW_FIELD_NUMBER: _ClassVar[int]
    MAX_STREAMING_LAYERS_FIELD_NUMBER: _ClassVar[int]
    MAX_BIAS_CHANNELS_FIELD_NUMBER: _ClassVar[int]
    CNN_CLOCK_HZ_FIELD_NUMBER: _ClassVar[int]
    CPU_CLOCK_HZ_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_DEPTHWISE_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_DILATION_FIELD_NUMBER: _ClassVar[int]
    OUT_OFFSET_PINGPONG_FIELD_NUMBER: _ClassVar[int]
    CPU_COPY_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_LOAD_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    CNN_ACTIVE_POWER_W_FIELD_NUMBER: _ClassVar[int]
    CPU_ACTIVE_POWER_W_FIELD_NUMBER: _ClassVar[int]
    IDLE_POWER_W_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    accelerator: str
    weight_words_per_processor: _containers.RepeatedScalarFieldContainer[int]
    bias_bytes_per_quadrant: int
    data_instances: int
    data_instance_bytes: int
    max_layers: int
    max_channels: int
    max_tensor_dim: int
    max_pixels_hwc: int
    max_pixels_chw: int
    max_streaming_layers: int
    max_bias_channels: int
    cnn_clock_hz: float
    cpu_clock_hz: float
    supports_depthwise: bool
    supports_dilation: bool
    out_offset_pingpong: int
    cpu_copy_bytes_per_s: float
    weight_load_bytes_per_s: float
    cnn_active_power_w: float
    cpu_active_power_w: float
    idle_power_w: float
    notes: str
    def __init__(self, name: _Optional[str] = ..., accelerator: _Optional[str] = ..., weight_words_per_processor: _Optional[_Iterable[int]] = ..., bias_bytes_per_quadrant: _Optional[int] = ..., data_instances: _Optional[int] = ..., data_instance_bytes: _Optional[int] = ..., max_layers: _Optional[int] = ..., max_channels: _Optional[int] = ..., max_tensor_dim: _Optional[int] = ..., max_pixels_hwc: _Optional[int] = ..., max_pixels_chw: _Optional[int] = ..., max_streaming_layers: _Optional[int] = ..., max_bias_channels: _Optional[int] = ..., cnn_clock_hz: _Optional[float] = ..., cpu_clock_hz: _Optional[float] = ..., supports_depthwise: _Optional[bool] = ..., supports_dilation: _Optional[bool] = ..., out_offset_pingpong: _Optional[int] = ..., cpu_copy_bytes_per_s: _Optional[float] = ..., weight_load_bytes_per_s: _Optional[float] = ..., cnn_active_power_w: _Optional[float] = ..., cpu_active_power_w: _Optional[float] = ..., idle_power_w: _Optional[float] = ..., notes: _Optional[str] = ...) -> None: ...

class Sensor(_message.Message):
    __slots__ = ("type", "rate_hz", "source")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    type: str
    rate_hz: float
    source: str
    def __init__(self, type: _Optional[str] = ..., rate_hz: _Optional[float] = ..., source: _Optional[str] = ...) -> None: ...

class Output(_message.Message):
    __slots__ = ("type",)
    TYPE_FIELD_NUMBER: _ClassVar[int]
    type: str
    def __init__(self, type: _Optional[str] = ...) -> None: ...

class Link(_message.Message):
    __slots__ = ("name", "bandwidth_bytes_per_s", "latency_s", "per_message_overhead_bytes")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BANDWIDTH_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    PER_MESSAGE_OVERHEAD_BYTES_FIELD_NUMBER: _ClassVar[int]
    name: str
    bandwidth_bytes_per_s: float
    latency_s: float
    per_message_overhead_bytes: int
    def __init__(self, name: _Optional[str] = ..., bandwidth_bytes_per_s: _Optional[float] = ..., latency_s: _Optional[float] = ..., per_message_overhead_bytes: _Optional[int] = ...) -> None: ...

class DeviceCapabilities(_message.Message):
    __slots__ = ("device_id", "kind", "address", "board", "sensors", "outputs", "link", "medium", "central", "peer_links", "board_port")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    BOARD_FIELD_NUMBER: _ClassVar[int]
    SENSORS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    MEDIUM_FIELD_NUMBER: _ClassVar[int]
    CENTRAL_FIELD_NUMBER: _ClassVar[int]
    PEER_LINKS_FIELD_NUMBER: _ClassVar[int]
    BOARD_PORT_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    kind: str
    address: str
    board: Board
    sensors: _containers.RepeatedCompositeFieldContainer[Sensor]
    outputs: _containers.RepeatedCompositeFieldContainer[Output]
    link: Link
    medium: str
    central: bool
    peer_links: _containers.RepeatedCompositeFieldContainer[PeerLink]
    board_port: BoardPort
    def __init__(self, device_id: _Optional[str] = ..., kind: _Optional[str] = ..., address: _Optional[str] = ..., board: _Optional[_Union[Board, _Mapping]] = ..., sensors: _Optional[_Iterable[_Union[Sensor, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[Output, _Mapping]]] = ..., link: _Optional[_Union[Link, _Mapping]] = ..., medium: _Optional[str] = ..., central: _Optional[bool] = ..., peer_links: _Optional[_Iterable[_Union[PeerLink, _Mapping]]] = ..., board_port: _Optional[_Union[BoardPort, _Mapping]] = ...) -> None: ...

class BoardPort(_message.Message):
    __slots__ = ("transport", "path", "baud", "firmware", "protocol_version", "measured_wire_bytes_per_s", "measured_payload_bytes_per_s")
    TRANSPORT_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    BAUD_FIELD_NUMBER: _ClassVar[int]
    FIRMWARE_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    MEASURED_WIRE_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    MEASURED_PAYLOAD_BYTES_PER_S_FIELD_NUMBER: _ClassVar[int]
    transport: str
    path: str
    baud: int
    firmware: str
    protocol_version: int
    measured_wire_bytes_per_s: float
    measured_payload_bytes_per_s: float
    def __init__(self, transport: _Optional[str] = ..., path: _Optional[str] = ..., baud: _Optional[int] = ..., firmware: _Optional[str] = ..., protocol_version: _Optional[int] = ..., measured_wire_bytes_per_s: _Optional[float] = ..., measured_payload_bytes_per_s: _Optional[float] = ...) -> None: ...

class PeerLink(_message.Message):
    __slots__ = ("peer_device_id", "link")
    PEER_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    peer_device_id: str
    link: Link
    def __init__(self, peer_device_id: _Optional[str] = ..., link: _Optional[_Union[Link, _Mapping]] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("capabilities", "state", "last_seen_unix", "telemetry", "quarantine_reason", "quarantined_until_unix")
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    LAST_SEEN_UNIX_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    QUARANTINE_REASON_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_UNTIL_UNIX_FIELD_NUMBER: _ClassVar[int]
    capabilities: DeviceCapabilities
    state: DeviceState
    last_seen_unix: float
    telemetry: DeviceTelemetry
    quarantine_reason: str
    quarantined_until_unix: float
    def __init__(self, capabilities: _Optional[_Union[DeviceCapabilities, _Mapping]] = ..., state: _Optional[_Union[DeviceState, str]] = ..., last_seen_unix: _Optional[float] = ..., telemetry: _Optional[_Union[DeviceTelemetry, _Mapping]] = ..., quarantine_reason: _Optional[str] = ..., quarantined_until_unix: _Optional[float] = ...) -> None: ...

class HeldSegment(_message.Message):
    __slots__ = ("app_id", "epoch", "segment", "digest")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    epoch: int
    segment: int
    digest: str
    def __init__(self, app_id: _Optional[str] = ..., epoch: _Optional[int] = ..., segment: _Optional[int] = ..., digest: _Optional[str] = ...) -> None: ...

class AgentState(_message.Message):
    __slots__ = ("active_epoch", "loaded_epochs", "segments")
    ACTIVE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOADED_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    active_epoch: int
    loaded_epochs: _containers.RepeatedScalarFieldContainer[int]
    segments: _containers.RepeatedCompositeFieldContainer[HeldSegment]
    def __init__(self, active_epoch: _Optional[int] = ..., loaded_epochs: _Optional[_Iterable[int]] = ..., segments: _Optional[_Iterable[_Union[HeldSegment, _Mapping]]] = ...) -> None: ...

class DeviceTelemetry(_message.Message):
    __slots__ = ("frames_in", "frames_out", "bytes_to_peers", "bytes_from_peers", "bytes_to_coordinator", "frames_dropped", "accelerator_busy_s", "stage_timings", "sources", "frames_replayed")
    FRAMES_IN_FIELD_NUMBER: _ClassVar[int]
    FRAMES_OUT_FIELD_NUMBER: _ClassVar[int]
    BYTES_TO_PEERS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FROM_PEERS_FIELD_NUMBER: _ClassVar[int]
    BYTES_TO_COORDINATOR_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    ACCELERATOR_BUSY_S_FIELD_NUMBER: _ClassVar[int]
    STAGE_TIMINGS_FIELD_NUMBER: _ClassVar[int]
    SOURCES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_REPLAYED_FIELD_NUMBER: _ClassVar[int]
    frames_in: int
    frames_out: int
    bytes_to_peers: int
    bytes_from_peers: int
    bytes_to_coordinator: int
    frames_dropped: int
    accelerator_busy_s: float
    stage_timings: _containers.RepeatedCompositeFieldContainer[StageTiming]
    sources: _containers.RepeatedCompositeFieldContainer[SourceCount]
    frames_replayed: int
    def __init__(self, frames_in: _Optional[int] = ..., frames_out: _Optional[int] = ..., bytes_to_peers: _Optional[int] = ..., bytes_from_peers: _Optional[int] = ..., bytes_to_coordinator: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., accelerator_busy_s: _Optional[float] = ..., stage_timings: _Optional[_Iterable[_Union[StageTiming, _Mapping]]] = ..., sources: _Optional[_Iterable[_Union[SourceCount, _Mapping]]] = ..., frames_replayed: _Optional[int] = ...) -> None: ...

class SourceCount(_message.Message):
    __slots__ = ("app_id", "epoch", "admitted", "skipped")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ADMITTED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    epoch: int
    admitted: int
    skipped: int
    def __init__(self, app_id: _Optional[str] = ..., epoch: _Optional[int] = ..., admitted: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class StageTiming(_message.Message):
    __slots__ = ("app_id", "epoch", "predicted_s", "measured_s", "samples")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_S_FIELD_NUMBER: _ClassVar[int]
    MEASURED_S_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    epoch: int
    predicted_s: float
    measured_s: float
    samples: int
    def __init__(self, app_id: _Optional[str] = ..., epoch: _Optional[int] = ..., predicted_s: _Optional[float] = ..., measured_s: _Optional[float] = ..., samples: _Optional[int] = ...) -> None: ...

class TensorMeta(_message.Message):
    __slots__ = ("name", "dtype", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class Tensor(_message.Message):
    __slots__ = ("meta", "data")
    META_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    meta: TensorMeta
    data: bytes
    def __init__(self, meta: _Optional[_Union[TensorMeta, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class AppSpec(_message.Message):
    __slots__ = ("name", "model", "source_type", "target_type", "source_device", "target_device", "max_rate_hz", "min_rate_hz", "weight", "every_frame")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    TARGET_TYPE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    TARGET_DEVICE_FIELD_NUMBER: _ClassVar[int]
    MAX_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    MIN_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    EVERY_FRAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    source_type: str
    target_type: str
    source_device: str
    target_device: str
    max_rate_hz: float
    min_rate_hz: float
    weight: float
    every_frame: bool
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., source_type: _Optional[str] = ..., target_type: _Optional[str] = ..., source_device: _Optional[str] = ..., target_device: _Optional[str] = ..., max_rate_hz: _Optional[float] = ..., min_rate_hz: _Optional[float] = ..., weight: _Optional[float] = ..., every_frame: _Optional[bool] = ...) -> None: ...

class AppStats(_message.Message):
    __slots__ = ("frames_delivered", "frames_dropped", "rate_hz", "latency_ms", "frames_admitted", "frames_skipped")
    FRAMES_DELIVERED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    FRAMES_ADMITTED_FIELD_NUMBER: _ClassVar[int]
    FRAMES_SKIPPED_FIELD_NUMBER: _ClassVar[int]
    frames_delivered: int
    frames_dropped: int
    rate_hz: float
    latency_ms: float
    frames_admitted: int
    frames_skipped: int
    def __init__(self, frames_delivered: _Optional[int] = ..., frames_dropped: _Optional[int] = ..., rate_hz: _Optional[float] = ..., latency_ms: _Optional[float] = ..., frames_admitted: _Optional[int] = ..., frames_skipped: _Optional[int] = ...) -> None: ...

class App(_message.Message):
    __slots__ = ("app_id", "spec", "state", "reason", "stats", "layers", "owner", "stats_hidden", "inputs")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SPEC_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    STATS_FIELD_NUMBER: _ClassVar[int]
    LAYERS_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    STATS_HIDDEN_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    spec: AppSpec
    state: AppState
    reason: str
    stats: AppStats
    layers: int
    owner: str
    stats_hidden: bool
    inputs: _containers.RepeatedCompositeFieldContainer[TensorMeta]
    def __init__(self, app_id: _Optional[str] = ..., spec: _Optional[_Union[AppSpec, _Mapping]] = ..., state: _Optional[_Union[AppState, str]] = ..., reason: _Optional[str] = ..., stats: _Optional[_Union[AppStats, _Mapping]] = ..., layers: _Optional[int] = ..., owner: _Optional[str] = ..., stats_hidden: _Optional[bool] = ..., inputs: _Optional[_Iterable[_Union[TensorMeta, _Mapping]]] = ...) -> None: ...

class Stage(_message.Message):
    __slots__ = ("device_id", "first_layer", "last_layer")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    FIRST_LAYER_FIELD_NUMBER: _ClassVar[int]
    LAST_LAYER_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    first_layer: int
    last_layer: int
    def __init__(self, device_id: _Optional[str] = ..., first_layer: _Optional[int] = ..., last_layer: _Optional[int] = ...) -> None: ...

class ExecutionPlan(_message.Message):
    __slots__ = ("app_id", "source_device", "stages", "target_device", "predicted_rate_hz", "predicted_latency_s", "parallel_devices")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DEVICE_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    TARGET_DEVICE_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    PREDICTED_LATENCY_S_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_DEVICES_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    source_device: str
    stages: _containers.RepeatedCompositeFieldContainer[Stage]
    target_device: str
    predicted_rate_hz: float
    predicted_latency_s: float
    parallel_devices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, app_id: _Optional[str] = ..., source_device: _Optional[str] = ..., stages: _Optional[_Iterable[_Union[Stage, _Mapping]]] = ..., target_device: _Optional[str] = ..., predicted_rate_hz: _Optional[float] = ..., predicted_latency_s: _Optional[float] = ..., parallel_devices: _Optional[_Iterable[str]] = ...) -> None: ...

class JointPlan(_message.Message):
    __slots__ = ("epoch", "plans", "system_throughput", "bottleneck", "method", "unplaced", "quarantined")
    class UnplacedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class QuarantinedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    PLANS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    BOTTLENECK_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    UNPLACED_FIELD_NUMBER: _ClassVar[int]
    QUARANTINED_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    plans: _containers.RepeatedCompositeFieldContainer[ExecutionPlan]
    system_throughput: float
    bottleneck: str
    method: str
    unplaced: _containers.ScalarMap[str, str]
    quarantined: _containers.ScalarMap[str, str]
    def __init__(self, epoch: _Optional[int] = ..., plans: _Optional[_Iterable[_Union[ExecutionPlan, _Mapping]]] = ..., system_throughput: _Optional[float] = ..., bottleneck: _Optional[str] = ..., method: _Optional[str] = ..., unplaced: _Optional[_Mapping[str, str]] = ..., quarantined: _Optional[_Mapping[str, str]] = ...) -> None: ...

class Result(_message.Message):
    __slots__ = ("app_id", "epoch", "seq", "capture_time_unix", "done_time_unix", "tensors", "device_id", "output_type", "dropped", "drop_reason", "summary")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    DONE_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FIELD_NUMBER: _ClassVar[int]
    DROP_REASON_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    epoch: int
    seq: int
    capture_time_unix: float
    done_time_unix: float
    tensors: _containers.RepeatedCompositeFieldContainer[Tensor]
    device_id: str
    output_type: str
    dropped: bool
    drop_reason: str
    summary: str
    def __init__(self, app_id: _Optional[str] = ..., epoch: _Optional[int] = ..., seq: _Optional[int] = ..., capture_time_unix: _Optional[float] = ..., done_time_unix: _Optional[float] = ..., tensors: _Optional[_Iterable[_Union[Tensor, _Mapping]]] = ..., device_id: _Optional[str] = ..., output_type: _Optional[str] = ..., dropped: _Optional[bool] = ..., drop_reason: _Optional[str] = ..., summary: _Optional[str] = ...) -> None: ...
