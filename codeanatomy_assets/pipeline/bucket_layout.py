"""Which buckets of an output sorted by id a build writes, and which it links from an earlier
partition (``storage.buckets`` says why).

The fingerprint of every bucket is computed from the rows that decide the output (for an
adjacency map, two columns of the edges the build has just written: the id naming the bucket
and the edge id; for the property map, the owner's id and a hash of each property row), and
compared with the footers of an earlier partition of the same repository (the nearest
ancestor that has one, else the newest). Unchanged buckets keep their files; the output's
query then reads only the source rows of the other buckets, so its sort and its encoding
shrink with the change, not with the repository.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
from datafusion import Expr, SessionContext, col
from datafusion.functions.spark import xxhash64

from codeanatomy_assets.cpg.nesting import BucketSource, NestSpec
from codeanatomy_assets.pipeline.run_context import current_run
from codeanatomy_assets.storage.buckets import (
    BUCKET_HEX_CHARS,
    BucketSpec,
    Fingerprints,
    source_fingerprints,
    unchanged,
)
from codeanatomy_assets.storage.lake import Lake, LakeError

log = logging.getLogger(__name__)

# The column a bucketed output's flat rows carry their identity in, until nesting drops it.
IDENTITY_COLUMN = "bucket_identity"


def identity(source: BucketSource) -> Expr:
    """A row's identity: the 64-bit xxHash of its identity columns (Spark's ``xxhash64``:
    about 0.06 CPU-s per million property rows, where an MD5 of the row's text took 0.5)."""
    return xxhash64(*(col(c) for c in source.identity))


@dataclass(frozen=True)
class BucketLayout:
    """How one output is written: ``writer`` splits its rows (sorted by ``key``) into bucket
    files, whose fingerprints the stream adds to ``fingerprints`` as it nests them (each row's
    identity from ``source``); ``keep`` are an earlier partition's files of the buckets left
    as they were; ``rewrite`` the buckets to compute (None: all of them)."""

    key: str
    source: BucketSource
    writer: BucketSpec
    fingerprints: Fingerprints
    keep: tuple[Path, ...] = ()
    rewrite: tuple[str, ...] | None = None
    scan_s: float = 0.0
    base: str | None = None  # the commit whose partition the kept files come from


def bucket_layout(
    nest: NestSpec, ctx: SessionContext, lake: Lake, name: str, repo_id: str, commit: str,
    schema: pa.Schema, *, link: bool = True,
) -> BucketLayout | None:  # fmt: skip
    """The layout of output ``name`` (``nest`` sorted by id, ``ctx`` holding its source
    table); None when it is not written in buckets (no bucket source, or not a local lake).
    Without ``link``, or when the earlier partition cannot be read, every bucket is written."""
    source = nest.buckets
    if source is None or not lake.is_local:
        return None
    fingerprints = Fingerprints()
    writer = BucketSpec(nest.key, fingerprints.get)
    run = current_run()
    prefer = run.attributes.get("bucket_bases", ()) if run is not None else ()
    try:
        earlier = lake.earlier_bucket_files(name, repo_id, commit, schema, prefer) if link else {}
    except (LakeError, OSError) as exc:  # files of its log gone missing: nothing to link
        log.warning("%s: no earlier bucket files linked: %s", name, exc)
        earlier = {}
    if not earlier:
        return BucketLayout(nest.key, source, writer, fingerprints)
    mark = time.perf_counter()
    scan = ctx.table(source.table).select(
        col(source.key).alias("k"), identity(source).alias(IDENTITY_COLUMN)
    )
    now = source_fingerprints((b.to_pyarrow() for b in scan.execute_stream()), "k", IDENTITY_COLUMN)
    keep = unchanged(earlier, now)
    rewrite = tuple(sorted(set(now) - set(keep)))
    base = next(iter(earlier.values())).path.parent.name.removeprefix("commit=")
    return BucketLayout(
        nest.key,
        source,
        writer,
        fingerprints,
        tuple(f.path for f in keep.values()),
        rewrite,
        time.perf_counter() - mark,
        base,
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
