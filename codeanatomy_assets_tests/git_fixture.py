"""Tiny real git repositories for tests, made with the git CLI.

Dates advance one minute per commit from a fixed epoch and identity comes from ``-c``
options, so shas are the same on every machine and every run. File values may be text,
bytes, ``Symlink(target)`` (a link in the tree) or None (delete the path).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_EPOCH = 1_700_000_000


@dataclass(frozen=True)
class Symlink:
    """A symbolic link to commit at a path; ``target`` is stored, never followed."""

    target: str


FileValue = str | bytes | Symlink | None


@dataclass
class GitRepo:
    """A work tree on branch ``main``; ``commit`` writes files and returns the new sha."""

    path: Path
    _count: int = field(default=0)

    @classmethod
    def init(cls, path: Path, branch: str = "main") -> GitRepo:
        path.mkdir(parents=True, exist_ok=True)
        repo = cls(path)
        repo.git("init", "-q", "-b", branch)
        return repo

    def git(self, *args: str) -> str:
        date = f"@{_EPOCH + 60 * self._count} +0000"
        env = {
            **os.environ,
            "GIT_AUTHOR_DATE": date,
            "GIT_COMMITTER_DATE": date,
            "GIT_CONFIG_NOSYSTEM": "1",
            "HOME": str(self.path),
        }
        cmd = [
            "git",
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "core.autocrlf=false",
            *args,
        ]
        done = subprocess.run(cmd, cwd=self.path, env=env, check=True, capture_output=True)
        return done.stdout.decode().strip()

    def write(self, files: dict[str, FileValue]) -> None:
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                if target.is_symlink() or target.exists():
                    target.unlink()
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            if isinstance(content, Symlink):
                os.symlink(content.target, target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_bytes(content.encode("utf-8"))

    def commit(self, files: dict[str, FileValue] | None = None, message: str | None = None) -> str:
        self._count += 1
        self.write(files or {f"mod_{self._count}.py": f"X = {self._count}\n"})
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message or f"commit {self._count}")
        return self.head()

    def commits(self, n: int) -> list[str]:
        """Make ``n`` commits; returns their shas oldest first."""
        return [self.commit() for _ in range(n)]

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev)
