from synergy.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitAppRequest(_message.Message):
    __slots__ = ("spec", "zoo_name", "onnx")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    ZOO_NAME_FIELD_NUMBER: _ClassVar[int]
    ONNX_FIELD_NUMBER: _ClassVar[int]
    spec: _common_pb2.AppSpec
    zoo_name: str
    onnx: bytes
    def __init__(self, spec: _Optional[_Union[_common_pb2.AppSpec, _Mapping]] = ..., zoo_name: _Optional[str] = ..., onnx: _Optional[bytes] = ...) -> None: ...

class RemoveAppRequest(_message.Message):
    __slots__ = ("app_id",)
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    def __init__(self, app_id: _Optional[str] = ...) -> None: ...

class RemoveAppResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAppsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAppsResponse(_message.Message):
    __slots__ = ("apps",)
    APPS_FIELD_NUMBER: _ClassVar[int]
    apps: _containers.RepeatedCompositeFieldContainer[_common_pb2.App]
    def __init__(self, apps: _Optional[_Iterable[_Union[_common_pb2.App, _Mapping]]] = ...) -> None: ...

class GetPlanRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[_common_pb2.Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[_common_pb2.Device, _Mapping]]] = ...) -> None: ...

class WatchResultsRequest(_message.Message):
    __slots__ = ("app_ids",)
    APP_IDS_FIELD_NUMBER: _ClassVar[int]
    app_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, app_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class InferRequest(_message.Message):
    __slots__ = ("app_id", "inputs", "timeout_s")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_S_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    inputs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Tensor]
    timeout_s: float
    def __init__(self, app_id: _Optional[str] = ..., inputs: _Optional[_Iterable[_Union[_common_pb2.Tensor, _Mapping]]] = ..., timeout_s: _Optional[float] = ...) -> None: ...

class GetStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ForgetDeviceRequest(_message.Message):
    __slots__ = ("device_id",)
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    def __init__(self, device_id: _Optional[str] = ...) -> None: ...

class ForgetDeviceResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CoordinatorStats(_message.Message):
    __slots__ = ("epoch", "activation_bytes_relayed", "result_bytes_received", "input_bytes_forwarded", "results_received", "replans", "deploy_failures", "partitions_sent", "partitions_reused", "partition_bytes_sent", "recalibrations", "calibration", "quarantines", "drift_repairs", "deploys_cancelled")
    class CalibrationEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_BYTES_RELAYED_FIELD_NUMBER: _ClassVar[int]
    RESULT_BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    INPUT_BYTES_FORWARDED_FIELD_NUMBER: _ClassVar[int]
    RESULTS_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    REPLANS_FIELD_NUMBER: _ClassVar[int]
    DEPLOY_FAILURES_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_SENT_FIELD_NUMBER: _ClassVar[int]
    PARTITIONS_REUSED_FIELD_NUMBER: _ClassVar[int]
    PARTITION_BYTES_SENT_FIELD_NUMBER: _ClassVar[int]
    RECALIBRATIONS_FIELD_NUMBER: _ClassVar[int]
    CALIBRATION_FIELD_NUMBER: _ClassVar[int]
    QUARANTINES_FIELD_NUMBER: _ClassVar[int]
    DRIFT_REPAIRS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYS_CANCELLED_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    activation_bytes_relayed: int
    result_bytes_received: int
    input_bytes_forwarded: int
    results_received: int
    replans: int
    deploy_failures: int
    partitions_sent: int
    partitions_reused: int
    partition_bytes_sent: int
    recalibrations: int
    calibration: _containers.ScalarMap[str, float]
    quarantines: int
    drift_repairs: int
    deploys_cancelled: int
    def __init__(self, epoch: _Optional[int] = ..., activation_bytes_relayed: _Optional[int] = ..., result_bytes_received: _Optional[int] = ..., input_bytes_forwarded: _Optional[int] = ..., results_received: _Optional[int] = ..., replans: _Optional[int] = ..., deploy_failures: _Optional[int] = ..., partitions_sent: _Optional[int] = ..., partitions_reused: _Optional[int] = ..., partition_bytes_sent: _Optional[int] = ..., recalibrations: _Optional[int] = ..., calibration: _Optional[_Mapping[str, float]] = ..., quarantines: _Optional[int] = ..., drift_repairs: _Optional[int] = ..., deploys_cancelled: _Optional[int] = ...) -> None: ...
