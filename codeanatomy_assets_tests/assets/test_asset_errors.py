"""Failures of the CPG asset that are decided before the pipeline runs."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from codeanatomy_assets.assets import default_repo_id, materialize_partition
from codeanatomy_assets.definitions import defs
from codeanatomy_assets.repo.git import RepositoryError
from codeanatomy_assets.resources import LakeResource, WatchedReposResource


def test_unwatched_repo_id_fails_naming_it(tmp_path: Path) -> None:
    key = "ghost@" + "a" * 40
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("commits", [key])
        result = defs.resolve_job_def("cpg_job").execute_in_process(
            instance=instance,
            partition_key=key,
            resources={
                "lake": LakeResource(root=str(tmp_path / "lake")),
                "watched_repos": WatchedReposResource(),
            },
            raise_on_error=False,
        )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "repo_id 'ghost' is not a watched repository" in str(failure.step_failure_data.error)


def test_materialize_partition_refuses_a_non_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError):
        materialize_partition(tmp_path / "missing", lake_root=str(tmp_path / "lake"))


def test_materialize_partition_refuses_unknown_outputs(tmp_path: Path) -> None:
    from codeanatomy_assets_tests.sensors.git_fixture import GitFixture

    repo = GitFixture.init(tmp_path / "r")
    repo.commit()
    with pytest.raises(ValueError, match=r"outputs \['cpg_nodez'\] are unknown"):
        materialize_partition(repo.path, outputs=["cpg_nodez"], lake_root=str(tmp_path / "l"))


@pytest.mark.parametrize(
    ("name", "slug"),
    [("My Repo", "my-repo"), ("__init__", "init__"), ("ab.c", "ab.c"), ("!!!", "repo")],
)
def test_default_repo_id_is_a_slug(tmp_path: Path, name: str, slug: str) -> None:
    assert default_repo_id(tmp_path / name) == slug
