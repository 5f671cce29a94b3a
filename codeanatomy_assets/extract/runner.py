"""Extraction of a whole commit: files in chunks, on a process pool, in bounded memory.

Workers open the repository themselves and read blobs from git objects, so the parent never
holds more than the chunks in flight (``2 x workers``). Results come out in chunk order (a
chunk whose worker died comes last, file by file), one part at a time (``iter_extract``): a
build spills each part to disk as it arrives. A worker that dies
(a parser crashing the interpreter) breaks the pool; its chunk is then re-run one file at a
time in a fresh process, so that the one culprit becomes an error row and every other file is
kept.

Time limits (``ExtractOptions.file_timeout_s``): each file runs under a ``SIGALRM`` interval
timer whose handler raises ``FileTimeout`` in the middle of whatever Python code runs; the
file's partial rows are dropped and it becomes one ``timeout`` error row. A signal handler only
runs between bytecodes, so a single C call (``ast.parse`` of a 7 MB file takes ~18 s) cannot be
interrupted: in pool workers a ``faulthandler`` watchdog thread, which needs no GIL, ends the
process at ``hard_timeout_s``, and crash isolation then records the file. In this process the
timer is used only on the main thread with no other interval timer armed (signals cannot be
delivered to other threads); elsewhere (a build on another thread: the Dagster asset runs it
so) the files go to one worker process, where the limit holds, except in a daemonic process (a
Dask worker's thread), which may not start one: there the limit is not enforced and a warning
says so.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import multiprocessing
import multiprocessing.context
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import forkserver
from types import FrameType, TracebackType

import pyarrow as pa

from codeanatomy_assets.extract.ast_extract import module_name_for
from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.evidence import EVIDENCE_SCHEMAS, FILES, PER_FILE_TABLES
from codeanatomy_assets.extract.file_extract import extract_file, new_tables, skipped_error
from codeanatomy_assets.repo.git import BlobEntry, GitRepository

CHUNK_FILES = 48
CHUNK_BYTES = 4 * 1024 * 1024
DEFAULT_FILE_TIMEOUT_S = 20.0
_log = logging.getLogger(__name__)

Chunk = tuple[tuple[str, str], ...]  # (path, blob_id) pairs


@dataclass(frozen=True)
class Progress:
    """Where extraction reports files done (a progress bar, a log); a class so that Hamilton
    can check the input's type."""

    advance: Callable[[int], None]


@dataclass(frozen=True)
class ExtractOptions:
    """How to extract: worker processes (1 = in this process) and the per-file limits.

    ``file_timeout_s`` is the wall-clock seconds one file may take (None: unlimited); see
    the module docstring for where it is enforced.
    """

    workers: int = 1
    max_file_bytes: int = 8 * 1024 * 1024
    file_timeout_s: float | None = DEFAULT_FILE_TIMEOUT_S


class FileTimeout(BaseException):
    """The per-file time limit expired (raised by the ``SIGALRM`` handler).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` in an
    extractor can swallow it and carry on with a half-built file.
    """


def hard_timeout_s(file_timeout_s: float) -> float:
    """When a pool worker stuck in one C call is ended: the soft limit plus a grace period."""
    return file_timeout_s * 1.5 + 1.0


class _FileTimer:
    """Arms the per-file limit around each file of a chunk (see the module docstring).

    ``hard`` (pool workers only) adds the ``faulthandler`` watchdog that ends the process;
    never in the caller's process, which it would end with the whole build.
    """

    def __init__(self, seconds: float | None, *, hard: bool) -> None:
        self.seconds = seconds
        self.hard = hard
        self.enforced = seconds is not None and timer_available()
        self.fired = False
        self.armed = False
        self._previous: Callable[[int, FrameType | None], object] | int | None = None

    def __enter__(self) -> _FileTimer:
        if self.enforced:
            self._previous = signal.signal(signal.SIGALRM, self._on_alarm)
        return self

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        # A signal delivered just before ``disarm`` may run its handler after it: ignore it.
        if self.armed:
            self.fired = True
            raise FileTimeout

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.enforced:
            self.disarm()
            signal.signal(signal.SIGALRM, self._previous)

    def arm(self) -> None:
        """Start the file's clock. The timer repeats every 0.1 s after it first fires, in
        case the first ``FileTimeout`` was lost (raised in a finalizer, it is unraisable)."""
        self.fired = False
        if self.enforced and self.seconds is not None:
            self.armed = True
            if self.hard:
                faulthandler.dump_traceback_later(hard_timeout_s(self.seconds), exit=True)
            signal.setitimer(signal.ITIMER_REAL, self.seconds, 0.1)

    def disarm(self) -> None:
        if self.enforced:
            self.armed = False
            signal.setitimer(signal.ITIMER_REAL, 0)
            if self.hard:
                faulthandler.cancel_dump_traceback_later()


