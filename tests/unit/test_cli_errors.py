"""The `synergy` command line's friction points that need no cluster: each command as a user types it.

Each test runs the exact command (in-process ``main()`` with capsys, or a ``synergy`` process
where a signal or a pipe is involved) and checks it ends with a one-line error saying what to
do and the documented exit status (docs/cli.md), never a traceback.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cli_logs import logs_outlive_the_test

from synergy.cli import client_cmds
from synergy.cli import main as cli_main
from synergy.cli.exits import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_PIPE, EXIT_USAGE, exit_status
from synergy.errors import (
    AddressInUse,
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    SynergyError,
    Unavailable,
)
from tests.support import sigint_as_in_a_terminal

pytestmark = pytest.mark.usefixtures(logs_outlive_the_test.__name__)

EXAMPLES = Path(__file__).resolve().parents[2] / "deploy" / "examples"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli_main.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def one_line_error(err: str, command: str) -> str:
    """The error line of ``err`` (log lines of the --insecure warning aside); asserts its form."""
    lines = [line for line in err.splitlines() if not line.startswith("{") and "plaintext_grpc" not in line]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"synergy {command}: "), err
    assert "Traceback" not in err
    return lines[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SYNERGY_COORDINATOR", "SYNERGY_TLS_DIR", "SYNERGY_DEVICE_ID"):
        monkeypatch.delenv(name, raising=False)


# -- tracebacks that were ----------------------------------------------------------------------


def test_submit_of_a_missing_model_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "submit", "--insecure", "camera", "./nope.onnx", "display")
    assert code == EXIT_USAGE and out == ""
    line = one_line_error(err, "submit")
    assert "nope.onnx" in line and "No such file" in line


def test_agent_with_a_missing_device_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "agent", "--insecure", "--device-file", "nope.yaml")
    assert code == EXIT_USAGE
    assert "nope.yaml" in one_line_error(err, "agent")


def _with_closed_stdout(*argv: str) -> tuple[int, str]:
    """Run ``synergy ARGV`` whose stdout nobody reads any more (``| head`` that has exited)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "synergy.cli.main", *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()  # before it prints: its first write meets a pipe without a reader
    err = child.stderr.read().decode()
    child.stderr.close()
    return child.wait(timeout=120), err


@pytest.mark.parametrize(
    "argv",
    [
        ("profile", "--all"),
        (
            "plan",
            "--space",
            str(EXAMPLES / "space-body.yaml"),
            "--apps",
            str(EXAMPLES / "apps-body.yaml"),
            "--no-cache",
        ),
    ],
    ids=["profile --all | head", "plan --space | head"],
)
def test_a_reader_that_went_away_ends_the_command_quietly(argv: tuple[str, ...]) -> None:
    code, err = _with_closed_stdout(*argv)
    assert code == EXIT_PIPE
    assert "Traceback" not in err and "BrokenPipe" not in err, err


def test_ctrl_c_is_status_130_without_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every command: a KeyboardInterrupt anywhere under main() is 130 and says nothing."""

    def interrupted(*_: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(client_cmds, "_run", interrupted)
    code, out, err = run(capsys, "results", "--insecure")
    assert (code, out, err) == (EXIT_INTERRUPTED, "", "")


def test_ctrl_c_on_results_in_a_real_process() -> None:
    """`synergy results` waits for a coordinator that never answers; Ctrl-C ends it with 130."""
    with socket.socket() as silent:  # accepts connections, never speaks: the stream just waits
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        child = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "synergy.cli.main",
                "results",
                "--insecure",
                "--coordinator",
                f"127.0.0.1:{silent.getsockname()[1]}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "SYNERGY_LOG_FORMAT": "json"},
            preexec_fn=sigint_as_in_a_terminal,
        )
        conn, _ = silent.accept()  # it is in its event loop, dialling
        try:
            child.send_signal(signal.SIGINT)
            out, err = child.communicate(timeout=30)
        finally:
            conn.close()
    assert child.returncode == EXIT_INTERRUPTED, err
    assert out == b"" and b"Traceback" not in err and b"KeyboardInterrupt" not in err


# -- confusing errors that were ----------------------------------------------------------------


def test_a_host_without_port_dials_the_coordinators_default_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "apps", "--insecure", "--coordinator", "localhost")
    if code == 0:  # a coordinator happens to listen on localhost:50051: dialled right, then
        return
    line = one_line_error(err, "apps")
    assert "localhost:50051" in line and ":443" not in line


def test_a_url_is_refused_saying_host_port(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "apps", "--insecure", "--coordinator", "http://localhost:50051")
    assert code == EXIT_USAGE
    line = one_line_error(err, "apps")
    assert "give host:port" in line and "Misformatted" not in line


def test_a_refused_connection_says_to_start_a_coordinator(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "devices", "--insecure", "--coordinator", f"127.0.0.1:{free_port()}")
    assert code == EXIT_FAILED
    line = one_line_error(err, "devices")
    assert "synergy coordinator" in line and "SYNERGY_COORDINATOR" in line


def test_plan_method_against_a_live_coordinator_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "plan", "--insecure", "--method", "exact")
    assert code == EXIT_USAGE
    line = one_line_error(err, "plan")
    assert "--method applies to offline planning" in line and "--space" in line


def test_usage_errors_are_one_line_too(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main.main(["submit", "camera"])
    assert exit_info.value.code == EXIT_USAGE
    _, err = capsys.readouterr()
    assert err.strip().splitlines() == [
        "synergy submit: the following arguments are required: model, target (see `synergy submit --help`)"
    ]


def test_profile_table_cells_are_capped(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "profile", "--all")
    assert code == 0
    assert max(len(line) for line in out.splitlines()) < 200, "a column padded to hundreds of characters"
    assert "…" in out  # the long "does not fit" reasons are ellipsized (the JSON has them whole)


# -- the exit status convention ------------------------------------------------------------------


def _remote(error: SynergyError) -> SynergyError:
    import grpc

    class Rpc(grpc.RpcError):
        pass

    error.__cause__ = Rpc()
    return error


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidArgument("bad"), EXIT_USAGE),
        (NotFound("no app"), EXIT_USAGE),
        (FailedPrecondition("no TLS directory"), EXIT_USAGE),
        (AddressInUse("taken"), EXIT_USAGE),
        (Unavailable("not reachable"), EXIT_FAILED),
        (_remote(FailedPrecondition("app not running")), EXIT_FAILED),
        (_remote(AlreadyExists("device id held")), EXIT_FAILED),
        (_remote(NotFound("unknown app id")), EXIT_USAGE),
    ],
)
def test_exit_status_convention(error: SynergyError, status: int) -> None:
    assert exit_status(error) == status
