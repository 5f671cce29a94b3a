"""A real dagster-webserver on a free local port, over a temporary DAGSTER_HOME.

Started in its own session so teardown can signal its whole process group by the PID we
started (never by name); readiness is a bounded poll of ``/server_info``.
"""

from __future__ import annotations

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
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)  # the group we created with start_new_session
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)


@pytest.fixture(scope="session")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Webserver]:
    """Start the webserver once, with one registered commit partition; stop it at the end."""
    from codeanatomy_assets_tests.sensors.git_fixture import GitFixture

    base = tmp_path_factory.mktemp("webserver")
    home = base / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    repo = GitFixture.init(base / "demo")
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

    executable = Path(sys.executable).parent / "dagster-webserver"
    port = _free_port()
    log = base / "webserver.log"
    env = {**os.environ, "DAGSTER_HOME": str(home), "CODEANATOMY_LAKE": str(base / "lake")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(executable), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, proc, log)
        yield Webserver(url, home, sha, materialized)
    finally:
        _stop(proc)
