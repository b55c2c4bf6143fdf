"""`sensorhub report` on a bag recorded from the real sim graph inside the test; broken files.

The recording test starts `sensorhub up --profile sim --record` with free ports and a data root in
tmp_path, stops it with SIGINT once the bag holds enough events, then checks the report's numbers
against the bag read independently (mcap's own indexed reader): the event count is the recorded
one, and the offline re-detection (the driver's own detector) finds the same events.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from bringup.plan import Resolver
from sensorhub_testing import free_port
from sensorhub_tools.report import ReportError, bag_files, make_report, read_bags

SENSORHUB = shutil.which("sensorhub")
NEEDED = ("pbt_driver", "foxglove_gateway", "tim240_bridge", "sec110_ftp", "system_monitor")
STARTUP = 60.0  # generous: a loaded 2-core machine starts eight processes slowly


def _bag_counts(data: Path) -> dict[str, int]:
    """Message counts per topic from the recorder's metadata.yaml (rewritten every few s)."""
    for meta in (data / "bags").glob("*/metadata.yaml"):
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
        except (OSError, yaml.YAMLError, KeyError, TypeError):
            return {}
        return {
            t["topic_metadata"]["name"]: t["message_count"]
            for t in info.get("topics_with_message_count") or []
        }
    return {}


