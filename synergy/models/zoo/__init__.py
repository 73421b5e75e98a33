"""The model zoo: the eight ai8x-training architectures of HARDWARE.md §5 as ONNX, built in code.

Every model follows docs/models.md: float32 tensors carrying int8 values, one chain of nodes
per hardware layer ending in the chip's requantize (Mul 2^-shift, Add 0.5, Floor, Clip), and
deterministic integer weights whose bit widths are recorded in ``metadata_props``. The
weights are random, not trained: the zoo exists to size, time, split and run the networks,
not to classify anything.

``build_model`` is deterministic (the same bytes on every call and machine) and cached; it
returns a fresh copy so callers may modify what they get.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import onnx

from synergy.errors import NotFound
from synergy.models.zoo import efficientnet, kws, mobilenet, simplenets, unet

__all__ = ["ZOO_NAMES", "build_model", "describe"]


@dataclass(frozen=True)
class _Entry:
    build: Callable[[int, str], onnx.ModelProto]
    description: str


_ENTRIES: dict[str, _Entry] = {
    "convnet5": _Entry(
        simplenets.build_convnet5,
        "ConvNet5 (ai85net5): MNIST 1x28x28, 5 layers, 71,148 weights + 10 bias, 8-bit",
    ),
    "kws20_v3": _Entry(
        kws.build_kws20_v3,
        "KWS20 v3 (ai85kws20netv3): keyword spotting, Conv1d on 128x128, 9 layers, 169,472 weights, 8-bit",
    ),
    "simplenet": _Entry(
        simplenets.build_simplenet,
        "SimpleNet (ai85simplenet): CIFAR-100 3x32x32, 14 layers, 381,792 weights, "
        "mixed 2/4/8-bit = 165,228 B",
    ),
    "ressimplenet": _Entry(
        simplenets.build_ressimplenet,
        "ResSimpleNet (ai85ressimplenet): CIFAR-100 3x32x32, 17 layers with 3 residual adds, "
        "381,792 weights, 8-bit",
    ),
    "widenet": _Entry(
        simplenets.build_widenet,
        "WideNet (ai85simplenetwide2x): CIFAR-100 3x32x32, 14 layers, 725,128 weights, "
        "mixed 2/4/8-bit = 312,200 B",
    ),
    "unet": _Entry(
        unet.build_unet,
        "UNet large (ai85unetlarge): CamVid 3x352x352 folded to 48x88x88, 19 layers, "
        "278,176 weights + bias, 4 classes unfolded on the CPU",
    ),
    "efficientnetv2": _Entry(
        efficientnet.build_efficientnetv2,
        "EfficientNetV2 (ai87effnetv2): CIFAR-100 3x32x32, 33 layers, 753,952 weights + 5,236 bias, "
        "depthwise (MAX78002)",
    ),
    "mobilenetv2_075": _Entry(
        mobilenet.build_mobilenetv2_075,
        "MobileNetV2 0.75 (ai87netmobilenetv2cifar100_m0_75): CIFAR-100 3x32x32, 73 layers, "
        "1,341,960 weights, depthwise (MAX78002)",
    ),
    "efficientnetv2_nodw": _Entry(
        efficientnet.build_efficientnetv2_nodw,
        "EfficientNetV2 without depthwise convs (full 3x3 in->in + 1x1 project per block, head 512): "
        "29 layers, 682,080 weights + 2,148 bias, 8-bit, splits over 2 MAX78000s",
    ),
    "mobilenetv2_075_nodw": _Entry(
        mobilenet.build_mobilenetv2_075_nodw,
        "MobileNetV2 0.75 without depthwise convs (full 3x3 in->in + 1x1 project per block): 57 layers, "
        "1,058,680 weights, 8-bit with a 4-bit head = 943,480 B, splits over 4 MAX78000s",
    ),
}

ZOO_NAMES: tuple[str, ...] = tuple(_ENTRIES)


def _entry(name: str) -> _Entry:
    try:
        return _ENTRIES[name]
    except KeyError:
        raise NotFound(f"unknown zoo model {name!r}; known models: {', '.join(ZOO_NAMES)}") from None


def _seed(name: str) -> int:
    """A fixed per-model seed (crc32, unlike hash(), is the same in every process)."""
    return zlib.crc32(name.encode())


@functools.cache
def _cached_model(name: str) -> onnx.ModelProto:
    entry = _entry(name)
    return entry.build(_seed(name), entry.description)


def build_model(name: str) -> onnx.ModelProto:
    """The zoo model ``name`` (see :data:`ZOO_NAMES`); unknown names raise NotFound."""
    model = onnx.ModelProto()
    model.CopyFrom(_cached_model(name))
    return model


def describe(name: str) -> str:
    """A one-line description of the zoo model ``name``."""
    return _entry(name).description
