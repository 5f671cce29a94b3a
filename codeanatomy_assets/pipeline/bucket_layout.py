"""Which buckets of an output sorted by id a build writes, and which it links from an earlier
partition (``storage.buckets`` says why).

The fingerprint of every bucket is computed from the rows that decide the output (for an
adjacency map, the edges: the id naming the bucket and the edge id, two columns of a table
the build has just written), and compared with the footers of the newest earlier partition
of the same repository. Unchanged buckets keep their files; the output's query then reads
only the source rows of the other buckets, so its sort and its encoding shrink with the
change, not with the repository.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from datafusion import SessionContext

from codeanatomy_assets.cpg.nesting import NestSpec
from codeanatomy_assets.normalize.ids import id_keys
from codeanatomy_assets.storage.buckets import (
    BUCKET_HEX_CHARS,
    BucketSpec,
    source_fingerprints,
    unchanged,
)
from codeanatomy_assets.storage.lake import Lake


@dataclass(frozen=True)
class BucketLayout:
    """How one output is written: ``writer`` splits its rows into bucket files; ``keep``
    are an earlier partition's files of the buckets left as they were; ``rewrite`` the
    buckets to compute (None: all of them)."""

    writer: BucketSpec
    keep: tuple[Path, ...] = ()
    rewrite: tuple[str, ...] | None = None
    scan_s: float = 0.0


def _keys(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    if isinstance(ids, pa.ChunkedArray):
        ids = ids.combine_chunks()
    keys = id_keys(ids)
    if keys is None:
        raise ValueError("a bucket identity must be a stable id (32 hex characters, no nulls)")
    return keys


def _nested_identities(into: str, identity: str) -> Callable[[pa.RecordBatch], np.ndarray]:
    def identities(batch: pa.RecordBatch) -> np.ndarray:
        items = batch.column(into).flatten()  # the list's structs, this slice's only
        fields = items.flatten()  # each field with the struct's offset applied
        return _keys(fields[items.type.get_field_index(identity)])

    return identities


def bucket_layout(
    nest: NestSpec, ctx: SessionContext, lake: Lake, name: str, repo_id: str, commit: str,
    schema: pa.Schema,
) -> BucketLayout | None:  # fmt: skip
    """The layout of output ``name`` (``nest`` sorted by id, ``ctx`` holding its source
    table); None when it is not written in buckets (no bucket source, or not a local lake)."""
    source = nest.buckets
    if source is None or not lake.is_local:
        return None
    writer = BucketSpec(nest.key, _nested_identities(nest.into, source.identity))
    earlier = lake.latest_bucket_files(name, repo_id, commit, schema)
    if not earlier:
        return BucketLayout(writer)
    mark = time.perf_counter()
    scan = ctx.sql(f'SELECT "{source.key}" AS k, "{source.identity}" AS i FROM {source.table}')
    now = source_fingerprints(
        (b.to_pyarrow() for b in scan.execute_stream()),
        BucketSpec("k", lambda batch: _keys(batch.column("i"))),
    )
    keep = unchanged(earlier, now)
    rewrite = tuple(sorted(set(now) - set(keep)))
    return BucketLayout(
        writer, tuple(f.path for f in keep.values()), rewrite, time.perf_counter() - mark
    )


def restrict_source(ctx: SessionContext, nest: NestSpec, rewrite: tuple[str, ...]) -> None:
    """Make the output's source table in ``ctx`` hold only the rows of ``rewrite``'s buckets."""
    source = nest.buckets
    assert source is not None
    listed = ", ".join(f"'{b}'" for b in rewrite) or "NULL"
    kept = ctx.sql(
        f'SELECT * FROM {source.table} WHERE substr("{source.key}", 1, {BUCKET_HEX_CHARS}) '
        f"IN ({listed})"
    )
    ctx.deregister_table(source.table)
    ctx.register_view(source.table, kept)
