"""Per-file views (the ids of syntax nodes, scopes, blocks, symbols; which symbol a name use
means) are computed for the files the cache does not hold and taken from the cache for the
others; every output is row for row that of a build without any cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from deltalake import DeltaTable

from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.pipeline.view_cache import VIEW_CACHE_DIR, per_file_signatures
from codeanatomy_assets.storage import evidence_cache
from codeanatomy_assets.storage.evidence_cache import CACHE_DIR, MARKER
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES
from codeanatomy_assets_tests.pipeline.lake_builds import (
    REPO,
    build,
    build_unrestricted,
    partition_rows,
)

PER_FILE = {
    "ast_node_ids", "scope_ids", "block_ids", "symbol_ids", "row_scopes", "name_use_symbols",
    "read_bindings", "local_references", "ref_sites", "ref_dotted", "def_rows",
}  # fmt: skip
# Each with a call: every per-file view has rows in every module (``ref_sites`` too).
MODULES = {
    f"lib/m{i:02d}.py": f"def f{i}(x):\n    y = x + {i}\n    return abs(y)\n" for i in range(8)
}
# Written by every build, whatever it computed: not compared.
_RUN_OUTPUTS = {"run_manifest"}


@pytest.fixture(scope="module")
def factory() -> DriverFactory:
    return DriverFactory()


def _same_graph(lake: Lake, fresh: Lake, commit: str) -> None:
    for name in CPG_OUTPUTS:
        if name not in _RUN_OUTPUTS:
            assert partition_rows(lake, name, commit) == partition_rows(fresh, name, commit), name


def _view_events(lake: Lake, commit: str) -> dict[str, dict]:
    events = lake.read_partition("pipeline_events", REPO, commit).to_pylist()
    return {e["node"]: json.loads(e["detail_json"]) for e in events if e["event"] == "view_cache"}


def _built_after(
    repo: Path, tmp_path: Path, factory: DriverFactory, first: str, second: str
) -> Lake:
    """The lake with ``first`` then ``second`` built into it, whose ``second`` is checked
    against a build of it with no cache (``tmp_path / "fresh"``), output for output."""
    lake, fresh = Lake(str(tmp_path / "lake")), str(tmp_path / "fresh")
    build(repo, lake.root, factory, first)
    build(repo, lake.root, factory, second)
    build(repo, fresh, factory, second, use_evidence_cache=False, use_cache=False)
    _same_graph(lake, Lake(fresh), second)
    return lake


def test_a_commit_computes_its_changed_files_and_takes_the_others_from_the_cache(
    git_repo, tmp_path, factory
):
    repo = git_repo()
    first = repo.commit({**FILES, **MODULES})
    second = repo.commit(
        {
            "lib/m03.py": "import os\n\n\ndef f3(x):\n    return os.sep + x\n",  # spans move
            "lib/m07.py": None,  # deleted
            "lib/new.py": "from lib.m05 import f5\n\nY = f5(1)\n",
        }
    )
    lake = _built_after(repo.path, tmp_path, factory, first, second)

    files = len(FILES) + len(MODULES)
    # The first build computed and stored every file (the one with a syntax error too: the
    # error is the file's own, and its evidence is cached like the others').
    for name, event in _view_events(lake, first).items():
        assert (event["cached"], event["computed"], event["stored"]) == (0, files, files), name
    assert set(_view_events(lake, first)) == PER_FILE
    # The second: the edited and the new file computed and stored, the rest from the cache.
    for name, event in _view_events(lake, second).items():
        assert (event["cached"], event["computed"], event["stored"]) == (files - 2, 2, 2), name
    # One cache per per-file view, named by its signature.
    caches = {p.name for p in (Path(lake.root) / VIEW_CACHE_DIR).iterdir()}
    assert caches == {f"{n}-{s[:16]}" for n, s in per_file_signatures().items()}
    # No cache, no view cache.
    assert not (tmp_path / "fresh" / VIEW_CACHE_DIR).exists()


def test_caches_compact_as_commits_pile_up_and_the_graph_stays_the_same(
    git_repo, tmp_path, factory, monkeypatch
):
    """Commit after commit, each build adds a write to every cache; past the limit a load
    merges them (the views' cached files hold string views, the evidence's plain strings),
    and the last commit's graph is still that of a build with no cache."""
    monkeypatch.setattr(evidence_cache, "COMPACT_AFTER_WRITES", 2)
    repo = git_repo()
    commits = [repo.commit({**FILES, **MODULES})]
    for i in range(4):
        commits.append(repo.commit({f"lib/m{i:02d}.py": f"def g{i}(x):\n    return f(x)\n"}))
    lake = Lake(str(tmp_path / "lake"))
    for commit in commits[:-2]:
        build(repo.path, lake.root, factory, commit)
    lake = _built_after(repo.path, tmp_path, factory, commits[-2], commits[-1])

    caches = sorted((Path(lake.root) / VIEW_CACHE_DIR).iterdir())
    assert len(caches) == len(PER_FILE)
    # The fourth build's loads compacted every cache, and its diagnostics say so.
    compacted = [
        {"node": e["node"], **json.loads(e["detail_json"])}
        for commit in commits
        for e in lake.read_partition("pipeline_events", REPO, commit).to_pylist()
        if e["event"] == "cache_compaction"
    ]
    assert {c["node"] for c in compacted} == PER_FILE | {"evidence"}
    assert all("error" not in c and c["merged_writes"] == 3 for c in compacted), compacted
    for cache in [*caches, Path(lake.root) / CACHE_DIR]:
        marker = DeltaTable(str(cache / MARKER)).to_pyarrow_table(columns=["cache_write"])
        # Five builds stored five writes; loads merged the four small ones (and then some).
        assert len(set(marker.column(0).to_pylist())) <= 3, cache.name


