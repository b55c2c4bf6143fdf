"""Recorded bags into one :class:`Recording`: our mcap_recorder bags, split sets and
``ros2 bag record -s mcap`` bags, read record by record (mcap's stream reader) so a file cut
short by a killed recorder still yields every complete chunk, and what was cut is measured."""

from __future__ import annotations

import os
import re
import struct
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mcap_recorder.mcapfile import MCAP_MAGIC, mcap_files
from sensorhub_tools.report_checks import WANTED, topic_problem

SCHEMA_SEPARATOR = re.compile(r"^=+\s*$", re.M)  # between the types of a ros2msg schema


class ReportError(Exception):
    """A bag that cannot be read (missing, not MCAP, nothing readable) or a bad option."""


def stamp_s(header) -> float:
    """A std_msgs Header's stamp in seconds."""
    return header.stamp.sec + header.stamp.nanosec * 1e-9


@dataclass
class FileRead:
    path: str
    size: int
    messages: int = 0
    cut_bytes: int = 0  # bytes after the last complete record (0 = read to the end)
    finished: bool = True  # has the closing magic
    error: str = ""  # why reading stopped early

    @property
    def complete(self) -> bool:
        return not (self.cut_bytes or self.error or not self.finished)


@dataclass
class Recording:
    files: list[FileRead] = field(default_factory=list)
    topics: dict[str, str] = field(default_factory=dict)  # name -> type
    counts: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    msgs: dict[str, list] = field(default_factory=lambda: defaultdict(list))  # (t_ns, msg)
    undecodable: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    decode_error: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # topic -> why it is not analysed
    start_ns: int = 0
    end_ns: int = 0

    @property
    def truncated(self) -> list[FileRead]:
        return [f for f in self.files if not f.complete]

    def first_topic(self, type_name: str) -> str | None:
        """The alphabetically first usable topic of this type (None: none recorded)."""
        return next(iter(self.usable_topics(type_name)), None)

    def usable_topics(self, type_name: str) -> list[str]:
        """The topics of this type, by name, without the skipped ones."""
        return [
            t for t, ty in sorted(self.topics.items()) if ty == type_name and t not in self.skipped
        ]

    def count(self, topic: str, t_ns: int) -> None:
        self.counts[topic] += 1
        self.start_ns = t_ns if not self.start_ns else min(self.start_ns, t_ns)
        self.end_ns = max(self.end_ns, t_ns)


def bag_files(paths) -> list[Path]:
    """The .mcap files of the arguments, in order: a file, a bag directory (rosbag2 layout: the
    files metadata.yaml lists, else ``*.mcap`` by index) or a directory of bags."""
    out: list[Path] = []
    for raw in paths:
        out.extend(_files_of(Path(raw)))
    seen, unique = set(), []
    for f in out:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            unique.append(f)
    return unique


def _files_of(p: Path) -> list[Path]:
    if p.is_file():
        return [p]
    if not p.is_dir():
        raise ReportError(f"{p}: no such file or directory")
    mine = _dir_files(p)
    if mine:
        return mine
    subs = [d for d in sorted(p.iterdir()) if d.is_dir() and _dir_files(d)]
    if not subs:
        raise ReportError(f"{p}: no .mcap file in this directory or its bags")
    return [f for d in subs for f in _dir_files(d)]


def _listed_files(d: Path) -> list[Path]:
    """The existing files metadata.yaml lists (none when it is missing or unreadable)."""
    meta = d / "metadata.yaml"
    if not meta.is_file():
        return []
    try:
        info = yaml.safe_load(meta.read_text()) or {}
        rel = info.get("rosbag2_bagfile_information", {}).get("relative_file_paths") or []
        return [d / r for r in rel if (d / r).is_file()]
    except (OSError, yaml.YAMLError, AttributeError):
        return []


def _dir_files(d: Path) -> list[Path]:
    listed = _listed_files(d)
    # files on disk that metadata.yaml does not list yet (a killed recorder) are read too
    return listed + [p for p in mcap_files(d) if p not in listed]


