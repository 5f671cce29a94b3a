"""Serial, parallel and remote (a real Dask cluster) build the same tables, row for row.

The remote mode runs against a ``LocalCluster`` of two worker processes started here; the
routing the execution manager recorded says which tasks went to Dask, and the task events
say where their work actually ran.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.pipeline.execution import PIPELINE_EVENTS_TABLE, build_commit
from codeanatomy_assets.pipeline.remote import RemoteBackend, RemoteTimeoutError
from codeanatomy_assets.pipeline.request import DEFAULT_REMOTE_COST_THRESHOLD as REMOTE_COST
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES

distributed = pytest.importorskip("distributed")

# Run-specific manifest columns: everything else must be equal across modes.
_RUN_COLUMNS = {
    "run_id",
    "started_at",
    "finished_at",
    "duration_s",
    "execution_mode",
    "outputs_json",
    "timings_json",
    "config_json",
}
# More than one chunk of files, so that remote extraction maps several groups.
_MANY = {f"gen/m{i:03d}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(60)}


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[Any]:
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=":0",
    )
    try:
        yield cluster
    finally:
        cluster.close()


def test_three_modes_write_identical_tables(
    git_repo, tmp_path: Path, dask_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    repo = git_repo()
    sha = repo.commit({**FILES, **_MANY})
    factory = DriverFactory()
    lakes: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for mode in ("serial", "parallel", "remote"):
        lakes[mode] = str(tmp_path / f"lake-{mode}")
        request = BuildRequest(
            repo_path=repo.path,
            lake_root=lakes[mode],
            repo_id="fixture",
            execution_mode=mode,
            workers=2,
            dask_address=dask_cluster.scheduler_address if mode == "remote" else None,
            use_cache=False,  # every mode computes everything
        )
        started = time.perf_counter()
        result = build_commit(request, factory=factory)
        seconds[mode] = time.perf_counter() - started
        assert result.status == "success" and result.file_count == len(FILES) + len(_MANY)
    print("seconds per mode:", {m: round(s, 2) for m, s in seconds.items()})
    # Extraction really ran on the workers: none of it fell back to this process.
    assert "remote extraction" not in caplog.text
    for name in CPG_OUTPUTS:
        tables = {m: Lake(lake).read_partition(name, "fixture", sha) for m, lake in lakes.items()}
        serial = tables["serial"]
        assert serial.num_rows > 0 or name in ("cpg_nodes_quality", "cpg_props_quality"), name
        for mode in ("parallel", "remote"):
            other = tables[mode]
            assert other.schema.equals(serial.schema), (name, mode)
            if name == "run_manifest":
                keep = [c for c in serial.column_names if c not in _RUN_COLUMNS]
                assert other.select(keep).to_pylist() == serial.select(keep).to_pylist()
                continue
            # The same rows; a Delta table has no row order (a streamed write may be several
            # files, read back in any order).
            assert sorted(other.to_pylist(), key=repr) == sorted(serial.to_pylist(), key=repr), (
                name,
                mode,
            )
    events = Lake(lakes["remote"]).read_partition(PIPELINE_EVENTS_TABLE, "fixture", sha).to_pylist()
    routing = [e for e in events if e["event"] == "task_routing"]
    # Extraction and the views at or above the cost threshold go to Dask; the rest stay here.
    plan = factory.plan()
    heavy = {t.name for t in plan.tasks if t.kind == "view" and t.cost >= REMOTE_COST}
    assert {"cpg_edges", "import_targets"} <= heavy
    remote = {e["task_name"] for e in routing if e["executor"] == "remote"}
    assert remote == {"evidence", *heavy}
    assert {"package_ids", "files"} <= {e["task_name"] for e in routing} - remote
    finished = [e for e in events if e["event"] == "task_finish"]
    assert {e["task_name"] for e in finished if e["executor"] == "dask"} == remote
    assert {e["task_name"] for e in finished if e["executor"] == "local"}.isdisjoint(remote)
    manifest = Lake(lakes["remote"]).read_partition("run_manifest", "fixture", sha).to_pylist()[0]
    remote = json.loads(manifest["config_json"])["remote"]
    assert remote["dask_address"] == dask_cluster.scheduler_address
    assert remote["local_cluster"] is False


def test_remote_call_past_its_timeout_fails_with_the_limit(dask_cluster: Any) -> None:
    backend = RemoteBackend.open(dask_cluster.scheduler_address, timeout_s=0.5, workers=None)
    try:
        assert backend.call(sum, [1, 2, 3]) == 6
        with pytest.raises(RemoteTimeoutError, match=r"remote_timeout_s=0\.5"):
            backend.call(time.sleep, 5)
    finally:
        backend.close()


def test_remote_without_address_starts_and_closes_a_local_cluster(git_repo, lake_root) -> None:
    repo = git_repo()
    sha = repo.commit(FILES)
    request = BuildRequest(
        repo_path=repo.path,
        lake_root=lake_root,
        repo_id="fixture",
        execution_mode="remote",
        workers=1,
        use_cache=False,
    )
    result = build_commit(request)
    assert result.status == "success"
    manifest = Lake(lake_root).read_partition("run_manifest", "fixture", sha).to_pylist()[0]
    remote = json.loads(manifest["config_json"])["remote"]
    assert remote["local_cluster"] is True
    host, port = remote["dask_address"].removeprefix("tcp://").rsplit(":", 1)
    with socket.socket() as probe:  # the build's cluster is gone: nothing listens there
        assert probe.connect_ex((host, int(port))) != 0


def test_unreachable_scheduler_fails_the_build_and_is_recorded(git_repo, lake_root) -> None:
    repo = git_repo()
    sha = repo.commit(FILES)
    with socket.socket() as holder:  # a port nobody serves Dask on
        holder.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{holder.getsockname()[1]}"
    request = BuildRequest(
        repo_path=repo.path,
        lake_root=lake_root,
        repo_id="fixture",
        execution_mode="remote",
        dask_address=address,
        remote_timeout_s=2,
        use_cache=False,
    )
    started = time.perf_counter()
    with pytest.raises(OSError, match="connect"):
        build_commit(request)
    assert time.perf_counter() - started < 30
    (manifest,) = Lake(lake_root).read_partition("run_manifest", "fixture", sha).to_pylist()
    assert manifest["status"] == "failed"
    assert address in json.loads(manifest["config_json"])["error"]


def test_a_dagster_run_in_remote_mode_builds_on_the_cluster(
    git_repo, tmp_path: Path, dask_cluster: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Through Dagster the build runs on a thread of the step: the workers still extract (a
    Dask worker may not start processes, so its own threads do), outputs are reported in an
    order Dagster accepts whatever order they commit in, and every check passes."""
    import dagster as dg

    from codeanatomy_assets.assets import materialize_partition

    repo = git_repo()
    repo.commit({**FILES, **_MANY})
    with dg.DagsterInstance.ephemeral() as instance:
        result = materialize_partition(
            repo.path, "fixture", lake_root=str(tmp_path / "lake"), instance=instance,
            execution_mode="remote", dask_address=dask_cluster.scheduler_address,
        )  # fmt: skip
        assert result.success
        assert len(result.get_asset_materialization_events()) == len(CPG_OUTPUTS)
        assert all(e.passed for e in result.get_asset_check_evaluations())
    assert "remote extraction" not in caplog.text
