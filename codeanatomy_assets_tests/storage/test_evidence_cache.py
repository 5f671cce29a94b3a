"""Cache retention: entries outside the kept keys go, kept entries load exactly as stored,
and rows a concurrent build is still storing survive."""

from __future__ import annotations

import uuid

import pyarrow as pa

from codeanatomy_assets.extract.ast_extract import module_name_for
from codeanatomy_assets.extract.incremental import evidence_cache_for
from codeanatomy_assets.extract.runner import ExtractOptions, extract_commit
from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.storage import evidence_cache
from codeanatomy_assets.storage.evidence_cache import cache_key
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import Scratch


def _rows(table: pa.Table) -> list[str]:
    return sorted(map(repr, table.to_pylist()))


def test_retain_keeps_exactly_the_kept_entries(git_repo, lake_root):
    repo = git_repo()
    first = repo.commit({"a.py": "def f():\n    return 1\n", "b.py": "import a\n"})
    second = repo.commit({"a.py": "def f():\n    return 2\n"})
    git = GitRepository(repo.path)
    cache = evidence_cache_for(Lake(lake_root))
    keys: dict[str, dict[str, str]] = {}
    for sha in (first, second):
        entries = git.python_entries(sha)
        keys[sha] = {
            e.path: cache_key(e.blob_id, e.path, module_name_for(e.path), cache.version)
            for e in entries
        }
        tables = extract_commit(str(repo.path), entries, ExtractOptions())
        cache.store(tables, keys[sha])
        cache.store(tables, keys[sha])  # a second build stored the same files at once
    kept = set(keys[second].values())
    old = keys[first]["a.py"]
    assert cache.hits([old]) == {old}

    removed = cache.retain(kept)

    assert removed > 0
    assert cache.hits([old]) == set() and cache.hits(sorted(kept)) == kept
    expected = extract_commit(str(repo.path), git.python_entries(second), ExtractOptions())
    loaded = cache.load(sorted(kept), Scratch())
    for name, table in expected.items():
        assert _rows(loaded[name].read()) == _rows(table), name
    assert cache.retain(kept) == 0  # nothing left to drop, duplicates included


def test_retain_never_drops_rows_of_a_store_it_did_not_see(git_repo, lake_root, monkeypatch):
    """A build appends its rows, then its marker: if retention runs in between, the rows
    stay, and once the marker lands the entry loads whole."""
    repo = git_repo()
    first = repo.commit({"b.py": "y = 2\n"})
    sha = repo.commit({"a.py": "x = 1\n"})
    git = GitRepository(repo.path)
    cache = evidence_cache_for(Lake(lake_root))

    def key_of(e):
        return cache_key(e.blob_id, e.path, module_name_for(e.path), cache.version)

    old = git.python_entries(first)
    cache.store(
        extract_commit(str(repo.path), old, ExtractOptions()), {e.path: key_of(e) for e in old}
    )
    entries = [e for e in git.python_entries(sha) if e.path == "a.py"]
    key = {e.path: key_of(e) for e in entries}
    tables = extract_commit(str(repo.path), entries, ExtractOptions())
    write = uuid.UUID(int=7)
    monkeypatch.setattr(evidence_cache.uuid, "uuid4", lambda: write)
    cache.store({n: t for n, t in tables.items() if n != "files"}, key)  # rows, no marker yet

    assert cache.retain(set(key.values())) > 0  # b.py's entry goes; a.py's rows must stay
    cache.store({"files": tables["files"]}, key)  # the marker lands, same write

    loaded = cache.load(list(key.values()), Scratch())
    for name, table in tables.items():
        assert table.num_rows == 0 or name == "errors" or loaded[name].num_rows, name
        assert _rows(loaded[name].read()) == _rows(table), name
