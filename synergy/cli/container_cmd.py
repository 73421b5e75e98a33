"""``synergy container-agent [OPTIONS] -- AGENT-ARGS``: how an agent starts in the Synergy image.

It runs as root in the agent's container (compose: ``user: root``, ``cap_add: [NET_ADMIN]``),
does the three things only root may, then becomes the unprivileged user for good:

1. **The device.** The arguments are ``synergy agent``'s (``--preset``, ``--device-file``,
   ``--board``, ``--sensor``, ``--link``, ...), read by the agent's own parser. The device id is
   ``--device-id`` / ``SYNERGY_DEVICE_ID`` when given, else ``<preset>-<hostname>``: Docker
   gives each container its own host name, so every replica of a scaled service
   (``docker compose up --scale ring=8``) is a device of its own, and keeps its id when the
   container restarts.
2. **Its certificate.** Issued at start from the CA in ``--ca-dir`` (the compose file's
   ``pki`` volume, mounted read-only): role ``agent``, name = the device id, valid for the
   container's address and host name (what the coordinator and the peers dial). Giving every
   emulated device the CA's key is an emulation shortcut: on real devices each key is made on
   the device and only its certificate is signed elsewhere (docs/security.md).
3. **Its link.** The device's link bandwidth is applied to ``--interface`` by the kernel, both
   ways, with the same token bucket as the network-namespace emulation
   (:func:`synergy.netns.tbf_arguments`): egress with a ``tbf`` qdisc on the interface,
   ingress by redirecting it to an ``ifb`` device that carries its own ``tbf``. So bytes between
   containers take the time of the declared link, and the agent runs with
   ``--no-link-shaping``. Latency is not added: netem is not available on every kernel (not on
   ours); see docs/emulation.md.

Then it drops to ``--user`` (groups, gid, uid; root's capabilities go with them) and replaces
itself with ``python -m synergy.cli.daemon_main agent ...`` (the lean daemon entry point),
adding ``--device-id``, ``--advertise ADDRESS:PORT``, ``--tls-dir`` and ``--no-link-shaping``.
"""

from __future__ import annotations

import argparse
import os
import pwd
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from synergy.errors import FailedPrecondition, InvalidArgument
from synergy.security.identity import validate_name

__all__ = [
    "DEFAULT_CA_DIR",
    "DEFAULT_TLS_DIR",
    "Plan",
    "agent_argv",
    "device_id_for",
    "main",
    "plan_for",
    "register",
    "run",
    "shaping_commands",
]

DEFAULT_CA_DIR = Path("/pki/ca")
#: Where the issued certificate goes when neither --tls-dir nor SYNERGY_TLS_DIR says.
DEFAULT_TLS_DIR = Path("/run/synergy/tls")
DEFAULT_USER = "synergy"
DEFAULT_INTERFACE = "eth0"
IFB = "ifb0"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ca-dir", type=Path, default=DEFAULT_CA_DIR, help="CA directory to issue from (default %(default)s)"
    )
    p.add_argument(
        "--interface", default=DEFAULT_INTERFACE, help="interface to shape to the link (default %(default)s)"
    )
    p.add_argument("--user", default=DEFAULT_USER, help="account the agent runs as (default %(default)s)")
    p.add_argument(
        "--no-shaping", action="store_true", help="leave the interface alone (the agent then shapes in-process)"
    )
    p.add_argument(
        "agent_args",
        nargs=argparse.REMAINDER,
        metavar="-- AGENT-ARGS",
        help="after --: synergy agent's arguments (--preset, --device-file, --board, --sensor, --link, ...)",
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "container-agent",
        help="(as root, in the Synergy image) issue an agent's certificate, shape eth0 to its link, run it",
        description=(
            "For the agent containers of docker-compose.yml. As root: issue this device's certificate from "
            "the CA in --ca-dir (device id: --device-id, else <preset>-<hostname>), shape --interface to the "
            "device's link both ways (tc tbf; ingress through an ifb device), then run `synergy agent` with "
            "the arguments after -- as --user, with --no-link-shaping."
        ),
        allow_abbrev=False,
    )
    add_arguments(p)
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Plan:
    """What :func:`run` will do, worked out before anything is changed (a unit test reads it)."""

    device_id: str
    advertise: str
    tls_dir: Path | None
    sans: tuple[str, ...]
    bandwidth_bytes_per_s: float
    agent_argv: tuple[str, ...]


