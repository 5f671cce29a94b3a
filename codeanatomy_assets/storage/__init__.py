"""Delta Lake storage: one table per CPG output, partitioned by ``repo_id`` and ``commit``."""

from codeanatomy_assets.storage.lake import Lake, LakeError, TableWrite

__all__ = ["Lake", "LakeError", "TableWrite"]
