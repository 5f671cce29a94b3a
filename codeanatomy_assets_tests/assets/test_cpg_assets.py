"""The CPG multi-asset end to end: a real repository, the real pipeline, real Delta tables.

Materializations go through ``materialize_partition`` (what the CLI and the quick start call)
on an ephemeral instance; rows are read back through the lake (DataFusion), never through
``DeltaTable.to_pyarrow_*``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest

from codeanatomy_assets.assets import materialize_partition
from codeanatomy_assets.assets.cpg import InDependencyOrder, cpg_assets
from codeanatomy_assets.assets.local_run import failure_message
from codeanatomy_assets.checks import CPG_CHECK_SPECS, CpgChecks
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS, OUTPUT_CONTRACTS
from codeanatomy_assets.definitions import defs
from codeanatomy_assets.partitions import COMMITS_PARTITIONS
from codeanatomy_assets.pipeline.request import OutputCommitted, OutputWrite
from codeanatomy_assets.resources import (
    ExecutionResource,
    LakeResource,
    WatchedRepo,
    WatchedReposResource,
)
from codeanatomy_assets.storage.lake import PARTITION_COLUMNS, Lake
from codeanatomy_assets_tests.git_fixture import GitRepo

pytest.importorskip(
    "codeanatomy_assets.pipeline.execution", reason="build_commit (pipeline) has not landed yet"
)

SOURCES = {
    "pkg/__init__.py": "from pkg.shapes import area\n",
    "pkg/shapes.py": (
        "import math\n\n\n"
        "class Circle:\n"
        "    def __init__(self, r: float) -> None:\n"
        "        self.r = r\n\n"
        "    def area(self) -> float:\n"
        "        return math.pi * self.r ** 2\n\n\n"
        "def area(r: float) -> float:\n"
        "    return Circle(r).area()\n"
    ),
}


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "shapes")
    repo.commit(SOURCES)
    return repo


def _materializations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetMaterialization]:
    events = result.get_asset_materialization_events()
    return {
        e.asset_key.to_user_string(): e.step_materialization_data.materialization for e in events
    }


def test_all_outputs_materialize_with_metadata_and_passing_checks(
    tmp_path: Path, repo: GitRepo, instance: dg.DagsterInstance
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    result = materialize_partition(repo.path, "shapes", "HEAD", lake.root, instance)
    sha = repo.head()
    key = f"shapes@{sha}"
    assert result.success
    assert instance.has_dynamic_partition("commits", key)

    found = _materializations(result)
    assert set(found) == set(CPG_OUTPUTS)
    for name, event in found.items():
        assert event.partition == key
        meta = event.metadata
        rows = lake.read_partition(name, "shapes", sha).num_rows
        assert meta["dagster/row_count"].value == rows, name
        assert meta["table_uri"].value == lake.table_uri(name)
        assert isinstance(meta["delta_version"].value, int)
        columns = [c.name for c in meta["dagster/column_schema"].value.columns]
        assert [c for c in columns if c not in PARTITION_COLUMNS] == OUTPUT_CONTRACTS[
            name
        ].schema.names
        assert meta["partition_key"].value == key
        assert meta["plan_signature"].value
        assert meta["committed_after_s"].value >= 0
        assert meta["build_run_id"].value == found["run_manifest"].metadata["build_run_id"].value
    assert found["cpg_nodes"].metadata["dagster/row_count"].value > 0
    kinds = found["cpg_nodes"].metadata["counts_by_kind"].value
    assert kinds.get("CLASS") == 1 and kinds.get("FILE") == 2
    assert "counts_by_kind" in found["cpg_edges"].metadata

    checks = result.get_asset_check_evaluations()
    assert len(checks) == len(defs.resolve_asset_graph().asset_check_keys)
    failed = {
        (c.asset_key.to_user_string(), c.check_name): c.description for c in checks if not c.passed
    }
    assert failed == {}


def test_a_subset_writes_only_its_outputs(
    tmp_path: Path, repo: GitRepo, instance: dg.DagsterInstance
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    result = materialize_partition(
        repo.path, "shapes", lake_root=lake.root, instance=instance, outputs=["cpg_nodes"]
    )
    assert result.success
    assert set(_materializations(result)) == {"cpg_nodes"}
    assert lake.table_names() == ["cpg_nodes"]
    assert {c.asset_key.to_user_string() for c in result.get_asset_check_evaluations()} == {
        "cpg_nodes"
    }


def test_a_commit_without_python_changes_is_linked_and_says_so(
    tmp_path: Path, repo: GitRepo, instance: dg.DagsterInstance
) -> None:
    lake = Lake(str(tmp_path / "lake"))
    first = repo.head()
    repo.commit({"README.md": "docs only\n"})
    subset = ["cpg_nodes", "run_manifest"]
    materialize_partition(repo.path, "shapes", first, lake.root, instance, outputs=subset)
    result = materialize_partition(repo.path, "shapes", "HEAD", lake.root, instance,
                                   outputs=subset)  # fmt: skip
    nodes = _materializations(result)["cpg_nodes"].metadata
    assert nodes["reused_from_commit"].value == first
    assert (
        nodes["dagster/row_count"].value
        == lake.read_partition("cpg_nodes", "shapes", repo.head()).num_rows
    )
    assert all(c.passed for c in result.get_asset_check_evaluations())


def test_the_job_builds_a_sensor_partition(
    tmp_path: Path, repo: GitRepo, instance: dg.DagsterInstance
) -> None:
    """The path a scheduled run takes: cpg_job, a partition key, the watched repository."""
    key = f"shapes@{repo.head()}"
    instance.add_dynamic_partitions("commits", [key])
    result = defs.resolve_job_def("cpg_job").execute_in_process(
        instance=instance,
        partition_key=key,
        resources={
            "lake": LakeResource(root=str(tmp_path / "lake")),
            "watched_repos": WatchedReposResource(
                repos={"shapes": WatchedRepo(path=str(repo.path))}
            ),
        },
    )
    assert result.success
    assert set(instance.get_materialized_partitions(dg.AssetKey("run_manifest"))) == {key}


def test_outputs_and_checks_are_reported_as_each_lands_and_checks_run_on_their_own(
    tmp_path: Path, repo: GitRepo, instance: dg.DagsterInstance
) -> None:
    """One step: each output's materialization and its checks are reported as its Delta
    commit is done, before the build ends (the manifest records when it ended). Selected
    alone, the checks check the partition as the lake holds it and build nothing."""
    lake = Lake(str(tmp_path / "lake"))
    result = materialize_partition(repo.path, "shapes", lake_root=lake.root, instance=instance)
    sha = repo.head()
    events = [e for e in result.all_events if e.step_key is not None]
    assert {e.step_key for e in events} == {"cpg"}
    finished = lake.read_partition("run_manifest", "shapes", sha).column("finished_at")[0]
    build_end = finished.as_py().timestamp()
    logged = {
        (r.dagster_event.event_type_value, r.dagster_event.asset_key.to_user_string()
         if r.dagster_event.asset_key else None, r.dagster_event.step_key): r.timestamp
        for r in instance.all_logs(result.run_id) if r.dagster_event is not None
    }  # fmt: skip
    nodes_reported = logged[("ASSET_MATERIALIZATION", "cpg_nodes", "cpg")]
    assert nodes_reported < build_end
    order: list[tuple[str, str]] = []
    for e in events:
        if e.event_type_value == "ASSET_MATERIALIZATION":
            order.append((e.event_type_value, e.asset_key.to_user_string()))  # type: ignore[union-attr]
        elif e.event_type_value == "ASSET_CHECK_EVALUATION":
            key = e.asset_check_evaluation_data.asset_key.to_user_string()
            order.append((e.event_type_value, key))
    assert len(order) == len(CPG_OUTPUTS) + len(CPG_CHECK_SPECS)
    for kind, name in order:
        if kind == "ASSET_CHECK_EVALUATION":  # after its own output's materialization
            assert order.index(("ASSET_MATERIALIZATION", name)) < order.index((kind, name))

    versions = {name: lake.table(name).version() for name in lake.table_names()}  # type: ignore[union-attr]
    checks_only = dg.define_asset_job(
        "checks_only",
        selection=dg.AssetSelection.checks(*(s.key for s in CPG_CHECK_SPECS)),
        partitions_def=COMMITS_PARTITIONS,
    )
    alone = (
        dg.Definitions(
            assets=[cpg_assets],
            jobs=[checks_only],
            resources={
                "lake": LakeResource(root=lake.root),
                "execution": ExecutionResource(),
                "watched_repos": WatchedReposResource(
                    repos={"shapes": WatchedRepo(path=str(repo.path))}
                ),
            },
        )
        .resolve_job_def("checks_only")
        .execute_in_process(tags={"dagster/partition": f"shapes@{sha}"}, instance=instance)
    )
    assert alone.success
    assert alone.get_asset_materialization_events() == []
    evaluations = alone.get_asset_check_evaluations()
    assert {(e.asset_key.to_user_string(), e.check_name) for e in evaluations} == {
        (s.asset_key.to_user_string(), s.name) for s in CPG_CHECK_SPECS
    }
    assert all(e.passed for e in evaluations)
    assert {name: lake.table(name).version() for name in lake.table_names()} == versions  # type: ignore[union-attr]


def test_a_step_that_fails_while_its_build_runs_ends_with_the_build(
    tmp_path: Path, repo: GitRepo, instance: dg.DagsterInstance, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A check that cannot run fails the step at the first output; the step still ends only
    once its build has (here: the manifest is written), so nothing is written behind a run
    that reports failure."""

    def cannot_read(self: CpgChecks, name: str) -> list[dg.AssetCheckResult]:
        raise RuntimeError(f"cannot read {name}")

    monkeypatch.setattr(CpgChecks, "output_results", cannot_read)
    lake = Lake(str(tmp_path / "lake"))
    result = materialize_partition(
        repo.path, "shapes", lake_root=lake.root, instance=instance, raise_on_error=False
    )
    assert not result.success
    assert "cannot read" in (failure_message(result) or "")
    assert not [t for t in threading.enumerate() if t.name == "cpg-build"]
    assert lake.read_partition("run_manifest", "shapes", repo.head()).num_rows == 1


