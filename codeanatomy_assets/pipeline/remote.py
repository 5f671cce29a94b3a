"""Remote execution: a Dask client per build, and the execution manager that routes tasks.

Why not Hamilton's ``h_dask.DaskExecutor``: it pickles the whole ``TaskImplementation`` to a
worker: the node callables (closures of our synthesized modules, which exist only in this
process, so workers cannot import them: DESIGN pitfall), and the lifecycle adapter set (cache
adapter, diagnostics and tracing hooks), which would then run on the worker and update copies
of the run's state that nobody reads. So Hamilton runs every task here, with its hooks and
cache, and only the task's *work* is shipped, as real importable functions with plain Arrow
arguments: ``extract.runner.extract_commit`` on groups of files and
``pipeline.task_execution.execute_view`` for views.

Routing: ``PlanExecutionManager.get_executor_for_task`` reads the node tags once per task
(memoized by the task's base id, since Hamilton asks on every release): the extraction task and
view tasks whose ``task_cost`` is at least the threshold get the remote executor, which runs
the task with placement ``remote``; everything else the local one. Every decision is a
``task_routing`` diagnostics event. Remote calls wait at most the request's timeout.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from hamilton.execution import executors
from hamilton.execution.grouping import TaskImplementation

from codeanatomy_assets.extract.runner import (
    CHUNK_BYTES,
    CHUNK_FILES,
    ExtractOptions,
    Progress,
    extract_commit,
)
from codeanatomy_assets.pipeline.cache import is_work_node
from codeanatomy_assets.pipeline.run_context import RunContext, placed
from codeanatomy_assets.repo.git import BlobEntry

if TYPE_CHECKING:
    from distributed import Client, LocalCluster

_log = logging.getLogger(__name__)
T = TypeVar("T")
REMOTE_KINDS = frozenset({"extract"})
CONNECT_TIMEOUT_S = 30.0  # an unreachable scheduler fails the build in seconds, not minutes


class RemoteTimeoutError(TimeoutError):
    """A remote call did not finish within the build's ``remote_timeout_s``."""


@dataclass(eq=False)
class RemoteBackend:
    """A Dask client for one build; closes the ``LocalCluster`` it started, if it started one."""

    client: Client
    timeout_s: float
    address: str
    cluster: LocalCluster | None = None

    @classmethod
    def open(cls, address: str | None, timeout_s: float, workers: int | None) -> RemoteBackend:
        """Connect to ``address``, or start a local cluster of ``workers`` processes."""
        try:
            from distributed import Client, LocalCluster
        except ImportError as exc:  # the optional `remote` extra
            raise ImportError(
                "execution_mode 'remote' needs dask.distributed: pip install "
                "'codeanatomy-assets[remote]'"
            ) from exc
        if address is not None:
            client = Client(address, timeout=min(timeout_s, CONNECT_TIMEOUT_S))
            return cls(client, timeout_s, address)
        cluster = LocalCluster(
            n_workers=workers or 2,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        )
        client = Client(cluster)
        return cls(client, timeout_s, cluster.scheduler_address, cluster)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on a worker and wait for it (``RemoteTimeoutError`` past the limit)."""
        # Arguments (Arrow tables) go to the cluster as data, not inside the task graph.
        scattered = self.client.scatter(list(args), hash=False, timeout=self.timeout_s)
        future = self.client.submit(fn, *scattered, pure=False)
        try:
            return future.result(timeout=self.timeout_s)  # type: ignore[no-any-return]
        except TimeoutError as exc:
            future.cancel()
            raise RemoteTimeoutError(
                f"{getattr(fn, '__name__', fn)} did not finish on {self.address} within "
                f"remote_timeout_s={self.timeout_s}"
            ) from exc
        finally:
            self.client.cancel(scattered)

    def close(self) -> None:
        """Close the client, then the cluster this backend started (never a shared one)."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _groups(entries: Sequence[BlobEntry]) -> list[list[BlobEntry]]:
    """Entries in the runner's chunk sizes: the unit of work shipped to one worker."""
    groups: list[list[BlobEntry]] = []
    current: list[BlobEntry] = []
    size = 0
    for entry in entries:
        current.append(entry)
        size += entry.size
        if len(current) >= CHUNK_FILES or size >= CHUNK_BYTES:
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def extract_remote(
    backend: RemoteBackend,
    repo_path: str,
    entries: Sequence[BlobEntry],
    options: ExtractOptions,
    progress: Progress | None,
) -> list[dict[str, Any]]:
    """Evidence of ``entries`` from Dask workers, one ``extract_commit`` per group of files.

    Workers read blobs from the repository path themselves (it must be reachable from them).
    A group whose worker died (Dask gives up after its allowed failures) is re-run here on the
    local pool, whose crash isolation turns the one culprit file into an error row.
    """
    from distributed import as_completed

    groups = _groups(entries)
    single = dataclasses.replace(options, workers=1)
    futures = backend.client.map(
        extract_commit, [repo_path] * len(groups), groups, [single] * len(groups), pure=False
    )
    index = {f.key: i for i, f in enumerate(futures)}
    parts: list[dict[str, Any] | None] = [None] * len(groups)
    try:
        for future in as_completed(futures, timeout=backend.timeout_s):
            i = index[future.key]
            try:
                parts[i] = future.result()
            except Exception as exc:  # KilledWorker, a worker-side failure: redo here
                _log.warning(
                    "remote extraction of %d files failed (%r): local", len(groups[i]), exc
                )
                parts[i] = extract_commit(repo_path, groups[i], options)
            if progress is not None:
                progress.advance(len(groups[i]))
    except TimeoutError as exc:
        backend.client.cancel(futures)
        raise RemoteTimeoutError(
            f"extraction did not finish on {backend.address} within "
            f"remote_timeout_s={backend.timeout_s}"
        ) from exc
    return [p for p in parts if p is not None]


