"""deploy/rpi: the Raspberry Pi host — install.sh into a staging root (no root, nothing of the
real system touched: the system commands it may run are replaced by recorders on PATH), the
systemd unit, the udev rule, and the settings file against the agent's real parser."""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import inspect
import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import synergy.logs
from agent.serial_board import SerialTarget, parse_serial_board
from synergy.cli import daemon_main
from synergy.cli.daemons import device_from_args
from synergy.security import ca
from synergy.security.tls import TLS_DIR_ENV, tls_from_args

REPO = Path(__file__).resolve().parents[2]
RPI = REPO / "deploy" / "rpi"
INSTALL = RPI / "install.sh"
UNIT = RPI / "synergy-agent.service"
RULES = RPI / "99-synergy-board.rules"
MODULES = RPI / "synergy-modules.conf"
ENV_EXAMPLE = RPI / "agent.env.example"

#: What install.sh may run on a real system; in a staging root it must run none of them.
SYSTEM_COMMANDS = ("useradd", "usermod", "userdel", "groupadd", "chown", "systemctl", "udevadm", "modprobe")
#: Read by the agent itself (environment defaults of its options), not passed as flags.
NATIVE = {
    "SYNERGY_COORDINATOR": "coordinator",
    "SYNERGY_DEVICE_ID": "device_id",
    "SYNERGY_AGENT_BIND": "bind",
    "SYNERGY_ADVERTISE": "advertise",
    "SYNERGY_MQTT": "mqtt",
}
HAS_OPENSSL = shutil.which("openssl") is not None

# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("ca")
    ca.init_ca(directory)
    return directory


@pytest.fixture(scope="module")
def agent_tls(ca_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What `synergy ca issue --role agent --name ring-1 --san 10.0.0.7 --out DIR` writes."""
    out = tmp_path_factory.mktemp("tls") / "ring-1"
    ca.issue(ca_dir, role="agent", name="ring-1", sans=["10.0.0.7"], out_dir=out)
    return out


@pytest.fixture
def recorders(tmp_path: Path) -> tuple[Path, Path]:
    """A PATH directory whose system commands only append their command line to a log."""
    bin_dir, log = tmp_path / "fake-bin", tmp_path / "system-commands.log"
    bin_dir.mkdir()
    for name in SYSTEM_COMMANDS:
        script = bin_dir / name
        script.write_text(f'#!/bin/sh\necho "{name} $*" >> "{log}"\n')
        script.chmod(0o755)
    return bin_dir, log


def run_install(root: Path, *args: str, path_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DESTDIR"}
    if path_dir is not None:
        env["PATH"] = f"{path_dir}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(
        ["bash", str(INSTALL), "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=240,
        check=False,
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def snapshot(root: Path, skip: str = "opt/") -> dict[str, tuple[int, str, int]]:
    """Every file and directory under root: mode, content digest, modification time."""
    seen: dict[str, tuple[int, str, int]] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if rel.startswith(skip):
            continue
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        seen[rel] = (mode(path), digest, path.stat().st_mtime_ns)
    return seen


def parse_env(text: str) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """agent.env: the active NAME=value lines, and the commented-out alternatives (#NAME=value)."""
    active: dict[str, str] = {}
    alternatives: list[tuple[str, str]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        commented = re.fullmatch(r"#(SYNERGY_[A-Z_]+)=(.*)", line)
        if commented:
            alternatives.append((commented[1], commented[2]))
            continue
        if line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line)
        assert match, f"agent.env.example:{number}: not NAME=value: {line!r}"
        assert match[1] not in active, f"agent.env.example:{number}: {match[1]} set twice"
        assert not match[2].startswith(("'", '"')), f"agent.env.example:{number}: no quotes needed"
        active[match[1]] = match[2]
    return active, alternatives


UnitSections = dict[str, list[tuple[str, str]]]


def parse_unit(text: str) -> UnitSections:
    """A systemd unit as sections of (key, value) pairs, in order (keys may repeat)."""
    sections: UnitSections = {}
    current: str | None = None
    logical = re.sub(r"\\\n", " ", text)  # continuation lines
    for number, raw in enumerate(logical.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        header = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if header:
            assert header[1] not in sections, f"unit line {number}: section [{header[1]}] twice"
            current = header[1]
            sections[current] = []
            continue
        assert current is not None, f"unit line {number}: a setting before any section"
        key, sep, value = line.partition("=")
        assert sep, f"unit line {number}: not Key=Value: {line!r}"
        assert re.fullmatch(r"[A-Z][A-Za-z]+", key), f"unit line {number}: bad key {key!r}"
        sections[current].append((key, value))
    return sections


def values(sections: UnitSections, section: str, key: str) -> list[str]:
    return [v for k, v in sections.get(section, []) if k == key]


def one(sections: UnitSections, section: str, key: str) -> str:
    found = values(sections, section, key)
    assert len(found) == 1, f"[{section}] {key}: expected once, found {found}"
    return found[0]


def unit_environment() -> dict[str, str]:
    """The unit's Environment= defaults, overridden by the example settings file (as systemd does)."""
    sections = parse_unit(UNIT.read_text())
    env: dict[str, str] = {}
    for assignment in values(sections, "Service", "Environment"):
        for word in shlex.split(assignment):
            name, _, value = word.partition("=")
            env[name] = value
    env.update(parse_env(ENV_EXAMPLE.read_text())[0])
    return env


def expand_exec(command: str, env: dict[str, str]) -> list[str]:
    """systemd's ExecStart expansion: ${NAME} inside a word, and $NAME alone split at spaces."""
    argv: list[str] = []
    for word in shlex.split(command):
        alone = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
        if alone:
            argv.extend(env.get(alone[1], "").split())
        else:
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m[1], ""), word))
    return argv