class _Progress:
    """One line on stderr, only on a terminal."""

    def __init__(self, total: int, enabled: bool | None = None):
        self.total = max(1, total)
        self.done = 0
        self.on = sys.stderr.isatty() if enabled is None else enabled
        self._last = 0.0

    def advance(self, pos: int, name: str) -> None:
        if not self.on:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        frac = min(1.0, (self.done + pos) / self.total)
        bar = "#" * int(30 * frac)
        sys.stderr.write(f"\rreading [{bar:<30}] {100 * frac:5.1f}% {name[-40:]:<40}")
        sys.stderr.flush()

    def file_done(self, size: int) -> None:
        self.done += size

    def close(self) -> None:
        if self.on:
            sys.stderr.write("\r" + " " * 100 + "\r")
            sys.stderr.flush()


def _ros2_type_name(head: str) -> str:
    """'MSG: pkg/Type' (a schema's section head) -> 'pkg/msg/Type'."""
    name = head.removeprefix("MSG:").strip()
    return name.replace("/", "/msg/") if name.count("/") == 1 else name


def _schema_types(store, type_name: str, schema: bytes) -> dict:
    """The types a recorded ros2msg schema defines; standard types keep the store's own."""
    from rosbags.typesys import get_types_from_msg

    types = {}
    for k, part in enumerate(SCHEMA_SEPARATOR.split(schema.decode(errors="replace"))):
        name, text = type_name, part
        if k:
            head, _nl, text = part.strip("\n").partition("\n")
            name = _ros2_type_name(head)
            if name in store.types and name != type_name:
                continue
        try:
            types.update(get_types_from_msg(text, name))
        except Exception as e:
            raise ReportError(f"cannot parse the recorded schema of {name}: {e}") from e
    return types


class SchemaDecoder:
    """Decode CDR with the schema recorded in the bag (rosbags), not the installed classes: a
    message that gained a field since the recording still reads."""

    def __init__(self):
        self._stores: dict[tuple[str, bytes], object] = {}
        self._padded: dict[tuple[str, bytes], object] = {}

    def __call__(self, type_name: str, schema: bytes, data: bytes):
        try:
            return self._store(type_name, schema).deserialize_cdr(data, type_name)
        except ReportError:
            raise
        except Exception:
            return self._padded_decoder(type_name, schema)(data)

    def _store(self, type_name: str, schema: bytes):
        key = (type_name, schema)
        if key not in self._stores:
            from rosbags.typesys import Stores, get_typestore

            store = get_typestore(Stores.ROS2_JAZZY)
            store.register(_schema_types(store, type_name, schema))
            self._stores[key] = store
        return self._stores[key]

    def _padded_decoder(self, type_name: str, schema: bytes):
        """rosbags insists on the exact CDR size; Fast DDS pads some messages (those with a
        ParameterValue) to 8 bytes. mcap_ros2's decoder reads them from the same schema."""
        key = (type_name, schema)
        if key not in self._padded:
            from mcap.records import Schema
            from mcap_ros2.decoder import DecoderFactory

            sch = Schema(id=1, name=type_name, encoding="ros2msg", data=schema)
            self._padded[key] = DecoderFactory().decoder_for("cdr", sch)
        return self._padded[key]


class _RecordSink:
    """One file's schema, channel and message records into the Recording."""

    def __init__(self, rec: Recording, fr: FileRead, decode):
        from mcap.records import Channel, Message, Schema

        self.rec, self.fr, self.decode = rec, fr, decode
        self.schemas: dict[int, tuple[str, bytes]] = {}
        self.channels: dict[int, tuple[str, str, bytes, bool]] = {}  # (..., decode it?)
        self._by_kind = {Schema: self._schema, Channel: self._channel, Message: self._message}

    def take(self, record) -> None:
        handle = self._by_kind.get(type(record))
        if handle is not None:
            handle(record)

    def _schema(self, r) -> None:
        self.schemas[r.id] = (r.name, r.data)

    def _channel(self, r) -> None:
        sname, sdata = self.schemas.get(r.schema_id, ("", b""))
        problem = topic_problem(r.topic, sname, sdata)
        if problem:
            self.rec.skipped.setdefault(r.topic, problem)
        self.channels[r.id] = (r.topic, sname, sdata, sname in WANTED and not problem)
        self.rec.topics.setdefault(r.topic, sname)

    def _message(self, r) -> None:
        ch = self.channels.get(r.channel_id)
        if ch is None:
            return
        topic, type_name, schema, wanted = ch
        self.fr.messages += 1
        self.rec.count(topic, r.log_time)
        if not wanted:
            return
        try:
            self.rec.msgs[topic].append((r.log_time, self.decode(type_name, schema, r.data)))
        except Exception as e:  # one bad message is not the end of the file
            self.rec.undecodable[topic] += 1
            self.rec.decode_error.setdefault(topic, f"{type(e).__name__}: {e}"[:200])


