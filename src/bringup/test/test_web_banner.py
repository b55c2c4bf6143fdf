"""The web banner: first the lab page's LAN link, what works from another machine, then one
Lichtblick link with the layout and import steps for both viewers."""

from __future__ import annotations

import socket
from types import SimpleNamespace

import pytest

from bringup import lan


@pytest.fixture
def me(monkeypatch):
    monkeypatch.setattr(lan, "lan_address", lambda: "192.168.1.20")
    return SimpleNamespace(_layout=lambda: "/x/share/bringup/config/foxglove_layout.json")


def test_banner_gives_one_lichtblick_link_and_both_import_paths(me):
    from bringup.supervisor import Supervisor

    text = Supervisor._web_banner(me, "ws://localhost:8765", True)
    assert (
        "?ds=foxglove-websocket&ds.url=ws://localhost:8765"
        "&layoutUrl=http://localhost:8765/layout.json" in text
    )
    assert "Layout menu > Import from file" in text
    text = Supervisor._web_banner(me, "ws://localhost:8765", False)
    assert "layoutUrl" not in text and "Layouts tab > Import from file" in text


def test_banner_starts_with_the_lab_page_on_the_lan_address(me):
    from bringup.supervisor import Supervisor

    lines = Supervisor._web_banner(me, "ws://localhost:8765", True, True).splitlines()
    assert lines[0] == "Lab page (any browser on this network): http://192.168.1.20:8765/"
    assert "Foxglove desktop app: ws://192.168.1.20:8765/" in lines[2]
    https = next(x for x in lines if "app.foxglove.dev / https viewers" in x)
    assert "only on this machine (ws://localhost:8765)" in https and "tls_cert" in https
    # next to foxglove_bridge: the bridge's banner has no page, the page's server has one line
    bridge = Supervisor._web_banner(me, "ws://localhost:8765", False, False)
    assert "Lab page" not in bridge and "Foxglove desktop app: ws://192.168.1.20:8765" in bridge
    page = Supervisor._web_banner(me, "http://localhost:8080/", False, False).splitlines()
    assert page[0] == "Lab page (any browser on this network): http://192.168.1.20:8080/"
    assert not any("Foxglove" in x or "Lichtblick" in x for x in page)


def test_lan_address_is_a_local_interface_address():
    addr = lan.lan_address()
    socket.inet_aton(addr)  # an IPv4 address
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((addr, 0))  # ours: it can be bound
    assert lan.on_lan("ws://0.0.0.0:9/x", "10.0.0.5") == "ws://10.0.0.5:9/x"
    assert lan.on_lan("ws://pi.lab:9/", "10.0.0.5") == "ws://pi.lab:9/"
    assert lan.page_url("wss://localhost:8765", "10.0.0.5") == "https://10.0.0.5:8765/"
