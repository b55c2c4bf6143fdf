"""landing.py without ROS or FTP: completion rules, atomic moves, quarantine, retention."""

from __future__ import annotations

import hashlib
import os
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sec110_ftp import landing as lz

PAT = lz.DEFAULT_TEMP_PATTERNS


@pytest.mark.parametrize(
    "name, temp",
    [("a.tmp", True), ("dir/a.part", True), (".hidden", True), ("a.csv", False),
     ("a.tmp.csv", False), ("dir.tmp/a.csv", False)],
)  # fmt: skip
def test_is_temp(name, temp):
    assert lz.is_temp(name, PAT) == temp


@pytest.mark.parametrize(
    "cwd, arg, bad",
    [("/", "../x", True), ("/", "/../x", True), ("/a", "../x", False), ("/a", "../../x", True),
     ("/", "a/../b", False), ("/", "a/../../b", True), ("/", "/etc/passwd", False),
     ("/a/b", "../../..", True), ("/", "./x/./y", False)],
)  # fmt: skip
def test_climbs_above_root(cwd, arg, bad):
    assert lz.climbs_above_root(cwd, arg) == bad


@given(parts=st.lists(st.sampled_from(["a", "b", "..", "."]), max_size=8))
def test_climb_matches_a_depth_walk(parts):
    arg = "/".join(parts) or "."
    depth, went_above = 0, False
    for p in parts:
        if p == "..":
            depth -= 1
            went_above |= depth < 0
        elif p != ".":
            depth += 1
    assert lz.climbs_above_root("/", arg) == went_above


def test_sha256_file(tmp_path):
    p = tmp_path / "f"
    data = os.urandom(3 * lz.HASH_CHUNK + 17)
    p.write_bytes(data)
    assert lz.sha256_file(p) == (len(data), hashlib.sha256(data).hexdigest())


# ---- tracker ---------------------------------------------------------------------------------
def test_direct_upload_ready_after_confirmation():
    t = lz.Tracker(PAT)
    t.begin("/in/a.csv", "u", "c:1", 1, 0.0)
    t.data_closed("/in/a.csv", True, 1.0, 0.5, 10)
    assert t.busy("/in/a.csv")
    assert t.confirm(2) == []  # another session's command confirms nothing
    [up] = t.confirm(1)
    assert up.path == "/in/a.csv" and up.nbytes == 10 and up.transfer_s == 0.5
    assert t.confirm(1) == []  # exactly once


def test_temp_upload_waits_for_rename_to_final_name():
    t = lz.Tracker(PAT)
    t.begin("/in/a.tmp", "u", "c:1", 1, 0.0)
    t.data_closed("/in/a.tmp", True, 1.0, 0.5, 10)
    assert t.confirm(1) == []
    assert t.renamed("/in/a.tmp", "/in/a.part") is None  # still a temp name
    up = t.renamed("/in/a.part", "/in/a.csv")
    assert up is not None and up.path == "/in/a.csv"


def test_session_lost_makes_partial_and_rename_does_not_announce_it():
    t = lz.Tracker(PAT)
    t.begin("/in/a.tmp", "u", "c:1", 1, 0.0)
    t.data_closed("/in/a.tmp", True, 1.0, 0.5, 10)
    assert [u.path for u in t.session_lost(1)] == ["/in/a.tmp"]
    assert t.confirm(1) == []
    assert t.renamed("/in/a.tmp", "/in/a.csv") is None


def test_resume_of_partial_completes_with_summed_history():
    t = lz.Tracker(PAT)
    t.begin("/in/a.csv", "u", "c:1", 1, 5.0)
    t.data_closed("/in/a.csv", False, 6.0, 1.0, 100)
    assert t.confirm(1) == []
    t.begin("/in/a.csv", "u", "c:2", 2, 20.0)  # REST/APPE in a new session
    t.data_closed("/in/a.csv", True, 21.0, 0.5, 50)
    [up] = t.confirm(2)
    assert (up.nbytes, up.transfer_s, up.started, up.client) == (150, 1.5, 5.0, "c:2")


def test_unknown_file_renamed_is_not_trusted():
    assert lz.Tracker(PAT).renamed("/in/left_over.tmp", "/in/x.csv") is None


# ---- zone --------------------------------------------------------------------------------------
@pytest.fixture
def zone(tmp_path):
    return lz.LandingZone(tmp_path / "data", clock=lambda: 1_700_000_000.0)


