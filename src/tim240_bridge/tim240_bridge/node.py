"""The tim240_bridge node: LaserScan from the native driver (or sick_scan_xd), then processing.

Thin: the native driver thread decodes telegrams and calls back here; the scan, the filtered
scan, zones and markers are published from that thread (rclpy publish is thread-safe). With
``driver: sick_scan_xd`` the same processing runs in the scan subscription's callback.
"""

from __future__ import annotations

import array
import math
import threading
import time
from dataclasses import dataclass

import numpy as np
from rclpy.node import Node

from sensorhub_common import diagnostics as diag
from sensorhub_common import qos
from sensorhub_common.params import Param, ParamSet
from sensorhub_common.runner import run_node
from tim240_bridge import cola
from tim240_bridge import processing as proc
from tim240_bridge import scandata as sd
from tim240_bridge.clock import DeviceClock
from tim240_bridge.driver import DriverConfig, NativeDriver

TIM240_FOV = 2.094395102  # +-120 deg, sick_tim_240.launch


def _pw_check(v: str) -> str | None:
    try:
        int(v, 16)
    except ValueError:
        return "must be 8 hex digits"
    return None if len(v) <= 8 else "must be 8 hex digits"


PARAMS = [
    Param("driver", "native", "'native' (our CoLa driver) or 'sick_scan_xd' (process its scan)",
          choices=("native", "sick_scan_xd"), read_only=True),
    Param("scan_topic", "/scan", "sick_scan_xd: LaserScan topic to process", read_only=True),
    # sick_scan_xd names
    Param("hostname", "192.168.0.1", "Scanner IP address or host name", read_only=True),
    Param("port", 2111, "Scanner TCP port (TiM240: 2111)", min=1, max=65535, read_only=True),
    Param("use_binary_protocol", True, "Talk CoLa-B (true) or CoLa-A; the device is switched "
          "with EIHstCola if it speaks the other", read_only=True),
    Param("scanner_type", "sick_tim_240", "Geometry and limits: angle shift 0 for the TiM240, "
          "-90 deg for TiM5xx/7xx/LMS1xx", choices=tuple(sd.SCANNER_TYPES), read_only=True),
    Param("frame_id", "laser", "header.frame_id of scan (native driver)", read_only=True),
    Param("min_ang", -TIM240_FOV, "Start angle of the published scan [rad]", min=-math.pi,
          max=math.pi, read_only=True),
    Param("max_ang", TIM240_FOV, "End angle of the published scan [rad]", min=-math.pi,
          max=math.pi, read_only=True),
    Param("range_min", 0.05, "Lower range limit [m] (also bounded by the scanner type)",
          min=0.0, max=100.0, read_only=True),
    Param("range_max", 100.0, "Upper range limit [m] (also bounded by the scanner type)",
          min=0.01, max=1000.0, read_only=True),
    Param("intensity", True, "Publish intensities (RSSI channel)", read_only=True),
    Param("intensity_resolution_16bit", True, "RSSI with 16 bit (else 8 bit)",
          read_only=True),
    Param("timelimit", 5.0, "Reconnect when no scan arrives for this long [s]", min=0.5,
          max=600.0, read_only=True),
    Param("client_authorization_pw", "F4724744", "SetAccessMode password hash (hex)",
          read_only=True, check=_pw_check),
    Param("time_offset", 0.0, "Added to every header.stamp [s]", min=-10.0, max=10.0),
    Param("clock_jump_threshold", 1.0, "Device clock vs. receive time beyond this is a clock "
          "jump: the clock model re-anchors; stamps stay within twice this of the receive "
          "time [s]", min=0.05, max=60.0, read_only=True),
    # ours
    Param("reconnect_backoff_min", 0.2, "First reconnect delay [s]", min=0.01, max=60.0,
          read_only=True),
    Param("reconnect_backoff_max", 5.0, "Longest reconnect delay [s]", min=0.01, max=600.0,
          read_only=True),
    Param("stall_warn", 0.5, "Diagnostics warn when no scan for this long [s]", min=0.1,
          max=60.0),
    Param("filter_range_min", 0.05, "Filtered scan: points nearer are invalid [m]", min=0.0),
    Param("filter_range_max", 10.0, "Filtered scan: points farther are invalid [m]", min=0.01),
    Param("filter_min_ang", -TIM240_FOV, "Filtered scan: start angle [rad]", min=-math.pi,
          max=math.pi),
    Param("filter_max_ang", TIM240_FOV, "Filtered scan: end angle [rad]", min=-math.pi,
          max=math.pi),
    Param("filter_invalid", "rep117", "Invalid points in the filtered scan: 'rep117' (+-inf), "
          "'nan' or 'range_max'", choices=proc.INVALID_MODES),
    Param("median_window", 3, "Spatial median window in points (odd, 1 = off)", min=1, max=31),
    Param("temporal_alpha", 0.5, "Temporal filter weight of the new scan (1 = off)", min=0.01,
          max=1.0),
    Param("temporal_max_jump", 0.1, "Beams that move more than this are not smoothed [m]",
          min=0.0),
    Param("zones", [], "Zones: 'NAME sector R_MIN R_MAX A_MIN_DEG A_MAX_DEG' or 'NAME "
          "polygon X1 Y1 X2 Y2 X3 Y3 ...' (scan frame, m/deg)", item_type=str),
    Param("zone_min_points", 3, "Points inside a zone needed to call it occupied", min=1,
          max=10000),
    Param("zone_enter_delay", 0.1, "Occupied only after this long [s]", min=0.0, max=60.0),
    Param("zone_leave_delay", 0.5, "Free only after this long [s]", min=0.0, max=60.0),
    Param("publish_markers", True, "Publish tim240/markers for Foxglove"),
    Param("markers_rate", 5.0, "Most marker updates per second; a zone change is published "
          "at once [Hz]", min=0.1, max=100.0),
]  # fmt: skip

