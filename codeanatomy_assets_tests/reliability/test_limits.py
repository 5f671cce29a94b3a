"""Per-file time limit: a file over it is one ``timeout`` row and leaves no partial rows.

Two real kinds of slow file: one slow in Python code (many definitions: the ``SIGALRM``
handler interrupts the extractors), one slow inside a single C call (``ast.parse`` of many
long call chains holds the GIL for seconds: only the worker's ``faulthandler`` watchdog can
end it, which really kills the worker process, and the pool's crash isolation recovers).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from codeanatomy_assets.extract.runner import ExtractOptions, extract_chunk, extract_commit
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.git_fixture import GitRepo

# ~0.4 MB of definitions: seconds of Python-level extraction, ~0.2 s of it in ast.parse (well
# under the hard limit even on a loaded machine, so the soft limit is what stops it).
SLOW_IN_PYTHON = "".join(f"def f{i}(a, b=1, *c, **d):\n    return a + b\n" for i in range(8_000))
# ~4.5 MB of call chains: ast.parse alone takes over 3 s in one C call, with the garbage
# collector off as extraction runs it (with it on, a third of this took as long).
SLOW_IN_C = "".join(f"f(a, b, c)[{i}].x.y\n" for i in range(200_000))
_LIMIT = 0.5
# In this process the timer may fire inside a weakref callback or finalizer: that FileTimeout
# is "ignored" (unraisable, pytest warns) and the repeating timer stops the file just after.
_LOST_IN_CALLBACK = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


def _ordinary(n: int) -> dict[str, str | bytes | None]:
    return {f"pkg/mod_{i}.py": f"def f{i}():\n    return {i}\n" for i in range(n)}


@pytest.mark.slow
def test_pool_timeouts_soft_and_hard_kill_of_a_real_worker(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit({**_ordinary(60), "slow_python.py": SLOW_IN_PYTHON, "slow_c.py": SLOW_IN_C})
    lake_root = str(tmp_path / "lake")
    result = build_commit(
        BuildRequest(
            repo_path=repo.path,
            lake_root=lake_root,
            repo_id="slow",
            execution_mode="parallel",
            workers=2,
            file_timeout_s=_LIMIT,
            use_cache=False,
        )
    )
    assert result.status == "success"
    lake = Lake(lake_root)
    errors = {e["path"]: e for e in lake.read_partition("extract_errors", "slow", sha).to_pylist()}
    assert set(errors) == {"slow_python.py", "slow_c.py"}
    for row in errors.values():
        assert (row["extractor"], row["error_kind"]) == ("limits", "timeout")
        assert f"file_timeout_s={_LIMIT}" in row["message"]
    assert errors["slow_python.py"]["message"].startswith("stopped after")
    # Killed by the watchdog: the worker process really died, the pool recovered.
    assert errors["slow_c.py"]["message"].startswith("process ended after")
    nodes = lake.read_partition("cpg_nodes", "slow", sha).to_pylist()
    by_path = {n["path"] for n in nodes if n["node_kind"] in ("MODULE", "FUNCTION")}
    assert "slow_python.py" not in by_path and "slow_c.py" not in by_path  # no partial rows
    assert {f"pkg/mod_{i}.py" for i in range(60)} <= by_path
    manifest = lake.read_partition("run_manifest", "slow", sha).to_pylist()
    assert '"file_timeout_s": 0.5' in manifest[0]["config_json"]


@_LOST_IN_CALLBACK
def test_serial_timeout_in_this_process_keeps_the_rest(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit({**_ordinary(3), "slow_python.py": SLOW_IN_PYTHON})
    entries = GitRepository(repo.path).python_entries(sha)
    tables = extract_commit(str(repo.path), entries, ExtractOptions(workers=1, file_timeout_s=0.3))
    (row,) = tables["errors"].to_pylist()
    assert (row["path"], row["extractor"], row["error_kind"]) == (
        "slow_python.py",
        "limits",
        "timeout",
    )
    assert not [p for p in tables["ast_nodes"]["path"].to_pylist() if p == "slow_python.py"]
    files = tables["files"].to_pylist()
    statuses = {f["path"]: f["status"] for f in files}
    assert statuses == {**{f"pkg/mod_{i}.py": "ok" for i in range(3)}, "slow_python.py": "error"}


def test_off_the_main_thread_a_worker_process_enforces_the_limit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A thread cannot take the interval timer (the Dagster asset builds on one): its one
    chunk goes to a worker process, and the slow file is still a timeout row."""
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit({**_ordinary(2), "slow_python.py": SLOW_IN_PYTHON})
    entries = GitRepository(repo.path).python_entries(sha)
    out: dict[str, object] = {}

    def run() -> None:
        options = ExtractOptions(workers=1, file_timeout_s=_LIMIT)
        out["tables"] = extract_commit(str(repo.path), entries, options)

    with caplog.at_level(logging.INFO, logger="codeanatomy_assets.extract.runner"):
        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
    assert f"file_timeout_s={_LIMIT}: extracting in a worker process" in caplog.text
    tables = out["tables"]
    (row,) = tables["errors"].to_pylist()  # type: ignore[index]
    assert (row["path"], row["extractor"], row["error_kind"]) == (
        "slow_python.py", "limits", "timeout",
    )  # fmt: skip
    statuses = {f["path"]: f["status"] for f in tables["files"].to_pylist()}  # type: ignore[index]
    assert statuses == {"pkg/mod_0.py": "ok", "pkg/mod_1.py": "ok", "slow_python.py": "error"}


