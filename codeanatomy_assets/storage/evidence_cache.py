"""Content-keyed evidence cache: a file's evidence is extracted once per blob, then reused.

A later commit that contains the same blob at the same path reuses its rows instead of
parsing again: a commit that changes one file of 1,800 extracts one file. The key is
``sha256(blob_id, path, module name, extractor version)`` (the path and the module name are in
the rows; the version changes whenever what the extractors emit changes).

The cache is a set of Delta tables under ``<lake>/_evidence_cache_v2/``: one per per-file
evidence table, partitioned by ``cache_write`` (the id of the build that stored the rows),
plus ``files``, the marker: one row per stored file with its ``cache_key`` and
``cache_write``. A key counts as cached only when its marker row exists, and its rows are
those of its path in its write's partition. The marker is written last, so a crash between
tables leaves no half entry. Two builds storing the same key concurrently both succeed
(appends never conflict); readers keep only the smallest ``cache_write`` per key, so nothing
is ever doubled. Files whose errors depend on the machine (timeouts, crashed workers) get no
marker row, and are extracted again next time.

Why a partition per write: a build has already spilled its fresh evidence to Parquet
(``storage.scratch``), and in a local lake storing it is hard-linking those files into the
write's partition. Copying the rows into new files, tagged with their key, took 4.5 s of the
standard library's full build (reading the spill, ZSTD); linking takes milliseconds, at the
price of uncompressed files (about 145 MB for the standard library instead of 75 MB). Loading
works the same way in reverse: the winning writes' files are linked into the build's scratch
space, each read for its winning paths only (``scratch.adopt``), instead of copied. The
first layout (``_evidence_cache/``, one key column per row) is no longer read; retention
deletes it (``remove_legacy``).

Every build that stores adds a write (a file per table and one to the marker), and a load
reads every live write, so a cache followed commit by commit would get slower with each
commit: on the standard library, 30 one-file commits in a row made the 31st build about 3 s
slower than the first. ``compact`` merges the live rows of the smaller writes into one
write; a load that finds more than ``COMPACT_AFTER_WRITES`` live writes runs it, and so
does retention.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError
from deltalake.transaction import RemoveAction

from codeanatomy_assets.storage.arrow_types import plain_strings
from codeanatomy_assets.storage.lake import PARQUET_SETTINGS, Lake
from codeanatomy_assets.storage.partition_files import (
    WrittenFiles,
    discard_files,
    link_partition_files,
    write_partition_files,
)
from codeanatomy_assets.storage.scratch import Scratch, SpilledTable, adopt

log = logging.getLogger(__name__)

CACHE_DIR = "_evidence_cache_v2"
LEGACY_CACHE_DIRS = ("_evidence_cache",)
WRITE_COLUMN = "cache_write"
# A write with no marker row after this long was left by a build that died while storing.
UNMARKED_AFTER_S = 24 * 3600.0
MARKER = "files"
# A load that finds more live writes than this compacts the cache (``EvidenceCache.compact``).
COMPACT_AFTER_WRITES = 8
# Error kinds that say something about the machine or the moment, not about the file.
UNCACHEABLE_ERRORS = frozenset(
    {"WorkerCrashed", "timeout", "Timeout", "FileTimeout", "MemoryError"}
)


def cache_key(blob_id: str, path: str, module_name: str, version: str) -> str:
    """The content key of one file's evidence."""
    raw = "\x1f".join((blob_id, path, module_name, version)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _CachedFile:
    """One data file of a per-file table, as the Delta log lists it."""

    path: str  # relative to the table, as in the log
    write: str
    rows: int
    size: int
    added_ms: int  # when its add action was made (ms since the epoch)


@dataclass(frozen=True)
class Compaction:
    """What ``EvidenceCache.compact`` did: the new writes, how many writes they merged, the
    entries (one per file version) that moved, the per-file rows copied, how long it took."""

    writes: tuple[str, ...]
    merged_writes: int
    files: int
    rows: int
    seconds: float

    def summary(self) -> dict[str, Any]:
        """As a build's diagnostics record it."""
        return {
            "writes": len(self.writes),
            "merged_writes": self.merged_writes,
            "files": self.files,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
        }


# Told what a load's compaction did (``Compaction.summary``) or why it failed (``error``).
CompactionReport = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class EvidenceCache:
    """Evidence rows by content key, in Delta tables beside the lake's outputs."""

    lake: Lake
    version: str
    schemas: Mapping[str, pa.Schema]  # the per-file evidence tables, "files" included
    # Where under the lake root (the per-file views' caches use the same store: one
    # directory per view, ``pipeline.view_cache``).
    directory: str = CACHE_DIR

    def _uri(self, name: str) -> str:
        return self.lake.table_uri(f"{self.directory}/{name}")

    def _table(self, name: str) -> DeltaTable | None:
        try:
            return DeltaTable(
                self._uri(name), storage_options=dict(self.lake.storage_options) or None
            )
        except TableNotFoundError:
            return None

    def _stored_schema(self, name: str) -> pa.Schema:
        """Per-file table ``name`` as the cache holds it: with its write's partition column."""
        return self.schemas[name].append(pa.field(WRITE_COLUMN, pa.string()))

    def _marker_schema(self) -> pa.Schema:
        return (
            self.schemas[MARKER]
            .append(pa.field("cache_key", pa.string()))
            .append(pa.field(WRITE_COLUMN, pa.string()))
        )

    def _context(self, keys: Sequence[str]) -> SessionContext | None:
        marker = self._table(MARKER)
        if marker is None or not keys:
            return None
        ctx = SessionContext()
        ctx.register_table("cached_files", marker)
        ctx.register_record_batches("wanted", [pa.table({"k": list(keys)}).to_batches()])
        return ctx

    def hits(self, keys: Sequence[str]) -> set[str]:
        """The keys whose evidence is complete in the cache."""
        ctx = self._context(keys)
        if ctx is None:
            return set()
        rows = ctx.sql(
            "SELECT DISTINCT f.cache_key FROM cached_files f JOIN wanted w ON f.cache_key = w.k"
        ).to_arrow_table()
        return set(rows.column(0).to_pylist())

    def _files(self, table: DeltaTable) -> list[_CachedFile]:
        # In the order of _CachedFile's fields.
        columns = [
            "path", f"partition.{WRITE_COLUMN}", "num_records", "size_bytes", "modification_time"
        ]  # fmt: skip
        actions = pa.table(table.get_add_actions(flatten=True)).select(columns)
        return [_CachedFile(*(row[c] for c in columns)) for row in actions.to_pylist()]

    def _commit_marker(self, snapshot: DeltaTable, files: WrittenFiles) -> None:
        """Replace the marker ``snapshot`` read with ``files``, in one transaction made on
        that snapshot: Delta then checks it against every commit since. A build's append
        does not conflict (its rows stay); a replace does (retention dropped entries whose
        rows may be gone): the compaction fails rather than bring them back."""
        read = pa.table(snapshot.get_add_actions(flatten=True)).select(["path", "size_bytes"])
        removed = [_remove_action(p, size, {}) for p, size in _path_sizes(read)]
        try:
            snapshot.create_write_transaction(
                [*files.actions, *removed], mode="append", schema=self._marker_schema()
            )
        except BaseException:
            discard_files(Path(self._uri(MARKER)), files)
            raise

    def _live_writes(self, ctx: SessionContext, keys: str) -> dict[str, set[str]]:
        """Each write that wins for some key of table ``keys``, with the paths it wins for."""
        winners = ctx.sql(f"SELECT path, {WRITE_COLUMN} FROM ({_winners_sql(keys)}) w")
        live: dict[str, set[str]] = defaultdict(set)
        for row in plain_strings(winners.to_arrow_table()).to_pylist():
            live[row[WRITE_COLUMN]].add(row["path"])
        return live

    def load(
        self, keys: Sequence[str], scratch: Scratch, on_compaction: CompactionReport | None = None
    ) -> dict[str, SpilledTable]:
        """The cached rows of ``keys`` (which must be hits), per evidence table, as tables of
        ``scratch``: in a local lake the cache's own files, linked and filtered to the keys'
        paths; from an object store, streamed into new files (the standard library's evidence
        is about a gigabyte of Arrow). When they were in more than ``COMPACT_AFTER_WRITES``
        writes, the cache is compacted afterwards; ``on_compaction`` is told how it went."""
        ctx = self._context(keys)
        out: dict[str, SpilledTable] = {}
        live: dict[str, set[str]] = {}  # write -> paths it is the winner for
        if ctx is not None:
            ctx.register_view("winners", ctx.sql(_winners_sql("wanted")))
            live = self._live_writes(ctx, "wanted")
        for name, schema in self.schemas.items():
            table = self._table(name) if ctx is not None else None
            if ctx is None or table is None:
                out[name] = scratch.spill(name, schema.empty_table())
                continue
            if name != MARKER and self.lake.is_local:
                # The winning writes' files themselves, each read for its winning paths only.
                files = [
                    (Path(self._uri(name)) / unquote(f.path), frozenset(live[f.write]))
                    for f in self._files(table)
                    if f.write in live
                ]
                out[name] = (
                    adopt(scratch, name, schema, files)
                    if files
                    else scratch.spill(name, schema.empty_table())
                )
                continue
            columns = ", ".join(f't."{c}"' for c in schema.names)
            if name == MARKER:
                query = (
                    f"SELECT {columns} FROM cached_files t JOIN winners w "
                    "ON t.cache_key = w.cache_key AND t.cache_write = w.cache_write"
                )
            else:  # an object store: through the Delta provider
                ctx.register_table(f"rows_{name}", table)
                query = (
                    f"SELECT {columns} FROM rows_{name} t JOIN winners w "
                    "ON t.cache_write = w.cache_write AND t.path = w.path"
                )
            stream = _conformed(ctx.sql(query).execute_stream(), schema)
            out[name] = scratch.write(name, schema, stream)
        if len(live) > COMPACT_AFTER_WRITES and self.lake.is_local:
            self._compact_after_load(on_compaction)
        return out

    def _compact_after_load(self, report: CompactionReport | None) -> None:
        """After the load: what this build reads is already linked; the next one reads the
        compacted writes. A failed compaction costs later builds time, never rows."""
        try:
            done = self.compact(COMPACT_AFTER_WRITES)
        except Exception as exc:  # any failure leaves every entry readable
            log.warning("compacting the cache %s failed", self.directory, exc_info=True)
            detail: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}"}
        else:
            if done is None:
                return
            detail = done.summary()
        if report is not None:
            report({"cache": self.directory, **detail})

    def compact(self, max_writes: int = COMPACT_AFTER_WRITES) -> Compaction | None:
        """When more than ``max_writes`` writes are live (win for some key), merge the live
        rows of all but the largest into as few new writes as the paths allow; None when
        there was nothing to merge (or the lake is not local: there, loads stream rows,
        they do not link files).

        A write holds one version of a path (an entry's rows are its path's rows in its
        write), so writes that hold two versions of one file cannot be merged into one.
        They are grouped newest first, each into the first group that lacks its paths: the
        newest version of every file, what the next commits read, lands in the first group.

        Order, so that no reader ever sees a key without its rows: (1) each group's rows go
        into every per-file table as a new write, added; (2) one marker transaction adds
        the marker's winning rows (the merged ones now naming their group's write) and
        removes exactly the files the marker had when read, so a marker row a build appended
        in the meantime stays, and a retention that replaced it makes the compaction fail
        (``_commit_marker``); (3) in each per-file table, the files of writes no marker
        row names and older than a day go (``UNMARKED_AFTER_S``, as in ``retain``): a
        reader that read the marker before (2) still finds the merged writes' files, and a
        build storing now is not touched. Losing copies of a key leave the marker on the
        way. A failure before (2) leaves writes no marker names (gone a day later).
        """
        marker = self._table(MARKER)
        if marker is None or not self.lake.is_local:
            return None
        started = time.perf_counter()
        ctx = SessionContext()
        ctx.register_table("cached_files", marker)
        ctx.register_view("every_key", ctx.sql("SELECT DISTINCT cache_key AS k FROM cached_files"))
        live = self._live_writes(ctx, "every_key")
        if len(live) <= max_writes:
            return None
        files = {
            n: self._files(t)
            for n in self.schemas
            if n != MARKER and (t := self._table(n)) is not None
        }
        added: dict[str, int] = defaultdict(int)  # write -> when it was stored
        for f in (f for listed in files.values() for f in listed):
            added[f.write] = max(added[f.write], f.added_ms)
        largest = max(live, key=lambda w: (len(live[w]), w))
        groups = [
            g
            for g in _disjoint_groups({w: live[w] for w in live if w != largest}, added)
            if len(g) > 1
        ]
        if not groups:
            return None
        new_write = {w: uuid.uuid4().hex for w in (next(iter(g)) for g in groups)}
        target = {w: new_write[next(iter(g))] for g in groups for w in g}
        rows = 0
        for name, listed in files.items():
            directory = Path(self._uri(name))
            schema = self.schemas[name]
            for group in groups:
                members = [f for f in listed if f.write in group]
                if not members:
                    continue
                written = write_partition_files(
                    directory, ((WRITE_COLUMN, target[members[0].write]),), schema,
                    _live_rows(directory, members, live, schema), PARQUET_SETTINGS,
                )  # fmt: skip
                if written.actions:
                    self.lake.commit_partition_files(
                        f"{self.directory}/{name}", self._stored_schema(name), written,
                        (WRITE_COLUMN,),
                    )  # fmt: skip
                rows += written.rows
        marker_schema = self._marker_schema()
        names = ", ".join(f't."{c}"' for c in marker_schema.names if c != WRITE_COLUMN)
        cases = " ".join(f"WHEN '{w}' THEN '{target[w]}'" for w in sorted(target))
        rewritten = ctx.sql(
            f"SELECT {names}, CASE t.{WRITE_COLUMN} {cases} ELSE t.{WRITE_COLUMN} END "
            f"AS {WRITE_COLUMN} FROM cached_files t JOIN ({_winners_sql('every_key')}) w "
            f"ON t.cache_key = w.cache_key AND t.{WRITE_COLUMN} = w.{WRITE_COLUMN}"
        )
        marker_files = write_partition_files(
            Path(self._uri(MARKER)), (), marker_schema,
            _conformed(rewritten.execute_stream(), marker_schema), PARQUET_SETTINGS,
        )  # fmt: skip
        self._commit_marker(marker, marker_files)
        named = (set(live) - set(target)) | set(target.values())
        unmarked_before_ms = (time.time() - UNMARKED_AFTER_S) * 1000
        for name, listed in files.items():  # files added since are a day younger
            gone = [f for f in listed if f.write not in named and f.added_ms < unmarked_before_ms]
            if gone:
                self.lake.commit_partition_files(
                    f"{self.directory}/{name}", self._stored_schema(name), WrittenFiles([], 0),
                    (WRITE_COLUMN,), removed=[_cached_remove(f) for f in gone],
                )  # fmt: skip
        compaction = Compaction(
            tuple(new_write.values()), len(target), sum(len(live[w]) for w in target), rows,
            time.perf_counter() - started,
        )  # fmt: skip
        log.info(
            "compacted %d writes of %s (%d files, %d rows) into %d in %.2f s",
            compaction.merged_writes, self.directory, compaction.files, compaction.rows,
            len(compaction.writes), compaction.seconds,
        )  # fmt: skip
        return compaction

    def store(
        self, tables: Mapping[str, pa.Table | SpilledTable], keys_by_path: Mapping[str, str]
    ) -> int:
        """Store the evidence of every file in ``keys_by_path`` that is safe to cache, as one
        new write; returns the number of files stored.

        The per-file tables go in whole (a spilled table's files are linked, not copied): rows
        of a path without a key are never read, since only the marker says what a write
        holds. The marker goes last: it makes the files' entries complete.
        """
        errors = tables.get("errors")
        unsafe: set[str] = set()
        if errors is not None and errors.num_rows:
            error_rows = errors.read() if isinstance(errors, SpilledTable) else errors
            bad = pc.is_in(error_rows["error_kind"], value_set=pa.array(sorted(UNCACHEABLE_ERRORS)))
            unsafe = set(error_rows.filter(bad)["path"].to_pylist())
        keep = {p: k for p, k in keys_by_path.items() if p not in unsafe}
        if not keep:
            return 0
        write_id = uuid.uuid4().hex
        for name in self.schemas:
            table = tables.get(name)
            if name != MARKER and table is not None and table.num_rows:
                self._add_write(name, table, write_id)
        marker = tables.get(MARKER)
        if marker is None:
            return len(keep)
        paths = pa.array(list(keep), pa.string())
        keys = pa.array(list(keep.values()), pa.string())

        def tagged(batch: pa.RecordBatch) -> pa.RecordBatch:
            rows = batch.filter(pc.is_in(batch["path"], value_set=paths))
            positions = pc.index_in(rows["path"], value_set=paths)
            return rows.append_column("cache_key", keys.take(positions)).append_column(
                WRITE_COLUMN, pa.array([write_id] * rows.num_rows, pa.string())
            )

        source = marker.batches() if isinstance(marker, SpilledTable) else marker.to_batches()
        self.lake.append_stream(
            f"{self.directory}/{MARKER}", self._marker_schema(), (tagged(b) for b in source)
        )
        return len(keep)

    def _add_write(self, name: str, table: pa.Table | SpilledTable, write_id: str) -> None:
        """``table``'s rows as partition ``write_id`` of cache table ``name``."""
        schema = self.schemas[name]
        full = self._stored_schema(name)
        if not self.lake.is_local:
            batches = table.batches() if isinstance(table, SpilledTable) else table.to_batches()
            reader = pa.RecordBatchReader.from_batches(
                full, (_with_write(b, full, write_id) for b in batches)
            )
            write_deltalake(self._uri(name), reader, mode="append", partition_by=[WRITE_COLUMN],
                            storage_options=dict(self.lake.storage_options) or None)  # fmt: skip
            return
        directory = Path(self._uri(name))
        partition = ((WRITE_COLUMN, write_id),)
        if isinstance(table, SpilledTable) and table.schema.equals(schema) and not table.filtered:
            files = link_partition_files(directory, partition, schema, table.files())
        else:
            batches = table.batches() if isinstance(table, SpilledTable) else table.to_batches()
            files = write_partition_files(
                directory, partition, schema, (b.cast(schema) for b in batches), PARQUET_SETTINGS
            )
        self.lake.commit_partition_files(f"{self.directory}/{name}", full, files, (WRITE_COLUMN,))

    def retain(self, keep: Collection[str], unmarked_after_s: float = UNMARKED_AFTER_S) -> int:
        """Drop every entry whose key is not in ``keep`` (and the losing copies of entries two
        builds stored at once); returns the rows removed. The marker table is rewritten in
        one transaction first. Then, in each per-file table, a write's files are removed when
        none of its entries is left, and rewritten without the dropped paths' rows when some
        are: one transaction per table, which touches no other file. Finally every table is
        vacuumed (files older than Delta's retention period only, so readers of older
        versions are safe).

        A build may be storing while this runs. A write the marker did not list when this call
        read it is left alone, so no key whose marker survives loses its rows: the worst a
        race does is drop a marker, and that key is extracted again. Unless its files are
        older than ``unmarked_after_s`` (a day): then the build that stored them died before
        its marker (a store takes seconds), no read will ever see them, and they go like any
        dropped write (for the standard library, a copy of a commit's evidence per crash).
        What is left is compacted (``compact``) into at most two writes.
        """
        marker = self._table(MARKER)
        if marker is None:
            return 0
        unmarked_before_ms = (time.time() - unmarked_after_s) * 1000
        ctx = SessionContext()
        ctx.register_table("cached_files", marker)
        wanted = pa.table({"k": pa.array(sorted(keep), pa.string())})
        _register(ctx, "keep", wanted)
        winners = plain_strings(
            ctx.sql(f"SELECT path, {WRITE_COLUMN} FROM ({_winners_sql('keep')}) w").to_arrow_table()
        ).to_pylist()
        seen = set(
            plain_strings(ctx.sql("SELECT DISTINCT cache_write FROM cached_files").to_arrow_table())
            .column(0)
            .to_pylist()
        )
        live: dict[str, set[str]] = defaultdict(set)
        for row in winners:
            live[row[WRITE_COLUMN]].add(row["path"])
        _register(ctx, "winners", pa.Table.from_pylist(winners, schema=_WINNERS))
        before = ctx.sql("SELECT count(*) AS n FROM cached_files").to_pylist()[0]["n"]
        kept = self.lake.replace_stream(
            f"{self.directory}/{MARKER}",
            self._marker_schema(),
            _conformed(
                ctx.sql(
                    "SELECT t.* FROM cached_files t JOIN winners w "
                    "ON t.path = w.path AND t.cache_write = w.cache_write"
                ).execute_stream(),
                self._marker_schema(),
            ),
        )
        removed = before - kept
        for name in self.schemas:
            if name == MARKER:
                continue
            table = self._table(name)
            if table is not None:
                removed += self._retain_rows(name, table, live, seen, unmarked_before_ms)
        self.compact(2)  # what is left: at most two writes a load reads
        for name in self.schemas:
            table = self._table(name)
            if table is not None:
                table.vacuum(dry_run=False)
        return removed

    def _retain_rows(
        self,
        name: str,
        table: DeltaTable,
        live: Mapping[str, set[str]],
        seen: Collection[str],
        unmarked_before_ms: float,
    ) -> int:
        """Remove table ``name``'s rows of dropped entries (see ``retain``); the rows removed."""
        by_write: dict[str, list[_CachedFile]] = defaultdict(list)
        for f in self._files(table):
            # A write the marker did not list is still being stored, unless it is that old.
            if f.write in seen or f.added_ms < unmarked_before_ms:
                by_write[f.write].append(f)
        schema = self.schemas[name]
        directory = Path(self._uri(name))
        removed = 0
        gone: list[_CachedFile] = []
        added = WrittenFiles([], 0)
        for write, files in by_write.items():
            paths = live.get(write, set())
            ctx, query = _rows_of_paths(directory, files, paths, schema)
            total = sum(f.rows for f in files)
            alive = 0
            if paths:
                alive = ctx.sql(f"SELECT count(*) AS n FROM ({query}) q").to_pylist()[0]["n"]
                if alive == total:
                    continue
            removed += total - alive
            if not self.lake.is_local:
                kept_paths = f" AND path NOT IN ({', '.join(_sql_strings(paths))})" if paths else ""
                table.delete(f"{WRITE_COLUMN} = '{write}'{kept_paths}")
                continue
            if paths:
                written = write_partition_files(
                    directory, ((WRITE_COLUMN, write),), schema,
                    _conformed(ctx.sql(query).execute_stream(), schema), PARQUET_SETTINGS,
                )  # fmt: skip
                added += written
            gone += files
        if gone:
            self.lake.commit_partition_files(
                f"{self.directory}/{name}", self._stored_schema(name), added, (WRITE_COLUMN,),
                removed=[_cached_remove(f) for f in gone],
            )  # fmt: skip
        return removed

    def remove_legacy(self) -> list[str]:
        """Delete the cache directories of earlier layouts, which no build reads (local lakes;
        returns what was deleted)."""
        if not self.lake.is_local:
            return []
        deleted = []
        for name in LEGACY_CACHE_DIRS:
            directory = Path(self.lake.table_uri(name))
            if directory.is_dir():
                shutil.rmtree(directory)
                deleted.append(str(directory))
        return deleted