def _run_remote(task: TaskImplementation) -> dict[str, Any]:
    with placed("remote"):
        return executors.base_execute_task(task)


class RemoteTaskExecutor(executors.TaskExecutor):
    """Runs a Hamilton task here with placement ``remote``: its node ships its work to Dask.

    Tasks run one at a time in the driver's thread, like the local executor, so hooks, the
    cache and spans see one consistent run; the parallelism is inside the shipped work.
    """

    def init(self) -> None:
        pass

    def finalize(self) -> None:
        pass

    def submit_task(self, task: TaskImplementation) -> executors.TaskFuture:
        return executors.TaskFutureWrappingFunction(functools.partial(_run_remote, task))

    def can_submit_task(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Route:
    """The routing decision for one task (base id): where, and the tags it was read from."""

    remote: bool
    task_name: str
    task_kind: str
    task_cost: float | None


def route_for(
    name: str, tags: Mapping[str, Any], cost_threshold: float
) -> tuple[bool, str, float | None]:
    """Remote for the extraction task and view work nodes whose cost reaches the threshold."""
    kind = str(tags.get("task_kind", ""))
    raw_cost = tags.get("task_cost")
    cost = float(raw_cost) if raw_cost is not None else None
    heavy_view = kind == "view" and cost is not None and cost >= cost_threshold
    remote = kind in REMOTE_KINDS or (heavy_view and is_work_node(name, tags))
    return remote, kind, cost


@dataclass(eq=False)
class PlanExecutionManager(executors.ExecutionManager):
    """Local or remote executor per task, from the task's node tags (see module docstring)."""

    contexts: Callable[[str], RunContext | None]
    cost_threshold: float
    local: executors.TaskExecutor = field(default_factory=executors.SynchronousLocalTaskExecutor)
    remote: executors.TaskExecutor = field(default_factory=RemoteTaskExecutor)
    _routes: dict[str, Route] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__([self.local, self.remote])

    def _route(self, task: TaskImplementation) -> Route:
        route = self._routes.get(task.base_id)
        if route is None:
            tags: Mapping[str, Any] = task.nodes[0].tags if len(task.nodes) == 1 else {}
            remote, kind, cost = route_for(task.base_id, tags, self.cost_threshold)
            route = Route(remote, str(tags.get("task_name", task.base_id)), kind, cost)
            self._routes[task.base_id] = route
        return route

    def get_executor_for_task(self, task: TaskImplementation) -> executors.TaskExecutor:
        route = self._route(task)
        context = self.contexts(task.run_id)
        remote = route.remote and context is not None and context.remote is not None
        if context is not None:
            context.collector.record(
                "task_routing",
                node=task.base_id,
                task_name=route.task_name,
                task_kind=route.task_kind,
                task_cost=route.task_cost,
                cost_threshold=self.cost_threshold,
                executor="remote" if remote else "local",
                hamilton_task_id=task.task_id,
                time_ns=time.monotonic_ns(),
            )
        return self.remote if remote else self.local
