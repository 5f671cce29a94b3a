"""Lifecycle hooks: node start/finish events, durations, and an OpenTelemetry span per node.

Hamilton calls hooks with its own run id; the build's ``RunContext`` (the input
``run_context``) is bound to it at graph start, so one cached driver can serve several runs
one after another without mixing their events. A node span is a child of the build's run
span and is made current while the node runs, so the task span a node opens nests under it.
"""

from __future__ import annotations

import time
from typing import Any

from hamilton.lifecycle import api
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from codeanatomy_assets.pipeline.run_context import RunContext, enter_run, exit_run

_TAG_ATTRIBUTES = ("layer", "kind", "task_name", "task_kind", "task_cost", "output")


class DiagnosticsHook(api.GraphExecutionHook, api.NodeExecutionHook):
    """Routes node events and spans of each Hamilton run to the build that started it."""

    def __init__(self) -> None:
        self._contexts: dict[str, RunContext] = {}
        self._tokens: dict[str, Any] = {}
        self._started: dict[tuple[str, str, str | None], tuple[float, Any, Any]] = {}

    def context(self, run_id: str) -> RunContext | None:
        """The build bound to Hamilton run ``run_id`` (the execution manager asks per task)."""
        return self._contexts.get(run_id)

    def run_before_graph_execution(
        self, *, run_id: str, inputs: dict[str, Any], final_vars: list[str], **_: Any
    ) -> None:
        context = inputs.get("run_context")
        if isinstance(context, RunContext):
            self._contexts[run_id] = context
            self._tokens[run_id] = enter_run(context)
            context.attributes["hamilton_run_id"] = run_id
            context.collector.record("graph_start", final_vars=list(final_vars))

    def run_after_graph_execution(
        self, *, run_id: str, success: bool, error: Exception | None, **_: Any
    ) -> None:
        context = self._contexts.pop(run_id, None)
        token = self._tokens.pop(run_id, None)
        if token is not None:
            exit_run(token)
        if context is not None:
            context.collector.record(
                "graph_finish", success=success, error=repr(error) if error else None
            )

    def run_before_node_execution(
        self,
        *,
        node_name: str,
        node_tags: dict[str, Any],
        run_id: str,
        task_id: str | None = None,
        **_: Any,
    ) -> None:
        context = self._contexts.get(run_id)
        span = token = None
        if context is not None:
            context.collector.record(
                "node_start", node=node_name, task_kind=node_tags.get("task_kind")
            )
            parent = (
                trace.set_span_in_context(context.run_span)
                if context.run_span is not None
                else None
            )
            attributes = {
                **context.span_attributes(),
                "hamilton.node": node_name,
                "hamilton.run_id": run_id,
                **{
                    f"hamilton.tag.{k}": str(node_tags[k])
                    for k in _TAG_ATTRIBUTES
                    if k in node_tags
                },
            }
            if task_id is not None:
                attributes["hamilton.task_id"] = task_id
            span = context.telemetry.tracer.start_span(
                f"node {node_name}", context=parent, attributes=attributes
            )
            token = otel_context.attach(trace.set_span_in_context(span))
        self._started[(run_id, node_name, task_id)] = (time.perf_counter(), span, token)

    def run_after_node_execution(
        self,
        *,
        node_name: str,
        node_tags: dict[str, Any],
        run_id: str,
        success: bool,
        error: Exception | None,
        result: Any,
        task_id: str | None = None,
        **_: Any,
    ) -> None:
        started, span, token = self._started.pop(
            (run_id, node_name, task_id), (time.perf_counter(), None, None)
        )
        duration = time.perf_counter() - started
        rows = getattr(result, "num_rows", None)
        if span is not None:
            if rows is not None:
                span.set_attribute("codeanatomy.rows", int(rows))
            if error is not None:
                span.record_exception(error)
                span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            span.end()
        if token is not None:
            otel_context.detach(token)
        context = self._contexts.get(run_id)
        if context is None:
            return
        context.telemetry.node_duration.record(
            duration, {"node": node_name, "task_kind": str(node_tags.get("task_kind", ""))}
        )
        context.collector.record(
            "node_finish",
            node=node_name,
            task_kind=node_tags.get("task_kind"),
            duration_s=duration,
            success=success,
            error=repr(error) if error else None,
            rows=rows,
        )
