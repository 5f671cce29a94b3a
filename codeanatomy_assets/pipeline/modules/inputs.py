"""Input nodes: turn the run's plain inputs into the typed handles other nodes use.

Flow: lake_root + storage_options -> lake; workers + max_file_bytes + file_timeout_s
-> extract_options.
"""

from __future__ import annotations

from codeanatomy_assets.extract.runner import ExtractOptions
from codeanatomy_assets.storage.lake import Lake


def lake(lake_root: str, storage_options: dict[str, str]) -> Lake:
    """Where outputs are written."""
    return Lake(lake_root, storage_options)


def extract_options(
    workers: int, max_file_bytes: int, file_timeout_s: float | None
) -> ExtractOptions:
    """How extraction runs: worker processes and the per-file size and time limits."""
    return ExtractOptions(
        workers=workers, max_file_bytes=max_file_bytes, file_timeout_s=file_timeout_s
    )
