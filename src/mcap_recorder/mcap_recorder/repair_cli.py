"""``sensorhub bag repair PATH...`` (no rclpy): what the repair did to each file, and an exit
status that says so.

By hand nothing is ever deleted: a file that is not a bag of ours keeps its bytes, a file
without a complete message stays as it is, and the original of a repaired file is kept beside
it (``<name>.orig``) unless ``--no-backup`` was given (then it goes only after the repaired
copy was read back in full).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from mcap_recorder.bagcheck import NotABagError
from mcap_recorder.mcapfile import mcap_files
from mcap_recorder.metadata import METADATA_FILE
from mcap_recorder.repair import RepairReport, repair_bag, repair_file

EXIT_OK, EXIT_FAILED, EXIT_NOT_OURS = 0, 1, 2


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


def _describe(r: RepairReport) -> str:
    if r.action == "not_ours":
        return r.detail
    if r.action == "ok":
        what = "finished, nothing to do"
    elif r.action == "empty":
        what = "no complete message: nothing to salvage; left as it is"
    elif r.action == "removed":  # only the recorder removes; listed for completeness
        what = "no complete message; removed"
    else:
        kept = f"; the original kept as {r.backup}" if r.backup else "; no backup kept"
        what = (
            f"repaired and verified: {r.messages} messages kept, {r.lost_bytes} bytes of torn "
            f"tail dropped{kept}"
        )
    return f"{r.path}: {what}"


def _status_of(r: RepairReport) -> int:
    return {"not_ours": EXIT_NOT_OURS, "empty": EXIT_FAILED}.get(r.action, EXIT_OK)


def _repair(path: Path, is_bag: bool, compression: str, backup: bool) -> list[RepairReport]:
    if is_bag:
        reports = repair_bag(path, compression, by_hand=True)
        if not backup:
            _drop_backups(reports)
        return reports
    try:
        return [repair_file(path, compression, keep_backup=backup, remove_empty=False)]
    except NotABagError as e:
        return [RepairReport(str(path), "not_ours", detail=str(e))]


def _drop_backups(reports: list[RepairReport]) -> None:
    """--no-backup in a bag: each backup is of a file of ours whose copy verified."""
    for r in reports:
        if r.backup:
            Path(r.backup).unlink()
            r.backup = ""


def _report(path: Path, is_bag: bool, compression: str, backup: bool, out) -> int:
    """Repair one bag or lone file and print a line per file: the worst exit status."""
    try:
        reports = _repair(path, is_bag, compression, backup)
    except (OSError, ValueError) as e:
        out(f"{path}: NOT repaired: {e}")
        return EXIT_FAILED
    status = EXIT_OK
    for r in reports:
        out(_describe(r))
        status = max(status, _status_of(r))
    if is_bag and any(r.action != "not_ours" for r in reports):
        info = yaml.safe_load((path / METADATA_FILE).read_text())
        n = info["rosbag2_bagfile_information"]["message_count"]
        out(f"{path}: metadata.yaml rewritten ({n} messages)")
    return status


def repair_command(paths, compression: str = "zstd", out=print, backup: bool = True) -> int:
    """``sensorhub bag repair PATH...``: a bag directory, a .mcap file, or a directory of bags.

    Exit status (the worst one wins): 0 every file readable (repaired, or finished already);
    1 a file could not be repaired (the copy did not verify, the disk is full) or holds no
    complete message (left as it is); 2 a path is not a bag of ours (missing, no .mcap in it,
    not MCAP, an MCAP of another profile or library): left untouched. A bag being recorded
    right now must not be passed (its open file has no footer yet).
    """
    status = EXIT_OK
    for raw in paths:
        path = Path(raw)
        found = _targets(path)
        if found is None:
            out(f"{path}: no such file or directory")
            status = max(status, EXIT_NOT_OURS)
            continue
        bags, files = found
        if not bags and not files:
            out(f"{path}: no bag here (no .mcap files); left alone")
            status = max(status, EXIT_NOT_OURS)
        for f in files:
            status = max(status, _report(f, False, compression, backup, out))
        for b in bags:
            status = max(status, _report(b, True, compression, backup, out))
    return status
