"""`sensorhub docs --check` (part of `make test`): the committed docs match the code, and the
check fails, naming the item, when a declared parameter or a published topic is missing."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from sensorhub_tools import docgen

ROOT = Path(__file__).resolve().parents[3]
if not (ROOT / "src" / "bringup" / "package.xml").is_file():
    pytest.skip("not run from a sensorhub checkout", allow_module_level=True)


@pytest.fixture(scope="module")
def generated():
    return docgen.render(ROOT)


def test_committed_docs_are_up_to_date(generated):
    problems = docgen.check(ROOT, ROOT / "docs", generated)
    assert not problems, "\n".join(problems) + "\nrun: ./env.sh sensorhub docs"


def test_generated_docs_hold_every_node_parameter_and_topic(generated):
    params, topics = generated[docgen.PARAMS_MD], generated[docgen.TOPICS_MD]
    for node in (
        "pbt_driver",
        "tim240_bridge",
        "sec110_ftp",
        "system_monitor",
        "foxglove_gateway",
        "mcap_recorder",
    ):
        assert f"## `{node}`" in params, node
    assert "| `threshold` | double | `20.0` |" in params
    assert "| `diagnostic_updater.period` |" in params
    for topic in (
        "/pbt/samples",
        "/pbt/events",
        "/tim240/zones",
        "/sec110/files",
        "/diagnostics",
        "/diagnostics_agg",
    ):
        assert f"| `{topic}` |" in topics, topic
    assert "transient local" in topics


@pytest.mark.parametrize(
    "doc, line_start, named",
    [
        (docgen.PARAMS_MD, "| `hysteresis` |", "hysteresis"),
        (docgen.TOPICS_MD, "| `/pbt/events` |", "/pbt/events"),
    ],
)
def test_check_fails_when_an_item_is_missing(tmp_path, generated, doc, line_start, named):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in generated.items():
        (docs / name).write_text(text)
    assert docgen.check(ROOT, docs, generated) == []
    text = (docs / doc).read_text()
    kept = [ln for ln in text.splitlines(keepends=True) if not ln.startswith(line_start)]
    assert len(kept) < len(text.splitlines())
    (docs / doc).write_text("".join(kept))
    problems = docgen.check(ROOT, docs, generated)
    assert problems and any(named in p for p in problems), problems
    # and through the command line: exit 1, the item named
    sensorhub = shutil.which("sensorhub")
    if sensorhub:
        r = subprocess.run(
            [sensorhub, "docs", "--check", "--root", ROOT, "--docs", docs],
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert r.returncode == 1, r.stdout + r.stderr
        assert named in r.stderr


def test_check_fails_when_a_doc_is_missing(tmp_path, generated):
    problems = docgen.check(ROOT, tmp_path, generated)
    assert len(problems) == 2 and all("missing" in p for p in problems)
