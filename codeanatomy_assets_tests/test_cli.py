"""The command line: build this kind of repository, query it, fail clearly when it cannot run."""

from __future__ import annotations

import gc
import json
import subprocess
import sys

from codeanatomy_assets.cli import main
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES


def test_build_then_query_counts_by_kind(git_repo, lake_root, capsys):
    repo = git_repo()
    repo.commit(FILES)
    frozen = gc.get_freeze_count()
    assert main(["build", str(repo.path), "--lake", lake_root, "--mode", "serial"]) == 0
    # Only the console script, which ends with the command, freezes the heap: a caller that
    # goes on (this test process) keeps collecting its cycles.
    assert gc.get_freeze_count() == frozen
    out = capsys.readouterr().out
    assert "files     5" in out and "errors    1" in out and "CLASS" in out
    sql = "SELECT node_kind, count(*) AS n FROM cpg_nodes GROUP BY node_kind ORDER BY node_kind"
    assert main(["query", sql, "--lake", lake_root, "--format", "json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    counts = {r["node_kind"]: r["n"] for r in rows}
    assert counts["CLASS"] == 2 and counts["MODULE"] == 4 and counts["FILE"] == 5


def test_build_of_this_repository_in_a_subprocess(lake_root):
    """`codeanatomy build .` on the project's own repository, as a user runs it."""
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "codeanatomy_assets.cli",
            "build",
            str(root),
            "--lake",
            lake_root,
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "FUNCTION" in done.stdout
    query = subprocess.run(
        [
            sys.executable,
            "-m",
            "codeanatomy_assets.cli",
            "query",
            "SELECT node_kind FROM cpg_nodes WHERE qualified_name = 'codeanatomy_assets.cli.main' "
            "ORDER BY node_kind",
            "--lake",
            lake_root,
            "--format",
            "csv",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert query.returncode == 0, query.stderr
    # The function, the scope it opens, and the module-level symbol it binds.
    assert query.stdout.splitlines()[1:] == ['"FUNCTION"', '"SCOPE"', '"SYMBOL"']


def test_cannot_run_exits_2_with_the_reason(tmp_path, git_repo, lake_root, capsys, monkeypatch):
    (tmp_path / "plain").mkdir()
    assert main(["build", str(tmp_path / "plain"), "--lake", lake_root]) == 2
    assert "not a git repository" in capsys.readouterr().err
    repo = git_repo()
    repo.commit()
    assert main(["build", str(repo.path), "--commit", "v9", "--lake", lake_root]) == 2
    assert "unknown revision 'v9'" in capsys.readouterr().err
    assert main(["build", str(repo.path), "--mode", "turbo", "--lake", lake_root]) == 2
    assert "execution_mode 'turbo' is not allowed" in capsys.readouterr().err
    assert main(["materialize", str(repo.path), "--mode", "turbo", "--lake", lake_root]) == 2
    assert "execution_mode 'turbo' is not allowed" in capsys.readouterr().err
    monkeypatch.setenv("CODEANATOMY_MEMORY_POOL_MB", "plenty")
    assert main(["build", str(repo.path), "--lake", lake_root]) == 2
    assert "CODEANATOMY_MEMORY_POOL_MB='plenty' is not allowed" in capsys.readouterr().err
    monkeypatch.delenv("CODEANATOMY_MEMORY_POOL_MB")
    assert main(["query", "SELECT 1", "--lake", str(tmp_path / "empty")]) == 2
    assert "no Delta tables" in capsys.readouterr().err
