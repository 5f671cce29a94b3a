"""Materialize one commit in process: the quick start, the CLI and the benchmarks use this.

It goes through Dagster exactly like a scheduled run (the partition is registered, every
selected asset and its checks run, events land in the instance) but needs no daemon, no
webserver and no configured watch list: the repository given is watched for this run only.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import dagster as dg
from pydantic import ValidationError

from codeanatomy_assets.assets.cpg import cpg_assets
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets.partitions import COMMITS_PARTITIONS, encode_partition_key
from codeanatomy_assets.pipeline.request import ConfigError
from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.resources import (
    ExecutionResource,
    LakeResource,
    WatchedRepo,
    WatchedReposResource,
)
from codeanatomy_assets.storage.lake import check_partition, default_repo_id

__all__ = ["LOG_LEVELS", "default_repo_id", "failure_message", "materialize_partition"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _instance_for_run(instance: dg.DagsterInstance | None) -> dg.DagsterInstance:
    """The given instance; else ``$DAGSTER_HOME``'s when set (runs stay visible in the UI);
    else an ephemeral one."""
    if instance is not None:
        return instance
    if os.environ.get("DAGSTER_HOME"):
        return dg.DagsterInstance.get()
    return dg.DagsterInstance.ephemeral()


def _execution(mode: str, workers: int | None, dask_address: str | None) -> ExecutionResource:
    """The execution resource, its validation errors as ``ConfigError`` (key and choices)."""
    try:
        return ExecutionResource(execution_mode=mode, workers=workers, dask_address=dask_address)
    except ValidationError as exc:
        messages = [str(e["msg"]).removeprefix("Value error, ") for e in exc.errors()]
        raise ConfigError("; ".join(messages)) from None


def materialize_partition(
    repo_path: str | os.PathLike[str],
    repo_id: str | None = None,
    commit: str = "HEAD",
    lake_root: str | None = None,
    instance: dg.DagsterInstance | None = None,
    *,
    outputs: Sequence[str] | None = None,
    execution_mode: str = "parallel",
    workers: int | None = None,
    dask_address: str | None = None,
    lake: LakeResource | None = None,
    raise_on_error: bool = True,
    log_level: str = "DEBUG",
) -> dg.ExecuteInProcessResult:
    """Build the CPG of one commit through Dagster, in this process, and return the result.

    Args:
        repo_path: a local clone; only its git objects are read.
        repo_id: the partition's repository slug; default: from the directory name.
        commit: any revision; resolved to the full sha that keys the partition.
        lake_root: lake root; None: ``$CODEANATOMY_LAKE``, else ``.codeanatomy/lake``.
        instance: where runs and events are recorded; None: ``$DAGSTER_HOME``'s if set,
            else an ephemeral instance.
        outputs: CPG outputs to build (default all); their asset checks run too.
        execution_mode, workers, dask_address: as ``ExecutionResource``.
        lake: a configured ``LakeResource`` (object stores, credentials); wins over lake_root.
        raise_on_error: raise on a failed step (default) instead of returning the failure.
        log_level: the least level of the run's console log lines (DEBUG: every event, as
            Dagster prints it; the instance stores every event whatever the level).

    Returns:
        The run's result: its partition (``result.dagster_run.tags["dagster/partition"]``),
        materializations with their metadata, and asset-check evaluations
        (``result.get_asset_check_evaluations()``, all from the ``cpg`` step).

    Raises:
        RepositoryError, RevisionError: the path or the revision is unusable.
        LakeError: ``repo_id`` is not a valid slug.
        ConfigError: unknown ``outputs`` or execution settings.
        DagsterError: a step failed and ``raise_on_error`` is True (see ``failure_message``).
    """
    if log_level not in LOG_LEVELS:
        raise ConfigError(
            f"log_level {log_level!r} is unknown: allowed are {', '.join(LOG_LEVELS)}"
        )
    repo = GitRepository(repo_path)
    sha = repo.resolve(commit)
    rid = repo_id or default_repo_id(repo_path)
    check_partition(rid, sha)  # LakeError naming repo_id and what is allowed
    key = encode_partition_key(rid, sha)
    selected = tuple(outputs) if outputs is not None else CPG_OUTPUTS
    unknown = sorted(set(selected) - set(CPG_OUTPUTS))
    if unknown:
        raise ConfigError(f"outputs {unknown} are unknown: allowed are {', '.join(CPG_OUTPUTS)}")
    resources = {
        "lake": lake or LakeResource(root=lake_root),
        "execution": _execution(execution_mode, workers, dask_address),
        "watched_repos": WatchedReposResource(
            repos={rid: WatchedRepo(path=str(Path(repo_path).resolve()), branch=sha)}
        ),
    }
    run_instance = _instance_for_run(instance)
    partitions_name = COMMITS_PARTITIONS.name or ""
    if not run_instance.has_dynamic_partition(partitions_name, key):
        run_instance.add_dynamic_partitions(partitions_name, [key])
    return dg.materialize(
        [cpg_assets],
        selection=[dg.AssetKey(name) for name in selected],
        partition_key=key,
        instance=run_instance,
        resources=resources,
        raise_on_error=raise_on_error,
        tags={"codeanatomy/repo_id": rid},
        run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
    )


def failure_message(result: dg.ExecuteInProcessResult) -> str | None:
    """The first failed step's error, one line (``None`` when the run succeeded).

    For callers that pass ``raise_on_error=False`` and report instead of raising: the cause
    (e.g. the pipeline's exception) rather than Dagster's wrapper.
    """
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data is not None:
            error = event.step_failure_data.error
            cause = error.cause if error is not None and error.cause is not None else error
            text = cause.message.strip() if cause is not None else "step failed"
            return f"step {event.step_key}: {text.splitlines()[-1] if text else 'failed'}"
    return None if result.success else "run failed"
