"""``pipeline_events`` and ``run_manifest`` answer questions with ``codeanatomy query``:
which task was slow on which commit, what a run read, wrote, and how it ran."""

from __future__ import annotations

import json
from typing import Any

import pytest

from codeanatomy_assets.cli import main
from codeanatomy_assets.cpg.schemas import PIPELINE_EVENTS
from codeanatomy_assets.cpg.views import view_specs
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES


def _query(sql: str, lake_root: str, capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["query", sql, "--lake", lake_root, "--format", "json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_slowest_tasks_per_commit_and_the_manifest_by_sql(git_repo, lake_root, capsys) -> None:
    repo = git_repo()
    first = repo.commit(FILES)
    second = repo.commit({"pkg/extra.py": "import os\n"})
    for sha in (first, second):
        args = ["build", str(repo.path), "--commit", sha, "--lake", lake_root, "--mode", "serial"]
        assert main([*args, "--repo-id", "fixture", "--no-progress", "--cache"]) == 0
    capsys.readouterr()
    slow = _query(
        'SELECT "commit", task_name, executor, duration_s FROM pipeline_events '
        "WHERE event = 'task_finish' AND task_kind = 'view' "
        'ORDER BY "commit", duration_s DESC',
        lake_root,
        capsys,
    )
    plan = DriverFactory().plan()
    views = {t.name for t in plan.tasks if t.kind == "view"}
    ran = {}
    for sha in (first, second):
        rows = [r for r in slow if r["commit"] == sha]
        ran[sha] = {r["task_name"] for r in rows}
        assert all(r["executor"] == "local" and r["duration_s"] >= 0 for r in rows)
        durations = [r["duration_s"] for r in rows]
        assert durations == sorted(durations, reverse=True)
    assert ran[first] == views  # cold cache: every view ran
    counts = _query(
        "SELECT event, count(*) AS n FROM pipeline_events "
        f"WHERE \"commit\" = '{second}' GROUP BY event ORDER BY event",
        lake_root,
        capsys,
    )
    by_event = {r["event"]: r["n"] for r in counts}
    assert by_event["plan"] == by_event["graph_start"] == by_event["graph_finish"] == 1
    assert by_event["node_start"] == by_event["node_finish"] > len(plan.tasks)
    (manifest,) = _query(
        "SELECT run_id, status, execution_mode, plan_signature, file_count, outputs_json, "
        f"timings_json, inputs_json, config_json, package_versions_json FROM run_manifest "
        f"WHERE \"commit\" = '{second}'",
        lake_root,
        capsys,
    )
    assert manifest["status"] == "success" and manifest["execution_mode"] == "serial"
    assert manifest["plan_signature"] == plan.signature and manifest["file_count"] == 6
    config = json.loads(manifest["config_json"])
    # Second commit: a view either ran or was a cache hit (one added file leaves packages).
    hits = {name.removesuffix("_raw") for name in config["cache"]["hits"]}
    assert "package_ids" in hits and ran[second] == views - hits
    assert config["plan"]["tasks"] == {t.name: t.task_signature for t in plan.tasks}
    assert config["cache"]["counts"]["miss"] > 0 and config["use_cache"] is True
    timings = json.loads(manifest["timings_json"])
    assert {"resolve_s", "plan_s", "driver_s", "execute_s", "write_events_s"} <= set(
        timings["stages"]
    )
    assert timings["tasks"]["cpg_nodes"]["executor"] == "local"
    assert json.loads(manifest["inputs_json"])["commit"] == second
    outputs = json.loads(manifest["outputs_json"])
    events = _query(
        f"SELECT run_id, count(*) AS n FROM pipeline_events WHERE \"commit\" = '{second}' "
        "GROUP BY run_id",
        lake_root,
        capsys,
    )
    assert events == [{"run_id": manifest["run_id"], "n": sum(by_event.values())}]
    assert outputs["pipeline_events"]["rows"] == sum(by_event.values())
    assert outputs["cpg_nodes"]["version"] == 1  # the second write of the table
    versions = json.loads(manifest["package_versions_json"])
    assert {"apache-hamilton", "datafusion", "deltalake", "opentelemetry-sdk"} <= set(versions)
    columns = _query("SELECT * FROM pipeline_events LIMIT 1", lake_root, capsys)[0]
    assert list(columns) == ["repo_id", "commit", *PIPELINE_EVENTS.names]


def test_each_part_of_an_output_says_its_rows_and_the_peak_so_far(
    git_repo, lake_root, capsys
) -> None:
    """``view_part`` events: where a build's peak was reached is the first part whose
    ``peak_rss_mb`` is the largest."""
    repo = git_repo()
    sha = repo.commit(FILES)
    args = ["build", str(repo.path), "--commit", sha, "--lake", lake_root, "--mode", "serial"]
    assert main([*args, "--repo-id", "fixture", "--no-progress"]) == 0
    capsys.readouterr()
    parts = _query(
        "SELECT task_name, rows, duration_s, detail_json FROM pipeline_events "
        "WHERE event = 'view_part' ORDER BY seq",
        lake_root,
        capsys,
    )
    spec = next(s for s in view_specs("fixture") if s.name == "cpg_edges")
    assert spec.local is not None
    edges = [{**r, **json.loads(r["detail_json"])} for r in parts if r["task_name"] == "cpg_edges"]
    assert sorted(p["part"] for p in edges) == list(range(len(spec.parts)))
    assert {p["part"] for p in edges if p["file_local"]} == spec.local.indices
    (count,) = _query(
        f"SELECT count(*) AS n FROM cpg_edges WHERE \"commit\" = '{sha}'", lake_root, capsys
    )
    assert sum(p["rows"] for p in edges) == count["n"]  # a first build: every part computed
    assert all(p["duration_s"] >= 0 and p["peak_rss_mb"] > 0 for p in edges)
    nested = [
        {**r, **json.loads(r["detail_json"])} for r in parts if r["task_name"] == "cpg_edges_by_src"
    ]
    # One query, sorted one group of buckets at a time (``pipeline.bucket_layout``): each
    # group once, every edge once.
    assert {(p["part"], p["file_local"]) for p in nested} == {(0, False)}
    groups = [p["group"] for p in nested]
    assert len(set(groups)) == len(groups) > 1 and sum(p["rows"] for p in nested) == count["n"]
