from synergy.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FrameOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FRAME_OUTCOME_UNSPECIFIED: _ClassVar[FrameOutcome]
    FRAME_OUTCOME_ACCEPTED: _ClassVar[FrameOutcome]
    FRAME_OUTCOME_REJECTED: _ClassVar[FrameOutcome]
    FRAME_OUTCOME_RETURNED: _ClassVar[FrameOutcome]
FRAME_OUTCOME_UNSPECIFIED: FrameOutcome
FRAME_OUTCOME_ACCEPTED: FrameOutcome
FRAME_OUTCOME_REJECTED: FrameOutcome
FRAME_OUTCOME_RETURNED: FrameOutcome

class Peer(_message.Message):
    __slots__ = ("device_id", "address", "link")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LINK_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    address: str
    link: _common_pb2.Link
    def __init__(self, device_id: _Optional[str] = ..., address: _Optional[str] = ..., link: _Optional[_Union[_common_pb2.Link, _Mapping]] = ...) -> None: ...

class Partition(_message.Message):
    __slots__ = ("first_layer", "last_layer", "onnx", "inputs", "outputs", "digest")
    FIRST_LAYER_FIELD_NUMBER: _ClassVar[int]
    LAST_LAYER_FIELD_NUMBER: _ClassVar[int]
    ONNX_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    first_layer: int
    last_layer: int
    onnx: bytes
    inputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.TensorMeta]
    outputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.TensorMeta]
    digest: str
    def __init__(self, first_layer: _Optional[int] = ..., last_layer: _Optional[int] = ..., onnx: _Optional[bytes] = ..., inputs: _Optional[_Iterable[_Union[_common_pb2.TensorMeta, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[_common_pb2.TensorMeta, _Mapping]]] = ..., digest: _Optional[str] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("app_id", "segment", "sensor_type", "rate_hz", "inputs", "partition", "output_type", "next", "model", "upstream_device_id", "every_frame")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SENSOR_TYPE_FIELD_NUMBER: _ClassVar[int]
    RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    PARTITION_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TYPE_FIELD_NUMBER: _ClassVar[int]
    NEXT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    UPSTREAM_DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    EVERY_FRAME_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    segment: int
    sensor_type: str
    rate_hz: float
    inputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.TensorMeta]
    partition: Partition
    output_type: str
    next: Peer
    model: str
    upstream_device_id: str
    every_frame: bool
    def __init__(self, app_id: _Optional[str] = ..., segment: _Optional[int] = ..., sensor_type: _Optional[str] = ..., rate_hz: _Optional[float] = ..., inputs: _Optional[_Iterable[_Union[_common_pb2.TensorMeta, _Mapping]]] = ..., partition: _Optional[_Union[Partition, _Mapping]] = ..., output_type: _Optional[str] = ..., next: _Optional[_Union[Peer, _Mapping]] = ..., model: _Optional[str] = ..., upstream_device_id: _Optional[str] = ..., every_frame: _Optional[bool] = ...) -> None: ...

class DeployRequest(_message.Message):
    __slots__ = ("epoch", "assignments")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, epoch: _Optional[int] = ..., assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class DeployResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ActivateRequest(_message.Message):
    __slots__ = ("epoch",)
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    def __init__(self, epoch: _Optional[int] = ...) -> None: ...

class ActivateResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UndeployRequest(_message.Message):
    __slots__ = ("epoch",)
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    def __init__(self, epoch: _Optional[int] = ...) -> None: ...

class UndeployResponse(_message.Message):
    __slots__ = ("frames_drained",)
    FRAMES_DRAINED_FIELD_NUMBER: _ClassVar[int]
    frames_drained: int
    def __init__(self, frames_drained: _Optional[int] = ...) -> None: ...

class FrameHeader(_message.Message):
    __slots__ = ("app_id", "epoch", "segment", "seq", "capture_time_unix", "tensors", "total_bytes", "sender")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_UNIX_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    SENDER_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    epoch: int
    segment: int
    seq: int
    capture_time_unix: float
    tensors: _containers.RepeatedCompositeFieldContainer[_common_pb2.TensorMeta]
    total_bytes: int
    sender: str
    def __init__(self, app_id: _Optional[str] = ..., epoch: _Optional[int] = ..., segment: _Optional[int] = ..., seq: _Optional[int] = ..., capture_time_unix: _Optional[float] = ..., tensors: _Optional[_Iterable[_Union[_common_pb2.TensorMeta, _Mapping]]] = ..., total_bytes: _Optional[int] = ..., sender: _Optional[str] = ...) -> None: ...

class FrameChunk(_message.Message):
    __slots__ = ("header", "data")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    header: FrameHeader
    data: bytes
    def __init__(self, header: _Optional[_Union[FrameHeader, _Mapping]] = ..., data: _Optional[bytes] = ...) -> None: ...

class FrameAck(_message.Message):
    __slots__ = ("seq", "outcome", "reason")
    SEQ_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    seq: int
    outcome: FrameOutcome
    reason: str
    def __init__(self, seq: _Optional[int] = ..., outcome: _Optional[_Union[FrameOutcome, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class InjectRequest(_message.Message):
    __slots__ = ("app_id", "seq", "inputs")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    seq: int
    inputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tensor]
    def __init__(self, app_id: _Optional[str] = ..., seq: _Optional[int] = ..., inputs: _Optional[_Iterable[_Union[_common_pb2.Tensor, _Mapping]]] = ...) -> None: ...

class InjectResponse(_message.Message):
    __slots__ = ("epoch",)
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    def __init__(self, epoch: _Optional[int] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AgentStatus(_message.Message):
    __slots__ = ("device_id", "active_epoch", "loaded_epochs", "telemetry", "weight_bytes_loaded", "state")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    ACTIVE_EPOCH_FIELD_NUMBER: _ClassVar[int]
    LOADED_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BYTES_LOADED_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    active_epoch: int
    loaded_epochs: _containers.RepeatedScalarFieldContainer[int]
    telemetry: _common_pb2.DeviceTelemetry
    weight_bytes_loaded: int
    state: _common_pb2.AgentState
    def __init__(self, device_id: _Optional[str] = ..., active_epoch: _Optional[int] = ..., loaded_epochs: _Optional[_Iterable[int]] = ..., telemetry: _Optional[_Union[_common_pb2.DeviceTelemetry, _Mapping]] = ..., weight_bytes_loaded: _Optional[int] = ..., state: _Optional[_Union[_common_pb2.AgentState, _Mapping]] = ...) -> None: ...
