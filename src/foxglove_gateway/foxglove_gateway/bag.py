"""A rosbag2-layout MCAP bag writer with split and chunk-flush policies (no rclpy).

Layout, as ``ros2 bag record -s mcap`` makes it: a directory ``<name>/`` with ``<name>_0.mcap``,
``<name>_1.mcap``, ... and a ``metadata.yaml`` (rosbag2 version 9), so ``ros2 bag info/play``,
rosbags and Foxglove read the split files as one recording. Each file: profile ``ros2``, schemas
``ros2msg``, messages ``cdr``, chunked and compressed (zstd or lz4), a ``rosbag2`` metadata record.

Crash safety: the file is opened unbuffered, so every finished chunk is in the kernel at once; a
chunk is finished when it reaches ``chunk_size`` or is ``chunk_interval_s`` old (``tick()``). A
killed recorder loses at most the chunk in progress; ``metadata.yaml`` is rewritten at every split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from mcap.writer import CompressionType, Writer

COMPRESSIONS = {
    "zstd": CompressionType.ZSTD,
    "lz4": CompressionType.LZ4,
    "none": CompressionType.NONE,
}
ROSBAG2_VERSION = 9
LIBRARY = "sensorhub mcap_recorder"


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


def qos_yaml(offered: list[dict]) -> str:
    return (
        yaml.safe_dump(offered, default_flow_style=False, sort_keys=False).strip()
        if offered
        else ""
    )


class BagWriter:
    """Not thread-safe: call from one thread (the recorder's executor)."""

    def __init__(
        self,
        directory: Path,
        compression: str = "zstd",
        chunk_size: int = 1024 * 1024,
        chunk_interval_s: float = 1.0,
        split: SplitPolicy | None = None,
        ros_distro: str = "jazzy",
        clock=time.monotonic,
    ):
        if compression not in COMPRESSIONS:
            raise ValueError(f"compression must be one of {', '.join(COMPRESSIONS)}")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=False)
        self.name = self.directory.name
        self.compression = compression
        self.chunk_size = int(chunk_size)
        self.chunk_interval_s = float(chunk_interval_s)
        self.split = split or SplitPolicy()
        self.ros_distro = ros_distro
        self._clock = clock
        self.topics: list[TopicInfo] = []
        self.files: list[FileInfo] = []
        self._writer: Writer | None = None
        self._stream: _KernelFile | None = None
        self._channel_ids: dict[int, int] = {}  # topic index -> channel id in the current file
        self._opened_at = 0.0
        self._chunk_started: float | None = None
        self._last_size = 0
        self.closed = False
        self._open_file()

    # -- public API

    def add_topic(self, name: str, type_name: str, schema: str, offered_qos=()) -> int:
        """Register a topic; returns its id for :meth:`write`."""
        self.topics.append(TopicInfo(name, type_name, schema, list(offered_qos)))
        tid = len(self.topics) - 1
        self._register(tid)
        self._write_metadata()
        return tid

    def write(
        self, topic_id: int, data: bytes, log_time_ns: int, publish_time_ns: int = 0
    ) -> None:
        cur = self.files[-1]
        if self.split.due(self._file_size(), self._clock() - self._opened_at, cur.count):
            self.roll()
            cur = self.files[-1]
        assert self._writer is not None
        self._writer.add_message(
            channel_id=self._channel_ids[topic_id],
            log_time=log_time_ns,
            data=data,
            publish_time=publish_time_ns or log_time_ns,
            sequence=self.topics[topic_id].count,
        )
        self.topics[topic_id].count += 1
        if cur.count == 0:
            cur.start_ns = log_time_ns
        cur.start_ns = min(cur.start_ns, log_time_ns)
        cur.end_ns = max(cur.end_ns, log_time_ns)
        cur.count += 1
        size = self._file_size()
        if size != self._last_size:  # the writer finished a chunk by size
            self._last_size = size
            self._chunk_started = None
        elif self._chunk_started is None:
            self._chunk_started = self._clock()

    def tick(self) -> None:
        """Periodic (~2 Hz): finish an old chunk, split by duration even when topics are idle."""
        if self.closed or self._writer is None:
            return
        now = self._clock()
        if self._chunk_started is not None and now - self._chunk_started >= self.chunk_interval_s:
            self._writer.flush()
            self._last_size = self._file_size()
            self._chunk_started = None
        cur = self.files[-1]
        if self.split.max_duration_s > 0 and self.split.due(0, now - self._opened_at, cur.count):
            self.roll()

    def roll(self) -> None:
        self._close_file()
        self._open_file()

    def close(self) -> None:
        """Finish the file (summary + footer) and write metadata.yaml; idempotent."""
        if self.closed:
            return
        self._close_file()
        self.closed = True
        self._write_metadata()

    @property
    def message_count(self) -> int:
        return sum(t.count for t in self.topics)

    @property
    def current_file(self) -> Path:
        return self.directory / self.files[-1].path

    # -- internals

    def _file_size(self) -> int:
        return self._stream.tell() if self._stream is not None else 0

    def _open_file(self) -> None:
        rel = f"{self.name}_{len(self.files)}.mcap"
        self._stream = _KernelFile(self.directory / rel)
        self._writer = Writer(
            self._stream, chunk_size=self.chunk_size, compression=COMPRESSIONS[self.compression]
        )
        self._writer.start(profile="ros2", library=LIBRARY)
        self._channel_ids = {}
        for tid in range(len(self.topics)):
            self._register(tid)
        self.files.append(FileInfo(rel))
        self._opened_at = self._clock()
        self._chunk_started = None
        self._last_size = self._file_size()
        self._write_metadata()

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

    def _close_file(self) -> None:
        if self._writer is None:
            return
        meta = yaml.safe_dump(self._metadata(final=True), sort_keys=False)
        self._writer.add_metadata(
            "rosbag2", {"serialized_metadata": meta, "ros_distro": self.ros_distro}
        )
        self._writer.finish()
        assert self._stream is not None
        self._stream.close()
        self._writer = None
        self._stream = None

    def _metadata(self, final: bool = False) -> dict:
        files = [f for f in self.files if f.count > 0 or not final or f is self.files[-1]]
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
                for t in self.topics
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
            "ros_distro": self.ros_distro,
        }

    def _write_metadata(self) -> None:
        doc = {"rosbag2_bagfile_information": self._metadata(final=self.closed)}
        tmp = self.directory / "metadata.yaml.tmp"
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        tmp.replace(self.directory / "metadata.yaml")


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
