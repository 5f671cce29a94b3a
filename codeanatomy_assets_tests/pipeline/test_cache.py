"""Hamilton's cache across builds, read back from the cache-lineage export of each run.

A second build of a commit hits for extraction and every view; a commit that changes one
file re-extracts that file only and recomputes only the nodes whose inputs changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from codeanatomy_assets.pipeline.cache import task_code_version
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.pipeline.execution import PIPELINE_EVENTS_TABLE, build_commit
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES


def _build(repo_path: Path, lake_root: str, factory: DriverFactory, **kw: Any) -> dict[str, Any]:
    """Build, then return the run's manifest row with its JSON columns decoded."""
    kw.setdefault("use_cache", True)  # Hamilton's cache is opt-in
    request = BuildRequest(repo_path=repo_path, lake_root=lake_root, repo_id="fixture", **kw)
    result = build_commit(request, factory=factory)
    (row,) = Lake(lake_root).read_partition("run_manifest", "fixture", result.commit).to_pylist()
    assert row["run_id"] == result.run_id
    return {
        **row,
        **{k: json.loads(row[k]) for k in ("config_json", "timings_json", "outputs_json")},
    }


def _lineage(manifest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    path = Path(manifest["config_json"]["cache"]["lineage_path"])
    export = json.loads(path.read_text())
    assert export["run_id"] == manifest["run_id"]
    return {row["node"]: row for row in export["nodes"]}


def _statuses(lineage: dict[str, dict[str, Any]], status: str) -> set[str]:
    return {name for name, row in lineage.items() if row["status"] == status}


def _row_key(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


def _events(lake_root: str, commit: str, event: str) -> list[dict[str, Any]]:
    rows = Lake(lake_root).read_partition(PIPELINE_EVENTS_TABLE, "fixture", commit).to_pylist()
    return [r for r in rows if r["event"] == event]


def test_second_build_hits_and_one_changed_file_invalidates_only_its_dependents(
    git_repo, lake_root
) -> None:
    repo = git_repo()
    first = repo.commit(FILES)
    factory = DriverFactory()
    cold = _lineage(_build(repo.path, lake_root, factory))
    cached = {name for name, row in cold.items() if row["behavior"] == "default"}
    assert {"evidence", "package_ids", "ast_node_ids", "module_index"} <= cached
    assert _statuses(cold, "hit") == set()
    nodes_before = Lake(lake_root).read_partition("cpg_nodes", "fixture", first).sort_by("node_id")

    warm_manifest = _build(repo.path, lake_root, factory)
    warm = _lineage(warm_manifest)
    assert _statuses(warm, "hit") == cached  # extraction and every view come from the cache
    assert _statuses(warm, "miss") == set()
    nodes_after = Lake(lake_root).read_partition("cpg_nodes", "fixture", first)
    assert nodes_after.sort_by("node_id").equals(nodes_before)
    assert warm_manifest["config_json"]["cache"]["counts"]["hit"] == len(cached)

    # Same paths, new content in one file (and no new error): packages and errors unchanged.
    second = repo.commit({"pkg/util.py": "def helper():\n    return 2\n"})
    changed = _lineage(_build(repo.path, lake_root, factory))
    assert changed["evidence"]["status"] == "miss"
    assert changed["packages"]["data_version"] == warm["packages"]["data_version"]
    assert changed["errors"]["data_version"] == warm["errors"]["data_version"]
    assert changed["ast_nodes"]["data_version"] != warm["ast_nodes"]["data_version"]
    # The cache is exact: a node is a hit iff its code and every input kept their versions.
    hits, misses = _statuses(changed, "hit"), _statuses(changed, "miss")
    assert hits | misses == cached
    for name in cached:
        before, after = warm[name], changed[name]
        same = (before["code_version"], before["dependencies_data_versions"]) == (
            after["code_version"],
            after["dependencies_data_versions"],
        )
        assert same == (name in hits), name
    # Views over packages or errors only are reused; those over the changed rows are not.
    assert {"package_ids", "evidence", "file_ids", "ast_node_ids"} & hits == {"package_ids"}
    assert {"evidence", "file_ids", "ast_node_ids", "module_index"} <= misses
    # Only the changed file was parsed; the four others came from the evidence cache.
    (stats,) = _events(lake_root, second, "evidence_cache")
    detail = json.loads(stats["detail_json"])
    assert (detail["cached"], detail["extracted"]) == (len(FILES) - 1, 1)
    # And what the cache produced is what a build without any cache produces.
    fresh_lake = str(Path(lake_root).parent / "fresh")
    _build(repo.path, fresh_lake, factory, use_cache=False)
    for name in ("cpg_nodes", "cpg_edges", "cpg_props", "extract_errors"):
        reused = Lake(lake_root).read_partition(name, "fixture", second)
        fresh = Lake(fresh_lake).read_partition(name, "fixture", second)
        assert sorted(map(_row_key, reused.to_pylist())) == sorted(
            map(_row_key, fresh.to_pylist())
        ), name


def test_generated_nodes_are_versioned_by_their_plan_task(git_repo, lake_root) -> None:
    repo = git_repo()
    repo.commit(FILES)
    factory = DriverFactory()
    lineage = _lineage(_build(repo.path, lake_root, factory))
    plan = factory.plan()
    for task in ("file_ids", "ast_node_ids", "module_index", "package_ids"):
        assert lineage[task]["code_version"] == task_code_version(plan.task(task).task_signature)
    # The closures share one source; their versions still differ, task by task.
    assert lineage["file_ids"]["code_version"] != lineage["package_ids"]["code_version"]
    deps = lineage["package_ids"]["dependencies_data_versions"]
    assert deps["packages"] == lineage["packages"]["data_version"]


def test_no_cache_builds_without_reading_or_writing_a_cache(git_repo, tmp_path) -> None:
    """What `--no-cache` asks for: neither Hamilton's cache nor the evidence cache."""
    repo = git_repo()
    sha = repo.commit(FILES)
    lake_root = str(tmp_path / "lake")
    manifest = _build(
        repo.path, lake_root, DriverFactory(), use_cache=False, use_evidence_cache=False
    )
    assert "cache" not in manifest["config_json"]
    assert manifest["config_json"]["use_cache"] is False
    assert not (tmp_path / ".codeanatomy").exists()
    assert not (Path(lake_root) / "_evidence_cache").exists()
    assert _events(lake_root, sha, "evidence_cache") == []
