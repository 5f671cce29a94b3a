"""Run a build's nodes on two threads, each as soon as its inputs are ready (parallel mode).

Why: the plan's nodes ran one after another, and most of what a commit computes is short
DataFusion queries that keep neither core busy for long. On a commit of 1 % of the standard
library (alternating CLI builds), 9.16-9.89 s one node at a time, 8.74-9.35 s with the views
beside the writes, 8.78-9.04 s with the sorted maps' writes beside each other as well.

How much runs at once is decided by what a write holds. The flat outputs' writes (and the
quality tables') hold rows in proportion to the repository: the file-local rows cut by group
into 64 open files, the resolution parts whole. They run one at a time and with no sorted
map beside them: all writes two at a time made a full build of the stdlib no faster
(62.2 s against 62.5-67.5 s: each such write keeps both cores busy) and its peak rose from
1,325-1,423 MB to 1,649 MB. A sorted map's write (tag ``sorted_map``) sorts one group of its
buckets at a time in a bounded pool (``cpg.functions.SORT_POOL_BYTES``), so two maps may run
together: a full build then wrote the property map and the edges by source in 9.1 s where
one after the other took 9.8, and peaked at 1,363 MB. Views run beside anything.

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
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any

from hamilton import node as hamilton_node
from hamilton.plugins.h_threadpool import FutureAdapter

NODE_THREADS = 2
# The tag of an output's write node that says whether the output is a sorted map.
SORTED_MAP_TAG = "sorted_map"


class WriteSlots:
    """Who may write at once: any number of sorted maps together (``shared``), or one other
    write alone (``exclusive``). A write waits until it may start; one waiting for
    ``exclusive`` lets no new map start, so maps cannot starve it."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting_exclusive = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: not self._exclusive and not self._waiting_exclusive)
            self._shared += 1
        try:
            yield
        finally:
            with self._changed:
                self._shared -= 1
                self._changed.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._changed:
            self._waiting_exclusive += 1
            self._changed.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting_exclusive -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._changed:
                self._exclusive = False
                self._changed.notify_all()


def _run(
    execute: Callable[..., Any],
    slot: Callable[[], AbstractContextManager[None]],
    kwargs: Mapping[str, Any],
) -> Any:
    """Wait for the node's inputs, then run it in its slot."""
    inputs = {k: v.result() if isinstance(v, Future) else v for k, v in kwargs.items()}
    with slot():
        return execute(**inputs)


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

    def _slot(self, node: hamilton_node.Node) -> Callable[[], AbstractContextManager[None]]:
        if node.tags.get("kind") != "write":
            return nullcontext
        if node.tags.get(SORTED_MAP_TAG) == "True":
            return self.slots.shared
        return self.slots.exclusive

    def do_remote_execute(
        self,
        *,
        execute_lifecycle_for_node: Callable[..., Any],
        node: hamilton_node.Node,
        **kwargs: Any,
    ) -> Any:
        context = contextvars.copy_context()
        future = self.executor.submit(
            context.run, _run, execute_lifecycle_for_node, self._slot(node), kwargs
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
