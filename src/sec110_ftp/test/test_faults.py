"""What a hostile tester tried against the real node over real FTP: run-time parameter changes,
two writers on one name, names at the kernel's limit, control characters, a full disk. Each test
checks the data (on disk and announced) and what /diagnostics says."""

from __future__ import annotations

import ftplib
import io
import os

import pytest

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore:The asyn.* module is deprecated:DeprecationWarning"),
]
LONG = "L" * 251 + ".csv"  # 255 bytes


def _announced_match_disk(h, srv, msgs) -> None:
    for m in msgs:
        data = (srv.root / m.path).read_bytes()
        assert (m.size, m.sha256) == (len(data), h.sha(data)), m.path


def _levels(files, task: str) -> set[int]:
    return {s.level for s in files.diag.all(task)}


def test_runtime_retention_and_every_severity_keep_announcing(h, ftpd, ros_node, wait):
    srv = ftpd(sweep_period=0.5)
    files = h.Files(ros_node)
    f = h.login(srv)
    # error: a file stands where the dated folder 'blocked' should go, so that commit fails
    dated = srv.dated()
    dated.mkdir(parents=True)
    (dated / "blocked").write_bytes(b"in the way")
    f.mkd("blocked")
    f.storbinary("STOR blocked/x.csv", io.BytesIO(b"x" * 1000))
    f.voidcmd("NOOP")  # confirms it: the commit runs and fails
    wait(lambda: "commit failed" in srv.proc.output(), 60, what="the commit error logged")
    wait(lambda: 2 in _levels(files, "uploads"), 30, what="the commit error in diagnostics")
    # warn: a data connection reset mid-upload
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR cut.csv")
    conn.sendall(os.urandom(200_000))
    wait(lambda: (srv.incoming / "cut.csv").stat().st_size > 0, 60, what="data arriving")
    h.rst(conn)
    with pytest.raises(ftplib.error_temp, match=r"^426"):
        f.voidresp()
    wait(lambda: "incomplete upload" in srv.proc.output(), 60, what="the warning logged")
    # info: retention switched on at run time, then uploads: every one is announced
    h.set_params(ros_node, wait, retention_max_bytes=250_000)
    blobs = {f"r{i}.csv": os.urandom(100_000) for i in range(4)}
    for name, data in blobs.items():
        f.storbinary(f"STOR {name}", io.BytesIO(data))
    f.quit()
    wait(lambda: set(blobs) <= set(files.by_name()), 60, what="four announcements")
    wait(lambda: "retention removed" in srv.proc.output(), 60, what="retention at work")
    h.marker(srv, files, wait)
    by = files.by_name()
    assert all(len(by[n]) == 1 and by[n][0].sha256 == h.sha(d) for n, d in blobs.items())
    kept = [m for m in files.all() if (srv.root / m.path).exists()]
    _announced_match_disk(h, srv, kept)
    assert sum(m.size for m in kept) <= 250_000
    out = srv.proc.output()
    assert "Logger severity" not in out and "worker" not in out, out[-3000:]
    s = wait(
        lambda: (x := files.diag.latest("uploads")) and int(x.values["retention removed"]) == 2
        and x, 30, what="retention in diagnostics",
    )  # fmt: skip
    assert s.values["commit errors"] == "1"
    assert int(s.values["files announced"]) == 5
    assert files.diag.latest("ftp server").level == 0 and srv.proc.alive()


