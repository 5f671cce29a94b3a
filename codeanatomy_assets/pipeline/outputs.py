"""Writing a table that is already in memory (the run manifest) to its Delta partition.

Output views do not come through here: their ``write_<name>`` nodes stream them into Delta
(``task_execution.execute_view_to_lake``).
"""

from __future__ import annotations

import pyarrow as pa

from codeanatomy_assets.pipeline.request import OutputWrite
from codeanatomy_assets.storage.lake import Lake


def write_output(
    name: str, table: pa.Table, lake: Lake, repo_id: str, commit_sha: str
) -> OutputWrite:
    """Replace the partition of output ``name`` with ``table``."""
    written = lake.write_partition(name, table, repo_id, commit_sha)
    return OutputWrite(
        name=name, table_uri=written.table_uri, version=written.version, rows=written.rows,
        schema=written.schema,
    )  # fmt: skip
