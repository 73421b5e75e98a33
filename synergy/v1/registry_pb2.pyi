from synergy.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RegisterRequest(_message.Message):
    __slots__ = ("device", "state")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    device: _common_pb2.DeviceCapabilities
    state: _common_pb2.AgentState
    def __init__(self, device: _Optional[_Union[_common_pb2.DeviceCapabilities, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.AgentState, _Mapping]] = ...) -> None: ...

class RegisterResponse(_message.Message):
    __slots__ = ("lease_id", "heartbeat_period_s", "lease_ttl_s")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_PERIOD_S_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_S_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    heartbeat_period_s: float
    lease_ttl_s: float
    def __init__(self, lease_id: _Optional[str] = ..., heartbeat_period_s: _Optional[float] = ..., lease_ttl_s: _Optional[float] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("device_id", "lease_id", "telemetry", "state")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    TELEMETRY_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    lease_id: str
    telemetry: _common_pb2.DeviceTelemetry
    state: _common_pb2.AgentState
    def __init__(self, device_id: _Optional[str] = ..., lease_id: _Optional[str] = ..., telemetry: _Optional[_Union[_common_pb2.DeviceTelemetry, _Mapping]] = ..., state: _Optional[_Union[_common_pb2.AgentState, _Mapping]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("lease_ttl_s",)
    LEASE_TTL_S_FIELD_NUMBER: _ClassVar[int]
    lease_ttl_s: float
    def __init__(self, lease_ttl_s: _Optional[float] = ...) -> None: ...

class ReportResultRequest(_message.Message):
    __slots__ = ("lease_id", "result")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    result: _common_pb2.Result
    def __init__(self, lease_id: _Optional[str] = ..., result: _Optional[_Union[_common_pb2.Result, _Mapping]] = ...) -> None: ...

class ReportResultResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReportResultsRequest(_message.Message):
    __slots__ = ("lease_id", "results")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    results: _containers.RepeatedCompositeFieldContainer[_common_pb2.Result]
    def __init__(self, lease_id: _Optional[str] = ..., results: _Optional[_Iterable[_Union[_common_pb2.Result, _Mapping]]] = ...) -> None: ...

class ReportResultsResponse(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[ResultOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[ResultOutcome, _Mapping]]] = ...) -> None: ...

class ResultOutcome(_message.Message):
    __slots__ = ("accepted", "code", "reason")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    code: str
    reason: str
    def __init__(self, accepted: _Optional[bool] = ..., code: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeregisterRequest(_message.Message):
    __slots__ = ("device_id", "lease_id")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    lease_id: str
    def __init__(self, device_id: _Optional[str] = ..., lease_id: _Optional[str] = ...) -> None: ...

class DeregisterResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
