"""lab_page.assets: only files under the www directory, with the right type and cache rule,
and the installed build is a complete page (index.html naming the bundle it ships)."""

from __future__ import annotations

import gzip
import json
import os
import re

import pytest

from lab_page import assets


@pytest.fixture
def www(tmp_path):
    d = tmp_path / "www"
    d.mkdir()
    (d / "index.html").write_text('<script src="app.js?v=abc"></script>')
    big = b"x" * 5000
    (d / "app.js").write_bytes(big)
    (d / "app.js.gz").write_bytes(gzip.compress(big))
    (d / "app.css").write_text("body{}")  # small: no gzip twin used
    (d / "app.css.gz").write_bytes(gzip.compress(b"body{}"))
    (d / ".secret").write_text("no")
    (d / "sub").mkdir()
    (d / "sub" / "index.html").write_text("sub")
    (tmp_path / "outside.txt").write_text("outside")
    (d / "link.txt").symlink_to(tmp_path / "outside.txt")
    return d


def test_paths_map_to_files_with_their_types(www):
    assert assets.read_asset("/", www) == (b'<script src="app.js?v=abc"></script>',
                                           "text/html; charset=utf-8")  # fmt: skip
    body, ctype = assets.read_asset("/app.js?v=abc#top", www)
    assert len(body) == 5000 and ctype == "text/javascript; charset=utf-8"
    assert assets.read_asset("/app.css", www)[1] == "text/css; charset=utf-8"
    assert assets.read_asset("/sub/", www)[0] == b"sub"
    assert assets.read_asset("/%61pp.css", www)[0] == b"body{}"  # percent-decoded


@pytest.mark.parametrize(
    "path",
    [
        "/../outside.txt", "/sub/../../outside.txt", "/%2e%2e/outside.txt", "/..%2foutside.txt",
        "/.secret", "/link.txt", "/app.js.gz", "/nope.js", "/app.js\x00.html", "/..\\outside.txt",
        "//etc/passwd", "/sub",
    ],
)  # fmt: skip
def test_nothing_outside_the_directory_or_unknown(www, path):
    assert assets.read_asset(path, www) is None


def test_gzip_twins_only_for_large_files_and_accepting_clients(www):
    assert gzip.decompress(assets.read_asset_gz("/app.js?v=1", www)) == b"x" * 5000
    assert assets.read_asset_gz("/app.css", www) is None  # below GZIP_MIN_BYTES
    assert assets.read_asset_gz("/nope.js", www) is None
    assert assets.accepts_gzip("br, gzip;q=0.8") and assets.accepts_gzip("*")
    assert not assets.accepts_gzip("gzip;q=0") and not assets.accepts_gzip(None)
    assert not assets.accepts_gzip("identity, br")


def test_cache_rules_and_config():
    assert assets.cache_control("/") == "no-cache"
    assert assets.cache_control("/index.html?v=1") == "no-cache"
    assert assets.cache_control("/app.js") == "no-cache"
    assert "immutable" in assets.cache_control("/app.js?v=1a2b")
    assert json.loads(assets.config_json(8765)) == {"ws_port": 8765}
    assert json.loads(assets.config_json(9000, "/ws")) == {"ws_port": 9000, "ws_path": "/ws"}


def test_asset_dir_env_override(www, tmp_path, monkeypatch):
    monkeypatch.setenv(assets.WWW_ENV, str(www))
    assert assets.asset_dir() == www.resolve()
    monkeypatch.setenv(assets.WWW_ENV, str(tmp_path / "empty"))
    assert assets.asset_dir() is None  # no index.html there: not a page


def test_the_installed_page_is_complete(monkeypatch):
    monkeypatch.delenv(assets.WWW_ENV, raising=False)
    d = assets.asset_dir()
    assert d is not None, "lab_page is not installed: tools/build.sh lab_page"
    index = (d / "index.html").read_text()
    if os.environ.get("SENSORHUB_SKIP_LAB_PAGE") == "1" and "not built" in index:
        pytest.skip("built with SENSORHUB_SKIP_LAB_PAGE=1: the placeholder page")
    refs = re.findall(r'(?:src|href)="(app\.(?:js|css))\?v=([0-9a-f]+)"', index)
    assert sorted(r[0] for r in refs) == ["app.css", "app.js"]
    for name, _ in refs:
        body, _ctype = assets.read_asset(f"/{name}", d)
        assert len(body) > 100
        assert gzip.decompress(assets.read_asset_gz(f"/{name}", d)) == body
    for ident in ("conn-banner", "scope", "events", "hist", "zones", "files", "health"):
        assert f'id="{ident}"' in index
