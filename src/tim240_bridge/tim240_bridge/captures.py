"""Readers for recorded SICK traffic: sick_scan_xd's ``*.pcapng.json`` and raw pcapng. No ROS.

The pcapng reader is deliberately small: Section Header, Interface Description and Enhanced
Packet blocks, Ethernet + IPv4 + TCP, payloads joined per flow in capture order (the captures
are clean streams; no retransmission handling).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from tim240_bridge import cola


def read_json(path) -> list[tuple[float, bytes]]:
    """(relative time [s], TCP payload) of every entry, in file order."""
    entries = json.loads(Path(path).read_text())
    out = []
    for e in entries:
        tcp = e["_source"]["layers"]["tcp"]
        data = bytes.fromhex(tcp["tcp.payload"].replace(":", ""))
        t = float(tcp.get("Timestamps", {}).get("tcp.time_relative", "0"))
        out.append((t, data))
    return out


def read_pcapng_flows(path) -> dict[tuple, bytearray]:
    """{(src ip, src port, dst ip, dst port): joined TCP payload} of a pcapng file."""
    raw = Path(path).read_bytes()
    flows: dict[tuple, bytearray] = {}
    off = 0
    endian = "<"
    linktypes: list[int] = []
    while off + 12 <= len(raw):
        (btype,) = struct.unpack_from(endian + "I", raw, off)
        if btype == 0x0A0D0D0A:  # section header: the byte-order magic decides endianness
            bom = raw[off + 8 : off + 12]
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">"
            linktypes = []
        (blen,) = struct.unpack_from(endian + "I", raw, off + 4)
        if blen < 12 or off + blen > len(raw):
            raise ValueError(f"pcapng: bad block length {blen} at {off}")
        body = raw[off + 8 : off + blen - 4]
        if btype == 1:
            linktypes.append(struct.unpack_from(endian + "H", body, 0)[0])
        elif btype == 6:
            iface, _th, _tl, caplen, _olen = struct.unpack_from(endian + "IIIII", body, 0)
            pkt = body[20 : 20 + caplen]
            if iface < len(linktypes) and linktypes[iface] == 1:
                _add_ethernet(pkt, flows)
        off += blen
    return flows


def _add_ethernet(pkt: bytes, flows) -> None:
    if len(pkt) < 14 + 20:
        return
    (etype,) = struct.unpack_from(">H", pkt, 12)
    off = 14
    if etype == 0x8100:  # VLAN tag
        (etype,) = struct.unpack_from(">H", pkt, 16)
        off = 18
    if etype != 0x0800:
        return
    ihl = (pkt[off] & 0x0F) * 4
    if pkt[off + 9] != 6:  # TCP only
        return
    (total,) = struct.unpack_from(">H", pkt, off + 2)
    src, dst = pkt[off + 12 : off + 16], pkt[off + 16 : off + 20]
    t = off + ihl
    sport, dport = struct.unpack_from(">HH", pkt, t)
    doff = (pkt[t + 12] >> 4) * 4
    payload = pkt[t + doff : off + total]
    if payload:
        key = (".".join(map(str, src)), sport, ".".join(map(str, dst)), dport)
        flows.setdefault(key, bytearray()).extend(payload)


def lidar_stream(path, ports=(2111, 2112)) -> bytes:
    """The lidar -> host byte stream of a pcapng (source port 2111/2112, else the largest)."""
    flows = read_pcapng_flows(path)
    cands = [k for k in flows if k[1] in ports] or list(flows)
    if not cands:
        raise ValueError(f"{path}: no TCP payload")
    return bytes(flows[max(cands, key=lambda k: len(flows[k]))])


def frames_of(path) -> list[cola.Frame]:
    """Every frame of a capture: per entry for JSON, through the framer for pcapng."""
    p = Path(path)
    fr = cola.Framer()
    if p.name.endswith(".json"):
        out = []
        for _, data in read_json(p):
            out += fr.feed(data)
        return out
    return fr.feed(lidar_stream(p))


def scandata_payloads(path) -> list[bytes]:
    from tim240_bridge.scandata import is_scandata

    return [f.payload for f in frames_of(path) if is_scandata(f.payload)]
