"""Which buckets of an output sorted by id a build writes, and which it links from an earlier
partition (``storage.buckets`` says why).

The fingerprint of every bucket is computed from the rows that decide the output (for an
adjacency map, two columns of the edges the build has just written: the id naming the bucket
and the edge id; for the property map, the owner's id and a hash of each property row), and
compared with the footers of an earlier partition of the same repository (the nearest
ancestor that has one, else the newest). Unchanged buckets keep their files; the output's
query then reads only the source rows of the other buckets, so its sort and its encoding
shrink with the change, not with the repository.

The source's group files (its file-local rows, ``pipeline.local_layout``) carry the partial
fingerprints of each map they feed: their footers are summed instead of their rows scanned,
and only the source's other files are scanned (on a one-file commit of the stdlib, the one
group file the commit wrote and the rows of no group: 0.02-0.06 s a map, where a scan of the
9.4 M edges took 0.45-0.5 s). The rows of the buckets to rewrite are then read from the
files whose partials name one of them, and from the files of no group.

A map written whole (a first build) is sorted one group of buckets at a time
(``source_groups``) when its source's group files hold few rows outside their own group: each
group's rows are its own group files' rows of that group, plus the rows held in memory for
all groups, read once and cut by group: those of the source's files of no group and each
group file's rows of other groups (its footer's partials say how many). The groups in order
are the whole map in order. Sixteen sorts of a sixteenth each fit in memory where one sort of
everything spilled: the stdlib's 9.4 M edges by source, sorted alone, 2.9-3.1 s against
5.5 s. The edges by source and the properties by owner fall in their file's group (an edge's
id starts with its source's bucket); the edges by destination hold 0.3-0.7 % of each group
file's rows in other groups.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import DataFrame, Expr, SessionContext, col
from datafusion.functions.spark import xxhash64

from codeanatomy_assets.cpg.nesting import BucketSource, NestSpec
from codeanatomy_assets.cpg.schemas import OUTPUT_CONTRACTS
from codeanatomy_assets.pipeline.run_context import current_run
from codeanatomy_assets.storage.buckets import (
    BUCKET_HEX_CHARS,
    BucketSpec,
    Fingerprint,
    Fingerprints,
    bucket_codes,
    feed_id,
    read_partials,
    unchanged,
)
from codeanatomy_assets.storage.lake import Lake, LakeError

log = logging.getLogger(__name__)

# The column a bucketed output's flat rows carry their identity in, until nesting drops it.
IDENTITY_COLUMN = "bucket_identity"


# A map written whole is sorted one group of its buckets at a time: those that share the
# ids' first character (sixteen sorts of a sixteenth each), whatever the groups the source's
# file-local rows are filed in (``storage.buckets.LOCAL_GROUPS``: eight to a sort group).
_SORT_GROUP_CHARS = 1


def _sort_group_codes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return bucket_codes(ids) >> 4 * (BUCKET_HEX_CHARS - _SORT_GROUP_CHARS)


def _sort_group_name(code: int) -> str:
    return f"{code:0{_SORT_GROUP_CHARS}x}"


def identity(source: BucketSource) -> Expr:
    """A row's identity: the 64-bit xxHash of its identity columns (Spark's ``xxhash64``:
    about 0.06 CPU-s per million property rows, where an MD5 of the row's text took 0.5),
    each as the source's contract types it (an int32 hashes unlike an int64; every string
    type alike), so a part's rows hash as they will be read back."""
    schema = OUTPUT_CONTRACTS[source.table].schema
    return xxhash64(*(col(c).cast(schema.field(c).type) for c in source.identity))


def _identities(feeds: tuple[BucketSource, ...]) -> list[BucketSource]:
    """The first feed of each distinct identity (both adjacency maps hash the edge id)."""
    first: dict[tuple[str, ...], BucketSource] = {}
    for f in feeds:
        first.setdefault(f.identity, f)
    return list(first.values())


def feed_columns(feeds: tuple[BucketSource, ...]) -> dict[str, tuple[str, str]]:
    """For a source's file-local rows: each feed's id (``storage.buckets.feed_id``) with its
    bucket column and the column its identity is computed into (``feed_identities``)."""
    names = {f.identity: f"{IDENTITY_COLUMN}_{i}" for i, f in enumerate(_identities(feeds))}
    return {feed_id(f.key, f.identity): (f.key, names[f.identity]) for f in feeds}