def timer_available() -> bool:
    """Whether this thread can enforce the per-file limit: the main thread, with an interval
    timer, and no other ``ITIMER_REAL`` armed (pytest-timeout, a caller's own alarm)."""
    return (
        hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0
    )


def _where(tb: TracebackType | None) -> str:
    """The innermost function a timeout interrupted, e.g. ``extract_symtable``."""
    names: list[str] = []
    while tb is not None:
        names.append(tb.tb_frame.f_code.co_name)
        tb = tb.tb_next
    while names and names[-1] == _FileTimer._on_alarm.__name__:
        names.pop()
    return names[-1] if names else "?"


def _first_timeout(exc: BaseException) -> BaseException:
    """The first ``FileTimeout`` of a chain: the repeating timer may fire again while the first
    one unwinds (freeing a large tree takes a while), replacing it in ``disarm``."""
    first = exc
    context = exc.__context__
    while context is not None:
        if isinstance(context, FileTimeout):
            first = context
        context = context.__context__
    return first


@contextmanager
def _young_collections_only() -> Iterator[None]:
    """Automatic garbage collection off; the caller collects the young generations per file.

    A chunk's row buffers grow to millions of live objects (no cycles among them), and the
    collector's automatic full passes walked them again and again: 10-15 % of extraction.
    Cycles a file leaves behind are still young when its file ends and are collected there.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def extract_chunk(
    repo_path: str, chunk: Chunk, file_timeout_s: float | None = None, *, hard: bool = False
) -> dict[str, pa.Table]:
    """Evidence tables for the files of one chunk (the unit of work sent to a worker).

    Each file is extracted into scratch tables and merged only when it finished, so a file
    stopped by its time limit leaves no partial rows, only its ``timeout`` error row. An
    exception no extractor expected is that file's error row too, never the end of the build:
    CPython 3.11's ``ast.parse`` interrupted by the timer inside its C-to-Python conversion
    raises ``SystemError: AST constructor recursion depth mismatch`` instead of the timeout.
    """
    repo = GitRepository(repo_path)
    files, tables = new_tables()
    with _FileTimer(file_timeout_s, hard=hard) as timer, _young_collections_only():
        for path, blob_id in chunk:
            gc.collect(1)
            data = repo.blob(blob_id)
            one_files, one_tables = new_tables()
            started = time.perf_counter()
            where, unexpected = "", None
            try:
                try:
                    timer.arm()
                    extract_file(path, blob_id, data, one_files, one_tables)
                finally:
                    # First, and inline: an attribute store is no point where CPython runs
                    # signal handlers, so from here on the handler cannot raise (a call could).
                    timer.armed = False
                    timer.disarm()
            except FileTimeout as exc:
                where = _where(_first_timeout(exc).__traceback__)
            except Exception as exc:  # one file must not end the build
                unexpected = f"{type(exc).__name__}: {exc}"[:1000]
            if timer.fired:
                # Whatever came out once the clock fired is suspect: the C parser can turn the
                # timeout into another error (SystemError, MemoryError) and carry on.
                cause = f" in {where}" if where else f" ({unexpected})" if unexpected else ""
                message = (
                    f"stopped after {time.perf_counter() - started:.1f} s{cause}: "
                    f"file_timeout_s={file_timeout_s}"
                )
                _file_error(files, tables["errors"], path, blob_id, len(data), message)
                continue
            if unexpected is not None:
                kind = unexpected.split(":", 1)[0]
                _file_error(files, tables["errors"], path, blob_id, len(data), unexpected,
                            extractor="extract", kind=kind)  # fmt: skip
                continue
            files.extend(one_files)
            for name, cols in tables.items():
                cols.extend(one_tables[name])
    out = {name: cols.to_table() for name, cols in tables.items()}
    out["files"] = files.to_table()
    return out


def _worker_chunk(
    repo_path: str, chunk: Chunk, file_timeout_s: float | None
) -> dict[str, pa.Table]:
    """``extract_chunk`` in a pool worker: with the hard limit, since a worker may die."""
    return extract_chunk(repo_path, chunk, file_timeout_s, hard=True)


def _file_error(
    files: Columns,
    errors: Columns,
    path: str,
    blob_id: str,
    size: int | None,
    message: str,
    *,
    extractor: str = "limits",
    kind: str = "timeout",
) -> None:
    """The rows of a file whose extraction was stopped: status ``error`` and its error row
    (by default the ``timeout`` row of a file stopped by its time limit)."""
    errors.append(
        path=path,
        extractor=extractor,
        error_kind=kind,
        message=message,
        line=None,
        col=None,
        bstart=None,
    )
    files.append(
        path=path,
        blob_id=blob_id,
        size_bytes=size,
        module_name=module_name_for(path),
        package_path=path.rsplit("/", 1)[0] if "/" in path else "",
        is_stub=path.endswith(".pyi"),
        status="error",
        encoding=None,
        line_count=None,
        line_end=None,
        col_end=None,
    )


def _chunks(entries: Sequence[BlobEntry]) -> Iterator[Chunk]:
    """Chunks of at most ``CHUNK_FILES`` files or ``CHUNK_BYTES``, largest files first: a pool
    then ends on chunks of small files, instead of one worker finishing a big chunk while the
    other waits. With results taken as they finish (``_run_pool``), the standard library's
    workers idle 1.1 s less in all (3.0-3.3 s instead of 4.1-4.4 s, on 2 workers)."""
    chunk: list[tuple[str, str]] = []
    size = 0
    for e in sorted(entries, key=lambda e: e.size, reverse=True):
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


def _crashed(
    chunk: Chunk, message: str, kind: str = "WorkerCrashed", extractor: str = "ast"
) -> dict[str, pa.Table]:
    files = Columns(FILES)
    errors = Columns(EVIDENCE_SCHEMAS["errors"])
    for path, blob_id in chunk:
        _file_error(files, errors, path, blob_id, None, message, extractor=extractor, kind=kind)
    return {"files": files.to_table(), "errors": errors.to_table()}


def _worker_context() -> multiprocessing.context.ForkServerContext:
    """The context extraction workers start in: forked from a server process that has this
    module (and so the extractors, pyarrow, the git reader) imported already, and pandas,
    which pyarrow imports (when installed) at its first ``pa.array`` of a Python list: 0.45 s
    in every worker's first chunk otherwise."""
    ctx = multiprocessing.get_context("forkserver")
    # Takes effect when the server starts, i.e. for the process's first worker; later calls
    # (and a server another library started first) leave it as it is.
    ctx.set_forkserver_preload([__name__, "pandas"])
    return ctx