def _committed(name: str) -> OutputCommitted:
    return OutputCommitted(OutputWrite(name, f"/lake/{name}", 0, 1, pa.schema([])), "r", "s", 1.0)


def test_outputs_are_handed_out_after_the_selected_outputs_they_depend_on() -> None:
    """Dagster wants a multi-asset's assets in topological order; a build commits them as
    they finish (a remote build committed cpg_nodes_quality before cpg_props)."""
    order = InDependencyOrder(CPG_OUTPUTS)
    names = lambda out: [c.write.name for c in out]  # noqa: E731
    assert names(order.add(_committed("cpg_nodes_quality"))) == []  # needs nodes and props
    assert names(order.add(_committed("cpg_nodes"))) == ["cpg_nodes"]
    assert names(order.add(_committed("extract_errors"))) == ["extract_errors"]
    assert names(order.add(_committed("cpg_props"))) == ["cpg_props", "cpg_nodes_quality"]
    assert order.seen == {"cpg_nodes_quality", "cpg_nodes", "extract_errors", "cpg_props"}
    # An upstream output that is not selected holds nothing back.
    alone = InDependencyOrder(("cpg_nodes_quality", "run_manifest"))
    assert names(alone.add(_committed("cpg_nodes_quality"))) == ["cpg_nodes_quality"]
