"""Offline planning CLI (files in, plan out), space-file parsing, and a bench --quick smoke test.

No timing assertions: the bench test only checks that the outputs are well-formed.
"""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from synergy.errors import InvalidArgument, NotFound
from synergy.planning.space_files import load_apps, load_space

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"

SPACE = """
devices:
  - name: glasses
    board: max78000
    sensors: [{type: camera, rate_hz: 30}]
    outputs: [display]
    link: ble5_2m
  - name: watch
    board: max78002
    outputs: [{type: display}, haptics]
    link: {bandwidth_bytes_per_s: 100000, latency_s: 0.01, per_message_overhead_bytes: 4}
"""
APPS = """
apps:
  - {name: digits, model: convnet5, source: camera, target: display}
  - {name: objects, model: simplenet, source: camera, target: display, target_device: watch, max_rate_hz: 10}
"""


def run(argv: list[str]) -> tuple[int, str, str]:
    from synergy.cli.plan_offline import add_offline_arguments, run_offline

    parser = argparse.ArgumentParser()
    add_offline_arguments(parser)
    out, err = io.StringIO(), io.StringIO()
    code = run_offline(parser.parse_args(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def write(tmp_path: Path, space: str = SPACE, apps: str = APPS) -> tuple[str, str]:
    (tmp_path / "space.yaml").write_text(space)
    (tmp_path / "apps.yaml").write_text(apps)
    return str(tmp_path / "space.yaml"), str(tmp_path / "apps.yaml")


def test_json_plan_has_the_documented_shape(tmp_path: Path) -> None:
    space, apps = write(tmp_path)
    code, out, err = run(["--space", space, "--apps", apps, "--json"])
    assert code == 0, err
    data = json.loads(out)
    assert {"method", "system_throughput", "bottleneck", "planning_ms", "optimal", "apps"} <= set(data)
    assert data["method"] == "synergy" and isinstance(data["optimal"], bool)
    assert data["system_throughput"] == pytest.approx(sum(a["rate"] for a in data["apps"]))
    names = {a["name"]: a for a in data["apps"]}
    assert set(names) == {"digits", "objects"}
    for entry in data["apps"]:
        assert {"name", "rate", "latency_ms", "stages", "source", "target"} <= set(entry)
        assert entry["source"] == "glasses"
        for stage in entry["stages"]:
            assert set(stage) == {"device", "layers"} and len(stage["layers"]) == 2
    assert names["objects"]["target"] == "watch"
    assert names["objects"]["rate"] <= 10 + 1e-9


@pytest.mark.parametrize("method", ["exact", "source_only", "spread", "random"])
def test_every_method_runs_from_the_cli(tmp_path: Path, method: str) -> None:
    space, apps = write(tmp_path)
    code, out, _ = run(["--space", space, "--apps", apps, "--json", "--method", method, "--seed", "2"])
    assert code == 0
    assert json.loads(out)["method"] == method


def test_table_output_and_method_list(tmp_path: Path) -> None:
    space, apps = write(tmp_path)
    code, out, _ = run(["--space", space, "--apps", apps])
    assert code == 0 and "inferences/s" in out and "digits" in out
    code, out, _ = run(["--list-methods"])
    assert code == 0 and "pipeedge" in out and "synergy" in out
    code, out, _ = run(["--list-methods", "--json"])
    assert {m["name"] for m in json.loads(out)} >= {"synergy", "exact", "spread"}


def test_unplaceable_app_is_an_error_naming_the_constraint(tmp_path: Path) -> None:
    space, apps = write(
        tmp_path,
        apps="apps:\n  - {name: hear, model: kws20_v3, source: microphone, target: display}\n"
        "  - {name: digits, model: convnet5, source: camera, target: display}\n",
    )
    code, out, err = run(["--space", space, "--apps", apps, "--json"])
    assert code == 1
    assert "'hear' cannot be placed: sensor:" in err and "microphone" in err
    data = json.loads(out)
    assert "hear" in data["unplaced"] and [a["name"] for a in data["apps"]] == ["digits"]


def test_bad_input_is_reported_not_raised(tmp_path: Path) -> None:
    space, apps = write(tmp_path, apps="apps:\n  - {name: x, model: nosuchmodel, source: camera, target: display}\n")
    code, _, err = run(["--space", space, "--apps", apps])
    assert code == 1 and err.startswith("error:")
    code, _, err = run(["--space", space, "--apps", apps, "--method", "magic"])
    assert code == 1 and "magic" in err
    code, _, err = run(["--space", space])
    assert code == 1 and "--apps" in err


def test_space_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("devices:\n  - {name: a, board: max78000, colour: red}\n")
    with pytest.raises(InvalidArgument, match="colour"):
        load_space(bad)
    bad.write_text("devices:\n  - {name: a, board: max78000, link: carrier_pigeon}\n")
    with pytest.raises(NotFound, match="carrier_pigeon"):
        load_space(bad)
    bad.write_text("devices:\n  - {name: a, board: max99999}\n")
    with pytest.raises(NotFound, match="max99999"):
        load_space(bad)
    bad.write_text("apps:\n  - {name: a, model: convnet5, source: camera}\n")
    with pytest.raises(InvalidArgument, match="target"):
        load_apps(bad)


def test_shipped_examples_load_and_plan() -> None:
    space = load_space(EXAMPLES / "space-body.yaml")
    assert {d.device_id for d in space.devices} >= {"glasses", "watch"}
    assert space.calibration == {"ring": 1.05}
    assert len(load_apps(EXAMPLES / "apps-body.yaml")) == 4
    code, out, err = run(
        ["--space", str(EXAMPLES / "space-usb-max78000.yaml"), "--apps", str(EXAMPLES / "apps-vision.yaml"), "--json"]
    )
    assert code == 0, err
    assert len(json.loads(out)["apps"]) == 3


def test_bench_quick_writes_well_formed_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from synergy.cli.bench_cmd import register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["bench", "--quick", "--json", "--out", str(tmp_path)])
    assert args.func(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert {"ratio_vs_baseline", "min_ratio_vs_best_baseline", "max_gap_to_exact", "planning_ms_p95"} <= set(summary)
    assert {"source_only", "pipeedge", "exo", "greedy_first_fit", "random"} <= set(summary["ratio_vs_baseline"])
    assert all(isinstance(v, float) for v in summary["planning_ms_p95"].values())
    assert "[1/" in captured.err  # progress on stderr
    rows = (tmp_path / "bench.csv").read_text().splitlines()
    assert rows[0].startswith("workload,size,devices,apps,method,throughput")
    data = json.loads((tmp_path / "bench.json").read_text())
    assert len(rows) - 1 == len(data["rows"]) > 0
    assert {r["method"] for r in data["rows"]} >= {"synergy", "exact", "source_only"}
    png = tmp_path / "bench.png"
    assert not png.exists() or png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
