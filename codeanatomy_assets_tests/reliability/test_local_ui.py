"""The web UI stays local by default: every documented command that starts the Dagster
webserver binds it to 127.0.0.1, and the README says how to expose it deliberately."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A command that starts the UI: `dagster dev ...`, `dagster-webserver -...`,
# `python -m dagster_webserver ...` (not a mere mention of the package name).
_INVOCATION = re.compile(r"\bdagster\s+dev\b|\bdagster-webserver\s+-|-m\s+dagster_webserver\b")
_LOCAL_HOST = re.compile(r"(?:^|\s)(?:-h|--host)[\s=]+127\.0\.0\.1(?:\s|$)")


def _documented() -> list[Path]:
    files = [ROOT / "README.md", *sorted((ROOT / "scripts").glob("*")), ROOT / ".ci" / "run"]
    return [f for f in files if f.is_file()]


def _invocations() -> list[tuple[str, str]]:
    found = []
    for path in _documented():
        for line in path.read_text(encoding="utf-8").splitlines():
            if _INVOCATION.search(line):
                found.append((path.relative_to(ROOT).as_posix(), line.strip()))
    return found


def test_documented_webserver_commands_bind_to_localhost() -> None:
    invocations = _invocations()
    assert invocations, "no documented command starts the UI: the check would be vacuous"
    for where, line in invocations:
        assert _LOCAL_HOST.search(line), f"{where}: the UI must bind to 127.0.0.1: {line}"
        assert "0.0.0.0" not in line, f"{where}: {line}"


def test_readme_says_how_to_expose_the_ui_deliberately() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "127.0.0.1" in readme
    assert re.search(r"expose it deliberately, pass `-h 0\.0\.0\.0`", readme)
    assert "authentication" in readme  # and why that needs care: the UI has none