def test_a_new_import_root_recomputes_the_files_named_from_it(git_repo, tmp_path, factory):
    """A module's qualified names depend on the import root it is named from (a monorepo
    project becomes one when its package gets an ``__init__.py``): its cached rows are not
    taken, though its blob did not change."""
    repo = git_repo()
    project = {
        "libs/mlib/mlib/core.py": "class Engine:\n    def run(self):\n        return 1\n",
        "libs/mlib/mlib/util.py": "def helper():\n    return 2\n",
    }
    first = repo.commit({**FILES, **project})
    second = repo.commit({"libs/mlib/mlib/__init__.py": ""})
    lake = _built_after(repo.path, tmp_path, factory, first, second)
    names = {
        r["qualified_name"]
        for r in lake.read_partition("cpg_nodes", REPO, second).to_pylist()
        if r["path"] == "libs/mlib/mlib/core.py" and r["node_kind"] == "CLASS"
    }
    assert names == {"mlib.core.Engine"}
    # The project's two modules and its new __init__.py computed; the other files cached.
    for name, event in _view_events(lake, second).items():
        assert (event["cached"], event["computed"]) == (len(FILES), 3), name


def test_rows_of_files_not_computed_mean_computing_every_file_without_the_cache(
    git_repo, tmp_path, factory, monkeypatch, caplog
):
    """The guard on per-file views: if one read every file (here its tables are left
    unrestricted), its rows of cached files are caught, and the view is computed whole."""
    root, fresh = str(tmp_path / "lake"), str(tmp_path / "fresh")
    second = build_unrestricted(
        git_repo(), {**FILES, **MODULES}, root, fresh, factory, monkeypatch,
        use_evidence_cache=False, use_cache=False,
    )  # fmt: skip
    lake = Lake(root)
    _same_graph(lake, Lake(fresh), second)
    assert "rows of files it was not computed for" in caplog.text
    events = _view_events(lake, second)
    assert set(events) == PER_FILE
    assert all(e.get("stray") for e in events.values())
