"""Tiny real git repositories for the Dagster-layer tests, made with the git CLI.

Author and committer dates advance one minute per commit from a fixed epoch, and identity
comes from ``-c`` options, so shas are the same on every machine and run.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_EPOCH = 1_700_000_000


@dataclass
class GitFixture:
    """A work tree with a ``main`` branch; ``commit`` writes files and returns the new sha."""

    path: Path
    _count: int = field(default=0)

    @classmethod
    def init(cls, path: Path, branch: str = "main") -> GitFixture:
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
        cmd = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.com", *args]
        done = subprocess.run(
            cmd, cwd=self.path, env=env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    def commit(self, files: dict[str, str] | None = None, message: str | None = None) -> str:
        self._count += 1
        for rel, text in (files or {f"mod_{self._count}.py": f"X = {self._count}\n"}).items():
            target = self.path / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message or f"commit {self._count}")
        return self.head()

    def commits(self, n: int) -> list[str]:
        """Make ``n`` commits; returns their shas oldest first."""
        return [self.commit() for _ in range(n)]

    def head(self, rev: str = "HEAD") -> str:
        return self.git("rev-parse", rev)
