"""Infer each view's dependencies from its DataFusion logical plan.

A view's dependencies are exactly the tables its plan scans. Views are planned against empty
tables with the evidence schemas; once a view is planned, an empty table with *its* output
schema is registered under its name, so a later view that reads it shows a ``TableScan`` of
the view rather than the view's inlined body. Planning runs in waves: a view whose inputs are
not registered yet fails to plan and waits for the next wave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pyarrow as pa
from datafusion.plan import LogicalPlan

from codeanatomy_assets.cpg.functions import session_context
from codeanatomy_assets.cpg.views import ViewSpec


class PlanningError(ValueError):
    """A view cannot be planned: unknown table, bad SQL, or a dependency cycle."""


@dataclass(frozen=True, slots=True)
class InferredView:
    """A view with the tables its plan scans and the schema it produces."""

    spec: ViewSpec
    dependencies: tuple[str, ...]
    schema: pa.Schema


def scanned_tables(plan: LogicalPlan) -> set[str]:
    """Names of every table a logical plan scans (through joins, unions and subqueries)."""
    found: set[str] = set()
    stack = [plan]
    while stack:
        node = stack.pop()
        variant = node.to_variant()
        if type(variant).__name__ == "TableScan":
            found.add(str(variant.table_name()))
        stack.extend(node.inputs())
    return found


def _plan_error(exc: Exception) -> bool:
    text = str(exc)
    return "not found" in text or "No table named" in text


def infer_views(
    views: Sequence[ViewSpec], source_schemas: Mapping[str, pa.Schema]
) -> tuple[InferredView, ...]:
    """Plan every view and return it with its dependencies, in a valid execution order."""
    ctx = session_context()
    for name, schema in source_schemas.items():
        ctx.register_record_batches(name, [[pa.RecordBatch.from_pylist([], schema=schema)]])
    remaining = list(views)
    ordered: list[InferredView] = []
    while remaining:
        progressed = False
        failures: dict[str, str] = {}
        for spec in list(remaining):
            try:
                df = ctx.sql(spec.sql)
            except Exception as exc:  # datafusion raises its own exception types
                if not _plan_error(exc):
                    raise PlanningError(f"view {spec.name!r} does not plan: {exc}") from exc
                failures[spec.name] = str(exc)
                continue
            # Subqueries inside expressions (IN, EXISTS, scalar) are not plan inputs of the
            # unoptimized plan; the optimizer turns them into joins, where their scans show.
            scans = scanned_tables(df.logical_plan()) | scanned_tables(df.optimized_logical_plan())
            deps = tuple(sorted(scans))
            schema = df.schema()
            ctx.register_record_batches(
                spec.name, [[pa.RecordBatch.from_pylist([], schema=schema)]]
            )
            ordered.append(InferredView(spec, deps, schema))
            remaining.remove(spec)
            progressed = True
        if not progressed:
            raise PlanningError(f"views cannot be planned (missing input or cycle): {failures}")
    return tuple(ordered)
