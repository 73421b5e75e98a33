"""What the CLI and the SDK print and accept, without a cluster: JSON documents, the one plan
schema, class labels, frame numbers, table cells, coordinator addresses, apps by name, inputs."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import numpy as np
import pytest

from synergy.addresses import coordinator_target
from synergy.cli.client_cmds import format_result
from synergy.cli.plan_offline import add_offline_arguments, run_offline
from synergy.documents import PLAN_APP_KEYS, PLAN_KEYS, plan_document, to_json
from synergy.errors import InvalidArgument, NotFound
from synergy.hardware.model import TensorSpec
from synergy.labels import CIFAR100_FINE, KWS20_V3, MNIST, MODEL_LABELS, label_summary
from synergy.models.zoo import ZOO_NAMES
from synergy.reports import Result
from synergy.sdk import find_app, input_tensor
from synergy.tables import MAX_CELL_CHARS, format_apps, frame_number, render_table
from synergy.types import AppInfo, AppSpec, AppState, AppStats, ExecutionPlan, JointPlan, Stage

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def app(app_id: str, name: str = "", model: str = "convnet5", inputs: tuple[TensorSpec, ...] = ()) -> AppInfo:
    spec = AppSpec(app_id, name or app_id, model, "camera", "display")
    return AppInfo(app_id, spec, AppState.RUNNING, stats=AppStats(frames_delivered=163), inputs=inputs)


LIVE_PLAN = JointPlan(
    epoch=3,
    plans=(ExecutionPlan("app-1", "glasses", (Stage("glasses", 0, 2), Stage("watch", 3, 4)), "watch", 9.5, 0.02),),
    system_throughput=9.5,
    bottleneck="glasses.camera",
    method="synergy",
    unplaced={"app-2": "sensor: no microphone"},
    quarantined={"ring": "failed deploying"},
)


# -- JSON -----------------------------------------------------------------------------------


def test_json_numbers_are_numbers() -> None:
    document = json.loads(json.dumps(to_json([app("app-1", "digits")])))
    assert document[0]["stats"]["frames_delivered"] == 163  # not "163"
    assert document[0]["state"] == "running" and document[0]["spec"]["name"] == "digits"
    result = Result("app-1", 2, (2 << 32) | 258, 1.0, 1.5)
    assert json.loads(json.dumps(to_json(result)))["seq"] == 8589934850
    assert to_json(float("nan")) is None and to_json(b"\x01\x02") == "AQI="


def test_plan_json_is_one_schema_online_and_offline(tmp_path: Path) -> None:
    """The live plan's document and `synergy plan --space --json`'s have the same keys."""
    live = plan_document(LIVE_PLAN, {"app-1": "digits"})
    parser = argparse.ArgumentParser()
    add_offline_arguments(parser)
    out = io.StringIO()
    args = parser.parse_args(
        ["--space", str(EXAMPLES / "space-body.yaml"), "--apps", str(EXAMPLES / "apps-body.yaml"), "--json"]
    )
    args.no_cache = True
    run_offline(args, out=out, err=io.StringIO())
    offline = json.loads(out.getvalue())
    assert set(live) == set(offline) == set(PLAN_KEYS)
    assert set(live["apps"][0]) == set(offline["apps"][0]) == set(PLAN_APP_KEYS)
    assert live["apps"][0]["name"] == "digits" and live["unplaced"][0]["app_id"] == "app-2"
    assert live["planning_ms"] is None and isinstance(offline["planning_ms"], float)


# -- what people read -----------------------------------------------------------------------


def test_labels_of_the_zoo_datasets() -> None:
    assert len(MNIST) == 10 and len(KWS20_V3) == 21 and len(CIFAR100_FINE) == 100
    assert CIFAR100_FINE[72] == "seal" and CIFAR100_FINE[0] == "apple" and CIFAR100_FINE[99] == "worm"
    assert KWS20_V3[:4] == ("up", "down", "left", "right") and KWS20_V3[-1] == "unknown"
    assert set(MODEL_LABELS) <= set(ZOO_NAMES)
    assert label_summary("simplenet", "class 72 (score 1464)") == 'class 72 "seal" (score 1464)'
    assert label_summary("kws20_v3", "class 6 (score -3)") == 'class 6 "yes" (score -3)'
    assert label_summary("my_model", "class 72 (score 1464)") == "class 72 (score 1464)"
    assert label_summary("unet", "map of 30976 values") == "map of 30976 values"


def test_a_result_line_shows_the_frame_number_and_the_class_name() -> None:
    result = Result("app-1", 2, (2 << 32) | 258, 1.0, 1.004, device_id="watch", output_type="display",
                    summary="class 72 (score 1464)")  # fmt: skip
    line = format_result(result, app("app-1", "objects", model="simplenet"))
    assert line.startswith('app-1 (objects) frame 258 epoch 2 -> display@watch: class 72 "seal" (score 1464)')
    assert "8589934850" not in line and frame_number(8589934850) == 258


def test_table_cells_are_capped_with_an_ellipsis() -> None:
    table = render_table(["model", "fits"], [["widenet", "no: " + "x" * 400], ["convnet5", "yes"]])
    assert max(len(line) for line in table.splitlines()) <= len("convnet5  ") + MAX_CELL_CHARS
    assert "…" in table


def test_the_apps_table_shows_names() -> None:
    table = format_apps([app("app-1", "digits"), app("app-2")], {})
    header, _, first, second = table.splitlines()
    assert header.split()[:2] == ["app", "name"]
    assert first.split()[:2] == ["app-1", "digits"] and second.split()[:2] == ["app-2", "-"]


# -- what the SDK and the CLI accept --------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "target"),
    [
        ("localhost", "localhost:50051"),
        ("10.0.0.7:6000", "10.0.0.7:6000"),
        ("::1", "[::1]:50051"),
        ("[::1]:7000", "[::1]:7000"),
        ("dns:///coord.local:50051", "dns:///coord.local:50051"),
        (" 127.0.0.1 ", "127.0.0.1:50051"),
    ],
)
def test_coordinator_addresses(given: str, target: str) -> None:
    assert coordinator_target(given) == target


@pytest.mark.parametrize("given", ["http://localhost:50051", "https://coord", "grpc://h:1", "", "h:http", ":50051"])
def test_bad_coordinator_addresses_say_host_port(given: str) -> None:
    with pytest.raises(InvalidArgument, match=r"host:port|port number"):
        coordinator_target(given)


def test_apps_by_id_or_name() -> None:
    apps = [app("app-1", "digits"), app("app-2", "cam"), app("app-3", "cam"), app("app-4", "app-1")]
    assert find_app(apps, "app-1").app_id == "app-1"  # an id wins over a name
    assert find_app(apps, "digits").app_id == "app-1"
    with pytest.raises(InvalidArgument, match="ambiguous: apps app-2, app-3"):
        find_app(apps, "cam")
    with pytest.raises(NotFound, match="no app has the id or name 'nope'"):
        find_app(apps, "nope")


def test_an_input_of_the_wrong_shape_names_the_expected_one() -> None:
    digits = app("app-1", "digits", inputs=(TensorSpec("input", (1, 1, 28, 28), "int8"),))
    ((_, array),) = input_tensor(digits, np.zeros((1, 28, 28), np.int8)).items()
    assert np.asarray(array).shape == (1, 1, 28, 28)  # the batch dimension added
    with pytest.raises(InvalidArgument, match=r"int8\[1, 1, 28, 28\].*got float64\[3, 3\]"):
        input_tensor(digits, np.zeros((3, 3)))
    with pytest.raises(InvalidArgument, match=r"takes int8\[1, 1, 28, 28\].*integers in \[-128, 127\]"):
        input_tensor(digits, np.full((1, 1, 28, 28), 0.5))
