"""A private network of Linux network namespaces, one per emulated host, with shaped links.

:class:`NamespaceNetwork` builds, on one machine, what several hosts on a shared network look
like: a bridge in the root namespace (the "air"), and per host a namespace with its own
loopback and a veth pair whose outer end is on the bridge. Each host gets an address of a
private /24; the bridge has ``.1``, so commands run on the machine itself reach every host.

A host's link is shaped in both directions with a token bucket (``tc ... tbf``): its egress on
the inner end, its ingress on the outer end. The kernel's netem (added latency) is not
available everywhere (it is not on our CI machines), so a link's latency is not emulated here:
only its bandwidth. Every name this builds starts with a prefix of its own (see
:func:`prefix_for`), and :meth:`NamespaceNetwork.teardown` removes everything with it; a run
that died without tearing down is cleaned up by the next one (:func:`remove_abandoned`: a
prefix whose namespaces run no process any more).

Traffic between two hosts crosses the bridge, and where ``br_netfilter`` is loaded with
``net.bridge.bridge-nf-call-iptables=1`` bridged packets go through iptables' FORWARD chain,
whose policy Docker sets to DROP: on a machine that runs Docker the hosts could not reach each
other. So when bridged traffic is filtered, :meth:`NamespaceNetwork.create` inserts one rule
that accepts forwarding from our bridge to itself (nothing else), and tearing down removes it.

Needs root (``CAP_NET_ADMIN``) and iproute2 (``ip``, ``tc``); iptables too where bridged
traffic is filtered. Every command it runs is collected in :attr:`NamespaceNetwork.commands`
for a person to read.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from synergy.errors import FailedPrecondition, InvalidArgument

__all__ = [
    "Host",
    "NamespaceNetwork",
    "bridged_traffic_filtered",
    "forward_rule",
    "prefix_for",
    "remove_abandoned",
    "remove_leftovers",
    "tbf_arguments",
]

#: Every namespace and interface name starts with this (then a run id).
NAME_ROOT = "syn"
#: Linux interface names are at most 15 characters.
MAX_IFNAME = 15
#: Token bucket: the queue may hold this long of traffic before packets are dropped (the
#: sender's TCP then backs off, as over a real slow radio).
TBF_LATENCY_MS = 200
#: Token bucket: the smallest burst that carries one full-size Ethernet frame.
MIN_BURST_BYTES = 1600
_RUN_ID = re.compile(r"^[a-z0-9]{1,5}$")
#: "1" when the kernel passes bridged IPv4 packets through iptables (br_netfilter loaded).
BRIDGE_NF_CALL_IPTABLES = Path("/proc/sys/net/bridge/bridge-nf-call-iptables")


def prefix_for(run_id: str) -> str:
    """``syn<run_id>``: the prefix of every name of one network (run ids: 1-5 of [a-z0-9])."""
    if not _RUN_ID.fullmatch(run_id):
        raise InvalidArgument(f"network run id must be 1-5 characters of [a-z0-9], got {run_id!r}")
    return f"{NAME_ROOT}{run_id}"


def tbf_arguments(bandwidth_bytes_per_s: float) -> list[str]:
    """``tc qdisc`` arguments of a token bucket at ``bandwidth_bytes_per_s``.

    The burst is one tick's worth of bytes (the kernel refills the bucket per timer tick),
    at least one full-size frame, so the average rate is the link's and no frame is stuck.
    """
    if not bandwidth_bytes_per_s > 0:
        raise InvalidArgument(f"a shaped link needs a positive bandwidth, got {bandwidth_bytes_per_s}")
    bits = max(8, round(bandwidth_bytes_per_s * 8))
    burst = max(MIN_BURST_BYTES, round(bandwidth_bytes_per_s / 100))
    return ["tbf", "rate", f"{bits}bit", "burst", str(burst), "latency", f"{TBF_LATENCY_MS}ms"]


@dataclass(frozen=True)
class Host:
    """One emulated host: its namespace, address and (optional) link bandwidth."""

    name: str
    namespace: str
    address: str
    #: Bytes per second both ways; None: unshaped (the coordinator's host).
    bandwidth_bytes_per_s: float | None
    inner: str
    outer: str


@dataclass
class NamespaceNetwork:
    """See the module docstring. ``subnet`` is a /24 of private addresses."""

    run_id: str
    subnet: str = "10.213.0.0/24"
    hosts: dict[str, Host] = field(default_factory=dict)
    commands: list[list[str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = prefix_for(self.run_id)
        network = ipaddress.ip_network(self.subnet)
        if network.prefixlen != 24 or not network.is_private:
            raise InvalidArgument(f"subnet must be a private /24, got {self.subnet}")
        self._network = network
        self.bridge = f"{self.prefix}br"

    @property
    def gateway(self) -> str:
        return str(self._network.network_address + 1)

    # -- building --------------------------------------------------------------------------

    def create(self) -> None:
        """The bridge, up, with the gateway address (removes leftovers of a crashed run first)."""
        check_tools()
        remove_abandoned()
        remove_leftovers(self.prefix)
        self._run(["ip", "link", "add", self.bridge, "type", "bridge"])
        self._run(["ip", "addr", "add", f"{self.gateway}/24", "dev", self.bridge])
        self._run(["ip", "link", "set", self.bridge, "up"])
        if bridged_traffic_filtered():
            # First in the chain, so a DROP policy or a DROP rule (Docker's) never sees it.
            try:
                self._run(["iptables", "-w", "10", "-I", "FORWARD", "1", *forward_rule(self.bridge)])
            except (FailedPrecondition, OSError) as exc:
                raise FailedPrecondition(
                    f"bridged traffic goes through iptables (net.bridge.bridge-nf-call-iptables=1, as with "
                    f"Docker) and the rule that lets the hosts reach each other could not be added: {exc}"
                ) from exc

    def add_host(self, name: str, bandwidth_bytes_per_s: float | None = None) -> Host:
        """A namespace for ``name`` on the bridge, at the next free address, link shaped."""
        if name in self.hosts:
            raise InvalidArgument(f"host {name!r} is already on the network")
        index = len(self.hosts)
        if index + 2 >= 254:
            raise InvalidArgument(f"a /24 holds at most 252 hosts; {name!r} would be the {index + 1}th")
        address = str(self._network.network_address + 2 + index)
        tag = f"{self.prefix}h{index}"
        host = Host(name, f"{self.prefix}-{_safe(name)}-{index}", address, bandwidth_bytes_per_s, f"{tag}i", f"{tag}o")
        if len(host.outer) > MAX_IFNAME:
            raise InvalidArgument(f"interface name {host.outer!r} is longer than {MAX_IFNAME} characters")
        self._run(["ip", "netns", "add", host.namespace])
        self._run(["ip", "link", "add", host.inner, "type", "veth", "peer", "name", host.outer])
        self._run(["ip", "link", "set", host.inner, "netns", host.namespace])
        self._run(["ip", "link", "set", host.outer, "master", self.bridge])
        self._run(["ip", "link", "set", host.outer, "up"])
        self._in(host, ["ip", "link", "set", "lo", "up"])
        self._in(host, ["ip", "addr", "add", f"{address}/24", "dev", host.inner])
        self._in(host, ["ip", "link", "set", host.inner, "up"])
        if bandwidth_bytes_per_s is not None:
            shape = tbf_arguments(bandwidth_bytes_per_s)
            # Egress of the host (inside), and traffic towards it (the bridge's side).
            self._in(host, ["tc", "qdisc", "add", "dev", host.inner, "root", *shape])
            self._run(["tc", "qdisc", "add", "dev", host.outer, "root", *shape])
        self.hosts[name] = host
        return host

    def exec_prefix(self, name: str) -> list[str]:
        """The command prefix that runs a program in ``name``'s namespace."""
        return ["ip", "netns", "exec", self.hosts[name].namespace]

    # -- tearing down ----------------------------------------------------------------------

    def teardown(self) -> list[str]:
        """Remove every namespace and interface of this network; the problems met (if any)."""
        return remove_leftovers(self.prefix)

    # -- running commands ------------------------------------------------------------------

    def _in(self, host: Host, command: Sequence[str]) -> None:
        self._run(["ip", "netns", "exec", host.namespace, *command])

    def _run(self, command: Sequence[str]) -> None:
        self.commands.append(list(command))
        done = subprocess.run(list(command), capture_output=True, text=True, check=False, timeout=30)
        if done.returncode != 0:
            raise FailedPrecondition(f"`{' '.join(command)}` failed: {done.stderr.strip() or done.returncode}")


