"""Data loaders: the commit's tree from git objects, then the evidence of every file.

Flow: repo_path + commit_sha -> commit_entries -> evidence (one table per evidence name).
"""

from __future__ import annotations

import pyarrow as pa

from codeanatomy_assets.extract.packages import packages_table
from codeanatomy_assets.extract.runner import ExtractOptions, Progress, extract_commit
from codeanatomy_assets.repo.git import BlobEntry, GitRepository


def commit_entries(repo_path: str, commit_sha: str) -> list[BlobEntry]:
    """Python blobs, links and submodules of the commit's tree (never the work tree)."""
    return GitRepository(repo_path).python_entries(commit_sha)


def evidence(
    repo_path: str,
    commit_entries: list[BlobEntry],
    extract_options: ExtractOptions,
    progress: Progress | None,
) -> dict[str, pa.Table]:
    """Every evidence table of the commit (files, packages, ast_nodes, imports...)."""
    tables = extract_commit(repo_path, commit_entries, extract_options, progress)
    tables["packages"] = packages_table([e.path for e in commit_entries if e.skipped is None])
    return tables
