"""credentials.py without ROS: hashes, the YAML format and its error messages, the CLI."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from sec110_ftp import credentials as c

FAST = {"salt": b"0123456789abcdef"}


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch):
    monkeypatch.setattr(c, "PBKDF2_ITERATIONS", 1000)
    monkeypatch.setattr(c, "SCRYPT_N", 16)


@settings(max_examples=25, deadline=None)
@given(pw=st.text(min_size=1, max_size=40), other=st.text(min_size=1, max_size=40))
def test_pbkdf2_roundtrip(pw, other):
    h = c.hash_password(pw, **FAST)
    assert c.check_hash_format(h) is None
    assert c.verify_password(pw, h)
    assert c.verify_password(other, h) == (other == pw)


def test_scrypt_roundtrip():
    h = c.hash_password("s3cret", "scrypt")
    assert h.startswith("scrypt$16$8$1$")
    assert c.verify_password("s3cret", h)
    assert not c.verify_password("s3cret ", h)


def test_salts_differ():
    assert c.hash_password("x") != c.hash_password("x")


@pytest.mark.parametrize(
    "bad",
    ["sec110", "", "md5$abc", "pbkdf2_sha256$10$AAAA$AAAA", "pbkdf2_sha256$x$AAAA$AAAA",
     "scrypt$15$8$1$AAAA$AAAA", "pbkdf2_sha256$100000$%%%$AAAA"],
)  # fmt: skip
def test_bad_hashes_refused_and_never_verify(bad):
    assert c.check_hash_format(bad) is not None
    assert not c.verify_password(bad, bad)


def users_yaml(**entries) -> str:
    return yaml.safe_dump({"users": entries})


def test_parse_users_defaults_perm():
    h = c.hash_password("pw", **FAST)
    users = c.parse_users(users_yaml(dev1={"password": h}, dev2={"password": h, "perm": "elw"}))
    assert users["dev1"].perm == c.DEFAULT_PERM
    assert "r" not in c.DEFAULT_PERM and "d" not in c.DEFAULT_PERM
    assert users["dev2"].perm == "elw"
    assert c.verify_password("pw", users["dev1"].password_hash)


def test_plain_text_password_names_file_and_key(tmp_path):
    p = tmp_path / "users.yaml"
    p.write_text(users_yaml(sec110={"password": "sec110"}))
    with pytest.raises(c.CredentialsError) as e:
        c.load_users(p)
    msg = str(e.value)
    assert str(p) in msg and "users.sec110.password" in msg and "plain text" in msg


def test_yaml_error_names_line(tmp_path):
    p = tmp_path / "users.yaml"
    p.write_text("users:\n  a:\n    password: [unclosed\n")
    with pytest.raises(c.CredentialsError, match=r"users.yaml: line \d+"):
        c.load_users(p)


@pytest.mark.parametrize(
    "doc, where",
    [
        ({"users": {"a": {"password": "H", "perm": "elwX"}}}, "users.a.perm"),
        ({"users": {"a": {"password": "H", "colour": 1}}}, "users.a: unknown key"),
        ({"users": {"a": {}}}, "users.a.password: missing"),
        ({"users": {"../x": {"password": "H"}}}, "users.../x"),
        ({"users": {"anonymous": {"password": "H"}}}, "reserved"),
        ({"users": {}}, "no users"),
        ({"people": {}}, "'users:'"),
    ],
)
def test_bad_entries(doc, where):
    h = c.hash_password("pw", **FAST)
    for u in doc.get("users", {}).values():
        if u.get("password") == "H":
            u["password"] = h
    with pytest.raises(c.CredentialsError, match=where.replace(".", r"\.")):
        c.parse_users(yaml.safe_dump(doc), "f.yaml")


def test_missing_file_is_typed(tmp_path):
    with pytest.raises(c.CredentialsError, match="cannot read"):
        c.load_users(tmp_path / "nope.yaml")


def test_cli_prints_loadable_entry(capsys):
    assert c.main(["dev7", "--password", "pw7", "--perm", "elwf"]) == 0
    users = c.parse_users(capsys.readouterr().out)
    assert users["dev7"].perm == "elwf"
    assert c.verify_password("pw7", users["dev7"].password_hash)


def test_sim_credentials_file_is_valid():
    from pathlib import Path

    f = Path(__file__).resolve().parents[2] / "bringup" / "config" / "sec110_users_sim.yaml"
    users = c.load_users(f)
    assert c.verify_password("sec110", users["sec110"].password_hash)