@_LOST_IN_CALLBACK
def test_timeouts_landing_anywhere_in_the_parser_are_timeout_rows(tmp_path: Path) -> None:
    """The limit fires at eight points inside and after ``ast.parse``. Regressions: the 3.11
    parser turned the timeout into ``SystemError: AST constructor recursion depth mismatch``
    (which ended the build), and a second signal escaped after the file was done."""
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit({"slow_python.py": SLOW_IN_PYTHON})
    (entry,) = GitRepository(repo.path).python_entries(sha)
    for i in range(8):
        limit = 0.02 + 0.04 * i
        tables = extract_chunk(str(repo.path), ((entry.path, entry.blob_id),), limit)
        (row,) = tables["errors"].to_pylist()
        assert (row["extractor"], row["error_kind"]) == ("limits", "timeout"), row
        assert tables["ast_nodes"].num_rows == 0


def _pool_workers() -> list[int]:
    """Pids of this process's extraction workers: children of its forkserver process."""
    me = str(os.getpid())
    servers = []
    stats = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            stats[int(pid)] = rest.rsplit(") ", 1)[1].split()[1]  # the parent pid
        except (OSError, IndexError, ValueError):
            continue
    for pid, parent in stats.items():
        if parent == me and b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
            servers.append(str(pid))
    return [pid for pid, parent in stats.items() if parent in servers]


@pytest.mark.slow
def test_workers_killed_from_outside_lose_nothing(tmp_path: Path) -> None:
    """Like the OOM killer would: SIGKILL every pool worker mid-parse. The pool's crash
    isolation re-runs the chunks one file at a time, and every file still comes out whole."""
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit(
        {**_ordinary(60), "slow_c.py": SLOW_IN_C[: SLOW_IN_C.index("f(a, b, c)[30000]")]}
    )
    entries = GitRepository(repo.path).python_entries(sha)
    killed: list[int] = []
    done = threading.Event()

    def kill_workers() -> None:
        deadline = time.monotonic() + 60
        while not done.is_set() and time.monotonic() < deadline:
            workers = _pool_workers()
            if workers:
                time.sleep(0.5)  # let them start on their chunks
                if done.is_set():
                    return
                for pid in _pool_workers():
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_workers)
    killer.start()
    tables = extract_commit(str(repo.path), entries, ExtractOptions(workers=2, file_timeout_s=None))
    done.set()
    killer.join()
    assert killed, "no worker was running to be killed (extraction ended first)"
    assert tables["errors"].num_rows == 0
    statuses = {f["path"]: f["status"] for f in tables["files"].to_pylist()}
    assert statuses == {e.path: "ok" for e in entries}
    nodes = tables["ast_nodes"].select(["path", "node_kind"]).to_pylist()
    modules = {n["path"] for n in nodes if n["node_kind"] == "MODULE"}
    assert modules == set(statuses)
