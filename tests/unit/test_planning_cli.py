"""Offline planning CLI (files in, plan out) and space-file parsing.

The ``synergy bench --quick`` smoke test takes tens of seconds: it is in tests/slow.
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


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """`synergy plan` keeps a planning cache under $XDG_CACHE_HOME: not the user's, in tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))


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
    assert [u["name"] for u in data["unplaced"]] == ["hear"] and [a["name"] for a in data["apps"]] == ["digits"]


def test_bad_input_is_reported_not_raised(tmp_path: Path) -> None:
    space, apps = write(tmp_path, apps="apps:\n  - {name: x, model: nosuchmodel, source: camera, target: display}\n")
    code, _, err = run(["--space", space, "--apps", apps])
    assert code == 2 and err.startswith("synergy plan: ")  # bad input: exit 2 (synergy.cli.exits)
    code, _, err = run(["--space", space, "--apps", apps, "--method", "magic"])
    assert code == 2 and "magic" in err
    code, _, err = run(["--space", space])
    assert code == 2 and "--apps" in err


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


def test_submit_sends_minimum_rate_and_weight_to_the_coordinator() -> None:
    """``synergy submit --min-rate --weight`` reaches the spec the coordinator receives."""
    import asyncio

    from synergy.cli import client_cmds
    from synergy.cli.main import build_parser
    from synergy.sdk import AppRequest
    from synergy.types import AppInfo, AppSpec, AppState

    args = build_parser().parse_args(
        ["submit", "camera", "simplenet", "display", "--min-rate", "5", "--weight", "2.5", "--insecure"]
    )
    sent: list[AppSpec] = []

    class Client:
        async def submit_app(self, request: AppRequest) -> AppInfo:
            sent.append(request.spec())
            return AppInfo(app_id="a1", spec=request.spec(), state=AppState.WAITING, reason="admission: ...")

    status = asyncio.run(client_cmds._submit_body(Client(), args))  # type: ignore[arg-type]
    assert status == 0
    assert (sent[0].min_rate_hz, sent[0].weight) == (5.0, 2.5)


def test_coordinator_objective_flag_reaches_its_planner() -> None:
    from coordinator.service import Coordinator, CoordinatorConfig
    from synergy.cli.main import build_parser

    args = build_parser().parse_args(["coordinator", "--objective", "fair", "--insecure", "--ephemeral"])
    assert args.objective == "fair"
    coordinator = Coordinator(CoordinatorConfig(objective=args.objective))
    assert coordinator._planner.options.objective == "fair"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["coordinator", "--objective", "fastest", "--insecure"])
