"""Incremental extraction: unchanged blobs come from the cache, rows identical, never doubled."""

from __future__ import annotations

import pyarrow as pa

from codeanatomy_assets.extract.incremental import evidence_cache_for, extract_incremental
from codeanatomy_assets.extract.runner import ExtractOptions, extract_commit, iter_extract
from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import Scratch

FILES = {
    "a.py": "def f(x):\n    return x + 1\n",
    "pkg/__init__.py": "from .b import g\n",
    "pkg/b.py": "import os\n\nclass G:\n    def g(self):\n        return os.sep\n",
    "bad.py": "def (:\n",
}


def _sorted(table: pa.Table) -> list[dict]:
    return sorted(table.to_pylist(), key=lambda r: sorted((k, str(v)) for k, v in r.items()))


def test_second_commit_reuses_unchanged_files(git_repo, lake_root):
    repo = git_repo()
    first = repo.commit(FILES)
    second = repo.commit({"a.py": "def f(x):\n    return x + 2\n"})
    g = GitRepository(repo.path)
    cache = evidence_cache_for(Lake(lake_root))
    calls: list[list[str]] = []

    def extract(entries):
        calls.append(sorted(e.path for e in entries))
        return iter_extract(str(repo.path), entries, ExtractOptions())

    scratch = Scratch()
    _, stats1 = extract_incremental(g.python_entries(first), cache, extract, scratch)
    assert (stats1.cached, stats1.extracted, stats1.stored) == (0, 4, 4)
    merged, stats2 = extract_incremental(g.python_entries(second), cache, extract, scratch)
    assert (stats2.cached, stats2.extracted, stats2.stored) == (3, 1, 1)
    assert calls[1] == ["a.py"]
    full = extract_commit(str(repo.path), g.python_entries(second), ExtractOptions())
    for name, table in full.items():
        assert _sorted(merged[name].read()) == _sorted(table), name
        assert merged[name].read().schema == table.schema, name


def test_concurrent_stores_of_one_blob_are_read_once(git_repo, lake_root):
    repo = git_repo()
    sha = repo.commit(FILES)
    entries = GitRepository(repo.path).python_entries(sha)
    cache = evidence_cache_for(Lake(lake_root))
    full = extract_commit(str(repo.path), entries, ExtractOptions())
    from codeanatomy_assets.extract.ast_extract import module_name_for
    from codeanatomy_assets.storage.evidence_cache import cache_key

    keys = {e.path: cache_key(e.blob_id, e.path, module_name_for(e.path), cache.version)
            for e in entries}  # fmt: skip
    cache.store(full, keys)
    cache.store(full, keys)  # a second build stored the same blobs at the same time
    loaded = cache.load(list(keys.values()), Scratch())
    for name, table in full.items():
        assert loaded[name].num_rows == table.num_rows, name


def test_a_new_extractor_version_misses(git_repo, lake_root):
    repo = git_repo()
    sha = repo.commit(FILES)
    entries = GitRepository(repo.path).python_entries(sha)
    cache = evidence_cache_for(Lake(lake_root))

    def extract(es):
        return iter_extract(str(repo.path), es, ExtractOptions())

    extract_incremental(entries, cache, extract, Scratch())
    other = type(cache)(cache.lake, "another-version", cache.schemas)
    _, stats = extract_incremental(entries, other, extract, Scratch())
    assert stats.cached == 0 and stats.extracted == 4