def feed_identities(df: DataFrame, feeds: tuple[BucketSource, ...]) -> DataFrame:
    """``df`` with each feed's identity as a column (``feed_columns`` names them)."""
    for i, f in enumerate(_identities(feeds)):
        df = df.with_column(f"{IDENTITY_COLUMN}_{i}", identity(f))
    return df


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
    # The source's files that hold rows of the buckets to rewrite (None: read it whole), and
    # how many of its files were scanned for the fingerprints (the others' footers summed).
    read: tuple[Path, ...] | None = None
    scanned: int | None = None
    # When the map is sorted group by group (``source_groups``): the source's group files by
    # their own group of map buckets, its files of no group, and the group files that hold
    # rows of other groups too, with their own group.
    groups: Mapping[str, tuple[Path, ...]] | None = None
    plain: tuple[Path, ...] = ()
    strays: Mapping[Path, str] | None = None


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
    files = lake.partition_files(source.table, repo_id, commit)
    partials, others = read_partials(files, feed_id(source.key, source.identity))
    run = current_run()
    prefer = run.attributes.get("bucket_bases", ()) if run is not None else ()
    try:
        earlier = lake.earlier_bucket_files(name, repo_id, commit, schema, prefer) if link else {}
    except (LakeError, OSError) as exc:  # files of its log gone missing: nothing to link
        log.warning("%s: no earlier bucket files linked: %s", name, exc)
        earlier = {}
    if not earlier:
        grouped = _groups(partials, sum(pq.read_metadata(p).num_rows for p in others))
        if grouped is None:
            return BucketLayout(nest.key, source, writer, fingerprints)
        groups, strays = grouped
        return BucketLayout(
            nest.key, source, writer, fingerprints, groups=groups, plain=tuple(others),
            strays=strays,
        )  # fmt: skip
    mark = time.perf_counter()
    if partials:
        rest = _register_files(ctx, f"{source.table}__unsummed", source.table, others)
        total = _scan(ctx, rest, source) if rest is not None else Fingerprints()
        for found in partials.values():
            for bucket, fingerprint in found.items():
                total.merge(bucket, fingerprint)
        now = total.as_dict()
    else:
        now = _scan(ctx, source.table, source).as_dict()
    keep = unchanged(earlier, now)
    rewrite = tuple(sorted(set(now) - set(keep)))
    read = None
    if partials:
        wanted = set(rewrite)
        read = (*others, *(p for p, found in partials.items() if wanted & found.keys()))
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
        read,
        len(others) if partials else len(files),
    )


# A map written whole is sorted group by group when the rows held in memory meanwhile (the
# source's files of no group, each group file's rows of other groups) are at most this share
# of the group files' rows (the stdlib's edges by destination: 4 % of no group, 0.3-0.7 % of
# each group file in other groups).
_HELD_SHARE = 0.25


def _groups(
    partials: Mapping[Path, Mapping[str, Fingerprint]], plain_rows: int
) -> tuple[dict[str, tuple[Path, ...]], dict[Path, str]] | None:
    """The group files by their own group (the group of map buckets most of their rows fall
    in), and those that hold rows of other groups too, with their own; None when no file has
    partials, or when more than ``_HELD_SHARE`` of the rows would be held in memory
    (``plain_rows``: those of the source's other files)."""
    homes: dict[str, list[Path]] = {}
    strays: dict[Path, str] = {}
    rows = held = plain_rows
    for path, buckets in partials.items():
        by_group: dict[str, int] = {}
        for bucket, fingerprint in buckets.items():
            group = bucket[:_SORT_GROUP_CHARS]
            by_group[group] = by_group.get(group, 0) + fingerprint.rows
        if not by_group:  # a file of no rows
            continue
        home = max(sorted(by_group), key=by_group.__getitem__)
        homes.setdefault(home, []).append(path)
        total = sum(by_group.values())
        rows += total
        if total > by_group[home]:
            strays[path] = home
            held += total - by_group[home]
    if not partials or held > _HELD_SHARE * rows:
        return None
    return {g: tuple(paths) for g, paths in homes.items()}, strays


def _scan(ctx: SessionContext, table: str, source: BucketSource) -> Fingerprints:
    """The fingerprints of ``table``'s rows, each bucket named by ``source.key``."""
    scan = ctx.table(table).select(
        col(source.key).alias("k"), identity(source).alias(IDENTITY_COLUMN)
    )
    found = Fingerprints()
    for batch in scan.execute_stream():
        found.add(batch.to_pyarrow(), "k", IDENTITY_COLUMN)
    return found


