"""Salvage and repair of the files a killed recorder left unfinished (no rclpy).

A recorder killed with SIGKILL leaves its open file without summary or footer; the chunks written
before the kill are intact. :func:`repair_file` copies every complete record into a finished,
indexed MCAP and :func:`repair_bag` rewrites ``metadata.yaml`` from the files (the recorder runs
it on start; ``sensorhub bag repair PATH`` by hand: :mod:`mcap_recorder.repair_cli`).

A repair touches only bag files of ours or ros2 bag's (:mod:`mcap_recorder.bagcheck`); anything
else raises :class:`NotABagError` and keeps its bytes. The repaired copy replaces a file only
once it was read back in full; by hand the original is kept beside it (``<name>.orig``). Only
the recorder removes anything: a file of its own (our library) without a single complete
message, and its own bag directory left without any file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mcap_recorder.bag import remove_empty_bag
from mcap_recorder.bagcheck import NotABagError, check_bag_file, check_record
from mcap_recorder.mcapfile import LIBRARY, fsync_dir, is_finished, mcap_files, mcap_writer
from mcap_recorder.metadata import write_bag_metadata

if TYPE_CHECKING:
    from mcap.writer import Writer

__all__ = ["NotABagError", "RepairReport", "bag_is_unfinished", "repair_bag", "repair_file"]

# what a torn tail raises besides McapError and the built-in errors: mcap reads with struct
# and decompresses with zstandard/lz4, and lets their errors through
_TORN_TAIL_MODULES = ("struct", "zstandard", "zstd", "lz4.frame", "_struct")


@dataclass
class RepairReport:
    path: str
    # "ok" (already finished), "repaired", "empty" (no complete message: left as it is),
    # "removed" (the recorder's own empty file), "not_ours" (left alone, ``detail`` says why)
    action: str
    messages: int = 0
    lost_bytes: int = 0  # torn tail that could not be read
    backup: str = ""  # the original, kept beside the repaired file
    detail: str = ""


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
    (messages copied, offset where the readable part ends). A record neither recorder writes
    raises NotABagError (``tmp`` is removed, ``path`` untouched)."""
    from mcap.stream_reader import StreamReader

    good_end = 0
    try:
        with open(path, "rb") as src, open(tmp, "wb") as dst:
            w = mcap_writer(dst, compression)
            w.start(profile="ros2", library=LIBRARY)
            copy = _RecordCopy(w)
            handlers = copy.handlers()
            try:
                for rec in StreamReader(src, validate_crcs=True).records:
                    handler = handlers.get(type(rec))
                    if handler is not None:
                        check_record(path, rec)
                        handler(rec)
                    good_end = src.tell()
            except NotABagError:
                raise
            except Exception:  # any other error is the torn tail: stop there
                pass
            w.finish()
            dst.flush()
            os.fsync(dst.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return copy.messages, good_end


def _verify(tmp: Path, n: int, original: Path) -> None:
    """The copy read back in full: summary, every message (chunks decompressed, CRCs checked),
    ``n`` of them; else the copy goes and the original stays."""
    from mcap.reader import make_reader

    try:
        with open(tmp, "rb") as f:
            r = make_reader(f, validate_crcs=True)
            summary = r.get_summary()
            got = sum(1 for _ in r.iter_messages(log_time_order=False))
        counted = summary.statistics.message_count if summary and summary.statistics else -1
    except Exception as e:
        got, counted = -1, f"unreadable ({type(e).__name__}: {e})"
    if counted != n or got != n:
        tmp.unlink()
        raise ValueError(
            f"{original}: repaired copy did not verify ({got} of {n} messages read, "
            f"summary: {counted}); the original is untouched"
        )


def _backup_name(path: Path) -> Path:
    b = path.with_name(path.name + ".orig")
    i = 1
    while b.exists():
        b = path.with_name(f"{path.name}.orig{i}")
        i += 1
    return b


def _keep_original(path: Path) -> Path:
    """The original's bytes under a new name (a hard link: no copy, same inode) before the
    repaired copy replaces it."""
    backup = _backup_name(path)
    try:
        os.link(path, backup)
    except OSError:
        shutil.copy2(path, backup)
    return backup


def repair_file(
    path: Path, compression: str = "zstd", keep_backup: bool = False, remove_empty: bool = True
) -> RepairReport:
    """Rewrite an unfinished MCAP (killed writer) as a finished, indexed one, atomically.

    Every complete record is copied in order (schemas, channels, messages of every intact
    chunk, metadata) into ``<file>.repair`` which is finished (summary, footer), read back in
    full and compared; only then does it replace the original (kept as ``<file>.orig`` with
    ``keep_backup``). A file with no complete message is deleted only with ``remove_empty`` and
    only when our recorder wrote it. Raises NotABagError for a file that is not a bag of ours
    (untouched), ValueError when the copy did not verify and OSError when the disk cannot take
    it (the original stays in both cases).
    """
    path = Path(path)
    library = check_bag_file(path)
    if is_finished(path):
        return RepairReport(str(path), "ok")
    tmp = path.with_name(path.name + ".repair")
    size = path.stat().st_size
    n, good_end = _copy_intact(path, tmp, compression)
    if n == 0:
        tmp.unlink()
        if remove_empty and library == LIBRARY:
            path.unlink()
            return RepairReport(str(path), "removed", 0, size)
        return RepairReport(str(path), "empty", 0, size)
    _verify(tmp, n, path)
    backup = str(_keep_original(path)) if keep_backup else ""
    os.replace(tmp, path)
    fsync_dir(path.parent)
    return RepairReport(str(path), "repaired", n, max(0, size - good_end), backup)


def repair_bag(
    directory: Path,
    compression: str = "zstd",
    ros_distro: str = "jazzy",
    skip=(),
    by_hand: bool = False,
) -> list[RepairReport]:
    """Repair every unfinished file of a bag and rewrite its metadata.yaml from the files.

    ``skip``: file names not to touch (the recorder's own open file). Files that are not bag
    files of ours are reported (``not_ours``), left alone and kept out of metadata.yaml. The
    recorder (``by_hand`` false) removes its own empty files and its bag when no file is left;
    by hand nothing is removed and every repaired file's original is kept.
    """
    directory = Path(directory)
    reports, foreign = [], set()
    for p in mcap_files(directory):
        if p.name in skip:
            continue
        try:
            reports.append(repair_file(p, compression, by_hand, not by_hand))
        except NotABagError as e:
            foreign.add(p.name)
            reports.append(RepairReport(str(p), "not_ours", detail=str(e)))
    for stale in directory.glob("*.mcap.repair"):  # our own copies, from a repair cut short
        with contextlib.suppress(OSError, NotABagError):
            if check_bag_file(stale) == LIBRARY:
                stale.unlink()
    left = [p.name for p in mcap_files(directory) if p.name not in skip]
    if not left and not skip and not by_hand:
        remove_empty_bag(directory)
        return reports
    if left and set(left) <= foreign:
        return reports  # nothing of ours here: neither is its metadata.yaml
    write_bag_metadata(directory, ros_distro, exclude=foreign)
    return reports


def bag_is_unfinished(directory: Path) -> bool:
    return any(not is_finished(p) for p in mcap_files(directory))