def _open(path: Path):
    try:
        return path.stat().st_size, open(path, "rb")  # the caller closes it
    except OSError as e:
        raise ReportError(f"{path}: cannot open: {e.strerror or e}") from e


def _check_magic(f, path: Path, size: int) -> bool:
    """Raises unless the file starts as MCAP; whether it also ends with the magic (finished)."""
    head = f.read(len(MCAP_MAGIC))
    if head != MCAP_MAGIC:
        what = "empty" if not head else f"starts with {head[:8]!r}"
        raise ReportError(f"{path}: not an MCAP file ({what})")
    f.seek(-min(size, len(MCAP_MAGIC)), os.SEEK_END)
    finished = size >= 2 * len(MCAP_MAGIC) and f.read() == MCAP_MAGIC
    f.seek(0)
    return finished


def _corrupt_length(f, pos: int, size: int) -> str:
    """The record at ``pos`` claims more bytes than the file has: name it."""
    from mcap.opcode import Opcode

    f.seek(pos)
    op, length = struct.unpack("<BQ", f.read(9))
    try:
        name = Opcode(op).name
    except ValueError:
        name = f"unknown (opcode {op})"
    return (
        f"corrupt: a {name} record at byte {pos} claims {length} bytes, more than the whole "
        f"file ({size} bytes)"
    )


def read_file(path: Path, rec: Recording, decode, progress: _Progress | None = None) -> FileRead:
    """Every complete record of one MCAP file, in file order; stops at a torn tail."""
    from mcap.exceptions import RecordLengthLimitExceeded
    from mcap.stream_reader import StreamReader

    size, f = _open(path)
    fr = FileRead(str(path), size)
    good_end = 0
    with f:
        fr.finished = _check_magic(f, path, size)
        sink = _RecordSink(rec, fr, decode)
        # no record is longer than the file: a bigger length is corrupt, not a read to attempt
        reader = StreamReader(f, validate_crcs=True, record_size_limit=max(1, size))
        try:
            for r in reader.records:
                sink.take(r)
                good_end = f.tell()
                if progress is not None:
                    progress.advance(good_end, path.name)
        except RecordLengthLimitExceeded:
            fr.error = _corrupt_length(f, max(good_end, len(MCAP_MAGIC)), size)
        except Exception as e:  # any error in the records is the torn tail: keep what was read
            fr.error = f"{type(e).__name__}: {e}"[:200]
    fr.cut_bytes = 0 if (fr.finished and not fr.error) else max(0, size - good_end)
    if fr.error and fr.messages == 0 and good_end <= len(MCAP_MAGIC):
        raise ReportError(f"{path}: no readable MCAP record ({fr.error})")
    return fr


def read_bags(paths, progress: bool | None = None) -> Recording:
    """The bags of ``paths`` (see :func:`bag_files`) as one recording, messages by log time;
    ``progress``: the bar on stderr (None: only on a terminal)."""
    files = bag_files(paths)
    if not files:
        raise ReportError("no bag given")
    rec = Recording()
    decode = SchemaDecoder()
    prog = _Progress(sum(p.stat().st_size for p in files), progress)
    try:
        for p in files:
            rec.files.append(read_file(p, rec, decode, prog))
            prog.file_done(p.stat().st_size)
    finally:
        prog.close()
    for v in rec.msgs.values():
        v.sort(key=lambda x: x[0])
    return rec