def _independent_counts(files) -> tuple[dict[str, int], set[int]]:
    """Counts per topic and the distinct /pbt/events peak indexes, read with mcap's indexed
    reader and the installed message classes (not the report's code path)."""
    from mcap.reader import make_reader
    from rclpy.serialization import deserialize_message

    from sensorhub_msgs.msg import PbtEvent

    counts: dict[str, int] = {}
    peaks: set[int] = set()
    for p in files:
        with open(p, "rb") as f:
            for _s, ch, m in make_reader(f).iter_messages():
                counts[ch.topic] = counts.get(ch.topic, 0) + 1
                if ch.topic == "/pbt/events":
                    peaks.add(deserialize_message(m.data, PbtEvent).peak_index)
    return counts, peaks


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_report_on_a_sim_recording(procs, tmp_path, wait):
    missing = [p for p in NEEDED if Resolver().package_prefix(p) is None]
    if missing or SENSORHUB is None:
        pytest.skip(f"needs {', '.join(missing) or 'sensorhub on PATH'} installed (make build)")
    data = tmp_path / "data"
    ports = [f"{v}={free_port()}" for v in ("web_port", "tim240_port", "sec110_port")]
    argv = [SENSORHUB, "up", "--profile", "sim", "--record", "--data-root", data, "--no-color"]
    for s in ports:
        argv += ["--set", s]
    sup = procs.start("sensorhub", argv)

    def enough():
        c = _bag_counts(data)
        ok = (
            c.get("/pbt/events", 0) >= 40
            and c.get("/tim240/zones", 0) >= 20
            and c.get("/sec110/files", 0) >= 1
            and c.get("/diagnostics", 0) >= 20
        )
        return c if ok else None

    wait(enough, STARTUP + 120, what="a bag with events, zones, files and diagnostics")
    os.kill(sup.pid, signal.SIGINT)
    assert sup.popen.wait(60) == 0, sup.output()[-3000:]

    files = bag_files([data / "bags"])
    assert files and all(str(f).endswith(".mcap") for f in files)
    counts, peaks = _independent_counts(files)

    rec = read_bags([data / "bags"], progress=False)
    assert not rec.truncated, rec.files
    assert dict(rec.counts) == counts
    out = tmp_path / "report"
    rep = make_report(rec, out)
    # every recorded event, each once (a restarted recorder may hold transient-local repeats)
    assert len(rep.pbt.events) == len(peaks) >= 40
    c = rep.comparison
    assert c.online >= 30, c
    assert c.matched == c.online == c.offline, (c.online_only, c.offline_only)
    assert c.max_peak_shift <= 2
    for name in (
        "spectrum.png",
        "event_rate.png",
        "trace_0.png",
        "zones.png",
        "host.png",
        "losses.png",
    ):
        assert (out / name).stat().st_size > 1000, name
    for name in (
        "events_recorded.csv",
        "events_offline.csv",
        "zones.csv",
        "sec110_files.csv",
        "host.csv",
        "losses.csv",
    ):
        assert len((out / name).read_text().splitlines()) >= 2, name
    page = rep.html.read_text()
    assert page.count("data:image/png;base64,") == len(rep.pngs)
    assert "src='http" not in page and 'src="http' not in page  # self-contained
    assert f"<th>recorded events</th><td>{len(peaks)}</td>" in page

    # the command line, with a changed threshold: fewer or as many events, exit 0
    cli = subprocess.run(
        [SENSORHUB, "report", data / "bags", "--out", tmp_path / "r2", "--set", "threshold=200"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert cli.returncode == 0, cli.stderr
    assert (tmp_path / "r2" / "report.html").exists()
    n_high = len((tmp_path / "r2" / "events_offline.csv").read_text().splitlines()) - 1
    assert n_high <= len(rep.offline.events)

    # a truncated copy (a recorder killed mid-chunk): what it holds is read, the cut is reported
    big = max(files, key=lambda p: p.stat().st_size)
    cut = tmp_path / "cut" / "cut_0.mcap"
    cut.parent.mkdir()
    blob = big.read_bytes()
    cut.write_bytes(blob[: int(len(blob) * 0.6)])
    rec2 = read_bags([cut], progress=False)
    (f,) = rec2.files
    assert f.cut_bytes > 0 and not f.finished
    assert 0 < f.messages < sum(rec.counts.values())
    rep2 = make_report(rec2, tmp_path / "r3")
    assert any("bytes at the end not readable" in n for n in rep2.notes), rep2.notes
    assert "cut:" in rep2.html.read_text()


def test_missing_foreign_and_empty_files(tmp_path):
    with pytest.raises(ReportError, match="no such file"):
        read_bags([tmp_path / "nope.mcap"], progress=False)
    foreign = tmp_path / "notes.mcap"
    foreign.write_text("hello, this is not a bag\n")
    with pytest.raises(ReportError, match="not an MCAP file"):
        read_bags([foreign], progress=False)
    empty = tmp_path / "empty.mcap"
    empty.write_bytes(b"")
    with pytest.raises(ReportError, match=r"not an MCAP file \(empty"):
        read_bags([empty], progress=False)
    d = tmp_path / "nobag"
    d.mkdir()
    with pytest.raises(ReportError, match=r"no \.mcap file"):
        read_bags([d], progress=False)
    magic_only = tmp_path / "m.mcap"
    magic_only.write_bytes(b"\x89MCAP0\r\n" + b"\x00" * 5)
    with pytest.raises(ReportError, match="no readable MCAP record"):
        read_bags([magic_only], progress=False)


def test_cli_reports_errors_with_exit_2(tmp_path):
    if SENSORHUB is None:
        pytest.skip("sensorhub not on PATH (make build)")
    foreign = tmp_path / "x.mcap"
    foreign.write_bytes(b"PK\x03\x04 a zip file")
    r = subprocess.run(
        [SENSORHUB, "report", foreign, "--out", tmp_path / "o"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2
    assert "not an MCAP file" in r.stderr and "Traceback" not in r.stderr


# ---- a synthetic split bag (no ROS graph): the replay is exact from sample 0 -----------------

RATE = 800.0
T0_NS = 1_700_000_000_000_000_000


def _signal(n: int, seed: int = 7):
    import numpy as np

    rng = np.random.default_rng(seed)
    t = np.arange(n) / RATE
    x = 500.0 + rng.normal(0.0, 2.0, n)
    for start in np.arange(0.5, n / RATE - 0.1, 0.2):
        amp = rng.uniform(40.0, 400.0)
        dt = t - start
        on = dt >= 0
        x[on] += amp * np.exp(-dt[on] / 0.006)
    return x.astype(np.float32)  # what the message carries: the replay gets the same values


def _synthetic_bag(
    tmp_path: Path, change_at: int, new_threshold: float, name="syn", t0_ns=T0_NS, seed=7
) -> tuple[Path, list]:
    """Run the driver's detector 'online' over a signal, write what the driver would publish
    (samples, events, a threshold change on /parameter_events) to a split bag."""
    from rcl_interfaces.msg import Parameter, ParameterEvent, ParameterType, ParameterValue
    from rclpy.serialization import serialize_message

    from mcap_recorder.bag import BagSettings, BagWriter, SplitPolicy
    from pbt_driver.detector import Detector, DetectorParams
    from sensorhub_common.schema import build_ros2msg
    from sensorhub_msgs.msg import PbtEvent, PbtSamples

    types = {
        "/pbt/samples": "sensorhub_msgs/msg/PbtSamples",
        "/pbt/events": "sensorhub_msgs/msg/PbtEvent",
        "/parameter_events": "rcl_interfaces/msg/ParameterEvent",
    }
    bag = BagWriter(
        tmp_path / name,
        BagSettings(
            compression="lz4", chunk_size=16 * 1024, split=SplitPolicy(max_bytes=60 * 1024)
        ),
    )
    tid = {t: bag.add_topic(t, ty, build_ros2msg(ty), []) for t, ty in types.items()}
    x = _signal(int(40 * RATE), seed)
    det = Detector(DetectorParams(), RATE)
    online = []

    def stamp(ns, msg):
        msg.sec, msg.nanosec = divmod(ns, 1_000_000_000)

    for b, first in enumerate(range(0, len(x), 40)):
        t_ns = t0_ns + int(first / RATE * 1e9)
        if b == change_at:
            det.set_params(DetectorParams(threshold=new_threshold))
            pe = ParameterEvent(node="/pbt/pbt_driver")
            stamp(t_ns, pe.stamp)
            v = ParameterValue(type=ParameterType.PARAMETER_DOUBLE, double_value=new_threshold)
            pe.changed_parameters = [Parameter(name="threshold", value=v)]
            bag.write(tid["/parameter_events"], serialize_message(pe), t_ns)
        vals = [float(v) for v in x[first : first + 40]]
        env, notes = det.process(vals, first)
        m = PbtSamples(
            first_index=first,
            sample_rate=RATE,
            values=vals,
            envelope=env,
            baseline=float(det.baseline),
        )
        stamp(t_ns, m.header.stamp)
        bag.write(tid["/pbt/samples"], serialize_message(m), t_ns)
        for kind, ev in notes:
            if kind != "close":
                continue
            online.append(ev)
            e = PbtEvent(
                peak_index=ev.peak_index,
                start_index=ev.start_index,
                end_index=ev.end_index,
                peak=ev.peak,
                baseline=ev.baseline,
                amplitude=ev.amplitude,
                width=ev.width,
                area=ev.area,
                rise_time=ev.rise_time,
            )
            stamp(t0_ns + int(ev.peak_index / RATE * 1e9), e.header.stamp)
            bag.write(tid["/pbt/events"], serialize_message(e), t_ns)
        bag.tick()
    bag.close()
    return tmp_path / name, online


def test_exact_replay_of_a_split_bag_with_a_parameter_change(tmp_path):
    bag, online = _synthetic_bag(tmp_path, change_at=400, new_threshold=120.0)
    files = bag_files([bag])
    assert len(files) > 1  # split set, read as one recording
    rec = read_bags([bag], progress=False)
    assert not rec.truncated
    rep = make_report(rec, tmp_path / "out", n_traces=1)
    off = rep.offline
    assert off.exact == [True] and off.changes_applied == 1
    assert [e.peak_index for e in off.events] == [e.peak_index for e in online]
    assert [e.end_index for e in off.events] == [e.end_index for e in online]
    assert len(rep.pbt.events) == len(online) > 100
    c = rep.comparison
    assert c.matched == c.online == c.offline and c.max_peak_shift == 0
    assert c.max_amp_diff < 1e-3  # float32 in the message, float64 offline
    # the change raised the threshold: small pulses after it are not events
    small_after = [e for e in online if e.start_index >= 400 * 40 and e.amplitude < 100]
    assert not small_after

    # what if: the whole run at threshold 120 (the recorded change is overridden)
    rep2 = make_report(rec, tmp_path / "out2", overrides={"threshold": "120"}, n_traces=0)
    assert rep2.offline.changes_applied == 0
    assert len(rep2.offline.events) < len(online)
    assert "--set" in rep2.html.read_text()

    # --params file: the initial value from there
    pf = tmp_path / "p.yaml"
    pf.write_text("/**:\n  ros__parameters:\n    hysteresis: 7.5\n")
    rep3 = make_report(rec, tmp_path / "out3", param_files=[pf], n_traces=0)
    assert "<td>hysteresis</td><td>7.5</td>" in rep3.html.read_text()

    with pytest.raises(ReportError, match="not a detector parameter"):
        make_report(rec, tmp_path / "out4", overrides={"thresh": "1"})
    with pytest.raises(ReportError, match="expected a float"):
        make_report(rec, tmp_path / "out6", overrides={"threshold": "high"})
    with pytest.raises(ReportError, match="hysteresis must be"):
        make_report(rec, tmp_path / "out5", overrides={"hysteresis": "500"})


def test_two_driver_runs_read_together(tmp_path):
    """Bags of two driver runs (the sample index starts again at 0) given at once: each run is
    re-detected with its own detector and compared on its own."""
    a, on_a = _synthetic_bag(tmp_path, change_at=10**9, new_threshold=20.0, name="a", seed=1)
    later = T0_NS + 3600 * 1_000_000_000
    b, on_b = _synthetic_bag(tmp_path, 10**9, 20.0, name="b", t0_ns=later, seed=2)
    rec = read_bags([b, a], progress=False)  # order of the arguments does not matter
    rep = make_report(rec, tmp_path / "out", n_traces=2)
    assert len(rep.pbt.sessions) == 2
    assert [len(s.events) for s in rep.pbt.sessions] == [len(on_a), len(on_b)]
    assert [[e.peak_index for e in evs] for evs in rep.offline.by_session] == [
        [e.peak_index for e in on_a],
        [e.peak_index for e in on_b],
    ]
    c = rep.comparison
    assert c.matched == c.online == c.offline == len(on_a) + len(on_b)
    assert any("2 driver runs" in n for n in rep.notes)
