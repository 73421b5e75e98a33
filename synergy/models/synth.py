"""Model synthesis: per partition, the sub-model and the vendor's network description.

For a model cut into partitions, :func:`synthesize` writes into ``out_dir``:

- ``partN.onnx``: the sub-model of partition N (:func:`synergy.models.partition.split_model`);
- ``partN.yaml``: the ai8x-synthesis ("izer") network description of HARDWARE.md §6
  (:func:`network_description` / :func:`render_yaml`), with only keys the izer knows;
- ``partN_sample_input.npy``: the partition's main input as the izer's sample data (int64,
  channels first, no batch). Partition 0 gets deterministic int8 values seeded by the model's
  name; every later partition gets what the previous partitions compute from it, so the
  samples chain. A partition receiving several tensors also gets ``partN_sample_inputs.npz``
  with all of them by name;
- ``manifest.json``: model, board, cuts and, per partition, its files, layer range, tensors,
  weight bytes, cycles, latency and fit verdict.

It lives with the models (not in :mod:`synergy.hardware`) because it cuts ONNX models
(:mod:`synergy.models.partition`): models build on the hardware analysis, never the reverse.

Processors follow :func:`synergy.hardware.checker.place_weights`, so the YAML and the fit
check agree: a layer's ``processors`` are the block its kernels live on (popcount
``ceil(C_in / passes)``, rounded to a multiple of 4 above 64 channels); a layer without
weights reads from processor 0 up. ``output_processors`` are the next layer's ``processors``
when it reads this output alone, else processors from 0 up for the output channels.
``out_offset`` alternates between 0 and the board's ping-pong offset.

Known limits (the vendor's hand-written YAMLs tune these per network): a tensor read by several
later layers (skip connections, concatenations) is written once, where its first reader wants
it, so a later reader may need its ``processors`` adjusted by hand; ``write_gap`` interleaving
of residual operands is not generated; partitions receiving skip tensors from an earlier
partition name only their main input in the YAML (the others are in the manifest).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from synergy.hardware.allocation import LayerPlacement, data_format, layer_processors, place_weights
from synergy.hardware.boards import BoardProfile
from synergy.hardware.checker import check_partition
from synergy.hardware.costs import partition_times
from synergy.hardware.cycles import network_cycles
from synergy.hardware.model import HardwareLayer, HardwareModel, TensorSpec
from synergy.models.partition import Partition, partition_ranges, split_model

__all__ = ["Hex", "network_description", "render_yaml", "synthesize"]

#: The izer's operation names for our layer ops.
OPERATIONS = {
    "conv1d": "Conv1d",
    "conv2d": "Conv2d",
    "convtranspose2d": "ConvTranspose2d",
    "linear": "Linear",
    "passthrough": "Passthrough",
    "eltwise": "None",
}
ACTIVATIONS = {"relu": "ReLU", "abs": "Abs", "none": "None"}
#: Operations whose kernel size the izer reads (it refuses kernel_size on Linear layers).
KERNEL_OPERATIONS = frozenset({"conv1d", "conv2d", "convtranspose2d"})
WIDE_OUTPUT_WIDTH = 32
MASK_HEX_DIGITS = 16
OFFSET_HEX_DIGITS = 4
MICROSECONDS = 1e6
SAMPLE_MIN = -128
SAMPLE_MAX = 127
#: The izer reads sample data as int64 arrays, channels first, without the batch dimension.
SAMPLE_DTYPE = np.int64


@dataclass(frozen=True)
class Hex:
    """An integer the YAML shows in hexadecimal (processor masks, offsets)."""

    value: int
    digits: int

    def __str__(self) -> str:
        return f"0x{self.value:0{self.digits}x}"


def _mask(first: int, count: int) -> Hex:
    return Hex(((1 << count) - 1) << first, MASK_HEX_DIGITS)


def _pool_value(values: tuple[int, ...]) -> int | list[int]:
    return values[0] if len(set(values)) == 1 else list(values)


def _input_mask(layer: HardwareLayer, placement: LayerPlacement | None, board: BoardProfile) -> Hex:
    if placement is not None:
        return _mask(placement.first_processor, placement.processors)
    return _mask(0, layer_processors(layer.in_channels, board.processors)[1])


def _output_mask(index: int, layers: Sequence[HardwareLayer], masks: Sequence[Hex], board: BoardProfile) -> Hex:
    """Where a layer writes its output: on the processors of the first layer reading it.

    An element-wise operand goes to the reader's processors; a Concat part goes to its slice
    of them (single-pass readers); anything else starts at processor 0.
    """
    layer = layers[index]
    channels = {candidate.output: candidate.out_channels for candidate in layers}
    _, count = layer_processors(layer.out_channels, board.processors)
    for reader, mask in zip(layers[index + 1 :], masks[index + 1 :], strict=True):
        if layer.output not in reader.inputs:
            continue
        if reader.in_channels == layer.out_channels:
            return mask
        first = (mask.value & -mask.value).bit_length() - 1
        offset = 0
        for name in reader.inputs:
            if name == layer.output:
                break
            offset += channels.get(name, 0)
        if reader.in_channels <= board.processors and first + offset + count <= board.processors:
            return _mask(first + offset, count)
        break
    return _mask(0, count)


def network_description(hw: HardwareModel, first: int, last: int, board: BoardProfile) -> dict[str, Any]:
    """The izer network description of layers ``first..last`` as a mapping (see render_yaml)."""
    layers = hw.layers[first : last + 1]
    placements, _ = place_weights(layers, board)
    masks = [_input_mask(layer, p, board) for layer, p in zip(layers, placements, strict=True)]
    local = {layer.output: i for i, layer in enumerate(layers)}
    entries: list[dict[str, Any]] = []
    for i, layer in enumerate(layers):
        entry: dict[str, Any] = {"processors": masks[i]}
        entry["output_processors"] = _output_mask(i, layers, masks, board)
        entry["out_offset"] = Hex(board.out_offset_pingpong if i % 2 else 0, OFFSET_HEX_DIGITS)
        entry["operation"] = OPERATIONS[layer.op]
        if layer.op in KERNEL_OPERATIONS:
            kernel = layer.kernel
            entry["kernel_size"] = kernel[0] if layer.op == "conv1d" else f"{kernel[0]}x{kernel[1]}"
        entry["pad"] = layer.pad
        entry["activate"] = ACTIVATIONS[layer.activation]
        if layer.pool:
            entry["max_pool" if layer.pool == "max" else "avg_pool"] = _pool_value(layer.pool_size)
            entry["pool_stride"] = _pool_value(layer.pool_stride)
        if layer.eltwise:
            entry["eltwise"] = layer.eltwise.capitalize()
            entry["operands"] = layer.eltwise_operands
            if layer.pool and not layer.pool_first:
                entry["pool_first"] = False
        sources = [local.get(name) for name in layer.inputs]
        reads_previous = sources == [i - 1]
        if i > 0 and not reads_previous and all(s is not None for s in sources):
            entry["in_sequences"] = sources
        if layer.flatten:
            entry["flatten"] = True
        if layer.depthwise:
            entry["groups"] = layer.groups
        if layer.dilation > 1:
            entry["dilation"] = layer.dilation
        if layer.output_width == WIDE_OUTPUT_WIDTH:
            entry["output_width"] = WIDE_OUTPUT_WIDTH
        if layer.weights:
            entry["quantization"] = layer.weight_bits
        if i == 0:
            entry["data_format"] = data_format(layer, board) or "HWC"
        if layer.streaming:
            entry["streaming"] = True
        entries.append(entry)
    return {"arch": hw.name, "dataset": hw.name, "layers": entries}


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_scalar(v) for v in value) + "]"
    return str(value)


def render_yaml(description: dict[str, Any], comment: str = "") -> str:
    """YAML text of a network description, hexadecimal masks and offsets kept readable."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"arch: {description['arch']}", f"dataset: {description['dataset']}", "", "layers:"]
    for index, entry in enumerate(description["layers"]):
        lines.append(f"# Layer {index}")
        for position, (key, value) in enumerate(entry.items()):
            lines.append(f"{'- ' if position == 0 else '  '}{key}: {_scalar(value)}")
        lines.append("")
    return "\n".join(lines)


