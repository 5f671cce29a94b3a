"""Parquet files of one Delta partition, written by a bounded streaming writer.

Why not ``write_deltalake`` with a stream: delta-rs 1.6 pulls the stream as fast as it can
and queues what its Parquet writer has not encoded yet, so a stream that computes faster than
it encodes is held whole. Rewriting the standard library's 9.4 M edges that way peaked at
3.4 GB; with this writer, 0.4 GB in the same time. The files are written here with pyarrow
(a row group at a time, a new file every ``_FILE_BYTES`` of Arrow data) into the partition's
directory, and ``storage.lake`` commits them with one Delta transaction of add actions. Until
that commit no reader sees them: a crash leaves unreferenced files and the previous version.

Each add action carries the statistics Delta readers prune with: row count, and per column of
a primitive type its null count, minimum and maximum (from the Parquet footer). The adjacency
outputs are sorted by node id, so a reader that skips files by these statistics opens only
the file that can hold an id it looks up.

A file written with a counted column (the kind of a node or an edge) names in its footer how
many of its rows hold each value (``COUNTS_KEY``), so that what a partition holds per kind is
the sum of its files' footers, read for their add actions anyway, linked files included; a
commit that rewrites one group of files no longer scans the partition's 9.4 M edges for it.

``link_partition_files`` gives a partition the files of another one, without rewriting them,
for a commit whose graph is an earlier commit's (``pipeline.reuse``), or for the buckets of an
output sorted by id that a commit left as they were (``storage.buckets``).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

from codeanatomy_assets.storage.buckets import (
    FOOTER_KEY,
    LOCAL_FOOTER_KEY,
    BucketSpec,
    LocalBuckets,
    group_by_bucket,
    local_footer,
    split_by_bucket,
)

# Arrow bytes per file (about 100 MB of ZSTD Parquet for the edges); row groups of 128 Ki
# rows keep the writer's buffers small and give readers row-group statistics to skip with.
_FILE_BYTES = 512 * 1024 * 1024
_ROW_GROUP_ROWS = 128 * 1024


@dataclass(frozen=True, slots=True)
class ParquetSettings:
    """How output files are encoded (``storage.lake`` says why these values)."""

    compression: str
    compression_level: int | None
    no_dictionary: frozenset[str]


# Footer key of a file's rows per value of its counted column: ``{"column": ..., "counts":
# {value: rows}}``; absent where the column holds a null (JSON has no null key).
COUNTS_KEY = b"codeanatomy.value_counts"


@dataclass(frozen=True, slots=True)
class FileCounts:
    """Rows per value of ``column`` in one file, as its footer says."""

    column: str
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class WrittenFiles:
    """Files written for one partition, as add actions, and the rows in them; ``counts``,
    one per action, what its footer says of its counted column (None: nothing)."""

    actions: list[AddAction]
    rows: int
    counts: tuple[FileCounts | None, ...] = ()

    def __add__(self, other: WrittenFiles) -> WrittenFiles:
        return WrittenFiles(
            [*self.actions, *other.actions], self.rows + other.rows, self.counts + other.counts
        )

    def value_counts(self, column: str) -> dict[str, int] | None:
        """Rows per value of ``column`` over every file; None unless each footer counts it."""
        total: Counter[str] = Counter()
        for counted in self.counts:
            if counted is None or counted.column != column:
                return None
            total.update(counted.counts)
        return dict(total) if len(self.counts) == len(self.actions) else None


class _Counting:
    """Rows per value of one column in the batches of one file, for its footer."""

    def __init__(self, column: str) -> None:
        self.column = column
        self.counts: Counter[str] = Counter()
        self.complete = True

    def add(self, batch: pa.RecordBatch | pa.Table) -> None:
        if not self.complete:
            return
        column = batch.column(self.column)
        if column.null_count:
            self.complete = False
            return
        for entry in pc.value_counts(column).to_pylist():
            self.counts[entry["values"]] += entry["counts"]

    def footer(self) -> dict[bytes, str]:
        if not self.complete:
            return {}
        return {COUNTS_KEY: json.dumps({"column": self.column, "counts": dict(self.counts)})}


def _footer_counts(metadata: pq.FileMetaData) -> FileCounts | None:
    raw = (metadata.metadata or {}).get(COUNTS_KEY)
    if raw is None:
        return None
    try:
        decoded = json.loads(raw)
        return FileCounts(
            str(decoded["column"]), {str(k): int(v) for k, v in decoded["counts"].items()}
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None  # not ours to trust: the partition is counted by a scan instead


def _stat_value(value: Any) -> Any:
    """A footer statistic as Delta's JSON can hold it (None: leave the column out)."""
    if isinstance(value, bytes):
        return None
    if isinstance(value, float) and not math.isfinite(value):  # NaN has no order; JSON has no inf
        return None
    return value


