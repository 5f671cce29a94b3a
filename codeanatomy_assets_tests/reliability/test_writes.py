"""Idempotent, atomic writes: re-runs leave one copy, a SIGKILL mid-write leaves every table
readable at its previous version, and concurrent builds of two commits both land whole."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from codeanatomy_assets.assets import materialize_partition
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import SCRATCH_ENV
from codeanatomy_assets_tests.git_fixture import GitRepo
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES
from codeanatomy_assets_tests.reliability.lake_contents import delta_tables, read_table


def _module(classes: int, variant: int) -> str:
    return "".join(
        f"class C{j}:\n    def m(self, a, b=1):\n        x = a + b\n"
        f"        if x > {variant}:\n            return [y for y in range(x)]\n"
        "        return x\n\n\n"
        f"def f{j}(a):\n    return C{j}().m(a)\n\n\n"
        for j in range(classes)
    )


def _partition_rows(lake_root: str, repo_id: str, sha: str) -> dict[str, int]:
    """Rows of one partition in every output table (``pipeline_events`` differs per run)."""
    lake = Lake(lake_root)
    return {
        name: lake.read_partition(name, repo_id, sha).num_rows
        for name in lake.table_names()
        if name != "pipeline_events"
    }


def _versions_and_rows(lake_root: str) -> dict[str, tuple[int, int]]:
    """Every Delta table under the lake (caches too): current version and total rows."""
    out = {}
    for name, path in delta_tables(lake_root).items():
        version, table = read_table(path)
        out[name] = (version, table.num_rows)
    return out


def _cli_build(repo: Path, sha: str, lake_root: str, repo_id: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "codeanatomy_assets.cli", "build", str(repo), "--commit", sha,
           "--lake", lake_root, "--repo-id", repo_id, "--mode", "serial",
           "--no-progress"]  # fmt: skip
    # Its scratch under the test's directory: a build killed mid-write cannot clean up its own.
    env = {**os.environ, SCRATCH_ENV: str(Path(lake_root).parent / "scratch")}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


@pytest.mark.slow
def test_three_materializations_leave_exactly_one_copy(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit(FILES)
    lake_root = str(tmp_path / "lake")
    seen = []
    for _ in range(3):
        result = materialize_partition(repo.path, repo_id="thrice", lake_root=lake_root)
        assert result.success
        seen.append(_partition_rows(lake_root, "thrice", sha))
    assert seen[0] == seen[1] == seen[2]
    assert seen[0]["cpg_nodes"] > 0 and seen[0]["run_manifest"] == 1
    nodes = Lake(lake_root).read_partition("cpg_nodes", "thrice", sha)
    assert len(set(nodes["node_id"].to_pylist())) == nodes.num_rows


@pytest.mark.slow
def test_sigkill_mid_write_leaves_previous_versions_then_rebuild_completes(
    tmp_path: Path,
) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    first = repo.commit({f"pkg/m{i}.py": _module(8, 0) for i in range(30)})
    second = repo.commit({f"pkg/m{i}.py": _module(8, 1) for i in range(30)})
    lake_root = str(tmp_path / "lake")
    build_commit(BuildRequest(repo_path=repo.path, lake_root=lake_root, commit=first,
                              repo_id="big"))  # fmt: skip
    before = _versions_and_rows(lake_root)
    first_rows = _partition_rows(lake_root, "big", first)
    outputs = [n for n in Lake(lake_root).table_names() if n != "pipeline_events"]

    process = _cli_build(repo.path, second, lake_root, "big")
    partition_dirs = [Path(lake_root, name, "repo_id=big", f"commit={second}") for name in outputs]
    deadline = time.monotonic() + 120
    hit = None
    while hit is None and time.monotonic() < deadline and process.poll() is None:
        hit = next((d for d in partition_dirs if d.is_dir()), None)  # a write has begun
    assert hit is not None, "the build ended before writing (or did not reach the writes)"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL

    after = _versions_and_rows(lake_root)  # every table still reads
    assert set(after) >= set(before)
    committed = [n for n in outputs if after[n][0] > before[n][0]]
    for name in outputs:
        assert after[name][0] in (before[name][0], before[name][0] + 1), name
    assert _partition_rows(lake_root, "big", first) == first_rows  # the old partition is intact
    orphans = [n for n in outputs if n not in committed
               and Path(lake_root, n, "repo_id=big", f"commit={second}").is_dir()]  # fmt: skip
    half = _partition_rows(lake_root, "big", second)
    for name in outputs:
        if name not in committed:
            assert half[name] == 0, name  # uncommitted files are invisible
    assert half.get("run_manifest", 0) == 0  # the kill is visible: no manifest for the commit

    result = build_commit(BuildRequest(repo_path=repo.path, lake_root=lake_root, commit=second,
                                       repo_id="big"))  # fmt: skip
    assert result.status == "success"
    rebuilt = _partition_rows(lake_root, "big", second)
    for name in committed:  # what was committed before the kill was already whole
        assert half[name] == rebuilt[name], name
    written = {n: w.rows for n, w in result.outputs.items() if n in rebuilt}
    assert written == {n: rebuilt[n] for n in written}
    assert set(written) == set(outputs)
    assert _partition_rows(lake_root, "big", first) == first_rows
    print(f"\nkilled while writing {hit.parent.parent.name}: committed before the kill "
          f"{committed}; uncommitted data files left in {orphans}")  # fmt: skip


@pytest.mark.slow
def test_concurrent_builds_of_two_commits_both_land(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    shas = [
        repo.commit({f"pkg/m{i}.py": _module(4, variant) for i in range(20)}) for variant in (0, 1)
    ]
    lake_root = str(tmp_path / "lake")
    Lake(lake_root).ensure_writable()
    processes = [_cli_build(repo.path, sha, lake_root, "both") for sha in shas]
    for p in processes:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err.decode()[-2000:]
    lake = Lake(lake_root)
    for sha in shas:
        (manifest,) = lake.read_partition("run_manifest", "both", sha).to_pylist()
        assert manifest["status"] == "success"
        recorded = json.loads(manifest["outputs_json"])
        rows = _partition_rows(lake_root, "both", sha)
        recorded_rows = {n: w["rows"] for n, w in recorded.items() if n in rows}
        assert recorded_rows == {n: rows[n] for n in recorded_rows}
        nodes = lake.read_partition("cpg_nodes", "both", sha).to_pylist()
        defined = {n["qualified_name"] for n in nodes if n["node_kind"] == "FUNCTION"}
        assert {f"pkg.m{i}.f3" for i in range(20)} <= defined
    print(f"\ncommit retries after conflicts: {_retries(lake_root)}")


def _writer(lake_root: str, repo_id: str, rounds: int) -> None:
    lake = Lake(lake_root)
    for i in range(rounds):
        table = pa.table({"round": pa.array([i] * 500, pa.int64()),
                          "x": pa.array(range(500), pa.int64())})  # fmt: skip
        lake.write_partition("shared", table, repo_id, "a" * 40)


def _retries(lake_root: str) -> dict[str, int]:
    """Commits that delta-rs had to retry after a concurrent commit, per table."""
    out = {}
    for name, path in delta_tables(lake_root).items():
        total = 0
        for log in (path / "_delta_log").glob("*.json"):
            for line in log.read_text().splitlines():
                info = json.loads(line).get("commitInfo")
                if info:
                    total += int(info.get("operationMetrics", {}).get("num_retries", 0) or 0)
        if total:
            out[name] = total
    return out


def test_concurrent_partition_writers_of_one_table_lose_nothing(tmp_path: Path) -> None:
    lake_root = str(tmp_path / "lake")
    rounds = 8
    ctx = multiprocessing.get_context("spawn")  # delta-rs' runtime does not survive fork
    writers = [ctx.Process(target=_writer, args=(lake_root, f"w{k}", rounds)) for k in range(2)]
    for w in writers:
        w.start()
    for w in writers:
        w.join(120)
        assert w.exitcode == 0
    lake = Lake(lake_root)
    for k in range(2):
        table = lake.read_partition("shared", f"w{k}", "a" * 40)
        assert table.num_rows == 500 and set(table["round"].to_pylist()) == {rounds - 1}
    version, _ = read_table(Path(lake_root, "shared"))
    assert version == 2 * rounds - 1  # every write is its own commit; none was lost
    print(f"\ncommit retries after conflicts: {_retries(lake_root)}")


@pytest.mark.slow
def test_two_partitions_materialized_concurrently_through_dagster(tmp_path: Path) -> None:
    """Two Dagster runs at once (two processes, one SQLite instance, one lake), one partition
    each: both runs succeed, with their checks, and neither partition clobbers the other."""
    repo = GitRepo.init(tmp_path / "repo")
    shas = [
        repo.commit({f"pkg/m{i}.py": _module(3, variant) for i in range(12)}) for variant in (0, 1)
    ]
    lake_root = str(tmp_path / "lake")
    home = tmp_path / "dagster_home"
    home.mkdir()
    # The instance exists before its runs, as in a deployment: two processes creating a fresh
    # SQLite instance at once race on its schema migration (alembic_version).
    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "codeanatomy_assets.cli",
                "materialize",
                str(repo.path),
                "--commit",
                sha,
                "--lake",
                lake_root,
                "--repo-id",
                "dual",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for sha in shas
    ]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert run.returncode == 0, err.decode()[-2000:]
        assert b"materialized 11 assets" in out
    lake = Lake(lake_root)
    for sha in shas:
        (manifest,) = lake.read_partition("run_manifest", "dual", sha).to_pylist()
        assert manifest["status"] == "success"
        rows = _partition_rows(lake_root, "dual", sha)
        outputs = json.loads(manifest["outputs_json"])
        recorded = {n: w["rows"] for n, w in outputs.items() if n in rows}
        # Every output but the manifest itself, with the rows that are in the lake.
        assert len(recorded) == 10 and {n: rows[n] for n in recorded} == recorded
        nodes = lake.read_partition("cpg_nodes", "dual", sha).to_pylist()
        assert {f"pkg.m{i}.f2" for i in range(12)} <= {n["qualified_name"] for n in nodes}
