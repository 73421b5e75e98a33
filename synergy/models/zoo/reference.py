"""Numpy reference of the few operators the zoo emits, used to calibrate output shifts.

The builder must know the values a layer produces before it can pick the layer's output
shift. Running onnxruntime on the partial graph after every layer would create one session
per layer (slow for MobileNetV2's 73 layers); these kernels evaluate one layer directly.

Everything runs in float64 on a batch of one. Activations are integers (or quarters after a
2x2 average pool) and weights are small integers, so every sum below is exact in float64
(far below 2^53): the chosen shifts do not depend on BLAS summation order or the machine,
which keeps the zoo's bytes reproducible everywhere.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

__all__ = [
    "Array",
    "conv",
    "conv_transpose_x2",
    "linear",
    "pool",
    "requantize",
]

#: Every tensor here is float64 with a leading batch dimension of 1: [1, C, *spatial].
Array = NDArray[np.float64]


def conv(x: Array, weight: Array, bias: Array | None, pad: int, groups: int) -> Array:
    """ONNX ``Conv`` with stride 1, symmetric padding ``pad`` on every spatial axis.

    ``x`` is [1, C, *spatial] (1-D or 2-D), ``weight`` is [O, C / groups, *kernel].
    """
    channels = x.shape[1]
    spatial_axes = tuple(range(1, x.ndim - 1))
    kernel = weight.shape[2:]
    padded = np.pad(x[0], [(0, 0)] + [(pad, pad)] * len(spatial_axes))
    # windows: [C, *out, *kernel]
    windows = sliding_window_view(padded, kernel, axis=spatial_axes)
    out_spatial = windows.shape[1 : 1 + len(spatial_axes)]
    taps = int(np.prod(kernel))
    positions = int(np.prod(out_spatial))
    in_per_group = channels // groups
    out_channels = weight.shape[0]
    # [G, Cg, *out, *k] -> [G, Cg, *k, *out] -> [G, Cg * taps, positions]
    grouped = windows.reshape(groups, in_per_group, *out_spatial, *kernel)
    order = (0, 1, *range(2 + len(out_spatial), grouped.ndim), *range(2, 2 + len(out_spatial)))
    columns = grouped.transpose(order).reshape(groups, in_per_group * taps, positions)
    filters = weight.reshape(groups, out_channels // groups, in_per_group * taps)
    result: Array = np.matmul(filters, columns).reshape(1, out_channels, *out_spatial)
    if bias is not None:
        result += bias.reshape(1, out_channels, *([1] * len(out_spatial)))
    return result


def conv_transpose_x2(x: Array, weight: Array, bias: Array | None) -> Array:
    """ONNX ``ConvTranspose`` 3x3, strides 2, pads 1, output_padding 1: [1, C, H, W] -> 2H x 2W.

    Computed as the equivalent stride-1 convolution over the zero-stuffed input: insert a zero
    between neighbours, pad by kernel - 1 - pad before and that plus output_padding after, and
    correlate with the spatially flipped kernel whose in/out channel axes are swapped.
    """
    _, channels, height, width = x.shape
    stuffed = np.zeros((1, channels, 2 * height - 1, 2 * width - 1))
    stuffed[:, :, ::2, ::2] = x
    kernel = weight.shape[-1]
    before = kernel - 1 - 1
    after = before + 1
    padded = np.pad(stuffed, [(0, 0), (0, 0), (before, after), (before, after)])
    flipped = np.ascontiguousarray(weight.transpose(1, 0, 2, 3)[:, :, ::-1, ::-1])
    return conv(padded, flipped, bias, pad=0, groups=1)


def pool(x: Array, kind: str, size: int, stride: int) -> Array:
    """ONNX ``MaxPool`` / ``AveragePool`` without padding, same window on every spatial axis."""
    spatial_axes = tuple(range(2, x.ndim))
    windows = sliding_window_view(x, (size,) * len(spatial_axes), axis=spatial_axes)
    strided = windows[(slice(None), slice(None), *([slice(None, None, stride)] * len(spatial_axes)))]
    window_axes = tuple(range(x.ndim, strided.ndim))
    if kind == "max":
        return np.asarray(strided.max(axis=window_axes), dtype=np.float64)
    return np.asarray(strided.mean(axis=window_axes), dtype=np.float64)


def linear(x: Array, weight: Array, bias: Array | None) -> Array:
    """``Flatten`` then ``Gemm`` with ``transB=1``: weight is [out, in]."""
    flat = x.reshape(1, -1)
    result = flat @ weight.T
    if bias is not None:
        result += bias.reshape(1, -1)
    return np.asarray(result, dtype=np.float64)


def requantize(x: Array, shift: int) -> Array:
    """The chip's numerics: scale by 2^-shift, round half up, clamp to int8."""
    return np.clip(np.floor(x * 2.0**-shift + 0.5), -128.0, 127.0)
