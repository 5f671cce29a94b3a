"""Data loaders: the commit's tree from git objects, then the evidence of every file.

Flow: repo_path + commit_sha -> commit_entries -> evidence (one table per evidence name).
``evidence`` is the extraction task: tagged ``task_kind=extract`` so that in remote mode the
execution manager places it on Dask, and versioned for the cache by the extractors' sources.
With ``use_evidence_cache`` it extracts only files whose blob is not in the lake's
content-keyed evidence cache (``extract.incremental``): a commit that changes one file parses
one file, whichever mode runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import pyarrow as pa
from hamilton.function_modifiers import tag

from codeanatomy_assets.extract.incremental import (
    EVIDENCE_TABLE_SCHEMAS,
    evidence_cache_for,
    extract_incremental,
)
from codeanatomy_assets.extract.packages import packages_table
from codeanatomy_assets.extract.runner import ExtractOptions, Progress, iter_extract
from codeanatomy_assets.pipeline.cache import CODE_PACKAGES_TAG
from codeanatomy_assets.pipeline.heap import release_free_heap
from codeanatomy_assets.pipeline.placement import run_task
from codeanatomy_assets.pipeline.remote import RemoteBackend, extract_remote
from codeanatomy_assets.pipeline.run_context import current_run, run_scratch
from codeanatomy_assets.repo.git import BlobEntry, GitRepository
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import Scratch, SpilledTable, spill_parts

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


Extractor = Callable[[list[BlobEntry]], Iterable[Mapping[str, pa.Table]]]


def _extract_on_dask(
    backend: RemoteBackend,
    repo_path: str,
    entries: list[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None,
) -> Iterable[Mapping[str, pa.Table]]:
    parts = extract_remote(backend, repo_path, entries, options, progress)
    return parts or iter_extract(repo_path, entries, options, progress)


def _extract(
    extract: Extractor,
    entries: list[BlobEntry],
    progress: Progress | None,
    cache_lake: Lake | None,
    scratch: Scratch,
) -> dict[str, SpilledTable]:
    """``extract`` of every entry, or only of those the evidence cache does not hold."""
    if cache_lake is None:
        return spill_parts(scratch, EVIDENCE_TABLE_SCHEMAS, extract(entries))
    context = current_run()
    collector = context.collector if context is not None else None
    tables, stats = extract_incremental(
        entries,
        evidence_cache_for(cache_lake),
        extract,
        scratch,
        None
        if collector is None
        else lambda detail: collector.record("cache_compaction", node="evidence", **detail),
    )
    if progress is not None and stats.cached:
        progress.advance(stats.cached)
    if collector is not None:
        collector.record(
            "evidence_cache",
            node="evidence",
            cached=stats.cached,
            extracted=stats.extracted,
            stored=stats.stored,
            extract_s=round(stats.extract_s, 3),
            store_s=round(stats.store_s, 3),
            load_s=round(stats.load_s, 3),
        )
    return tables


def _extract_here(
    repo_path: str,
    entries: list[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None,
    cache_lake: Lake | None,
    scratch: Scratch,
) -> dict[str, SpilledTable]:
    return _extract(
        lambda todo: iter_extract(repo_path, todo, options, progress),
        entries,
        progress,
        cache_lake,
        scratch,
    )


def _extract_remote(
    backend: RemoteBackend,
    repo_path: str,
    entries: list[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None,
    cache_lake: Lake | None,
    scratch: Scratch,
) -> dict[str, SpilledTable]:
    return _extract(
        lambda todo: _extract_on_dask(backend, repo_path, todo, options, progress),
        entries,
        progress,
        cache_lake,
        scratch,
    )


@tag(**_EXTRACT_TAGS)
def evidence(
    repo_path: str,
    commit_entries: list[BlobEntry],
    extract_options: ExtractOptions,
    progress: Progress | None,
    lake: Lake,
    use_evidence_cache: bool,
) -> dict[str, SpilledTable]:
    """Every evidence table of the commit (files, packages, ast_nodes, imports...), spilled
    to the run's scratch space as it is extracted: views scan it from there."""
    scratch = run_scratch()
    tables = run_task(
        "evidence",
        _EXTRACT_TAGS,
        _extract_here,
        repo_path,
        commit_entries,
        extract_options,
        progress,
        lake if use_evidence_cache else None,
        scratch,
        remote=_extract_remote,
    )
    packages = packages_table([e.path for e in commit_entries if e.skipped is None])
    tables["packages"] = scratch.spill("packages", packages)
    # What extraction freed stays resident in the C heap otherwise (``pipeline.heap``).
    released = release_free_heap()
    context = current_run()
    if context is not None and released.supported:
        context.collector.record(
            "heap_release",
            node="evidence",
            returned=released.returned,
            rss_before_mb=_rounded(released.rss_before_mb),
            rss_after_mb=_rounded(released.rss_after_mb),
        )
    return tables


def _rounded(mb: float | None) -> float | None:
    return None if mb is None else round(mb, 1)
