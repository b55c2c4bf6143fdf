"""The landing zone: where uploads are written, when they count as complete, where they end up.

Pure (no rclpy, no pyftpdlib) so the rules are unit-tested without a server. Layout under the
data root::

    sec110/.incoming/<user>/...          the user's FTP root: uploads land here, never announced
    sec110/<user>/YYYY-MM-DD/<path>      completed files (UTC date of completion), announced
    sec110/.quarantine/<user>/...        incomplete uploads nobody resumed in time
    sec110/.announced.jsonl              ledger of announced files (retention deletes only these)

Completion rule (FTP stream mode cannot tell a finished upload from a client that died: both
close the data connection). An upload whose data connection closed cleanly is *received*; it
becomes *complete* when the same client then sends any command (RNFR, SIZE, QUIT, the next STOR)
or keeps its control connection open for ``confirm_grace`` seconds. A client whose control
connection drops right after the data (killed, crashed, unplugged) leaves a *partial* file. A
complete file whose name matches a temp pattern (``*.tmp``, ``*.part``, ``.*``) waits for
RNFR/RNTO to a non-temp name; any other complete file is committed at once. Partial files stay
in the landing zone for ``resume_timeout`` seconds so the device can resume them with REST+STOR
or APPE (a resumed file is committed when complete), then go to quarantine (or are deleted).
Names derived here (``-1`` suffixes, flattened quarantine names) stay within 255 bytes
(naming.py), so a legal upload can always be moved out of ``.incoming``.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import os
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath

from sec110_ftp.naming import numbered_name, quarantine_name

DEFAULT_TEMP_PATTERNS = ("*.tmp", "*.part", ".*")
HASH_CHUNK = 1 << 20


class LandingError(Exception):
    """Base of the landing zone's refusals."""


class PathRefusedError(LandingError):
    """A client path that would leave the user's folder (``..`` above the root, symlink out)."""


class CommitError(LandingError):
    """A completed upload could not be moved into the dated folder."""


def is_temp(name: str, patterns) -> bool:
    base = PurePosixPath(name).name
    return any(fnmatch.fnmatchcase(base, p) for p in patterns)


def climbs_above_root(cwd: str, arg: str) -> bool:
    """True when the FTP path `arg` (relative to `cwd`) uses '..' to go above '/'.

    pyftpdlib silently clamps such paths to the root; a client asking for them is probing, so
    the server refuses with 550 instead.
    """
    path = arg if arg.startswith("/") else f"{cwd.rstrip('/')}/{arg}"
    depth = 0
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            depth -= 1
            if depth < 0:
                return True
        else:
            depth += 1
    return False


