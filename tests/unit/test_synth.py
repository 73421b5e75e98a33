"""Model synthesis: partition ONNX, ai8x-synthesis YAML, sample inputs, manifest."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import yaml

from synergy.cli import synth_cmd
from synergy.errors import InvalidArgument
from synergy.hardware.allocation import layer_processors
from synergy.hardware.analysis import analyze_model
from synergy.hardware.boards import MAX78000, MAX78002, BoardProfile
from synergy.models.partition import partition_ranges
from synergy.models.synth import network_description, render_yaml, synthesize
from synergy.models.zoo import ZOO_NAMES, build_model

#: Keys the izer accepts (izer/yamlcfg.py); anything else is an error in the vendor tool.
IZER_GLOBAL_KEYS = {"bias", "dataset", "layers", "output_map", "arch", "weights", "snoop"}
IZER_LAYER_KEYS = {
    "max_pool",
    "avg_pool",
    "convolution",
    "conv_groups",
    "dilation",
    "groups",
    "in_channels",
    "in_dim",
    "in_sequences",
    "in_skip",
    "in_channel_skip",
    "in_offset",
    "kernel_size",
    "pool_stride",
    "out_channels",
    "out_offset",
    "activate",
    "activation",
    "data_format",
    "eltwise",
    "flatten",
    "op",
    "operands",
    "operation",
    "operator",
    "output_processors",
    "output_width",
    "output_shift",
    "pool_first",
    "processors",
    "pad",
    "quantization",
    "next_sequence",
    "snoop_sequence",
    "simulated_sequence",
    "sequence",
    "streaming",
    "stride",
    "write_gap",
    "bypass",
    "bias_group",
    "calcx4",
    "readahead",
    "pool_dilation",
    "output_pad",
    "tcalc",
}
IZER_OPERATIONS = {
    "conv1d",
    "conv2d",
    "convtranspose2d",
    "none",
    "passthrough",
    "add",
    "sub",
    "xor",
    "or",
    "linear",
    "fc",
    "mlp",
}


def description(name: str, board: BoardProfile, first: int = 0, last: int | None = None) -> dict[str, Any]:
    hw = analyze_model(build_model(name), name)
    end = len(hw.layers) - 1 if last is None else last
    text = render_yaml(network_description(hw, first, end, board), comment=f"{name}\ntest")
    parsed = yaml.safe_load(text)
    assert isinstance(parsed, dict)
    return parsed


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_yaml_uses_only_izer_keys_and_the_processor_rule(name: str) -> None:
    board = MAX78002
    hw = analyze_model(build_model(name), name)
    parsed = description(name, board)
    assert set(parsed) <= IZER_GLOBAL_KEYS and {"arch", "dataset", "layers"} <= set(parsed)
    assert len(parsed["layers"]) == len(hw.layers)
    for index, (entry, layer) in enumerate(zip(parsed["layers"], hw.layers, strict=True)):
        assert set(entry) <= IZER_LAYER_KEYS, set(entry) - IZER_LAYER_KEYS
        assert entry["operation"].lower() in IZER_OPERATIONS
        mask = entry["processors"]
        assert isinstance(mask, int) and 0 < mask < 2**64
        assert bin(mask).count("1") == layer_processors(layer.in_channels, 64)[1]
        assert isinstance(entry["output_processors"], int)
        assert entry["out_offset"] == (board.out_offset_pingpong if index % 2 else 0)
        assert ("data_format" in entry) == (index == 0)
        assert ("kernel_size" in entry) == (layer.op in ("conv1d", "conv2d", "convtranspose2d"))
        assert entry.get("output_width", 8) == layer.output_width
        assert entry.get("quantization") == (layer.weight_bits if layer.weights else None)
        if layer.eltwise:
            assert 2 <= entry["operands"] <= 16 and entry["eltwise"].lower() == layer.eltwise
        if "pool_first" in entry:
            assert entry["pool_first"] is False and layer.eltwise and layer.pool


def test_yaml_details_per_operator() -> None:
    kws = description("kws20_v3", MAX78000)["layers"]
    assert kws[0]["operation"] == "Conv1d" and kws[1]["kernel_size"] == 3 and kws[-1]["operation"] == "Linear"
    assert kws[-1]["flatten"] is True and kws[-1]["output_width"] == 32
    unet = description("unet", MAX78000)["layers"]
    assert unet[8]["operation"] == "ConvTranspose2d" and unet[8]["kernel_size"] == "3x3"
    assert unet[9]["in_sequences"] == [8, 7]  # concatenation order of the model: upsampled, skip
    res = description("ressimplenet", MAX78000)["layers"]
    assert res[12]["max_pool"] == 2 and res[12]["pool_first"] is False and res[12]["eltwise"] == "Add"
    simple = description("simplenet", MAX78000)["layers"]
    assert [e["quantization"] for e in simple][:3] == [8, 4, 2]
    effnet = description("efficientnetv2", MAX78002)["layers"]
    assert effnet[15]["groups"] == 192
    assert effnet[31]["avg_pool"] == 16 and effnet[31]["operation"] == "Passthrough"
    part = description("ressimplenet", MAX78000, 5, 9)["layers"]
    assert part[0]["data_format"] == "HWC" and len(part) == 5


def test_partition_ranges() -> None:
    assert partition_ranges([3, 7], 10) == [(0, 3), (4, 7), (8, 9)]
    assert partition_ranges([], 4) == [(0, 3)]
    with pytest.raises(InvalidArgument):
        partition_ranges([9], 10)


def test_synthesize_writes_chained_deterministic_partitions(tmp_path: Path) -> None:
    model = build_model("ressimplenet")
    hw = analyze_model(model, "ressimplenet")
    manifest = synthesize(model, hw, [4, 9], MAX78000, tmp_path / "a")
    again = synthesize(model, hw, [9, 4], MAX78000, tmp_path / "b")
    assert manifest == again
    assert json.loads((tmp_path / "a" / "manifest.json").read_text()) == manifest
    assert manifest["model"] == "ressimplenet" and manifest["board"] == "max78000" and manifest["cuts"] == [4, 9]
    parts = manifest["partitions"]
    assert [(p["first"], p["last"]) for p in parts] == [(0, 4), (5, 9), (10, 16)]
    assert all(p["fits"] for p in parts)
    for index, part in enumerate(parts):
        for file in part["files"].values():
            assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()
        assert part["inputs"] == [
            {"name": t.name, "shape": list(t.shape), "dtype": t.dtype} for t in hw.entering(part["first"])
        ]
        assert part["cycles"] == 1 + sum(layer.cycles for layer in hw.layers[part["first"] : part["last"] + 1])
        assert part["files"]["onnx"] == f"part{index}.onnx"
    # Partition 1's sample is what partition 0 computes from partition 0's sample.
    first_input = np.load(tmp_path / "a" / "part0_sample_input.npy")
    assert first_input.dtype == np.int64 and first_input.shape == (3, 32, 32)
    assert first_input.min() >= -128 and first_input.max() <= 127
    session = ort.InferenceSession(str(tmp_path / "a" / "part0.onnx"), providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: first_input[None].astype(np.float32)})
    assert np.array_equal(np.load(tmp_path / "a" / "part1_sample_input.npy"), out[0].astype(np.int64))


def test_non_fitting_partitions_are_recorded(tmp_path: Path) -> None:
    model = build_model("efficientnetv2")
    hw = analyze_model(model, "efficientnetv2")
    manifest = synthesize(model, hw, [], MAX78000, tmp_path)
    (part,) = manifest["partitions"]
    assert not part["fits"] and any(r.startswith("depthwise") for r in part["reasons"])
    assert "DOES NOT FIT" in (tmp_path / "part0.yaml").read_text()


def synth_args(**kwargs: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    synth_cmd.register(sub)
    argv = ["synth", kwargs.pop("model")]
    for key, value in kwargs.items():
        argv += [f"--{key}", value]
    return parser.parse_args(argv)


def test_synth_command_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = synth_args(model="convnet5", board="max78000", cuts="1,3", out=str(tmp_path / "ok"))
    assert args.func(args) == 0
    assert sorted(p.name for p in (tmp_path / "ok").iterdir()) == sorted(
        [f"part{i}{suffix}" for i in range(3) for suffix in (".onnx", ".yaml", "_sample_input.npy")] + ["manifest.json"]
    )
    args = synth_args(model="mobilenetv2_075", board="max78000", out=str(tmp_path / "no"))
    assert args.func(args) == 1
    assert "depthwise" in capsys.readouterr().err
    args = synth_args(model="convnet5", board="max78000", cuts="x", out=str(tmp_path / "bad"))
    assert args.func(args) == 2
    args = synth_args(model="no_such_model", board="max78000", out=str(tmp_path / "bad"))
    assert args.func(args) == 2
