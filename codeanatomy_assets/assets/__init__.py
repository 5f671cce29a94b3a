"""Dagster assets: the CPG outputs of one commit, and a helper to materialize one locally."""

from codeanatomy_assets.assets.cpg import CPG_ASSET_KEYS, CPG_GROUP, cpg_assets

__all__ = ["CPG_ASSET_KEYS", "CPG_GROUP", "cpg_assets"]
