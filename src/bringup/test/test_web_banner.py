"""The supervisor's web banner: one Lichtblick link with the layout, import steps for both."""

from __future__ import annotations

from types import SimpleNamespace


def test_banner_gives_one_lichtblick_link_and_both_import_paths():
    from bringup.supervisor import Supervisor

    me = SimpleNamespace(_layout=lambda: "/x/share/bringup/config/foxglove_layout.json")
    text = Supervisor._web_banner(me, "ws://localhost:8765", True)
    assert (
        "?ds=foxglove-websocket&ds.url=ws://localhost:8765"
        "&layoutUrl=http://localhost:8765/layout.json" in text
    )
    assert "Layout menu > Import from file" in text
    text = Supervisor._web_banner(me, "ws://localhost:8765", False)
    assert "layoutUrl" not in text and "Layouts tab > Import from file" in text
