"""Salvage and repair of the files a killed recorder left unfinished (no rclpy).

A recorder killed with SIGKILL leaves its open file without summary or footer; the chunks written
before the kill are intact. :func:`repair_file` copies every complete record into a finished,
indexed MCAP and :func:`repair_bag` rewrites ``metadata.yaml`` from the files (the recorder runs
it on start, ``sensorhub bag repair PATH`` by hand: :func:`repair_command`).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from mcap_recorder.bag import remove_empty_bag
from mcap_recorder.mcapfile import LIBRARY, fsync_dir, is_finished, mcap_files, mcap_writer
from mcap_recorder.metadata import METADATA_FILE, write_bag_metadata

if TYPE_CHECKING:
    from mcap.writer import Writer

# what a torn tail raises besides McapError and the built-in errors: mcap reads with struct
# and decompresses with zstandard/lz4, and lets their errors through
_TORN_TAIL_MODULES = ("struct", "zstandard", "zstd", "lz4.frame", "_struct")


@dataclass
class RepairReport:
    path: str
    action: str  # "ok" (already finished), "repaired", "removed" (nothing readable)
    messages: int = 0
    lost_bytes: int = 0  # torn tail that could not be read


def salvage_messages(path: Path):
    """Yield (channel, message) of every complete record of a possibly truncated MCAP file.

    Reads the chunks in file order and stops at the torn tail.
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
            except Exception as e:
                if type(e).__module__ in _TORN_TAIL_MODULES:
                    return
                raise
            yield channel, message


@dataclass
class _RecordCopy:
    """Complete records of a torn file into a new writer, which numbers schemas and channels
    itself (ids are mapped)."""

    writer: Writer
    schemas: dict[int, int] = field(default_factory=dict)
    channels: dict[int, int] = field(default_factory=dict)
    messages: int = 0

    def handlers(self) -> dict:
        from mcap.records import Channel, Message, Metadata, Schema

        return {
            Schema: self._schema,
            Channel: self._channel,
            Message: self._message,
            Metadata: self._metadata,
        }

    def _schema(self, rec) -> None:
        if rec.id not in self.schemas:
            self.schemas[rec.id] = self.writer.register_schema(rec.name, rec.encoding, rec.data)

    def _channel(self, rec) -> None:
        if rec.id not in self.channels:
            sid = self.schemas.get(rec.schema_id, 0)
            self.channels[rec.id] = self.writer.register_channel(
                rec.topic, rec.message_encoding, sid, dict(rec.metadata)
            )

    def _message(self, rec) -> None:
        cid = self.channels.get(rec.channel_id)
        if cid is not None:
            self.writer.add_message(cid, rec.log_time, rec.data, rec.publish_time, rec.sequence)
            self.messages += 1

    def _metadata(self, rec) -> None:
        self.writer.add_metadata(rec.name, dict(rec.metadata))


def _copy_intact(path: Path, tmp: Path, compression: str) -> tuple[int, int]:
    """Every complete record of ``path`` into a finished, fsynced ``tmp``:
    (messages copied, offset where the readable part ends)."""
    from mcap.stream_reader import StreamReader

    good_end = 0
    with open(path, "rb") as src, open(tmp, "wb") as dst:
        w = mcap_writer(dst, compression)
        w.start(profile="ros2", library=LIBRARY)
        copy = _RecordCopy(w)
        handlers = copy.handlers()
        try:
            for rec in StreamReader(src, validate_crcs=True).records:
                handler = handlers.get(type(rec))
                if handler is not None:
                    handler(rec)
                good_end = src.tell()
        except Exception:  # any error is the torn tail: stop there
            pass
        w.finish()
        dst.flush()
        os.fsync(dst.fileno())
    return copy.messages, good_end


