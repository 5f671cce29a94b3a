"""Lifecycle hooks: record node start/finish and durations into the run's collector.

Hamilton calls hooks with its own run id; the collector is looked up by it, so one cached
driver can serve several runs one after another without mixing their events.
"""

from __future__ import annotations

import time
from typing import Any

from hamilton.lifecycle import api

from codeanatomy_assets.obs.diagnostics import DiagnosticsCollector


class DiagnosticsHook(api.GraphExecutionHook, api.NodeExecutionHook):
    """Routes node events of each Hamilton run to the collector passed as the run's input."""

    def __init__(self) -> None:
        self._collectors: dict[str, DiagnosticsCollector] = {}
        self._started: dict[tuple[str, str], float] = {}

    def run_before_graph_execution(
        self, *, run_id: str, inputs: dict[str, Any], final_vars: list[str], **_: Any
    ) -> None:
        collector = inputs.get("diagnostics")
        if isinstance(collector, DiagnosticsCollector):
            self._collectors[run_id] = collector
            collector.record("graph_start", final_vars=list(final_vars))

    def run_after_graph_execution(
        self, *, run_id: str, success: bool, error: Exception | None, **_: Any
    ) -> None:
        collector = self._collectors.pop(run_id, None)
        if collector is not None:
            collector.record("graph_finish", success=success, error=repr(error) if error else None)

    def run_before_node_execution(
        self, *, node_name: str, node_tags: dict[str, Any], run_id: str, **_: Any
    ) -> None:
        self._started[(run_id, node_name)] = time.perf_counter()
        collector = self._collectors.get(run_id)
        if collector is not None:
            collector.record("node_start", node=node_name, task_kind=node_tags.get("task_kind"))

    def run_after_node_execution(
        self,
        *,
        node_name: str,
        run_id: str,
        success: bool,
        error: Exception | None,
        result: Any,
        **_: Any,
    ) -> None:
        started = self._started.pop((run_id, node_name), None)
        duration = time.perf_counter() - started if started is not None else 0.0
        collector = self._collectors.get(run_id)
        if collector is None:
            return
        rows = getattr(result, "num_rows", None)
        collector.record(
            "node_finish",
            node=node_name,
            duration_s=duration,
            success=success,
            error=repr(error) if error else None,
            rows=rows,
        )
