"""Shared fixtures: real git repositories in temp directories, and a lake directory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from codeanatomy_assets_tests.git_fixture import GitRepo


@pytest.fixture
def git_repo(tmp_path: Path) -> Callable[[str], GitRepo]:
    """Factory: ``git_repo("name")`` makes a fresh repository under the test's temp dir."""

    def make(name: str = "repo") -> GitRepo:
        return GitRepo.init(tmp_path / name)

    return make


@pytest.fixture
def lake_root(tmp_path: Path) -> str:
    return str(tmp_path / "lake")
