"""Network namespaces for tests and benchmarks: private "hosts" on this machine.

Two shapes, both torn down by the caller's ExitStack (also after a failure):

- ``veth_namespace(stack, prefix)``: one namespace joined to this host by a veth
  pair on a private /30 (tests/orthanc.py runs Orthanc in one).
- ``Lan(stack)``: a Linux bridge on this host with an address of its own, and
  any number of namespaces plugged into it (``lan.add_host("d")``), all on one
  private /24, so the namespaces reach each other (and this host reaches them)
  directly at their addresses; no namespace has a default route, so nothing in
  them reaches anything else. Each one's processes run with
  ``lan.command(host, argv)``: ``ip netns exec`` into the namespace and, with a
  UTS namespace of their own (unshare), a host name of their own, so that what
  a process records as its host (socket.gethostname()) says which "host" it ran on.

Addresses come from 10.203.0.0/16, picked at random and checked against those
already in use on this machine. ``netns_usable()`` says whether ``ip netns add``
works here (root and iproute2); callers skip or fall back when it does not.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import subprocess
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass

SUBNET = ipaddress.ip_network("10.203.0.0/16")


class NetnsError(RuntimeError):
    """A namespace, link or address could not be made."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`ip ARGS...`; with check, a failure raises NetnsError with ip's message."""
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise NetnsError(f"ip {' '.join(args)}: {done.stderr.strip() or done.returncode}")
    return done


def used_networks() -> list[ipaddress.IPv4Network]:
    out = ip("-o", "-4", "addr", "show", check=False).stdout
    nets = []
    for line in out.splitlines():
        parts = line.split()
        if "inet" in parts:
            nets.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return nets


def pick_subnet(prefixlen: int = 30) -> ipaddress.IPv4Network:
    """A random free network of `prefixlen` bits inside 10.203.0.0/16."""
    used = used_networks()
    size = 2 ** (32 - prefixlen)
    blocks = SUBNET.num_addresses // size
    for _ in range(200):
        base = SUBNET.network_address + size * secrets.randbelow(blocks)
        net = ipaddress.ip_network(f"{base}/{prefixlen}")
        if not any(net.overlaps(u) for u in used):
            return net
    raise NetnsError(f"no free /{prefixlen} in {SUBNET}")


def netns_usable() -> bool:
    """Whether this process may create network namespaces (root, iproute2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"refset-probe-{secrets.token_hex(3)}"
    if ip("netns", "add", probe, check=False).returncode != 0:
        return False
    ip("netns", "del", probe, check=False)
    return True


def why_not_usable() -> str:
    """A sentence saying why netns_usable() is False (for a skip reason)."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add), and this runs as a user"
    if shutil.which("ip") is None:
        return "iproute2 (the ip command) is not installed"
    probe = f"refset-probe-{secrets.token_hex(3)}"
    done = ip("netns", "add", probe, check=False)
    ip("netns", "del", probe, check=False)
    return f"ip netns add is refused here: {done.stderr.strip()}"


def veth_namespace(stack: ExitStack, prefix: str = "refset-orth", short: str = "ro"):
    """A namespace named ``{prefix}-XXXXXX`` holding ``lo`` and one end of a veth
    pair on a fresh /30; return (namespace, its address, this host's end's address)."""
    token = secrets.token_hex(3)
    ns = f"{prefix}-{token}"
    host_if, ns_if = f"{short}{token}h", f"{short}{token}n"  # 15 chars at most
    ip("netns", "add", ns)
    stack.callback(ip, "netns", "del", ns, check=False)
    ip("-n", ns, "link", "set", "lo", "up")
    ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
    stack.callback(ip, "link", "del", host_if, check=False)
    for _attempt in range(5):
        net = pick_subnet(30)
        host_addr, ns_addr = (str(net.network_address + i) for i in (1, 2))
        if ip("addr", "add", f"{host_addr}/30", "dev", host_if, check=False).returncode == 0:
            break
    else:
        raise NetnsError("could not give the veth pair an address")
    ip("-n", ns, "addr", "add", f"{ns_addr}/30", "dev", ns_if)
    ip("link", "set", host_if, "up")
    ip("-n", ns, "link", "set", ns_if, "up")
    return ns, ns_addr, host_addr


@dataclass(frozen=True)
class NsHost:
    name: str  # short name, also the host name its processes see ("refset-<name>")
    netns: str
    addr: str

    @property
    def hostname(self) -> str:
        return f"refset-{self.name}"


class Lan:
    """A bridge on this host and namespaces plugged into it (see the module doc)."""

    def __init__(self, stack: ExitStack):
        self.token = secrets.token_hex(3)
        self.bridge = f"rsb{self.token}"
        self.hosts: dict[str, NsHost] = {}
        self._stack = stack
        ip("link", "add", self.bridge, "type", "bridge")
        stack.callback(ip, "link", "del", self.bridge, check=False)
        for _attempt in range(5):
            self.net = pick_subnet(24)
            self.gateway = str(self.net.network_address + 1)
            done = ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge, check=False)
            if done.returncode == 0:
                break
        else:
            raise NetnsError("could not give the bridge an address")
        ip("link", "set", self.bridge, "up")
        self._next = 10

    def add_host(self, name: str) -> NsHost:
        """A namespace `refset-<name>-<token>` with one veth end on the bridge."""
        ns = f"refset-{name}-{self.token}"
        index = len(self.hosts)
        br_if, ns_if = f"rs{self.token}{index}b", f"rs{self.token}{index}n"
        ip("netns", "add", ns)
        self._stack.callback(ip, "netns", "del", ns, check=False)
        ip("-n", ns, "link", "set", "lo", "up")
        ip("link", "add", br_if, "type", "veth", "peer", "name", ns_if, "netns", ns)
        self._stack.callback(ip, "link", "del", br_if, check=False)
        ip("link", "set", br_if, "master", self.bridge)
        ip("link", "set", br_if, "up")
        addr = str(self.net.network_address + self._next)
        self._next += 1
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", ns_if)
        ip("-n", ns, "link", "set", ns_if, "up")
        host = NsHost(name=name, netns=ns, addr=addr)
        self.hosts[name] = host
        return host

    @staticmethod
    def command(host: NsHost, argv: Sequence[str]) -> list[str]:
        """`argv` run in `host`'s namespace under its own host name."""
        return [
            "ip",
            "netns",
            "exec",
            host.netns,
            "unshare",
            "--uts",
            "--",
            "sh",
            "-c",
            'hostname "$0" && exec "$@"',
            host.hostname,
            *argv,
        ]