def file_stats(metadata: pq.FileMetaData, schema: pa.Schema) -> str:
    """Delta statistics JSON of one Parquet file, from its footer."""
    nulls: dict[str, int] = {}
    mins: dict[str, Any] = {}
    maxs: dict[str, Any] = {}
    for j in range(metadata.num_columns):
        path = metadata.schema.column(j).path
        if "." in path or path not in schema.names:
            continue  # a nested column: Delta keeps no statistics for list elements
        field_type = schema.field(path).type
        primitive = (
            pa.types.is_string(field_type)
            or pa.types.is_integer(field_type)
            or (pa.types.is_floating(field_type))
        )
        count, low, high, complete = 0, None, None, True
        for i in range(metadata.num_row_groups):
            stats = metadata.row_group(i).column(j).statistics
            if stats is None:
                complete = False
                continue
            count += stats.null_count or 0
            if not primitive or not stats.has_min_max:
                if metadata.row_group(i).column(j).num_values > (stats.null_count or 0):
                    complete = False
                continue
            lo, hi = _stat_value(stats.min), _stat_value(stats.max)
            if lo is None or hi is None:
                complete = False
                continue
            low = lo if low is None or lo < low else low
            high = hi if high is None or hi > high else high
        nulls[path] = count
        if primitive and complete and low is not None:
            mins[path], maxs[path] = low, high
    return json.dumps(
        {"numRecords": metadata.num_rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}
    )


def _partition_dir(table_dir: Path, partition: Sequence[tuple[str, str]]) -> tuple[Path, str]:
    relative_dir = "/".join(f"{k}={v}" for k, v in partition)
    directory = table_dir / relative_dir if relative_dir else table_dir
    directory.mkdir(parents=True, exist_ok=True)
    return directory, relative_dir


def _parquet_writer(path: Path, schema: pa.Schema, settings: ParquetSettings) -> pq.ParquetWriter:
    """A Parquet file of ``schema`` encoded as ``settings`` say (dictionaries where they pay)."""
    return pq.ParquetWriter(
        path,
        schema,
        compression=settings.compression,
        compression_level=settings.compression_level,
        use_dictionary=[f.name for f in schema if f.name not in settings.no_dictionary],
    )


def _add_action(
    directory: Path,
    relative_dir: str,
    name: str,
    partition: Sequence[tuple[str, str]],
    schema: pa.Schema,
) -> tuple[AddAction, FileCounts | None]:
    """The add action of a finished file, its statistics read from its footer, and the
    footer's counts."""
    local = directory / name
    metadata = pq.read_metadata(local)
    action = AddAction(
        path=f"{relative_dir}/{name}" if relative_dir else name,
        size=os.path.getsize(local),
        partition_values=dict(partition),
        modification_time=int(time.time() * 1000),
        data_change=True,
        stats=file_stats(metadata, schema),
    )
    return action, _footer_counts(metadata)


