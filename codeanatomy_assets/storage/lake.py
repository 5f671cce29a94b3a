"""The lake: where each output's Delta table lives, and partition-exact writes and reads.

A write replaces exactly one ``(repo_id, commit)`` partition with one Delta transaction
(an overwrite of that partition). In a local lake our own streaming writer makes the Parquet
files and the transaction adds them (``storage.partition_files`` says why); on an object store
delta-rs writes them (``mode="overwrite"`` with a partition predicate). Delta's log makes it
atomic: a writer killed half-way leaves uncommitted data files that no reader sees, and the
previous version stays the current one. Writers of different partitions may race; delta-rs
detects the conflict and we retry, because their partitions are disjoint and the retry cannot
lose rows.

Reads go through DataFusion's native Delta provider, never ``DeltaTable.to_pyarrow_*``: with
deltalake 1.6 that path (a Python filesystem over Rust) aborts the interpreter at exit now and
then ("terminate called without an active exception", delta-io/delta-rs#2184).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import unquote, urlparse

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    WriterProperties,
    write_deltalake,
)
from deltalake import Schema as DeltaSchema
from deltalake.exceptions import CommitFailedError, DeltaError, TableNotFoundError
from deltalake.transaction import RemoveAction, create_table_with_add_actions

from codeanatomy_assets.storage.arrow_types import plain_strings
from codeanatomy_assets.storage.buckets import (
    BucketFile,
    BucketSpec,
    LocalBuckets,
    read_bucket_files,
    read_local_files,
)
from codeanatomy_assets.storage.partition_files import (
    ParquetSettings,
    WrittenFiles,
    discard_files,
    link_partition_files,
    write_partition_files,
)

PARTITION_COLUMNS: tuple[str, str] = ("repo_id", "commit")
REPO_ID_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SHA_PATTERN = re.compile(r"^[0-9a-f]{40}$")
# Parquet settings of every output. Ids are 32 random hex characters: a dictionary never
# pays for them, and building one until it overflows was half the write time; ZSTD level 1
# codes hex at about 4 bits a character. On the stdlib's 9.4 M edges: 7.4 s and 755 MB with
# the defaults (Snappy, dictionaries everywhere), 5.9 s and 410 MB with these.
_UNIQUE_COLUMNS = ("node_id", "edge_id", "src_node_id", "dst_node_id", "entity_id")
WRITER_PROPERTIES = WriterProperties(
    compression="ZSTD",
    compression_level=1,
    column_properties={c: ColumnProperties(dictionary_enabled=False) for c in _UNIQUE_COLUMNS},
)
PARQUET_SETTINGS = ParquetSettings("zstd", 1, frozenset(_UNIQUE_COLUMNS))
_COMMIT_RETRIES = 8
# A checkpoint every 10 commits, not Delta's default 100: every build commits once to each
# output and cache table and opens them about 130 times, each open replaying the JSON
# commits since the last checkpoint (a build's cost grew with the commits built before it).
TABLE_CONFIGURATION = {"delta.checkpointInterval": "10"}
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_T = TypeVar("_T")
# Commit metadata key of a write's id, and how far back in the log a write looks for its own
# commit (concurrent writers of one table: one per partition being built at the same time).
_WRITE_ID_KEY = "codeanatomy.write_id"
_HISTORY_SEARCH = 64


class LakeError(ValueError):
    """The lake cannot be used: unwritable root, malformed partition values..."""


def default_repo_id(repo_path: str | os.PathLike[str]) -> str:
    """A valid repo_id from the repository directory's name (``My Repo`` -> ``my-repo``)."""
    name = Path(repo_path).resolve().name.lower()
    slug = re.sub(r"[^a-z0-9_.-]+", "-", name).lstrip("_.-")[:64].rstrip("-") or "repo"
    return slug if REPO_ID_PATTERN.match(slug) else "repo"


