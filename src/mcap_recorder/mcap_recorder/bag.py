"""The bag writer: a rosbag2-layout MCAP bag with split and chunk-flush policies (no rclpy).

Layout, as ``ros2 bag record -s mcap`` makes it: a directory ``<name>/`` with ``<name>_0.mcap``,
``<name>_1.mcap``, ... and a ``metadata.yaml`` (:mod:`mcap_recorder.metadata`), each file a
``ros2`` profile MCAP (:mod:`mcap_recorder.mcapfile`) with a ``rosbag2`` metadata record.

Crash safety: the file is opened unbuffered, so every finished chunk is in the kernel at once; a
chunk is finished when it reaches ``chunk_size`` or is ``chunk_interval_s`` old (``tick()``). A
killed recorder loses at most the chunk in progress; ``metadata.yaml`` is rewritten at every split
and every few seconds. :mod:`mcap_recorder.repair` makes the unfinished file of a killed recorder
a valid, indexed MCAP again. Transient-local messages are written once per bag
(:mod:`mcap_recorder.dedupe`).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mcap_recorder.dedupe import KEYS_FILE, KeyIndex
from mcap_recorder.mcapfile import (
    COMPRESSIONS,
    LIBRARY,
    FileInfo,
    FileSummary,
    KernelFile,
    TopicInfo,
    mcap_files,
    mcap_writer,
)
from mcap_recorder.metadata import METADATA_FILE, qos_yaml, rosbag2_metadata, write_metadata_yaml

if TYPE_CHECKING:
    from mcap.writer import Writer

METADATA_EVERY_S = 5.0


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


@dataclass(frozen=True, kw_only=True)
class BagSettings:
    """How a :class:`BagWriter` writes: chunking, compression, splits."""

    compression: str = "zstd"  # one of COMPRESSIONS, per chunk
    chunk_size: int = 1024 * 1024  # bytes before compression
    chunk_interval_s: float = 1.0  # a chunk is finished at least this often
    split: SplitPolicy = field(default_factory=SplitPolicy)
    ros_distro: str = "jazzy"
    tick_period_s: float = 0.1  # how often the owner calls tick()

    def __post_init__(self):
        if self.compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")


class BagWriter:
    """Not thread-safe: call from one thread (the recorder's executor).

    The bag directory is created with the first file. ``resume=True`` continues an existing bag
    directory: new files get the next indexes, and :meth:`adopt` adds what the existing files
    hold once they are repaired. A file that got no message is deleted when it is closed.
    """

    def __init__(
        self,
        directory: Path,
        settings: BagSettings | None = None,
        *,
        clock=time.monotonic,
        resume: bool = False,
        open_now: bool = True,
    ):
        self.settings = settings or BagSettings()
        self.directory = Path(directory)
        if not resume and self.directory.exists():
            raise FileExistsError(f"{self.directory} exists")
        self.name = self.directory.name
        # tick() runs every tick_period_s (and may run late by as much): flush two periods
        # early, so nothing older than chunk_interval_s is ever only in memory
        s = self.settings
        self._flush_after = max(0.0, s.chunk_interval_s - 2 * s.tick_period_s)
        self._clock = clock
        self.topics: list[TopicInfo] = []
        self.files: list[FileInfo] = []
        if resume:
            self.files = [FileInfo(p.name) for p in mcap_files(self.directory)]
        self._next_index = _next_index(self.files, self.name)
        self.keys = KeyIndex(self.directory / KEYS_FILE)
        self._writer: Writer | None = None
        self._stream: KernelFile | None = None
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
        if self.settings.split.due(self._file_size(), self._clock() - self._opened_at, cur.count):
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
        if self.settings.split.max_duration_s > 0 and self.settings.split.due(
            0, now - self._opened_at, cur.count
        ):
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
                remove_empty_bag(self.directory)
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
            for t in s.topics.values():
                tid = self.topic_id(t.name, t.type)
                if tid is None:
                    self.topics.append(TopicInfo(t.name, t.type, t.schema, t.offered_qos))
                    tid = len(self.topics) - 1
                    if self._writer is not None:
                        self._register(tid)
                self.topics[tid].count += t.count
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
        self._stream = KernelFile(self.directory / rel)
        self._writer = mcap_writer(
            self._stream, self.settings.compression, chunk_size=self.settings.chunk_size
        )
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
        info = rosbag2_metadata(self.topics, self._listed(final=True), self.settings.ros_distro)
        self._writer.add_metadata(
            "rosbag2",
            {
                "serialized_metadata": yaml.safe_dump(info, sort_keys=False),
                "ros_distro": self.settings.ros_distro,
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
        return rosbag2_metadata(self.topics, self._listed(final), self.settings.ros_distro)

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


def remove_empty_bag(directory: Path) -> None:
    """A bag without a single message is not left behind."""
    for name in (METADATA_FILE, METADATA_FILE + ".tmp", KEYS_FILE):
        with contextlib.suppress(OSError):
            (directory / name).unlink()
    with contextlib.suppress(OSError):
        directory.rmdir()
