"""Read commits, trees and blobs through libgit2 (pygit2), never through the work tree.

Why pygit2 rather than the git CLI: listing a tree of 2,000 files and reading their blobs is
one process and no fork per call; and every read goes through the object database, so a
checked-out file that differs from the commit, or a link in the work tree, can never leak in.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pygit2

PYTHON_SUFFIXES: tuple[str, ...] = (".py", ".pyi")

_MODE_LINK = pygit2.enums.FileMode.LINK
_MODE_COMMIT = pygit2.enums.FileMode.COMMIT
_MODE_TREE = pygit2.enums.FileMode.TREE


class RepositoryError(ValueError):
    """The path is not a readable git repository."""


class RevisionError(ValueError):
    """A revision does not name a commit of the repository."""


@dataclass(frozen=True, slots=True)
class CommitInfo:
    """One commit: full 40-hex sha, its parents, author time (unix seconds) and summary."""

    sha: str
    parents: tuple[str, ...]
    time: int
    summary: str


@dataclass(frozen=True, slots=True)
class BlobEntry:
    """A Python path in a commit's tree.

    ``path`` is POSIX, relative to the repository root. ``skipped`` is None for a regular
    blob to extract; otherwise the reason it is not read (``symlink``, ``submodule``), and
    ``blob_id`` then names the link or the submodule commit, never anything it points to.
    """

    path: str
    blob_id: str
    size: int
    mode: int
    skipped: str | None = None


class GitRepository:
    """A handle on one repository's object database.

    Open one per process: pygit2 handles are not shared across processes, so extraction
    workers open their own from ``path``.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise RepositoryError(f"repository path does not exist: {self.path}")
        try:
            discovered = pygit2.discover_repository(str(self.path))
        except pygit2.GitError as exc:  # pragma: no cover - libgit2 message varies
            raise RepositoryError(f"not a git repository: {self.path} ({exc})") from exc
        if discovered is None:
            raise RepositoryError(f"not a git repository: {self.path}")
        self._repo = pygit2.Repository(discovered)

    def resolve(self, revision: str = "HEAD") -> str:
        """Return the full sha of the commit ``revision`` names (sha, branch, tag, HEAD~2...)."""
        try:
            obj = self._repo.revparse_single(revision)
            commit = obj.peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.GitError, pygit2.InvalidSpecError) as exc:
            raise RevisionError(f"unknown revision {revision!r} in {self.path}") from exc
        return str(commit.id)

    def commits(self, revision: str = "HEAD", limit: int | None = None) -> list[CommitInfo]:
        """Commits reachable from ``revision``, newest first (topological, then time order)."""
        head = self.resolve(revision)
        walker = self._repo.walk(
            pygit2.Oid(hex=head),
            pygit2.enums.SortMode.TOPOLOGICAL | pygit2.enums.SortMode.TIME,
        )
        out: list[CommitInfo] = []
        for commit in walker:
            out.append(
                CommitInfo(
                    sha=str(commit.id),
                    parents=tuple(str(p) for p in commit.parent_ids),
                    time=int(commit.commit_time),
                    summary=commit.message.splitlines()[0] if commit.message else "",
                )
            )
            if limit is not None and len(out) >= limit:
                break
        return out

    def first_parents(self, commit_sha: str, limit: int) -> list[str]:
        """Up to ``limit`` shas along ``commit_sha``'s first parents, nearest first (without
        it): a walk of ``limit`` steps, where a sorted history walk reads the whole history."""
        out: list[str] = []
        commit = self._repo.get(commit_sha)
        while isinstance(commit, pygit2.Commit) and commit.parent_ids and len(out) < limit:
            parent = commit.parent_ids[0]
            out.append(str(parent))
            try:
                commit = self._repo.get(parent)
            except (KeyError, ValueError, pygit2.GitError):  # a shallow clone's boundary
                break
        return out

    def is_ancestor(self, ancestor: str, descendant: str) -> bool:
        """Whether ``ancestor`` is reachable from ``descendant`` (False if either is unknown)."""
        try:
            return bool(
                ancestor == descendant
                or self._repo.descendant_of(pygit2.Oid(hex=descendant), pygit2.Oid(hex=ancestor))
            )
        except (KeyError, ValueError, pygit2.GitError):
            return False

    def python_entries(self, commit_sha: str) -> list[BlobEntry]:
        """Every `.py`/`.pyi` blob of the commit's tree, plus its links and submodules, by path.

        Links and submodules are returned as skipped entries so that they are visible in the
        graph's inputs without ever being followed.
        """
        commit = self._repo.get(commit_sha)
        if commit is None:
            raise RevisionError(f"unknown commit {commit_sha} in {self.path}")
        entries = list(self._walk(commit.peel(pygit2.Commit).tree, ""))
        entries.sort(key=lambda e: e.path)
        return entries

    def _walk(self, tree: pygit2.Tree, prefix: str) -> Iterator[BlobEntry]:
        for entry in tree:
            path = f"{prefix}{entry.name}"
            mode = int(entry.filemode)
            if mode == _MODE_TREE:
                yield from self._walk(self._repo[entry.id].peel(pygit2.Tree), f"{path}/")
                continue
            if mode == _MODE_COMMIT:
                yield BlobEntry(path, str(entry.id), 0, mode, skipped="submodule")
                continue
            if mode == _MODE_LINK:
                # Every link is recorded, whatever its name: a link called `lib` that points at
                # a directory of Python files is as much an escape as one called `x.py`.
                yield BlobEntry(path, str(entry.id), 0, mode, skipped="symlink")
                continue
            if not path.endswith(PYTHON_SUFFIXES):
                continue
            # read_header returns (type, size) without inflating the object.
            size = int(self._repo.odb.read_header(entry.id)[1])
            yield BlobEntry(path, str(entry.id), size, mode)

    def blob(self, blob_id: str) -> bytes:
        """The raw bytes of a blob."""
        obj = self._repo.get(blob_id)
        if not isinstance(obj, pygit2.Blob):
            raise RevisionError(f"{blob_id} is not a blob in {self.path}")
        return bytes(obj.data)
