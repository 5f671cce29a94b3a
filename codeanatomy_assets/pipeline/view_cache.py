"""Per-file views, cached file by file across builds (``cpg.locality.PerFile``).

The ids of a file's syntax nodes, scopes, blocks and symbols, its definitions, its references
as dotted paths and their sites, which symbol each of its name uses means, and what a read
refers to when no import is among its bindings, are computed from that file's evidence
alone. On the standard library the first of them took about 4.5 s of every build, a
one-file commit's included. A commit now computes them for
the files the cache does not hold (the changed ones) and takes every other file's rows from
the cache; the views downstream read the two together, as one table.

The cache is the evidence cache's store (``storage.evidence_cache``: content keys, a marker
table written last, files linked rather than copied), one per view, under
``<lake>/_view_cache/<view>-<signature>/``. A file's key hashes what its rows are made of:
its blob and path, the extractor version (which decides its evidence), the import root its
module is named from (the one thing of the package layout its rows carry), the repository id
(hashed into every id), and the view's task signature (its SQL and that of every view it
reads). A file whose evidence is not in the evidence cache (a timeout, a crashed worker) is
computed every time and never stored.

What makes a view safe to cache so: it reads per-file tables only, joined on ``path``
(``plan.execution_plan`` checks its dependencies), and the rows computed for the missing
files come from tables restricted to those files (``local_layout.restrict_to_files``). A
row of another file among them would be a bug: the view is then computed over every file,
with a warning, and neither taken from nor stored in the cache.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from codeanatomy_assets.extract.ast_extract import module_name_for
from codeanatomy_assets.extract.packages import file_roots
from codeanatomy_assets.pipeline.run_context import current_run, run_scratch
from codeanatomy_assets.plan.execution_plan import compile_execution_plan
from codeanatomy_assets.repo.git import BlobEntry
from codeanatomy_assets.storage.evidence_cache import MARKER, EvidenceCache, cache_key
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import SpilledTable, path_counts, union

log = logging.getLogger(__name__)

VIEW_CACHE_DIR = "_view_cache"
# The marker's own columns: which paths a write holds.
_PATHS = pa.schema([pa.field("path", pa.string())])
_SIGNATURE_CHARS = 16


def view_key(entry: BlobEntry, root: str, extractor: str, signature: str, repo_id: str) -> str:
    """The content key of one file's rows of a per-file view."""
    evidence = cache_key(entry.blob_id, entry.path, module_name_for(entry.path), extractor)
    raw = "\x1f".join((evidence, root, signature, repo_id)).encode()
    return hashlib.sha256(raw).hexdigest()[:32]


def view_keys(
    entries: Sequence[BlobEntry], extractor: str, signature: str, repo_id: str
) -> dict[str, str]:
    """The key of each regular file of a commit (``entries``); skipped entries get none."""
    regular = [e for e in entries if e.skipped is None]
    roots = file_roots([e.path for e in regular])
    return {e.path: view_key(e, roots[e.path], extractor, signature, repo_id) for e in regular}


def cache_directory(name: str, signature: str) -> str:
    """Where view ``name``'s cache lives, under the lake root: one directory per signature,
    so a new version of the view (or of one it reads) starts an empty cache and retention
    can drop the old one whole."""
    return f"{VIEW_CACHE_DIR}/{name}-{signature[:_SIGNATURE_CHARS]}"


def view_cache(lake: Lake, name: str, signature: str, schema: pa.Schema) -> EvidenceCache:
    """The cache of per-file view ``name`` at ``signature``, its rows of ``schema``."""
    return EvidenceCache(
        lake, signature, {MARKER: _PATHS, name: schema}, cache_directory(name, signature)
    )


def cache_schema(schema: pa.Schema) -> pa.Schema:
    """A view's schema as its cache stores it: every column nullable, so the rows computed
    over a few files and those planned over all of them (which DataFusion may type with
    different nullability) are one table."""
    return pa.schema([f.with_nullable(True) for f in schema], metadata=schema.metadata)


@dataclass(eq=False)
class ViewInputs:
    """What a build's per-file views are computed from, besides each file's evidence: the
    commit's ``entries`` and the repository id; ``evidence``, the evidence cache, whose
    version is the extractor's and which tells whose evidence is cached (only those files'
    rows are stored). Set by ``build_commit`` as the run attribute ``view_inputs`` when the
    lake is local and the evidence cache on."""

    lake: Lake
    repo_id: str
    entries: Sequence[BlobEntry]
    evidence: EvidenceCache
    _cached: frozenset[str] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def cached_evidence(self) -> frozenset[str]:
        """The paths whose evidence the evidence cache holds (asked once, after extraction:
        a per-file view runs after the evidence node)."""
        with self._lock:
            if self._cached is None:
                keys = {
                    e.path: cache_key(
                        e.blob_id, e.path, module_name_for(e.path), self.evidence.version
                    )
                    for e in self.entries
                    if e.skipped is None
                }
                hits = self.evidence.hits(list(keys.values()))
                self._cached = frozenset(p for p, k in keys.items() if k in hits)
            return self._cached

    def keys(self, signature: str) -> dict[str, str]:
        """The key of each file whose rows may be cached (its evidence is)."""
        cached = self.cached_evidence()
        keys = view_keys(self.entries, self.evidence.version, signature, self.repo_id)
        return {p: k for p, k in keys.items() if p in cached}


