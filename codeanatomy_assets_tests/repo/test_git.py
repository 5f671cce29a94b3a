"""Git access reads objects, never the work tree, and never follows links."""

from __future__ import annotations

import pytest

from codeanatomy_assets.repo.git import GitRepository, RepositoryError, RevisionError
from codeanatomy_assets_tests.git_fixture import Symlink


def test_commits_resolve_and_entries(git_repo):
    repo = git_repo()
    first = repo.commit({"a.py": "x = 1\n", "pkg/b.pyi": "y: int\n", "README.md": "hi\n"})
    second = repo.commit({"a.py": "x = 2\n"})
    g = GitRepository(repo.path)
    assert g.resolve() == second
    assert g.resolve("HEAD~1") == first
    assert g.resolve(first[:10]) == first
    assert [c.sha for c in g.commits()] == [second, first]
    assert [c.sha for c in g.commits(limit=1)] == [second]
    assert g.is_ancestor(first, second) and not g.is_ancestor(second, first)
    entries = g.python_entries(first)
    assert [(e.path, e.skipped) for e in entries] == [("a.py", None), ("pkg/b.pyi", None)]
    assert entries[0].size == len(b"x = 1\n")
    assert g.blob(entries[0].blob_id) == b"x = 1\n"


def test_reads_objects_not_the_work_tree(git_repo):
    repo = git_repo()
    sha = repo.commit({"a.py": "committed = True\n"})
    (repo.path / "a.py").write_text("edited = True\n")
    g = GitRepository(repo.path)
    (entry,) = g.python_entries(sha)
    assert g.blob(entry.blob_id) == b"committed = True\n"


def test_links_and_submodule_like_entries_are_skipped(git_repo):
    repo = git_repo()
    sha = repo.commit(
        {
            "ok.py": "x = 1\n",
            "passwd.py": Symlink("/etc/passwd"),
            "lib": Symlink("/usr/lib/python3"),
            "loop.py": Symlink("loop.py"),
            "dangling.py": Symlink("missing/nowhere.py"),
        }
    )
    entries = {e.path: e for e in GitRepository(repo.path).python_entries(sha)}
    assert entries["ok.py"].skipped is None
    for path in ("passwd.py", "lib", "loop.py", "dangling.py"):
        assert entries[path].skipped == "symlink"
        assert entries[path].size == 0


def test_bad_repository_and_revision(tmp_path, git_repo):
    with pytest.raises(RepositoryError, match="does not exist"):
        GitRepository(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(RepositoryError, match="not a git repository"):
        GitRepository(tmp_path / "plain")
    repo = git_repo()
    repo.commit()
    with pytest.raises(RevisionError, match="unknown revision 'nope'"):
        GitRepository(repo.path).resolve("nope")


def test_first_parents_walk_back_nearest_first_and_stop_at_the_root(git_repo):
    repo = git_repo()
    shas = repo.commits(4)
    repo.git("checkout", "-q", "-b", "side", shas[1])
    side = repo.commit({"side.py": "s = 1\n"})
    repo.git("checkout", "-q", "-")
    repo.git("merge", "-q", "--no-edit", side)
    merge = repo.head()
    g = GitRepository(repo.path)
    # The merge's first parent is the main line; the side branch is not walked.
    assert g.first_parents(merge, 10) == [shas[3], shas[2], shas[1], shas[0]]
    assert g.first_parents(merge, 2) == [shas[3], shas[2]]
    assert g.first_parents(shas[0], 5) == []
