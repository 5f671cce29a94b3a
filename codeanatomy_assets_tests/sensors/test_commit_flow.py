"""The unattended loop without a daemon: sensor -> runs -> nightly backfill -> retention.

Each step is the real definition evaluated on a persistent test instance, and each requested
run is executed in process, as the daemon would launch it; the data is real Delta tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from codeanatomy_assets.definitions import defs
from codeanatomy_assets.resources import LakeResource, WatchedRepo, WatchedReposResource
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.git_fixture import GitRepo

pytest.importorskip(
    "codeanatomy_assets.pipeline.execution", reason="build_commit (pipeline) has not landed yet"
)
pytestmark = pytest.mark.slow


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as inst:
        yield inst


def _sensor_tick(
    instance: dg.DagsterInstance, resources: dict[str, object], cursor: str | None
) -> dg.SensorResult:
    ctx = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources=resources,
        repository_def=defs.get_repository_def(),
    )
    result = defs.resolve_sensor_def("new_commits_sensor")(ctx)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


def _launch(
    instance: dg.DagsterInstance, resources: dict[str, object], requests: list[dg.RunRequest]
) -> None:
    job = defs.resolve_job_def("cpg_job")
    for request in requests:
        result = job.execute_in_process(
            instance=instance, partition_key=request.partition_key, resources=resources
        )
        assert result.success


def test_sensor_runs_backfill_and_retention_keep_the_newest_commits(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "flow")
    repo.commits(3)
    lake = Lake(str(tmp_path / "lake"))
    watched = WatchedReposResource(
        repos={"flow": WatchedRepo(path=str(repo.path))}, initial_commits=2, retain_commits=3
    )
    resources: dict[str, object] = {"lake": LakeResource(root=lake.root), "watched_repos": watched}

    first = _sensor_tick(instance, resources, None)
    _launch(instance, resources, list(first.run_requests or []))
    assert len(first.run_requests or []) == 2

    nightly = defs.resolve_schedule_def("nightly_backfill_schedule")
    ctx = dg.build_schedule_context(
        instance=instance,
        resources={"watched_repos": watched},
        scheduled_execution_time=datetime(2026, 11, 27, 2, tzinfo=UTC),
        repository_def=defs.get_repository_def(),
    )
    assert not nightly.evaluate_tick(ctx).run_requests  # everything registered is built

    newer = repo.commits(2)
    second = _sensor_tick(instance, resources, first.cursor)
    assert [r.partition_key for r in second.run_requests or []] == [f"flow@{s}" for s in newer]
    _launch(instance, resources, list(second.run_requests or []))

    retention = defs.resolve_job_def("cpg_retention_job").execute_in_process(
        instance=instance, resources=resources
    )
    assert retention.success
    window = repo.git("rev-list", "--max-count=3", "main").splitlines()
    kept = set(instance.get_dynamic_partitions("commits"))
    assert kept == {f"flow@{s}" for s in window}
    built = set(lake.read_partition("cpg_nodes", "flow", window[-1]).column("commit").to_pylist())
    assert built == {window[-1]}
    pruned = {r.partition_key for r in first.run_requests or []} - kept
    assert len(pruned) == 1  # the older of the two first-start commits left the window
    pruned_sha = next(iter(pruned)).split("@")[1]
    for name in ("cpg_nodes", "cpg_edges", "run_manifest"):
        assert lake.read_partition(name, "flow", pruned_sha).num_rows == 0