def device_id_for(explicit: str, preset: str | None, device_file: Path | None, hostname: str) -> str:
    """``explicit`` if given, else ``<preset or device-file stem or "device">-<hostname>``."""
    if explicit:
        return validate_name(explicit)
    base = preset or (device_file.stem if device_file is not None else "") or "device"
    return validate_name(f"{base}-{hostname.split('.', 1)[0]}")


def shaping_commands(interface: str, bandwidth_bytes_per_s: float, ifb: str = IFB) -> list[list[str]]:
    """``tc``/``ip`` commands that hold ``interface`` to the bandwidth both ways.

    Egress: a token bucket on the interface. Ingress cannot be queued where it arrives, so it is
    redirected (u32 match-all, mirred) to an ifb device whose egress has the same bucket.
    Every qdisc and filter is a ``replace``, and an existing ifb device is kept: running them again is harmless.
    """
    from synergy.netns import tbf_arguments

    bucket = tbf_arguments(bandwidth_bytes_per_s)
    return [
        ["tc", "qdisc", "replace", "dev", interface, "root", *bucket],
        ["ip", "link", "add", ifb, "type", "ifb"],
        ["ip", "link", "set", ifb, "up"],
        ["tc", "qdisc", "replace", "dev", ifb, "root", *bucket],
        ["tc", "qdisc", "replace", "dev", interface, "handle", "ffff:", "ingress"],
        # u32 with an all-zero mask matches every packet (matchall is not on every kernel).
        ["tc", "filter", "replace", "dev", interface, "parent", "ffff:", "protocol", "all", "prio", "1",
         "u32", "match", "u32", "0", "0", "action", "mirred", "egress", "redirect", "dev", ifb],
    ]  # fmt: skip


def agent_argv(rest: Sequence[str], device_id: str, advertise: str, tls_dir: Path | None) -> list[str]:
    """``agent`` + the given arguments + what the container settles (later flags win in argparse)."""
    argv = ["agent", *rest, "--device-id", device_id, "--advertise", advertise, "--no-link-shaping"]
    if tls_dir is not None:
        argv += ["--tls-dir", str(tls_dir)]
    return argv


def plan_for(rest: Sequence[str], hostname: str, address: str) -> Plan:
    """Read the agent arguments as ``synergy agent`` would, and settle id, address and TLS dir."""
    from synergy.cli import daemon_main
    from synergy.cli.daemons import device_from_args

    parser = daemon_main.build_parser()
    args = parser.parse_args(["agent", *rest])
    device_id = device_id_for(args.device_id, args.preset, args.device_file, hostname)
    device = device_from_args(argparse.Namespace(**{**vars(args), "device_id": device_id}))
    port = args.bind.rsplit(":", 1)[-1]
    if not port.isdigit() or int(port) == 0:
        raise InvalidArgument(
            f"agent bind address {args.bind!r}: a container's agent needs a fixed port that peers can dial, "
            "e.g. --bind 0.0.0.0:7000 (or SYNERGY_AGENT_BIND)"
        )
    advertise = args.advertise or f"{address}:{port}"
    tls_dir: Path | None = None
    if not args.insecure:
        tls_dir = Path(args.tls_dir or os.environ.get("SYNERGY_TLS_DIR") or DEFAULT_TLS_DIR)
    sans = tuple(dict.fromkeys([address, hostname, advertise.rsplit(":", 1)[0]]))
    return Plan(
        device_id=device_id,
        advertise=advertise,
        tls_dir=tls_dir,
        sans=sans,
        bandwidth_bytes_per_s=device.link.bandwidth_bytes_per_s,
        agent_argv=tuple(agent_argv(rest, device_id, advertise, tls_dir)),
    )