def start_workers_server(files: int, workers: int, file_timeout_s: float | None) -> None:
    """Start the server workers fork from, if extracting ``files`` on ``workers`` may use
    worker processes (``iter_extract``: more than one chunk on more than one worker, or a
    limit this thread cannot enforce), so that its imports (about 0.7 s) run while the
    caller plans rather than when the first pool waits for them; a no-op once it runs."""
    limited_here = file_timeout_s is not None and not timer_available()
    if (workers > 1 and files > CHUNK_FILES) or limited_here:
        ensure_workers_server()


def ensure_workers_server() -> None:
    """Start the server extraction workers fork from, now: for a caller that knows workers
    will be used before it can tell ``start_workers_server`` (a Dagster run, whose build runs
    on a thread, starts it before importing Dagster so the two imports share the cores)."""
    _worker_context()
    forkserver.ensure_running()


def _isolated(
    repo_path: str, chunk: Chunk, file_timeout_s: float | None
) -> list[dict[str, pa.Table]]:
    """Re-run a chunk whose worker died, one file at a time in a fresh process.

    One file in flight names the culprit when the process dies: that file becomes an error
    row (``timeout`` when the watchdog ended it at the hard limit, else ``WorkerCrashed``)
    and the remaining files go on in a new process. Processes are started per crash, not per
    file, so a chunk of 48 innocent files costs one process start, not 48.
    """
    results: list[dict[str, pa.Table]] = []
    ctx = _worker_context()
    remaining = list(chunk)
    while remaining:
        with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
            while remaining:
                item = remaining.pop(0)
                started = time.perf_counter()
                try:
                    results.append(pool.submit(_worker_chunk, repo_path, (item,),
                                               file_timeout_s).result())  # fmt: skip
                except BrokenProcessPool:
                    results.append(_died(item, file_timeout_s, time.perf_counter() - started))
                    break
    return results


def _died(
    item: tuple[str, str], file_timeout_s: float | None, elapsed: float
) -> dict[str, pa.Table]:
    """The rows of a file whose process died: ended by the hard time limit, or crashed."""
    if file_timeout_s is not None and elapsed >= hard_timeout_s(file_timeout_s):
        message = (
            f"process ended after {elapsed:.1f} s, stuck in one C call past "
            f"file_timeout_s={file_timeout_s} (hard limit {hard_timeout_s(file_timeout_s):.1f} s)"
        )
        return _crashed((item,), message, kind="timeout", extractor="limits")
    return _crashed((item,), "the extractor process died on this file")


