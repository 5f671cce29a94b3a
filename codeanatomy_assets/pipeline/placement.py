"""Run a plan task's work where the execution manager placed it, inside the task's span.

Node bodies call ``run_task``: with placement ``remote`` (and a remote backend in the run)
the work function is shipped to Dask with its arguments; otherwise it is called here. Either
way a ``task <name>`` span, child of the node's span, carries the task tags, where the work
ran and its duration, and the duration is recorded as a metric. Outside a build (a node
called directly, in a test) there is no run: the work simply runs here, untraced.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from opentelemetry.trace import Status, StatusCode

from codeanatomy_assets.pipeline.run_context import current_run, placement

T = TypeVar("T")


def task_attributes(tags: Mapping[str, Any]) -> dict[str, Any]:
    """Node tags as span attributes (``codeanatomy.task.<tag>``), strings as they are."""
    return {f"codeanatomy.task.{k}": str(v) for k, v in tags.items()}


SHIP = "ship"


def run_task(
    name: str,
    tags: Mapping[str, Any],
    work: Callable[..., T],
    *args: Any,
    remote: Callable[..., T] | str | None = SHIP,
) -> T:
    """``work(*args)`` traced as ``task <name>``; on Dask when this task was placed remote.

    ``remote``: ``SHIP`` sends ``work`` itself to a worker; a callable ``remote(backend,
    *args)`` does its own distribution (extraction maps file groups); None keeps it here.
    """
    context = current_run()
    if context is None:
        return work(*args)
    backend = context.remote if remote is not None and placement() == "remote" else None
    where = "dask" if backend is not None else "local"
    attributes = {
        **context.span_attributes(),
        **task_attributes(tags),
        "codeanatomy.task.placement": where,
    }
    started = time.perf_counter()
    with context.telemetry.tracer.start_as_current_span(
        f"task {name}", attributes=attributes, record_exception=True, set_status_on_exception=True
    ) as span:
        try:
            if backend is None:
                result = work(*args)
            elif callable(remote):
                result = remote(backend, *args)
            else:
                result = backend.call(work, *args)
        except Exception as exc:
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            elapsed = time.perf_counter() - started
            context.telemetry.task_duration.record(
                elapsed, {"task_kind": str(tags.get("task_kind", "")), "placement": where}
            )
        rows = getattr(result, "num_rows", None)
        if rows is not None:
            span.set_attribute("codeanatomy.rows", int(rows))
    context.collector.record(
        "task_finish",
        node=name,
        task_name=name,
        task_kind=tags.get("task_kind"),
        executor=where,
        duration_s=elapsed,
        rows=rows,
    )
    return result