FILTER_KEYS = {
    "filter_range_min": "range_min", "filter_range_max": "range_max",
    "filter_min_ang": "min_ang", "filter_max_ang": "max_ang", "filter_invalid": "invalid",
    "median_window": "median_window", "temporal_alpha": "temporal_alpha",
    "temporal_max_jump": "temporal_max_jump",
}  # fmt: skip
ZONE_KEYS = ("zones", "zone_min_points", "zone_enter_delay", "zone_leave_delay")


def zone_specs(v: dict) -> list[str]:
    return [z for z in v["zones"] if z.strip()]


def filter_params(v: dict) -> proc.FilterParams:
    return proc.FilterParams(**{f: v[k] for k, f in FILTER_KEYS.items()})


def cross_check(v: dict) -> str | None:
    try:
        filter_params(v).check()
        proc.parse_zones(zone_specs(v))
    except (proc.FilterConfigError, proc.ZoneConfigError) as e:
        return str(e)
    if v["min_ang"] >= v["max_ang"]:
        return "min_ang must be < max_ang"
    if v["range_min"] >= v["range_max"]:
        return "range_min must be < range_max"
    return None


@dataclass
class ScanIn:
    """One scan to filter and check against the zones, from either source."""

    header: object  # std_msgs/Header of the scan
    t: float  # its time [s] (header.stamp)
    angle_min: float
    increment: float
    ranges: np.ndarray  # float32
    intensities: np.ndarray | None
    scan_time: float
    time_increment: float


def _f32(a: np.ndarray) -> array.array:
    """float32 numpy -> array('f'): rclpy takes it without a per-element check."""
    out = array.array("f")
    out.frombytes(np.ascontiguousarray(a, dtype=np.float32).tobytes())
    return out