def _winners_sql(keys: str) -> str:
    """The marker row that counts for each key of table ``keys`` (column ``k``): the one of
    the key's smallest write, when two builds stored it at once."""
    return (
        "SELECT f.cache_key, f.path, f.cache_write FROM cached_files f JOIN ("
        "SELECT f.cache_key, min(f.cache_write) AS cache_write FROM cached_files f "
        f"JOIN {keys} k ON f.cache_key = k.k GROUP BY f.cache_key) m "
        "ON f.cache_key = m.cache_key AND f.cache_write = m.cache_write"
    )


_WINNERS = pa.schema([("path", pa.string()), (WRITE_COLUMN, pa.string())])


def _register(ctx: SessionContext, name: str, table: pa.Table) -> None:
    """An in-memory table in ``ctx``, empty ones included (they have no batch to register)."""
    batches = table.to_batches() or [pa.RecordBatch.from_pylist([], schema=table.schema)]
    ctx.register_record_batches(name, [batches])


def _sql_strings(values: Iterable[str]) -> list[str]:
    return ["'" + v.replace("'", "''") + "'" for v in sorted(values)]


def _remove_action(path: str, size: int, partition: dict[str, str | None]) -> RemoveAction:
    return RemoveAction(
        path=path,
        data_change=True,
        deletion_timestamp=int(time.time() * 1000),
        size=size,
        partition_values=partition,
    )


