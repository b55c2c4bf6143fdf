"""The supervisor's output: a console that never blocks it and size-rotated log files that
never raise (a wedged terminal or a full disk must not stop supervision)."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
import time

DEFAULT_LOG_CAP = 20_000_000  # bytes a node's log files keep in all (the file + 3 rotations)


def mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n < 10e6 else f"{n / 1e6:.0f} MB"


class RotatingLog:
    """Size-rotated per-node log (node.log, node.log.1, ...); thread-safe, never raises.

    What rotation deletes (the oldest file) is counted, in bytes and lines, and the file begun
    after each deletion starts with a marker line saying how much older output is gone, so a
    capped log never passes for a complete one.
    """

    def __init__(self, path: str, max_bytes: int = DEFAULT_LOG_CAP // 4, backups: int = 3):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        self._fh = None
        self.dropped_bytes = 0
        self.dropped_lines = 0
        self.lost_records = 0  # writes that failed (full disk)
        # lines per file, newest first; None: written before this run (counted when dropped)
        self._lines: list[int | None] = [None] * (backups + 1)
        os.makedirs(os.path.dirname(path), exist_ok=True)

    @property
    def cap(self) -> int:
        """Bytes the log keeps in all before it drops its oldest output."""
        return self.max_bytes * (self.backups + 1)

    def write(self, line: bytes) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S").encode()
        record = stamp + b" " + line + (b"" if line.endswith(b"\n") else b"\n")
        with self._lock:
            try:
                if self._fh is None:
                    self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open, closed in close()
                    if self._lines[0] is None:  # an earlier run's lines, counted once
                        self._lines[0] = self._count_lines(self.path) if self._fh.tell() else 0
                if self._fh.tell() and self._fh.tell() + len(record) > self.max_bytes:
                    self._rotate(stamp, len(record))
                self._fh.write(record)
                self._fh.flush()
                self._lines[0] += record.count(b"\n")
            except (OSError, ValueError):  # full disk, or a rotation that failed half-way
                self.lost_records += 1
                self._drop_handle()  # reopened by the next write; this record is lost

    def _count_lines(self, path: str) -> int:
        n = 0
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                n += chunk.count(b"\n")
        return n

    def _rotate(self, stamp: bytes, room: int) -> None:
        self._fh.close()
        oldest = f"{self.path}.{self.backups}" if self.backups else self.path
        dropped = os.path.exists(oldest)
        if dropped:
            lines = self._lines[-1]
            size = os.path.getsize(oldest)
            self.dropped_lines += self._count_lines(oldest) if lines is None else lines
            self.dropped_bytes += size
        for i in range(self.backups - 1, 0, -1):
            src = f"{self.path}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i + 1}")
        if self.backups:
            os.replace(self.path, f"{self.path}.1")
        else:
            os.unlink(self.path)
        self._lines = [0, *self._lines[:-1]]
        self._fh = open(self.path, "ab")  # noqa: SIM115
        marker = (
            f"{stamp.decode()} [sensorhub] log capped at {mb(self.cap)}: {mb(self.dropped_bytes)} "
            f"({self.dropped_lines} lines) of older output dropped\n"
        ).encode()
        if self.dropped_bytes and len(marker) + room <= self.max_bytes:  # files stay in size
            self._fh.write(marker)
            self._lines[0] = 1

    def summary(self) -> str | None:
        """What this log did not keep, for the supervisor's stop message (None: nothing)."""
        parts = []
        if self.dropped_bytes:
            parts.append(
                f"log capped at {mb(self.cap)}, {mb(self.dropped_bytes)} dropped "
                f"({self.dropped_lines} lines, the oldest; see {self.path})"
            )
        if self.lost_records:
            parts.append(f"{self.lost_records} lines could not be written to {self.path}")
        return "; ".join(parts) or None

    def _drop_handle(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            with contextlib.suppress(OSError, ValueError):
                fh.close()

    def close(self) -> None:
        """Never raises: a full disk must not turn a clean stop into a crash (exit codes)."""
        with self._lock:
            self._drop_handle()


class Console:
    """Best-effort console: a bounded queue and a writer thread, so supervision never waits.

    With stdout on a pipe nobody drains, writes block; only the writer thread then waits, and
    lines beyond the queue are dropped and counted (the per-node log files still get them, up
    to their cap, which says what it dropped).
    """

    def __init__(self, stream, max_lines: int = 2000):
        self.stream = stream
        self.dropped = 0
        self._q: queue.Queue[str] = queue.Queue(max_lines)
        try:
            self._fd = stream.fileno()
        except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
            self._fd = None  # e.g. a StringIO in tests: written by the thread as well
        self._thread = threading.Thread(target=self._run, name="console", daemon=True)
        self._thread.start()

    def write(self, text: str) -> None:
        try:
            self._q.put_nowait(text)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while True:
            text = self._q.get()
            try:
                if self._fd is not None:
                    data = text.encode(errors="replace")
                    while data:  # os.write: no Python buffer left to flush (or block) at exit
                        data = data[os.write(self._fd, data) :]
                else:
                    self.stream.write(text)
                    self.stream.flush()
            except (OSError, ValueError):
                self.dropped += 1  # console gone (closed pipe, closed file): keep supervising
            finally:
                self._q.task_done()

    @property
    def pending(self) -> int:
        return self._q.unfinished_tasks

    def drain(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for queued lines to be written; False if still blocked."""
        end = time.monotonic() + timeout
        while self._q.unfinished_tasks:
            if time.monotonic() >= end:
                return False
            time.sleep(0.02)
        return True