def exec_variables(command: str) -> set[str]:
    return set(re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", command))


def agent_argv(env: dict[str, str]) -> list[str]:
    """The unit's command line with these settings, without the interpreter and module."""
    argv = expand_exec(one(parse_unit(UNIT.read_text()), "Service", "ExecStart"), env)
    assert argv[:3] == ["/opt/synergy/venv/bin/python", "-m", "synergy.cli.daemon_main"], argv
    return argv[3:]


def fake_wheel(directory: Path) -> Path:
    """A tiny `synergy` wheel (a console script printing a line), so pip needs no index."""
    dist = "synergy-0.1.0.dist-info"
    files = {
        "synergy_fake_rpi/__init__.py": "def main() -> None:\n    print('synergy from the wheelhouse')\n",
        f"{dist}/METADATA": "Metadata-Version: 2.1\nName: synergy\nVersion: 0.1.0\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        f"{dist}/entry_points.txt": "[console_scripts]\nsynergy = synergy_fake_rpi:main\n",
    }
    wheel = directory / "synergy-0.1.0-py3-none-any.whl"
    record = []
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            data = text.encode()
            archive.writestr(name, data)
            digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
            record.append(f"{name},sha256={digest},{len(data)}")
        record.append(f"{dist}/RECORD,,")
        archive.writestr(f"{dist}/RECORD", "\n".join(record) + "\n")
    return wheel


# ---------------------------------------------------------------------------------------------
# install.sh


def test_help_shows_the_defaults(tmp_path: Path) -> None:
    done = run_install(tmp_path / "root", "--help")
    assert done.returncode == 0, done.stderr
    for default in ("/opt/synergy/venv", "/etc/synergy/agent.env", "/etc/synergy/tls", "python3", "--no-index"):
        assert default in done.stdout
    for option in ("--tls-dir", "--coordinator", "--wheel", "--source", "--wheelhouse", "--root", "--uninstall"):
        assert option in done.stdout


def test_bash_syntax_and_shellcheck() -> None:
    subprocess.run(["bash", "-n", str(INSTALL)], check=True, timeout=30)
    assert INSTALL.read_text().splitlines()[:30].count("set -euo pipefail") == 1
    assert os.access(INSTALL, os.X_OK)
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck not installed (apt-get install shellcheck); bash -n passed")
    done = subprocess.run(["shellcheck", str(INSTALL)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout


def test_install_into_a_staging_root(tmp_path: Path, agent_tls: Path, recorders: tuple[Path, Path]) -> None:
    root = tmp_path / "root"
    bin_dir, log = recorders
    done = run_install(
        root, "--no-venv", "--tls-dir", str(agent_tls), "--coordinator", "10.0.0.1:50051", path_dir=bin_dir
    )
    assert done.returncode == 0, done.stderr
    assert not log.exists(), f"staging ran system commands: {log.read_text()}"

    expected = {
        "etc/systemd/system/synergy-agent.service": (UNIT, 0o644),
        "etc/udev/rules.d/99-synergy-board.rules": (RULES, 0o644),
        "etc/modules-load.d/synergy.conf": (MODULES, 0o644),
        "etc/synergy/tls/ca.pem": (agent_tls / "ca.pem", 0o644),
        "etc/synergy/tls/cert.pem": (agent_tls / "cert.pem", 0o644),
        "etc/synergy/tls/key.pem": (agent_tls / "key.pem", 0o600),
    }
    for rel, (source, wanted) in expected.items():
        installed = root / rel
        assert installed.read_bytes() == source.read_bytes(), rel
        assert mode(installed) == wanted, f"{rel}: {oct(mode(installed))}"
    assert mode(root / "etc/synergy/tls") == 0o700
    env_file = root / "etc/synergy/agent.env"
    assert mode(env_file) == 0o640
    settings = parse_env(env_file.read_text())[0]
    assert settings["SYNERGY_COORDINATOR"] == "10.0.0.1:50051"
    if HAS_OPENSSL:  # the device id and the address peers use, from the certificate
        assert settings["SYNERGY_DEVICE_ID"] == "ring-1"
        assert settings["SYNERGY_ADVERTISE"] == "10.0.0.7:50060"
    # Nothing outside the root, and no leftovers of the atomic copies.
    assert sorted(p.name for p in root.iterdir()) == ["etc"]
    assert not [p for p in root.rglob("*.new.*")]

    # What it would run on a real system.
    would = [line.removeprefix("would run: ") for line in done.stdout.splitlines() if line.startswith("would run: ")]
    useradd = next(cmd for cmd in would if cmd.startswith("useradd "))
    assert "--system" in useradd and "--groups dialout" in useradd and useradd.endswith(" synergy")
    key = root / "etc/synergy/tls/key.pem"
    assert f"chown synergy:synergy {key}" in would
    assert f"chown root:synergy {env_file}" in would
    for command in ("systemctl daemon-reload", "udevadm control --reload-rules", "modprobe -a cdc_acm ftdi_sio"):
        assert command in would
    assert not any(cmd.startswith("systemctl enable") for cmd in would)  # the operator enables it


def test_running_again_changes_nothing_and_keeps_an_edited_env(tmp_path: Path, agent_tls: Path) -> None:
    root = tmp_path / "root"
    first = run_install(root, "--no-venv", "--tls-dir", str(agent_tls))
    assert first.returncode == 0, first.stderr
    env_file = root / "etc/synergy/agent.env"
    edited = env_file.read_text().replace("SYNERGY_PRESET=glasses", "SYNERGY_PRESET=watch")
    edited = edited.replace("SYNERGY_COORDINATOR=COORDINATOR_HOST:50051", "SYNERGY_COORDINATOR=body.local:50051")
    env_file.write_text(edited)
    before = snapshot(root)

    for args in (["--tls-dir", str(agent_tls)], []):  # with the certificates again, and without
        again = run_install(root, "--no-venv", *args)
        assert again.returncode == 0, again.stderr
        assert snapshot(root) == before
        assert "kept" in again.stdout and "installed" not in again.stdout
        assert "try-restart" not in again.stdout  # nothing changed: a running agent is left alone
    assert env_file.read_text() == edited

    # A file changed behind its back is put back, with its mode.
    rule = root / "etc/udev/rules.d/99-synergy-board.rules"
    rule.write_text("# edited\n")
    rule.chmod(0o600)
    fixed = run_install(root, "--no-venv")
    assert fixed.returncode == 0, fixed.stderr
    assert rule.read_bytes() == RULES.read_bytes() and mode(rule) == 0o644
    assert "systemctl try-restart synergy-agent.service" in fixed.stdout


@pytest.mark.parametrize("missing", ["ca.pem", "cert.pem", "key.pem"])
def test_a_missing_certificate_file_is_refused(tmp_path: Path, agent_tls: Path, missing: str) -> None:
    partial = tmp_path / "tls"
    shutil.copytree(agent_tls, partial)
    (partial / missing).unlink()
    root = tmp_path / "root"
    done = run_install(root, "--no-venv", "--tls-dir", str(partial))
    assert done.returncode != 0
    assert f"has no {missing}" in done.stderr and "synergy ca issue" in done.stderr
    assert not (root / "etc").exists(), "refused after changing something"


def test_no_certificates_at_all_is_refused(tmp_path: Path) -> None:
    done = run_install(tmp_path / "root", "--no-venv")
    assert done.returncode != 0
    assert "no certificates" in done.stderr and "--tls-dir" in done.stderr


@pytest.mark.skipif(not HAS_OPENSSL, reason="the role and key checks use openssl")
def test_a_certificate_of_another_role_or_a_foreign_key_is_refused(
    tmp_path: Path, ca_dir: Path, agent_tls: Path
) -> None:
    client = tmp_path / "alice"
    ca.issue(ca_dir, role="client", name="alice", out_dir=client)
    done = run_install(tmp_path / "root1", "--no-venv", "--tls-dir", str(client))
    assert done.returncode != 0 and "not an agent" in done.stderr

    mixed = tmp_path / "mixed"
    shutil.copytree(agent_tls, mixed)
    shutil.copy(client / "key.pem", mixed / "key.pem")
    done = run_install(tmp_path / "root2", "--no-venv", "--tls-dir", str(mixed))
    assert done.returncode != 0 and "is not the key of" in done.stderr


def test_bad_options_are_refused(tmp_path: Path, agent_tls: Path) -> None:
    for args, message in (
        (["--frobnicate"], "unknown option"),
        (["--tls-dir"], "needs a value"),
        (["--tls-dir", str(agent_tls), "--coordinator", "no-port"], "HOST:PORT"),
        (["--purge"], "--purge goes with --uninstall"),
        (["--tls-dir", str(agent_tls), "--wheel", str(tmp_path / "nothing.whl")], "not a wheel file"),
    ):
        done = run_install(tmp_path / "root", *args)
        assert done.returncode != 0, args
        assert message in done.stderr, (args, done.stderr)


def test_the_venv_from_an_offline_wheelhouse(tmp_path: Path, agent_tls: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    wheelhouse.mkdir()
    wheel = fake_wheel(wheelhouse)
    root = tmp_path / "root"
    args = ("--tls-dir", str(agent_tls), "--wheel", str(wheel), "--wheelhouse", str(wheelhouse))
    done = run_install(root, *args, "--python", sys.executable)
    assert done.returncode == 0, done.stderr
    synergy = root / "opt/synergy/venv/bin/synergy"
    printed = subprocess.run([str(synergy)], capture_output=True, text=True, timeout=60, check=True)
    assert printed.stdout.strip() == "synergy from the wheelhouse"
    assert (root / "opt/synergy/venv/bin/python").exists()

    before = snapshot(root)
    again = run_install(root, *args)
    assert again.returncode == 0, again.stderr
    assert snapshot(root) == before  # configuration untouched; the project reinstalled in place
    assert "created" not in again.stdout


def test_uninstall_keeps_the_settings_and_purge_removes_them(tmp_path: Path, agent_tls: Path) -> None:
    root = tmp_path / "root"
    assert run_install(root, "--no-venv", "--tls-dir", str(agent_tls)).returncode == 0
    (root / "opt/synergy/venv/bin").mkdir(parents=True)

    done = run_install(root, "--uninstall")
    assert done.returncode == 0, done.stderr
    assert "would run: systemctl disable --now synergy-agent.service" in done.stdout
    for gone in (
        "etc/systemd/system/synergy-agent.service",
        "etc/udev/rules.d/99-synergy-board.rules",
        "etc/modules-load.d/synergy.conf",
        "opt/synergy",
    ):
        assert not (root / gone).exists(), gone
    assert (root / "etc/synergy/agent.env").exists() and (root / "etc/synergy/tls/key.pem").exists()

    purged = run_install(root, "--uninstall", "--purge")
    assert purged.returncode == 0, purged.stderr
    assert not (root / "etc/synergy").exists()
    assert "would run: userdel synergy" in purged.stdout


# ---------------------------------------------------------------------------------------------
# The unit


def words(text: str) -> set[str]:
    return set(text.split())


KNOWN_KEYS = {
    "Unit": words("Description Documentation Wants Requires After Before BindsTo StartLimitIntervalSec"),
    "Service": words("""
        Type User Group SupplementaryGroups Environment EnvironmentFile ExecStart WorkingDirectory Restart
        RestartSec RestartPreventExitStatus TimeoutStopSec NoNewPrivileges ProtectSystem StateDirectory
        StateDirectoryMode CacheDirectory CacheDirectoryMode ProtectHome PrivateTmp UMask DevicePolicy DeviceAllow
        CapabilityBoundingSet AmbientCapabilities RestrictAddressFamilies RestrictNamespaces RestrictRealtime
        RestrictSUIDSGID LockPersonality ProtectClock ProtectHostname ProtectKernelTunables ProtectKernelModules
        ProtectKernelLogs ProtectControlGroups SystemCallArchitectures PrivateDevices"""),
    "Install": {"WantedBy"},
}
BOOLEANS = words("""
    NoNewPrivileges PrivateTmp RestrictNamespaces RestrictRealtime RestrictSUIDSGID LockPersonality ProtectClock
    ProtectHostname ProtectKernelTunables ProtectKernelModules ProtectKernelLogs ProtectControlGroups
    PrivateDevices""")


def test_the_unit_is_well_formed(tmp_path: Path) -> None:
    sections = parse_unit(UNIT.read_text())
    assert list(sections) == ["Unit", "Service", "Install"]
    for section, pairs in sections.items():
        for key, value in pairs:
            assert key in KNOWN_KEYS[section], f"[{section}] {key}: not a key this unit is expected to use"
            if key in BOOLEANS:
                assert value in ("yes", "no", "true", "false"), f"{key}={value}"

    assert one(sections, "Service", "User") == "synergy"
    assert "dialout" in one(sections, "Service", "SupplementaryGroups").split()
    assert one(sections, "Service", "EnvironmentFile") == "/etc/synergy/agent.env"
    assert one(sections, "Service", "Restart") == "on-failure"
    assert 1 <= float(one(sections, "Service", "RestartSec")) <= 60
    assert "network-online.target" in one(sections, "Unit", "Wants").split()
    assert "network-online.target" in one(sections, "Unit", "After").split()
    assert one(sections, "Install", "WantedBy") == "multi-user.target"
    # Hardening that leaves the serial port reachable.
    assert one(sections, "Service", "NoNewPrivileges") == "yes"
    assert one(sections, "Service", "ProtectSystem") == "strict"
    assert one(sections, "Service", "StateDirectory") == "synergy"
    assert one(sections, "Service", "ProtectHome") == "yes"
    assert one(sections, "Service", "PrivateTmp") == "yes"
    assert values(sections, "Service", "PrivateDevices") in ([], ["no"])  # a private /dev hides the board
    if values(sections, "Service", "DevicePolicy") != ["auto"]:
        allowed = {v.split()[0] for v in values(sections, "Service", "DeviceAllow")}
        assert {"char-ttyACM", "char-ttyUSB"} <= allowed
        # Those groups resolve only with their drivers loaded: the modules file loads them at boot.
        assert {"cdc_acm", "ftdi_sio"} <= {ln for ln in MODULES.read_text().splitlines() if not ln.startswith("#")}

    if shutil.which("systemd-analyze") is None:
        return  # the checks above stand alone
    # verify also checks that ExecStart's program exists: point it at one that does.
    copy = tmp_path / "synergy-agent.service"
    copy.write_text(UNIT.read_text().replace("/opt/synergy/venv/bin/python", sys.executable))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    ours = [line for line in (done.stdout + done.stderr).splitlines() if copy.name in line]
    assert done.returncode == 0 and not ours, done.stdout + done.stderr


def test_the_unit_runs_the_daemons_entry_point() -> None:
    assert importlib.util.find_spec("synergy.cli.daemon_main") is not None
    command = one(parse_unit(UNIT.read_text()), "Service", "ExecStart")
    assert command.startswith("/opt/synergy/venv/bin/python -m synergy.cli.daemon_main ")


# ---------------------------------------------------------------------------------------------
# Settings: every variable is read by the agent or becomes a flag it accepts


def test_every_setting_is_used() -> None:
    settings, alternatives = parse_env(ENV_EXAMPLE.read_text())
    command = one(parse_unit(UNIT.read_text()), "Service", "ExecStart")
    flags = exec_variables(command)
    read_by_agent = set(NATIVE) | {TLS_DIR_ENV, "SYNERGY_LOG_FORMAT"}
    assert set(settings) <= flags | read_by_agent, set(settings) - flags - read_by_agent
    assert flags <= set(settings), f"the unit uses settings the example does not document: {flags - set(settings)}"
    assert {name for name, _ in alternatives} <= set(settings)
    assert "SYNERGY_LOG_FORMAT" in inspect.getsource(synergy.logs)
    # The unit's own defaults agree with the example.
    sections = parse_unit(UNIT.read_text())
    defaults = dict(shlex.split(v)[0].split("=", 1) for v in values(sections, "Service", "Environment"))
    for name, value in defaults.items():
        if name in settings:
            assert settings[name] == value, f"{name}: unit default {value!r}, example {settings[name]!r}"


def test_settings_read_by_the_agent_reach_its_options(monkeypatch: pytest.MonkeyPatch, agent_tls: Path) -> None:
    for name, attribute in NATIVE.items():
        monkeypatch.setenv(name, f"value-of-{name}")
        args = daemon_main.build_parser().parse_args(["agent"])
        assert getattr(args, attribute) == f"value-of-{name}", name
    monkeypatch.setenv(TLS_DIR_ENV, str(agent_tls))
    tls = tls_from_args(daemon_main.build_parser().parse_args(["agent"]))
    assert tls is not None and str(tls.identity) == "agent:ring-1"


def test_the_unit_command_line_is_one_the_agent_accepts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNERGY_DEVICE_ID", "ring-1")  # read by the parser as its default
    env = unit_environment()
    args = daemon_main.build_parser().parse_args(agent_argv(env))
    assert args.command == "agent" and args.log_level == env["SYNERGY_LOG_LEVEL"]
    assert parse_serial_board(args.board) == SerialTarget("/dev/synergy-board", 921_600)
    device = device_from_args(args)
    assert device.device_id == "ring-1" and device.board.name == "max78000"  # a MAX78000FTHR

    # A MAX78002 EV kit: the watch preset.
    args = daemon_main.build_parser().parse_args(agent_argv({**env, "SYNERGY_PRESET": "watch"}))
    assert device_from_args(args).board.name == "max78002"

    # Every commented-out alternative in the example parses too.
    for name, value in parse_env(ENV_EXAMPLE.read_text())[1]:
        argv = agent_argv({**env, name: value})
        try:
            daemon_main.build_parser().parse_args(argv)
        except SystemExit:
            pytest.fail(f"agent.env.example's alternative {name}={value} gives {argv}, which the agent refuses")


# ---------------------------------------------------------------------------------------------
# The udev rule

UDEV_PAIR = re.compile(
    r'\s*(?P<key>[A-Z_]+)(?:\{(?P<attr>[A-Za-z0-9_]+)\})?(?P<op>==|!=|\+=|-=|:=|=)"(?P<value>[^"]*)"\s*(?:,|$)'
)
UDEV_MATCH = words("ACTION KERNEL KERNELS SUBSYSTEM SUBSYSTEMS DRIVER DRIVERS ATTR ATTRS ENV TAG TAGS")
UDEV_ASSIGN = words("SYMLINK GROUP MODE OWNER ENV TAG RUN NAME")


def parse_udev_rule(line: str) -> list[tuple[str, str, str]]:
    pairs: list[tuple[str, str, str]] = []
    position = 0
    while position < len(line):
        match = UDEV_PAIR.match(line, position)
        assert match and match.end() > position, f"udev rule: cannot read from {line[position:]!r}"
        key, op, value = match["key"], match["op"], match["value"]
        if key in ("ATTR", "ATTRS", "ENV"):
            assert match["attr"], f"{key} needs {{name}}"
        if op in ("==", "!="):
            assert key in UDEV_MATCH, f"{key}{op}: not a match key"
        else:
            assert key in UDEV_ASSIGN, f"{key}{op}: not an assignment key"
        pairs.append((f"{key}{{{match['attr']}}}" if match["attr"] else key, op, value))
        position = match.end()
    return pairs


def test_the_udev_rule_is_valid() -> None:
    active: list[list[tuple[str, str, str]]] = []
    templates: list[list[tuple[str, str, str]]] = []
    for line in RULES.read_text().splitlines():
        if re.match(r"#[A-Z]+[={]", line):
            templates.append(parse_udev_rule(line[1:]))
        elif line.strip() and not line.startswith("#"):
            active.append(parse_udev_rule(line))
    assert active and templates
    for rule in active + templates:
        assert ("SUBSYSTEM", "==", "tty") in rule
        assert ("SYMLINK", "+=", "synergy-board") in rule
        assert ("GROUP", "=", "dialout") in rule
        assert ("MODE", "=", "0660") in rule
    fields = [{key: value for key, _, value in rule} for rule in active]
    ids = {(rule["ATTRS{idVendor}"], rule["ATTRS{idProduct}"]) for rule in fields}
    assert ("0d28", "0204") in ids  # the MAX78000FTHR's DAPLink
    assert any(k == "ATTRS{serial}" for r in templates for k, _, _ in r)

    # udevadm verify exists from systemd 254 on.
    udevadm = shutil.which("udevadm")
    if udevadm is not None:
        probe = subprocess.run([udevadm, "verify", "--help"], capture_output=True, timeout=30, check=False)
        if probe.returncode == 0:
            done = subprocess.run(
                [udevadm, "verify", str(RULES)], capture_output=True, text=True, timeout=30, check=False
            )
            assert done.returncode == 0, done.stdout + done.stderr