def run(args: argparse.Namespace) -> int:
    rest: list[str] = list(args.agent_args)
    if rest[:1] == ["--"]:
        rest = rest[1:]
    if os.geteuid() != 0:
        raise FailedPrecondition(
            "container-agent sets the container up as root (link shaping needs CAP_NET_ADMIN) and then runs the "
            f"agent as {args.user!r}: run the container as root (compose: user: root, cap_add: [NET_ADMIN]), "
            "or run `synergy agent` directly"
        )
    try:
        account = pwd.getpwnam(args.user)
    except KeyError:
        raise FailedPrecondition(f"no account {args.user!r} in this container to run the agent as") from None
    hostname = socket.gethostname()
    try:
        address = socket.gethostbyname(hostname)
    except OSError as exc:
        raise FailedPrecondition(f"cannot find this container's address (host name {hostname!r}): {exc}") from None
    plan = plan_for(rest, hostname, address)
    if plan.tls_dir is not None:
        _issue_certificate(args.ca_dir, plan.tls_dir, plan, account)
        _say(f"issued agent:{plan.device_id} into {plan.tls_dir} (valid for {', '.join(plan.sans)})")
    if args.no_shaping:
        _say("link shaping left to the agent (--no-shaping)")
        argv = [a for a in plan.agent_argv if a != "--no-link-shaping"]
    else:
        _shape(args.interface, plan.bandwidth_bytes_per_s)
        argv = list(plan.agent_argv)
    global_options = ["--log-level", args.log_level] + (["--log-format", args.log_format] if args.log_format else [])
    os.setgroups([])
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)
    env = {**os.environ, "HOME": account.pw_dir, "USER": account.pw_name, "LOGNAME": account.pw_name}
    _say(f"running {plan.device_id} as {account.pw_name}, advertised at {plan.advertise}")
    command = [sys.executable, "-m", "synergy.cli.daemon_main", *global_options, *argv]
    os.execve(sys.executable, command, env)
    return 0  # not reached: execve replaces this process


def _issue_certificate(ca_dir: Path, tls_dir: Path, plan: Plan, account: pwd.struct_passwd) -> None:
    from synergy.security.ca import issue

    if not (ca_dir / "ca.key").is_file():
        raise FailedPrecondition(
            f"no CA key at {ca_dir / 'ca.key'}: the compose file's tls-init service creates it in the pki volume "
            "(is the volume mounted here?)"
        )
    issue(ca_dir, role="agent", name=plan.device_id, sans=list(plan.sans), out_dir=tls_dir)
    # The agent reads its key as its own user; the key stays mode 0600.
    for path in (tls_dir, *tls_dir.iterdir()):
        os.chown(path, account.pw_uid, account.pw_gid)


def _shape(interface: str, bandwidth_bytes_per_s: float) -> None:
    if shutil.which("tc") is None:
        raise FailedPrecondition("tc not found: the image needs iproute2 to shape the link")
    commands = shaping_commands(interface, bandwidth_bytes_per_s)
    egress, ingress = commands[:1], commands[1:]
    for command in egress:
        _run(command, "shape the link's egress (is NET_ADMIN granted? compose: cap_add: [NET_ADMIN])")
    try:
        for command in ingress:
            if command[:3] == ["ip", "link", "add"] and Path(f"/sys/class/net/{IFB}").exists():
                continue  # a restarted container kept its ifb device
            _run(command, "shape the link's ingress")
    except FailedPrecondition as exc:
        # Without ifb (a kernel built without it) the sender's own egress bucket still paces
        # every agent-to-agent transfer; only the receiver's slower link would not be felt.
        _say(f"warning: ingress not shaped ({exc}); egress is")
        return
    _say(f"{interface} shaped both ways to {bandwidth_bytes_per_s:,.0f} bytes/s ({' '.join(commands[0][6:])})")


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
    if done.returncode != 0:
        raise FailedPrecondition(f"cannot {what}: `{' '.join(command)}` failed: {done.stderr.strip()}")


def _say(text: str) -> None:
    print(f"container-agent: {text}", file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m synergy.cli.container_cmd ...``: the same without the rest of the CLI."""
    from synergy.cli.daemon_main import add_global_options, run_parsed

    parser = argparse.ArgumentParser(prog="synergy", allow_abbrev=False)
    add_global_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    return run_parsed(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