@dataclass(frozen=True, slots=True)
class TableWrite:
    """What one partition write did: table URI, the Delta version it created, rows written;
    ``value_counts``: the partition's rows per value of the column it was asked to count,
    when its files' footers say (``storage.partition_files``), else None."""

    name: str
    table_uri: str
    version: int
    rows: int
    schema: pa.Schema
    value_counts: Mapping[str, int] | None = None


def check_partition(repo_id: str, commit: str) -> None:
    """Refuse values that are not safe in a path or a SQL predicate, naming the key."""
    if not REPO_ID_PATTERN.match(repo_id):
        raise LakeError(
            f"repo_id {repo_id!r} is invalid: allowed are 1-64 characters of a-z, 0-9, '_', '.',"
            " '-', starting with a letter or digit"
        )
    if not SHA_PATTERN.match(commit):
        raise LakeError(f"commit {commit!r} is invalid: allowed is a full 40-hex lowercase sha")


@dataclass(frozen=True)
class Lake:
    """A lake root (local directory or object-store URI) plus deltalake storage options."""

    root: str
    storage_options: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_local(self) -> bool:
        scheme = urlparse(self.root).scheme
        return scheme in ("", "file") or len(scheme) == 1  # len 1: a Windows drive letter

    def table_uri(self, name: str) -> str:
        if self.is_local:
            return str(Path(self.root.removeprefix("file://")).absolute() / name)
        return f"{self.root.rstrip('/')}/{name}"

    def ensure_writable(self) -> None:
        """Fail before any work when a local root cannot be created or written, or cannot be
        addressed: deltalake 1.6 reads a local path as a URL and decodes ``%XX`` (even in a
        ``file://`` URI, where ``%2520`` comes out a space), so under a root named ``a%20b``
        the first table written was then looked for under ``a b`` and the build failed."""
        if not self.is_local:
            return
        root = Path(self.root.removeprefix("file://"))
        if _PERCENT_ESCAPE.search(str(root.absolute())):
            raise LakeError(
                f"lake root {str(root)!r} is not usable: deltalake decodes '%' followed by two "
                "hex digits in local paths; allowed is a path without such a sequence"
            )
        try:
            root.mkdir(parents=True, exist_ok=True)
            probe = root / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise LakeError(f"lake root {str(root)!r} is not writable: {exc.strerror}") from exc

    def _options(self) -> dict[str, str] | None:
        return dict(self.storage_options) or None

    def table(self, name: str) -> DeltaTable | None:
        """The Delta table of an output, or None when nothing was written yet."""
        try:
            return DeltaTable(self.table_uri(name), storage_options=self._options())
        except TableNotFoundError:
            return None

    def table_names(self) -> list[str]:
        """Names of the Delta tables under a local root (object stores: not listed)."""
        if not self.is_local:
            return []
        root = Path(self.root.removeprefix("file://"))
        if not root.is_dir():
            return []
        return sorted(p.name for p in root.iterdir() if (p / "_delta_log").is_dir())

    def write_partition(self, name: str, table: pa.Table, repo_id: str, commit: str) -> TableWrite:
        """Replace the ``(repo_id, commit)`` partition of table ``name`` with ``table``'s rows."""
        return self.write_partition_stream(name, table.schema, table.to_batches, repo_id, commit)

    def write_partition_stream(
        self,
        name: str,
        schema: pa.Schema,
        batches: Callable[[], Iterable[pa.RecordBatch]],
        repo_id: str,
        commit: str,
        buckets: BucketSpec | LocalBuckets | None = None,
        keep: Sequence[Path] = (),
        plain: Callable[[], Iterable[pa.RecordBatch]] | None = None,
        counted: str | None = None,
    ) -> TableWrite:
        """Replace a partition with rows streamed from ``batches()``, in one transaction.

        Rows are never all in memory at once. ``batches`` is a factory, not an iterator: when
        a concurrent writer wins the commit race on an object store, the write is retried from
        a fresh stream (locally, the files already written are committed again).

        Local lakes only: with ``buckets`` each bucket of the rows is its own file, and the
        partition also gets ``keep``, files of an earlier partition of this table holding the
        buckets the stream leaves out (``storage.buckets``); ``plain()`` streams more rows of
        the partition, written as files of no bucket. With ``counted``, a local write also
        returns the partition's rows per value of that column, from its files' footers.
        """
        check_partition(repo_id, commit)
        uri = self.table_uri(name)
        out_schema = _partition_schema(schema)
        # Tags our commit, so that the version reported is ours even if another writer of the
        # table (another partition) committed right after us.
        tag = _write_tag()
        counts = None
        if self.is_local:
            files = self._write_files_then_commit(
                name, schema, batches, repo_id, commit, tag, buckets, keep, plain, counted
            )
            rows = files.rows
            counts = files.value_counts(counted) if counted is not None else None
        else:
            if keep or buckets is not None or plain is not None:
                raise LakeError(f"{uri}: only a local lake writes bucket files")
            rows = self._write_with_delta_rs(name, out_schema, batches, repo_id, commit, tag)
        return TableWrite(name, uri, self._version_of(name, tag), rows, out_schema, counts)

    def _version_of(self, name: str, tag: CommitProperties) -> int:
        """The version of the commit tagged ``tag`` (the newest, if it is out of reach)."""
        table = self.table(name)
        assert table is not None
        wanted = (tag.custom_metadata or {})[_WRITE_ID_KEY]
        for entry in table.history(limit=_HISTORY_SEARCH):
            if entry.get(_WRITE_ID_KEY) == wanted:
                return int(entry["version"])
        return int(table.version())

    def append_stream(self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> int:
        """Append the rows of ``batches`` to the unpartitioned table ``name`` (created if need
        be), in one transaction and bounded memory; returns the rows appended."""
        return self._write_unpartitioned(name, schema, batches, "append")

    def replace_stream(
        self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> int:
        """Replace every row of the unpartitioned table ``name`` with ``batches``' rows, in one
        transaction; the old files stay until a vacuum. Returns the rows written."""
        return self._write_unpartitioned(name, schema, batches, "overwrite")

    def _write_unpartitioned(
        self,
        name: str,
        schema: pa.Schema,
        batches: Iterable[pa.RecordBatch],
        mode: Literal["append", "overwrite"],
    ) -> int:
        if not self.is_local:
            rows = 0

            def counted() -> Iterator[pa.RecordBatch]:
                nonlocal rows
                for batch in batches:
                    rows += batch.num_rows
                    yield batch

            reader = pa.RecordBatchReader.from_batches(schema, counted())
            write_deltalake(
                self.table_uri(name), reader, mode=mode, storage_options=self._options()
            )
            return rows
        files = write_partition_files(
            Path(self.table_uri(name)), (), schema, batches, PARQUET_SETTINGS
        )
        self._commit_files(name, schema, files, partition_by=None, replace=mode == "overwrite")
        return files.rows

    def commit_partition_files(
        self,
        name: str,
        schema: pa.Schema,
        files: WrittenFiles,
        partition_by: tuple[str, ...],
        removed: Sequence[RemoveAction] = (),
    ) -> None:
        """Local lakes: one transaction that adds ``files`` (written or linked into table
        ``name``'s directory by ``storage.partition_files``) and removes the files ``removed``
        names; the table, partitioned by ``partition_by``, is created with ``schema`` if need
        be. Other writers' files are left alone, so a lost race is simply retried. If the
        commit fails for good, the files are deleted and the error raised."""
        try:
            self._commit_files(name, schema, files, partition_by=partition_by, removed=removed)
        except BaseException:
            discard_files(Path(self.table_uri(name)), files)
            raise

    def _write_files_then_commit(
        self,
        name: str,
        schema: pa.Schema,
        batches: Callable[[], Iterable[pa.RecordBatch]],
        repo_id: str,
        commit: str,
        tag: CommitProperties | None = None,
        buckets: BucketSpec | LocalBuckets | None = None,
        keep: Sequence[Path] = (),
        plain: Callable[[], Iterable[pa.RecordBatch]] | None = None,
        counted: str | None = None,
    ) -> WrittenFiles:
        """Local lakes: Parquet files by our bounded writer (plus ``keep``, linked, and
        ``plain``'s rows), then one Delta transaction that replaces the partition's files with
        them (``storage.partition_files``)."""
        data_schema = _data_schema(schema)
        table_dir = Path(self.table_uri(name))
        partition = (("repo_id", repo_id), ("commit", commit))

        def write(
            stream: Iterable[pa.RecordBatch], spec: BucketSpec | LocalBuckets | None
        ) -> WrittenFiles:
            rows = (_without_partition_columns(b, data_schema) for b in stream)
            return write_partition_files(
                table_dir, partition, data_schema, rows, PARQUET_SETTINGS, spec, counted
            )

        files = write(batches(), buckets)
        try:
            if plain is not None:
                files += write(plain(), None)
            if keep:
                files += link_partition_files(table_dir, partition, data_schema, keep)
        except BaseException:
            discard_files(table_dir, files)
            raise
        self._commit_files(
            name,
            _partition_schema(schema),
            files,
            partition_filters=_partition_filter(repo_id, commit),
            tag=tag,
        )
        return files

    def _commit_files(
        self,
        name: str,
        schema: pa.Schema,
        files: WrittenFiles,
        *,
        partition_by: tuple[str, ...] | None = PARTITION_COLUMNS,
        partition_filters: list[tuple[str, str, str]] | None = None,
        tag: CommitProperties | None = None,
        replace: bool = False,
        removed: Sequence[RemoveAction] = (),
    ) -> None:
        """One transaction adding ``files``: replacing ``partition_filters``' partition (or,
        with ``replace``, the whole table), or appending (and removing the files ``removed``
        names). A writer that committed first makes us try again over its version."""

        def commit() -> None:
            table = self.table(name)
            if table is None and not removed:
                create_table_with_add_actions(
                    self.table_uri(name),
                    DeltaSchema.from_arrow(schema),
                    files.actions,
                    mode="error",
                    partition_by=list(partition_by or ()) or None,
                    configuration=TABLE_CONFIGURATION,
                    storage_options=self._options(),
                    commit_properties=tag,
                )
            else:
                if table is None:
                    raise LakeError(f"{self.table_uri(name)}: no table to remove files from")
                table.create_write_transaction(
                    [*files.actions, *removed],
                    mode="overwrite" if partition_filters or replace else "append",
                    schema=schema,
                    partition_by=list(partition_by or ()) or None,
                    partition_filters=partition_filters,
                    commit_properties=tag,
                )

        # A concurrent writer committed first (or created the table): the files are ours and
        # still valid; commit them again over the newer version.
        _retrying_commits(commit, (CommitFailedError, DeltaError))

    def _write_with_delta_rs(
        self,
        name: str,
        out_schema: pa.Schema,
        batches: Callable[[], Iterable[pa.RecordBatch]],
        repo_id: str,
        commit: str,
        tag: CommitProperties | None = None,
    ) -> int:
        """Object stores: delta-rs writes the files (see ``partition_files`` for its memory)."""
        predicate = f"repo_id = '{repo_id}' AND commit = '{commit}'"

        def write() -> int:
            rows = 0

            def tagged() -> Iterator[pa.RecordBatch]:
                nonlocal rows
                for batch in batches():
                    rows += batch.num_rows
                    yield _with_partition_columns(batch, repo_id, commit, out_schema)

            write_deltalake(
                self.table_uri(name),
                pa.RecordBatchReader.from_batches(out_schema, tagged()),
                mode="overwrite",
                partition_by=list(PARTITION_COLUMNS),
                predicate=predicate,
                storage_options=self._options(),
                writer_properties=WRITER_PROPERTIES,
                commit_properties=tag,
            )
            return rows

        # A lost commit race is retried from a fresh stream: the files were delta-rs's.
        return _retrying_commits(write, (CommitFailedError,))

    def copy_partition(
        self,
        name: str,
        repo_id: str,
        source_commit: str,
        commit: str,
        *,
        expected_rows: int | None = None,
        counted: str | None = None,
    ) -> TableWrite:
        """Replace partition ``(repo_id, commit)`` of table ``name`` with the rows of
        ``(repo_id, source_commit)``, in one transaction, without rewriting them: the source's
        files are hard-linked (or copied) into the new partition (``link_partition_files``);
        ``counted`` as in ``write_partition_stream``.
        Local lakes only. Raises, committing nothing: ``LakeError`` for an object store, a
        missing table, or source files that do not hold ``expected_rows`` (when given);
        ``OSError`` when a source file went away meanwhile.
        """
        check_partition(repo_id, source_commit)
        check_partition(repo_id, commit)
        table = self.table(name)
        if not self.is_local or table is None:
            raise LakeError(f"cannot copy a partition of {self.table_uri(name)}: "
                            "a local table is needed")  # fmt: skip
        schema = pa.schema(table.schema().to_arrow())
        files = link_partition_files(
            Path(self.table_uri(name)),
            (("repo_id", repo_id), ("commit", commit)),
            _data_schema(schema),
            _partition_paths(table, repo_id, source_commit),
        )
        if expected_rows is not None and files.rows != expected_rows:
            discard_files(Path(self.table_uri(name)), files)
            raise LakeError(f"partition {repo_id}@{source_commit} of {name} holds {files.rows} "
                            f"rows, not the {expected_rows} expected")  # fmt: skip
        tag = _write_tag()
        target = _partition_filter(repo_id, commit)
        self._commit_files(name, schema, files, partition_filters=target, tag=tag)
        counts = files.value_counts(counted) if counted is not None else None
        return TableWrite(name, self.table_uri(name), self._version_of(name, tag), files.rows,
                          schema, counts)  # fmt: skip

    def partition_files(self, name: str, repo_id: str, commit: str) -> list[Path]:
        """Local lakes: the files of partition ``(repo_id, commit)`` of table ``name`` in its
        current version (none when the table does not exist)."""
        check_partition(repo_id, commit)
        table = self.table(name)
        if not self.is_local or table is None:
            return []
        return _partition_paths(table, repo_id, commit)

    def earlier_bucket_files(
        self,
        name: str,
        repo_id: str,
        commit: str,
        schema: pa.Schema,
        prefer: Sequence[str] = (),
    ) -> dict[str, BucketFile]:
        """The bucket files (``storage.buckets``) of one earlier partition of table ``name``
        for ``repo_id``: the first commit of ``prefer`` that has one, else the newest
        partition other than ``commit``'s. Only files whose columns are ``schema``'s (without
        the partition columns); empty when there is none, or the lake is not local."""
        earlier = self._earlier_partition(name, repo_id, commit, prefer)
        return read_bucket_files(earlier[1], _data_schema(schema)) if earlier else {}

    def earlier_local_files(
        self,
        name: str,
        repo_id: str,
        commit: str,
        schema: pa.Schema,
        signature: str,
        prefer: Sequence[str] = (),
    ) -> tuple[str, dict[str, Path]] | None:
        """The commit and the file-local bucket files (``storage.buckets``) of the earlier
        partition ``earlier_bucket_files`` would choose; None when there is none, or when its
        files were not all written with ``signature`` and ``schema``'s columns."""
        earlier = self._earlier_partition(name, repo_id, commit, prefer)
        if earlier is None:
            return None
        found = read_local_files(earlier[1], _data_schema(schema), signature)
        return (earlier[0], found) if found is not None else None

    def _earlier_partition(
        self, name: str, repo_id: str, commit: str, prefer: Sequence[str]
    ) -> tuple[str, list[Path]] | None:
        """The commit and files of the partition of ``repo_id`` an incremental build of
        ``commit`` starts from: the first of ``prefer`` that the table has, else the newest."""
        check_partition(repo_id, commit)
        table = self.table(name)
        if not self.is_local or table is None:
            return None
        adds = pa.table(table.get_add_actions(flatten=True))
        mine = pc.and_(
            pc.equal(adds["partition.repo_id"], repo_id),
            pc.not_equal(adds["partition.commit"], commit),
        )
        adds = adds.filter(mine)
        if not adds.num_rows:
            return None
        present = set(adds["partition.commit"].to_pylist())
        chosen = next((c for c in prefer if c in present), None)
        if chosen is None:
            newest = adds.sort_by([("modification_time", "descending")])["partition.commit"][0]
            chosen = newest.as_py()
        return chosen, _partition_paths(table, repo_id, chosen)

    def delete_partition(self, name: str, repo_id: str, commit: str) -> int:
        """Delete a partition's rows from table ``name``; returns the rows deleted."""
        check_partition(repo_id, commit)
        dt = self.table(name)
        if dt is None:
            return 0
        metrics = dt.delete(f"repo_id = '{repo_id}' AND commit = '{commit}'")
        return int(metrics.get("num_deleted_rows", 0) or 0)

    def register_partition(
        self,
        ctx: SessionContext,
        name: str,
        repo_id: str,
        commit: str,
        as_name: str | None = None,
        links: Path | None = None,
    ) -> bool:
        """Make partition ``(repo_id, commit)`` of table ``name`` scannable in ``ctx`` as
        ``as_name`` (default ``name``): the table's columns, the partition columns holding
        their constant values. False when the table does not exist.

        In a local lake the partition's current files (from the Delta log) are scanned
        directly. Through deltalake's table provider, a ``WHERE`` on the partition columns
        prunes no file (DataFusion 55 sees the provider over FFI and keeps the filter above
        it): a build reading back its own edges read those of every commit in the lake
        (16.9 M props rows to keep 8.5 M, with two commits). Object stores still go through
        the provider.

        ``links``: a new, empty directory where the files are hard-linked, so that they are
        scanned as one listing table, not a UNION of one table per file (the partition's
        own directory may also hold files of other versions). Where a link cannot be made
        (another device), the files are registered one by one as without it.
        """
        check_partition(repo_id, commit)
        table = self.table(name)
        if table is None:
            return False
        as_name = as_name or name
        if not self.is_local:
            ctx.register_table(f"{as_name}__delta", table)
            ctx.register_view(as_name, ctx.sql(
                f'SELECT * FROM "{as_name}__delta" '
                f"WHERE repo_id = '{repo_id}' AND \"commit\" = '{commit}'"))  # fmt: skip
            return True
        data = _data_schema(pa.schema(table.schema().to_arrow()))
        partition = f"'{repo_id}' AS repo_id, '{commit}' AS \"commit\""
        columns = ", ".join(f'"{f.name}"' for f in data)
        paths = _partition_paths(table, repo_id, commit)
        if links is not None and paths and _linked(paths, links):
            ctx.register_parquet(f"{as_name}__files", str(links), schema=data)
            ctx.register_view(
                as_name, ctx.sql(f'SELECT {partition}, {columns} FROM "{as_name}__files"')
            )
            return True
        selects = []
        for i, path in enumerate(paths):
            ctx.register_parquet(f"{as_name}__{i}", str(path), schema=data)
            selects.append(f'SELECT {partition}, {columns} FROM "{as_name}__{i}"')
        if not selects:
            ctx.register_record_batches(
                f"{as_name}__empty", [[pa.RecordBatch.from_pylist([], schema=data)]]
            )
            selects.append(f'SELECT {partition}, {columns} FROM "{as_name}__empty"')
        ctx.register_view(as_name, ctx.sql(" UNION ALL ".join(selects)))
        return True

    def value_counts(self, name: str, column: str, repo_id: str, commit: str) -> dict[str, int]:
        """Rows per value of ``column`` in one partition (a few dozen groups at most: the
        query needs no memory pool)."""
        ctx = SessionContext()
        if not self.register_partition(ctx, name, repo_id, commit):
            return {}
        rows = ctx.sql(
            f'SELECT "{column}" AS value, count(*) AS n FROM "{name}" GROUP BY 1 ORDER BY 1'
        ).to_arrow_table()
        return {r["value"]: int(r["n"]) for r in plain_strings(rows).to_pylist()}

    def written_value_counts(
        self, written: TableWrite, column: str | None, repo_id: str, commit: str
    ) -> dict[str, int] | None:
        """Rows per value of ``column`` in the partition ``written`` wrote: what its files'
        footers said, else (an object store, files of an older version) a scan."""
        if column is None:
            return None
        if written.value_counts is not None:
            return dict(written.value_counts)
        return self.value_counts(written.name, column, repo_id, commit)

    def read_partition(self, name: str, repo_id: str, commit: str) -> pa.Table:
        """The rows of one partition (empty table when the table does not exist)."""
        ctx = SessionContext()
        if not self.register_partition(ctx, name, repo_id, commit):
            return pa.table({})
        return plain_strings(ctx.sql(f'SELECT * FROM "{name}"').to_arrow_table())


def _retrying_commits(attempt: Callable[[], _T], retry_on: tuple[type[Exception], ...]) -> _T:
    """``attempt()``, again after a short back-off while it loses a commit race (partitions
    are disjoint, so a retry cannot lose rows), at most ``_COMMIT_RETRIES`` times."""
    for tries in range(_COMMIT_RETRIES - 1):
        try:
            return attempt()
        except retry_on:
            time.sleep(0.05 * (2**tries))
    return attempt()


def register_lake_tables(ctx: SessionContext, lake: Lake) -> list[str]:
    """Register every Delta table of a local lake in ``ctx`` under its own name."""
    names = lake.table_names()
    for name in names:
        dt = lake.table(name)
        if dt is not None:
            ctx.register_table(name, dt)
    return names


def _write_tag() -> CommitProperties:
    """Commit metadata naming one write, so that it finds its own version in the log."""
    return CommitProperties(custom_metadata={_WRITE_ID_KEY: uuid.uuid4().hex})


def _partition_filter(repo_id: str, commit: str) -> list[tuple[str, str, str]]:
    return [("repo_id", "=", repo_id), ("commit", "=", commit)]


def _partition_paths(table: DeltaTable, repo_id: str, commit: str) -> list[Path]:
    """Local paths of a partition's files in the table's current version. The log gives them
    percent-encoded (a space is %20); a file it lists that is not there raises ``LakeError``
    (DataFusion, told the schema, would read a missing file as empty)."""
    uris = table.file_uris(file_pruning_predicate=_partition_filter(repo_id, commit))
    paths = [Path(unquote(uri.removeprefix("file://"))) for uri in uris]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise LakeError(f"partition {repo_id}@{commit} of {table.table_uri}: files listed in "
                        f"its Delta log are missing: {missing[:3]}")  # fmt: skip
    return paths


def _linked(paths: Sequence[Path], directory: Path) -> bool:
    """Whether every one of ``paths`` is now hard-linked into ``directory`` (each under a
    name of its own); False, and ``directory`` emptied, when a link could not be made."""
    try:
        for i, path in enumerate(paths):
            os.link(path, directory / f"{i:05d}-{path.name}")
    except OSError:
        for made in directory.iterdir():
            made.unlink()
        return False
    return True


def _data_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` without the partition columns (what the Parquet files hold)."""
    return pa.schema([f for f in schema if f.name not in PARTITION_COLUMNS])


def _partition_schema(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the partition columns first (replacing any of the same name)."""
    rest = [f for f in schema if f.name not in PARTITION_COLUMNS]
    return pa.schema([("repo_id", pa.string()), ("commit", pa.string()), *rest])


def _without_partition_columns(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch's data columns, as ``schema`` orders and types them."""
    columns = [batch.column(f.name) for f in schema]
    out = pa.RecordBatch.from_arrays(columns, names=schema.names)
    return out if out.schema.equals(schema) else out.cast(schema)


def _with_partition_columns(
    batch: pa.RecordBatch, repo_id: str, commit: str, schema: pa.Schema
) -> pa.RecordBatch:
    """The batch with constant partition columns first, as ``schema`` says."""
    n = batch.num_rows
    columns = [pa.array([repo_id] * n, pa.string()), pa.array([commit] * n, pa.string())]
    columns += [batch.column(f.name) for f in schema if f.name not in PARTITION_COLUMNS]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
