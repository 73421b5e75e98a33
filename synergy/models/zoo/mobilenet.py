"""MobileNetV2 0.75 for CIFAR-100 (ai87netmobilenetv2cifar100_m0_75), and a variant without
depthwise convs.

Widths are ai8x-training's hand-picked 0.75 settings, not a uniform ``_make_divisible(8)``
scaling of the width-1.0 table: stem 24; stages (repeats, out, stride, expansion)
(1,12,1,1), (2,20,2,6), (3,24,2,6), (4,48,2,6), (3,72,1,6), (3,120,1,6), (1,240,1,6); head 960.
Only these reproduce the 1,341,960 weights of HARDWARE.md §5 (the make-divisible widths
24/16/24/24/48/96/96/192 give a different network). No conv has bias (``bias=False``,
``depthwise_bias=False``).

A bottleneck is 1x1 expand (ReLU; absent when the expansion is 1), 3x3 depthwise (ReLU; a
stride of 2 becomes a 2x2 max-pool fused before it), 1x1 project (no activation). Where the
block keeps its shape, a passthrough layer copies the block input after the projection and a
standalone add layer sums both, as in the vendor's ai87-cifar100-mobilenet-v2-0.75.yaml
(73 layers). The classifier is a 1x1 conv 960 -> 100 with a fused 4x4 average pool and 32-bit
output.

No-depthwise variant (``mobilenetv2_075_nodw``), for MAX78000s, which have no depthwise conv
(docs/models.md, "No-depthwise variants"). A full 3x3 on the *expanded* channels (the literal
reading) grows with their square: 24.2 M weights, one 720 -> 720 alone 4.67 M, over ten
MAX78000s' worth. Instead a bottleneck drops its expansion: one full 3x3 conv ``in -> in``
(ReLU, a stride of 2 still a 2x2 max-pool fused before it) replaces the 1x1 expand and the
depthwise 3x3, then the unchanged 1x1 project ``in -> out`` (no activation), with the
passthrough + add residual where the block keeps its shape. The block keeps its spatial mixing
and about its size (``9 in^2 + in * out`` weights against ``6 in^2 + 54 in + 6 in * out``:
144,000 against 179,280 for 120 -> 120). Stem, head and classifier are unchanged. Weights are
8-bit except the 1x1 head 240 -> 960, the largest layer (230,400 weights), at 4 bits: at 8 bits
the tail (the stage-7 block, head and classifier) needs a fifth MAX78000. 57 layers, 1,058,680
weights = 943,480 B; splits over four MAX78000s (tests/unit/test_zoo.py).
"""

from __future__ import annotations

import onnx

from synergy.models.zoo.builder import Conv, ModelBuilder, Pool

__all__ = ["build_mobilenetv2_075", "build_mobilenetv2_075_nodw"]

CIFAR_INPUT = (1, 3, 32, 32)
CIFAR100_CLASSES = 100
STEM_CHANNELS = 24
HEAD_CHANNELS = 960
CLASSIFIER_POOL = 4
HEAD_BITS = 8
#: Weight bits of the no-depthwise variant's head (the rest is 8-bit; module docstring).
NODW_HEAD_BITS = 4

#: (repeats, out channels, stride, expansion) of the seven bottleneck stages.
STAGES: tuple[tuple[int, int, int, int], ...] = (
    (1, 12, 1, 1),
    (2, 20, 2, 6),
    (3, 24, 2, 6),
    (4, 48, 2, 6),
    (3, 72, 1, 6),
    (3, 120, 1, 6),
    (1, 240, 1, 6),
)


def _bottleneck(
    builder: ModelBuilder, x: str, out_channels: int, stride: int, expansion: int, depthwise: bool
) -> str:
    in_channels = builder.shape(x)[1]
    pool = Pool("max") if stride == 2 else None
    h = x
    if depthwise:
        hidden = in_channels * expansion
        if expansion != 1:
            h = builder.layer(h, Conv(hidden, 1, pad=0))
        h = builder.layer(h, Conv(hidden, 3, pad=1, depthwise=True), pool=pool)
    else:
        # No depthwise (MAX78000): one full 3x3 in -> in, no expansion, replaces the 1x1 expand
        # and the 3x3 depthwise; the full 3x3 on the expanded channels would be 6 * 6 = 36 times
        # the weights (module docstring, docs/models.md "No-depthwise variants").
        h = builder.layer(h, Conv(in_channels, 3, pad=1), pool=pool)
    h = builder.layer(h, Conv(out_channels, 1, pad=0), relu=False)
    if stride == 1 and in_channels == out_channels:
        return builder.add(h, builder.passthrough(x))
    return h


def _build(name: str, seed: int, description: str, depthwise: bool) -> onnx.ModelProto:
    builder = ModelBuilder(name, CIFAR_INPUT, seed, description)
    x = builder.layer(builder.input, Conv(STEM_CHANNELS, 3, pad=1))
    for repeats, out_channels, stride, expansion in STAGES:
        for repeat in range(repeats):
            x = _bottleneck(builder, x, out_channels, stride if repeat == 0 else 1, expansion, depthwise)
    x = builder.layer(x, Conv(HEAD_CHANNELS, 1, pad=0), bits=HEAD_BITS if depthwise else NODW_HEAD_BITS)
    logits = builder.layer(
        x,
        Conv(CIFAR100_CLASSES, 1, pad=0),
        pool=Pool("avg", CLASSIFIER_POOL),
        relu=False,
        wide=True,
        output_name="logits",
    )
    return builder.finish([logits])


def build_mobilenetv2_075(seed: int, description: str) -> onnx.ModelProto:
    """73 layers, 1,341,960 weights; needs depthwise convs (MAX78002)."""
    return _build("mobilenetv2_075", seed, description, depthwise=True)


def build_mobilenetv2_075_nodw(seed: int, description: str) -> onnx.ModelProto:
    """Without depthwise convs (module docstring): 57 layers, 1,058,680 weights, 8-bit with a
    4-bit head = 943,480 B; splits over four MAX78000s."""
    return _build("mobilenetv2_075_nodw", seed, description, depthwise=False)