def write_partition_files(
    table_dir: Path,
    partition: Sequence[tuple[str, str]],
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    settings: ParquetSettings,
    buckets: BucketSpec | LocalBuckets | None = None,
    counted: str | None = None,
) -> WrittenFiles:
    """Stream ``batches`` (of ``schema``, without the partition columns) into new Parquet
    files under the partition's directory (the table's, for no partition); on failure, remove
    what was written and raise. With ``buckets``, each bucket gets its own file: rows come
    sorted by bucket and the footer names the bucket and its fingerprint (``BucketSpec``),
    or they come in any order and it names the bucket and a signature (``LocalBuckets``).
    With ``counted``, each footer also says how many rows hold each value of that column."""
    if isinstance(buckets, LocalBuckets):
        return _write_local_buckets(
            table_dir, partition, schema, batches, settings, buckets, counted
        )
    directory, relative_dir = _partition_dir(table_dir, partition)
    stem = uuid.uuid4().hex
    written: list[str] = []
    actions: list[AddAction] = []
    counts: list[FileCounts | None] = []
    rows = 0
    writer: pq.ParquetWriter | None = None
    counting: _Counting | None = None
    in_file = 0
    bucket: str | None = None

    def close() -> None:
        nonlocal writer
        if writer is None:
            return
        if bucket is not None and buckets is not None:
            fingerprint = buckets.fingerprint(bucket)
            writer.add_key_value_metadata({FOOTER_KEY: fingerprint.to_json(bucket)})
        if counting is not None and (footer := counting.footer()):
            writer.add_key_value_metadata(footer)
        writer.close()
        action, counted_rows = _add_action(directory, relative_dir, written[-1], partition, schema)
        actions.append(action)
        counts.append(counted_rows)
        writer = None

    pieces: Iterable[tuple[str | None, pa.RecordBatch]] = (
        split_by_bucket(batches, buckets.key)
        if buckets is not None
        else ((None, batch) for batch in batches)
    )
    try:
        for piece_bucket, batch in pieces:
            if not batch.num_rows:
                continue
            if piece_bucket != bucket:
                close()
                bucket = piece_bucket
            if writer is None:
                written.append(f"part-{len(written):05d}-{stem}.{settings.compression}.parquet")
                writer = _parquet_writer(directory / written[-1], schema, settings)
                counting = _Counting(counted) if counted is not None else None
                in_file = 0
            writer.write_batch(batch, row_group_size=_ROW_GROUP_ROWS)
            if counting is not None:
                counting.add(batch)
            rows += batch.num_rows
            in_file += batch.nbytes
            if in_file >= _FILE_BYTES and bucket is None:  # a bucket is one file, whatever its size
                close()
        close()
    except BaseException:
        if writer is not None:
            writer.close()
        for name in written:
            (directory / name).unlink(missing_ok=True)
        raise
    return WrittenFiles(actions, rows, tuple(counts))


def _write_local_buckets(
    table_dir: Path,
    partition: Sequence[tuple[str, str]],
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    settings: ParquetSettings,
    buckets: LocalBuckets,
    counted: str | None = None,
) -> WrittenFiles:
    """Rows in any bucket order, one file per group of buckets, all open until the stream
    ends: ``storage.buckets.group_by_bucket`` hands each group its rows a window at a time,
    and each share is a row group, encoded on one of ``_WRITE_LANES`` threads (``_Lanes``)."""
    directory, relative_dir = _partition_dir(table_dir, partition)
    stem = uuid.uuid4().hex
    writers: dict[str, tuple[str, pq.ParquetWriter]] = {}
    counting: dict[str, _Counting] = {}
    actions: list[AddAction] = []
    counts: list[FileCounts | None] = []
    rows = 0
    try:
        with _Lanes(_WRITE_LANES) as lanes:
            for group, table in group_by_bucket(batches, buckets.key, buckets.allowed):
                if group not in writers:
                    name = f"part-{group}-{stem}.{settings.compression}.parquet"
                    writers[group] = name, _parquet_writer(directory / name, schema, settings)
                    if counted is not None:
                        counting[group] = _Counting(counted)
                lanes.submit(int(group, 16), _row_group_writer(writers[group][1], table))
                if counted is not None:
                    counting[group].add(table)
                rows += table.num_rows
        for group, (name, writer) in sorted(writers.items()):
            partials = buckets.partials(group) if buckets.partials is not None else None
            footer = local_footer(group, buckets.signature, partials)
            writer.add_key_value_metadata(
                {LOCAL_FOOTER_KEY: footer, **(counting[group].footer() if counted else {})}
            )
            writer.close()
            action, counted_rows = _add_action(directory, relative_dir, name, partition, schema)
            actions.append(action)
            counts.append(counted_rows)
    except BaseException:
        for name, writer in writers.values():
            writer.close()
            (directory / name).unlink(missing_ok=True)
        raise
    return WrittenFiles(actions, rows, tuple(counts))


