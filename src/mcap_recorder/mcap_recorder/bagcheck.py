"""Which files a repair may touch: ROS 2 bag files written by our recorder or by ``ros2 bag``
(no rclpy).

A file is ours when it starts with the MCAP magic and a Header record of profile ``ros2`` whose
library is our recorder's or ros2 bag's (its C++ MCAP writer), and when its records say the
same: schemas ``ros2msg``, messages ``cdr``, metadata records named ``rosbag2``. Anything else
(a photo named ``.mcap``, another robot's MCAP) raises :class:`NotABagError` and is left alone.
"""

from __future__ import annotations

import struct
from pathlib import Path

from mcap_recorder.mcapfile import LIBRARY, MCAP_MAGIC

PROFILE = "ros2"  # what our recorder and ros2 bag's MCAP plugin write
# ros2 bag's MCAP plugin (rosbag2_storage_mcap) leaves the C++ writer's default, "libmcap X.Y.Z"
ROS2_BAG_LIBRARIES = ("libmcap", "rosbag2")
METADATA_NAMES = ("rosbag2",)  # the only metadata record either writes
MAX_HEADER = 1 << 16  # bytes of a Header record's profile + library (ours: < 100)


class NotABagError(ValueError):
    """A file a repair must not touch: not MCAP, or an MCAP that is not a bag of ours."""


def _string_at(rec: bytes, pos: int, path: Path) -> tuple[str, int]:
    """An MCAP string (uint32 length + UTF-8) at ``pos`` of a Header record: (text, next)."""
    if len(rec) < pos + 4:
        raise NotABagError(f"{path}: an MCAP file with a corrupt Header record; left alone")
    (n,) = struct.unpack_from("<I", rec, pos)
    if len(rec) < pos + 4 + n:
        raise NotABagError(f"{path}: an MCAP file with a corrupt Header record; left alone")
    return rec[pos + 4 : pos + 4 + n].decode("utf-8", "replace"), pos + 4 + n


def is_our_library(library: str) -> bool:
    return library == LIBRARY or library.startswith(ROS2_BAG_LIBRARIES)


def check_bag_file(path: Path) -> str:
    """The Header's library (ours or ros2 bag's); raises NotABagError for anything else."""
    with open(path, "rb") as f:
        head = f.read(len(MCAP_MAGIC) + 9 + MAX_HEADER)
    if not head.startswith(MCAP_MAGIC):
        raise NotABagError(f"{path}: not an MCAP file (no MCAP magic at the start); left alone")
    rec = head[len(MCAP_MAGIC) :]
    if len(rec) < 9 or rec[0] != 0x01:
        raise NotABagError(f"{path}: an MCAP file without a Header record; left alone")
    (length,) = struct.unpack_from("<Q", rec, 1)
    if length > MAX_HEADER:
        raise NotABagError(f"{path}: an MCAP file with a corrupt Header record; left alone")
    body = rec[9 : 9 + length]
    profile, pos = _string_at(body, 0, path)
    library, _ = _string_at(body, pos, path)
    if profile != PROFILE:
        raise NotABagError(
            f"{path}: an MCAP file of profile {profile!r}, not a ROS 2 bag ({PROFILE!r}); "
            "left alone"
        )
    if not is_our_library(library):
        raise NotABagError(
            f"{path}: a ROS 2 MCAP written by {library!r}, neither our recorder ({LIBRARY!r}) "
            "nor ros2 bag; left alone"
        )
    return library


def check_record(path: Path, rec) -> None:
    """Raise NotABagError for a record neither recorder writes (found while copying a file)."""
    from mcap.records import Channel, Metadata, Schema

    if isinstance(rec, Schema) and rec.encoding != "ros2msg":
        what = f"a schema of encoding {rec.encoding!r} (ours: 'ros2msg')"
    elif isinstance(rec, Channel) and rec.message_encoding != "cdr":
        what = f"channel {rec.topic!r} of encoding {rec.message_encoding!r} (ours: 'cdr')"
    elif isinstance(rec, Metadata) and rec.name not in METADATA_NAMES:
        what = f"a metadata record {rec.name!r} (ours: 'rosbag2')"
    else:
        return
    raise NotABagError(f"{path}: not a bag of ours: {what}; left alone")
