"""Dagster assets: the CPG outputs of one commit, and a helper to materialize one locally."""

from codeanatomy_assets.assets.cpg import CPG_ASSET_KEYS, CPG_GROUP, cpg_assets
from codeanatomy_assets.assets.local_run import (
    default_repo_id,
    failure_message,
    materialize_partition,
)

__all__ = [
    "CPG_ASSET_KEYS",
    "CPG_GROUP",
    "cpg_assets",
    "default_repo_id",
    "failure_message",
    "materialize_partition",
]
