"""The ``pipeline_events`` table: a build's diagnostics events as rows, for SQL.

Common fields get columns (node, task, executor, duration, rows, success) so that "which task
was slow on which commit" is a ``GROUP BY``; everything else an event carries stays in
``detail_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from codeanatomy_assets.cpg.schemas import PIPELINE_EVENTS

_COLUMNS = ("node", "task_name", "task_kind", "executor", "duration_s", "rows", "success")


def _typed(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name == "duration_s":
        return float(value)
    if name == "rows":
        return int(value)
    if name == "success":
        return bool(value)
    return str(value)


def events_table(run_id: str, events: Iterable[Mapping[str, Any]]) -> pa.Table:
    """One row per event, in recording order (schema ``cpg.schemas.PIPELINE_EVENTS``)."""
    rows = []
    for seq, event in enumerate(events):
        detail = {k: v for k, v in event.items() if k not in (*_COLUMNS, "event", "time_unix_ms")}
        rows.append(
            {
                "run_id": run_id,
                "seq": seq,
                "event": str(event["event"]),
                "time_unix_ms": int(event["time_unix_ms"]),
                **{c: _typed(c, event.get(c)) for c in _COLUMNS},
                "detail_json": json.dumps(detail, sort_keys=True, default=str) if detail else None,
            }
        )
    return pa.Table.from_pylist(rows, schema=PIPELINE_EVENTS)
