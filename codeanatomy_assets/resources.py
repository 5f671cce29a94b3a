"""Configuration as Dagster resources: where the lake lives, how builds execute, what to watch.

Every value is validated when the resource is built (pydantic validators), so a wrong value
fails at load time, or when a run's config is resolved, with the key and what is allowed,
before any commit is read. Nothing here reads the environment at import: the lake root falls
back to ``$CODEANATOMY_LAKE`` and then ``.codeanatomy/lake`` only when ``lake()`` is called, and
secrets are passed as ``dg.EnvVar`` so they resolve at run time and never reach the UI.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import yaml
from dagster_deltalake import AzureConfig, GcsConfig, LocalConfig, S3Config
from dagster_deltalake.config import ClientConfig
from pydantic import Field, ValidationInfo, field_validator, model_validator

from codeanatomy_assets.pipeline.request import EXECUTION_MODES
from codeanatomy_assets.storage.lake import REPO_ID_PATTERN, Lake

__all__ = [
    "DEFAULT_LAKE_ROOT",
    "LAKE_ENV_VAR",
    "REPOS_FILE_ENV_VAR",
    "ExecutionResource",
    "LakeResource",
    "WatchedRepo",
    "WatchedReposResource",
    "read_repos_file",
]

DEFAULT_LAKE_ROOT = ".codeanatomy/lake"
LAKE_ENV_VAR = "CODEANATOMY_LAKE"
REPOS_FILE_ENV_VAR = "CODEANATOMY_REPOS_FILE"
_REPO_ID_RULE = "1-64 characters of a-z, 0-9, '_', '.', '-', starting with a letter or digit"


class LakeResource(dg.ConfigurableResource):
    """The lake root and how to reach it.

    ``storage`` reuses dagster-deltalake's storage config types (local, S3, Azure, GCS) only to
    describe the object store; we write Delta ourselves with a partition predicate (see
    ``storage.lake``), so their fields are passed through as deltalake ``storage_options``.
    """

    root: str | None = Field(
        default=None,
        description=(
            f"Lake root: a local directory or an object-store URI (s3://, az://, gs://). "
            f"Unset: ${LAKE_ENV_VAR}, else {DEFAULT_LAKE_ROOT}."
        ),
    )
    storage: LocalConfig | S3Config | AzureConfig | GcsConfig = Field(
        default_factory=LocalConfig,
        discriminator="provider",
        description="Object store credentials and options; use dg.EnvVar for secrets.",
    )
    client: ClientConfig | None = Field(
        default=None, description="HTTP client options for object stores (timeouts, proxy)."
    )

    def resolved_root(self) -> str:
        """The root in effect: configured, else ``$CODEANATOMY_LAKE``, else the local default."""
        return self.root or os.environ.get(LAKE_ENV_VAR) or DEFAULT_LAKE_ROOT

    def storage_options(self) -> dict[str, str]:
        """deltalake storage options; the discriminator ``provider`` is ours, not delta-rs'."""
        options = {**self.storage.str_dict(), **(self.client.str_dict() if self.client else {})}
        options.pop("provider", None)
        return options

    def lake(self) -> Lake:
        """A ``Lake`` handle for the configured root and options."""
        return Lake(self.resolved_root(), self.storage_options())