def _verify(tmp: Path, n: int, original: Path) -> None:
    """Summary and every message of the copy readable, ``n`` of them; else the copy goes."""
    from mcap.reader import make_reader

    with open(tmp, "rb") as f:
        r = make_reader(f)
        summary = r.get_summary()
        got = sum(1 for _ in r.iter_messages(log_time_order=False))
    if summary is None or summary.statistics.message_count != n or got != n:
        tmp.unlink()
        raise ValueError(f"{original}: repaired copy did not verify ({got} of {n} messages)")


def repair_file(path: Path, compression: str = "zstd") -> RepairReport:
    """Rewrite an unfinished MCAP (killed writer) as a finished, indexed one, atomically.

    Every complete record is copied in order (schemas, channels, messages of every intact
    chunk, metadata) into ``<file>.repair`` which is finished (summary, footer), read back in
    full and compared; only then does it replace the original. A file with no message is
    deleted. Raises OSError when the disk cannot take the copy (the original stays).
    """
    path = Path(path)
    if is_finished(path):
        return RepairReport(str(path), "ok")
    tmp = path.with_name(path.name + ".repair")
    size = path.stat().st_size
    n, good_end = _copy_intact(path, tmp, compression)
    if n == 0:
        tmp.unlink()
        path.unlink()
        return RepairReport(str(path), "removed", 0, size)
    _verify(tmp, n, path)
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return RepairReport(str(path), "repaired", n, max(0, size - good_end))


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
        remove_empty_bag(directory)
        return reports
    write_bag_metadata(directory, ros_distro)
    return reports


def bag_is_unfinished(directory: Path) -> bool:
    return any(not is_finished(p) for p in mcap_files(directory))


def _targets(path: Path) -> tuple[list[Path], list[Path]] | None:
    """(bag directories, lone files) a ``repair`` argument names; None when it does not exist."""
    if path.is_file():
        bags = [path.parent] if (path.parent / METADATA_FILE).exists() else []
        return bags, ([] if bags else [path])
    if path.is_dir() and mcap_files(path):
        return [path], []
    if path.is_dir():
        return [d for d in sorted(path.iterdir()) if d.is_dir() and mcap_files(d)], []
    return None


def _file_lines(f: Path, compression: str) -> list[str]:
    return [f"{f}: {_describe(repair_file(f, compression))}"]


def _bag_lines(b: Path, compression: str) -> list[str]:
    lines = [f"{r.path}: {_describe(r)}" for r in repair_bag(b, compression)]
    if b.exists():
        info = yaml.safe_load((b / METADATA_FILE).read_text())
        n = info["rosbag2_bagfile_information"]["message_count"]
        lines.append(f"{b}: metadata.yaml rewritten ({n} messages)")
    else:
        lines.append(f"{b}: held no message; removed")
    return lines


def _report(path: Path, repair, compression: str, out) -> int:
    """Run ``repair(path, compression)`` and print its lines: exit status 0, or 1 on failure."""
    try:
        lines = repair(path, compression)
    except (OSError, ValueError) as e:
        out(f"{path}: NOT repaired: {e}")
        return 1
    for line in lines:
        out(line)
    return 0


def repair_command(paths, compression: str = "zstd", out=print) -> int:
    """``sensorhub bag repair PATH...``: a bag directory, a .mcap file, or a directory of bags.

    Exit status 0 when everything is readable afterwards, 1 when a file could not be repaired.
    A bag being recorded right now must not be passed (its open file has no footer yet).
    """
    status = 0
    for raw in paths:
        path = Path(raw)
        found = _targets(path)
        if found is None:
            out(f"{path}: no such file or directory")
            status = 1
            continue
        bags, files = found
        for f in files:
            status |= _report(f, _file_lines, compression, out)
        for b in bags:
            status |= _report(b, _bag_lines, compression, out)
    return status


def _describe(r: RepairReport) -> str:
    if r.action == "ok":
        return "finished, nothing to do"
    if r.action == "removed":
        return "no complete message; removed"
    return f"repaired: {r.messages} messages kept, {r.lost_bytes} bytes of torn tail dropped"
