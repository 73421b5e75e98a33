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

No-depthwise variant (``efficientnetv2_nodw``), for MAX78000s, which have no depthwise conv
(docs/models.md, "No-depthwise variants"). A full 3x3 on the *expanded* channels (the literal
reading) grows with their square: 6.1 M weights, the 512 -> 512 one alone 2.36 M, so no split
over two MAX78000s (442,368 B of weights each) exists. Instead an unfused block drops its
expansion: one full 3x3 conv ``in -> in`` (ReLU) replaces the 1x1 expand and the depthwise 3x3,
then the unchanged 1x1 project ``in -> out`` (no activation), residual add where in = out. The
block keeps its spatial mixing and about its size (``9 in^2 + in * out`` weights against
``4 in^2 + 36 in + 4 in * out``: 92,160 against 77,184 for 96 -> 96). Stem and fused blocks are
unchanged. The head is the one of the paper authors' MAX78000 model (``ai85effnetv2_custom`` in
github.com/TaesikGong/ai8x-training): 1x1 conv 128 -> 512 and Linear 512 -> 100, since a
MAX78000 layer has bias for at most 512 output channels (HARDWARE.md §1) and the 1024-channel
head has a (folded BatchNorm) bias. All 8-bit: 29 layers, 682,080 weights + 2,148 bias; splits
over two MAX78000s (tests/unit/test_zoo.py).
"""

from __future__ import annotations

import onnx

from synergy.models.zoo.builder import Conv, Linear, ModelBuilder, Pool

__all__ = ["build_efficientnetv2", "build_efficientnetv2_nodw"]

CIFAR_INPUT = (1, 3, 32, 32)
CIFAR100_CLASSES = 100
EXPAND_RATIO = 4
HEAD_CHANNELS = 1024
#: Head of the no-depthwise variant: a MAX78000 layer has bias for at most 512 outputs.
NODW_HEAD_CHANNELS = 512
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
    elif depthwise:
        h = builder.layer(h, Conv(hidden, 1, pad=0, bias=True))
        h = builder.layer(h, Conv(hidden, 3, pad=1, depthwise=True, bias=True))
    else:
        # No depthwise (MAX78000): one full 3x3 in -> in, no expansion, replaces the 1x1 expand
        # and the 3x3 depthwise; the full 3x3 on the expanded channels would be 4 * 4 = 16 times
        # the weights (module docstring, docs/models.md "No-depthwise variants").
        h = builder.layer(h, Conv(in_channels, 3, pad=1, bias=True))
    h = builder.layer(h, Conv(out_channels, 1, pad=0, bias=True), relu=False)
    return builder.add(residual, h) if residual is not None else h


def _build(name: str, seed: int, description: str, depthwise: bool) -> onnx.ModelProto:
    builder = ModelBuilder(name, CIFAR_INPUT, seed, description)
    x = builder.layer(builder.input, Conv(32, 3, pad=1, bias=True), pool=Pool("max"))  # 32 x 16 x 16
    for block in MBCONV_BLOCKS:
        x = _mbconv(builder, x, block, depthwise)
    head = HEAD_CHANNELS if depthwise else NODW_HEAD_CHANNELS
    x = builder.layer(x, Conv(head, 1, pad=0, bias=True))
    x = builder.layer(x, None, pool=Pool("avg", FEATURE_SIZE), relu=False)  # head x 1 x 1
    logits = builder.layer(
        x, Linear(CIFAR100_CLASSES, bias=True), relu=False, wide=True, output_name="logits"
    )
    return builder.finish([logits])


def build_efficientnetv2(seed: int, description: str) -> onnx.ModelProto:
    """ai87effnetv2: 33 layers, 753,952 weights + 5,236 bias; needs depthwise (MAX78002)."""
    return _build("efficientnetv2", seed, description, depthwise=True)


def build_efficientnetv2_nodw(seed: int, description: str) -> onnx.ModelProto:
    """Without depthwise convs (module docstring): 29 layers, 682,080 weights + 2,148 bias,
    8-bit; splits over two MAX78000s."""
    return _build("efficientnetv2_nodw", seed, description, depthwise=False)
