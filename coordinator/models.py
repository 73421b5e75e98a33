"""The coordinator's model store: validate submitted models, analyse them, cut partitions.

Analysing a model and cutting ONNX sub-models is the expensive part of a deployment, and a
re-plan usually moves only a few cuts, so both are cached by the model's content hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import onnx

from synergy.errors import InvalidArgument, ResourceExhausted
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import BoardProfile
from synergy.hardware.checker import check_partition
from synergy.hardware.model import HardwareModel
from synergy.models.loader import load_model, model_from_bytes
from synergy.models.partition import Partition, split_model

__all__ = ["LoadedModel", "ModelStore", "StoredPartition", "check_runnable_somewhere"]


@dataclass(frozen=True)
class LoadedModel:
    name: str
    digest: str
    onnx_bytes: bytes
    hardware: HardwareModel


@dataclass(frozen=True)
class StoredPartition:
    """A cut sub-model and the sha256 of its ONNX bytes (how agents recognise what they hold)."""

    partition: Partition
    digest: str


class ModelStore:
    def __init__(self) -> None:
        self._models: dict[str, tuple[onnx.ModelProto, LoadedModel]] = {}
        self._partitions: dict[tuple[str, int, int], StoredPartition] = {}

    def load(self, *, zoo_name: str = "", onnx_bytes: bytes = b"", display_name: str = "") -> LoadedModel:
        """Parse, check and analyse a model given as a zoo name or as ONNX bytes."""
        if zoo_name and onnx_bytes:
            raise InvalidArgument("give the model as a zoo name or as ONNX bytes, not both")
        if zoo_name:
            proto, name = load_model(zoo_name)
        elif onnx_bytes:
            proto = model_from_bytes(onnx_bytes, display_name or "uploaded model")
            name = display_name or "uploaded model"
        else:
            raise InvalidArgument("no model given: name a zoo model or send the ONNX bytes")
        data = proto.SerializeToString()
        digest = hashlib.sha256(data).hexdigest()
        cached = self._models.get(digest)
        if cached is not None:
            return cached[1]
        hardware = analyze_model(proto, name)
        loaded = LoadedModel(name, digest, data, hardware)
        self._models[digest] = (proto, loaded)
        return loaded

    def partition(self, model: LoadedModel, first: int, last: int) -> StoredPartition:
        key = (model.digest, first, last)
        stored = self._partitions.get(key)
        if stored is None:
            cached = self._models.get(model.digest)
            # A model forgotten while a re-plan was still using it is parsed again.
            proto = cached[0] if cached is not None else onnx.load_from_string(model.onnx_bytes)
            part = split_model(proto, model.hardware, first, last)
            stored = StoredPartition(part, hashlib.sha256(part.onnx).hexdigest())
            self._partitions[key] = stored
        return stored

    def forget(self, digest: str) -> None:
        """Drop a model nobody uses any more (and its partitions)."""
        self._models.pop(digest, None)
        for key in [k for k in self._partitions if k[0] == digest]:
            del self._partitions[key]


def check_runnable_somewhere(model: HardwareModel, boards: Sequence[BoardProfile]) -> None:
    """Refuse a model one of whose layers no board of the space can hold, naming why."""
    if not boards:
        return
    for layer in model.layers:
        reports = [check_partition(model, layer.index, layer.index, board) for board in boards]
        if not any(r.fits for r in reports):
            reasons = "; ".join(f"{b.name}: {', '.join(r.reasons)}" for b, r in zip(boards, reports, strict=True))
            raise ResourceExhausted(
                f"model {model.name!r} layer {layer.index} ({layer.op}) fits no device of the space: {reasons}"
            )