def bridged_traffic_filtered() -> bool:
    """Whether packets crossing a bridge go through iptables (``br_netfilter``, e.g. with Docker)."""
    try:
        return BRIDGE_NF_CALL_IPTABLES.read_text(encoding="ascii").strip() == "1"
    except OSError:  # br_netfilter not loaded: bridged packets skip iptables
        return False


def forward_rule(bridge: str) -> list[str]:
    """The iptables rule (after ``-I FORWARD 1`` / ``-D FORWARD``) accepting ``bridge`` to itself."""
    return ["-i", bridge, "-o", bridge, "-j", "ACCEPT"]


def _our_forward_rules() -> list[str]:
    """The bridges of ours that a FORWARD rule of :func:`forward_rule`'s shape names, once per
    rule (none without iptables)."""
    if shutil.which("iptables") is None:
        return []
    listed = subprocess.run(
        ["iptables", "-w", "10", "-S", "FORWARD"], capture_output=True, text=True, check=False, timeout=30
    )
    bridges = []
    for line in listed.stdout.splitlines():
        words = shlex.split(line)
        shaped = len(words) == 8 and words[:2] == ["-A", "FORWARD"] and words[2:] == forward_rule(words[3])
        if shaped and _OUR_NAME.match(words[3]):
            bridges.append(words[3])
    return bridges


