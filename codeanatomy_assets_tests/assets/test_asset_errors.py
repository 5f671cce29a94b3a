"""Failures of the CPG asset that are decided before the pipeline runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dagster as dg
import pytest

from codeanatomy_assets.assets import default_repo_id, failure_message, materialize_partition
from codeanatomy_assets.definitions import defs
from codeanatomy_assets.pipeline.request import ConfigError
from codeanatomy_assets.repo.git import RepositoryError
from codeanatomy_assets.resources import LakeResource, WatchedReposResource
from codeanatomy_assets.storage.lake import LakeError


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
    assert failure_message(result) == (
        "step cpg: KeyError: \"repo_id 'ghost' is not a watched repository (configured: none)\""
    )


def test_materialize_partition_refuses_a_non_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryError):
        materialize_partition(tmp_path / "missing", lake_root=str(tmp_path / "lake"))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"outputs": ["cpg_nodez"]}, ConfigError, r"outputs \['cpg_nodez'\] are unknown"),
        ({"execution_mode": "gpu"}, ConfigError, r"execution_mode 'gpu' is not allowed: use one"),
        ({"workers": 0}, ConfigError, r"workers 0 is not allowed"),
        ({"repo_id": "Bad Id"}, LakeError, r"repo_id 'Bad Id' is invalid"),
    ],
)
def test_materialize_partition_refuses_bad_arguments_before_any_work(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    from codeanatomy_assets_tests.git_fixture import GitRepo

    repo = GitRepo.init(tmp_path / "r")
    repo.commit()
    with dg.DagsterInstance.ephemeral() as instance:
        with pytest.raises(error, match=message):
            materialize_partition(
                repo.path, lake_root=str(tmp_path / "l"), instance=instance, **kwargs
            )
        assert instance.get_dynamic_partitions("commits") == []
    assert not (tmp_path / "l").exists()


@pytest.mark.parametrize(
    ("name", "slug"),
    [("My Repo", "my-repo"), ("__init__", "init__"), ("ab.c", "ab.c"), ("!!!", "repo")],
)
def test_default_repo_id_is_a_slug(tmp_path: Path, name: str, slug: str) -> None:
    assert default_repo_id(tmp_path / name) == slug


def test_output_metadata_for_an_object_store_table() -> None:
    import pyarrow as pa

    from codeanatomy_assets.assets.cpg import output_metadata
    from codeanatomy_assets.pipeline.request import BuildResult, OutputWrite

    sha = "a" * 40
    schema = pa.schema([("repo_id", pa.string()), ("node_id", pa.string()), ("bstart", pa.int64())])
    write = OutputWrite("cpg_nodes", "s3://bucket/lake/cpg_nodes", 7, 42, schema, {"FILE": 2})
    result = BuildResult("run1", "r", sha, "success", "sig", 1.5, 2, 0, {"cpg_nodes": write}, {})
    meta = output_metadata(result.committed("cpg_nodes"), f"r@{sha}")
    assert isinstance(meta["table_uri"], dg.UrlMetadataValue)
    assert meta["table_uri"].value == "s3://bucket/lake/cpg_nodes"
    assert meta["dagster/row_count"].value == 42
    assert meta["delta_version"].value == 7
    assert [(c.name, c.type) for c in meta["dagster/column_schema"].columns] == [
        ("repo_id", "string"), ("node_id", "string"), ("bstart", "int64"),
    ]  # fmt: skip
    assert meta["counts_by_kind"].value == {"FILE": 2}
    assert meta["plan_signature"] == "sig" and meta["partition_key"] == f"r@{sha}"
    assert meta["build_run_id"] == "run1" and meta["committed_after_s"].value == 1.5
