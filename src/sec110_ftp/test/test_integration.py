"""Real clients (ftplib, curl, lftp, the simulator) against the real node over real sockets; a
subscriber over real DDS sees sec110/files. Behaviour only: no wall-clock limits."""

from __future__ import annotations

import ftplib
import io
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sensorhub_testing.files import read_jsonl

pytestmark = [
    pytest.mark.integration,
    # pyftpdlib on Python < 3.12 imports the stdlib asyncore/asynchat (pyasyncore from 3.12)
    pytest.mark.filterwarnings("ignore:The asyn.* module is deprecated:DeprecationWarning"),
]
USER, PW = "sec110", "sec110"


def test_ftplib_temp_rename_size_passive_and_active(h, ftpd, ros_node, wait):
    srv = ftpd()
    files = h.Files(ros_node)
    data_a, data_b = os.urandom(300_000), os.urandom(12_345)
    f = h.login(srv)
    f.mkd("dev1")
    f.cwd("dev1")
    f.storbinary("STOR run_1.tmp", io.BytesIO(data_a))
    assert f.size("run_1.tmp") == len(data_a)
    f.rename("run_1.tmp", "run_1.csv")
    assert f.size("run_1.csv") == len(data_a)  # still answers after the move to the dated folder
    client = f"127.0.0.1:{f.sock.getsockname()[1]}"
    f.set_pasv(False)  # active mode (PORT)
    f.storbinary("STOR run_2.csv", io.BytesIO(data_b))  # final name directly, no rename
    f.quit()
    wait(lambda: len(files.all()) >= 2, 60, what="two announcements")
    h.marker(srv, files, wait)
    by = files.by_name()
    assert set(by) == {"run_1.csv", "run_2.csv", "zz_marker.csv"}
    assert all(len(v) == 1 for v in by.values()), by  # exactly once, final names only
    date = time.strftime("%Y-%m-%d", time.gmtime())
    for name, data in (("run_1.csv", data_a), ("run_2.csv", data_b)):
        m = by[name][0]
        assert m.path == f"sec110/sec110/{date}/dev1/{name}"
        assert (m.size, m.sha256) == (len(data), h.sha(data))
        assert (srv.root / m.path).read_bytes() == data
        assert m.client_address == client
        assert m.header.stamp.sec > 0 and m.transfer_seconds >= 0.0
    assert not [p for p in srv.incoming.rglob("*") if p.is_file()]  # landing zone empty
    t0 = time.time()
    d = wait(lambda: files.latest("uploads", t0), 30, what="diagnostics")
    assert int(d[2]["files announced"]) == 3 and d[3] == f"SEC110 FTP 127.0.0.1:{srv.port}"


def _client_upload_setup(h, ftpd, ros_node, tool: str, src: Path, size: int):
    """(tool path, server, files) with `size` random bytes written to `src`."""
    path = h.need_tool(tool)
    srv = ftpd()
    files = h.Files(ros_node)
    src.write_bytes(os.urandom(size))
    return path, srv, files


def test_curl_upload(h, ftpd, ros_node, wait, tmp_path):
    src = tmp_path / "curl_run.csv"
    curl, srv, files = _client_upload_setup(h, ftpd, ros_node, "curl", src, 200_000)
    subprocess.run(
        [curl, "-sS", "--ftp-create-dirs", "-T", src, "--user", f"{USER}:{PW}",
         f"ftp://127.0.0.1:{srv.port}/dev2/"], check=True, timeout=120,
    )  # fmt: skip
    wait(lambda: "curl_run.csv" in files.by_name(), 60, what="curl upload announced")
    [m] = files.by_name()["curl_run.csv"]
    assert m.path.endswith("/dev2/curl_run.csv") and "/" + time.strftime("%Y-%m-%d") in m.path
    assert (m.size, m.sha256) == (src.stat().st_size, h.sha(src.read_bytes()))


