"""Resources: defaults that load offline, and invalid config refused with key and choices."""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest
from dagster_deltalake import LocalConfig, S3Config
from pydantic import ValidationError

from codeanatomy_assets.pipeline.request import EXECUTION_MODES
from codeanatomy_assets.resources import (
    DEFAULT_LAKE_ROOT,
    LAKE_ENV_VAR,
    ExecutionResource,
    LakeResource,
    WatchedRepo,
    WatchedReposResource,
)


def test_lake_root_resolves_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(LAKE_ENV_VAR, raising=False)
    resource = LakeResource()
    assert resource.resolved_root() == DEFAULT_LAKE_ROOT
    monkeypatch.setenv(LAKE_ENV_VAR, str(tmp_path))
    assert resource.lake().root == str(tmp_path)
    assert LakeResource(root="s3://bucket/lake").lake().root == "s3://bucket/lake"
    assert isinstance(resource.storage, LocalConfig)
    assert resource.storage_options() == {}


def test_object_store_secrets_come_from_env_vars_at_run_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TEST_AWS_SECRET", "s3cr3t")
    resource = LakeResource(
        root="s3://bucket/lake",
        storage=S3Config(
            access_key_id="AKIA", secret_access_key=dg.EnvVar("TEST_AWS_SECRET"), region="eu"
        ),
    )
    seen: dict[str, str] = {}

    @dg.asset
    def probe(lake: LakeResource) -> None:
        seen.update(lake.storage_options())

    # An entered instance: materialize() reads Dagster's definitions state through it.
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize([probe], resources={"lake": resource}, instance=instance).success
    assert seen["secret_access_key"] == "s3cr3t"
    assert seen["region"] == "eu"
    assert "provider" not in seen


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"execution_mode": "threads"}, "execution_mode 'threads' is not allowed: use one of "
         + ", ".join(EXECUTION_MODES)),
        ({"workers": 0}, "workers 0 is not allowed"),
    ],
)  # fmt: skip
def test_execution_config_errors_name_key_and_choices(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        ExecutionResource(**kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif("remote" not in EXECUTION_MODES, reason="remote mode is not offered")
def test_remote_mode_needs_a_dask_address() -> None:
    with pytest.raises(ValidationError, match="dask_address is required"):
        ExecutionResource(execution_mode="remote")
    assert ExecutionResource(execution_mode="remote", dask_address="tcp://h:8786").dask_address


def test_invalid_execution_mode_in_run_config_fails_before_the_asset_runs() -> None:
    ran: list[bool] = []

    @dg.asset
    def probe(execution: ExecutionResource) -> None:
        ran.append(True)

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize(
            [probe],
            resources={"execution": ExecutionResource()},
            run_config={"resources": {"execution": {"config": {"execution_mode": "gpu"}}}},
            raise_on_error=False,
            instance=instance,
        )
    assert not result.success and not ran


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repos": {"Bad Id": WatchedRepo(path="/x")}}, "repos key 'Bad Id' is not allowed"),
        ({"retain_commits": 0, "initial_commits": 0}, "initial_commits 0 is not allowed"),
        ({"initial_commits": 20, "retain_commits": 10}, "must be <= retain_commits 10"),
    ],
)
def test_watched_repo_config_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        WatchedReposResource(**kwargs)  # type: ignore[arg-type]


def test_unknown_repo_id_lists_the_configured_ones() -> None:
    watched = WatchedReposResource(repos={"a": WatchedRepo(path="/a"), "b": WatchedRepo(path="/b")})
    assert watched.repo("a").branch == "main"
    with pytest.raises(KeyError, match="repo_id 'c' is not a watched repository"):
        watched.repo("c")


def test_repos_file_is_read_at_use_and_merged_under_repos(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    listing = tmp_path / "repos.yaml"
    listing.write_text("alpha: {path: clones/alpha}\nbeta: {path: /srv/beta, branch: trunk}\n")
    monkeypatch.setenv("CODEANATOMY_REPOS_FILE", str(listing))
    watched = WatchedReposResource(repos={"beta": WatchedRepo(path="/override")})
    repos = watched.watched()
    assert repos["alpha"] == WatchedRepo(path=str(tmp_path / "clones/alpha"), branch="main")
    assert repos["beta"].path == "/override"  # code config wins on a shared id
    listing.write_text("gamma: {path: /g}\n")  # an edit takes effect at the next use
    assert set(watched.watched()) == {"beta", "gamma"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- a\n- b\n", "must map repo_id"),
        ("Bad: {path: /x}\n", "key 'Bad': a repo_id is"),
        ("a: /x\n", "key 'a': expected {path: <clone>, branch: <ref>}"),
        ("a: {path: /x, brnch: dev}\n", "unknown fields ['brnch']; allowed are path, branch"),
        ("a: [", "cannot be read"),
    ],
)
def test_repos_file_errors_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    listing = tmp_path / "repos.yaml"
    listing.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)):
        WatchedReposResource(repos_file=str(listing)).watched()
