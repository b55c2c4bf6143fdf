"""FTP users from a YAML file with hashed passwords (pure: no rclpy, no pyftpdlib).

File format::

    users:
      sec110:
        password: "pbkdf2_sha256$200000$<salt b64>$<hash b64>"   # or scrypt$n$r$p$salt$hash
        perm: elawmf            # optional; pyftpdlib letters, default DEFAULT_PERM

Plain-text passwords are refused: a hash is made with ``sec110_ftp_passwd`` (or
``python -m sec110_ftp.credentials``). Errors are :class:`CredentialsError` naming the file and
the user/key (and the YAML line when the file does not parse).
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import hmac
import os
import sys
from dataclasses import dataclass
from pathlib import Path

# What an uploader needs: CWD, LIST/SIZE, APPE (resume), MKD (per-device folders), STOR, rename.
# No RETR (r), DELE/RMD (d), SITE CHMOD (M) or MFMT (T).
DEFAULT_PERM = "elawmf"
ALLOWED_PERM = set("elradfmwMT")
PBKDF2_ITERATIONS = 200_000
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1


class CredentialsError(ValueError):
    """The credentials file is missing, malformed or holds an unusable entry."""


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    perm: str = DEFAULT_PERM


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii")


def hash_password(password: str, scheme: str = "pbkdf2_sha256", salt: bytes | None = None) -> str:
    """Encoded hash: ``pbkdf2_sha256$iter$salt$hash`` or ``scrypt$n$r$p$salt$hash`` (base64)."""
    salt = salt if salt is not None else os.urandom(16)
    pw = password.encode("utf-8")
    if scheme == "pbkdf2_sha256":
        dk = hashlib.pbkdf2_hmac("sha256", pw, salt, PBKDF2_ITERATIONS)
        return f"pbkdf2_sha256${PBKDF2_ITERATIONS}${_b64(salt)}${_b64(dk)}"
    if scheme == "scrypt":
        dk = hashlib.scrypt(pw, salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
        return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(dk)}"
    raise ValueError(f"unknown hash scheme {scheme!r} (pbkdf2_sha256 or scrypt)")


def _pbkdf2_format(parts: list[str]) -> str | None:
    if len(parts) != 4:
        return "pbkdf2_sha256 hash needs 4 '$'-separated fields"
    if int(parts[1]) < 1000:
        return "pbkdf2_sha256 iterations must be >= 1000"
    base64.b64decode(parts[2], validate=True)
    if len(base64.b64decode(parts[3], validate=True)) < 16:
        return "pbkdf2_sha256 hash too short"
    return None


def _scrypt_format(parts: list[str]) -> str | None:
    if len(parts) != 6:
        return "scrypt hash needs 6 '$'-separated fields"
    n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
    if n < 2 or n & (n - 1) or r < 1 or p < 1:
        return "scrypt n must be a power of two >= 2, r and p >= 1"
    base64.b64decode(parts[4], validate=True)
    base64.b64decode(parts[5], validate=True)
    return None


_FORMAT_CHECKS = {"pbkdf2_sha256": _pbkdf2_format, "scrypt": _scrypt_format}


def check_hash_format(encoded: str) -> str | None:
    """None when `encoded` is a well-formed hash this module can verify, else the reason."""
    if not isinstance(encoded, str):
        return "password must be a string hash"
    parts = encoded.split("$")
    check = _FORMAT_CHECKS.get(parts[0])
    if check is None:
        return (
            "password is not a supported hash (plain text is refused); make one with "
            "sec110_ftp_passwd (pbkdf2_sha256$... or scrypt$...)"
        )
    try:
        return check(parts)
    except (ValueError, TypeError) as e:
        return f"malformed hash ({e})"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of `password` against an encoded hash; False on any malformed hash."""
    if check_hash_format(encoded) is not None:
        return False
    parts = encoded.split("$")
    pw = password.encode("utf-8", "surrogateescape")
    if parts[0] == "pbkdf2_sha256":
        salt, want = base64.b64decode(parts[2]), base64.b64decode(parts[3])
        got = hashlib.pbkdf2_hmac("sha256", pw, salt, int(parts[1]), dklen=len(want))
    else:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, want = base64.b64decode(parts[4]), base64.b64decode(parts[5])
        got = hashlib.scrypt(
            pw, salt=salt, n=n, r=r, p=p, dklen=len(want), maxmem=256 * 1024 * 1024
        )
    return hmac.compare_digest(got, want)