def test_lftp_upload(h, ftpd, ros_node, wait, tmp_path):
    src = tmp_path / "lftp_src.bin"
    lftp, srv, files = _client_upload_setup(h, ftpd, ros_node, "lftp", src, 150_000)
    script = (
        "set ftp:ssl-allow no; set net:max-retries 1; set net:timeout 30; "
        f"mkdir -f dev3; put {src} -o dev3/lftp_run.part; "
        "mv dev3/lftp_run.part dev3/lftp_run.csv; bye"
    )
    subprocess.run(
        [lftp, "-u", f"{USER},{PW}", "-p", str(srv.port), "-e", script, "127.0.0.1"],
        check=True, timeout=120, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    wait(lambda: "lftp_run.csv" in files.by_name(), 60, what="lftp upload announced")
    [m] = files.by_name()["lftp_run.csv"]
    assert m.path.endswith("/dev3/lftp_run.csv")
    assert (m.size, m.sha256) == (150_000, h.sha(src.read_bytes()))
    assert "lftp_run.part" not in files.by_name()


def test_refusals_write_nothing(h, ftpd, ros_node, wait, tmp_path):
    srv = ftpd()
    files = h.Files(ros_node)
    outside = tmp_path / "outside"
    outside.mkdir()
    (srv.incoming / "escape").symlink_to(outside)  # a link out of the user's root
    with pytest.raises(ftplib.error_perm, match=r"^530"):
        h.login(srv, USER, "wrong")
    with pytest.raises(ftplib.error_perm, match=r"^530"):
        h.login(srv, "anonymous", "guest@")
    f = h.login(srv)
    for target in ("../x.csv", "../../etc/x.csv", "/../x.csv", "/etc/passwd", "escape/x.csv",
                   "/escape/../../x.csv"):  # fmt: skip
        with pytest.raises(ftplib.error_perm, match=r"^550"):
            f.storbinary(f"STOR {target}", io.BytesIO(b"evil"))
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        f.cwd("escape")
    with pytest.raises(ftplib.error_perm, match=r"^550"):
        f.sendcmd("RNFR ../../x")
    with pytest.raises(ftplib.error_perm, match=r"^550"):  # no RETR for uploaders
        f.retrbinary("RETR whatever", lambda b: None)
    f.quit()
    assert list(outside.iterdir()) == []
    assert not [p for p in srv.root.rglob("*") if p.is_file() and p.name != ".announced.jsonl"]
    t0 = time.time()
    r = wait(
        lambda: (d := files.latest("refusals", t0)) and int(d[2]["path"]) >= 4 and d,
        30, what="refusals in diagnostics",
    )  # fmt: skip
    assert int(r[2]["bad password"]) == 1 and int(r[2]["anonymous"]) == 1
    assert files.all() == []


def test_low_free_space_refused_with_452(h, ftpd, ros_node, wait):
    srv = ftpd(min_free_bytes=2**62)  # "less free space than required" without filling a disk
    files = h.Files(ros_node)
    f = h.login(srv)
    with pytest.raises(ftplib.error_temp, match=r"^452"):
        f.storbinary("STOR big.csv", io.BytesIO(b"x" * 1000))
    with pytest.raises(ftplib.error_temp, match=r"^452"):
        f.storbinary("APPE big.csv", io.BytesIO(b"x" * 1000))
    f.quit()
    assert not [p for p in srv.root.rglob("*") if p.is_file()]
    t0 = time.time()
    d = wait(lambda: files.latest("disk", t0), 30, what="disk diagnostics")
    assert d[0] == 2 and "452" in d[1]
    t0 = time.time()
    r = wait(lambda: files.latest("refusals", t0), 30, what="refusal diagnostics")
    assert int(r[2]["disk space"]) == 2
    assert files.all() == []


def test_killed_and_reset_clients_never_announced_then_resume(h, ftpd, procs, ros_node, wait):
    srv = ftpd(resume_timeout=3600.0)
    files = h.Files(ros_node)
    # 1) a real client process SIGKILLed mid-transfer (the sim, slowed down per 64 KiB)
    sim = procs.start("sim_killed", [
        h.exe("sec110_sim"), "--port", srv.port, "--size", 8_000_000, "--count", 1,
        "--chunk-delay", 0.05, "--prefix", "killed_",
    ])  # fmt: skip
    part = wait(lambda: next((p for p in srv.incoming.glob("killed_*.tmp")
                              if p.stat().st_size > 200_000), None),
                60, what="the killed client's upload under way")  # fmt: skip
    os.killpg(sim.pid, signal.SIGKILL)
    sim.popen.wait(10)
    # 2) a raw data socket reset mid-data while the control connection stays open
    payload = os.urandom(1_000_000)
    f = h.login(srv)
    f.voidcmd("TYPE I")
    conn = f.transfercmd("STOR reset_me.csv")
    conn.sendall(payload[:400_000])
    landed = srv.incoming / "reset_me.csv"
    # reset only once the server holds some of it (a reset discards what it has not read yet)
    wait(lambda: landed.stat().st_size >= 100_000, 60, what="server reading the data")
    h.rst(conn)
    with pytest.raises(ftplib.error_temp, match=r"^426"):
        f.voidresp()
    f.voidcmd("NOOP")  # the session goes on: a reset transfer is not confirmed by talking
    got = f.size("reset_me.csv")
    assert 100_000 <= got <= 400_000
    # resume it with REST + STOR, like a device after a cut
    f.storbinary("STOR reset_me.csv", io.BytesIO(payload[got:]), rest=got)
    # resume the killed one with APPE, then rename it to its final name
    have = f.size(part.name)
    full = part.read_bytes()[:have]
    tail = os.urandom(50_000)
    f.storbinary(f"APPE {part.name}", io.BytesIO(tail))
    final = part.name.removesuffix(".tmp")
    f.rename(part.name, final)
    f.quit()
    h.marker(srv, files, wait)
    by = files.by_name()
    assert set(by) == {"reset_me.csv", final, "zz_marker.csv"}, by
    assert all(len(v) == 1 for v in by.values())
    assert (by["reset_me.csv"][0].size, by["reset_me.csv"][0].sha256) == (
        len(payload), h.sha(payload))  # fmt: skip
    assert by[final][0].sha256 == h.sha(full + tail)
    done = {p.name: p.read_bytes() for p in srv.completed_files()}
    assert done["reset_me.csv"] == payload and done[final] == full + tail
    t0 = time.time()
    d = wait(lambda: files.latest("uploads", t0), 30, what="diagnostics")
    assert int(d[2]["uploads incomplete"]) >= 2


def test_killed_client_partial_is_quarantined(h, ftpd, procs, ros_node, wait):
    srv = ftpd(resume_timeout=1.0, sweep_period=0.5)
    files = h.Files(ros_node)
    sim = procs.start("sim_killed", [
        h.exe("sec110_sim"), "--port", srv.port, "--size", 8_000_000, "--count", 1,
        "--chunk-delay", 0.05, "--prefix", "gone_", "--dir", "devq",
    ])  # fmt: skip
    wait(lambda: any(p.stat().st_size > 100_000 for p in srv.incoming.rglob("gone_*.tmp")),
         60, what="upload under way")  # fmt: skip
    os.killpg(sim.pid, signal.SIGKILL)
    q = srv.root / "sec110" / ".quarantine" / "sec110"
    wait(lambda: q.is_dir() and any(q.iterdir()), 60, what="partial upload quarantined")
    [qname] = [p.name for p in q.iterdir()]
    assert "_devq__gone_" in qname and qname.endswith(".tmp")
    assert not [p for p in srv.incoming.rglob("*") if p.is_file()]
    assert srv.completed_files() == []
    t0 = time.time()
    d = wait(
        lambda: (x := files.latest("uploads", t0)) and x[2]["incomplete quarantined"] == "1",
        30,
        what="diagnostics",
    )
    assert files.all() == [] and d is not None


def test_concurrent_sims_all_announced_once(h, ftpd, procs, ros_node, wait, tmp_path):
    srv = ftpd()
    files = h.Files(ros_node)
    logs = []
    for i in range(4):
        log = tmp_path / f"sim{i}.jsonl"
        logs.append(log)
        procs.start(f"sim{i}", [
            h.exe("sec110_sim"), "--port", srv.port, "--size", 150_000 + i, "--count", 5,
            "--interval", 0, "--dir", f"dev{i}", "--log", log, "--seed", i,
            *(["--active"] if i % 2 else []),
        ])  # fmt: skip
    wait(lambda: sum(len(read_jsonl(x)) for x in logs) == 20, 120, what="20 uploads done")
    wait(lambda: len(files.all()) >= 20, 60, what="20 announcements")
    h.marker(srv, files, wait)
    sent = {(r["dir"], r["name"]): r for x in logs for r in read_jsonl(x)}
    got = {}
    for m in files.all():
        parts = m.path.split("/")
        if parts[-1] == "zz_marker.csv":
            continue
        key = (parts[-2], parts[-1])
        assert key not in got, f"announced twice: {m.path}"
        got[key] = m
    assert set(got) == set(sent)
    for k, r in sent.items():
        assert (got[k].size, got[k].sha256) == (r["size"], r["sha256"])


def test_sim_waits_for_server_and_aborted_files_are_never_announced(
    h, ftpd, procs, ros_node, wait, tmp_path
):
    from sensorhub_testing import free_port

    port = free_port()
    log = tmp_path / "sim.jsonl"
    sim = procs.start("sim", [
        h.exe("sec110_sim"), "--port", port, "--size", 50_000, "--count", 8, "--interval", 0.2,
        "--abort-fraction", 0.5, "--seed", 3, "--log", log, "--retry-max", 0.5,
    ])  # fmt: skip
    wait(lambda: "cannot connect" in sim.output(), 60, what="sim retrying")
    srv = ftpd(port=port)
    files = h.Files(ros_node)
    wait(lambda: len(read_jsonl(log)) == 8, 120, what="8 sim files")
    wait(lambda: not sim.alive(), 60, what="sim exit")
    assert sim.popen.returncode == 0
    recs = read_jsonl(log)
    good = {r["name"]: r for r in recs if not r["aborted"]}
    assert 0 < len(good) < 8
    h.marker(srv, files, wait)
    by = files.by_name()
    assert set(by) - {"zz_marker.csv"} == set(good)
    for name, r in good.items():
        assert len(by[name]) == 1 and by[name][0].sha256 == r["sha256"]
    assert not any(n.endswith(".tmp") for n in by)


def test_throttled_upload_and_clean_stop(h, ftpd, ros_node, wait):
    srv = ftpd(read_limit=200_000)
    files = h.Files(ros_node)
    data = os.urandom(600_000)
    f = h.login(srv)
    f.storbinary("STOR slow.csv", io.BytesIO(data))
    f.quit()
    wait(lambda: "slow.csv" in files.by_name(), 60, what="throttled upload announced")
    m = files.by_name()["slow.csv"][0]
    assert m.sha256 == h.sha(data)
    assert m.transfer_seconds >= 1.0  # a lower bound only: 600 kB at 200 kB/s cannot be faster
    assert srv.proc.stop() == 0


def test_sim_stops_cleanly_on_sigterm(h, ftpd, procs, wait):
    srv = ftpd()
    sim = procs.start("sim", [h.exe("sec110_sim"), "--port", srv.port, "--interval", 0.2])
    wait(lambda: "uploaded" in sim.output(), 60, what="first upload")
    os.killpg(sim.pid, signal.SIGTERM)
    os.killpg(sim.pid, signal.SIGTERM)  # a repeat is ignored
    assert sim.popen.wait(30) == 0


def _has_pyopenssl() -> bool:
    import importlib.util

    return importlib.util.find_spec("OpenSSL") is not None


@pytest.mark.skipif(_has_pyopenssl(), reason="pyOpenSSL installed: the FTPS test runs instead")
def test_ftps_without_pyopenssl_fails_clearly(h, procs, tmp_path, wait):
    cert = tmp_path / "cert.pem"
    cert.write_text("not used")
    p = procs.start("sec110_ftp", [
        h.exe("sec110_ftp"), "--ros-args", "-p", f"data_root:={tmp_path}", "-p", "port:=0",
        "-p", f"credentials_file:={h.SIM_USERS}", "-p", f"tls_cert:={cert}",
        "-p", f"tls_key:={cert}",
    ])  # fmt: skip
    assert p.popen.wait(60) == 2
    assert "'OpenSSL'" in p.output() and "pyOpenSSL" in p.output()


@pytest.mark.skipif(not _has_pyopenssl(), reason="pyOpenSSL not installed (FTPS needs it)")
def test_ftps_required_upload(h, ftpd, ros_node, wait, tmp_path):
    import ssl

    openssl = h.need_tool("openssl")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
         "-days", "2", "-subj", "/CN=localhost"], check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    srv = ftpd(tls_cert=cert, tls_key=key, tls_required=True)
    files = h.Files(ros_node)
    with pytest.raises(ftplib.error_perm, match=r"^550 SSL/TLS required"):
        h.login(srv)
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    f = ftplib.FTP_TLS(context=ctx, timeout=60)
    f.connect("127.0.0.1", srv.port)
    f.login(USER, PW)
    f.prot_p()
    data = os.urandom(100_000)
    f.storbinary("STOR tls.tmp", io.BytesIO(data))
    f.rename("tls.tmp", "tls.csv")
    f.quit()
    wait(lambda: "tls.csv" in files.by_name(), 60, what="FTPS upload announced")
    assert files.by_name()["tls.csv"][0].sha256 == h.sha(data)


