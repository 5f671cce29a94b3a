"""A view whose join outgrows the memory pool runs again unbounded instead of failing."""

from __future__ import annotations

import logging
import re

import pyarrow as pa
import pytest

from codeanatomy_assets.cpg import functions
from codeanatomy_assets.pipeline.task_execution import TaskExecutionSpec, execute_view

_JOIN = "SELECT a.k, b.v FROM a JOIN b ON a.k = b.k"


def _tables(rows: int, width: int = 12, batch: int = 50_000) -> dict[str, pa.Table]:
    """Tables of separately allocated batches (a slice of one big buffer is charged to the
    pool at the size of the whole buffer)."""
    a, b = [], []
    for start in range(0, rows, batch):
        ids = range(start, min(start + batch, rows))
        keys = pa.array([f"key-{i:08d}".ljust(width, "-") for i in ids])
        a.append(pa.record_batch({"k": keys}))
        b.append(pa.record_batch({"k": keys, "v": pa.array(ids, pa.int64())}))
    return {"a": pa.Table.from_batches(a), "b": pa.Table.from_batches(b)}


def test_a_join_past_the_pool_is_run_again_unbounded(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(functions, "MEMORY_POOL_BYTES", 64 * 1024)
    tables = _tables(200_000)
    with pytest.raises(Exception, match="Resources exhausted"):
        ctx = functions.session_context()
        for name, table in tables.items():
            ctx.register_record_batches(name, [table.to_batches()])
        ctx.sql(_JOIN).to_arrow_table()
    spec = TaskExecutionSpec("joined", "view", _JOIN, False, "plan", "task")
    with caplog.at_level(logging.WARNING):
        result = execute_view(spec, tables, "repo")
    assert result.num_rows == 200_000
    assert "running it again without a memory bound" in caplog.text


def test_a_sort_past_the_pool_spills_and_stays_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(functions, "MEMORY_POOL_BYTES", 128 * 1024 * 1024)
    tables = _tables(1_500_000, width=80)
    ordered = "SELECT v FROM b ORDER BY k DESC"
    ctx = functions.session_context()
    ctx.register_record_batches("b", [tables["b"].to_batches()])
    metrics = str(ctx.sql(f"EXPLAIN ANALYZE {ordered}").to_arrow_table().column(1)[0])
    assert re.search(r"spill_count=[1-9]", metrics), metrics
    spec = TaskExecutionSpec("ordered", "view", ordered, False, "plan", "task")
    result = execute_view(spec, tables, "repo")
    assert result.column("v").to_pylist() == list(range(1_499_999, -1, -1))
