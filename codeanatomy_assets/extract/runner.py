"""Extraction of a whole commit: files in chunks, on a process pool, in bounded memory.

Workers open the repository themselves and read blobs from git objects, so the parent never
holds more than the chunks in flight (``2 x workers``). Results are assembled in chunk
order, so the output does not depend on which worker finished first. A worker that dies
(a parser crashing the interpreter) breaks the pool; its chunk is then re-run one file per
fresh process so that the one culprit becomes an error row and every other file is kept.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import pyarrow as pa

from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.evidence import EVIDENCE_SCHEMAS, FILES, PER_FILE_TABLES
from codeanatomy_assets.extract.file_extract import extract_file, new_tables, skipped_error
from codeanatomy_assets.repo.git import BlobEntry, GitRepository

CHUNK_FILES = 48
CHUNK_BYTES = 4 * 1024 * 1024

Chunk = tuple[tuple[str, str], ...]  # (path, blob_id) pairs


@dataclass(frozen=True)
class Progress:
    """Where extraction reports files done (a progress bar, a log); a class so that Hamilton
    can check the input's type."""

    advance: Callable[[int], None]


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract: worker processes (1 = in this process) and the per-file size limit."""

    workers: int = 1
    max_file_bytes: int = 8 * 1024 * 1024


def extract_chunk(repo_path: str, chunk: Chunk) -> dict[str, pa.Table]:
    """Evidence tables for the files of one chunk (the unit of work sent to a worker)."""
    repo = GitRepository(repo_path)
    files, tables = new_tables()
    for path, blob_id in chunk:
        extract_file(path, blob_id, repo.blob(blob_id), files, tables)
    out = {name: cols.to_table() for name, cols in tables.items()}
    out["files"] = files.to_table()
    return out


def _chunks(entries: Sequence[BlobEntry]) -> Iterator[Chunk]:
    chunk: list[tuple[str, str]] = []
    size = 0
    for e in entries:
        chunk.append((e.path, e.blob_id))
        size += e.size
        if len(chunk) >= CHUNK_FILES or size >= CHUNK_BYTES:
            yield tuple(chunk)
            chunk, size = [], 0
    if chunk:
        yield tuple(chunk)


def _scan_rows(
    entries: Sequence[BlobEntry], options: ExtractOptions
) -> tuple[list[BlobEntry], dict[str, pa.Table]]:
    """Rows for entries that are not read (links, submodules, too large); the rest to read."""
    files = Columns(FILES)
    errors = Columns(EVIDENCE_SCHEMAS["errors"])
    readable: list[BlobEntry] = []
    for e in entries:
        reason = e.skipped
        detail = f"{e.skipped} in the tree: recorded, never followed"
        if reason is None and e.size > options.max_file_bytes:
            reason = "too_large"
            detail = f"{e.size} bytes > max_file_bytes={options.max_file_bytes}"
        if reason is None:
            readable.append(e)
            continue
        skipped_error(errors, e.path, reason, detail)
        files.append(
            path=e.path,
            blob_id=e.blob_id,
            size_bytes=e.size,
            module_name=None,
            package_path=e.path.rsplit("/", 1)[0] if "/" in e.path else "",
            is_stub=e.path.endswith(".pyi"),
            status="skipped",
            encoding=None,
            line_count=None,
            line_end=None,
            col_end=None,
        )
    return readable, {"files": files.to_table(), "errors": errors.to_table()}


def _crashed(chunk: Chunk, message: str) -> dict[str, pa.Table]:
    files = Columns(FILES)
    errors = Columns(EVIDENCE_SCHEMAS["errors"])
    for path, blob_id in chunk:
        errors.append(
            path=path,
            extractor="ast",
            error_kind="WorkerCrashed",
            message=message,
            line=None,
            col=None,
            bstart=None,
        )
        files.append(
            path=path,
            blob_id=blob_id,
            size_bytes=None,
            module_name=None,
            package_path=path.rsplit("/", 1)[0] if "/" in path else "",
            is_stub=None,
            status="error",
            encoding=None,
            line_count=None,
            line_end=None,
            col_end=None,
        )
    return {"files": files.to_table(), "errors": errors.to_table()}


def _isolated(repo_path: str, chunk: Chunk) -> list[dict[str, pa.Table]]:
    """Re-run a chunk whose worker died, one file per fresh process."""
    results = []
    ctx = multiprocessing.get_context("spawn")
    for item in chunk:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            try:
                results.append(pool.submit(extract_chunk, repo_path, (item,)).result())
            except BrokenProcessPool:
                results.append(_crashed((item,), "the extractor process died on this file"))
    return results


def extract_commit(
    repo_path: str,
    entries: Sequence[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None = None,
) -> dict[str, pa.Table]:
    """Evidence tables for every entry of a commit (see ``extract.evidence``)."""
    readable, scan = _scan_rows(entries, options)
    chunks = list(_chunks(readable))
    parts: list[list[dict[str, pa.Table]]] = [[] for _ in chunks]
    if options.workers <= 1 or len(chunks) <= 1:
        for i, chunk in enumerate(chunks):
            parts[i].append(extract_chunk(repo_path, chunk))
            if progress:
                progress.advance(len(chunk))
    else:
        _run_pool(repo_path, chunks, parts, options.workers, progress)
    results = [scan] + [r for part in parts for r in part]
    return {
        name: pa.concat_tables(
            [r[name] for r in results if name in r] or [EVIDENCE_SCHEMAS[name].empty_table()]
        )
        for name in ("files", *PER_FILE_TABLES)
    }


def _run_pool(
    repo_path: str,
    chunks: list[Chunk],
    parts: list[list[dict[str, pa.Table]]],
    workers: int,
    progress: Progress | None,
) -> None:
    ctx = multiprocessing.get_context("forkserver")
    broken: list[int] = []
    pending = list(range(len(chunks)))
    while pending:
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            in_flight: dict[int, Future[dict[str, pa.Table]]] = {}
            queue = list(pending)
            pending = []
            while queue or in_flight:
                while queue and len(in_flight) < 2 * workers:
                    i = queue.pop(0)
                    in_flight[i] = pool.submit(extract_chunk, repo_path, chunks[i])
                i = min(in_flight)
                try:
                    parts[i].append(in_flight.pop(i).result())
                    if progress:
                        progress.advance(len(chunks[i]))
                except BrokenProcessPool:
                    # The pool is gone: isolate this chunk, resubmit the rest to a new pool.
                    broken.append(i)
                    pending = sorted(set(in_flight) | set(queue))
                    break
        for i in broken:
            parts[i].extend(_isolated(repo_path, chunks[i]))
            if progress:
                progress.advance(len(chunks[i]))
        broken = []