class ExecutionResource(dg.ConfigurableResource):
    """How a build executes: serial, a local process pool, or a Dask cluster."""

    execution_mode: str = Field(
        default="parallel", description=f"One of: {', '.join(EXECUTION_MODES)}."
    )
    workers: int | None = Field(
        default=None, description="Worker processes for parallel mode (default: CPU count)."
    )
    dask_address: str | None = Field(
        default=None, description="Scheduler address (tcp://host:8786); required in remote mode."
    )

    @field_validator("execution_mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        if value not in EXECUTION_MODES:
            raise ValueError(
                f"execution_mode {value!r} is not allowed: use one of {', '.join(EXECUTION_MODES)}"
            )
        return value

    @field_validator("workers")
    @classmethod
    def _positive_workers(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError(f"workers {value} is not allowed: use an integer >= 1 or leave unset")
        return value

    @model_validator(mode="after")
    def _remote_needs_address(self) -> ExecutionResource:
        if self.execution_mode == "remote" and not self.dask_address:
            raise ValueError(
                "dask_address is required when execution_mode is 'remote' (tcp://host:port)"
            )
        return self


class WatchedRepo(dg.Config):
    """One watched repository: a local clone and the branch whose commits are built."""

    path: str = Field(description="Path of a local clone (kept up to date by a fetch job).")
    branch: str = Field(default="main", description="Branch (or any ref) to follow.")


class WatchedReposResource(dg.ConfigurableResource):
    """The repositories the sensor follows and how many of their commits are kept.

    ``initial_commits``: on the sensor's first start for a repository only its newest N
    commits are requested, not its whole history. ``retain_commits``: the partitions kept per
    repository (the newest N commits of the branch); older ones are deleted by retention.
    ``repos_file`` lets operators list repositories without touching code: it is read each
    time the list is needed, so an edit takes effect at the next sensor tick.
    """

    repos: dict[str, WatchedRepo] = Field(
        default_factory=dict, description="repo_id -> {path, branch}; repo_id is a path-safe slug."
    )
    repos_file: str | None = Field(
        default=None,
        description=(
            "YAML or JSON file mapping repo_id -> {path, branch} (relative paths: from the "
            f"file's directory), merged under `repos`. Unset: ${REPOS_FILE_ENV_VAR}, if set."
        ),
    )
    initial_commits: int = Field(
        default=5, description="Commits requested per repository on the sensor's first start."
    )
    retain_commits: int = Field(
        default=50, description="Newest commits kept per repository; older ones are deleted."
    )

    @field_validator("repos")
    @classmethod
    def _slug_ids(cls, value: Mapping[str, WatchedRepo]) -> Mapping[str, WatchedRepo]:
        for repo_id in value:
            if not REPO_ID_PATTERN.match(repo_id):
                raise ValueError(
                    f"repos key {repo_id!r} is not allowed: a repo_id is {_REPO_ID_RULE}"
                )
        return value

    @field_validator("initial_commits", "retain_commits")
    @classmethod
    def _at_least_one(cls, value: int, info: ValidationInfo) -> int:
        if value < 1:
            raise ValueError(f"{info.field_name} {value} is not allowed: use an integer >= 1")
        return value

    @model_validator(mode="after")
    def _initial_within_retention(self) -> WatchedReposResource:
        if self.initial_commits > self.retain_commits:
            raise ValueError(
                f"initial_commits {self.initial_commits} is not allowed: it must be <= "
                f"retain_commits {self.retain_commits} (older commits would be deleted at once)"
            )
        return self

    def watched(self) -> dict[str, WatchedRepo]:
        """Every watched repository: the repos file's, then ``repos`` (which wins on an id)."""
        path = self.repos_file or os.environ.get(REPOS_FILE_ENV_VAR)
        return {**(read_repos_file(Path(path)) if path else {}), **self.repos}

    def repo(self, repo_id: str) -> WatchedRepo:
        """The watched repository ``repo_id``, failing with the ids that are configured."""
        repos = self.watched()
        try:
            return repos[repo_id]
        except KeyError:
            known = ", ".join(sorted(repos)) or "none"
            raise KeyError(
                f"repo_id {repo_id!r} is not a watched repository (configured: {known})"
            ) from None


def read_repos_file(path: Path) -> dict[str, WatchedRepo]:
    """Parse a repos file (``repo_id: {path, branch}``), naming the file and key on errors."""
    try:
        data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ValueError(f"repos file {str(path)!r} cannot be read: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"repos file {str(path)!r} must map repo_id -> {{path, branch}}")
    repos: dict[str, WatchedRepo] = {}
    for repo_id, entry in data.items():
        where = f"repos file {str(path)!r}, key {repo_id!r}"
        if not isinstance(repo_id, str) or not REPO_ID_PATTERN.match(repo_id):
            raise ValueError(f"{where}: a repo_id is {_REPO_ID_RULE}")
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise ValueError(f"{where}: expected {{path: <clone>, branch: <ref>}}")
        unknown = sorted(set(entry) - {"path", "branch"})
        if unknown:
            raise ValueError(f"{where}: unknown fields {unknown}; allowed are path, branch")
        clone = path.parent / entry["path"]  # an absolute path stays absolute
        repos[repo_id] = WatchedRepo(path=str(clone), branch=str(entry.get("branch", "main")))
    return repos