def valid_user_name(name: str) -> str | None:
    """User names become folder names: letters, digits, '_', '-', '.' (no leading dot)."""
    if not isinstance(name, str) or not name:
        return "user name must be a non-empty string"
    if name.startswith(".") or not all(c.isalnum() or c in "_-." for c in name):
        return "user name may hold only letters, digits, '_', '-', '.' and not start with '.'"
    if name == "anonymous":
        return "'anonymous' is reserved (use the allow_anonymous parameter)"
    return None


def parse_users(text: str, source: str = "<string>") -> dict[str, User]:
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise CredentialsError(f"{source}:{where} not valid YAML: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("users"), dict):
        raise CredentialsError(f"{source}: expected a mapping with a 'users:' mapping")
    users: dict[str, User] = {}
    for name, entry in doc["users"].items():
        err = valid_user_name(name)
        if err:
            raise CredentialsError(f"{source}: users.{name}: {err}")
        if not isinstance(entry, dict):
            raise CredentialsError(f"{source}: users.{name}: expected a mapping with 'password'")
        unknown = set(entry) - {"password", "perm"}
        if unknown:
            raise CredentialsError(
                f"{source}: users.{name}: unknown key(s) {', '.join(sorted(map(str, unknown)))}"
            )
        if "password" not in entry:
            raise CredentialsError(f"{source}: users.{name}.password: missing")
        err = check_hash_format(entry["password"])
        if err:
            raise CredentialsError(f"{source}: users.{name}.password: {err}")
        perm = entry.get("perm", DEFAULT_PERM)
        if not isinstance(perm, str) or not perm or set(perm) - ALLOWED_PERM:
            raise CredentialsError(
                f"{source}: users.{name}.perm: {perm!r} is not a string of pyftpdlib "
                f"permission letters ({''.join(sorted(ALLOWED_PERM))})"
            )
        users[name] = User(name, entry["password"], perm)
    if not users:
        raise CredentialsError(f"{source}: no users defined")
    return users


def load_users(path: str | os.PathLike) -> dict[str, User]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise CredentialsError(f"{p}: cannot read credentials file: {e.strerror or e}") from None
    return parse_users(text, str(p))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="sec110_ftp_passwd",
        description="Print a password hash (or a users: YAML entry) for the sec110_ftp "
        "credentials file. Reads the password from the terminal unless --password is given.",
    )
    ap.add_argument("user", nargs="?", help="print a complete YAML entry for this user")
    ap.add_argument("--scheme", choices=("pbkdf2_sha256", "scrypt"), default="pbkdf2_sha256")
    ap.add_argument("--password", help="the password (visible in the process list; scripts only)")
    ap.add_argument("--perm", default=DEFAULT_PERM, help="pyftpdlib permission letters")
    a = ap.parse_args(argv)
    pw = a.password
    if pw is None:
        pw = getpass.getpass("password: ")
        if getpass.getpass("again: ") != pw:
            print("passwords differ", file=sys.stderr)
            return 1
    if not pw:
        print("empty password refused", file=sys.stderr)
        return 1
    h = hash_password(pw, a.scheme)
    if a.user:
        err = valid_user_name(a.user)
        if err:
            print(err, file=sys.stderr)
            return 1
        print(f'users:\n  {a.user}:\n    password: "{h}"\n    perm: {a.perm}')
    else:
        print(h)
    return 0


if __name__ == "__main__":
    sys.exit(main())
