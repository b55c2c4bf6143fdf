"""A bag's rosbag2 ``metadata.yaml`` (version 9), as ``ros2 bag record -s mcap`` writes it.

``ros2 bag info/play``, rosbags and Foxglove read the split files of a bag as one recording
through it; it is replaced atomically, so a reader never sees half of one.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mcap_recorder.mcapfile import FileInfo, TopicInfo, is_finished, mcap_files, summarize

ROSBAG2_VERSION = 9
METADATA_FILE = "metadata.yaml"


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
    tmp = directory / (METADATA_FILE + ".tmp")
    tmp.write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False))
    tmp.replace(directory / METADATA_FILE)


def qos_yaml(offered: list[dict]) -> str:
    """Channel metadata ``offered_qos_profiles`` (what ``ros2 bag play`` re-offers)."""
    return (
        yaml.safe_dump(offered, default_flow_style=False, sort_keys=False).strip()
        if offered
        else ""
    )


def write_bag_metadata(directory: Path, ros_distro: str = "jazzy", exclude=()) -> dict:
    """metadata.yaml from the finished files themselves (exact counts); ``exclude``: names of
    files in the directory that are not part of the bag."""
    files = [
        summarize(p) for p in mcap_files(directory) if p.name not in exclude and is_finished(p)
    ]
    topics: dict[tuple[str, str], TopicInfo] = {}
    for s in files:
        for t in s.topics.values():
            total = topics.setdefault(
                (t.name, t.type), TopicInfo(t.name, t.type, t.schema, t.offered_qos)
            )
            total.count += t.count
    info = rosbag2_metadata(list(topics.values()), files, ros_distro)
    write_metadata_yaml(directory, info)
    return info
