"""Output helpers: write one output table to its Delta partition and describe the write.

The per-output ``write_<name>`` nodes are synthesized (``task_module_builder``) around
``write_output``; this module holds what they share.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from codeanatomy_assets.pipeline.request import OutputWrite
from codeanatomy_assets.storage.lake import Lake

_KIND_COLUMNS = {"cpg_nodes": "node_kind", "cpg_edges": "edge_kind"}


def counts_by_kind(name: str, table: pa.Table) -> dict[str, int] | None:
    """Rows per node or edge kind, for the outputs that have kinds."""
    column = _KIND_COLUMNS.get(name)
    if column is None:
        return None
    counts = pc.value_counts(table[column]).to_pylist()
    return {c["values"]: int(c["counts"]) for c in sorted(counts, key=lambda c: c["values"])}


def write_output(
    name: str, table: pa.Table, lake: Lake, repo_id: str, commit_sha: str
) -> OutputWrite:
    """Replace the partition of output ``name`` with ``table``."""
    written = lake.write_partition(name, table, repo_id, commit_sha)
    return OutputWrite(
        name=name,
        table_uri=written.table_uri,
        version=written.version,
        rows=written.rows,
        schema=written.schema,
        counts_by_kind=counts_by_kind(name, table),
    )
