"""EfficientNetV2 for CIFAR-100 (ai87effnetv2), and a variant without depthwise convs.

Layers follow the vendor's ai87-cifar100-effnet2.yaml (33 layers). The stem max-pools to
16 x 16 and everything after stays at 16 x 16. An MBConv block is

- fused: 3x3 expand conv (ReLU) then 1x1 project (no activation); with expand ratio 1 only
  the 1x1 project remains (mb_conv1: 32 -> 16);
- unfused: 1x1 expand (ReLU), 3x3 depthwise (ReLU), 1x1 project.

Where in = out the block is residual: a passthrough layer copies the block input first, and a
standalone add layer sums it with the projection at the end. The head is a 1x1 conv to 1024,
a standalone 16x16 average-pool layer and a Linear 1024 -> 100 with 32-bit output.

Counts: 753,952 weights. ai8x-training writes ``bias=False`` but BatchNorm 'Affine' folds into
a bias for every conv (5,136 = sum of the conv output channels); with the Linear's 100 that is
the 5,236 bias values of HARDWARE.md §5.
"""

from __future__ import annotations

import onnx

from synergy.models.zoo.builder import Conv, Linear, ModelBuilder, Pool

__all__ = ["build_efficientnetv2", "build_efficientnetv2_nodw"]

CIFAR_INPUT = (1, 3, 32, 32)
CIFAR100_CLASSES = 100
EXPAND_RATIO = 4
HEAD_CHANNELS = 1024
FEATURE_SIZE = 16

#: (in, out, expand ratio, fused) of mb_conv1..mb_conv9.
MBCONV_BLOCKS: tuple[tuple[int, int, int, bool], ...] = (
    (32, 16, 1, True),
    (16, 32, EXPAND_RATIO, True),
    (32, 32, EXPAND_RATIO, True),
    (32, 48, EXPAND_RATIO, True),
    (48, 48, EXPAND_RATIO, True),
    (48, 96, EXPAND_RATIO, False),
    (96, 96, EXPAND_RATIO, False),
    (96, 128, EXPAND_RATIO, False),
    (128, 128, EXPAND_RATIO, False),
)


def _mbconv(builder: ModelBuilder, x: str, block: tuple[int, int, int, bool], depthwise: bool) -> str:
    in_channels, out_channels, ratio, fused = block
    hidden = in_channels * ratio
    residual = builder.passthrough(x) if in_channels == out_channels else None
    h = x
    if fused:
        if ratio != 1:
            h = builder.layer(h, Conv(hidden, 3, pad=1, bias=True))
    else:
        h = builder.layer(h, Conv(hidden, 1, pad=0, bias=True))
        # Without depthwise support the 3x3 stage becomes a full hidden -> hidden conv.
        h = builder.layer(h, Conv(hidden, 3, pad=1, depthwise=depthwise, bias=True))
    h = builder.layer(h, Conv(out_channels, 1, pad=0, bias=True), relu=False)
    return builder.add(residual, h) if residual is not None else h


def _build(name: str, seed: int, description: str, depthwise: bool) -> onnx.ModelProto:
    builder = ModelBuilder(name, CIFAR_INPUT, seed, description)
    x = builder.layer(builder.input, Conv(32, 3, pad=1, bias=True), pool=Pool("max"))  # 32 x 16 x 16
    for block in MBCONV_BLOCKS:
        x = _mbconv(builder, x, block, depthwise)
    x = builder.layer(x, Conv(HEAD_CHANNELS, 1, pad=0, bias=True))
    x = builder.layer(x, None, pool=Pool("avg", FEATURE_SIZE), relu=False)  # 1024 x 1 x 1
    logits = builder.layer(
        x, Linear(CIFAR100_CLASSES, bias=True), relu=False, wide=True, output_name="logits"
    )
    return builder.finish([logits])


def build_efficientnetv2(seed: int, description: str) -> onnx.ModelProto:
    """ai87effnetv2: 33 layers, 753,952 weights + 5,236 bias; needs depthwise (MAX78002)."""
    return _build("efficientnetv2", seed, description, depthwise=True)


def build_efficientnetv2_nodw(seed: int, description: str) -> onnx.ModelProto:
    """The same layers with full 3x3 convs in place of the four depthwise ones."""
    return _build("efficientnetv2_nodw", seed, description, depthwise=False)
