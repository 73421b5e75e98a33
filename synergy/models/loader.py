"""Turn a model reference into a validated ONNX model: a zoo name, a file path, or uploaded bytes.

Validation is the same on every path: the bytes must parse as an ONNX ``ModelProto`` and pass
``onnx.checker``. Files and uploaded bytes (models brought by the user, exported from PyTorch or
the vendor's tools) are then normalised (:func:`synergy.models.importer.normalize_model`:
batch-norm folded, dropout removed, ...); zoo models are built normal and are not. Whether the
model's operators can run on a board is the hardware analysis' business
(:mod:`synergy.hardware.analysis`), not the loader's.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from synergy.errors import ModelError, NotFound
from synergy.models.importer import normalize_model
from synergy.models.zoo import ZOO_NAMES, build_model

__all__ = ["load_model", "model_from_bytes"]


def model_from_bytes(data: bytes, name: str) -> onnx.ModelProto:
    """Parse, check and normalise an ONNX model; ``name`` (a file or upload name) goes into errors."""
    if not data:
        raise ModelError(f"model {name!r} is empty (0 bytes), not an ONNX file")
    try:
        model = onnx.load_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise ModelError(f"model {name!r} is not a valid ONNX file: cannot parse it ({exc})") from exc
    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        problem = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"model {name!r} is not a valid ONNX model: {problem}") from exc
    try:
        return normalize_model(model)
    except ModelError as exc:
        raise ModelError(f"model {name!r}: {exc}") from exc


def load_model(ref: str) -> tuple[onnx.ModelProto, str]:
    """(model, display name) for a zoo name or the path of an ``.onnx`` file.

    A zoo name wins over a file of the same name in the working directory. The display name of
    a file is its stem (``models/my_net.onnx`` -> ``my_net``).
    """
    if ref in ZOO_NAMES:
        return build_model(ref), ref
    path = Path(ref)
    if path.is_file():
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelError(f"cannot read model file {str(path)!r}: {exc.strerror or exc}") from exc
        return model_from_bytes(data, str(path)), path.stem
    if path.exists():
        raise ModelError(f"model path {str(path)!r} is not a file")
    raise NotFound(f"no zoo model and no file named {ref!r}; zoo models: {', '.join(ZOO_NAMES)}")
