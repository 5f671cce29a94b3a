"""A view that outgrows the memory pool spills, or runs again unbounded instead of failing."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pytest

from codeanatomy_assets.cpg import functions
from codeanatomy_assets.cpg.nesting import NestSpec
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.pipeline.task_execution import TaskExecutionSpec, execute_view
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.git_fixture import GitRepo
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES

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
    assert "running it again with pool 'unbounded'" in caplog.text


def test_a_sort_past_the_small_pool_runs_again_with_the_default_one(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(functions, "SORT_POOL_BYTES", 64 * 1024)
    monkeypatch.setattr(functions, "MEMORY_POOL_BYTES", 256 * 1024 * 1024)
    tables = _tables(300_000)
    nested = NestSpec(key="k", into="vs", fields=("v",))
    spec = TaskExecutionSpec(
        "by_k", "view", "SELECT k, v FROM b ORDER BY k", False, "p", "t", nested
    )
    with caplog.at_level(logging.WARNING):
        result = execute_view(spec, tables, "repo")
    assert result.num_rows == 300_000
    assert "running it again with pool 'default'" in caplog.text
    assert "'unbounded'" not in caplog.text


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


def test_a_build_whose_views_outgrow_a_tiny_pool_writes_the_same_graph(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    git_repo: Callable[[str], GitRepo],
    tmp_path: Path,
) -> None:
    """Exhaustion inside a streamed Delta write is retried too, and nothing is doubled."""
    repo = git_repo("repo")
    sha = repo.commit(FILES)
    roots = {"normal": str(tmp_path / "normal"), "tiny": str(tmp_path / "tiny")}
    request = {"repo_path": repo.path, "repo_id": "pool", "execution_mode": "serial"}
    build_commit(BuildRequest(lake_root=roots["normal"], **request))
    monkeypatch.setattr(functions, "MEMORY_POOL_BYTES", 64 * 1024)
    with caplog.at_level(logging.WARNING):
        result = build_commit(BuildRequest(lake_root=roots["tiny"], **request))
    assert result.status == "success"
    retried = {r.getMessage().split(":")[0] for r in caplog.records if "again with" in r.msg}
    assert retried & set(CPG_OUTPUTS), retried  # some output streams were retried
    for name in ("cpg_nodes", "cpg_edges", "cpg_props", "cpg_edges_by_src"):
        normal, tiny = (
            sorted(Lake(root).read_partition(name, "pool", sha).to_pylist(), key=repr)
            for root in (roots["normal"], roots["tiny"])
        )
        assert tiny == normal, name
