"""A run's scratch space: tables too big to hold in memory, as Parquet files on local disk.

The evidence of a large commit and the intermediate views over it are gigabytes of Arrow
(the standard library: about 1.2 GB of evidence, as much again of intermediates). Held in
memory until the run ends, they set the build's peak; spilled here, a view reads only the
columns it projects, batch by batch, and the process holds what one view needs.

A ``SpilledTable`` is an immutable directory of Parquet files with its Arrow schema and row
count. It keeps its ``Scratch`` alive; the scratch directory goes when the build cleans it up
(``Scratch.cleanup``) or, for a scratch made outside a build, when nothing refers to it any
more. Pickled (a Dask task's argument, a Hamilton cache entry), a spilled table travels as the
``pyarrow.Table`` it holds: the files are local to this machine and to this run.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from datafusion import SessionContext

from codeanatomy_assets.normalize.ids import sql_literal
from codeanatomy_assets.storage.arrow_types import parquet_writable
from codeanatomy_assets.storage.partition_files import link_or_copy

# Scratch files live for one run and are read once or a few times: no compression (it
# halved write speed and saved nothing the page cache cared about); dictionary encoding, on by
# default, already shrinks the repeated paths and kinds about fivefold. Row groups of 128 Ki
# rows let a scan split a file across DataFusion's partitions.
_ROW_GROUP_ROWS = 128 * 1024
_COMPRESSION = "none"
# Footer key of a spilled file's rows per path (``path_counts``), written when its table has
# a ``path`` column: the caches keep these files, and a build reads every cached file's paths.
PATH_COUNTS_KEY = b"codeanatomy.path_counts"
SCRATCH_ENV = "CODEANATOMY_SCRATCH_DIR"


class Scratch:
    """One directory under the system temp dir (or ``$CODEANATOMY_SCRATCH_DIR``), removed by
    ``cleanup`` or when the last table in it is garbage."""

    def __init__(self, parent: str | None = None) -> None:
        root = parent or os.environ.get(SCRATCH_ENV) or None
        try:
            if root is not None:
                Path(root).mkdir(parents=True, exist_ok=True)
            self.path = Path(tempfile.mkdtemp(prefix="codeanatomy-scratch-", dir=root))
        except OSError as exc:
            where = f"{SCRATCH_ENV}={root!r}" if root and not parent else repr(root)
            raise ValueError(
                f"scratch directory {where} is not usable ({exc.strerror}): set "
                f"{SCRATCH_ENV} to a writable local directory, or unset it for the system temp"
            ) from exc
        self._finalizer = weakref.finalize(self, shutil.rmtree, str(self.path), True)

    def cleanup(self) -> None:
        """Remove the directory and everything spilled into it (idempotent)."""
        self._finalizer()

    def new_dir(self, name: str) -> Path:
        """A fresh, empty directory for one table (``name`` is for people reading ``ls``)."""
        directory = self.path / f"{name}-{uuid.uuid4().hex[:12]}"
        directory.mkdir()
        return directory

    def write(
        self, name: str, schema: pa.Schema, batches: Iterable[pa.RecordBatch]
    ) -> SpilledTable:
        """Spill ``batches`` (all of ``schema``) as table ``name``; see ``TableWriter``."""
        writer = TableWriter(self, name, schema)
        try:
            for batch in batches:
                writer.write(batch)
        except BaseException:
            writer.abandon()
            raise
        return writer.close()

    def spill(self, name: str, table: pa.Table) -> SpilledTable:
        """An in-memory table, spilled."""
        return self.write(name, table.schema, table.to_batches())


class TableWriter:
    """Batches streamed into one Parquet file of a fresh directory; ``close`` seals it."""

    def __init__(self, scratch: Scratch, name: str, schema: pa.Schema) -> None:
        self.scratch = scratch
        self.schema = parquet_writable(schema)  # batches are cast to it in ``write``
        self.directory = scratch.new_dir(name)
        self._writer = pq.ParquetWriter(
            str(self.directory / "part-0.parquet"), self.schema, compression=_COMPRESSION
        )
        self.rows = 0
        counted = "path" in self.schema.names and self.schema.field("path").type == pa.string()
        self._paths: Counter[str] | None = Counter() if counted else None

    def write(self, batch: pa.RecordBatch | pa.Table) -> None:
        if batch.num_rows:  # an empty batch would add an empty row group
            if not batch.schema.equals(self.schema):  # nullability, a string view...
                batch = batch.cast(self.schema)
            if isinstance(batch, pa.RecordBatch):
                self._writer.write_batch(batch, row_group_size=_ROW_GROUP_ROWS)
            else:
                self._writer.write_table(batch, row_group_size=_ROW_GROUP_ROWS)
            self.rows += batch.num_rows
            if self._paths is not None:
                self._paths.update(_value_counts(batch.column("path")))

    def close(self) -> SpilledTable:
        if self._paths is not None and None not in self._paths:
            self._writer.add_key_value_metadata({PATH_COUNTS_KEY: json.dumps(self._paths)})
        self._writer.close()
        return SpilledTable(self.scratch, str(self.directory), self.schema, self.rows)

    def abandon(self) -> None:
        """Drop what was written (a failed stream must not leave a half table behind)."""
        self._writer.close()
        shutil.rmtree(self.directory, ignore_errors=True)


def _from_table(table: pa.Table) -> pa.Table:
    return table


@dataclass(frozen=True, eq=False)
class SpilledTable:
    """A table spilled to ``directory``: what DataFusion scans, never changed once made.

    ``keep_paths`` and ``drop_paths`` make some of its files count only in part: for a file
    named in the first, only the rows whose ``path`` is in its set belong to the table; for
    one named in the second, all rows but those (``adopt`` picks the shorter list). Every
    reader here (``register``, ``read``, ``batches``) applies them.
    """

    scratch: Scratch
    directory: str
    schema: pa.Schema
    num_rows: int
    keep_paths: Mapping[str, frozenset[str]] = field(default_factory=dict)
    drop_paths: Mapping[str, frozenset[str]] = field(default_factory=dict)
    # The files read whole of a filtered table, linked into a directory of their own once
    # (``register``): scanned as one table, not one per file.
    _whole: list[str] = field(default_factory=list, init=False, repr=False)

    @property
    def filtered(self) -> bool:
        """Whether some file's rows count only in part."""
        return bool(self.keep_paths or self.drop_paths)

    def files(self) -> list[Path]:
        """The table's Parquet files, in the order its rows are read."""
        return sorted(Path(self.directory).glob("*.parquet"))

    def read(self) -> pa.Table:
        """The whole table in memory (for code that needs it all; views scan instead)."""
        if not self.filtered:
            return pq.read_table(self.directory, schema=self.schema)
        return pa.Table.from_batches(list(self.batches()), schema=self.schema)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The rows, a record batch at a time, file after file."""
        # Filtered with plain strings: pyarrow has no is_in or take kernel for string views,
        # which the per-file views' files hold at the top level (``pipeline.view_cache``).
        plain = pa.schema(
            [
                f.with_type(pa.string()) if pa.types.is_string_view(f.type) else f
                for f in self.schema
            ]
        )
        for path in self.files():
            keep, drop = self.keep_paths.get(path.name), self.drop_paths.get(path.name)
            listed = keep if keep is not None else drop
            paths = None if listed is None else pa.array(sorted(listed), pa.string())
            for batch in pq.ParquetFile(path).iter_batches(batch_size=64 * 1024):
                if paths is not None:
                    batch = batch.cast(plain)
                    listed_rows = pc.is_in(batch["path"], paths)
                    batch = batch.filter(
                        listed_rows if keep is not None else pc.invert(listed_rows)
                    )
                if not batch.schema.equals(self.schema):
                    batch = batch.cast(self.schema)
                yield batch

    def register(self, ctx: SessionContext, name: str) -> None:
        """Make the table scannable as ``name`` in ``ctx``, with its exact Arrow schema."""
        if not self.filtered:
            ctx.register_parquet(name, self.directory, schema=self.schema)
            return
        selects = []
        whole = self._whole_directory()
        if whole is not None:
            ctx.register_parquet(f"{name}__whole", whole, schema=self.schema)
            selects.append(f'SELECT * FROM "{name}__whole"')
        for i, path in enumerate(self.files()):
            keep, drop = self.keep_paths.get(path.name), self.drop_paths.get(path.name)
            if keep is None and drop is None:
                continue
            ctx.register_parquet(f"{name}__{i}", str(path), schema=self.schema)
            if drop is not None:  # a few paths: a list of literals, no join
                listed = ", ".join(sql_literal(p) for p in sorted(drop))
                selects.append(f'SELECT * FROM "{name}__{i}" WHERE path NOT IN ({listed})')
                continue
            assert keep is not None
            paths = pa.table({"path": pa.array(sorted(keep), pa.string())})
            ctx.register_record_batches(f"{name}__keep{i}", [paths.to_batches()])
            selects.append(
                f'SELECT * FROM "{name}__{i}" WHERE path IN (SELECT path FROM "{name}__keep{i}")'
            )
        ctx.register_view(name, ctx.sql(" UNION ALL ".join(selects)))

    def _whole_directory(self) -> str | None:
        """A directory of links to the files every row of which belongs to the table (None if
        there is none). A cache loaded after many builds has one file per build, most of them
        whole: as one listing table they are planned and scanned as one (a GROUP BY over 256
        files ran in 0.40-0.44 s so, 0.80-0.86 s as a UNION of one table per file)."""
        if not self._whole:
            whole = [
                p
                for p in self.files()
                if p.name not in self.keep_paths and p.name not in self.drop_paths
            ]
            if not whole:
                return None
            directory = self.scratch.new_dir(f"{Path(self.directory).name}-whole")
            for path in whole:
                link_or_copy(path, directory / path.name)
            self._whole.append(str(directory))
        return self._whole[0]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_from_table, (self.read(),))


def union(scratch: Scratch, name: str, parts: Iterable[SpilledTable]) -> SpilledTable:
    """One table of several spilled parts with one schema: their files, hard-linked (a copy
    where links are not allowed) into a new directory, so every part stays as it was."""
    parts = list(parts)
    if not parts:
        raise ValueError(f"{name}: no parts")
    directory = scratch.new_dir(name)
    rows = 0
    keep_paths: dict[str, frozenset[str]] = {}
    drop_paths: dict[str, frozenset[str]] = {}
    for i, part in enumerate(parts):
        if not part.schema.equals(parts[0].schema):
            raise ValueError(f"{name}: parts have different schemas")
        rows += part.num_rows
        for j, source in enumerate(part.files()):
            target = directory / f"part-{i}-{j}.parquet"
            link_or_copy(source, target)
            if source.name in part.keep_paths:
                keep_paths[target.name] = part.keep_paths[source.name]
            if source.name in part.drop_paths:
                drop_paths[target.name] = part.drop_paths[source.name]
    return SpilledTable(scratch, str(directory), parts[0].schema, rows, keep_paths, drop_paths)


def adopt(
    scratch: Scratch,
    name: str,
    schema: pa.Schema,
    files: Sequence[tuple[Path, frozenset[str] | None]],
) -> SpilledTable:
    """A table of existing Parquet files of ``schema`` (another store's, such as the evidence
    cache), hard-linked (copied where links are not allowed), not rewritten: of a file given
    with a set of paths, only those paths' rows belong to the table (``keep_paths``).

    Why: a commit that changes one file of the standard library loads the other 1,790 files'
    evidence from the cache; copying their 2.9 M AST rows into new files took 1.9 s of the
    2.9 s load, linking and filtering where they are read takes milliseconds. A file is
    filtered by the shorter list: the paths kept, or the paths dropped (that one file of the
    1,790, for every scan of the table); one whose paths are all kept is not filtered.
    """
    directory = scratch.new_dir(name)
    rows = 0
    keep_paths: dict[str, frozenset[str]] = {}
    drop_paths: dict[str, frozenset[str]] = {}
    for i, (source, keep) in enumerate(files):
        target = directory / f"part-{i}.parquet"
        link_or_copy(source, target)
        if keep is None:
            rows += pq.ParquetFile(target).metadata.num_rows
            continue
        present = path_counts(target)
        dropped = frozenset(present) - keep
        rows += sum(n for p, n in present.items() if p in keep)
        if not dropped:
            continue
        if len(dropped) <= len(keep):
            drop_paths[target.name] = dropped
        else:
            keep_paths[target.name] = keep
    return SpilledTable(scratch, str(directory), schema, rows, keep_paths, drop_paths)


def path_counts(file: Path) -> dict[str, int]:
    """The rows of each path in a Parquet file with a ``path`` column: from its footer when a
    ``TableWriter`` wrote it, else read as a dictionary column (the stdlib's 2.9 M syntax rows:
    0.34 s as strings, 0.07 s so). A build reads every file of every cache it loads (about
    twenty tables), one more per commit built since the cache's last retention: after 30
    one-file commits of the stdlib, 644 files and 0.84 s of each build."""
    raw = (pq.read_metadata(file).metadata or {}).get(PATH_COUNTS_KEY)
    if raw is not None:
        return {str(p): int(n) for p, n in json.loads(raw).items()}
    # Each row group brings a dictionary of its own; value_counts unifies them.
    return _value_counts(pq.read_table(file, columns=["path"], read_dictionary=["path"])["path"])


def _value_counts(column: pa.Array | pa.ChunkedArray) -> dict[str, int]:
    counts = pc.value_counts(column)
    values, rows = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
    return dict(zip(values, rows, strict=True))


def spill_parts(
    scratch: Scratch, schemas: Mapping[str, pa.Schema], parts: Iterable[Mapping[str, pa.Table]]
) -> dict[str, SpilledTable]:
    """Tables that arrive in parts (a chunk of files' worth of each), spilled as they come:
    one table per name of ``schemas`` (empty if no part had it); a part's table is cast to
    its name's schema (``TableWriter.write``)."""
    writers = {name: TableWriter(scratch, name, schema) for name, schema in schemas.items()}
    try:
        for part in parts:
            for name, table in part.items():
                writers[name].write(table)
    except BaseException:
        for writer in writers.values():
            writer.abandon()
        raise
    return {name: writer.close() for name, writer in writers.items()}
