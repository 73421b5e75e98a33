"""The lean daemon entry point: the same parsers as ``synergy``, without loading what an idle agent never uses."""

from __future__ import annotations

import json
import subprocess
import sys

from synergy.cli import daemon_main, daemons
from synergy.cli.main import build_parser as full_parser


def test_it_parses_the_daemons_as_the_full_command_does() -> None:
    argv = ["--log-level", "warning", "agent", "--preset", "ring", "--device-id", "ring-7", "--insecure"]
    lean, full = daemon_main.build_parser().parse_args(argv), full_parser().parse_args(argv)
    assert vars(lean) == vars(full)
    coordinator = daemon_main.build_parser().parse_args(["coordinator", "--insecure", "--no-calibration"])
    assert coordinator.func is daemons._run_coordinator and coordinator.no_calibration


def test_an_agent_without_partitions_or_broker_loads_neither_onnx_nor_mqtt() -> None:
    """onnx + onnxruntime (~30 MB) wait for the first partition, the MQTT client (~14 MB) for a broker."""
    code = (
        "import json, sys; import synergy.cli.daemon_main, agent.service; "
        "print(json.dumps(sorted(m for m in ('onnx', 'onnxruntime', 'aiomqtt', 'paho') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []
