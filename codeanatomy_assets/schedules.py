"""Nightly work: backfill missing commit partitions, and enforce retention.

``build_backfill_schedule``: at 02:00 (cron and timezone configurable) request a run for each
retained partition (among the newest ``retain_commits`` commits of a watched branch) that lacks
a successful materialization of some CPG asset and has no run queued or in progress; newest
commits first, round-robin over repositories, at most ``max_runs`` per night.

``prune_partitions`` (run by ``cpg_retention_job``, scheduled before the backfill): for each
watched repository it can read, deletes every partition of that repository whose commit is no
longer among the newest ``retain_commits`` of its branch: first the partition's rows from every
CPG Delta table (``Lake.delete_partition``, one Delta delete per table), then the dynamic
partition itself, so a failure half-way leaves the partition listed and the next night retries.
Repositories that cannot be read, and partitions of repositories no longer watched, are left
untouched and logged: deleting data because a mount vanished would be worse than keeping it.
The same job then drops evidence-cache and view-cache entries that no retained commit contains
(``prune_evidence_cache``).
"""

# No `from __future__ import annotations`: Dagster reads the context and resource annotations
# of decorated functions at definition time and needs real types.

import logging
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import dagster as dg

from codeanatomy_assets.assets.cpg import CPG_ASSET_KEYS
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets.extract.ast_extract import module_name_for
from codeanatomy_assets.extract.incremental import evidence_cache_for
from codeanatomy_assets.partitions import (
    COMMITS_PARTITIONS,
    PartitionKeyError,
    decode_partition_key,
    encode_partition_key,
)
from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.resources import LakeResource, WatchedReposResource
from codeanatomy_assets.sensors.commits import branch_window
from codeanatomy_assets.storage.evidence_cache import cache_key
from codeanatomy_assets.storage.lake import Lake

if TYPE_CHECKING:  # not exported by `dagster`; only needed for annotations
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

__all__ = [
    "build_backfill_schedule",
    "build_retention_schedule",
    "cpg_retention_job",
    "missing_partitions",
    "prune_evidence_cache",
    "prune_partitions",
    "retained_partitions",
]

_UNFINISHED = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]
_PARTITION_TAG = "dagster/partition"
_Log = logging.Logger  # DagsterLogManager (context.log) is a Logger


def _windows(watched_repos: WatchedReposResource, log: _Log) -> dict[str, list[str]]:
    """Newest ``retain_commits`` shas per readable watched repository (others are logged)."""
    windows: dict[str, list[str]] = {}
    for repo_id, watched in sorted(watched_repos.watched().items()):
        try:
            windows[repo_id] = branch_window(watched, watched_repos.retain_commits)[1]
        except Exception as exc:  # one broken repository must not stop the rest
            log.warning("repo=%s skipped: %s: %s", repo_id, type(exc).__name__, exc)
    return windows


def retained_partitions(
    instance: dg.DagsterInstance,
    watched_repos: WatchedReposResource,
    log: _Log,
    partitions_def: dg.DynamicPartitionsDefinition = COMMITS_PARTITIONS,
) -> list[str]:
    """Existing partitions within retention, newest first, interleaved across repositories."""
    existing = set(instance.get_dynamic_partitions(partitions_def.name or ""))
    ranked: list[tuple[int, str, str]] = []
    for repo_id, window in _windows(watched_repos, log).items():
        for rank, sha in enumerate(window):
            key = encode_partition_key(repo_id, sha)
            if key in existing:
                ranked.append((rank, repo_id, key))
    return [key for _, _, key in sorted(ranked)]


def missing_partitions(
    instance: dg.DagsterInstance,
    candidates: Sequence[str],
    asset_keys: Iterable[dg.AssetKey] = CPG_ASSET_KEYS,
    job_name: str | None = None,
) -> list[str]:
    """The candidates (order kept) lacking a materialization of some asset and not in flight."""
    complete: set[str] | None = None
    for key in asset_keys:
        done = set(instance.get_materialized_partitions(key))
        complete = done if complete is None else complete & done
    in_flight = {
        run.tags[_PARTITION_TAG]
        for run in instance.get_runs(filters=dg.RunsFilter(job_name=job_name, statuses=_UNFINISHED))
        if _PARTITION_TAG in run.tags
    }
    return [k for k in candidates if k not in (complete or set()) and k not in in_flight]


def build_backfill_schedule(
    job: "UnresolvedAssetJobDefinition | dg.JobDefinition",
    *,
    cron_schedule: str = "0 2 * * *",
    timezone: str = "UTC",
    max_runs: int = 20,
    name: str = "nightly_backfill_schedule",
    default_status: dg.DefaultScheduleStatus = dg.DefaultScheduleStatus.STOPPED,
) -> dg.ScheduleDefinition:
    """The nightly backfill of retained partitions without a successful materialization."""
    if max_runs < 1:
        raise ValueError(f"max_runs {max_runs} is not allowed: use an integer >= 1")

    @dg.schedule(
        name=name,
        cron_schedule=cron_schedule,
        job=job,
        execution_timezone=timezone,
        default_status=default_status,
        description=f"Requests up to {max_runs} runs for retained commits not yet built.",
    )
    def _schedule(
        context: dg.ScheduleEvaluationContext, watched_repos: WatchedReposResource
    ) -> dg.SkipReason | list[dg.RunRequest]:
        retained = retained_partitions(context.instance, watched_repos, context.log)
        missing = missing_partitions(context.instance, retained, job_name=job.name)
        context.log.info(
            "retained=%d missing=%d max_runs=%d", len(retained), len(missing), max_runs
        )
        if not missing:
            return dg.SkipReason(f"all {len(retained)} retained partitions are materialized")
        night = context.scheduled_execution_time.date().isoformat()
        return [
            dg.RunRequest(partition_key=key, run_key=f"backfill:{night}:{key}")
            for key in missing[:max_runs]
        ]

    return _schedule


def prune_partitions(
    instance: dg.DagsterInstance,
    lake: Lake,
    watched_repos: WatchedReposResource,
    log: _Log,
    partitions_def: dg.DynamicPartitionsDefinition = COMMITS_PARTITIONS,
) -> dict[str, int]:
    """Delete every partition that fell out of retention, with its rows in every Delta table.

    For each watched repository whose branch can be read: every ``commits`` partition of that
    repository whose sha is not among the newest ``retain_commits`` commits of the branch is
    removed, first its rows from each of the 11 CPG Delta tables (``Lake.delete_partition``:
    a Delta delete with the partition predicate, a new table version; files are reclaimed by
    a later vacuum), then the dynamic partition. Partitions of unreadable or unwatched
    repositories and keys that do not decode are kept and logged.

    Returns:
        partition key -> number of rows deleted across all tables.
    """
    partitions_name = partitions_def.name or ""
    windows = _windows(watched_repos, log)
    deleted: dict[str, int] = {}
    for key in sorted(instance.get_dynamic_partitions(partitions_name)):
        try:
            partition = decode_partition_key(key)
        except PartitionKeyError as exc:
            log.warning("partition=%s left alone: %s", key, exc)
            continue
        window = windows.get(partition.repo_id)
        if window is None or partition.sha in window:
            continue
        rows = sum(lake.delete_partition(n, partition.repo_id, partition.sha) for n in CPG_OUTPUTS)
        instance.delete_dynamic_partition(partitions_name, key)
        log.info("partition=%s deleted rows=%d", key, rows)
        deleted[key] = rows
    return deleted


def prune_evidence_cache(lake: Lake, watched_repos: WatchedReposResource, log: _Log) -> int | None:
    """Drop evidence-cache entries that no retained commit of a watched repository contains.

    The cache is append-only while builds run; without this it grows with every commit ever
    built. What is kept: the entry of every Python file of the newest ``retain_commits``
    commits of each watched branch, for the extractor code running now (entries of older
    extractor versions can never hit again), in the cache's current layout (directories of
    earlier layouts are deleted). Rows a build stored but never marked (it died while
    storing) go once they are a day old. If a watched repository cannot be read, nothing
    is dropped: its commits' entries cannot be told apart. Dropping an entry a later build
    wants costs a re-extraction, never a wrong graph (``EvidenceCache.retain``). The
    per-file views' caches are pruned alike (``pipeline.view_cache.retain_view_caches``):
    the rows of the same files, for the views of the code running now; the caches of earlier
    versions of a view are deleted.

    Returns:
        the cache rows removed (evidence and views), or None when the caches were left alone.
    """
    watched = watched_repos.watched()
    windows = _windows(watched_repos, log)
    unreadable = sorted(set(watched) - set(windows))
    if unreadable:
        log.warning("evidence cache left as it is: cannot read %s", ", ".join(unreadable))
        return None
    cache = evidence_cache_for(lake)
    commits = [
        (repo_id, GitRepository(watched[repo_id].path).python_entries(sha))
        for repo_id, shas in windows.items()
        for sha in shas
    ]
    keep = {
        cache_key(e.blob_id, e.path, module_name_for(e.path), cache.version)
        for _, entries in commits
        for e in entries
        if e.skipped is None
    }
    removed = cache.retain(keep)
    log.info("evidence cache: kept %d entries, removed %d rows", len(keep), removed)
    for directory in cache.remove_legacy():
        log.info("evidence cache: deleted %s, a layout no build reads any more", directory)
    # The per-file views' caches hold rows of the same files: kept for the same commits.
    # Imported here: it plans the views, which the code location does not need to load.
    from codeanatomy_assets.pipeline.view_cache import retain_view_caches

    view_rows = retain_view_caches(lake, commits, cache.version)
    log.info("view caches: removed %d rows", view_rows)
    return removed + view_rows


@dg.op(name="cpg_retention")
def _cpg_retention(
    context: dg.OpExecutionContext, lake: LakeResource, watched_repos: WatchedReposResource
) -> dg.Output[None]:
    """Delete partitions (and their Delta rows) outside the last N commits per repository,
    then the evidence-cache entries no retained commit contains."""
    deleted = prune_partitions(context.instance, lake.lake(), watched_repos, context.log)
    cache_rows = prune_evidence_cache(lake.lake(), watched_repos, context.log)
    return dg.Output(
        None,
        metadata={
            "partitions_deleted": len(deleted),
            "rows_deleted": sum(deleted.values()),
            "keys": dg.MetadataValue.json(sorted(deleted)),
            "evidence_cache_rows_deleted": cache_rows if cache_rows is not None else -1,
        },
    )


@dg.job(name="cpg_retention_job")
def cpg_retention_job() -> None:
    """Delete partitions outside retention, rows first, then the dynamic partition; then
    the evidence-cache entries no retained commit contains."""
    _cpg_retention()


def build_retention_schedule(
    cron_schedule: str = "0 1 * * *", timezone: str = "UTC"
) -> dg.ScheduleDefinition:
    """Run the retention job nightly, before the backfill, so it never builds doomed commits."""
    return dg.ScheduleDefinition(
        name="nightly_retention_schedule",
        job=cpg_retention_job,
        cron_schedule=cron_schedule,
        execution_timezone=timezone,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )
