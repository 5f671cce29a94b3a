"""Content-keyed evidence cache: a file's evidence is extracted once per blob, then reused.

A later commit that contains the same blob at the same path reuses its rows instead of
parsing again: a commit that changes one file of 1,800 extracts one file. The key is
``sha256(blob_id, path, module name, extractor version)`` (the path and the module name are in
the rows; the version changes whenever what the extractors emit changes).

The cache is a set of Delta tables under ``<lake>/_evidence_cache/`` (one per per-file
evidence table, plus ``files``), each row tagged with ``cache_key`` and the ``cache_write`` id
of the build that stored it. ``files`` is written last and is the commit marker: a key counts
as cached only when its ``files`` row exists, so a crash between tables leaves no half entry.
Two builds storing the same key concurrently both succeed (appends never conflict); readers
keep only the rows of the smallest ``cache_write`` per key, so nothing is ever doubled.
Files whose errors depend on the machine (timeouts, crashed workers) are never cached.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from datafusion import SessionContext
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from codeanatomy_assets.storage.arrow_types import plain_strings
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import Scratch, SpilledTable

CACHE_DIR = "_evidence_cache"
# Error kinds that say something about the machine or the moment, not about the file.
UNCACHEABLE_ERRORS = frozenset(
    {"WorkerCrashed", "timeout", "Timeout", "FileTimeout", "MemoryError"}
)


def cache_key(blob_id: str, path: str, module_name: str, version: str) -> str:
    """The content key of one file's evidence."""
    raw = "\x1f".join((blob_id, path, module_name, version)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


@dataclass(frozen=True)
class EvidenceCache:
    """Evidence rows by content key, in Delta tables beside the lake's outputs."""

    lake: Lake
    version: str
    schemas: Mapping[str, pa.Schema]  # the per-file evidence tables, "files" included

    def _uri(self, name: str) -> str:
        return self.lake.table_uri(f"{CACHE_DIR}/{name}")

    def _table(self, name: str) -> DeltaTable | None:
        try:
            return DeltaTable(
                self._uri(name), storage_options=dict(self.lake.storage_options) or None
            )
        except TableNotFoundError:
            return None

    def _context(self, keys: Sequence[str]) -> SessionContext | None:
        marker = self._table("files")
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

    def load(self, keys: Sequence[str], scratch: Scratch) -> dict[str, SpilledTable]:
        """The cached rows of ``keys`` (which must be hits), per evidence table, streamed into
        ``scratch`` (the standard library's evidence is about a gigabyte of Arrow)."""
        ctx = self._context(keys)
        out: dict[str, SpilledTable] = {}
        if ctx is not None:
            ctx.register_view(
                "winners",
                ctx.sql(
                    "SELECT f.cache_key, min(f.cache_write) AS cache_write FROM cached_files f "
                    "JOIN wanted w ON f.cache_key = w.k GROUP BY f.cache_key"
                ),
            )
        for name, schema in self.schemas.items():
            table = self._table(name) if ctx is not None else None
            if ctx is None or table is None:
                out[name] = scratch.spill(name, schema.empty_table())
                continue
            ctx.register_table(f"rows_{name}", table)
            columns = ", ".join(f't."{c}"' for c in schema.names)
            stream = ctx.sql(
                f"SELECT {columns} FROM rows_{name} t JOIN winners w "
                "ON t.cache_key = w.cache_key AND t.cache_write = w.cache_write"
            ).execute_stream()
            out[name] = scratch.write(name, schema, _conformed(stream, schema))
        return out

    def store(
        self, tables: Mapping[str, pa.Table | SpilledTable], keys_by_path: Mapping[str, str]
    ) -> int:
        """Append the rows of every file in ``keys_by_path`` that is safe to cache.

        Spilled tables stream from disk, a batch at a time. Returns the number of files
        stored. ``files`` goes last: it marks them complete.
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
        paths = pa.array(list(keep), pa.string())
        keys = pa.array(list(keep.values()), pa.string())
        write_id = uuid.uuid4().hex

        def tagged(batch: pa.RecordBatch) -> pa.RecordBatch:
            rows = batch.filter(pc.is_in(batch["path"], value_set=paths))
            positions = pc.index_in(rows["path"], value_set=paths)
            return rows.append_column("cache_key", keys.take(positions)).append_column(
                "cache_write", pa.array([write_id] * rows.num_rows, pa.string())
            )

        for name in [n for n in self.schemas if n != "files"] + ["files"]:
            table = tables.get(name)
            if table is None:
                continue
            source = table.batches() if isinstance(table, SpilledTable) else table.to_batches()
            schema = table.schema.append(pa.field("cache_key", pa.string())).append(
                pa.field("cache_write", pa.string())
            )
            self.lake.append_stream(f"{CACHE_DIR}/{name}", schema, (tagged(b) for b in source))
        return len(keep)

    def retain(self, keep: Collection[str]) -> int:
        """Drop every entry whose key is not in ``keep`` (and the losing copies of entries two
        builds stored at once); returns the rows removed. Each table is rewritten in one
        transaction, the marker table first, then vacuumed (files older than Delta's retention
        period only, so readers of older versions are safe).

        A build may be storing while this runs. Rows of a write this call did not see in the
        marker table are always kept, so no key whose marker survives loses its rows: the
        worst a race does is drop a marker, and that key is extracted again.
        """
        marker = self._table("files")
        if marker is None:
            return 0
        ctx = SessionContext()
        ctx.register_table("cached_files", marker)
        wanted = pa.table({"k": pa.array(sorted(keep), pa.string())})
        ctx.register_record_batches("keep", [wanted.to_batches() or [_empty_keys()]])
        ctx.register_view(
            "winners",
            ctx.sql(
                "SELECT f.cache_key, min(f.cache_write) AS cache_write FROM cached_files f "
                "JOIN keep k ON f.cache_key = k.k GROUP BY f.cache_key"
            ),
        )
        ctx.register_view("seen", ctx.sql("SELECT DISTINCT cache_write FROM cached_files"))
        removed = 0
        for name in ["files"] + [n for n in self.schemas if n != "files"]:
            table = marker if name == "files" else self._table(name)
            if table is None:
                continue
            ctx.register_table(f"rows_{name}", table)
            before = ctx.sql(f"SELECT count(*) AS n FROM rows_{name}").to_pylist()[0]["n"]
            winner = (
                "w.cache_key IS NOT NULL"
                if name == "files"
                else "w.cache_key IS NOT NULL OR s.cache_write IS NULL"
            )
            stream = ctx.sql(
                f"SELECT t.* FROM rows_{name} t LEFT JOIN winners w "
                "ON t.cache_key = w.cache_key AND t.cache_write = w.cache_write "
                f"LEFT JOIN seen s ON t.cache_write = s.cache_write WHERE {winner}"
            ).execute_stream()
            schema = (
                self.schemas[name]
                .append(pa.field("cache_key", pa.string()))
                .append(pa.field("cache_write", pa.string()))
            )
            kept = self.lake.replace_stream(
                f"{CACHE_DIR}/{name}", schema, _conformed(stream, schema)
            )
            removed += before - kept
            vacuumed = self._table(name)
            if vacuumed is not None:
                vacuumed.vacuum(dry_run=False)
        return removed


def _conformed(stream: Iterable[Any], schema: pa.Schema) -> Iterator[pa.RecordBatch]:
    """A DataFusion stream's batches with ``schema``'s columns, in its order and plain types."""
    for batch in stream:
        table = plain_strings(pa.Table.from_batches([batch.to_pyarrow()]))
        yield from table.select(schema.names).cast(schema).to_batches()


def _empty_keys() -> pa.RecordBatch:
    return pa.RecordBatch.from_pylist([], schema=pa.schema([("k", pa.string())]))