# Computes the view over the files given (None: every file), into the run's scratch space,
# with the schema given (the cache's).
Compute = Callable[[tuple[str, ...] | None], SpilledTable]


def per_file_view(
    name: str, signature: str, schema: Callable[[], pa.Schema], compute: Compute
) -> SpilledTable | None:
    """View ``name``'s rows: cached ones for the files the cache holds, ``compute``d ones for
    the others, which are stored for next time. None outside a build that caches views.

    ``schema`` plans the view's schema; it is asked for only when nothing is computed."""
    run = current_run()
    inputs = run.attributes.get("view_inputs") if run is not None else None
    if run is None or not isinstance(inputs, ViewInputs):
        return None
    started = time.perf_counter()
    keys = inputs.keys(signature)
    probe = view_cache(inputs.lake, name, signature, _PATHS)
    hits = probe.hits(list(keys.values()))
    todo = tuple(sorted(e.path for e in inputs.entries if keys.get(e.path) not in hits))
    computed = compute(todo if hits else None) if todo or not hits else None
    if computed is not None and hits and not _paths_of(computed) <= set(todo):
        log.warning(
            "%s: rows of files it was not computed for; computing every file, without the "
            "view cache",
            name,
        )
        run.collector.record("view_cache", node=name, stray=True, computed=len(inputs.entries))
        return compute(None)
    cache = view_cache(
        inputs.lake, name, signature, computed.schema if computed is not None else schema()
    )
    computed_at = time.perf_counter()
    stored = 0
    if computed is not None:
        fresh = {p: keys[p] for p in todo if p in keys}
        marker = pa.table({"path": pa.array(sorted(fresh), pa.string())})
        stored = cache.store({name: computed, MARKER: marker}, fresh)
    stored_at = time.perf_counter()
    result = computed
    if hits:
        loaded = cache.load(
            [k for k in keys.values() if k in hits],
            run_scratch(),
            lambda detail: run.collector.record("cache_compaction", node=name, **detail),
        )[name]
        result = loaded if computed is None else union(run_scratch(), name, [computed, loaded])
    assert result is not None
    run.collector.record(
        "view_cache",
        node=name,
        cached=len(hits),
        computed=len(todo),
        stored=stored,
        compute_s=round(computed_at - started, 3),
        store_s=round(stored_at - computed_at, 3),
        load_s=round(time.perf_counter() - stored_at, 3),
    )
    return result


def _paths_of(table: SpilledTable) -> set[str]:
    """The files ``table``'s rows are of."""
    found: set[str] = set()
    for path in table.files():
        found.update(path_counts(Path(path)))
    return found


def per_file_signatures() -> dict[str, str]:
    """The task signature of each per-file view, in the plan builds use now."""
    return {t.name: t.task_signature for t in compile_execution_plan().tasks if t.per_file}


def retain_view_caches(
    lake: Lake, commits: Iterable[tuple[str, Sequence[BlobEntry]]], extractor: str
) -> int:
    """Drop the cached rows of per-file views that no build of ``commits`` (each a repository
    id and the commit's entries) would read, with the extractor version given, and delete the
    caches of earlier versions of the views whole; returns the rows removed (local lakes only:
    a build stores views only there)."""
    if not lake.is_local:
        return 0
    signatures = per_file_signatures()
    commits = list(commits)
    removed = 0
    for name, signature in signatures.items():
        rows = Path(lake.table_uri(cache_directory(name, signature))) / name
        files = sorted(rows.rglob("*.parquet"))
        if not files:
            continue
        keep: set[str] = set()
        for repo_id, entries in commits:
            keep.update(view_keys(entries, extractor, signature, repo_id).values())
        # The schema its rows were written with (``cache_schema``), from one of its files.
        cache = view_cache(lake, name, signature, pq.read_schema(files[0]))
        removed += cache.retain(keep)
    current = {cache_directory(n, s).rpartition("/")[2] for n, s in signatures.items()}
    root = Path(lake.table_uri(VIEW_CACHE_DIR))
    for directory in sorted(root.iterdir()) if root.is_dir() else ():
        if directory.name not in current:
            shutil.rmtree(directory)
    return removed
