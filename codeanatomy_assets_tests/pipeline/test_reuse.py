"""A commit whose Python files equal an earlier commit's links that partition instead of
building; anything that could change a row builds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest, BuildResult
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES

REPO = "fixture"
GRAPH = tuple(name for name in CPG_OUTPUTS if name != "run_manifest")


@pytest.fixture(scope="module")
def factory() -> DriverFactory:
    return DriverFactory()


def _build(repo_path: Path, lake_root: str, factory: DriverFactory, **kw) -> BuildResult:
    request = BuildRequest(repo_path=repo_path, lake_root=lake_root, repo_id=REPO, **kw)
    return build_commit(request, factory=factory)


def _rows(lake: Lake, name: str, commit: str) -> list[dict]:
    table = lake.read_partition(name, REPO, commit).drop(["commit"])
    return sorted(table.to_pylist(), key=lambda r: json.dumps(r, sort_keys=True, default=str))


def _manifest(lake: Lake, commit: str) -> dict:
    (row,) = lake.read_partition("run_manifest", REPO, commit).to_pylist()
    return row


def test_a_commit_without_python_changes_links_the_earlier_partition(git_repo, lake_root, factory):
    repo = git_repo()
    first = repo.commit(FILES)
    docs = repo.commit({"README.md": "# docs only\n", "data/table.csv": "a,b\n"})
    built = _build(repo.path, lake_root, factory, commit=first)
    linked = _build(repo.path, lake_root, factory, commit=docs)
    assert built.reused_from is None
    assert linked.status == "success" and linked.reused_from == first
    lake = Lake(lake_root)
    for name in GRAPH:
        assert _rows(lake, name, docs) == _rows(lake, name, first), name
        assert linked.outputs[name].rows == built.outputs[name].rows
    assert linked.outputs["cpg_edges"].counts_by_kind == built.outputs["cpg_edges"].counts_by_kind
    assert (linked.file_count, linked.error_count) == (built.file_count, built.error_count)

    # Linked, not rewritten: the new partition's files are the first one's bytes.
    def inodes(commit: str) -> set[int]:
        part = Path(lake.table_uri("cpg_edges")) / f"repo_id={REPO}" / f"commit={commit}"
        return {p.stat().st_ino for p in part.glob("*.parquet")}

    assert inodes(docs) == inodes(first)
    manifest = _manifest(lake, docs)
    inputs = json.loads(manifest["inputs_json"])
    assert inputs["reused_from"] == first
    assert inputs["fingerprint"] == json.loads(_manifest(lake, first)["inputs_json"])["fingerprint"]
    events = lake.read_partition("pipeline_events", REPO, docs).to_pylist()
    (reuse,) = [e for e in events if e["event"] == "partition_reuse"]
    assert json.loads(reuse["detail_json"])["source_commit"] == first
    assert not [e for e in events if e["event"] == "node_finish"]  # no Hamilton node ran


def test_changed_python_a_rebuild_or_no_cache_builds(git_repo, lake_root, factory):
    repo = git_repo()
    first = repo.commit(FILES)
    docs = repo.commit({"README.md": "# docs\n"})
    renamed = repo.commit({"README.md": "# docs, again\n", "pkg/extra.py": "X = 1\n"})
    _build(repo.path, lake_root, factory, commit=first)
    assert _build(repo.path, lake_root, factory, commit=renamed).reused_from is None
    # Opted out: the same inputs, built anyway.
    assert (
        _build(repo.path, lake_root, factory, commit=docs, reuse_partitions=False).reused_from
        is None
    )
    # A second build of a commit is a re-materialization: it recomputes.
    assert _build(repo.path, lake_root, factory, commit=docs).reused_from is None
    # A different limit can turn files into error rows: not the same inputs.
    later = repo.commit({"README.md": "# docs, third\n"})
    other_limit = _build(repo.path, lake_root, factory, commit=later, max_file_bytes=100)
    assert other_limit.reused_from is None and other_limit.error_count > 0


def test_a_source_that_lost_its_rows_is_not_linked(git_repo, lake_root, factory):
    repo = git_repo()
    first = repo.commit(FILES)
    docs = repo.commit({"README.md": "# docs\n"})
    built = _build(repo.path, lake_root, factory, commit=first)
    lake = Lake(lake_root)
    lake.delete_partition("cpg_edges", REPO, first)  # e.g. a retention job half-way
    result = _build(repo.path, lake_root, factory, commit=docs)
    assert result.reused_from is None
    assert result.outputs["cpg_edges"].rows == built.outputs["cpg_edges"].rows
    assert lake.read_partition("cpg_edges", REPO, docs).num_rows == built.outputs["cpg_edges"].rows
    events = lake.read_partition("pipeline_events", REPO, docs).to_pylist()
    (reuse,) = [e for e in events if e["event"] == "partition_reuse"]
    assert json.loads(reuse["detail_json"])["reused"] is False
