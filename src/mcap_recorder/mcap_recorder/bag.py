"""A rosbag2-layout MCAP bag writer with split and chunk-flush policies (no rclpy).

Layout, as ``ros2 bag record -s mcap`` makes it: a directory ``<name>/`` with ``<name>_0.mcap``,
``<name>_1.mcap``, ... and a ``metadata.yaml`` (rosbag2 version 9), so ``ros2 bag info/play``,
rosbags and Foxglove read the split files as one recording. Each file: profile ``ros2``, schemas
``ros2msg``, messages ``cdr``, chunked and compressed (zstd or lz4), a ``rosbag2`` metadata record.

Crash safety: the file is opened unbuffered, so every finished chunk is in the kernel at once; a
chunk is finished when it reaches ``chunk_size`` or is ``chunk_interval_s`` old (``tick()``). A
killed recorder loses at most the chunk in progress; ``metadata.yaml`` is rewritten at every split
and every few seconds. :func:`repair_bag` turns the unfinished file of a killed recorder into a
valid, indexed MCAP and rewrites ``metadata.yaml`` from the files (the recorder runs it on start,
``sensorhub bag repair PATH`` by hand).

Duplicates: a restarted recorder's transient-local subscriptions receive again what the
publishers still hold. :class:`KeyIndex` remembers (publish time, CRC) of what is already in the
bag's files, persisted beside them (``KEYS_FILE``) once the chunk holding them is on disk, so a
resumed bag holds each such message once.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

if TYPE_CHECKING:
    from mcap.writer import Writer

# Names only: mcap's writer (with importlib.metadata behind it) is imported when the first file
# opens, so a restarted recorder subscribes first and imports while DDS matches (restart cost).
COMPRESSIONS = ("zstd", "lz4", "none")


def _writer_for(stream, compression: str, **kw):
    from mcap.writer import CompressionType, Writer

    kinds = {
        "zstd": CompressionType.ZSTD,
        "lz4": CompressionType.LZ4,
        "none": CompressionType.NONE,
    }
    return Writer(stream, compression=kinds[compression], **kw)


ROSBAG2_VERSION = 9
LIBRARY = "sensorhub mcap_recorder"
MCAP_MAGIC = b"\x89MCAP0\r\n"
KEYS_FILE = ".recorded_keys"  # hidden: rosbag2 and rosbags read only metadata.yaml's files
METADATA_EVERY_S = 5.0


class _KernelFile:
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


@dataclass(frozen=True)
class SplitPolicy:
    """Start a new file once the current one reached ``max_bytes`` or ``max_duration_s`` (0 = off).

    Checked before each message, so a message is always in exactly one file; the size is the
    file's size on disk, which grows a chunk at a time (files end up to one chunk larger).
    """

    max_bytes: int = 0
    max_duration_s: float = 0.0

    def due(self, file_bytes: int, file_age_s: float, messages_in_file: int) -> bool:
        if messages_in_file == 0:
            return False  # never leave an empty file behind
        if self.max_bytes > 0 and file_bytes >= self.max_bytes:
            return True
        return self.max_duration_s > 0 and file_age_s >= self.max_duration_s


@dataclass
class TopicInfo:
    name: str
    type: str  # pkg/msg/Type
    schema: str  # ros2msg text
    offered_qos: list[dict] = field(default_factory=list)  # rosbag2 v9 QoS dicts
    count: int = 0  # messages in the whole bag


@dataclass
class FileInfo:
    path: str  # relative to the bag directory
    start_ns: int = 0
    end_ns: int = 0
    count: int = 0


def rosbag2_metadata(
    topics: list[TopicInfo], files: list[FileInfo], ros_distro: str = "jazzy"
) -> dict:
    """The ``rosbag2_bagfile_information`` mapping (rosbag2 version 9) of these files."""
    start = min((f.start_ns for f in files if f.count), default=0)
    end = max((f.end_ns for f in files if f.count), default=0)
    return {
        "version": ROSBAG2_VERSION,
        "storage_identifier": "mcap",
        "duration": {"nanoseconds": max(0, end - start)},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(f.count for f in files),
        "topics_with_message_count": [
            {
                "topic_metadata": {
                    "name": t.name,
                    "type": t.type,
                    "serialization_format": "cdr",
                    "offered_qos_profiles": t.offered_qos,
                    "type_description_hash": "",
                },
                "message_count": t.count,
            }
            for t in topics
        ],
        "compression_format": "",
        "compression_mode": "",
        "relative_file_paths": [f.path for f in files],
        "files": [
            {
                "path": f.path,
                "starting_time": {"nanoseconds_since_epoch": f.start_ns},
                "duration": {"nanoseconds": max(0, f.end_ns - f.start_ns)},
                "message_count": f.count,
            }
            for f in files
        ],
        "custom_data": None,
        "ros_distro": ros_distro,
    }


def write_metadata_yaml(directory: Path, info: dict) -> None:
    """Atomic: a reader never sees half a metadata.yaml."""
    tmp = directory / "metadata.yaml.tmp"
    tmp.write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False))
    tmp.replace(directory / "metadata.yaml")


def qos_yaml(offered: list[dict]) -> str:
    return (
        yaml.safe_dump(offered, default_flow_style=False, sort_keys=False).strip()
        if offered
        else ""
    )


class KeyIndex:
    """(publish time, CRC-32 of the CDR bytes) of the last ``depth`` messages per topic.

    Only transient-local topics are tracked: those are the ones a new subscription receives
    again. Keys are persisted (one JSON line each, appended) only after the chunk holding their
    message is on disk, so a key on disk never stands for a message a crash lost.
    """

    def __init__(self, path: Path | None = None, depth: int = 1000):
        self.path = path
        self.depth = depth
        self._keys: dict[str, tuple[deque, set]] = {}
        self._pending: list[tuple[str, int, int]] = []
        self._lines = 0  # lines in the file; compacted when far above what is kept
        if path is not None and path.exists():
            for line in path.read_text(errors="replace").splitlines():
                try:
                    topic, t, crc = json.loads(line)
                except (ValueError, TypeError):
                    continue  # a line torn by a crash
                self._add(topic, (int(t), int(crc)))
                self._lines += 1

    @staticmethod
    def key(data: bytes, publish_time_ns: int) -> tuple[int, int]:
        return publish_time_ns, zlib.crc32(data)

    def seen(self, topic: str, key: tuple[int, int]) -> bool:
        entry = self._keys.get(topic)
        return entry is not None and key in entry[1]

    def add(self, topic: str, key: tuple[int, int]) -> None:
        self._add(topic, key)
        self._pending.append((topic, *key))

    def _add(self, topic: str, key: tuple[int, int]) -> None:
        order, keys = self._keys.setdefault(topic, (deque(), set()))
        if key in keys:
            return
        order.append(key)
        keys.add(key)
        while len(order) > self.depth:
            keys.discard(order.popleft())

    def drop_pending(self) -> None:
        """The chunk holding the pending keys was lost (write error): forget them."""
        for topic, t, crc in self._pending:
            entry = self._keys.get(topic)
            if entry is not None:
                entry[1].discard((t, crc))
        self._pending.clear()

    def persist(self) -> None:
        """Best effort: a key not persisted costs a possible duplicate, never a message."""
        if not self._pending or self.path is None:
            self._pending.clear()
            return
        try:
            if not self.path.parent.exists():
                return
            kept = sum(len(order) for order, _ in self._keys.values())
            if self._lines + len(self._pending) > 4 * max(kept, self.depth):
                rows = [[t, *k] for t, (order, _) in self._keys.items() for k in order]
                tmp = self.path.with_name(self.path.name + ".tmp")
                tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
                tmp.replace(self.path)
                self._lines = len(rows)
            else:
                lines = "".join(json.dumps(list(p)) + "\n" for p in self._pending)
                with open(self.path, "a") as f:
                    f.write(lines)
                self._lines += len(self._pending)
        except OSError:
            pass
        finally:
            self._pending.clear()


class BagWriter:
    """Not thread-safe: call from one thread (the recorder's executor).

    The bag directory is created with the first file. ``resume=True`` continues an existing bag
    directory: new files get the next indexes, and :meth:`adopt` adds what the existing files
    hold once they are repaired. A file that got no message is deleted when it is closed.
    """

    def __init__(
        self,
        directory: Path,
        compression: str = "zstd",
        chunk_size: int = 1024 * 1024,
        chunk_interval_s: float = 1.0,
        split: SplitPolicy | None = None,
        ros_distro: str = "jazzy",
        clock=time.monotonic,
        resume: bool = False,
        open_now: bool = True,
        tick_period_s: float = 0.1,
    ):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        self.directory = Path(directory)
        if not resume and self.directory.exists():
            raise FileExistsError(f"{self.directory} exists")
        self.name = self.directory.name
        self.compression = compression
        self.chunk_size = int(chunk_size)
        self.chunk_interval_s = float(chunk_interval_s)
        # tick() runs every tick_period_s (and may run late by as much): flush two periods
        # early, so nothing older than chunk_interval_s is ever only in memory
        self._flush_after = max(0.0, self.chunk_interval_s - 2 * tick_period_s)
        self.split = split or SplitPolicy()
        self.ros_distro = ros_distro
        self._clock = clock
        self.topics: list[TopicInfo] = []
        self.files: list[FileInfo] = []
        if resume:
            self.files = [FileInfo(p.name) for p in mcap_files(self.directory)]
        self._next_index = _next_index(self.files, self.name)
        self.keys = KeyIndex(self.directory / KEYS_FILE)
        self._writer: Writer | None = None
        self._stream: _KernelFile | None = None
        self._channel_ids: dict[int, int] = {}  # topic index -> channel id in the current file
        self._opened_at = 0.0
        self._chunk_started: float | None = None
        self._last_size = 0
        self._last_metadata = 0.0
        self.torn: list[str] = []  # files abandoned after a write error (repair them later)
        self.deduplicated = 0
        self.closed = False
        if open_now:
            self.open_file()

    # -- public API

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def add_topic(self, name: str, type_name: str, schema: str, offered_qos=()) -> int:
        """Register a topic; returns its id for :meth:`write`."""
        self.topics.append(TopicInfo(name, type_name, schema, list(offered_qos)))
        tid = len(self.topics) - 1
        if self._writer is not None:
            self._register(tid)
            self._write_metadata()
        return tid

    def topic_id(self, name: str, type_name: str) -> int | None:
        for tid, t in enumerate(self.topics):
            if t.name == name and t.type == type_name:
                return tid
        return None

    def write(
        self,
        topic_id: int,
        data: bytes,
        log_time_ns: int,
        publish_time_ns: int = 0,
        dedupe: bool = False,
    ) -> bool:
        """False when no file is open or (``dedupe``) the message is already in the bag."""
        if self._writer is None:
            return False
        publish_time_ns = publish_time_ns or log_time_ns
        t = self.topics[topic_id]
        key = None
        if dedupe:
            key = KeyIndex.key(data, publish_time_ns)
            if self.keys.seen(t.name, key):
                self.deduplicated += 1
                return False
        cur = self.files[-1]
        if self.split.due(self._file_size(), self._clock() - self._opened_at, cur.count):
            self.roll()
            cur = self.files[-1]
        assert self._writer is not None
        self._writer.add_message(
            channel_id=self._channel_ids[topic_id],
            log_time=log_time_ns,
            data=data,
            publish_time=publish_time_ns,
            sequence=t.count,
        )
        t.count += 1
        if key is not None:
            self.keys.add(t.name, key)
        if cur.count == 0:
            cur.start_ns = log_time_ns
        cur.start_ns = min(cur.start_ns, log_time_ns)
        cur.end_ns = max(cur.end_ns, log_time_ns)
        cur.count += 1
        size = self._file_size()
        if size != self._last_size:  # the writer finished a chunk by size
            self._chunk_done(size)
        elif self._chunk_started is None:
            self._chunk_started = self._clock()
        return True

    def tick(self) -> None:
        """Periodic (``tick_period_s``): finish an old chunk, split by duration when idle."""
        if self.closed or self._writer is None:
            return
        now = self._clock()
        if self._chunk_started is not None and now - self._chunk_started >= self._flush_after:
            self._writer.flush()
            self._chunk_done(self._file_size())
        cur = self.files[-1]
        if self.split.max_duration_s > 0 and self.split.due(0, now - self._opened_at, cur.count):
            self.roll()

    def roll(self) -> None:
        self.close_file()
        self.open_file()

    def close(self) -> None:
        """Finish the file (summary + footer) and write metadata.yaml; idempotent."""
        if self.closed:
            return
        self.close_file()
        self.closed = True
        if self.directory.exists():
            if not self.files and not self.torn:
                _remove_empty_bag(self.directory)
            else:
                self._write_metadata()

    def adopt(self, summaries: list[FileSummary]) -> None:
        """Counts and topics of existing (repaired) files of a resumed bag."""
        by_path = {f.path: f for f in self.files}
        for s in summaries:
            f = by_path.get(s.path)
            if f is None:
                continue
            f.start_ns, f.end_ns, f.count = s.start_ns, s.end_ns, s.count
            for name, (type_name, schema, qos, n) in s.topics.items():
                tid = self.topic_id(name, type_name)
                if tid is None:
                    self.topics.append(TopicInfo(name, type_name, schema, qos))
                    tid = len(self.topics) - 1
                    if self._writer is not None:
                        self._register(tid)
                self.topics[tid].count += n
        self.files = [f for f in self.files if f.count or f is self._current()]
        self._write_metadata()

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics)

    @property
    def current_file(self) -> Path | None:
        cur = self._current()
        return self.directory / cur.path if cur is not None else None

    # -- file lifecycle

    def open_file(self) -> None:
        if self._writer is not None or self.closed:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        rel = f"{self.name}_{self._next_index}.mcap"
        self._next_index += 1
        self._stream = _KernelFile(self.directory / rel)
        self._writer = _writer_for(self._stream, self.compression, chunk_size=self.chunk_size)
        self.files.append(FileInfo(rel))
        try:
            self._writer.start(profile="ros2", library=LIBRARY)
            self._channel_ids = {}
            for tid in range(len(self.topics)):
                self._register(tid)
        except OSError:
            self.abandon_file()
            raise
        self._opened_at = self._clock()
        self._chunk_started = None
        self._last_size = self._file_size()
        self._write_metadata()

    def close_file(self) -> None:
        """Finish the current file (summary, footer); one without messages is deleted."""
        if self._writer is None:
            return
        cur = self.files[-1]
        if cur.count == 0:
            assert self._stream is not None
            self._stream.close()
            self._writer = None
            self._stream = None
            with contextlib.suppress(OSError):
                (self.directory / cur.path).unlink()
            self.files.pop()
            self._write_metadata()
            return
        info = rosbag2_metadata(self.topics, self._listed(final=True), self.ros_distro)
        self._writer.add_metadata(
            "rosbag2",
            {
                "serialized_metadata": yaml.safe_dump(info, sort_keys=False),
                "ros_distro": self.ros_distro,
            },
        )
        self._writer.finish()
        assert self._stream is not None
        self._stream.close()
        self._writer = None
        self._stream = None
        self.keys.persist()
        self._write_metadata()

    def abandon_file(self) -> None:
        """After a write error (disk full): stop writing the current file as it is. Messages
        of the chunk in progress are lost; the file has no footer until repaired."""
        if self._stream is not None:
            self._stream.abandon()
        if self._writer is not None and self.files:
            self.torn.append(self.files[-1].path)
        self._writer = None
        self._stream = None
        self._chunk_started = None
        self.keys.drop_pending()

    # -- internals

    def _current(self) -> FileInfo | None:
        return self.files[-1] if self._writer is not None and self.files else None

    def _listed(self, final: bool) -> list[FileInfo]:
        cur = self._current()
        return [f for f in self.files if f.count > 0 or (not final and f is cur)]

    def _chunk_done(self, size: int) -> None:
        self._last_size = size
        self._chunk_started = None
        self.keys.persist()
        now = self._clock()
        if now - self._last_metadata >= METADATA_EVERY_S:
            self._write_metadata()

    def _file_size(self) -> int:
        return self._stream.tell() if self._stream is not None else 0

    def _register(self, tid: int) -> None:
        t = self.topics[tid]
        assert self._writer is not None
        sid = self._writer.register_schema(name=t.type, encoding="ros2msg", data=t.schema.encode())
        self._channel_ids[tid] = self._writer.register_channel(
            topic=t.name,
            message_encoding="cdr",
            schema_id=sid,
            metadata={"offered_qos_profiles": qos_yaml(t.offered_qos), "topic_type_hash": ""},
        )

    def _metadata(self, final: bool = False) -> dict:
        return rosbag2_metadata(self.topics, self._listed(final), self.ros_distro)

    def _write_metadata(self) -> None:
        if not self.directory.exists():
            return
        self._last_metadata = self._clock()
        try:
            write_metadata_yaml(self.directory, self._metadata(final=self.closed))
        except OSError:
            pass  # disk full: rewritten at the next split/close (or by repair_bag)

    @property
    def file_size(self) -> int:
        """Bytes of the current file on disk (0 when none is open)."""
        return self._file_size()


def _next_index(files: list[FileInfo], name: str) -> int:
    idx = [-1]
    for f in files:
        tail = Path(f.path).stem.rsplit("_", 1)[-1]
        if tail.isdigit():
            idx.append(int(tail))
    return max(idx) + 1


def _remove_empty_bag(directory: Path) -> None:
    """A bag without a single message is not left behind."""
    for name in ("metadata.yaml", "metadata.yaml.tmp", KEYS_FILE):
        with contextlib.suppress(OSError):
            (directory / name).unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()


def mcap_files(directory: Path) -> list[Path]:
    """The bag's ``<name>_<n>.mcap`` files in index order."""

    def index(p: Path) -> int:
        tail = p.stem.rsplit("_", 1)[-1]
        return int(tail) if tail.isdigit() else 1 << 30

    return sorted(Path(directory).glob("*.mcap"), key=lambda p: (index(p), p.name))


def is_finished(path: Path) -> bool:
    """True when the file ends with a footer and the closing magic (a finished MCAP)."""
    try:
        size = path.stat().st_size
        if size < 2 * len(MCAP_MAGIC) + 29:
            return False
        with open(path, "rb") as f:
            f.seek(-len(MCAP_MAGIC), os.SEEK_END)
            return f.read() == MCAP_MAGIC
    except OSError:
        return False


@dataclass
class FileSummary:
    path: str  # relative to the bag directory
    start_ns: int = 0
    end_ns: int = 0
    count: int = 0
    topics: dict = field(default_factory=dict)  # name -> (type, schema text, offered qos, n)


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
        qos = yaml.safe_load(ch.metadata.get("offered_qos_profiles") or "[]") or []
        prev = out.topics.get(ch.topic)
        n = counts.get(cid, 0) + (prev[3] if prev else 0)
        out.topics[ch.topic] = (
            sch.name if sch else "",
            sch.data.decode(errors="replace") if sch else "",
            qos,
            n,
        )
    return out


@dataclass
class RepairReport:
    path: str
    action: str  # "ok" (already finished), "repaired", "removed" (nothing readable)
    messages: int = 0
    lost_bytes: int = 0  # torn tail that could not be read


def repair_file(path: Path, compression: str = "zstd") -> RepairReport:
    """Rewrite an unfinished MCAP (killed writer) as a finished, indexed one, atomically.

    Every complete record is copied in order (schemas, channels, messages of every intact
    chunk, metadata) into ``<file>.repair`` which is finished (summary, footer), read back in
    full and compared; only then does it replace the original. A file with no message is
    deleted. Raises OSError when the disk cannot take the copy (the original stays).
    """
    from mcap.reader import make_reader
    from mcap.records import Channel, Message, Metadata, Schema
    from mcap.stream_reader import StreamReader

    path = Path(path)
    if is_finished(path):
        return RepairReport(str(path), "ok")
    tmp = path.with_name(path.name + ".repair")
    size = path.stat().st_size
    schemas: dict[int, int] = {}
    channels: dict[int, int] = {}
    n = 0
    good_end = 0
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        w = _writer_for(dst, compression)
        w.start(profile="ros2", library=LIBRARY)
        reader = StreamReader(src, validate_crcs=True)
        try:
            for rec in reader.records:
                if isinstance(rec, Schema):
                    if rec.id not in schemas:
                        schemas[rec.id] = w.register_schema(rec.name, rec.encoding, rec.data)
                elif isinstance(rec, Channel):
                    if rec.id not in channels:
                        sid = schemas.get(rec.schema_id, 0)
                        channels[rec.id] = w.register_channel(
                            rec.topic, rec.message_encoding, sid, dict(rec.metadata)
                        )
                elif isinstance(rec, Message):
                    cid = channels.get(rec.channel_id)
                    if cid is None:
                        continue
                    w.add_message(cid, rec.log_time, rec.data, rec.publish_time, rec.sequence)
                    n += 1
                elif isinstance(rec, Metadata):
                    w.add_metadata(rec.name, dict(rec.metadata))
                good_end = src.tell()
        except Exception:  # any error is the torn tail: stop there
            pass
        w.finish()
        dst.flush()
        os.fsync(dst.fileno())
    if n == 0:
        tmp.unlink()
        path.unlink()
        return RepairReport(str(path), "removed", 0, size)
    with open(tmp, "rb") as f:  # verify: summary and every message readable
        r = make_reader(f)
        summary = r.get_summary()
        got = sum(1 for _ in r.iter_messages(log_time_order=False))
    if summary is None or summary.statistics.message_count != n or got != n:
        tmp.unlink()
        raise ValueError(f"{path}: repaired copy did not verify ({got} of {n} messages)")
    os.replace(tmp, path)
    _fsync_dir(path.parent)
    return RepairReport(str(path), "repaired", n, max(0, size - good_end))


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def repair_bag(
    directory: Path, compression: str = "zstd", ros_distro: str = "jazzy", skip=()
) -> list[RepairReport]:
    """Repair every unfinished file of a bag and rewrite its metadata.yaml from the files.

    ``skip``: file names not to touch (the recorder's own open file). A bag left without any
    message is removed.
    """
    directory = Path(directory)
    reports = []
    for p in mcap_files(directory):
        if p.name in skip:
            continue
        reports.append(repair_file(p, compression))
    for stale in directory.glob("*.mcap.repair"):
        with contextlib.suppress(OSError):
            stale.unlink()
    files = [p for p in mcap_files(directory) if p.name not in skip]
    if not files and not skip:
        _remove_empty_bag(directory)
        return reports
    write_bag_metadata(directory, ros_distro)
    return reports


def write_bag_metadata(directory: Path, ros_distro: str = "jazzy") -> dict:
    """metadata.yaml from the finished files themselves (exact counts)."""
    summaries = [summarize(p) for p in mcap_files(directory) if is_finished(p)]
    topics: dict[tuple[str, str], TopicInfo] = {}
    files = []
    for s in summaries:
        files.append(FileInfo(s.path, s.start_ns, s.end_ns, s.count))
        for name, (type_name, schema, qos, n) in s.topics.items():
            t = topics.setdefault((name, type_name), TopicInfo(name, type_name, schema, qos))
            t.count += n
    info = rosbag2_metadata(list(topics.values()), files, ros_distro)
    write_metadata_yaml(directory, info)
    return info


def bag_is_unfinished(directory: Path) -> bool:
    return any(not is_finished(p) for p in mcap_files(directory))


def disk_free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``path``."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    st = os.statvfs(p)
    return st.f_bavail * st.f_frsize


def is_disk_full(e: OSError) -> bool:
    return e.errno in (errno.ENOSPC, errno.EDQUOT)


def salvage_messages(path: Path):
    """Yield (channel, message) of every complete record of a possibly truncated MCAP file.

    A recorder killed with SIGKILL leaves a file without summary or footer; the chunks written
    before the kill are intact. This reads them in file order and stops at the torn tail.
    """
    from mcap.exceptions import McapError
    from mcap.reader import NonSeekingReader

    with open(path, "rb") as f:
        reader = NonSeekingReader(f)
        it = reader.iter_messages(log_time_order=False)
        while True:
            try:
                _schema, channel, message = next(it)
            except StopIteration:
                return
            except (McapError, EOFError, ValueError, OSError, IndexError, KeyError):
                return  # torn tail: everything before it was yielded
            except Exception as e:  # struct.error, zstd errors on a torn chunk
                if type(e).__module__ in ("struct", "zstandard", "zstd", "lz4.frame", "_struct"):
                    return
                raise
            yield channel, message


def repair_command(paths, compression: str = "zstd", out=print) -> int:
    """``sensorhub bag repair PATH...``: a bag directory, a .mcap file, or a directory of bags.

    Exit status 0 when everything is readable afterwards, 1 when a file could not be repaired.
    A bag being recorded right now must not be passed (its open file has no footer yet).
    """
    status = 0
    for raw in paths:
        path = Path(raw)
        if path.is_file():
            bags = [path.parent] if (path.parent / "metadata.yaml").exists() else []
            targets = [] if bags else [path]
        elif path.is_dir() and mcap_files(path):
            bags, targets = [path], []
        elif path.is_dir():
            bags = [d for d in sorted(path.iterdir()) if d.is_dir() and mcap_files(d)]
            targets = []
        else:
            out(f"{path}: no such file or directory")
            status = 1
            continue
        for f in targets:
            try:
                r = repair_file(f, compression)
                out(f"{f}: {_describe(r)}")
            except (OSError, ValueError) as e:
                out(f"{f}: NOT repaired: {e}")
                status = 1
        for b in bags:
            try:
                reports = repair_bag(b, compression)
            except (OSError, ValueError) as e:
                out(f"{b}: NOT repaired: {e}")
                status = 1
                continue
            for r in reports:
                out(f"{r.path}: {_describe(r)}")
            if b.exists():
                info = yaml.safe_load((b / "metadata.yaml").read_text())
                n = info["rosbag2_bagfile_information"]["message_count"]
                out(f"{b}: metadata.yaml rewritten ({n} messages)")
            else:
                out(f"{b}: held no message; removed")
    return status


def _describe(r: RepairReport) -> str:
    if r.action == "ok":
        return "finished, nothing to do"
    if r.action == "removed":
        return "no complete message; removed"
    return f"repaired: {r.messages} messages kept, {r.lost_bytes} bytes of torn tail dropped"
