"""The code location as the webserver serves it: assets, partitions and checks over GraphQL."""

from __future__ import annotations

from typing import Any

import pytest

from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets_tests.webserver.graphql_client import graphql

pytestmark = pytest.mark.slow

QUERY = """
{
  assetNodes {
    assetKey { path }
    groupName
    description
    isPartitioned
    partitionKeys
    partitionDefinition { name }
    assetChecksOrError { ... on AssetChecks { checks { name } } }
  }
  workspaceOrError {
    ... on Workspace { locationEntries { name loadStatus } }
  }
}
"""


def test_assets_partitions_and_checks_are_served(webserver: Any) -> None:
    data = graphql(webserver.url, QUERY)
    locations = data["workspaceOrError"]["locationEntries"]
    assert [(e["name"], e["loadStatus"]) for e in locations] == [("codeanatomy_assets", "LOADED")]
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == set(CPG_OUTPUTS)
    partition_key = f"demo@{webserver.repo_sha}"
    for name, node in nodes.items():
        assert node["groupName"] == "cpg"
        assert node["isPartitioned"]
        assert node["partitionDefinition"]["name"] == "commits"
        assert node["partitionKeys"] == [partition_key]
        checks = {c["name"] for c in node["assetChecksOrError"]["checks"]}
        assert "schema_contract" in checks, name
    edge_checks = {c["name"] for c in nodes["cpg_edges"]["assetChecksOrError"]["checks"]}
    assert edge_checks == {
        "schema_contract",
        "non_empty",
        "edge_ids_unique",
        "edge_endpoints_exist",
    }


STATUS_QUERY = """
{
  assetNodes {
    assetKey { path }
    assetPartitionStatuses { ... on DefaultPartitionStatuses { materializedPartitions } }
    assetChecksOrError {
      ... on AssetChecks {
        checks { name executionForLatestMaterialization { status partition } }
      }
    }
  }
}
"""


def test_the_built_partition_and_its_passed_checks_are_served(webserver: Any) -> None:
    if not webserver.materialized:
        pytest.skip("build_commit (pipeline) has not landed yet: nothing was materialized")
    key = f"demo@{webserver.repo_sha}"
    for node in graphql(webserver.url, STATUS_QUERY)["assetNodes"]:
        name = "/".join(node["assetKey"]["path"])
        assert node["assetPartitionStatuses"]["materializedPartitions"] == [key], name
        for check in node["assetChecksOrError"]["checks"]:
            execution = check["executionForLatestMaterialization"]
            assert execution == {"status": "SUCCEEDED", "partition": key}, (name, check["name"])
