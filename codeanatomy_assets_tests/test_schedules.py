"""Nightly backfill and retention against real git repositories, instance and Delta tables."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from codeanatomy_assets.assets.cpg import CPG_ASSET_KEYS
from codeanatomy_assets.cpg.schemas import OUTPUT_CONTRACTS
from codeanatomy_assets.definitions import defs
from codeanatomy_assets.resources import LakeResource, WatchedRepo, WatchedReposResource
from codeanatomy_assets.schedules import build_backfill_schedule, prune_partitions
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.git_fixture import GitRepo

NIGHT = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
LOG = logging.getLogger(__name__)


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    # Schedule contexts need a persistent instance (they re-open it from its ref).
    with dg.instance_for_test() as inst:
        yield inst


def _materialize_all(instance: dg.DagsterInstance, key: str) -> None:
    for asset_key in CPG_ASSET_KEYS:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key, partition=key))


def _tick(
    instance: dg.DagsterInstance, watched: WatchedReposResource, schedule: dg.ScheduleDefinition
) -> list[str]:
    ctx = dg.build_schedule_context(
        instance=instance,
        resources={"watched_repos": watched},
        scheduled_execution_time=NIGHT,
        repository_def=defs.get_repository_def(),
    )
    data = schedule.evaluate_tick(ctx)
    return [r.partition_key for r in data.run_requests or [] if r.partition_key]


def test_backfill_requests_only_retained_partitions_without_materialization(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "a")
    shas = repo.commits(5)
    keys = [f"a@{s}" for s in shas]
    watched = WatchedReposResource(
        repos={"a": WatchedRepo(path=str(repo.path))}, initial_commits=2, retain_commits=3
    )
    instance.add_dynamic_partitions("commits", keys)  # the two oldest are out of retention
    _materialize_all(instance, keys[4])
    schedule = defs.resolve_schedule_def("nightly_backfill_schedule")

    assert _tick(instance, watched, schedule) == [keys[3], keys[2]]  # newest first
    # A partially materialized partition still counts as missing.
    instance.report_runless_asset_event(dg.AssetMaterialization("cpg_nodes", partition=keys[3]))
    bounded = build_backfill_schedule(defs.resolve_job_def("cpg_job"), max_runs=1)
    assert _tick(instance, watched, bounded) == [keys[3]]
    _materialize_all(instance, keys[3])
    _materialize_all(instance, keys[2])
    ctx = dg.build_schedule_context(
        instance=instance,
        resources={"watched_repos": watched},
        scheduled_execution_time=NIGHT,
        repository_def=defs.get_repository_def(),
    )
    data = schedule.evaluate_tick(ctx)
    assert not data.run_requests and data.skip_message


def test_backfill_skips_partitions_with_a_run_in_flight(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "b")
    sha = repo.commit()
    key = f"b@{sha}"
    instance.add_dynamic_partitions("commits", [key])
    watched = WatchedReposResource(repos={"b": WatchedRepo(path=str(repo.path))})
    job = defs.resolve_job_def("cpg_job")
    instance.create_run_for_job(
        job, status=dg.DagsterRunStatus.STARTED, tags={"dagster/partition": key}
    )
    assert _tick(instance, watched, defs.resolve_schedule_def("nightly_backfill_schedule")) == []


def _write_rows(lake: Lake, repo_id: str, sha: str) -> None:
    for name in ("cpg_nodes", "run_manifest"):
        table = pa.Table.from_pylist([{}], schema=OUTPUT_CONTRACTS[name].schema)
        lake.write_partition(name, table, repo_id, sha)


def _shas_in(lake: Lake, name: str) -> set[str]:
    from datafusion import SessionContext

    ctx = SessionContext()
    table = lake.table(name)
    assert table is not None
    ctx.register_table(name, table)
    rows = ctx.sql(f'SELECT DISTINCT "commit" AS c FROM {name}').to_arrow_table()
    return set(rows.column("c").to_pylist())


def test_retention_deletes_old_partitions_and_their_rows(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "r")
    shas = repo.commits(4)
    lake = Lake(str(tmp_path / "lake"))
    for sha in shas:
        _write_rows(lake, "r", sha)
    # A partition of a repository that is not watched any more is left alone.
    stray = "s@" + "e" * 40
    instance.add_dynamic_partitions("commits", [f"r@{s}" for s in shas] + [stray])
    watched = WatchedReposResource(
        repos={"r": WatchedRepo(path=str(repo.path))}, initial_commits=1, retain_commits=2
    )

    deleted = prune_partitions(instance, lake, watched, LOG)
    assert deleted == {f"r@{shas[0]}": 2, f"r@{shas[1]}": 2}
    assert set(instance.get_dynamic_partitions("commits")) == {
        f"r@{shas[2]}", f"r@{shas[3]}", stray,
    }  # fmt: skip
    assert _shas_in(lake, "cpg_nodes") == set(shas[2:])
    assert _shas_in(lake, "run_manifest") == set(shas[2:])


def test_retention_job_runs_and_leaves_unreadable_repos_alone(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "j")
    shas = repo.commits(3)
    instance.add_dynamic_partitions("commits", [f"j@{s}" for s in shas] + ["gone@" + "d" * 40])
    watched = WatchedReposResource(
        repos={"j": WatchedRepo(path=str(repo.path)), "gone": WatchedRepo(path="/nonexistent")},
        initial_commits=1,
        retain_commits=1,
    )
    result = defs.resolve_job_def("cpg_retention_job").execute_in_process(
        instance=instance,
        resources={"lake": LakeResource(root=str(tmp_path / "lake")), "watched_repos": watched},
    )
    assert result.success
    assert set(instance.get_dynamic_partitions("commits")) == {f"j@{shas[2]}", "gone@" + "d" * 40}


def test_retention_drops_evidence_cache_entries_no_retained_commit_has(tmp_path: Path) -> None:
    from codeanatomy_assets.extract.ast_extract import module_name_for
    from codeanatomy_assets.extract.incremental import evidence_cache_for
    from codeanatomy_assets.pipeline.execution import build_commit
    from codeanatomy_assets.pipeline.request import BuildRequest
    from codeanatomy_assets.pipeline.view_cache import (
        VIEW_CACHE_DIR,
        per_file_signatures,
        view_cache,
        view_keys,
    )
    from codeanatomy_assets.repo.git import GitRepository
    from codeanatomy_assets.schedules import prune_evidence_cache
    from codeanatomy_assets.storage.evidence_cache import cache_key

    repo = GitRepo.init(tmp_path / "c")
    shas = [
        repo.commit({"m.py": f"VALUE = {i}\n", "keep.py": "def f():\n    pass\n"}) for i in range(3)
    ]
    lake = Lake(str(tmp_path / "lake"))
    for sha in shas:
        request = BuildRequest(repo_path=repo.path, lake_root=lake.root, commit=sha, repo_id="c")
        assert build_commit(request).status == "success"
    cache = evidence_cache_for(lake)
    git = GitRepository(repo.path)

    def keys(sha: str) -> set[str]:
        return {cache_key(e.blob_id, e.path, module_name_for(e.path), cache.version)
                for e in git.python_entries(sha)}  # fmt: skip

    assert cache.hits(sorted(keys(shas[0]))) == keys(shas[0])
    legacy = Path(lake.root) / "_evidence_cache" / "files" / "_delta_log"
    legacy.mkdir(parents=True)  # the first layout's cache, which no build reads any more
    # The per-file views' caches hold the same files' rows, and go with them.
    signature = per_file_signatures()["ast_node_ids"]
    views = view_cache(lake, "ast_node_ids", signature, pa.schema([("path", pa.string())]))

    def view_keys_of(sha: str) -> set[str]:
        return set(view_keys(git.python_entries(sha), cache.version, signature, "c").values())

    assert views.hits(sorted(view_keys_of(shas[0]))) == view_keys_of(shas[0])
    stale = Path(lake.root) / VIEW_CACHE_DIR / "ast_node_ids-0123456789abcdef" / "files"
    stale.mkdir(parents=True)  # an earlier version of the view, which no build reads any more
    watched = WatchedReposResource(
        repos={"c": WatchedRepo(path=str(repo.path))}, initial_commits=1, retain_commits=2
    )
    assert prune_evidence_cache(lake, watched, LOG)
    assert cache.hits(sorted(keys(shas[0]))) == keys(shas[0]) & keys(shas[1])  # keep.py only
    assert cache.hits(sorted(keys(shas[1]) | keys(shas[2]))) == keys(shas[1]) | keys(shas[2])
    assert not (Path(lake.root) / "_evidence_cache").exists()
    assert views.hits(sorted(view_keys_of(shas[0]))) == view_keys_of(shas[0]) & view_keys_of(
        shas[1]
    )
    both = view_keys_of(shas[1]) | view_keys_of(shas[2])
    assert views.hits(sorted(both)) == both
    assert not stale.parent.exists()
    # A watched repository that cannot be read: the cache is left alone.
    broken = WatchedReposResource(
        repos={"c": WatchedRepo(path=str(repo.path)), "gone": WatchedRepo(path="/nonexistent")},
        initial_commits=1,
        retain_commits=1,
    )
    assert prune_evidence_cache(lake, broken, LOG) is None
    assert cache.hits(sorted(keys(shas[1]))) == keys(shas[1])