def _run(partition: Partition, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime as ort  # heavy: only needed when samples are computed

    session = ort.InferenceSession(partition.onnx, providers=["CPUExecutionProvider"])
    feeds = {i.name: tensors[i.name] for i in session.get_inputs()}
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def _sample(array: np.ndarray) -> np.ndarray:
    return np.asarray(array[0], dtype=SAMPLE_DTYPE)


def synthesize(
    model: onnx.ModelProto,
    hw: HardwareModel,
    cuts: Sequence[int],
    board: BoardProfile,
    out_dir: str | Path,
) -> dict[str, Any]:
    """Write every partition's files and ``manifest.json`` into ``out_dir``; return the manifest.

    Partitions that do not fit ``board`` are written all the same; the manifest records
    each partition's verdict and reasons (callers decide whether that is an error).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(hw.name.encode()))
    tensors = {t.name: rng.integers(SAMPLE_MIN, SAMPLE_MAX + 1, size=t.shape).astype(np.float32) for t in hw.inputs}
    entries: list[dict[str, Any]] = []
    for index, (first, last) in enumerate(partition_ranges(cuts, len(hw.layers))):
        partition = split_model(model, hw, first, last)
        stem = f"part{index}"
        (out / f"{stem}.onnx").write_bytes(partition.onnx)
        report = check_partition(hw, first, last, board)
        header = f"{hw.name} partition {index}: layers {first}..{last} on {board.name}"
        if not report.fits:
            header += "\nDOES NOT FIT: " + "; ".join(report.reasons)
        description = network_description(hw, first, last, board)
        (out / f"{stem}.yaml").write_text(render_yaml(description, header), encoding="utf-8")
        np.save(out / f"{stem}_sample_input.npy", _sample(tensors[partition.inputs[0].name]))
        files = {"onnx": f"{stem}.onnx", "yaml": f"{stem}.yaml", "sample_input": f"{stem}_sample_input.npy"}
        if len(partition.inputs) > 1:
            arrays: dict[str, Any] = {t.name: _sample(tensors[t.name]) for t in partition.inputs}
            np.savez(out / f"{stem}_sample_inputs.npz", **arrays)
            files["sample_inputs"] = f"{stem}_sample_inputs.npz"
        tensors.update(_run(partition, tensors))
        times = partition_times(hw, first, last, board)
        layers = hw.layers[first : last + 1]
        entries.append(
            {
                "index": index,
                "first": first,
                "last": last,
                "files": files,
                "inputs": [_spec(t) for t in partition.inputs],
                "outputs": [_spec(t) for t in partition.outputs],
                "weight_bytes": sum(layer.weight_bytes for layer in layers),
                "bias_bytes": sum(layer.bias_bytes for layer in layers),
                "cycles": network_cycles(layers),
                "latency_us": times.accelerator_s * MICROSECONDS,
                "fits": report.fits,
                "reasons": list(report.reasons),
            }
        )
    manifest = {
        "model": hw.name,
        "board": board.name,
        "cuts": sorted(set(cuts)),
        "partitions": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def _spec(spec: TensorSpec) -> dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}
