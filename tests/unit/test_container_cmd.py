"""``synergy container-agent``: what an agent container settles before it drops root — its
device id (one per replica of a scaled service), address, certificate directory, the agent's
command line, and the tc commands that hold its interface to the device's link."""

from __future__ import annotations

from pathlib import Path

import pytest

from synergy.cli import container_cmd, daemon_main
from synergy.cli.container_cmd import DEFAULT_TLS_DIR, device_id_for, plan_for, shaping_commands
from synergy.cli.main import build_parser
from synergy.errors import FailedPrecondition, InvalidArgument
from synergy.netns import tbf_arguments
from synergy.types import LINK_PRESETS


@pytest.fixture(autouse=True)
def container_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What docker-compose.yml sets for every agent; nothing else from the test's own shell."""
    for name in ("SYNERGY_DEVICE_ID", "SYNERGY_ADVERTISE", "SYNERGY_TLS_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNERGY_AGENT_BIND", "0.0.0.0:7000")


def test_each_replica_is_a_device_of_its_own() -> None:
    assert device_id_for("", "ring", None, "3f2a9c1b7e4d") == "ring-3f2a9c1b7e4d"
    assert device_id_for("", "ring", None, "5e0d11aa22bb") == "ring-5e0d11aa22bb"
    assert device_id_for("", None, Path("/etc/synergy/pendant.yaml"), "c0ffee") == "pendant-c0ffee"
    assert device_id_for("", None, None, "c0ffee.example") == "device-c0ffee"
    assert device_id_for("earbud", "earbud", None, "c0ffee") == "earbud"
    with pytest.raises(InvalidArgument, match="characters outside"):
        device_id_for("ear bud", None, None, "c0ffee")


def test_the_link_is_shaped_both_ways_with_the_namespace_emulations_bucket() -> None:
    bucket = tbf_arguments(48_000)
    commands = shaping_commands("eth0", 48_000)
    assert commands[0] == ["tc", "qdisc", "replace", "dev", "eth0", "root", *bucket]  # egress
    assert ["ip", "link", "add", "ifb0", "type", "ifb"] in commands
    assert ["tc", "qdisc", "replace", "dev", "ifb0", "root", *bucket] in commands  # ingress, redirected
    redirect = commands[-1]
    assert redirect[:8] == ["tc", "filter", "replace", "dev", "eth0", "parent", "ffff:", "protocol"]
    assert redirect[-5:] == ["mirred", "egress", "redirect", "dev", "ifb0"]
    assert redirect[11:16] == ["u32", "match", "u32", "0", "0"]  # every packet
    # The ingress qdisc exists before the filter that hangs on it.
    ingress = ["tc", "qdisc", "replace", "dev", "eth0", "handle", "ffff:", "ingress"]
    assert commands.index(ingress) < len(commands) - 1


def test_a_scaled_ring_gets_id_address_certificate_and_link() -> None:
    plan = plan_for(["--preset=ring"], "3f2a9c1b7e4d", "172.18.0.4")
    assert plan.device_id == "ring-3f2a9c1b7e4d"
    assert plan.advertise == "172.18.0.4:7000"
    assert plan.tls_dir == DEFAULT_TLS_DIR
    assert plan.sans == ("172.18.0.4", "3f2a9c1b7e4d")
    assert plan.bandwidth_bytes_per_s == LINK_PRESETS["ble5_2m"].bandwidth_bytes_per_s
    # The agent's command line: what it was given, then what the container settled (argparse
    # keeps the last), and the kernel shapes the link instead of the agent.
    args = daemon_main.build_parser().parse_args(list(plan.agent_argv))
    assert (args.command, args.preset, args.device_id) == ("agent", "ring", "ring-3f2a9c1b7e4d")
    assert (args.advertise, args.bind, args.no_link_shaping) == ("172.18.0.4:7000", "0.0.0.0:7000", True)
    assert args.tls_dir == DEFAULT_TLS_DIR


def test_given_flags_win_over_the_preset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNERGY_TLS_DIR", "/run/elsewhere")
    rest = ["--device-id=pendant", "--board=max78002", "--sensor=camera:10", "--link=ble_48k"]
    plan = plan_for(rest, "c0ffee", "172.18.0.9")
    assert (plan.device_id, plan.tls_dir) == ("pendant", Path("/run/elsewhere"))
    assert plan.bandwidth_bytes_per_s == 48_000


def test_insecure_agents_get_no_certificate() -> None:
    plan = plan_for(["--preset=watch", "--insecure"], "c0ffee", "172.18.0.5")
    assert plan.tls_dir is None and "--tls-dir" not in plan.agent_argv
    assert daemon_main.build_parser().parse_args(list(plan.agent_argv)).insecure


def test_an_agent_needs_a_port_peers_can_dial() -> None:
    with pytest.raises(InvalidArgument, match="fixed port"):
        plan_for(["--preset=ring", "--bind=0.0.0.0:0"], "c0ffee", "172.18.0.4")


def test_the_command_line_takes_agent_arguments_after_the_separator() -> None:
    args = build_parser().parse_args(["container-agent", "--ca-dir", "/ca", "--", "--preset", "ring", "--link=ble_24k"])
    assert (args.func, args.ca_dir, args.agent_args) == (
        container_cmd.run,
        Path("/ca"),
        ["--", "--preset", "ring", "--link=ble_24k"],
    )


def test_it_refuses_to_run_unprivileged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(container_cmd.os, "geteuid", lambda: 10001)
    args = build_parser().parse_args(["container-agent", "--", "--preset", "ring"])
    with pytest.raises(FailedPrecondition, match="user: root"):
        container_cmd.run(args)
