"""The evidence cache: a build's spilled evidence is linked in, not copied; only files with a
marker load; retention drops exactly the entries outside the kept keys (their rows too) and
keeps rows a concurrent build is still storing."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from datafusion import SessionContext
from deltalake.exceptions import CommitFailedError

from codeanatomy_assets.extract.ast_extract import module_name_for
from codeanatomy_assets.extract.incremental import evidence_cache_for
from codeanatomy_assets.extract.runner import ExtractOptions, extract_commit
from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.storage import evidence_cache
from codeanatomy_assets.storage.evidence_cache import cache_key
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import Scratch, spill_parts


def _rows(table: pa.Table) -> list[str]:
    return sorted(map(repr, table.to_pylist()))


def _stored_rows(cache, name: str) -> int:
    """Rows of cache table ``name`` on disk, loadable or not."""
    table = cache._table(name)
    if table is None:
        return 0
    ctx = SessionContext()
    ctx.register_table("t", table)
    return ctx.sql("SELECT count(*) AS n FROM t").to_pylist()[0]["n"]


def _keys(cache, entries) -> dict[str, str]:
    return {
        e.path: cache_key(e.blob_id, e.path, module_name_for(e.path), cache.version)
        for e in entries
    }


def test_a_builds_spilled_evidence_is_linked_into_the_cache(git_repo, lake_root):
    repo = git_repo()
    sha = repo.commit({"a.py": "def f(x):\n    return x\n", "b.py": "import a\n"})
    entries = GitRepository(repo.path).python_entries(sha)
    cache = evidence_cache_for(Lake(lake_root))
    tables = extract_commit(str(repo.path), entries, ExtractOptions())
    spilled = spill_parts(Scratch(), cache.schemas, [tables])

    assert cache.store(spilled, _keys(cache, entries)) == 2

    scratch_file = next(Path(spilled["ast_nodes"].directory).glob("*.parquet"))
    cached_files = list(Path(cache._uri("ast_nodes")).rglob("*.parquet"))
    assert [os.stat(f).st_ino for f in cached_files] == [os.stat(scratch_file).st_ino]
    loaded = cache.load(sorted(_keys(cache, entries).values()), Scratch())
    for name, table in tables.items():
        assert _rows(loaded[name].read()) == _rows(table), name


def test_only_files_with_a_marker_load(git_repo, lake_root):
    """A file stopped by its time limit is stored with the others' rows but gets no marker:
    none of its rows loads, and it is no hit."""
    repo = git_repo()
    sha = repo.commit({"a.py": "x = 1\n", "slow.py": "y = 2\n"})
    entries = GitRepository(repo.path).python_entries(sha)
    cache = evidence_cache_for(Lake(lake_root))
    tables = extract_commit(str(repo.path), entries, ExtractOptions())
    timeout = pa.table(
        {"path": ["slow.py"], "extractor": ["limits"], "error_kind": ["timeout"],
         "message": ["stopped"], "line": [None], "col": [None], "bstart": [None]},
        schema=tables["errors"].schema,
    )  # fmt: skip
    tables["errors"] = pa.concat_tables([tables["errors"], timeout])
    keys = _keys(cache, entries)

    assert cache.store(tables, keys) == 1

    assert cache.hits(sorted(keys.values())) == {keys["a.py"]}
    loaded = cache.load([keys["a.py"]], Scratch())
    for name in cache.schemas:
        paths = set(loaded[name].read()["path"].to_pylist())
        assert paths <= {"a.py"}, name
    assert set(loaded["ast_nodes"].read()["path"].to_pylist()) == {"a.py"}
    assert _stored_rows(cache, "errors") == 1  # slow.py's row is on disk, never loaded


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
    for name in cache.schemas:  # the dropped rows are gone from disk, not only from reads
        assert _stored_rows(cache, name) == loaded[name].num_rows, name
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


def test_retain_drops_a_store_that_died_before_its_marker(git_repo, lake_root):
    """Rows a build stored without ever adding its marker (it died in between) are kept while
    they could still be a store in progress, and dropped, from disk too, once they are older
    than ``unmarked_after_s``."""
    repo = git_repo()
    sha = repo.commit({"a.py": "x = 1\n", "b.py": "y = 2\n"})
    git = GitRepository(repo.path)
    cache = evidence_cache_for(Lake(lake_root))
    entries = git.python_entries(sha)
    keys = _keys(cache, entries)
    marked = [e for e in entries if e.path == "a.py"]
    cache.store(extract_commit(str(repo.path), marked, ExtractOptions()), _keys(cache, marked))
    dead = [e for e in entries if e.path == "b.py"]
    tables = extract_commit(str(repo.path), dead, ExtractOptions())
    cache.store({n: t for n, t in tables.items() if n != "files"}, _keys(cache, dead))
    on_disk = {name: _stored_rows(cache, name) for name in cache.schemas}
    assert on_disk["ast_nodes"] > 0

    assert cache.retain(set(keys.values())) == 0  # young: maybe a store in progress
    assert {name: _stored_rows(cache, name) for name in cache.schemas} == on_disk

    removed = cache.retain(set(keys.values()), unmarked_after_s=0)

    assert removed == sum(t.num_rows for n, t in tables.items() if n != "files")
    loaded = cache.load([keys["a.py"]], Scratch())
    for name in cache.schemas:  # b.py's rows are gone from disk; a.py's entry is whole
        assert _stored_rows(cache, name) == loaded[name].num_rows, name
    assert cache.hits(sorted(keys.values())) == {keys["a.py"]}


def _history(git_repo, changes: int):
    """A repository of three files, then ``changes`` commits that each change one of them;
    its cache holds the first commit's evidence and one write per later commit, as builds
    that follow the branch store them. Returns the git reader, the commits and the cache."""
    repo = git_repo()
    files = {f"m{i}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(3)}
    shas = [repo.commit(files)]
    for n in range(changes):
        shas.append(repo.commit({f"m{n % 3}.py": f"def g(y):\n    return y * {n}\n"}))
    return GitRepository(repo.path), shas


def _build(git: GitRepository, cache, sha: str) -> dict[str, str]:
    """Store what a build of ``sha`` extracts (the files the cache lacks); its keys."""
    entries = git.python_entries(sha)
    keys = _keys(cache, entries)
    todo = [e for e in entries if keys[e.path] not in cache.hits(sorted(keys.values()))]
    if todo:
        cache.store(extract_commit(str(git.path), todo, ExtractOptions()), _keys(cache, todo))
    return keys


def _live_writes(cache) -> set[str]:
    ctx = SessionContext()
    ctx.register_table("cached_files", cache._table("files"))
    ctx.register_view("k", ctx.sql("SELECT DISTINCT cache_key AS k FROM cached_files"))
    return set(cache._live_writes(ctx, "k"))


def test_compact_merges_the_smaller_writes_and_every_entry_loads_the_same(
    git_repo, lake_root, monkeypatch
):
    git, shas = _history(git_repo, 5)
    cache = evidence_cache_for(Lake(lake_root))
    keys = {sha: _build(git, cache, sha) for sha in shas}
    before = {sha: cache.load(sorted(k.values()), Scratch()) for sha, k in keys.items()}
    assert len(_live_writes(cache)) == 6
    monkeypatch.setattr(evidence_cache, "UNMARKED_AFTER_S", 0.0)  # superseded files go now

    done = cache.compact(max_writes=2)

    # m0.py and m1.py changed twice: their two versions need two writes, newest together.
    assert done is not None and done.merged_writes == 5 and done.files == 5
    assert len(done.writes) == 2 and len(_live_writes(cache)) == 3
    latest = cache.load(sorted(keys[shas[-1]].values()), Scratch())
    newest = {f.write for f in cache._files(cache._table("ast_nodes")) if f.write in done.writes}
    assert len(newest) == 2
    assert len(cache._table("files").get_add_actions(flatten=True)) == 1  # the marker, whole
    every = sorted({k for ks in keys.values() for k in ks.values()})
    assert cache.hits(every) == set(every)
    for sha, k in keys.items():
        loaded = cache.load(sorted(k.values()), Scratch())
        for name in cache.schemas:
            assert _rows(loaded[name].read()) == _rows(before[sha][name].read()), (sha, name)
    union = cache.load(every, Scratch())
    for name in cache.schemas:  # nothing on disk but what loads: superseded files are gone
        assert _stored_rows(cache, name) == union[name].num_rows, name
    assert cache.compact(max_writes=3) is None
    assert latest["ast_nodes"].num_rows


def test_compact_keeps_superseded_files_a_day_for_readers_of_the_old_marker(git_repo, lake_root):
    """A build that read the marker before a compaction loads the merged writes' files:
    they stay in the tables (a day), only the marker stops naming them."""
    git, shas = _history(git_repo, 3)
    cache = evidence_cache_for(Lake(lake_root))
    keys = [_build(git, cache, sha) for sha in shas]
    files_before = {f.path for f in cache._files(cache._table("ast_nodes"))}
    wanted = sorted(keys[-1].values())
    expected = cache.load(wanted, Scratch())

    assert cache.compact(max_writes=1) is not None

    files_after = {f.path for f in cache._files(cache._table("ast_nodes"))}
    assert files_before < files_after  # the new write added, nothing removed
    loaded = cache.load(wanted, Scratch())
    for name in cache.schemas:
        assert _rows(loaded[name].read()) == _rows(expected[name].read()), name


def test_compact_keeps_a_marker_row_a_build_appends_meanwhile(git_repo, lake_root, monkeypatch):
    """The marker transaction removes the files it read, not the table: an entry a build
    stores while the compaction runs stays a hit and loads."""
    git, shas = _history(git_repo, 3)
    lake = Lake(lake_root)
    cache = evidence_cache_for(lake)
    for sha in shas[:-1]:
        _build(git, cache, sha)
    commit = evidence_cache.EvidenceCache._commit_marker
    late: dict[str, str] = {}

    def racing(self, *args):
        if not late:
            late.update(_build(git, cache, shas[-1]))
        return commit(self, *args)

    monkeypatch.setattr(evidence_cache.EvidenceCache, "_commit_marker", racing)
    assert cache.compact(max_writes=1) is not None

    assert late and cache.hits(sorted(late.values())) == set(late.values())
    expected = extract_commit(str(git.path), git.python_entries(shas[-1]), ExtractOptions())
    loaded = cache.load(sorted(late.values()), Scratch())
    for name, table in expected.items():
        assert _rows(loaded[name].read()) == _rows(table), name


def test_a_compaction_that_races_retention_fails_and_brings_no_entry_back(
    git_repo, lake_root, monkeypatch
):
    """Retention replaced the marker (and removed the dropped entries' rows) while a
    compaction ran: the compaction's marker transaction conflicts, and what retention kept
    is all there is, every entry whole."""
    git, shas = _history(git_repo, 3)
    cache = evidence_cache_for(Lake(lake_root))
    keys = [_build(git, cache, sha) for sha in shas]
    kept = set(keys[-1].values())
    commit = evidence_cache.EvidenceCache._commit_marker
    raced: list[int] = []

    def racing(self, *args):
        if not raced:  # the nightly job, at the worst moment (its own compaction passes)
            raced.append(0)
            raced[0] = self.retain(kept)
        return commit(self, *args)

    monkeypatch.setattr(evidence_cache.EvidenceCache, "_commit_marker", racing)
    with pytest.raises(CommitFailedError):
        cache.compact(max_writes=1)

    assert raced[0] > 0
    every = sorted({k for ks in keys for k in ks.values()})
    assert cache.hits(every) == kept
    expected = extract_commit(str(git.path), git.python_entries(shas[-1]), ExtractOptions())
    loaded = cache.load(sorted(kept), Scratch())
    for name, table in expected.items():
        assert _rows(loaded[name].read()) == _rows(table), name


def test_a_load_compacts_a_cache_whose_writes_pile_up(git_repo, lake_root, monkeypatch):
    git, shas = _history(git_repo, 3)  # each file changed once
    cache = evidence_cache_for(Lake(lake_root))
    keys = [_build(git, cache, sha) for sha in shas]
    monkeypatch.setattr(evidence_cache, "COMPACT_AFTER_WRITES", 2)
    every = sorted({k for ks in keys for k in ks.values()})

    first = cache.load(every, Scratch())  # reads four writes, then merges three of them

    assert len(_live_writes(cache)) == 2
    again = cache.load(every, Scratch())
    for name in cache.schemas:
        assert _rows(again[name].read()) == _rows(first[name].read()), name