class Tim240BridgeNode(Node):
    def __init__(self, **kwargs):
        super().__init__("tim240_bridge", **kwargs)
        from sensor_msgs.msg import LaserScan
        from visualization_msgs.msg import Marker, MarkerArray

        from sensorhub_msgs.msg import ZoneStatus

        self._LaserScan, self._Zone = LaserScan, ZoneStatus
        self._Marker, self._MarkerArray = Marker, MarkerArray
        self.params = ParamSet(self, PARAMS, cross_check, self._on_change)
        v = self.params.snapshot()
        self.mode = v["driver"]
        self.scanner = sd.SCANNER_TYPES[v["scanner_type"]]
        self.lock = threading.Lock()
        self.filter = proc.ScanFilter(filter_params(v))
        self._make_zones(v)
        self.clock = DeviceClock(jump_threshold=v["clock_jump_threshold"])
        self.refusals = sd.Refusals()
        self.scans = 0
        self.bad_geometry = 0
        self._last_scans = 0
        self._last_jumps = 0
        self.stamp_lag = math.nan  # receive time - header.stamp of the last scan [s]
        self.last_scan = 0.0
        self._last_bad = 0
        self._last_result: proc.ZoneResult | None = None
        self._marker_cache = None
        self._next_markers = 0.0
        self.pub_filtered = self.create_publisher(LaserScan, "tim240/scan_filtered", qos.SCAN)
        self.pub_zones = self.create_publisher(ZoneStatus, "tim240/zones", qos.ZONES)
        self.pub_markers = self.create_publisher(MarkerArray, "tim240/markers", qos.ZONES)
        self.freq = diag.FrequencyStatus(
            diag.FrequencyStatusParam(
                {"min": self.scanner.frequency, "max": self.scanner.frequency}, 0.1, 5
            ),
            "scan rate",
        )
        self.driver: NativeDriver | None = None
        if self.mode == "native":
            self.pub_scan = self.create_publisher(LaserScan, "scan", qos.SCAN)
            hw = f"SICK TiM240 at {v['hostname']}:{v['port']}"
            self.driver = NativeDriver(
                DriverConfig(
                    hostname=v["hostname"], port=v["port"],
                    use_binary_protocol=v["use_binary_protocol"],
                    password=int(v["client_authorization_pw"], 16), timelimit=v["timelimit"],
                    min_ang=v["min_ang"], max_ang=v["max_ang"],
                    angle_shift_deg=self.scanner.angle_shift_deg, intensity=v["intensity"],
                    intensity_resolution_16bit=v["intensity_resolution_16bit"],
                    backoff_min=v["reconnect_backoff_min"],
                    backoff_max=max(v["reconnect_backoff_min"], v["reconnect_backoff_max"]),
                ),
                on_scan=self._on_native_scan,
                on_event=self._on_driver_event,
            )  # fmt: skip
        else:
            self.pub_scan = None
            hw = f"SICK TiM240 via sick_scan_xd ({v['scan_topic']})"
            self.sub = self.create_subscription(
                LaserScan, v["scan_topic"], self._on_scan_msg, qos.viewer(qos.SCAN)
            )
        self.diag = diag.Updater(self, hardware_id=hw)
        self.diag.add("device", self._diag_device)
        self.diag.add(self.freq)
        self.diag.add("telegrams", self._diag_telegrams)
        if self.driver is not None:
            self.diag.add("clock", self._diag_clock)
        self.diag.add("zones", self._diag_zones)
        if self.driver is not None:
            self.driver.start()
            self.get_logger().info(
                f"native driver -> {v['hostname']}:{v['port']} "
                f"({'CoLa-B' if v['use_binary_protocol'] else 'CoLa-A'}, {v['scanner_type']}); "
                f"zones: {', '.join(z.name for z in self.zones.zones) or 'none'}"
            )
        else:
            self.get_logger().info(f"processing sick_scan_xd's {v['scan_topic']}")

    def _make_zones(self, v: dict) -> None:
        zones = proc.parse_zones(zone_specs(v))
        self.zones = proc.ZoneMonitor(zones, v["zone_min_points"], v["zone_enter_delay"],
                                      v["zone_leave_delay"])  # fmt: skip
        self._outlines = [z.outline() for z in zones]

    def _on_change(self, changed: dict) -> None:
        v = self.params.snapshot()
        with self.lock:
            if any(k in changed for k in FILTER_KEYS):
                self.filter = proc.ScanFilter(filter_params(v))
            if any(k in changed for k in ZONE_KEYS):
                self._make_zones(v)

    # -- native driver thread -----------------------------------------------------------------
    def _on_driver_event(self, level: str, msg: str) -> None:
        if level == "info":
            self.get_logger().info(msg)
            if msg.startswith("streaming"):
                self.clock.reanchor()
        else:
            self.get_logger().warning(msg)

    def _on_native_scan(self, scan: sd.Scan, arrival: float) -> None:
        v = self.params.snapshot()
        try:
            g = sd.to_geometry(scan, self.scanner, v["min_ang"], v["max_ang"], v["range_min"],
                               v["range_max"], v["intensity"])  # fmt: skip
        except sd.RefusedTelegramError as e:
            if self.refusals.add(e):
                self.get_logger().warning(f"refusing telegrams: {e}")
            return
        except sd.ScanDataError:
            self.bad_geometry += 1
            return
        t, jump = self.clock.stamp(scan.time_since_power_up_us, scan.time_of_transmission_us,
                                   arrival)  # fmt: skip
        if jump is not None:
            self.get_logger().warning(
                f"device clock jumped by {jump:+.3f} s against the receive time; clock model "
                f"re-anchored ({self.clock.jumps} jumps so far)"
            )
        self.stamp_lag = arrival - t
        t += v["time_offset"]
        m = self._LaserScan()
        self._stamp(m, t)
        m.header.frame_id = v["frame_id"]
        m.angle_min, m.angle_max, m.angle_increment = g.angle_min, g.angle_max, g.angle_increment
        m.time_increment, m.scan_time = g.time_increment, g.scan_time
        m.range_min, m.range_max = g.range_min, g.range_max
        m.ranges = _f32(g.ranges)
        if g.intensities.size:
            m.intensities = _f32(g.intensities)
        self.pub_scan.publish(m)
        inten = g.intensities if g.intensities.size else None
        self._process(ScanIn(header=m.header, t=t, angle_min=g.angle_min,
                             increment=g.angle_increment, ranges=g.ranges, intensities=inten,
                             scan_time=g.scan_time, time_increment=g.time_increment))  # fmt: skip

    # -- sick_scan_xd subscription ----------------------------------------------------------------
    def _on_scan_msg(self, m) -> None:
        t = m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
        r = np.frombuffer(m.ranges, dtype=np.float32) if len(m.ranges) else np.zeros(0, np.float32)
        inten = np.frombuffer(m.intensities, np.float32) if len(m.intensities) else None
        self._process(ScanIn(header=m.header, t=t, angle_min=m.angle_min,
                             increment=m.angle_increment, ranges=r, intensities=inten,
                             scan_time=m.scan_time, time_increment=m.time_increment))  # fmt: skip

    # -- processing ----------------------------------------------------------------------------
    @staticmethod
    def _stamp(m, t: float) -> None:
        sec = math.floor(t)
        m.header.stamp.sec, m.header.stamp.nanosec = sec, min(int((t - sec) * 1e9), 999999999)

    def _process(self, s: ScanIn) -> None:
        self.scans += 1
        self.last_scan = time.monotonic()
        self.freq.tick()
        v = self.params.snapshot()
        with self.lock:
            f = self.filter.apply(s.angle_min, s.increment, s.ranges, s.intensities)
            res = self.zones.update(s.t, f.ranges, f.angles, f.valid)
            outlines = self._outlines
            names = [z.name for z in self.zones.zones]
        self._last_result = res
        self.pub_filtered.publish(self._filtered_scan(s, f, v))
        self._publish_zones(s.header, names, res)
        now = time.monotonic()
        if v["publish_markers"] and (res.changes or now >= self._next_markers):
            self._next_markers = now + 1.0 / v["markers_rate"]
            self.pub_markers.publish(self._markers(s.header, names, res, outlines))

    def _filtered_scan(self, s: ScanIn, f, v: dict):
        m = self._LaserScan()
        m.header = s.header
        inc = s.increment
        m.angle_min = float(f.angle_min)
        m.angle_increment = float(inc)
        m.angle_max = float(f.angle_min + inc * max(0, f.ranges.size - 1))
        m.time_increment, m.scan_time = float(s.time_increment), float(s.scan_time)
        m.range_min, m.range_max = float(v["filter_range_min"]), float(v["filter_range_max"])
        m.ranges = _f32(f.ranges)
        if f.intensities is not None:
            m.intensities = _f32(f.intensities)
        return m

    def _publish_zones(self, header, names: list[str], res: proc.ZoneResult) -> None:
        z = self._Zone()
        z.header = header
        z.names = names
        z.occupied = [s.occupied for s in res.states]
        z.nearest_range = [float(s.nearest_range) for s in res.states]
        z.point_count = [s.count for s in res.states]
        since = []
        for s in res.states:
            st = type(header.stamp)()
            sec = math.floor(s.since)
            st.sec, st.nanosec = sec, min(int((s.since - sec) * 1e9), 999999999)
            since.append(st)
        z.since = since
        z.nearest_range_overall = float(res.nearest_range)
        z.nearest_angle_overall = float(res.nearest_angle)
        z.nearest_x, z.nearest_y = float(res.nearest_xy[0]), float(res.nearest_xy[1])
        self.pub_zones.publish(z)
        for c in res.changes:
            state = "OCCUPIED" if c.occupied else "free"
            self.get_logger().info(
                f"zone {c.name}: {state} ({c.count} points, nearest {c.nearest_range:.2f} m)"
            )

    def _markers(self, header, names, res, outlines):
        """One MarkerArray per zone set, reused: only header, colours, texts and the nearest
        point change per scan (building ~100 Points per scan costs more than the filter)."""
        from geometry_msgs.msg import Point

        mk = self._Marker
        if self._marker_cache is None or self._marker_cache[0] is not outlines:
            arr = self._MarkerArray()
            for i, pts in enumerate(outlines):
                m = mk()
                m.ns, m.id, m.type, m.action = "zones", i, mk.LINE_STRIP, mk.ADD
                m.pose.orientation.w = 1.0
                m.scale.x = 0.03
                m.color.a = 1.0
                m.points = [Point(x=x, y=y, z=0.0) for x, y in pts]
                txt = mk()
                txt.ns, txt.id, txt.type, txt.action = "zone_names", i, mk.TEXT_VIEW_FACING, mk.ADD
                txt.pose.position.x, txt.pose.position.y = pts[0]
                txt.pose.orientation.w = 1.0
                txt.scale.z = 0.15
                txt.color.a = 1.0
                arr.markers += [m, txt]
            n = mk()
            n.ns, n.id, n.type = "nearest", 0, mk.SPHERE
            n.pose.orientation.w = 1.0
            n.scale.x = n.scale.y = n.scale.z = 0.12
            n.color.r, n.color.g, n.color.b, n.color.a = 1.0, 0.9, 0.0, 1.0
            arr.markers.append(n)
            self._marker_cache = (outlines, arr)
        arr = self._marker_cache[1]
        for i, (name, s) in enumerate(zip(names, res.states, strict=True)):
            m, txt = arr.markers[2 * i], arr.markers[2 * i + 1]
            m.header = txt.header = header
            if s.occupied:
                m.color.r, m.color.g, m.color.b = 1.0, 0.15, 0.1
            else:
                m.color.r, m.color.g, m.color.b = 0.1, 0.8, 0.2
            txt.color.r, txt.color.g, txt.color.b = m.color.r, m.color.g, m.color.b
            txt.text = f"{name}: {'occupied' if s.occupied else 'free'}"
        n = arr.markers[-1]
        n.header = header
        if math.isfinite(res.nearest_range):
            n.action = mk.ADD
            n.pose.position.x, n.pose.position.y = res.nearest_xy
        else:
            n.action = mk.DELETE
        return arr

    # -- diagnostics (executor thread, ~1 Hz) ---------------------------------------------------
    def _diag_device(self, stat) -> None:
        v = self.params.snapshot()
        age = time.monotonic() - self.last_scan if self.last_scan else None
        d = self.driver
        if d is None:
            if age is None:
                stat.summary(diag.WARN, f"no scan on {v['scan_topic']} yet")
            elif age > v["stall_warn"]:
                stat.summary(diag.WARN, f"no scan for {age:.1f} s")
            else:
                stat.summary(diag.OK, "receiving sick_scan_xd scans")
            stat.add("scan topic", v["scan_topic"])
            stat.add("scans", self.scans)
            return
        if d.state == "streaming" and age is not None and age <= v["stall_warn"]:
            stat.summary(diag.OK, "streaming")
        elif d.state == "streaming":
            stat.summary(diag.WARN, "stalled: no scan for "
                         f"{age if age is not None else time.monotonic() - d.streaming_since:.1f}"
                         " s")  # fmt: skip
        elif d.stats.connects == 0:
            stat.summary(diag.ERROR, f"not connected: {d.last_error or d.state}")
        else:
            stat.summary(diag.WARN if d.state == "dialogue" else diag.ERROR,
                         f"{d.state}: {d.last_error}")  # fmt: skip
        stat.add("address", f"{v['hostname']}:{v['port']}")
        stat.add("state", d.state)
        stat.add("dialect", cola.DIALECT_NAMES.get(d.dialect, d.dialect))
        stat.add("device dialect at connect",
                 cola.DIALECT_NAMES.get(d.device_dialect, "unknown"))  # fmt: skip
        for k in ("serial", "firmware", "device state", "location", "operating hours",
                  "power-on count", "output range"):  # fmt: skip
            stat.add(k, d.info.get(k, "unknown"))
        stat.add("connections", d.stats.connects)
        stat.add("reconnects", max(0, d.stats.connects - 1))
        stat.add("reconnect attempts", d.stats.reconnects)
        stat.add("stalls", d.stats.stalls)
        stat.add("connection losses", d.stats.connection_losses)
        stat.add("protocol errors", d.stats.protocol_errors)
        stat.add("dialect switches", d.stats.dialect_switches)
        stat.add("last error", d.last_error)
        stat.add("seconds since last scan", f"{age:.2f}" if age is not None else "never")

    def _diag_telegrams(self, stat) -> None:
        d = self.driver
        if d is None:
            stat.summary(diag.OK, f"{self.scans} scans from sick_scan_xd")
            stat.add("scans", self.scans)
            return
        fs, ds = d.framer.stats, d.stats
        sfa = sum(ds.sfa.values())
        bad = fs.malformed + fs.discarded_bytes + ds.decode_errors + ds.unexpected_frames + sfa
        new = bad - self._last_bad
        self._last_bad = bad
        published, self._last_scans = self.scans - self._last_scans, self.scans
        refused = self.refusals.take_window()
        stat.summary(diag.OK, f"{ds.scans} scans")
        if new:
            stat.summary(diag.WARN, "malformed or unexpected input in the last period")
        if refused:  # every telegram refused: nothing published at all, an ERROR
            stat.merge_summary(diag.WARN if published else diag.ERROR,
                               self.refusals.describe(refused))  # fmt: skip
        stat.add("scans", ds.scans)
        stat.add("frames", fs.frames)
        stat.add("checksum errors", fs.checksum_errors)
        stat.add("truncated frames", fs.truncated)
        stat.add("oversized length fields", fs.oversized)
        stat.add("CoLa-A garbage", fs.ascii_garbage)
        stat.add("discarded bytes", fs.discarded_bytes)
        stat.add("decode errors", ds.decode_errors)
        stat.add("unexpected frames", ds.unexpected_frames)
        stat.add("sFA replies", sfa)
        for k, n in sorted(ds.sfa.items()):
            stat.add(f"sFA {k}", n)
        stat.add("scans outside min_ang..max_ang", self.bad_geometry)
        stat.add("refused telegrams", self.refusals.count)
        for reason, n in sorted(self.refusals.total.items()):
            stat.add(f"refused: {reason}", n)
        stat.add("last refusal", self.refusals.last or "none")
        stat.add("bytes received", ds.bytes_received)

    def _diag_clock(self, stat) -> None:
        c = self.clock
        jumps, self._last_jumps = c.jumps - self._last_jumps, c.jumps
        if jumps:
            stat.summary(diag.WARN, f"device clock jumped {jumps} time{'s' * (jumps != 1)} in "
                         f"the last period (last {c.last_jump:+.3f} s); re-anchored")  # fmt: skip
        elif c.samples:
            stat.summary(diag.OK, f"in sync, skew {c.skew * 1e6:+.1f} ppm")
        else:
            stat.summary(diag.OK, "no telegram yet")
        stat.add("clock jumps", c.jumps)
        stat.add("last jump (s)", f"{c.last_jump:+.3f}")
        stat.add("device clock went back", c.resets)
        stat.add("scan starts not before transmission", c.inconsistent_starts)
        stat.add("skew (ppm)", f"{c.skew * 1e6:+.1f}")
        stat.add("receive time - stamp (s)",
                 f"{self.stamp_lag:.4f}" if math.isfinite(self.stamp_lag) else "n/a")  # fmt: skip
        stat.add("jump threshold (s)", c.jump_threshold)

    def _diag_zones(self, stat) -> None:
        res = self._last_result
        if res is None:
            stat.summary(diag.OK, "no scan processed yet")
            return
        names = [z.name for z in self.zones.zones]
        occ = [n for n, s in zip(names, res.states, strict=False) if s.occupied]
        stat.summary(diag.OK, f"occupied: {', '.join(occ)}" if occ else "all zones free")
        for n, s in zip(names, res.states, strict=False):
            stat.add(f"{n}", f"{'occupied' if s.occupied else 'free'}, {s.count} points, "
                     f"nearest {s.nearest_range:.2f} m")  # fmt: skip
        stat.add("nearest obstacle (m)", f"{res.nearest_range:.3f}")
        stat.add("nearest bearing (deg)", f"{math.degrees(res.nearest_angle):.1f}"
                 if math.isfinite(res.nearest_angle) else "n/a")  # fmt: skip

    def on_shutdown(self) -> None:
        if self.driver is not None:
            self.driver.stop()


def main(args=None) -> None:
    run_node(Tim240BridgeNode, args=args)


if __name__ == "__main__":
    main()