def test_connection_limits_answer_421(h, ftpd, ros_node, wait):
    srv = ftpd(max_connections=1)
    files = h.Files(ros_node)
    first = h.login(srv)
    with pytest.raises(ftplib.error_temp, match=r"^421"):
        h.login(srv)
    first.quit()
    srv2 = ftpd(max_connections_per_ip=1)
    first = h.login(srv2)
    with pytest.raises(ftplib.error_temp, match=r"^421"):
        h.login(srv2)
    first.quit()
    t0 = time.time()
    r = wait(
        lambda: (d := files.latest("refusals", t0)) and d[2]["too many connections"] == "1" and d,
        30,
        what="refusal diagnostics",
    )
    assert r is not None


def test_retention_and_restart_announce_each_file_once(h, ftpd, ros_node, wait, tmp_path):
    root = tmp_path / "data"
    # a file moved into place by a run that died before announcing it
    orphan = root / "sec110" / "sec110" / "2026-01-02" / "orphan.csv"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"orphan data")
    srv = ftpd(root=root, retention_max_bytes=250_000)
    files = h.Files(ros_node)
    wait(lambda: "orphan.csv" in files.by_name(), 60, what="orphan announced at start-up")
    assert files.by_name()["orphan.csv"][0].client_address == ""
    blobs = [os.urandom(100_000) for _ in range(3)]
    f = h.login(srv)
    for i, b in enumerate(blobs):
        f.storbinary(f"STOR r{i}.csv", io.BytesIO(b))
    f.quit()
    wait(lambda: "r2.csv" in files.by_name(), 60, what="three files announced")
    # oldest first: the orphan and r0 go, r1 and r2 (200 kB) stay under 250 kB
    wait(lambda: not orphan.exists(), 30, what="retention of the oldest file")
    # r0 goes in the same pass, a moment after the orphan (one file after the other)
    wait(
        lambda: sorted(p.name for p in srv.completed_files()) == ["r1.csv", "r2.csv"],
        30,
        what="retention down to r1.csv and r2.csv",
    )
    assert srv.proc.stop() == 0
    # a restart on the same data root announces nothing again (the ledger), new files once
    srv = ftpd(root=root, retention_max_bytes=250_000)
    h.marker(srv, files, wait)
    by = files.by_name()
    assert all(len(v) == 1 for v in by.values()), {k: len(v) for k, v in by.items()}
    assert set(by) == {"orphan.csv", "r0.csv", "r1.csv", "r2.csv", "zz_marker.csv"}
