"""Which file-local rows of a flat output a build computes, and which it links from an
earlier partition (``cpg.locality`` says which rows are file-local).

The file-local rows of a flat output (``cpg_nodes``, ``cpg_edges``, ``cpg_props``) are
written one file per group of id buckets (16 groups: ``storage.buckets.LocalBuckets``), a
file's rows being those of the files whose paths fall in its group. Each footer is signed
with what every file's rows were computed with: the code and the build's options
(``reuse.input_fingerprint`` without the files), the package layout (which decides
qualified names; a function of the commit's paths, ``extract.packages``), and the parts
that are file-local. A later build of the same repository takes
the earlier partition the bucketed maps would take; if its files carry the same signature,
the groups that hold none of the paths changed between the two commits (added, removed, or
another blob) keep their files, and the file-local parts are computed over the changed
groups' files only. Every other part (resolution, packages, externals) is computed whole and
written as files of no group.

What guards the promise that a part is file-local: its rows are computed from tables
restricted to the changed groups' files, and the writer rejects a row of any other group
(``StrayBucketError``); the build then writes the output whole. What it cannot catch is a
part whose rows read another file's evidence through a table without a ``path`` column: a
part is declared file-local only when it reads per-file tables joined on ``path``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from datafusion import SessionContext

from codeanatomy_assets.cpg.locality import LocalParts
from codeanatomy_assets.extract.packages import packages_table
from codeanatomy_assets.normalize.ids import bucket, sql_literal
from codeanatomy_assets.pipeline.run_context import current_run
from codeanatomy_assets.repo.git import BlobEntry
from codeanatomy_assets.storage.buckets import LOCAL_GROUP_CHARS, LocalBuckets
from codeanatomy_assets.storage.lake import Lake, LakeError

log = logging.getLogger(__name__)

EntryKey = tuple[str, int, str | None]


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
    the buckets rows may fall in); ``keep``, an earlier partition's files of the other
    buckets; ``paths``, the files whose rows are computed (None: all)."""

    buckets: LocalBuckets
    keep: tuple[Path, ...] = ()
    paths: tuple[str, ...] | None = None
    base: str | None = None


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
    record = {"inputs": inputs.signature, "parts": [parts[i] for i in sorted(local.indices)]}
    signature = hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()
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
    rewrite = frozenset(_group(p) for p in changed)
    keep = tuple(path for g, path in sorted(files.items()) if g not in rewrite)
    paths = tuple(sorted(p for p in now if _group(p) in rewrite))
    return LocalLayout(LocalBuckets(local.key, signature, rewrite), keep, paths, base)


def _group(path: str) -> str:
    """The group of buckets a file's rows are filed in (``storage.buckets.LocalBuckets``)."""
    return bucket(path, "")[:LOCAL_GROUP_CHARS]


def restrict_to_files(ctx: SessionContext, tables: Iterable[str], paths: tuple[str, ...]) -> None:
    """Make every table of ``tables`` in ``ctx`` that has a ``path`` column hold only the
    rows of ``paths``: the per-file tables a file-local part reads."""
    listed = ", ".join(sql_literal(p) for p in paths) or "NULL"
    for table in tables:
        if "path" not in ctx.table(table).schema().names:
            continue
        kept = ctx.sql(f'SELECT * FROM "{table}" WHERE path IN ({listed})')
        ctx.deregister_table(table)
        ctx.register_view(table, kept)