def _safe(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9]", "", name)[:24] or "host"


def check_tools() -> None:
    """Root and iproute2, or a clear error saying what is missing."""
    missing = [tool for tool in ("ip", "tc") if shutil.which(tool) is None]
    if missing:
        raise FailedPrecondition(f"{', '.join(missing)} not found: install iproute2 (apt-get install iproute2)")
    if os.geteuid() != 0:
        raise FailedPrecondition("network namespaces need root (CAP_NET_ADMIN): run as root, or use the compose file")


_OUR_NAME = re.compile(rf"^({NAME_ROOT}[a-z0-9]{{1,5}})(-|br$|h\d+[io]$)")


def remove_abandoned() -> list[str]:
    """Remove the networks of runs that died without tearing down: every prefix of ours whose
    namespaces run no process any more (a live run always has its daemons in them)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=30)
    namespaces = [line.split()[0] for line in listed.stdout.splitlines() if line.split()]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False, timeout=30)
    rows = (line.split(":", 2) for line in links.stdout.splitlines())
    names = namespaces + [parts[1].strip().split("@", 1)[0] for parts in rows if len(parts) > 1]
    names += _our_forward_rules()
    prefixes = {m.group(1) for name in names if (m := _OUR_NAME.match(name))}
    problems: list[str] = []
    for prefix in sorted(prefixes):
        ours = [n for n in namespaces if n.startswith(f"{prefix}-")]
        alive = any(
            subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True, check=False).stdout.strip()
            for n in ours
        )
        if not alive:
            problems += remove_leftovers(prefix)
    return problems


def remove_leftovers(prefix: str) -> list[str]:
    """Delete every namespace and link whose name starts with ``prefix`` (after a crash too).

    Deleting a namespace removes the veth ends inside it, and with them their peers on the
    bridge; the bridge goes last, then the FORWARD rules naming it. Returns what could not be
    removed (empty when all went).
    """
    problems: list[str] = []
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False, timeout=30)
    for line in listed.stdout.splitlines():
        namespace = line.split()[0] if line.split() else ""
        if namespace.startswith(prefix):
            done = subprocess.run(["ip", "netns", "del", namespace], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                problems.append(f"namespace {namespace}: {done.stderr.strip()}")
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True, check=False, timeout=30)
    for line in links.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) < 2:
            continue
        link = parts[1].strip().split("@", 1)[0]
        if link.startswith(prefix):
            done = subprocess.run(["ip", "link", "del", link], capture_output=True, text=True, check=False)
            if done.returncode != 0 and "Cannot find device" not in done.stderr:
                problems.append(f"link {link}: {done.stderr.strip()}")
    for bridge in _our_forward_rules():
        if bridge.startswith(prefix):
            command = ["iptables", "-w", "10", "-D", "FORWARD", *forward_rule(bridge)]
            done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=30)
            if done.returncode != 0:
                problems.append(f"iptables FORWARD rule for {bridge}: {done.stderr.strip()}")
    return problems