def _cached_remove(f: _CachedFile) -> RemoveAction:
    return _remove_action(f.path, f.size, {WRITE_COLUMN: f.write})


def _path_sizes(actions: pa.Table) -> list[tuple[str, int]]:
    return list(zip(actions["path"].to_pylist(), actions["size_bytes"].to_pylist(), strict=True))


def _disjoint_groups(
    writes: Mapping[str, Collection[str]], added: Mapping[str, int]
) -> list[list[str]]:
    """``writes`` (write -> its paths) newest first, each in the first group that holds none
    of its paths yet."""
    groups: list[tuple[set[str], list[str]]] = []
    for write in sorted(writes, key=lambda w: (-added.get(w, 0), w)):
        paths = writes[write]
        for held, members in groups:
            if held.isdisjoint(paths):
                held.update(paths)
                members.append(write)
                break
        else:
            groups.append((set(paths), [write]))
    return [members for _, members in groups]


def _live_rows(
    directory: Path,
    files: Sequence[_CachedFile],
    live: Mapping[str, Collection[str]],
    schema: pa.Schema,
) -> Iterator[pa.RecordBatch]:
    """The rows of ``files`` (of a per-file table in ``directory``) whose path their write
    is live for, as ``schema``. Read by DataFusion, as ``retain`` reads them: a view's
    cached files hold string views, which pyarrow's filter cannot take."""
    by_write: dict[str, list[_CachedFile]] = defaultdict(list)
    for f in files:
        by_write[f.write].append(f)
    for write, listed in by_write.items():
        ctx, query = _rows_of_paths(directory, listed, live[write], schema)
        yield from _conformed(ctx.sql(query).execute_stream(), schema)