# Threads that encode the group files' row groups. ZSTD and the string encodings are most of
# a carried-over row's cost (``pipeline.local_layout``: 2.45 M edge rows read and filtered in
# 0.25 s, written in 1.07 s on one thread), and pyarrow lets the GIL go while it encodes.
_WRITE_LANES = 2
# Row groups handed to a lane and not yet written, at most (each about 1.5 MB of Arrow).
_LANE_DEPTH = 2


def _row_group_writer(writer: pq.ParquetWriter, table: pa.Table) -> Callable[[], None]:
    return lambda: writer.write_table(table, row_group_size=table.num_rows)


class _Lanes:
    """Work on ``count`` threads, each doing its tasks in the order given: a file's row
    groups all go to one lane (``submit``'s ``key``), so they are written in order, and two
    files encode at once. At most ``_LANE_DEPTH`` tasks wait per lane; a task's error is
    raised by the next ``submit`` or at the end of the ``with`` block."""

    def __init__(self, count: int) -> None:
        self._lanes = [ThreadPoolExecutor(1, "parquet-lane") for _ in range(count)]
        self._pending: list[deque[Future[None]]] = [deque() for _ in range(count)]

    def submit(self, key: int, task: Callable[[], None]) -> None:
        lane = key % len(self._lanes)
        pending = self._pending[lane]
        while len(pending) >= _LANE_DEPTH:
            pending.popleft().result()
        pending.append(self._lanes[lane].submit(task))

    def __enter__(self) -> _Lanes:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            for pending in self._pending:
                while pending:
                    future = pending.popleft()
                    if exc[0] is None:
                        future.result()
                    else:  # already failing: let the tasks finish before the files close
                        future.exception()
        finally:
            for lane in self._lanes:
                lane.shutdown(wait=True)


def link_partition_files(
    table_dir: Path,
    partition: Sequence[tuple[str, str]],
    schema: pa.Schema,
    sources: Sequence[Path],
) -> WrittenFiles:
    """Put existing Parquet files of the table (another partition's) into ``partition``'s
    directory under new names, as add actions for it; on failure, remove what was put there.

    A hard link where the filesystem allows one, else a copy: either way the new partition
    owns its own paths, so the source partition can be replaced or vacuumed without touching
    it (Delta keys files by path; two partitions must never share one). Partition values live
    in the add actions, not in the files, so the bytes need no change.
    """
    directory, relative_dir = _partition_dir(table_dir, partition)
    stem = uuid.uuid4().hex
    made: list[Path] = []
    actions: list[AddAction] = []
    counts: list[FileCounts | None] = []
    try:
        for i, source in enumerate(sources):
            name = f"part-{i:05d}-{stem}.parquet"
            target = directory / name
            link_or_copy(source, target)
            made.append(target)
            action, counted = _add_action(directory, relative_dir, name, partition, schema)
            actions.append(action)
            counts.append(counted)
    except BaseException:
        for target in made:
            target.unlink(missing_ok=True)
        raise
    rows = sum(json.loads(a.stats)["numRecords"] for a in actions if a.stats)
    return WrittenFiles(actions, rows, tuple(counts))


def link_or_copy(source: Path, target: Path) -> None:
    """``target`` as a hard link to ``source``, or a copy where the filesystem allows no link
    (another device); a missing ``source`` raises the link's error."""
    try:
        os.link(source, target)
    except OSError:
        if not source.is_file():
            raise
        shutil.copyfile(source, target)


def discard_files(table_dir: Path, files: WrittenFiles) -> None:
    """Remove files written or linked for a commit that will not happen."""
    for action in files.actions:
        (table_dir / action.path).unlink(missing_ok=True)