def iter_extract(
    repo_path: str,
    entries: Sequence[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None = None,
) -> Iterator[dict[str, pa.Table]]:
    """Evidence tables of a commit's entries, a chunk of files at a time, as they finish.

    The caller decides what to keep: ``extract_commit`` concatenates, a build spills each
    part to disk as it arrives (``storage.scratch``), so that the parent process never holds
    the whole commit's evidence.
    """
    readable, scan = _scan_rows(entries, options)
    yield scan
    chunks = list(_chunks(readable))
    timeout = options.file_timeout_s
    here = options.workers <= 1 or len(chunks) <= 1
    if here and chunks and timeout is not None and not timer_available():
        if not multiprocessing.current_process().daemon:
            # This thread cannot stop a file (a build off the main thread, as in a Dagster
            # step, or another interval timer armed): a worker process can, and does.
            _log.info("file_timeout_s=%s: extracting in a worker process, which enforces it",
                      timeout)  # fmt: skip
            yield from _run_pool(repo_path, chunks, 1, progress, timeout)
            return
        # A daemonic process (a Dask worker) may not start one.
        _log.warning(
            "file_timeout_s=%s is not enforced: extraction runs on a thread of a daemonic "
            "process (a Dask worker), which may not start a worker process", timeout
        )  # fmt: skip
    if here:
        for chunk in chunks:
            yield extract_chunk(repo_path, chunk, timeout)
            if progress:
                progress.advance(len(chunk))
    else:
        yield from _run_pool(repo_path, chunks, options.workers, progress, timeout)


def concat_evidence(parts: Iterable[Mapping[str, pa.Table]]) -> dict[str, pa.Table]:
    """Parts of evidence (``iter_extract``'s) as one table per evidence name."""
    parts = list(parts)
    return {
        name: pa.concat_tables(
            [r[name] for r in parts if name in r] or [EVIDENCE_SCHEMAS[name].empty_table()]
        )
        for name in ("files", *PER_FILE_TABLES)
    }


def extract_commit(
    repo_path: str,
    entries: Sequence[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None = None,
) -> dict[str, pa.Table]:
    """Evidence tables for every entry of a commit (see ``extract.evidence``), in memory."""
    return concat_evidence(iter_extract(repo_path, entries, options, progress))


def _abandon(pool: ProcessPoolExecutor) -> None:
    """Shut a broken pool down without waiting: a worker killed while holding the call
    queue's lock leaves the others blocked on it, and ``shutdown(wait=True)`` would wait for
    them forever. Its processes are killed instead."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
        process.join(timeout=5)


def _run_pool(
    repo_path: str,
    chunks: list[Chunk],
    workers: int,
    progress: Progress | None,
    file_timeout_s: float | None = None,
) -> Iterator[dict[str, pa.Table]]:
    """Chunks on a pool of ``workers`` processes; each result is yielded once it is in, and a
    chunk whose worker died is yielded later, file by file (``_isolated``)."""
    ctx = _worker_context()
    broken: list[int] = []
    pending = list(range(len(chunks)))
    # A backstop, far above any legitimate chunk: a worker that stops answering is treated
    # like one that died, instead of leaving the build waiting forever.
    per_file = (file_timeout_s * 1.5 + 1) if file_timeout_s else 60.0
    chunk_deadline = max(CHUNK_FILES * per_file, 300.0)
    while pending:
        pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
        healthy = True
        try:
            in_flight: dict[int, Future[dict[str, pa.Table]]] = {}
            queue = list(pending)
            pending = []
            while queue or in_flight:
                while queue and len(in_flight) < 2 * workers:
                    i = queue.pop(0)
                    in_flight[i] = pool.submit(_worker_chunk, repo_path, chunks[i], file_timeout_s)
                # Whichever chunk finishes first: waiting for them in order would leave a
                # worker idle behind a long chunk once the ones after it are done.
                done, _ = wait(in_flight.values(), chunk_deadline, FIRST_COMPLETED)
                i = min((j for j, f in in_flight.items() if f in done), default=min(in_flight))
                try:
                    result = in_flight.pop(i).result(timeout=0)
                except (BrokenProcessPool, FutureTimeout):
                    # The pool is gone (or stuck): isolate this chunk, resubmit the rest.
                    healthy = False
                    broken.append(i)
                    pending = sorted(set(in_flight) | set(queue))
                    break
                yield result
                del result
                if progress:
                    progress.advance(len(chunks[i]))
        finally:
            if healthy:
                pool.shutdown(wait=True)
            else:
                _abandon(pool)
        for i in broken:
            yield from _isolated(repo_path, chunks[i], file_timeout_s)
            if progress:
                progress.advance(len(chunks[i]))
        broken = []
