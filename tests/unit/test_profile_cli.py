"""``synergy profile``: tables, JSON shape and exit codes (run() called through argparse)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from synergy.cli import profile_cmd
from synergy.models.zoo import ZOO_NAMES, build_model


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    profile_cmd.register(sub)
    return parser.parse_args(["profile", *argv])


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    args = parse(*argv)
    code = args.func(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


LAYER_KEYS = {"index", "op", "in_shape", "out_shape", "weights", "weight_bytes", "bias_bytes", "out_bytes", "cycles"}
TOP_KEYS = {
    "model",
    "board",
    "layers",
    "total_cycles",
    "latency_us",
    "cpu_us",
    "weights",
    "weight_bytes",
    "bias_bytes",
    "fits",
    "reasons",
}


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "convnet5", "--json")
    assert code == 0
    data = json.loads(out)
    assert set(data) >= TOP_KEYS
    assert data["model"] == "convnet5" and data["board"] == "max78000"
    assert len(data["layers"]) == 5
    for index, layer in enumerate(data["layers"]):
        assert set(layer) >= LAYER_KEYS and layer["index"] == index
        assert isinstance(layer["in_shape"], list) and isinstance(layer["cycles"], int)
    assert data["weights"] == 71_148 and data["weight_bytes"] == 71_148 and data["bias_bytes"] == 10
    assert data["total_cycles"] == 1 + sum(layer["cycles"] for layer in data["layers"])
    assert data["latency_us"] == pytest.approx(data["total_cycles"] / 50e6 * 1e6)
    assert data["cpu_us"] > 0
    assert data["fits"] is True and data["reasons"] == []
    assert "profiled in" in err and err.strip().endswith("ms")


def test_json_verdict_on_a_board_that_does_not_fit(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "efficientnetv2", "--json", "--board", "max78000")
    assert code == 0
    data = json.loads(out)
    assert data["fits"] is False and any(r.startswith("depthwise") for r in data["reasons"])
    assert {b["board"]: b["fits"] for b in data["boards"]} == {"max78000": False, "max78002": True}
    code, out, _ = run(capsys, "efficientnetv2", "--json", "--board", "max78002")
    data = json.loads(out)
    assert data["fits"] is True and data["latency_us"] == pytest.approx(data["total_cycles"] / 200e6 * 1e6)


def test_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _err = run(capsys, "kws20_v3")
    assert code == 0
    assert "kws20_v3 on max78000" in out
    assert "conv1d" in out and "128x128" in out and "linear" in out
    assert "max78000: yes" in out and "max78002: yes" in out
    code, out, _ = run(capsys, "mobilenetv2_075")
    assert code == 0 and "max78000: no: layer count" in out


def test_onnx_file_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "my_net.onnx"
    path.write_bytes(build_model("convnet5").SerializeToString())
    code, out, _ = run(capsys, str(path), "--json")
    assert code == 0 and json.loads(out)["model"] == "my_net"
    code, out, err = run(capsys, "no_such_model")
    assert code == 2 and out == "" and "no_such_model" in err
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not onnx")
    code, _, err = run(capsys, str(broken))
    assert code == 2 and "broken.onnx" in err and "Traceback" not in err
    code, _, err = run(capsys, "convnet5", "--board", "no_such_board")
    assert code == 2 and "no_such_board" in err
    code, _, err = run(capsys)
    assert code == 2 and "MODEL" in err


def test_list(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--list")
    assert code == 0 and out.split() == list(ZOO_NAMES)


def test_all_profiles_every_zoo_model_and_prints_the_time(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--all", "--json")
    assert code == 0
    profiles = json.loads(out)
    assert [p["model"] for p in profiles] == list(ZOO_NAMES)
    verdicts = {p["model"]: p["fits"] for p in profiles}
    assert verdicts["convnet5"] and not verdicts["mobilenetv2_075"]
    assert "profiled 10 models in" in err
