"""Which file-local rows of a flat output a build computes, and which it links from an
earlier partition (``cpg.locality`` says which rows are file-local).

The file-local rows of a flat output (``cpg_nodes``, ``cpg_edges``, ``cpg_props``) are
written one file per group of id buckets (128 groups: ``storage.buckets.LocalBuckets``), a
file's rows being those of the files whose paths fall in its group. Each footer is signed
with what every file's rows were computed with: the code and the build's options
(``reuse.input_fingerprint`` without the files), the package layout (which decides qualified
names; a function of the commit's paths, ``extract.packages``), the parts that are
file-local, and the count of groups (``layout_signature``). A later build of the same
repository takes the earlier partition the bucketed maps would take; if its files carry the
same signature, the groups that hold none of the paths changed between the two commits
(added, removed, or another blob) keep their files. A changed group's file is written anew
from its earlier file's rows of the file codes no changed path has (carried over:
``carried_rows``; a file code is the first four hex characters of every id of a file's rows,
``normalize.ids``) and the file-local parts computed over the files of the changed paths'
codes only: the changed files themselves but for a rare file sharing a code with one (about
14 files a group in the standard library). Every other part (resolution, packages,
externals) is computed whole and written as files of no group.

Why by file code and not by bucket: computing the files of the changed paths' buckets (about
7 a bucket in the standard library) cost a commit of 1 % of its files 146 files' rows where
18 changed, most of the file-local parts' time.

What guards the promise that a part is file-local: its rows are computed from tables
restricted to the changed codes' files, and a computed row of any other code is rejected
(``only_computed``; the writer likewise rejects a row of a group it was not told to
rewrite) with ``StrayBucketError``; the build then writes the output whole. What it cannot
catch is a part whose rows read another file's evidence through a table without a ``path``
column: a part is declared file-local only when it reads per-file tables joined on ``path``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from datafusion import DataFrame, SessionContext

from codeanatomy_assets.cpg.locality import LocalParts
from codeanatomy_assets.extract.packages import packages_table
from codeanatomy_assets.normalize.ids import file_code, sql_literal
from codeanatomy_assets.pipeline.bucket_layout import files_union
from codeanatomy_assets.pipeline.run_context import RunContext, current_run, run_scratch
from codeanatomy_assets.repo.git import BlobEntry
from codeanatomy_assets.storage import buckets
from codeanatomy_assets.storage.buckets import (
    BUCKET_HEX_CHARS,
    FILE_CODE_HEX_CHARS,
    LocalBuckets,
    StrayBucketError,
    bucket_group,
    file_codes,
)
from codeanatomy_assets.storage.lake import Lake, LakeError
from codeanatomy_assets.storage.scratch import SpilledTable

log = logging.getLogger(__name__)

EntryKey = tuple[str, int, str | None]
# A build whose flat outputs compute the rows of at most this share of the commit's files
# writes them two at a time (``LocalLayout.few``).
FEW_FILES_SHARE = 0.1


def entry_keys(entries: Iterable[BlobEntry]) -> dict[str, EntryKey]:
    """Each path of a commit with what decides its evidence: its blob, mode and skip reason."""
    return {e.path: (e.blob_id, e.mode, e.skipped) for e in entries}


def inputs_signature(fingerprint: str, entries: Iterable[BlobEntry]) -> str:
    """What every file's rows read besides the file: ``fingerprint`` (the code and the
    build's options) and the package layout of the commit's extracted paths, row by row
    (import roots decide the qualified names the rows carry)."""
    packages = packages_table([e.path for e in entries if e.skipped is None])
    rows = sorted(json.dumps(r, sort_keys=True) for r in packages.to_pylist())
    record = {"inputs": fingerprint, "packages": rows}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


@dataclass(eq=False)
class LocalInputs:
    """What a build's file-local rows are made from, beyond each file: ``signature`` (code,
    options and package layout: ``inputs_signature``), the commit's ``entries``, and
    ``read_entries``, those of another commit (``entries_at`` memoizes it, one call at a
    time: a build's writes may run on several threads)."""

    signature: str
    entries: Mapping[str, EntryKey]
    read_entries: Callable[[str], Mapping[str, EntryKey]]
    _seen: dict[str, Mapping[str, EntryKey]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def entries_at(self, commit: str) -> Mapping[str, EntryKey]:
        with self._lock:
            if commit not in self._seen:
                self._seen[commit] = self.read_entries(commit)
            return self._seen[commit]


@dataclass(frozen=True)
class LocalLayout:
    """How one flat output's file-local rows are written: ``buckets`` (its signature, and
    the groups rows may fall in); ``keep``, an earlier partition's files of the other
    groups; ``paths``, the files whose rows are computed (None: all), those of the file
    codes ``computed``; ``carry``, the earlier files of the groups rewritten, whose rows of
    the other codes are written again as they were (``carried_rows``); ``few``, whether the
    files computed are at most ``FEW_FILES_SHARE`` of the commit's (``pipeline.node_threads``
    lets two such writes run at once)."""

    buckets: LocalBuckets
    keep: tuple[Path, ...] = ()
    paths: tuple[str, ...] | None = None
    base: str | None = None
    computed: frozenset[str] | None = None
    carry: tuple[Path, ...] = ()
    few: bool = False


def layout_signature(inputs: str, local_parts: list[str]) -> str:
    """What an output's group files are signed with: ``inputs`` (``inputs_signature``), its
    file-local parts, and how rows are grouped (``storage.buckets.LOCAL_GROUPS``): a group is
    named by its number, so a file written with another count of groups holds other buckets
    under the same name, and must not be linked or carried (a lake written with 64 groups
    would otherwise have had its files taken for the 128 groups of the same names)."""
    record = {"inputs": inputs, "parts": local_parts, "groups": buckets.LOCAL_GROUPS}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def local_layout(
    local: LocalParts, parts: tuple[str, ...], lake: Lake, name: str, repo_id: str,
    commit: str, schema: pa.Schema, *, link: bool = True,
) -> LocalLayout | None:  # fmt: skip
    """The layout of output ``name``'s file-local ``parts``; None when they are written
    with the others (outside a build, a lake that is not local). Without ``link``, or with
    no earlier partition signed alike, every file's rows are computed."""
    run = current_run()
    if run is None or not lake.is_local:
        return None
    inputs = run.attributes.get("local_inputs")
    if not isinstance(inputs, LocalInputs):
        return None
    signature = layout_signature(inputs.signature, [parts[i] for i in sorted(local.indices)])
    whole = LocalLayout(LocalBuckets(local.key, signature))
    if not link:
        return whole
    prefer = run.attributes.get("bucket_bases", ())
    try:
        earlier = lake.earlier_local_files(name, repo_id, commit, schema, signature, prefer)
        if earlier is None:
            return whole
        base, files = earlier
        before = inputs.entries_at(base)
    except (LakeError, OSError, KeyError, ValueError) as exc:  # a log or a commit gone
        log.warning("%s: no earlier file-local rows linked: %s", name, exc)
        return whole
    now = inputs.entries
    changed = {p for p in before.keys() | now.keys() if before.get(p) != now.get(p)}
    computed = frozenset(file_code(p, "") for p in changed)
    rewrite = frozenset(bucket_group(c[:BUCKET_HEX_CHARS]) for c in computed)
    keep = tuple(path for g, path in sorted(files.items()) if g not in rewrite)
    carry = tuple(path for g, path in sorted(files.items()) if g in rewrite)
    paths = tuple(sorted(p for p in now if file_code(p, "") in computed))
    few = len(paths) <= FEW_FILES_SHARE * len(now)
    return LocalLayout(
        LocalBuckets(local.key, signature, rewrite), keep, paths, base, computed, carry, few
    )


def carried_rows(ctx: SessionContext, layout: LocalLayout, schema: pa.Schema) -> DataFrame | None:
    """The rows of ``layout.carry`` (read with ``schema``) of the file codes not computed: a
    rewritten group's rows of unchanged files, which are what computing them would give (a
    file-local row is its file's, and shares its file code). None when nothing is carried."""
    if not layout.carry or layout.computed is None:
        return None
    key = layout.buckets.key
    listed = ", ".join(sql_literal(b) for b in sorted(layout.computed))
    condition = f'substr("{key}", 1, {FILE_CODE_HEX_CHARS}) NOT IN ({listed})'
    return files_union(ctx, "carried", schema, layout.carry, dict.fromkeys(layout.carry, condition))


def all_carried(tables: Iterable[pa.Table], layout: LocalLayout) -> Iterator[pa.Table]:
    """``tables`` (``carried_rows``' stream), then ``FileNotFoundError`` if a carried file is
    gone: DataFusion reads a file it does not find as no rows, so a file removed before its
    scan (a vacuum of the earlier partition) would have been carried over as nothing."""
    yield from tables
    for path in layout.carry:
        if not path.exists():
            raise FileNotFoundError(2, "an earlier file went away before it was read", str(path))


def only_computed(tables: Iterable[pa.Table], layout: LocalLayout) -> Iterator[pa.Table]:
    """``tables`` (a file-local part's rows), raising ``StrayBucketError`` at a row whose
    ``layout.buckets.key`` has a file code not computed: it would stand beside the same row
    carried over (``carried_rows``), or in place of a row of a file left as it was."""
    if layout.computed is None:
        yield from tables
        return
    permitted = np.zeros(16**FILE_CODE_HEX_CHARS, bool)
    permitted[[int(c, 16) for c in layout.computed]] = True
    for table in tables:
        codes = file_codes(table.column(layout.buckets.key))
        stray = codes[~permitted[codes]]
        if len(stray):
            raise StrayBucketError(
                f"a file-local row of file code {int(stray[0]):0{FILE_CODE_HEX_CHARS}x}, whose "
                f"files this build did not compute (it computed {len(layout.computed)} codes)"
            )
        yield table


def restrict_to_files(
    ctx: SessionContext, tables: Iterable[str], paths: tuple[str, ...], pushdown: bool = False
) -> None:
    """Make every table of ``tables`` in ``ctx`` that has a ``path`` column hold only the
    rows of ``paths``: the per-file tables a file-local part reads. ``pushdown``: the
    session's own filter pushdown, which it has again afterwards (``cpg.views.ViewSpec``).

    Inside a build each table's rows of ``paths`` are spilled once (``storage.scratch``) and
    read by every session restricted alike: the flat outputs and the per-file views read the
    same tables, and as a filtered view each of their parts scanned a whole table again (the
    standard library's ``ast_node_ids``, 2.9 M rows: 0.15 s a part, a dozen parts an
    output)."""
    listed = ", ".join(sql_literal(p) for p in paths) or "NULL"
    run = current_run()
    if run is not None:  # for the spills' scans only (a frame keeps the settings it was made with)
        ctx.sql(f"SET {_PUSHDOWN} = true")
    try:
        for table in tables:
            if "path" not in ctx.table(table).schema().names:
                continue
            kept = ctx.sql(f'SELECT * FROM "{table}" WHERE path IN ({listed})')
            ctx.deregister_table(table)
            if run is None:
                ctx.register_view(table, kept)
            else:
                _restricted(run, table, paths, kept).register(ctx, table)
    finally:
        if run is not None:  # back to the session's own setting
            ctx.sql(f"SET {_PUSHDOWN} = {'true' if pushdown else 'false'}")


# A scan for a few files' rows decodes the ``path`` column first and the others only for
# the rows it keeps (late materialization): rows are in no order of path, so row groups'
# statistics skip next to nothing. The standard library's 3.7 M nodes, 5 files' rows:
# 0.27 s without, 0.09 s with.
_PUSHDOWN = "datafusion.execution.parquet.pushdown_filters"


_RESTRICTED_LOCK = threading.Lock()


def _restricted(
    run: RunContext, table: str, paths: tuple[str, ...], kept: DataFrame
) -> SpilledTable:
    """``kept`` (table ``table``'s rows of ``paths``), spilled the first time the build asks
    (a node's name is one table for the whole run)."""
    with _RESTRICTED_LOCK:
        cache = run.attributes.setdefault("restricted_tables", {})
        found = cache.get((table, paths))
        if found is None:
            found = run_scratch().write(
                f"{table}-restricted",
                kept.schema(),
                (batch.to_pyarrow() for batch in kept.execute_stream()),
            )
            cache[(table, paths)] = found
        return found
