"""The supervisor's output: a console that never blocks it and size-rotated log files that
never raise (a wedged terminal or a full disk must not stop supervision)."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import threading
import time


class RotatingLog:
    """Size-rotated per-node log (node.log, node.log.1, ...); thread-safe, never raises."""

    def __init__(self, path: str, max_bytes: int = 5_000_000, backups: int = 3):
        self.path, self.max_bytes, self.backups = path, max_bytes, backups
        self._lock = threading.Lock()
        self._fh = None
        os.makedirs(os.path.dirname(path), exist_ok=True)

    def write(self, line: bytes) -> None:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S").encode()
        record = stamp + b" " + line + (b"" if line.endswith(b"\n") else b"\n")
        with self._lock:
            try:
                if self._fh is None:
                    self._fh = open(self.path, "ab")  # noqa: SIM115 - kept open, closed in close()
                if self._fh.tell() and self._fh.tell() + len(record) > self.max_bytes:
                    self._rotate()
                self._fh.write(record)
                self._fh.flush()
            except (OSError, ValueError):  # full disk, or a rotation that failed half-way
                self._drop_handle()  # reopened by the next write; this record is lost

    def _rotate(self) -> None:
        self._fh.close()
        for i in range(self.backups - 1, 0, -1):
            src = f"{self.path}.{i}"
            if os.path.exists(src):
                os.replace(src, f"{self.path}.{i + 1}")
        os.replace(self.path, f"{self.path}.1")
        self._fh = open(self.path, "ab")  # noqa: SIM115

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
    lines beyond the queue are dropped and counted (the per-node log files stay complete).
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
