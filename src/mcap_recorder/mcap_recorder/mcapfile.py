"""One MCAP file of a bag: the writer, the write-through stream, the file checks (no rclpy).

Each file: profile ``ros2``, schemas ``ros2msg``, messages ``cdr``, chunked and compressed (zstd
or lz4). mcap itself is imported only when a file is opened or read, so a restarted recorder
subscribes first and imports while DDS matches (restart cost).
"""

from __future__ import annotations

import contextlib
import errno
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

COMPRESSIONS = ("zstd", "lz4", "none")
LIBRARY = "sensorhub mcap_recorder"
MCAP_MAGIC = b"\x89MCAP0\r\n"
_FOOTER_AND_MAGICS = 2 * len(MCAP_MAGIC) + 29  # the smallest finished file


def mcap_writer(stream, compression: str, **kw):
    """mcap's Writer on ``stream``, chunks compressed by ``compression`` (a COMPRESSIONS name)."""
    from mcap.writer import CompressionType, Writer

    kinds = {
        "zstd": CompressionType.ZSTD,
        "lz4": CompressionType.LZ4,
        "none": CompressionType.NONE,
    }
    return Writer(stream, compression=kinds[compression], **kw)


class KernelFile:
    """Write-through file: each write reaches the kernel at once (survives SIGKILL).

    Deliberately not an ``io.RawIOBase``: mcap's Writer would wrap that in a BufferedWriter.
    """

    def __init__(self, path: Path):
        self._f = open(path, "xb", buffering=0)  # noqa: SIM115 - closed by close()
        self._pos = 0

    def write(self, data) -> int:
        view = memoryview(data)
        while view:
            n = self._f.write(view)
            view = view[n:]
            self._pos += n
        return len(data)

    def tell(self) -> int:
        return self._pos

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self._f.close()

    def abandon(self) -> None:
        """After a write error: close the descriptor whatever happens (the file stays torn)."""
        with contextlib.suppress(OSError):
            self._f.close()


@dataclass
class TopicInfo:
    name: str
    type: str  # pkg/msg/Type
    schema: str  # ros2msg text
    offered_qos: list[dict] = field(default_factory=list)  # rosbag2 v9 QoS dicts
    count: int = 0  # messages


@dataclass
class FileInfo:
    path: str  # relative to the bag directory
    start_ns: int = 0
    end_ns: int = 0
    count: int = 0


@dataclass
class FileSummary(FileInfo):
    """A finished file's counts, times and topics (name -> TopicInfo), from its summary."""

    topics: dict[str, TopicInfo] = field(default_factory=dict)


def mcap_files(directory: Path) -> list[Path]:
    """The bag's ``<name>_<n>.mcap`` files in index order."""

    def index(p: Path) -> int:
        tail = p.stem.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 1 << 30

    return sorted(Path(directory).glob("*.mcap"), key=lambda p: (index(p), p.name))


def is_finished(path: Path) -> bool:
    """True when the file ends with a footer and the closing magic (a finished MCAP)."""
    try:
        if path.stat().st_size < _FOOTER_AND_MAGICS:
            return False
        with open(path, "rb") as f:
            f.seek(-len(MCAP_MAGIC), os.SEEK_END)
            return f.read() == MCAP_MAGIC
    except OSError:
        return False


def summarize(path: Path) -> FileSummary:
    """Counts, times and topics of a finished MCAP file, from its summary section."""
    from mcap.reader import make_reader

    with open(path, "rb") as f:
        summary = make_reader(f).get_summary()
    out = FileSummary(path.name)
    if summary is None:
        return out
    stats = summary.statistics
    if stats is not None:
        out.count = stats.message_count
        out.start_ns, out.end_ns = stats.message_start_time, stats.message_end_time
    counts = stats.channel_message_counts if stats is not None else {}
    for cid, ch in summary.channels.items():
        sch = summary.schemas.get(ch.schema_id)
        topic = TopicInfo(
            ch.topic,
            sch.name if sch else "",
            sch.data.decode(errors="replace") if sch else "",
            yaml.safe_load(ch.metadata.get("offered_qos_profiles") or "[]") or [],
            counts.get(cid, 0),
        )
        prev = out.topics.get(ch.topic)
        if prev is not None:  # one topic on several channels: counts add up
            topic.count += prev.count
        out.topics[ch.topic] = topic
    return out


def disk_free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path``."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def is_disk_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
