"""Data loaders: the commit's tree from git objects, then the evidence of every file.

Flow: repo_path + commit_sha -> commit_entries -> evidence (one table per evidence name).
``evidence`` is the extraction task: tagged ``task_kind=extract`` so that in remote mode the
execution manager places it on Dask, and versioned for the cache by the extractors' sources.
With ``use_evidence_cache`` it extracts only files whose blob is not in the lake's
content-keyed evidence cache (``extract.incremental``): a commit that changes one file parses
one file, whichever mode runs it.
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa
import pyarrow.compute as pc
from hamilton.function_modifiers import tag

from codeanatomy_assets.extract.evidence import EVIDENCE_SCHEMAS
from codeanatomy_assets.extract.incremental import evidence_cache_for, extract_incremental
from codeanatomy_assets.extract.packages import packages_table
from codeanatomy_assets.extract.runner import ExtractOptions, Progress, extract_commit
from codeanatomy_assets.pipeline.cache import CODE_PACKAGES_TAG
from codeanatomy_assets.pipeline.placement import run_task
from codeanatomy_assets.pipeline.remote import RemoteBackend, extract_remote
from codeanatomy_assets.pipeline.run_context import current_run
from codeanatomy_assets.repo.git import BlobEntry, GitRepository
from codeanatomy_assets.storage.lake import Lake

_EXTRACT_TAGS = {
    "layer": "dataloaders",
    "kind": "task",
    "task_name": "evidence",
    "task_kind": "extract",
    CODE_PACKAGES_TAG: "codeanatomy_assets.extract,codeanatomy_assets.repo,"
    "codeanatomy_assets.normalize",
}


def commit_entries(repo_path: str, commit_sha: str) -> list[BlobEntry]:
    """Python blobs, links and submodules of the commit's tree (never the work tree)."""
    return GitRepository(repo_path).python_entries(commit_sha)


def _in_entry_order(tables: dict[str, pa.Table], entries: list[BlobEntry]) -> dict[str, pa.Table]:
    """Rows ordered by their file's place in the tree, a file's rows as extracted.

    One canonical order whatever extracted the files (one process, a pool, Dask groups), so
    every execution mode hands the views the same tables, row for row.
    """
    position = pa.array([e.path for e in entries], pa.string())
    ordered: dict[str, pa.Table] = {}
    for name, table in tables.items():
        if "path" not in table.column_names or table.num_rows < 2:
            ordered[name] = table
            continue
        keys = pc.index_in(table["path"], value_set=position)
        rank = pa.table({"k": keys, "i": pa.array(range(table.num_rows), pa.int64())})
        ordered[name] = table.take(pc.sort_indices(rank, [("k", "ascending"), ("i", "ascending")]))
    return ordered


def _extract_on_dask(
    backend: RemoteBackend,
    repo_path: str,
    entries: list[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None,
) -> dict[str, pa.Table]:
    parts = extract_remote(backend, repo_path, entries, options, progress)
    if not parts:
        return extract_commit(repo_path, entries, options, progress)
    return {
        name: pa.concat_tables([p[name] for p in parts] or [EVIDENCE_SCHEMAS[name].empty_table()])
        for name in parts[0]
    }


def _extract(
    extract: Callable[[list[BlobEntry]], dict[str, pa.Table]],
    entries: list[BlobEntry],
    progress: Progress | None,
    cache_lake: Lake | None,
) -> dict[str, pa.Table]:
    """``extract`` of every entry, or only of those the evidence cache does not hold."""
    if cache_lake is None:
        return extract(entries)
    tables, stats = extract_incremental(entries, evidence_cache_for(cache_lake), extract)
    if progress is not None and stats.cached:
        progress.advance(stats.cached)
    context = current_run()
    if context is not None:
        context.collector.record(
            "evidence_cache",
            node="evidence",
            cached=stats.cached,
            extracted=stats.extracted,
            stored=stats.stored,
        )
    return tables


def _extract_here(
    repo_path: str,
    entries: list[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None,
    cache_lake: Lake | None,
) -> dict[str, pa.Table]:
    return _extract(
        lambda todo: extract_commit(repo_path, todo, options, progress),
        entries,
        progress,
        cache_lake,
    )


def _extract_remote(
    backend: RemoteBackend,
    repo_path: str,
    entries: list[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None,
    cache_lake: Lake | None,
) -> dict[str, pa.Table]:
    return _extract(
        lambda todo: _extract_on_dask(backend, repo_path, todo, options, progress),
        entries,
        progress,
        cache_lake,
    )


@tag(**_EXTRACT_TAGS)
def evidence(
    repo_path: str,
    commit_entries: list[BlobEntry],
    extract_options: ExtractOptions,
    progress: Progress | None,
    lake: Lake,
    use_evidence_cache: bool,
) -> dict[str, pa.Table]:
    """Every evidence table of the commit (files, packages, ast_nodes, imports...)."""
    tables = run_task(
        "evidence",
        _EXTRACT_TAGS,
        _extract_here,
        repo_path,
        commit_entries,
        extract_options,
        progress,
        lake if use_evidence_cache else None,
        remote=_extract_remote,
    )
    tables = _in_entry_order(tables, commit_entries)
    tables["packages"] = packages_table([e.path for e in commit_entries if e.skipped is None])
    return tables
