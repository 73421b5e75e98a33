"""`synergy demo` runs end to end, prints per-app rates, exits 0 and leaves no process behind."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def processes_mentioning(text: str) -> list[int]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                found.append(int(cmdline.parent.name))
        except OSError:
            continue
    return found


def test_demo_runs_and_cleans_up(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "synergy.cli.main", "demo", "--duration", "8", "--log-dir", str(tmp_path / "logs")],
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = completed.stdout
    match = re.search(r"coordinator at (127\.0\.0\.1:\d+)", out)
    assert match, out
    rates = re.findall(r"^(?!system)(\S+)\s+\S+\s+([\d.]+) frames/s", out, flags=re.MULTILINE)
    assert len(rates) == 3, out
    assert all(float(rate) > 0 for _, rate in rates), out
    assert "through the coordinator 0" in out
    assert "all processes stopped" in out
    # Nothing left: no agent still pointing at that coordinator, and its port is closed.
    assert processes_mentioning(f"--coordinator\x00{match.group(1)}") == []
    host, port = match.group(1).split(":")
    with pytest.raises(OSError), socket.create_connection((host, int(port)), timeout=1):
        pass
