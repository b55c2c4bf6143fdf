"""The emulator's beams and telegrams, no sockets: a capture seen through a TiM240's geometry."""

from __future__ import annotations

import numpy as np
import pytest

from tim240_bridge import captures, cola, simscan
from tim240_bridge import scandata as sd
from tim240_bridge.sim import parse_args

TIM240_ANGLES = simscan.START + simscan.STEP * np.arange(241)  # 1/10000 deg
CFG = (1, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 1)


def scan(start, step, dist, rssi=None, rssi_bits=16, scale=1.0):
    chans16 = [sd.Channel("DIST1", scale, 0.0, start, step, np.asarray(dist, np.uint16), 16)]
    chans8 = []
    if rssi is not None:
        dt = np.uint16 if rssi_bits == 16 else np.uint8
        ch = sd.Channel("RSSI1", 1.0, 0.0, start, step, np.asarray(rssi, dt), rssi_bits)
        (chans16 if rssi_bits == 16 else chans8).append(ch)
    return sd.Scan(channels16=chans16, channels8=chans8)


def test_a_tim240_capture_resamples_to_itself():
    dist = np.arange(241, dtype=np.uint16) * 7 + 100
    b = simscan.resample(scan(-1200000, 10000, dist, dist + 1), 0.0, TIM240_ANGLES)
    assert b.dist_mm.tolist() == dist.tolist()
    assert b.rssi16.tolist() == (dist + 1).tolist()


def test_each_beam_takes_the_nearest_captured_beam_in_the_ros_frame():
    # a TiM7xx-like telegram: -45..225 deg at 0.5 deg, i.e. -135..135 deg in the ROS frame
    dist = np.arange(541, dtype=np.uint16) + 1000
    b = simscan.resample(scan(-450000, 5000, dist), -90.0, TIM240_ANGLES)
    # ROS angle a is telegram angle a + 90, beam (a + 90 + 45) / 0.5
    assert b.dist_mm[0] == 1000 + 30 and b.dist_mm[120] == 1000 + 270
    assert b.dist_mm[240] == 1000 + 510
    assert b.rssi16 is None


def test_angles_the_capture_does_not_cover_have_no_echo():
    dist = np.full(61, 2000, np.uint16)  # -30..30 deg at 1 deg
    b = simscan.resample(scan(-300000, 10000, dist), 0.0, TIM240_ANGLES)
    assert (b.dist_mm[90:151] == 2000).all()
    assert (b.dist_mm[:89] == 0).all() and (b.dist_mm[152:] == 0).all()


def test_no_echo_stays_no_echo_and_scaled_distances_become_millimetres():
    dist = np.array([0, 500, 40000], np.uint16)
    b = simscan.resample(scan(-10000, 10000, dist, scale=2.0), 0.0, np.array([-10000, 0, 10000]))
    assert b.dist_mm.tolist() == [0, 1000, 65535]  # clipped to the 16-bit field


def test_remission_channel_follows_the_configured_resolution():
    s = scan(-1200000, 10000, np.full(241, 1000), rssi=np.full(241, 200), rssi_bits=8)
    b = simscan.resample(s, 0.0, TIM240_ANGLES)

    def telegram(cfg):
        return simscan.telegram(b, simscan.TelegramSpec(simscan.START, simscan.STEP, cfg, 15.0, 7))

    t16 = telegram(CFG)
    assert t16.channel("RSSI1").bits == 16 and t16.channel("RSSI1").values[0] == 200 * 256
    t8 = telegram((*CFG[:3], 0, *CFG[4:]))
    assert t8.channels8[0].values[0] == 200 and t8.channels16[0].name == "DIST1"
    off = telegram((1, 0, 0, *CFG[3:]))
    assert off.channel("RSSI") is None


def test_telegram_has_the_tim240_frequencies_and_re_encodes_in_both_dialects():
    b = simscan.Beams(np.arange(241, dtype=np.uint16) + 300, np.full(241, 5000.0))
    t = simscan.telegram(b, simscan.TelegramSpec(simscan.START, simscan.STEP, CFG, 15.0, 42))
    assert (t.scan_frequency, t.measurement_frequency, t.serial) == (1500, 54, 42)
    for d in (cola.ASCII, cola.BINARY):
        back = sd.decode(d, sd.encode(d, t))
        g = sd.to_geometry(back, sd.SCANNER_TYPES["sick_tim_240"])
        assert len(g.ranges) == 241
        assert g.angle_min == pytest.approx(np.radians(-120)) and g.angle_max == pytest.approx(
            np.radians(120)
        )
        assert back.channel("DIST1").values.tolist() == b.dist_mm.tolist()


def test_every_sick_capture_replays_as_241_tim240_points(capture_path, capture_name):
    cap = capture_path(capture_name)
    scans = [sd.decode(cola.BINARY, p) for p in captures.scandata_payloads(cap)]
    r = simscan.Replay(scans, sd.SCANNER_TYPES["sick_tim_7xx"])
    for _ in range(3):
        b = r.beams(TIM240_ANGLES)
        assert len(b.dist_mm) == 241 and (b.dist_mm > 0).any()


def test_a_capture_outside_the_tim240_span_is_refused_by_name():
    far = scan(1300000, 10000, np.full(10, 1000))
    with pytest.raises(ValueError, match=r"covers 130\.\.139 deg as sick_tim_240"):
        simscan.Replay([far], sd.SCANNER_TYPES["sick_tim_240"])


def test_replay_unchanged_needs_a_replay(capsys):
    with pytest.raises(SystemExit) as e:
        parse_args(["--replay-unchanged"])
    assert e.value.code == 2
    assert "--replay-unchanged needs --replay" in capsys.readouterr().err
    a = parse_args(["--replay", "x.pcapng.json", "--replay-unchanged"])
    assert a.replay_unchanged and a.replay_scanner == "sick_tim_7xx"