def _rows_of_paths(
    directory: Path, files: Sequence[_CachedFile], paths: Collection[str], schema: pa.Schema
) -> tuple[SessionContext, str]:
    """A session over ``files`` (of a per-file table in ``directory``, read as ``schema``)
    and the query of their rows of ``paths``."""
    ctx = SessionContext()
    for i, f in enumerate(files):
        ctx.register_parquet(f"f{i}", str(directory / unquote(f.path)), schema=schema)
    _register(ctx, "live", pa.table({"p": pa.array(sorted(paths), pa.string())}))
    rows = " UNION ALL ".join(f"SELECT * FROM f{i}" for i in range(len(files)))
    return ctx, f"SELECT t.* FROM ({rows}) t WHERE t.path IN (SELECT p FROM live)"


def _with_write(batch: pa.RecordBatch, stored: pa.Schema, write_id: str) -> pa.RecordBatch:
    """``batch`` as the cache stores it (``stored``): its columns, then the write's id."""
    columns = [batch.column(f.name).cast(f.type) for f in stored if f.name != WRITE_COLUMN]
    columns.append(pa.array([write_id] * batch.num_rows, pa.string()))
    return pa.RecordBatch.from_arrays(columns, schema=stored)


def _conformed(stream: Iterable[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """A DataFusion stream's batches with ``schema``'s columns, in its order and plain types."""
    for batch in stream:
        table = plain_strings(pa.Table.from_batches([batch.to_pyarrow()]))
        yield from table.select(schema.names).cast(schema).to_batches()
