"""A real dagster-webserver on a free local port, over a temporary DAGSTER_HOME.

Started in its own session so teardown can signal its whole process group by the PID we
started (never by name); readiness is a bounded poll of ``/server_info``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Webserver:
    """A running webserver: URL, DAGSTER_HOME, the commit it shows and whether it was built.

    ``materialized`` is False only while the pipeline (``build_commit``) is not in the tree.
    """

    url: str
    home: Path
    repo_sha: str
    materialized: bool


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"webserver exited with {proc.returncode}: {log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/server_info", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"webserver not ready after {READY_TIMEOUT_S}s: {log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the process group we created (start_new_session): TERM, then KILL what is left.

    ``dagster dev`` ignores SIGTERM when started without job control, and its children
    (webserver, daemon, code servers) share the group, so the group is always killed last.
    """
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=15)


@contextlib.contextmanager
def serve(cmd: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Run ``cmd`` (a Dagster server on a free port) until the block ends; yield its URL."""
    port = _free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        yield url
    finally:
        _stop(proc)


def dagster_home(base: Path) -> Path:
    """A fresh DAGSTER_HOME holding the project's dagster.yaml."""
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


@pytest.fixture(scope="session")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    """Start the webserver once, with one registered commit partition; stop it at the end."""
    from codeanatomy_assets_tests.git_fixture import GitRepo

    base = tmp_path_factory.mktemp("webserver")
    home = dagster_home(base)
    repo = GitRepo.init(base / "demo")
    sha = repo.commit({"pkg/__init__.py": "", "pkg/mod.py": "def f():\n    return 1\n"})
    materialized = importlib.util.find_spec("codeanatomy_assets.pipeline.execution") is not None
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DAGSTER_HOME", str(home))
        with dg.DagsterInstance.get() as instance:
            instance.add_dynamic_partitions("commits", [f"demo@{sha}"])
            if materialized:  # the UI then shows a built partition and its check results
                from codeanatomy_assets.assets import materialize_partition

                lake = str(base / "lake")
                materialize_partition(repo.path, "demo", sha, lake, instance=instance)

    executable = str(Path(sys.executable).parent / "dagster-webserver")
    env = {**os.environ, "DAGSTER_HOME": str(home), "CODEANATOMY_LAKE": str(base / "lake")}
    with serve([executable], env, base / "webserver.log") as url:
        yield Webserver(url, home, sha, materialized)


@dataclass(frozen=True)
class Deployment:
    """A ``dagster dev`` deployment watching one repository through a repos file."""

    url: str
    lake: Path
    shas: list[str]
    log: Path


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """Start ``dagster dev`` (webserver + daemon) as an operator would; stop its process group."""
    from codeanatomy_assets_tests.git_fixture import GitRepo

    base = tmp_path_factory.mktemp("dagster_dev")
    home = dagster_home(base)
    repo = GitRepo.init(base / "watched")
    shas = repo.commits(2)
    (base / "repos.yaml").write_text("watched: {path: watched, branch: main}\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CODEANATOMY_REPOS_FILE": str(base / "repos.yaml"),
        "CODEANATOMY_LAKE": str(base / "lake"),
    }
    log = base / "dagster_dev.log"
    with serve([str(Path(sys.executable).parent / "dagster"), "dev"], env, log) as url:
        yield Deployment(url, base / "lake", shas, log)
