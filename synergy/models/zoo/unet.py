"""Semantic segmentation: UNet large (ai85unetlarge) on CamVid, folded input.

The camera's 3 x 352 x 352 frame is folded 4 x 4 into 48 x 88 x 88 by the CPU (the input of
this graph), so the accelerator sees 88 x 88 pixels. The last layer produces 64 channels =
4 classes x 16 fold positions; a ``DepthToSpace`` (DCR) after the last hardware layer is the
CPU's unfolding to 4 x 352 x 352, exactly ai8x-training's ``dec0_u`` loop
(channel = class + 4 * (4 * row_phase + column_phase)).

Layers follow the vendor's camvid-unet-large.yaml (19 layers): the encoder skip of enc3 is
copied by a passthrough layer before the first upsampling; the other two skips are read in
place. Every conv has bias (``bias=True`` in ai8x-training; BatchNorm 'NoAffine' folds into it).
"""

from __future__ import annotations

import onnx

from synergy.models.zoo.builder import Conv, ConvTranspose, ModelBuilder, Pool

__all__ = ["build_unet"]

FOLDED_INPUT = (1, 48, 88, 88)
FOLD = 4
SEGMENTATION_CLASSES = 4


def _conv3(channels: int) -> Conv:
    return Conv(channels, 3, pad=1, bias=True)


def _conv1(channels: int) -> Conv:
    return Conv(channels, 1, pad=0, bias=True)


def build_unet(seed: int, description: str) -> onnx.ModelProto:
    """278,176 weights: 1x1 prep 9,216; encoder 74,880; ConvTranspose 72,576; decoder 105,120;
    1x1 post 16,384; and 908 bias values (one per output channel of the 18 weighted layers)."""
    builder = ModelBuilder("unet", FOLDED_INPUT, seed, description)
    mp2 = Pool("max")
    x = builder.layer(builder.input, _conv1(64))  # prep0
    x = builder.layer(x, _conv1(64))  # prep1
    x = builder.layer(x, _conv1(32))  # prep2
    enc1 = builder.layer(x, _conv3(8))  # 8 x 88 x 88
    enc2 = builder.layer(enc1, _conv3(28), pool=mp2)  # 28 x 44 x 44
    enc3 = builder.layer(enc2, _conv3(56), pool=mp2)  # 56 x 22 x 22
    bottleneck = builder.layer(enc3, _conv3(112), pool=mp2)  # 112 x 11 x 11
    enc3_copy = builder.passthrough(enc3)
    up3 = builder.layer(bottleneck, ConvTranspose(56, bias=True), relu=False)  # 56 x 22 x 22
    dec3 = builder.layer([up3, enc3_copy], _conv3(56), merge="concat")
    up2 = builder.layer(dec3, ConvTranspose(28, bias=True), relu=False)  # 28 x 44 x 44
    dec2 = builder.layer([up2, enc2], _conv3(28), merge="concat")
    up1 = builder.layer(dec2, ConvTranspose(8, bias=True), relu=False)  # 8 x 88 x 88
    dec1 = builder.layer([up1, enc1], _conv3(48), merge="concat")
    x = builder.layer(dec1, _conv3(64))  # dec0
    x = builder.layer(x, _conv1(64))  # conv_p1
    x = builder.layer(x, _conv1(64))  # conv_p2
    x = builder.layer(x, _conv1(64), relu=False)  # conv_p3
    folded = builder.layer(x, _conv1(SEGMENTATION_CLASSES * FOLD * FOLD), relu=False)  # 8-bit output
    segmentation = builder.depth_to_space(folded, FOLD, "segmentation")
    return builder.finish([segmentation])