def put(zone, user, rel, data=b"x"):
    p = zone.home(user) / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_bytes(data)
    return p


def test_commit_moves_into_dated_folder_without_clobbering(zone):
    when = 1_700_000_000.0  # 2023-11-14 UTC
    a = zone.commit("dev", put(zone, "dev", "d1/run.csv", b"1"), when)
    b = zone.commit("dev", put(zone, "dev", "d1/run.csv", b"2"), when)
    c = zone.commit("dev", put(zone, "dev", "noext", b"3"), when)
    d = zone.commit("dev", put(zone, "dev", "noext", b"4"), when)
    base = zone.sec / "dev" / "2023-11-14"
    assert a == base / "d1" / "run.csv" and a.read_bytes() == b"1"
    assert b == base / "d1" / "run-1.csv" and b.read_bytes() == b"2"
    assert (c.name, d.name) == ("noext", "noext-1")
    assert not any(zone.home("dev").rglob("*.*"))


def test_commit_refuses_symlinks_and_outside_paths(zone, tmp_path):
    outside = tmp_path / "secret"
    outside.write_text("s")
    link = zone.home("dev") / "link.csv"
    link.symlink_to(outside)
    with pytest.raises(lz.CommitError):
        zone.commit("dev", link, 0.0)
    with pytest.raises(lz.PathRefusedError):
        zone.commit("dev", outside, 0.0)
    assert outside.read_text() == "s"


def test_quarantine_and_delete(zone):
    p = put(zone, "dev", "d/a.tmp")
    q = zone.quarantine("dev", p)
    assert not p.exists() and q.parent == zone.quarantine_dir / "dev"
    assert q.name.endswith("_d__a.tmp")
    p2 = put(zone, "dev", "b.tmp")
    assert zone.quarantine("dev", p2, delete=True) is None and not p2.exists()


def test_stale_incoming_skips_busy_and_fresh(tmp_path):
    now = [1000.0]
    z = lz.LandingZone(tmp_path / "d", clock=lambda: now[0])
    old, busy, fresh = put(z, "u", "old.tmp"), put(z, "u", "busy.tmp"), put(z, "u", "new.tmp")
    for p in (old, busy):
        os.utime(p, (100.0, 100.0))
    os.utime(fresh, (990.0, 990.0))
    got = z.stale_incoming(60.0, busy=lambda p: p == str(busy))
    assert got == [("u", str(old))]


def test_retention_oldest_first_and_only_announced(zone):
    paths = []
    for i in range(4):
        dest = zone.commit("dev", put(zone, "dev", f"f{i}.csv", b"x" * 100), 1_700_000_000.0)
        rel = dest.relative_to(zone.data_root).as_posix()
        paths.append(dest)
        if i < 3:  # the newest file is in place but not announced yet
            zone.record(lz.Announced(rel, 100, "h", 1000.0 + i))
    res = zone.retention(max_bytes=150)
    assert [p.rsplit("/", 1)[-1] for p in res.removed] == ["f0.csv", "f1.csv"]
    assert res.freed_bytes == 200
    assert [p.exists() for p in paths] == [False, False, True, True]
    assert zone.stored_bytes() == 100
    # the ledger on disk agrees after a restart
    z2 = lz.LandingZone(zone.data_root)
    assert [a.path.rsplit("/", 1)[-1] for a in z2.ledger] == ["f2.csv"]
    assert [p.name for _, p in z2.unannounced()] == ["f3.csv"]


def test_retention_by_age(tmp_path):
    now = [2000.0 + 10 * 86400]
    z = lz.LandingZone(tmp_path / "d", clock=lambda: now[0])
    d = z.commit("u", put(z, "u", "a.csv"), 0.0)
    z.record(lz.Announced(d.relative_to(z.data_root).as_posix(), 1, "h", 2000.0))
    assert z.retention(max_age_s=20 * 86400).removed == []
    assert len(z.retention(max_age_s=5 * 86400).removed) == 1
    assert not d.exists() and not d.parent.exists()  # empty dated folder pruned
    assert z.retention().removed == []


def test_ledger_survives_a_torn_line(zone):
    d = zone.commit("u", put(zone, "u", "a.csv"), time.time())
    zone.record(lz.Announced(d.relative_to(zone.data_root).as_posix(), 1, "h", 1.0))
    with open(zone.ledger_path, "a") as f:
        f.write('{"path": "sec110/u/x')
    z2 = lz.LandingZone(zone.data_root)
    assert len(z2.ledger) == 1 and z2.unannounced() == []
