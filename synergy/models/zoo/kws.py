"""Keyword spotting: KWS20 v3 (ai85kws20netv3), an all-Conv1d network on 128 x 128 audio.

The input is 128 MFCC-like channels x 128 time samples; 20 keywords + "unknown" = 21 classes.
ai8x-training builds it with ``bias=False`` everywhere, the final Linear included.
"""

from __future__ import annotations

import onnx

from synergy.models.zoo.builder import Conv, Linear, ModelBuilder, Pool

__all__ = ["build_kws20_v3"]

KWS_INPUT = (1, 128, 128)
KWS_CLASSES = 21


def build_kws20_v3(seed: int, description: str) -> onnx.ModelProto:
    """9 layers, 169,472 weights: 12,800 + 28,800 + 18,432 + 9,216 + 9,216 + 18,432 + 28,800
    + 38,400 (convs) + 5,376 (Linear 256 -> 21)."""
    builder = ModelBuilder("kws20_v3", KWS_INPUT, seed, description)
    x = builder.layer(builder.input, Conv(100, 1, pad=0))  # 100 x 128
    x = builder.layer(x, Conv(96, 3, pad=0))  # 96 x 126
    x = builder.layer(x, Conv(64, 3, pad=1), pool=Pool("max"))  # 64 x 63
    x = builder.layer(x, Conv(48, 3, pad=0))  # 48 x 61
    x = builder.layer(x, Conv(64, 3, pad=1), pool=Pool("max"))  # 64 x 30
    x = builder.layer(x, Conv(96, 3, pad=0))  # 96 x 28
    x = builder.layer(x, Conv(100, 3, pad=1), pool=Pool("avg"))  # 100 x 14
    x = builder.layer(x, Conv(64, 6, pad=1), pool=Pool("max"))  # 64 x 4
    logits = builder.layer(x, Linear(KWS_CLASSES), relu=False, wide=True, output_name="logits")
    return builder.finish([logits])
