"""The new-commit sensor: request one partition run per new commit of each watched branch.

State lives only in the cursor, a JSON map ``repo_id -> last seen head sha`` (plus a format
version), so a restarted daemon resumes exactly where it stopped. On each tick, per repository:

* first start (no head in the cursor, or a head git no longer knows): the newest
  ``initial_commits`` commits of the branch, not its whole history;
* afterwards: the commits among the newest ``retain_commits`` of the branch that are not
  ancestors of the last seen head (after a fast-forward: the pushed commits; after a
  force-push: the rewritten ones); commits outside that window would be deleted by retention
  at once, so they are not requested;
* in every case, a commit that already is a partition is never requested again, and each run
  request carries its partition key as run key, which Dagster also deduplicates.

A repository whose path vanished, that is not a git repository, or whose branch is gone is
logged and skipped; its cursor entry is kept, and the other repositories are still followed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from codeanatomy_assets.partitions import COMMITS_PARTITIONS, encode_partition_key
from codeanatomy_assets.repo.git import GitRepository, RepositoryError, RevisionError
from codeanatomy_assets.resources import WatchedRepo, WatchedReposResource

if TYPE_CHECKING:  # not exported by `dagster`; only needed for annotations
    from dagster._core.definitions.unresolved_asset_job_definition import (
        UnresolvedAssetJobDefinition,
    )

__all__ = ["CommitCursor", "branch_window", "build_commit_sensor", "new_commits"]

_CURSOR_VERSION = 1


@dataclass
class CommitCursor:
    """The sensor's persisted state: the last branch head seen per repository.

    Mutable on purpose: one evaluation parses it, updates ``heads`` while scanning, dumps it.
    """

    heads: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: str | None) -> CommitCursor:
        """Decode a cursor; an absent or unreadable one is a first start (never a crash)."""
        if not raw:
            return cls()
        try:
            data = json.loads(raw)
            heads = data["heads"]
            if not isinstance(heads, dict):
                raise TypeError("heads is not an object")
            return cls({str(k): str(v) for k, v in heads.items()})
        except (ValueError, KeyError, TypeError):
            return cls()

    def dump(self) -> str:
        return json.dumps({"version": _CURSOR_VERSION, "heads": self.heads}, sort_keys=True)


def branch_window(watched: WatchedRepo, limit: int) -> tuple[GitRepository, list[str]]:
    """Open a watched repository and return its newest ``limit`` branch commits, newest first.

    Raises ``RepositoryError`` or ``RevisionError`` when the path or the branch is unusable.
    The path must be a repository's root (work tree or bare): git would otherwise discover an
    enclosing repository, and its commits would be filed under the wrong repo_id.
    """
    root = Path(watched.path)
    bare = (root / "HEAD").is_file() and (root / "objects").is_dir()
    if root.is_dir() and not (root / ".git").exists() and not bare:
        raise RepositoryError(f"not the root of a git repository: {root}")
    repo = GitRepository(root)
    head = repo.resolve(watched.branch)
    return repo, [c.sha for c in repo.commits(head, limit=limit)]


def new_commits(
    repo: GitRepository,
    window: list[str],
    last_head: str | None,
    initial_commits: int,
    known: set[str],
) -> list[str]:
    """The commits of ``window`` (newest first) to request, oldest first; see the module doc."""
    if last_head is not None:
        try:
            repo.resolve(last_head)
        except RevisionError:
            last_head = None  # rewritten and garbage-collected: treat as a first start
    if last_head is None:
        candidates = window[:initial_commits]
    elif window and window[0] == last_head:
        candidates = []
    else:
        candidates = [sha for sha in window if not repo.is_ancestor(sha, last_head)]
    return [sha for sha in reversed(candidates) if sha not in known]


def _scan(
    context: dg.SensorEvaluationContext,
    watched_repos: WatchedReposResource,
    cursor: CommitCursor,
    known_keys: set[str],
) -> Iterable[tuple[str, str]]:
    """Yield ``(repo_id, partition key)`` for new commits and update ``cursor.heads``."""
    for repo_id, watched in sorted(watched_repos.watched().items()):
        try:
            repo, window = branch_window(watched, watched_repos.retain_commits)
        except Exception as exc:  # one broken repository must not stop the rest
            context.log.warning(
                "repo=%s path=%s branch=%s skipped: %s: %s",
                repo_id, watched.path, watched.branch, type(exc).__name__, exc,
            )  # fmt: skip
            continue
        known = {k.partition("@")[2] for k in known_keys if k.startswith(f"{repo_id}@")}
        shas = new_commits(
            repo, window, cursor.heads.get(repo_id), watched_repos.initial_commits, known
        )
        context.log.info("repo=%s head=%s new_commits=%d", repo_id, window[0][:12], len(shas))
        if window:
            cursor.heads[repo_id] = window[0]
        for sha in shas:
            yield repo_id, encode_partition_key(repo_id, sha)


def build_commit_sensor(
    job: UnresolvedAssetJobDefinition | dg.JobDefinition,
    *,
    partitions_def: dg.DynamicPartitionsDefinition = COMMITS_PARTITIONS,
    name: str = "new_commits_sensor",
    minimum_interval_seconds: int = 60,
    default_status: dg.DefaultSensorStatus = dg.DefaultSensorStatus.STOPPED,
) -> dg.SensorDefinition:
    """A sensor that adds a partition and requests a run of ``job`` for every new commit."""
    partitions_name = partitions_def.name
    assert partitions_name is not None

    @dg.sensor(
        name=name,
        job=job,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description="Adds a commits partition and requests a run for each new watched commit.",
    )
    def _sensor(
        context: dg.SensorEvaluationContext, watched_repos: WatchedReposResource
    ) -> dg.SensorResult:
        cursor = CommitCursor.parse(context.cursor)
        known_keys = set(context.instance.get_dynamic_partitions(partitions_name))
        found = list(_scan(context, watched_repos, cursor, known_keys))
        keys = [key for _, key in found]
        requests = [
            dg.RunRequest(partition_key=key, run_key=key, tags={"codeanatomy/repo_id": repo_id})
            for repo_id, key in found
        ]
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[partitions_def.build_add_request(keys)] if keys else [],
            cursor=cursor.dump(),
        )

    return _sensor