def test_two_uploads_to_one_name_never_mix(h, ftpd, ros_node, wait):
    srv = ftpd()
    files = h.Files(ros_node)
    slow, fast = os.urandom(2_000_000), os.urandom(200_000)
    b = h.login(srv)
    b.voidcmd("TYPE I")
    conn = b.transfercmd("STOR same.csv")
    conn.sendall(slow[:300_000])  # B is under way, slowly, block by block
    wait(lambda: (srv.incoming / "same.csv").stat().st_size > 0, 60, what="B writing")
    a = h.login(srv)
    with pytest.raises(ftplib.error_temp, match=r"^450"):
        a.storbinary("STOR same.csv", io.BytesIO(fast))
    with pytest.raises(ftplib.error_temp, match=r"^450"):
        a.sendcmd("RNFR same.csv")
    for i in range(300_000, len(slow), 100_000):
        conn.sendall(slow[i : i + 100_000])
    conn.close()
    assert b.voidresp().startswith("226")
    b.voidcmd("NOOP")  # B confirmed: committed, the name is free again
    a.storbinary("STOR same.csv", io.BytesIO(fast))
    a.quit()
    b.quit()
    wait(lambda: len(files.all()) == 2, 60, what="both uploads announced")
    h.marker(srv, files, wait)
    got = {m.sha256: m for m in files.all() if not m.path.endswith("zz_marker.csv")}
    assert set(got) == {h.sha(slow), h.sha(fast)}
    assert got[h.sha(slow)].path.endswith("/same.csv")
    assert got[h.sha(fast)].path.endswith("/same-1.csv")
    _announced_match_disk(h, srv, files.all())
    r = wait(lambda: files.diag.latest("refusals"), 30, what="refusal diagnostics")
    assert r.values["busy"] == "2"


def test_long_names_are_shortened_and_deep_partials_quarantined(h, ftpd, ros_node, wait):
    srv = ftpd(resume_timeout=1.0, sweep_period=0.3)
    files = h.Files(ros_node)
    first, second = os.urandom(10_000), os.urandom(20_000)
    f = h.login(srv)
    f.storbinary(f"STOR {LONG}", io.BytesIO(first))
    f.storbinary(f"STOR {LONG}", io.BytesIO(second))
    with pytest.raises(ftplib.error_perm, match=r"^55"):  # over the kernel's limit: refused
        f.storbinary(f"STOR {'x' * 256}.csv", io.BytesIO(b"too long"))
    deep = "/".join(["d" * 60] * 6)
    for i in range(1, 7):
        f.mkd("/".join(["d" * 60] * i))
    f.voidcmd("TYPE I")
    conn = f.transfercmd(f"STOR {deep}/gone.tmp")
    conn.sendall(os.urandom(50_000))
    wait(lambda: any(srv.incoming.rglob("gone.tmp")), 60, what="the deep upload under way")
    h.rst(conn)
    h.rst(f)  # and the client vanishes: a partial upload nobody resumes
    wait(lambda: len(files.all()) == 2, 60, what="both long-name uploads announced")
    q = srv.root / "sec110" / ".quarantine" / "sec110"
    wait(lambda: q.is_dir() and any(q.iterdir()), 60, what="the deep partial quarantined")
    [qfile] = list(q.iterdir())
    assert len(qfile.name.encode()) <= 255 and qfile.name.endswith(".tmp")
    by_sha = {m.sha256: m for m in files.all()}
    assert by_sha[h.sha(first)].path.endswith("/" + LONG)
    other = by_sha[h.sha(second)].path.rsplit("/", 1)[1]
    assert other != LONG and len(other.encode()) <= 255 and other.endswith(".csv")
    _announced_match_disk(h, srv, files.all())
    assert not [p for p in srv.incoming.rglob("*") if p.is_file()]
    s = wait(
        lambda: (x := files.diag.latest("uploads")) and x.values["incomplete quarantined"] == "1"
        and x, 30, what="quarantine in diagnostics",
    )  # fmt: skip
    assert s.values["unrecoverable"] == "0" and "cannot quarantine" not in srv.proc.output()


def test_unquarantinable_partial_is_reported_once(h, ftpd, ros_node, wait):
    srv = ftpd(resume_timeout=1.0, sweep_period=0.2)
    files = h.Files(ros_node)
    # a file where the user's quarantine folder should be: every quarantine attempt fails
    (srv.root / "sec110" / ".quarantine" / "sec110").write_bytes(b"in the way")
    f = h.login(srv)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR stuck.csv")
    conn.sendall(os.urandom(50_000))
    wait(lambda: (srv.incoming / "stuck.csv").stat().st_size > 0, 60, what="data arriving")
    h.rst(conn)
    h.rst(f)
    s = wait(
        lambda: (x := files.diag.latest("uploads")) and x.values["unrecoverable"] == "1" and x,
        60, what="the stuck file counted",
    )  # fmt: skip
    assert s.level == 2 and "cannot quarantine" in s.message
    n = len(files.diag.all("uploads"))
    wait(lambda: len(files.diag.all("uploads")) >= n + 4, 60, what="more sweeps")  # ~20 sweeps
    assert srv.proc.output().count("cannot quarantine") == 1
    assert files.diag.latest("uploads").values["unrecoverable"] == "1"
    assert (srv.incoming / "stuck.csv").exists() and files.all() == []


def test_control_characters_are_escaped_in_logs_and_diagnostics(h, ftpd, ros_node, wait):
    srv = ftpd()
    files = h.Files(ros_node)
    name = "evil\x1b[31mred\x07.csv"
    data = os.urandom(5_000)
    f = h.login(srv)
    f.storbinary(f"STOR {name}", io.BytesIO(data))
    f.quit()
    wait(lambda: name in files.by_name(), 60, what="the odd name announced")
    [m] = files.by_name()[name]
    assert (srv.root / m.path).read_bytes() == data  # the data keeps its real name
    s = wait(
        lambda: (x := files.diag.latest("uploads")) and x.values["files announced"] == "1" and x,
        30, what="upload diagnostics",
    )  # fmt: skip
    assert s.values["last file"].endswith("evil\\x1b[31mred\\x07.csv")
    out = srv.proc.output()
    assert "evil\\x1b[31mred\\x07.csv" in out and "\x1b[31mred" not in out and "\x07" not in out


def test_full_disk_aborts_with_a_reason_and_announces_nothing(h, ftpd, ros_node, wait, small_disk):
    srv = ftpd(root=small_disk / "data")
    files = h.Files(ros_node)
    f = h.login(srv)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR huge.csv")
    try:  # 12 MiB for an 8 MiB disk: the server drops the data connection when it is full
        for _ in range(12):
            conn.sendall(os.urandom(2**20))
    except OSError:
        pass
    conn.close()
    with pytest.raises(ftplib.error_temp, match=r"^426 Transfer aborted: no space left on device"):
        f.voidresp()
    f.voidcmd("NOOP")  # talking again confirms nothing aborted
    s = wait(
        lambda: (x := files.diag.latest("uploads")) and x.values["uploads incomplete"] == "1"
        and x, 60, what="the aborted upload in diagnostics",
    )  # fmt: skip
    assert s.level == 1 and s.values["files announced"] == "0"
    f.quit()
    assert files.all() == [] and srv.completed_files() == []


def test_an_upload_whose_data_never_came_ends_with_its_session(h, ftpd, ros_node, wait):
    """STOR, then QUIT before any data connection: the file the server opened is partial (never
    announced, quarantined after resume_timeout) and the name is free for the next session."""
    srv = ftpd(resume_timeout=1.0, sweep_period=0.3)
    files = h.Files(ros_node)
    f = h.login(srv)
    f.voidcmd("TYPE I")
    f.sendcmd("PASV")  # a passive port nobody connects to
    f.putcmd("STOR never.csv")
    wait((srv.incoming / "never.csv").exists, 60, what="the STOR opened its file")
    f.putcmd("QUIT")
    wait(lambda: "disconnected without confirming" in srv.proc.output(), 60, what="partial")
    q = srv.root / "sec110" / ".quarantine" / "sec110"
    wait(lambda: q.is_dir() and any(p.name.endswith("never.csv") for p in q.iterdir()), 60,
         what="the never-started upload quarantined")  # fmt: skip
    data = os.urandom(5000)
    g = h.login(srv)
    g.storbinary("STOR never.csv", io.BytesIO(data))  # not 450: nobody is writing it
    g.quit()
    wait(lambda: len(files.all()) == 1, 60, what="the real upload announced")
    assert files.all()[0].sha256 == h.sha(data)
    _announced_match_disk(h, srv, files.all())
