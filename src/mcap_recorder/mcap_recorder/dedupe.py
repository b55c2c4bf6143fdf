"""Each transient-local message once per bag, across recorder restarts (no rclpy).

A restarted recorder's transient-local subscriptions receive again what the publishers still
hold. :class:`KeyIndex` remembers (publish time, CRC) of what is already in the bag's files,
persisted beside them (``KEYS_FILE``) once the chunk holding them is on disk, so a resumed bag
holds each such message once.
"""

from __future__ import annotations

import json
import zlib
from collections import deque
from pathlib import Path

KEYS_FILE = ".recorded_keys"  # hidden: rosbag2 and rosbags read only metadata.yaml's files


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
