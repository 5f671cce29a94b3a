"""Give the C heap's free pages back to the system once extraction is done.

Why: extraction leaves the build process's glibc heap with a few hundred MB free but still
resident (on the standard library, 515 MB of RSS before a release and 261 MB after, in 20 ms).
Its transient objects are freed in an order that leaves live chunks near the top of the heap,
so glibc never trims it by itself. Later steps reuse part of that memory, so the peak gains
less than the release: over three alternating CLI builds of the stdlib, the build process's
peak went from 1,416-1,453 MiB to 1,334-1,396 MiB, in the same wall time. Through Dagster,
where the peak moves by more than that with how the checks overlap the sorted outputs, two
alternating pairs showed no difference. Releasing after every node as well, or every 2 s while
results arrive, lowered no peak further: the later growth is DataFusion's and Arrow's mimalloc
heaps, which this does not touch, and the extraction-time peak is the workers' and live data.

Linux with glibc only; elsewhere (macOS, musl) there is no ``malloc_trim`` and this does
nothing.

Arrow's own pool (mimalloc) is a separate heap, released after each sorted map
(``release_arrow_pool``). A build keeps its process off transparent huge pages
(``disable_huge_pages``).
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import sys
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa


def _libc_function(name: str, *argtypes: type) -> Callable[..., int] | None:
    """Function ``name`` of the C library the interpreter runs on, returning a C int (None
    off Linux, or where that library has none)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    if argtypes:
        function.argtypes = list(argtypes)
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    return _libc_function("malloc_trim", ctypes.c_size_t)


def resident_mb() -> float | None:
    """This process's resident set in MiB, from ``/proc`` (None where there is none)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_resident_mb() -> float:
    """This process's largest resident set so far, in MiB: where it rises between two
    points of a build, the build's peak so far was reached between them."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes there, KiB here


# prctl(2) options (linux/prctl.h).
_PR_SET_THP_DISABLE = 41
_PR_GET_THP_DISABLE = 42


@functools.cache
def _prctl() -> Callable[..., int] | None:
    return _libc_function("prctl")


def huge_pages_disabled() -> bool | None:
    """Whether this process is kept off transparent huge pages (None: not Linux)."""
    prctl = _prctl()
    if prctl is None:
        return None
    state = prctl(_PR_GET_THP_DISABLE, 0, 0, 0, 0)
    return None if state < 0 else bool(state)


def disable_huge_pages() -> bool:
    """Keep this process, and every process it starts from now on, off transparent huge
    pages (``prctl(PR_SET_THP_DISABLE)``); True when it is (False where it cannot be).

    Why: Arrow's and DataFusion's allocators (mimalloc) reserve their arenas with
    ``madvise(MADV_HUGEPAGE)`` and give freed memory back in pieces of 64 KB to 4 MB. Under
    the kernel's usual THP mode (``madvise``) the next touch of such a piece faults in a
    whole 2 MB page, which the kernel zeroes first: on a commit of 1 % of the standard
    library, zeroing those pages was 9 % of the build's CPU samples (``perf``). Off, in
    alternating CLI builds of the stdlib: that commit 10.10-10.52 s -> 9.66-10.20 s (system
    time 3.2-3.6 s -> 2.4-2.8 s, peak RSS 894-1,084 MB -> 764-851 MB), a one-file commit
    6.47-6.61 s -> 5.80-5.92 s, a full build no different in time (62.7 / 67.5 s against
    62.5 / 65.8 s) with its peak 1,347-1,423 MB -> 1,325-1,331 MB. The flag holds for the
    pages the process touches next, in arenas already reserved too, and its children
    (extraction's workers) inherit it. It changes no result, and nothing else in the
    process relies on huge pages; a process the build runs in (a Dagster run worker, a
    test) keeps it afterwards.
    """
    prctl = _prctl()
    if prctl is None:
        return False
    if prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0) != 0:  # a kernel without it (before 3.15)
        return False
    return huge_pages_disabled() is True


@dataclass(frozen=True)
class HeapRelease:
    """One release: whether it could run (glibc), whether memory went back, RSS around it."""

    supported: bool
    returned: bool
    rss_before_mb: float | None
    rss_after_mb: float | None


def release_free_heap() -> HeapRelease:
    """Return the free pages of every glibc arena to the system (``malloc_trim(0)``)."""
    trim = _malloc_trim()
    before = resident_mb()
    if trim is None:
        return HeapRelease(False, False, before, before)
    returned = bool(trim(0))
    return HeapRelease(True, returned, before, resident_mb())


def release_arrow_pool() -> None:
    """Give the free memory of pyarrow's default pool (mimalloc in our wheels) back to the
    system now (``MemoryPool.release_unused``).

    Why: a map sorted group by group (``pipeline.bucket_layout``) allocates and frees a
    sixteenth of the map sixteen times, and the pool kept much of it: on the stdlib the build
    process's resident set climbed 1,175 -> 1,387 MB over the three maps, and the duplicate-id
    check after them peaked at 1,624 MB (1,318-1,368 MB with the maps sorted whole). Released
    after each map, 45-150 MB went back each time and the build's peak stayed 1,324 MB, where
    ``cpg_edges`` reached it.
    """
    pa.default_memory_pool().release_unused()
