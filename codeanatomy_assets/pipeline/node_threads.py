"""Run a build's nodes on two threads, each as soon as its inputs are ready (parallel mode).

Why: the plan's nodes ran one after another, and most of what a commit computes is short
DataFusion queries that keep neither core busy for long. On a commit of 1 % of the standard
library (alternating CLI builds), 9.16-9.89 s one node at a time, 8.74-9.35 s with the views
beside the writes, 8.78-9.04 s with the sorted maps' writes beside each other as well.

How many writes run at once is decided by what a write holds (``WriteSlots``: two units of
writing). A flat output's write (and a quality table's) holds rows in proportion to what
the build computes: the file-local rows cut by group into 128 open files, the resolution
parts whole. In a full build it runs alone (both units): all writes two at a time made a
full build of the stdlib no faster (62.2 s against 62.5-67.5 s: each such write keeps both
cores busy) and its peak rose from 1,325-1,423 MB to 1,649 MB. In a build that computes few
files' rows (``few_files_computed``) it holds one unit. A sorted map's write (tag
``sorted_map``) sorts one group of its buckets at a time in a bounded pool
(``cpg.functions.SORT_POOL_BYTES``): one unit, so two maps may run together (a full build
wrote the property map and the edges by source in 9.1 s where one after the other took 9.8,
and peaked at 1,363 MB). Views hold none and run beside anything.

Each node runs in a copy of the build's context (``contextvars``: its run, its tracing span),
taken when Hamilton submits it. A node that fails fails the nodes that need it; the result
waits for every node submitted to end (those not started are cancelled), so no node of a
build outlives it.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, wait
from contextlib import contextmanager
from typing import Any

from hamilton import node as hamilton_node
from hamilton.plugins.h_threadpool import FutureAdapter

from codeanatomy_assets.pipeline.run_context import current_run

NODE_THREADS = 2
# Units of writing (``WriteSlots``).
WRITE_UNITS = 2
# The tag of an output's write node that says whether the output is a sorted map.
SORTED_MAP_TAG = "sorted_map"


class WriteSlots:
    """Two units of writing. A flat output's write takes both (it runs alone) unless the
    build computes few files' rows (``few_files_computed``), then one; a sorted map's write
    takes one. A write waits until its units are free; while one waits for both, no write
    that needs one starts, so a stream of maps cannot starve it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._free = WRITE_UNITS
        self._waiting_whole = 0

    @contextmanager
    def hold(self, units: int) -> Iterator[WriteHold]:
        whole = units >= WRITE_UNITS
        with self._changed:
            self._waiting_whole += whole
            self._changed.wait_for(
                lambda: self._free >= units and (whole or not self._waiting_whole)
            )
            self._waiting_whole -= whole
            self._free -= units
        hold = WriteHold(self, units)
        try:
            yield hold
        finally:
            self.give(hold.units)

    def give(self, units: int) -> None:
        with self._changed:
            self._free += units
            self._changed.notify_all()


class WriteHold:
    """The units one running write holds."""

    def __init__(self, slots: WriteSlots, units: int) -> None:
        self._slots = slots
        self.units = units

    def lighten(self) -> None:
        """Keep one unit, give back the rest."""
        if self.units > 1:
            given, self.units = self.units - 1, 1
            self._slots.give(given)


# The hold of the write running in this context (``_run`` sets it).
_HOLD: contextvars.ContextVar[WriteHold | None] = contextvars.ContextVar(
    "codeanatomy_write_hold", default=None
)
# Run attribute: a flat write found the build computes few files' rows.
_FEW_FILES = "few_files_computed"


def few_files_computed() -> None:
    """Said by a flat output's write whose file-local rows are computed for few files (an
    incremental build, ``pipeline.local_layout``): its write, and every flat write of the
    build that starts after it, holds one unit of writing, so two of them run at once.

    Why: on a commit of 1 % of the stdlib each such write is mostly carried-over rows
    streamed a window at a time and resolution parts that every build computes whole; two
    at a time, the commit took 0.02-0.54 s less (six alternating pairs, 8.76-9.52 s against
    9.10-9.67 s), its peak 0.97-1.13 GB against 1.00-1.06 GB. A flat write that computes
    every file keeps both units."""
    run = current_run()
    if run is not None:
        run.attributes[_FEW_FILES] = True
    hold = _HOLD.get()
    if hold is not None:
        hold.lighten()


def _units(kind: str | None, sorted_map: bool) -> int:
    if kind != "write":
        return 0
    run = current_run()
    if sorted_map or (run is not None and run.attributes.get(_FEW_FILES)):
        return 1
    return WRITE_UNITS


def _run(
    execute: Callable[..., Any],
    slots: WriteSlots,
    node: hamilton_node.Node,
    kwargs: Mapping[str, Any],
) -> Any:
    """Wait for the node's inputs, then run it, holding its units of writing if a write."""
    inputs = {k: v.result() if isinstance(v, Future) else v for k, v in kwargs.items()}
    units = _units(node.tags.get("kind"), node.tags.get(SORTED_MAP_TAG) == "True")
    if not units:
        return execute(**inputs)
    with slots.hold(units) as hold:
        token = _HOLD.set(hold)
        try:
            return execute(**inputs)
        finally:
            _HOLD.reset(token)


class NodeThreads(FutureAdapter):  # type: ignore[misc]
    """Hamilton's ``FutureAdapter`` (each node a task of a thread pool, its inputs futures),
    with the build's context in every node, the writes in their slots, and no node left
    running once the result is built (see the module docstring)."""

    def __init__(self, threads: int = NODE_THREADS) -> None:
        super().__init__(max_workers=threads, thread_name_prefix="cpg-node")
        self.slots = WriteSlots()
        self._local = threading.local()  # the futures of the run on this (the driver's) thread

    def _submitted(self) -> list[Future[Any]]:
        if not hasattr(self._local, "futures"):
            self._local.futures = []
        futures: list[Future[Any]] = self._local.futures
        return futures

    def do_remote_execute(
        self,
        *,
        execute_lifecycle_for_node: Callable[..., Any],
        node: hamilton_node.Node,
        **kwargs: Any,
    ) -> Any:
        context = contextvars.copy_context()
        future = self.executor.submit(
            context.run, _run, execute_lifecycle_for_node, self.slots, node, kwargs
        )
        self._submitted().append(future)
        return future

    def build_result(self, **outputs: Any) -> Any:
        submitted = self._submitted()
        try:
            return super().build_result(**outputs)
        finally:
            for future in submitted:
                future.cancel()  # only those not started: after a failure
            wait(submitted)
            submitted.clear()
