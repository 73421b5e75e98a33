"""Splitting a model into partitions that chain bit-exactly (synergy.models.partition)."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from synergy.errors import InvalidArgument
from synergy.hardware.analysis import analyze_model
from synergy.hardware.model import HardwareModel
from synergy.models.partition import Partition, split_model
from synergy.models.zoo import ZOO_NAMES, build_model

Arrays = dict[str, np.ndarray]


@functools.cache
def zoo(name: str) -> tuple[onnx.ModelProto, HardwareModel]:
    model = build_model(name)
    return model, analyze_model(model, name)


def run(onnx_bytes: bytes, feeds: Arrays) -> Arrays:
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    outputs = session.run(names, {i.name: feeds[i.name] for i in session.get_inputs()})
    return dict(zip(names, outputs, strict=True))


def sample(hw: HardwareModel, seed: int = 7) -> Arrays:
    rng = np.random.default_rng(seed)
    return {t.name: rng.integers(-128, 128, size=t.shape).astype(np.float32) for t in hw.inputs}


def check_chain(model: onnx.ModelProto, hw: HardwareModel, cuts: list[int]) -> None:
    """Run the partitions in sequence and compare with the whole model, bit for bit."""
    feeds = sample(hw)
    expected = run(model.SerializeToString(), feeds)
    tensors = dict(feeds)
    bounds = [0, *(c + 1 for c in cuts), len(hw.layers)]
    for first, end in itertools.pairwise(bounds):
        part = split_model(model, hw, first, end - 1)
        sub = part.model()
        assert [i.name for i in sub.graph.input] == [t.name for t in hw.entering(first)]
        assert [o.name for o in sub.graph.output] == [t.name for t in hw.leaving(end - 1)]
        produced = run(part.onnx, tensors)
        for spec in part.outputs:
            value = produced[spec.name]
            assert value.shape == spec.shape
            if spec.dtype == "int8":
                assert np.array_equal(value, np.round(value)), f"{spec.name} is not integer-valued"
                assert value.min() >= -128 and value.max() <= 127, f"{spec.name} leaves int8"
        tensors.update(produced)
    for name, value in expected.items():
        assert np.array_equal(value, tensors[name]), f"{hw.name} cut at {cuts}: {name} differs"


@pytest.mark.parametrize("name", ["convnet5", "kws20_v3", "simplenet"])
def test_every_single_cut_chains_bit_exactly(name: str) -> None:
    model, hw = zoo(name)
    for cut in range(len(hw.layers) - 1):
        check_chain(model, hw, [cut])


@pytest.mark.parametrize("name", ZOO_NAMES)
def test_several_cuts_chain_bit_exactly(name: str) -> None:
    model, hw = zoo(name)
    count = len(hw.layers)
    for cuts in ([count // 2], [count // 3, 2 * count // 3], [0, count - 2]):
        check_chain(model, hw, sorted(set(cuts)))


@pytest.mark.parametrize("name", ["ressimplenet", "unet"])
def test_one_layer_per_partition_forwards_skip_connections(name: str) -> None:
    model, hw = zoo(name)
    check_chain(model, hw, list(range(len(hw.layers) - 1)))


def test_a_forwarded_tensor_is_both_input_and_output() -> None:
    model, hw = zoo("ressimplenet")
    # Layer 2 copies the residual; layer 3 convolves; layer 4 adds: the copy crosses layer 3.
    part = split_model(model, hw, 3, 3)
    sub = part.model()
    forwarded = {i.name for i in sub.graph.input} & {o.name for o in sub.graph.output}
    assert hw.layers[2].output in forwarded
    assert not any(node.op_type == "Identity" for node in sub.graph.node)
    onnx.checker.check_model(sub, full_check=True)


def test_partition_carries_bits_and_identity() -> None:
    model, hw = zoo("simplenet")
    part = split_model(model, hw, 2, 6)
    assert isinstance(part, Partition) and (part.first, part.last) == (2, 6)
    assert part.inputs == hw.entering(2) and part.outputs == hw.leaving(6)
    props = {p.key: p.value for p in part.model().metadata_props}
    assert '"first": 2' in props["synergy.partition"]
    sub_hw = analyze_model(part.model(), "simplenet_2_6")
    assert [layer.weight_bytes for layer in sub_hw.layers] == [layer.weight_bytes for layer in hw.layers[2:7]]


def test_bad_ranges_are_refused() -> None:
    model, hw = zoo("convnet5")
    with pytest.raises(InvalidArgument):
        split_model(model, hw, 3, 2)
    with pytest.raises(InvalidArgument):
        split_model(model, hw, 0, len(hw.layers))
