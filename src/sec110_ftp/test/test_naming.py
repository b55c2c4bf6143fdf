"""naming.py, the landing zone's long names and the node's log helper, without a server."""

from __future__ import annotations

import pytest

from sec110_ftp import landing as lz
from sec110_ftp import naming

pytestmark = [
    pytest.mark.filterwarnings("ignore:The asyn.* module is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:write permissions assigned to anonymous:RuntimeWarning"),
]
LONG = "L" * 251 + ".csv"  # 255 bytes: the longest name a device can upload


def nbytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


def test_bounded_name_keeps_short_names_and_shortens_long_ones_deterministically():
    assert naming.bounded_name("run_1.csv") == "run_1.csv"
    assert naming.bounded_name(LONG) == LONG
    a, b = naming.bounded_name("x" * 300 + ".csv"), naming.bounded_name("x" * 301 + ".csv")
    assert nbytes(a) == nbytes(b) == 255 and a.endswith(".csv") and b.endswith(".csv")
    assert a != b and a == naming.bounded_name("x" * 300 + ".csv")
    wide = naming.bounded_name("é" * 200 + ".tmp")  # 2 bytes each: never cut in half
    assert nbytes(wide) <= 255 and wide.endswith(".tmp") and "\ufffd" not in wide
    odd = naming.bounded_name("a." + "b" * 300)  # an "extension" too long to keep
    assert nbytes(odd) == 255


def test_numbered_and_quarantine_names_stay_within_name_max():
    names = {naming.numbered_name(LONG, i) for i in range(50)}
    assert len(names) == 50 and all(nbytes(n) <= 255 and n.endswith(".csv") for n in names)
    deep = "/".join(["d" * 60] * 6) + "/gone.tmp"
    q = naming.quarantine_name("20260101T000000Z", deep)
    assert nbytes(q) <= 255 and q.endswith(".tmp") and q.startswith("20260101T000000Z_dddd")
    assert naming.quarantine_name("20260101T000000Z", deep, 1) != q


@pytest.mark.parametrize(
    "raw, shown",
    [("plain.csv", "plain.csv"), ("é ü.csv", "é ü.csv"), ("a\x1b[31mb", "a\\x1b[31mb"),
     ("a\nb\rc\x07", "a\\x0ab\\x0dc\\x07"), ("x\u2028y", "x\\u2028y"), ("\udcff", "\\udcff")],
)  # fmt: skip
def test_escape(raw, shown):
    assert naming.escape(raw) == shown


def test_long_name_uploaded_twice_commits_both(tmp_path):
    zone = lz.LandingZone(tmp_path)
    home = zone.home("u")
    done = []
    for data in (b"first", b"second"):
        (home / LONG).write_bytes(data)
        done.append(zone.commit("u", home / LONG, 0.0))
    assert done[0].name == LONG and nbytes(done[1].name) <= 255 and done[1].name != LONG
    assert [p.read_bytes() for p in done] == [b"first", b"second"]


def test_deep_incomplete_upload_is_quarantined(tmp_path):
    zone = lz.LandingZone(tmp_path)
    d = zone.home("u").joinpath(*["d" * 60] * 6)
    d.mkdir(parents=True)
    (d / "gone.tmp").write_bytes(b"partial")
    q = zone.quarantine("u", d / "gone.tmp")
    assert q.read_bytes() == b"partial" and nbytes(q.name) <= 255
    assert not (d / "gone.tmp").exists()


def test_log_helper_logs_every_severity_in_turn():
    """rclpy raises when one call site changes severity: the helper must not share one."""
    import rclpy.logging

    from sec110_ftp.node import make_log

    log = make_log(rclpy.logging.get_logger("sec110_naming_test"))
    for level in ("info", "warn", "error", "info", "error", "warn", "other"):
        log(level, f"{level} \x1b[2J")


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_dead_worker_is_reported(tmp_path, wait):
    """A worker that dies (here: a log callback that raises, as rclpy did) is the service's
    failure(); one failing job with a working log only counts an announce error."""
    from sec110_ftp.config import ServerConfig
    from sec110_ftp.server import FtpService

    def bad_log(level, msg):
        if level == "error":
            raise ValueError("Logger severity cannot be changed between calls.")

    for log, dies in ((lambda level, msg: None, False), (bad_log, True)):
        zone = lz.LandingZone(tmp_path / str(dies))
        cfg = ServerConfig(port=0, allow_anonymous=True)
        svc = FtpService(cfg, zone, {}, on_file=lambda ev: None, log=log)
        svc.start()
        try:
            gone = str(zone.user_dir("anonymous") / "gone.csv")
            svc.jobs.put(("announce", "anonymous", gone, "", 0.0, 0.0, "gone.csv"))
            wait(lambda s=svc: s.stats.announce_errors == 1, 30, what="the failed announce")
            if dies:
                wait(svc.failure, 30, what="the dead worker reported")
                assert "ftp-worker died: ValueError" in svc.failure()
            else:
                svc.jobs.put(("retention",))
                wait(svc.jobs.empty, 30, what="the worker going on")
                assert svc.failure() == ""
        finally:
            svc.stop()
        assert svc.failure() == ""  # stopping is not a failure
