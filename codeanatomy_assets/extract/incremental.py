"""Incremental extraction: only files whose content is not in the evidence cache are parsed.

The cache version is a hash of the extractor sources (``extract/`` and ``normalize/``), so a
code change that could change a row invalidates every entry without anyone bumping a number.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from codeanatomy_assets.extract.ast_extract import module_name_for
from codeanatomy_assets.extract.evidence import EVIDENCE_SCHEMAS, PER_FILE_TABLES
from codeanatomy_assets.repo.git import BlobEntry
from codeanatomy_assets.storage.evidence_cache import CompactionReport, EvidenceCache, cache_key
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import Scratch, SpilledTable, spill_parts, union

_SOURCE_PACKAGES = ("extract", "normalize")


# What extraction produces: ``files`` and one table per per-file evidence name.
EVIDENCE_TABLE_SCHEMAS = {name: EVIDENCE_SCHEMAS[name] for name in ("files", *PER_FILE_TABLES)}


def extractor_version() -> str:
    """Hash of the sources whose output the cache holds."""
    root = Path(__file__).resolve().parents[1]
    digest = hashlib.sha256()
    for package in _SOURCE_PACKAGES:
        for source in sorted((root / package).glob("*.py")):
            digest.update(source.name.encode())
            digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def evidence_cache_for(lake: Lake) -> EvidenceCache:
    """The evidence cache of a lake, for the extractor code running now."""
    return EvidenceCache(lake, extractor_version(), EVIDENCE_TABLE_SCHEMAS)


@dataclass(frozen=True)
class IncrementalStats:
    """Files taken from the cache, files extracted, files stored for next time; seconds spent
    extracting (parsing and spilling), storing and loading."""

    cached: int
    extracted: int
    stored: int
    extract_s: float = 0.0
    store_s: float = 0.0
    load_s: float = 0.0


def extract_incremental(
    entries: Sequence[BlobEntry],
    cache: EvidenceCache,
    extract: Callable[[list[BlobEntry]], Iterable[Mapping[str, pa.Table]]],
    scratch: Scratch,
    on_compaction: CompactionReport | None = None,
) -> tuple[dict[str, SpilledTable], IncrementalStats]:
    """Evidence for ``entries``: cached rows for known blobs, ``extract`` for the others.

    ``extract`` yields the evidence of the files it is given in parts (a chunk at a time);
    they are spilled to ``scratch`` as they come, stored in the cache from there, and the
    cached rows are spilled beside them: the evidence is never all in memory. A compaction
    the load runs is reported to ``on_compaction`` (``EvidenceCache.load``).
    """
    keys = {
        e.path: cache_key(e.blob_id, e.path, module_name_for(e.path), cache.version)
        for e in entries
        if e.skipped is None
    }
    hits = cache.hits(list(keys.values()))
    todo = [e for e in entries if e.skipped is not None or keys[e.path] not in hits]
    started = time.perf_counter()
    fresh = spill_parts(scratch, EVIDENCE_TABLE_SCHEMAS, extract(todo))
    extracted_at = time.perf_counter()
    stored = cache.store(fresh, {p: k for p, k in keys.items() if k not in hits})
    stored_at = time.perf_counter()
    merged = fresh
    if hits:
        cached = cache.load([k for k in keys.values() if k in hits], scratch, on_compaction)
        merged = {name: union(scratch, name, [fresh[name], cached[name]]) for name in fresh}
    extracted = sum(1 for e in todo if e.skipped is None)
    return merged, IncrementalStats(
        len(hits),
        extracted,
        stored,
        extract_s=extracted_at - started,
        store_s=stored_at - extracted_at,
        load_s=time.perf_counter() - stored_at,
    )