def _register_files(ctx: SessionContext, name: str, like: str, paths: Sequence[Path]) -> str | None:
    """Register ``paths`` (files of table ``like``'s partition) as ``name``, with the
    columns and types ``like`` has in ``ctx``; None for no file."""
    union = files_union(ctx, name, ctx.table(like).schema(), paths)
    if union is None:
        return None
    ctx.register_view(name, union)
    return name


def files_union(
    ctx: SessionContext,
    name: str,
    schema: pa.Schema,
    paths: Sequence[Path],
    where: Mapping[Path, str] | None = None,
) -> DataFrame | None:
    """The rows of ``paths`` read with ``schema``, each file's filtered by its SQL condition
    in ``where`` if it has one; None for no file. Each file is registered as ``name__i``."""
    selects = []
    for i, path in enumerate(paths):
        ctx.register_parquet(f"{name}__{i}", str(path), schema=schema)
        condition = (where or {}).get(path)
        selects.append(
            f'SELECT * FROM "{name}__{i}"' + (f" WHERE {condition}" if condition else "")
        )
    return ctx.sql(" UNION ALL ".join(selects)) if selects else None


@dataclass(frozen=True)
class SourceGroup:
    """The source rows of one group of a map sorted group by group: those of its own group
    files ``files`` that fall in the group, and ``held``, the group's rows held in memory."""

    group: str
    files: tuple[Path, ...]
    held: pa.Table


def source_groups(
    ctx: SessionContext, nest: NestSpec, layout: BucketLayout
) -> Iterator[SourceGroup]:
    """The groups of a map sorted group by group (``layout.groups`` is set), in order, each
    with its source rows. The rows of the source's files of no group (what file-local parts
    do not produce) and the group files' rows of other groups are read once, from ``ctx``'s
    source table, and cut by group."""
    source = nest.buckets
    assert source is not None and layout.groups is not None and layout.strays is not None
    held = _held_rows(ctx, source, layout.plain, layout.strays)
    codes = _sort_group_codes(held.column(source.key))
    present = {_sort_group_name(int(c)) for c in set(codes.tolist())} | set(layout.groups)
    for group in sorted(present):
        rows = held.filter(pa.array(codes == int(group, 16)))
        yield SourceGroup(group, layout.groups.get(group, ()), rows)


def _held_rows(
    ctx: SessionContext, source: BucketSource, plain: Sequence[Path], strays: Mapping[Path, str]
) -> pa.Table:
    """The rows of ``plain`` and those of ``strays`` outside their own group, with the
    columns and types of ``ctx``'s source table."""
    outside = {
        path: f"substr(\"{source.key}\", 1, {_SORT_GROUP_CHARS}) <> '{home}'"
        for path, home in strays.items()
    }
    schema = ctx.table(source.table).schema()
    union = files_union(ctx, f"{source.table}__held", schema, [*plain, *strays], outside)
    return (union if union is not None else ctx.table(source.table).limit(0)).to_arrow_table()


def register_group(
    ctx: SessionContext, nest: NestSpec, like: pa.Schema, group: SourceGroup
) -> None:
    """Register the map's source table in ``ctx`` (a session of its own) as ``group``'s
    rows, with the columns and types ``like`` (the source in the build's session) has."""
    source = nest.buckets
    assert source is not None
    ctx.register_record_batches(
        f"{source.table}__held",
        [group.held.cast(like).to_batches() or [pa.RecordBatch.from_pylist([], schema=like)]],
    )
    union = ctx.table(f"{source.table}__held")
    mine = f"substr(\"{source.key}\", 1, {_SORT_GROUP_CHARS}) = '{group.group}'"
    # The files' rows of other groups are held ones.
    files = files_union(ctx, source.table, like, group.files, dict.fromkeys(group.files, mine))
    ctx.register_view(source.table, union.union(files) if files is not None else union)


def restrict_source(ctx: SessionContext, nest: NestSpec, layout: BucketLayout) -> None:
    """Make the output's source table in ``ctx`` hold only the rows of the buckets to
    rewrite, read from the files that can hold them (``BucketLayout.read``)."""
    source = nest.buckets
    assert source is not None and layout.rewrite is not None
    table = source.table
    if layout.read is not None:
        table = _register_files(ctx, f"{source.table}__read", source.table, layout.read) or ""
    listed = ", ".join(f"'{b}'" for b in layout.rewrite) or "NULL"
    kept = (
        ctx.sql(
            f'SELECT * FROM "{table}" WHERE substr("{source.key}", 1, {BUCKET_HEX_CHARS}) '
            f"IN ({listed})"
        )
        if table
        else ctx.table(source.table).limit(0)
    )
    ctx.deregister_table(source.table)
    ctx.register_view(source.table, kept)
