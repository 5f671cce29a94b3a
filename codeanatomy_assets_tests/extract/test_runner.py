"""The chunk runner leaves the interpreter as it found it."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from codeanatomy_assets.extract.runner import extract_chunk
from codeanatomy_assets.repo.git import GitRepository, RevisionError
from codeanatomy_assets_tests.git_fixture import GitRepo


def test_automatic_collection_is_restored_after_a_chunk_even_one_that_fails(
    tmp_path: Path,
) -> None:
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit({"a.py": "x = 1\n", "b.py": "def (:\n"})
    chunk = tuple((e.path, e.blob_id) for e in GitRepository(repo.path).python_entries(sha))
    assert gc.isenabled()
    tables = extract_chunk(str(repo.path), chunk)
    assert gc.isenabled()
    assert {r["path"]: r["status"] for r in tables["files"].to_pylist()} == {
        "a.py": "ok",
        "b.py": "error",
    }
    # A chunk that raises (a blob missing from the object store) restores it too; one that
    # started with the collector off leaves it off.
    with pytest.raises(RevisionError):
        extract_chunk(str(repo.path), (("c.py", "0" * 40),))
    assert gc.isenabled()
    gc.disable()
    try:
        extract_chunk(str(repo.path), chunk)
        assert not gc.isenabled()
    finally:
        gc.enable()
