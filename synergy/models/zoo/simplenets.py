"""Plain CNN classifiers: ConvNet5 (MNIST) and the SimpleNet family (CIFAR-100).

Architectures follow ai8x-training (``ai85net5``, ``ai85simplenet``, ``ai85ressimplenet``,
``ai85simplenetwide2x``) and the layer lists of the vendor's synthesis YAML files. All convs
are stride 1; where the network downsamples, a 2x2 pool is fused before the conv. None of
these models has bias except ConvNet5's final Linear (``bias=False`` in ai8x-training).
"""

from __future__ import annotations

from dataclasses import dataclass

import onnx

from synergy.models.zoo.builder import Conv, Linear, ModelBuilder, Pool

__all__ = ["build_convnet5", "build_ressimplenet", "build_simplenet", "build_widenet"]

CIFAR_INPUT = (1, 3, 32, 32)
CIFAR100_CLASSES = 100


@dataclass(frozen=True)
class _TrunkConv:
    """One SimpleNet conv: output channels, kernel (3 with pad 1, or 1 with pad 0), max-pool."""

    out_channels: int
    kernel: int = 3
    pooled: bool = False

    @property
    def op(self) -> Conv:
        return Conv(self.out_channels, self.kernel, pad=1 if self.kernel == 3 else 0)


def _trunk(widths: tuple[int, ...]) -> tuple[_TrunkConv, ...]:
    """SimpleNet's 14 convs with the given widths: conv11, conv12 and conv14 are 1x1;
    conv5, conv8, conv10, conv11 and conv13 have a fused 2x2 max-pool (32 -> 1 pixels)."""
    one_by_one = {11, 12, 14}
    pooled = {5, 8, 10, 11, 13}
    return tuple(
        _TrunkConv(width, 1 if number in one_by_one else 3, number in pooled)
        for number, width in enumerate(widths, start=1)
    )


#: ai85simplenet: 381,792 weights (3x3 convs 106,848 + 1x1 conv11 49,152 + conv12 65,536 +
#: conv13 147,456 + conv14 12,800).
SIMPLENET_WIDTHS = (16, 20, 20, 20, 20, 20, 44, 48, 48, 96, 512, 128, 128, CIFAR100_CLASSES)
#: ai85simplenetwide2x: 725,128 weights.
WIDENET_WIDTHS = (24, 32, 32, 32, 32, 32, 64, 64, 64, 128, 512, 192, 192, CIFAR100_CLASSES)


def mixed_precision_bits(conv_number: int) -> int:
    """The SimpleNet/WideNet mixed policy: conv1 8-bit, conv2 and conv11-14 4-bit, others 2-bit.

    Weight bytes are sum(params * bits / 8) over the layers (every layer's count is a multiple
    of 8 here, so no rounding is involved): SimpleNet 432 + 1,440 + 25,884 + 137,472 = 165,228 B,
    WideNet 648 + 3,456 + 50,688 + 257,408 = 312,200 B, matching HARDWARE.md §5.
    """
    if conv_number == 1:
        return 8
    if conv_number == 2 or conv_number >= 11:
        return 4
    return 2


def _build_plain_simplenet(
    name: str, seed: int, description: str, widths: tuple[int, ...]
) -> onnx.ModelProto:
    builder = ModelBuilder(name, CIFAR_INPUT, seed, description)
    current = builder.input
    trunk = _trunk(widths)
    for number, conv in enumerate(trunk, start=1):
        last = number == len(trunk)
        current = builder.layer(
            current,
            conv.op,
            pool=Pool("max") if conv.pooled else None,
            relu=not last,
            bits=mixed_precision_bits(number),
            wide=last,
            output_name="logits" if last else None,
        )
    return builder.finish([current])


def build_convnet5(seed: int, description: str) -> onnx.ModelProto:
    """ai85net5 (MNIST): 540 + 32,400 + 30,240 + 6,048 + 1,920 = 71,148 weights, +10 bias (fc)."""
    builder = ModelBuilder("convnet5", (1, 1, 28, 28), seed, description)
    x = builder.layer(builder.input, Conv(60, 3, pad=1))  # 60x28x28
    x = builder.layer(x, Conv(60, 3, pad=2), pool=Pool("max"))  # 60x16x16
    x = builder.layer(x, Conv(56, 3, pad=1), pool=Pool("max"))  # 56x8x8
    x = builder.layer(x, Conv(12, 3, pad=1), pool=Pool("avg"))  # 12x4x4
    logits = builder.layer(x, Linear(10, bias=True), relu=False, wide=True, output_name="logits")
    return builder.finish([logits])


def build_simplenet(seed: int, description: str) -> onnx.ModelProto:
    """ai85simplenet with the mixed 2/4/8-bit policy (165,228 weight bytes)."""
    return _build_plain_simplenet("simplenet", seed, description, SIMPLENET_WIDTHS)


def build_widenet(seed: int, description: str) -> onnx.ModelProto:
    """ai85simplenetwide2x with the mixed policy (312,200 B; at 8 bit it would not fit)."""
    return _build_plain_simplenet("widenet", seed, description, WIDENET_WIDTHS)


def build_ressimplenet(seed: int, description: str) -> onnx.ModelProto:
    """ai85ressimplenet at 8 bit: SimpleNet's weights (381,792) plus three residual adds.

    As in the vendor's cifar100-ressimplenet.yaml (17 layers), each residual source is copied
    by a passthrough layer and the add is fused into the next conv: conv4 = conv(pt(conv2) +
    conv3), conv7 = conv(pt(conv5) + conv6), conv10 = conv(maxpool(pt(conv8) + conv9)).
    """
    builder = ModelBuilder("ressimplenet", CIFAR_INPUT, seed, description)
    trunk = _trunk(SIMPLENET_WIDTHS)

    def conv(number: int, source: str | list[str], *, merge: bool = False) -> str:
        spec = trunk[number - 1]
        last = number == len(trunk)
        return builder.layer(
            source,
            spec.op,
            merge="add" if merge else None,
            pool=Pool("max") if spec.pooled else None,
            relu=not last,
            wide=last,
            output_name="logits" if last else None,
        )

    x = conv(1, builder.input)  # 16x32x32
    residual = conv(2, x)  # 20x32x32
    copy = builder.passthrough(residual)
    x = conv(3, residual)
    x = conv(4, [copy, x], merge=True)
    residual = conv(5, x)  # 20x16x16
    copy = builder.passthrough(residual)
    x = conv(6, residual)
    x = conv(7, [copy, x], merge=True)  # 44x16x16
    residual = conv(8, x)  # 48x8x8
    copy = builder.passthrough(residual)
    x = conv(9, residual)
    x = conv(10, [copy, x], merge=True)  # add, then max-pool: 96x4x4
    for number in (11, 12, 13, 14):
        x = conv(number, x)
    return builder.finish([x])
