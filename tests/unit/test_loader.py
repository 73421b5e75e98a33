"""Loading models by zoo name, file path or uploaded bytes, with ONNX validation."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from synergy.errors import ModelError, NotFound
from synergy.models.loader import load_model, model_from_bytes
from synergy.models.zoo import ZOO_NAMES, build_model


def _unchecked_model() -> onnx.ModelProto:
    """Parses fine but fails onnx.checker: the Relu reads a tensor nothing produces."""
    graph = helper.make_graph(
        [helper.make_node("Relu", ["missing"], ["y"], name="relu")],
        "broken",
        inputs=[helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        outputs=[helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_zoo_name_loads_the_zoo_model() -> None:
    model, name = load_model("kws20_v3")
    assert name == "kws20_v3"
    assert model.SerializeToString() == build_model("kws20_v3").SerializeToString()


def test_onnx_file_loads_with_its_stem_as_name(tmp_path: Path) -> None:
    path = tmp_path / "my_net.onnx"
    path.write_bytes(build_model("convnet5").SerializeToString())
    model, name = load_model(str(path))
    assert name == "my_net"
    assert model.graph.name == "convnet5"


def test_garbage_file_is_a_model_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.onnx"
    path.write_bytes(b"\x00\xffnot an onnx model\x12")
    with pytest.raises(ModelError) as caught:
        load_model(str(path))
    assert str(path) in str(caught.value)
    assert "parse" in str(caught.value)


def test_file_failing_the_checker_is_a_model_error(tmp_path: Path) -> None:
    path = tmp_path / "unchecked.onnx"
    path.write_bytes(_unchecked_model().SerializeToString())
    with pytest.raises(ModelError) as caught:
        load_model(str(path))
    assert str(path) in str(caught.value)
    assert "missing" in str(caught.value)


def test_directory_is_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError):
        load_model(str(tmp_path))


def test_unknown_name_is_not_found_listing_the_zoo() -> None:
    with pytest.raises(NotFound) as caught:
        load_model("no_such_model")
    assert "no_such_model" in str(caught.value)
    assert all(name in str(caught.value) for name in ZOO_NAMES)


def test_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_model(str(tmp_path / "absent.onnx"))


def test_model_from_bytes_accepts_a_valid_model() -> None:
    data = build_model("simplenet").SerializeToString()
    assert model_from_bytes(data, "upload.onnx").SerializeToString() == data


@pytest.mark.parametrize("data", [b"", b"\x00\xffjunk", _unchecked_model().SerializeToString()])
def test_model_from_bytes_rejects_invalid_data_naming_the_upload(data: bytes) -> None:
    with pytest.raises(ModelError) as caught:
        model_from_bytes(data, "upload.onnx")
    assert "upload.onnx" in str(caught.value)
