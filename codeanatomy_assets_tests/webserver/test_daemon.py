"""The unattended path under a real daemon: sensor on, runs launched, partitions built.

``dagster dev`` runs the webserver and the daemon over a temporary DAGSTER_HOME; the watched
repository comes from ``$CODEANATOMY_REPOS_FILE``. The sensor is switched on through GraphQL
(as the UI does); the daemon then ticks it, queues one run per commit, launches each in its
own process, and the runs write the Delta tables and record their checks.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets.pipeline.execution import PIPELINE_EVENTS_TABLE
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.webserver.graphql_client import graphql

pytest.importorskip(
    "codeanatomy_assets.pipeline.execution", reason="build_commit (pipeline) has not landed yet"
)
pytestmark = pytest.mark.slow

RUNS_TIMEOUT_S = 240.0
START_SENSOR = """
mutation {
  startSensor(sensorSelector: {repositoryLocationName: "codeanatomy_assets",
    repositoryName: "__repository__", sensorName: "new_commits_sensor"}) {
    __typename
    ... on Sensor { sensorState { status } }
  }
}
"""
RUNS = "{ runsOrError { ... on Runs { results { status tags { key value } } } } }"
CHECKS = """
{
  assetNodes {
    assetKey { path }
    partitionKeys
    assetChecksOrError { ... on AssetChecks { checks { name
      executionForLatestMaterialization { status } } } }
  }
}
"""


FAILURES = """
{ runsOrError { ... on Runs { results { status eventConnection { events {
  __typename ... on ExecutionStepFailureEvent { error { message cause { message } } } } } } } } }
"""


def _why(url: str, deployment: Any) -> str:
    """The failed steps' causes, else the end of the deployment's log."""
    causes = [
        (e["error"]["cause"] or e["error"])["message"]
        for run in graphql(url, FAILURES)["runsOrError"]["results"]
        for e in run["eventConnection"]["events"]
        if e.get("error")
    ]
    return "\n".join(causes) or deployment.log.read_text(errors="replace")[-3000:]


def _runs(url: str) -> list[dict[str, Any]]:
    return list(graphql(url, RUNS)["runsOrError"]["results"])


def test_sensor_runs_build_every_new_commit(dagster_dev: Any) -> None:
    url = dagster_dev.url
    started = graphql(url, START_SENSOR)["startSensor"]
    assert started["sensorState"]["status"] == "RUNNING", started
    deadline = time.monotonic() + RUNS_TIMEOUT_S
    runs = _runs(url)
    while time.monotonic() < deadline:
        runs = _runs(url)
        statuses = [r["status"] for r in runs]
        if "FAILURE" in statuses or statuses.count("SUCCESS") == len(dagster_dev.shas):
            break
        time.sleep(2)
    assert [r["status"] for r in runs] == ["SUCCESS"] * len(dagster_dev.shas), _why(
        url, dagster_dev
    )

    expected = {f"watched@{sha}" for sha in dagster_dev.shas}
    partitions = {
        tag["value"] for r in runs for tag in r["tags"] if tag["key"] == "dagster/partition"
    }
    assert partitions == expected
    nodes = graphql(url, CHECKS)["assetNodes"]
    assert {"/".join(n["assetKey"]["path"]) for n in nodes} == set(CPG_OUTPUTS)
    for node in nodes:
        assert set(node["partitionKeys"]) == expected
        for check in node["assetChecksOrError"]["checks"]:
            assert check["executionForLatestMaterialization"]["status"] == "SUCCEEDED", check
    # Every output, plus the run's diagnostics; the evidence cache is not an output table.
    tables = Lake(str(dagster_dev.lake)).table_names()
    assert tables == sorted([*CPG_OUTPUTS, PIPELINE_EVENTS_TABLE])
