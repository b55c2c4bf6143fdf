"""Two hosts on one machine: network namespaces joined by a veth pair, each end with its own
address (10.x.y.1 and 10.x.y.2, /30), made and removed by the test run itself.

A role may also be this machine's own network namespace (``root=``): its veth end and address
stay here, so a graph started the usual way (localhost discovery) serves a browser or client in
the other namespace, which reaches it at a non-localhost address. Needs root and ``ip``
(iproute2); skips naming what is missing otherwise.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import subprocess
from collections.abc import Iterator

import pytest

IP = shutil.which("ip")


def run(*argv) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=30)


def netns_or_skip(name: str) -> None:
    """Create namespace `name`, or skip the test saying why it cannot be made here."""
    if IP is None:
        pytest.skip("iproute2 (`ip`) is not installed: cannot make network namespaces")
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (CAP_NET_ADMIN / CAP_SYS_ADMIN)")
    r = run(IP, "netns", "add", name)
    if r.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {r.stderr.strip()}")


class TwoHosts:
    """Roles (first, second) in namespaces <tag><r>, veth <tag>a/<tag>b, 10.x.y.1/.2 (/30).

    `root` names the role that stays in this machine's own namespace (None: both get one).
    """

    def __init__(self, roles: tuple[str, str] = ("sensors", "web"), root: str | None = None):
        if root is not None and root not in roles:
            raise ValueError(f"root={root!r} is not one of the roles {roles}")
        tag = f"shub{os.getpid() % 10000}{random.randint(0, 99)}"
        self.roles = roles
        self.root = root
        self.ns = {r: None if r == root else f"{tag}{r[0]}{i}" for i, r in enumerate(roles)}
        self.dev = dict(zip(roles, (f"{tag}a", f"{tag}b"), strict=True))
        net = f"10.{random.randint(64, 127)}.{random.randint(0, 255)}"
        self.addr = dict(zip(roles, (f"{net}.1", f"{net}.2"), strict=True))
        self.made: list[str] = []

    def _ip(self, role: str, *args) -> tuple:
        ns = self.ns[role]
        return (IP, *args) if ns is None else (IP, "-n", ns, *args)

    def _veth(self) -> tuple:
        """`ip link add name A [netns X] type veth peer name B [netns Y]`."""

        def end(role: str) -> tuple:
            ns = self.ns[role]
            return ("name", self.dev[role]) + (() if ns is None else ("netns", ns))

        first, second = self.roles
        return (IP, "link", "add", *end(first), "type", "veth", "peer", *end(second))

    def create(self) -> None:
        spaces = [ns for ns in self.ns.values() if ns is not None]
        netns_or_skip(spaces[0])
        self.made.append(spaces[0])
        for ns in spaces[1:]:
            self._must(IP, "netns", "add", ns)
            self.made.append(ns)
        self._must(*self._veth())
        for role in self.roles:
            dev = self.dev[role]
            self._must(*self._ip(role, "addr", "add", f"{self.addr[role]}/30", "dev", dev))
            if self.ns[role] is None:
                self._must(*self._ip(role, "link", "set", dev, "up"))
                continue  # the machine's own routes and loopback stay as they are
            self._must(*self._ip(role, "link", "set", "lo", "up"))
            self._must(*self._ip(role, "link", "set", dev, "up", "multicast", "on"))
            # DDS discovery is multicast: route it over the link (no default route here)
            self._must(*self._ip(role, "route", "add", "224.0.0.0/4", "dev", dev))

    @staticmethod
    def _must(*argv) -> None:
        r = run(*argv)
        if r.returncode != 0:
            pytest.fail(f"{' '.join(map(str, argv))}: {r.stderr.strip()}")

    def link(self, up: bool) -> None:
        """The first role's end of the link down or up (the other side sees a cable pulled)."""
        role = self.roles[0]
        r = run(*self._ip(role, "link", "set", self.dev[role], "up" if up else "down"))
        assert r.returncode == 0, r.stderr

    def argv(self, role: str, *cmd) -> list:
        """`cmd` run on host `role` (inside its namespace, or as is for the root role)."""
        ns = self.ns[role]
        return list(cmd) if ns is None else [IP, "netns", "exec", ns, *cmd]

    def destroy(self) -> None:
        # deleting a namespace deletes its veth end, and with it the peer in the root namespace
        for ns in self.made:
            run(IP, "netns", "del", ns)
        if self.root is not None and not self.made:
            run(IP, "link", "del", self.dev[self.root])


@contextlib.contextmanager
def two_hosts(roles: tuple[str, str] = ("sensors", "web"), root: str | None = None
              ) -> Iterator[TwoHosts]:  # fmt: skip
    """TwoHosts made for the block and always removed after it."""
    h = TwoHosts(roles, root)
    try:
        h.create()
        yield h
    finally:
        h.destroy()