def sha256_file(path: str | os.PathLike, chunk: int = HASH_CHUNK) -> tuple[int, str]:
    """(size, sha256 hex) read in 1 MiB chunks; runs on the worker thread, never the FTP loop."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
            n += len(b)
    return n, h.hexdigest()


# ---- upload states ----------------------------------------------------------------------------
RECEIVING, RECEIVED, COMPLETE, PARTIAL = "receiving", "received", "complete", "partial"


@dataclass
class Upload:
    path: str  # absolute path in the landing zone
    user: str
    client: str  # "ip:port"
    session: int
    state: str = RECEIVING
    started: float = 0.0  # wall clock of the first STOR/APPE of this file
    finished: float = 0.0  # wall clock the data connection closed
    transfer_s: float = 0.0  # seconds spent in data transfers (sum over resumes)
    nbytes: int = 0


class Tracker:
    """State of every upload in the landing zone, keyed by absolute path (one FTP loop thread).

    Methods return the paths that became ready to commit; the caller commits them.
    """

    def __init__(self, temp_patterns=DEFAULT_TEMP_PATTERNS):
        self.temp_patterns = tuple(temp_patterns)
        self.uploads: dict[str, Upload] = {}

    def ready(self, up: Upload) -> bool:
        return up.state == COMPLETE and not is_temp(up.path, self.temp_patterns)

    def begin(self, path, user, client, session, now, fresh: bool = False) -> Upload:
        """A STOR/APPE on `path`; `fresh` (a plain STOR) starts over, anything else resumes."""
        up = self.uploads.get(path)
        if up is None or fresh or up.state in (COMPLETE,):
            up = Upload(path, user, client, session, RECEIVING, now)
        else:  # a resume (REST/APPE) of a partial or received file keeps its history
            up.state, up.session, up.client = RECEIVING, session, client
            up.started = up.started or now
        self.uploads[path] = up
        return up

    def data_closed(self, path, ok: bool, now, transfer_s: float, nbytes: int) -> None:
        up = self.uploads.get(path)
        if up is None:
            return
        up.state = RECEIVED if ok else PARTIAL
        up.finished = now
        up.transfer_s += transfer_s
        up.nbytes += nbytes

    def confirm(self, session) -> list[Upload]:
        """The client spoke again (or stayed connected): its received uploads are complete."""
        out = []
        for up in list(self.uploads.values()):
            if up.session == session and up.state == RECEIVED:
                up.state = COMPLETE
                if self.ready(up):
                    out.append(up)
        return out

    def session_lost(self, session) -> list[Upload]:
        """Control connection closed without QUIT: received-but-unconfirmed uploads are partial."""
        lost = []
        for up in self.uploads.values():
            if up.session == session and up.state in (RECEIVED, RECEIVING):
                up.state = PARTIAL
                lost.append(up)
        return lost

    def renamed(self, src, dst) -> Upload | None:
        """RNFR/RNTO inside the landing zone; returns the upload if it is now ready to commit."""
        up = self.uploads.pop(src, None)
        if up is None:
            # unknown (e.g. left over from before a restart): never trusted as complete
            return None
        up.path = dst
        self.uploads[dst] = up
        return up if self.ready(up) else None

    def forget(self, path) -> Upload | None:
        return self.uploads.pop(path, None)

    def busy(self, path) -> bool:
        up = self.uploads.get(path)
        return up is not None and up.state in (RECEIVING, RECEIVED)


# ---- ledger and the zone ----------------------------------------------------------------------
@dataclass
class Announced:
    path: str  # relative to the data root
    size: int
    sha256: str
    t: float  # completion time (wall clock)
    client: str = ""
    transfer_s: float = 0.0


@dataclass
class RetentionResult:
    removed: list[str] = field(default_factory=list)
    freed_bytes: int = 0


class LandingZone:
    def __init__(self, data_root: str | os.PathLike, clock=time.time):
        self.data_root = Path(os.path.realpath(data_root))
        self.sec = self.data_root / "sec110"
        self.incoming = self.sec / ".incoming"
        self.quarantine_dir = self.sec / ".quarantine"
        self.ledger_path = self.sec / ".announced.jsonl"
        self.clock = clock
        self._lock = threading.Lock()  # ledger: worker thread writes, diagnostics read
        for d in (self.sec, self.incoming, self.quarantine_dir):
            d.mkdir(parents=True, exist_ok=True)
        self.ledger: list[Announced] = self._load_ledger()

    # -- paths
    def home(self, user: str) -> Path:
        h = self.incoming / user
        h.mkdir(parents=True, exist_ok=True)
        return h

    def user_dir(self, user: str) -> Path:
        return self.sec / user

    def rel_in_home(self, user: str, path: str | os.PathLike) -> str:
        home = Path(os.path.realpath(self.home(user)))
        p = Path(os.path.realpath(path))
        try:
            return p.relative_to(home).as_posix()
        except ValueError:
            raise PathRefusedError(f"{path} is outside {home}") from None

    def dated_dir(self, user: str, when: float) -> Path:
        return self.user_dir(user) / time.strftime("%Y-%m-%d", time.gmtime(when))

    def free_bytes(self) -> int:
        return shutil.disk_usage(self.sec).free

    # -- commit / quarantine
    def commit(self, user: str, src: str | os.PathLike, when: float) -> Path:
        """Move `src` (in the user's landing folder) to ``<user>/<date>/<same relative path>``
        without ever replacing an existing file: a name taken today gets ``-1``, ``-2``...
        (names over 255 bytes shortened, naming.bounded_name). Atomic (link + unlink on one
        filesystem; rename where links are unsupported)."""
        src = Path(src)
        if src.is_symlink() or not src.is_file():
            raise CommitError(f"{src} is not a regular file")
        rel = self.rel_in_home(user, src)
        target = self.dated_dir(user, when) / rel
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise CommitError(f"cannot create {target.parent}: {e.strerror}") from None
        for i in range(10_000):
            dest = target.with_name(numbered_name(target.name, i))
            try:
                os.link(src, dest)
            except FileExistsError:
                continue
            except OSError as e:
                if e.errno not in (errno.EPERM, errno.EXDEV, errno.ENOTSUP, errno.EMLINK):
                    raise CommitError(f"cannot move {src} to {dest}: {e.strerror}") from None
                if dest.exists():
                    continue
                try:
                    os.rename(src, dest)  # races only with ourselves (one committer thread)
                except OSError as e2:
                    raise CommitError(f"cannot move {src} to {dest}: {e2.strerror}") from None
                return dest
            os.unlink(src)
            return dest
        raise CommitError(f"no free name for {target}")

    def quarantine(self, user: str, src: str | os.PathLike, delete: bool = False) -> Path | None:
        """Take an incomplete upload out of the landing zone (moved aside, or deleted)."""
        src = Path(src)
        if delete:
            src.unlink(missing_ok=True)
            return None
        rel = self.rel_in_home(user, src)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(self.clock()))
        qdir = self.quarantine_dir / user
        qdir.mkdir(parents=True, exist_ok=True)
        i = 0
        dest = qdir / quarantine_name(stamp, rel)
        while dest.exists():
            i += 1
            dest = qdir / quarantine_name(stamp, rel, i)
        os.rename(src, dest)
        return dest

    def stale_incoming(self, older_than_s: float, busy=lambda p: False):
        """(user, path) of landing-zone files untouched for `older_than_s` and not in transfer."""
        now = self.clock()
        out = []
        if not self.incoming.is_dir():
            return out
        for user_dir in self.incoming.iterdir():
            if not user_dir.is_dir() or user_dir.is_symlink():
                continue
            for dirpath, _dirs, files in os.walk(user_dir):
                for f in files:
                    p = os.path.join(dirpath, f)
                    try:
                        st = os.lstat(p)
                    except OSError:
                        continue
                    if now - st.st_mtime >= older_than_s and not busy(p):
                        out.append((user_dir.name, p))
        return out

    # -- ledger and retention (worker thread)
    def _load_ledger(self) -> list[Announced]:
        out = []
        try:
            lines = self.ledger_path.read_text().splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                d = json.loads(line)
                out.append(Announced(**d))
            except (ValueError, TypeError):
                continue  # a torn last line after a power cut: skip it
        return [a for a in out if (self.data_root / a.path).is_file()]

    def record(self, a: Announced) -> None:
        with self._lock:
            self.ledger.append(a)
            with open(self.ledger_path, "a") as f:
                f.write(json.dumps(asdict(a)) + "\n")

    def announced_paths(self) -> set[str]:
        with self._lock:
            return {a.path for a in self.ledger}

    def unannounced(self) -> list[tuple[str, Path]]:
        """Completed files not in the ledger (moved, then the process died before announcing)."""
        known = self.announced_paths()
        out = []
        for user_dir in sorted(self.sec.iterdir()):
            if user_dir.name.startswith(".") or not user_dir.is_dir() or user_dir.is_symlink():
                continue
            for dirpath, dirs, files in os.walk(user_dir):
                dirs.sort()
                for f in sorted(files):
                    p = Path(dirpath, f)
                    if p.relative_to(self.data_root).as_posix() not in known:
                        out.append((user_dir.name, p))
        return out

    def retention(self, max_bytes: int = 0, max_age_s: float = 0.0) -> RetentionResult:
        """Delete announced files, oldest first, beyond the age or total-size limit (0 = off).
        Files not in the ledger (not yet announced) are never touched."""
        res = RetentionResult()
        if max_bytes <= 0 and max_age_s <= 0:
            return res
        now = self.clock()
        with self._lock:
            entries = sorted(self.ledger, key=lambda a: a.t)
            total = sum(a.size for a in entries)
            keep = []
            for a in entries:
                too_old = max_age_s > 0 and now - a.t > max_age_s
                too_big = max_bytes > 0 and total > max_bytes
                if too_old or too_big:
                    p = self.data_root / a.path
                    try:
                        p.unlink()
                    except FileNotFoundError:
                        pass
                    except OSError:
                        keep.append(a)
                        continue
                    total -= a.size
                    res.removed.append(a.path)
                    res.freed_bytes += a.size
                    _prune_empty(p.parent, self.sec)
                else:
                    keep.append(a)
            if res.removed:
                self.ledger = keep
                tmp = self.ledger_path.with_suffix(".tmp")
                tmp.write_text("".join(json.dumps(asdict(a)) + "\n" for a in keep))
                os.replace(tmp, self.ledger_path)
        return res

    def stored_bytes(self) -> int:
        with self._lock:
            return sum(a.size for a in self.ledger)


def _prune_empty(d: Path, stop: Path) -> None:
    while d != stop and stop in d.parents:
        try:
            d.rmdir()
        except OSError:
            return
        d = d.parent
