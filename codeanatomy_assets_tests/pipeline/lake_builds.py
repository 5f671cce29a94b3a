"""Builds of a test repository into a lake, and a partition's rows in a comparable form: the
incremental-build tests compare a lake built commit after commit with one built from scratch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from codeanatomy_assets.pipeline import task_execution
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest, BuildResult
from codeanatomy_assets.storage.lake import Lake

REPO = "fixture"


def build(
    repo: Path, lake_root: str, factory: DriverFactory, commit: str, **kw: Any
) -> BuildResult:
    """Build ``commit`` of ``repo`` as repository ``REPO``; the build must succeed."""
    request = BuildRequest(repo_path=repo, lake_root=lake_root, repo_id=REPO, commit=commit, **kw)
    result = build_commit(request, factory=factory)
    assert result.status == "success"
    return result


def partition_rows(lake: Lake, name: str, commit: str) -> list[str]:
    """The partition's rows as sorted JSON strings (flat outputs are stored in no order)."""
    table = lake.read_partition(name, REPO, commit).drop(["commit"])
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in table.to_pylist())


def build_unrestricted(
    repo: Any,
    files: dict[str, str],
    lake_root: str,
    fresh_root: str,
    factory: DriverFactory,
    monkeypatch: pytest.MonkeyPatch,
    **fresh: Any,
) -> str:
    """For the guards on file-locality: ``files`` committed and built into ``lake_root``,
    then a commit changing one module built there with the per-file tables left unrestricted
    (what a part that read every file would see), and the same commit built into
    ``fresh_root`` with ``fresh`` options. Returns the second commit."""
    first = repo.commit(files)
    second = repo.commit({"lib/m02.py": "def f2(x):\n    return x * 2\n"})
    build(repo.path, lake_root, factory, first)
    monkeypatch.setattr(task_execution, "restrict_to_files", lambda *args: None)
    build(repo.path, lake_root, factory, second)
    monkeypatch.undo()
    build(repo.path, fresh_root, factory, second, **fresh)
    return str(second)
