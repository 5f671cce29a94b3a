"""A view that outgrows the memory pool spills, or runs again unbounded instead of failing; a
view whose stream stalls runs again without repartitioning instead of hanging."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datafusion import SessionContext, udf

from codeanatomy_assets.cpg import functions
from codeanatomy_assets.cpg.nesting import NestSpec
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS, OUTPUT_CONTRACTS
from codeanatomy_assets.obs.diagnostics import DiagnosticsCollector
from codeanatomy_assets.obs.otel import Telemetry
from codeanatomy_assets.pipeline import task_execution
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.local_layout import restrict_to_files
from codeanatomy_assets.pipeline.request import BuildRequest, OutputWrite
from codeanatomy_assets.pipeline.run_context import RunContext, enter_run, exit_run
from codeanatomy_assets.pipeline.task_execution import QueryStalled, TaskExecutionSpec, execute_view
from codeanatomy_assets.plan.execution_plan import compile_execution_plan
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


def test_a_stream_that_parks_is_stalled_and_one_that_computes_is_not() -> None:
    release = threading.Event()

    def parked() -> Iterator[pa.RecordBatch]:
        release.wait()  # no batch, no CPU: what a deadlocked DataFusion stream looks like
        yield pa.record_batch({"k": [1]})

    outcome: list[BaseException] = []

    def consume() -> None:
        try:
            list(task_execution._pumped(parked, stall_after_s=0.4))
        except BaseException as exc:
            outcome.append(exc)

    consumer = threading.Thread(target=consume, daemon=True)
    consumer.start()
    consumer.join(timeout=20)  # a watch that misses the stall fails here, it does not hang
    release.set()
    consumer.join(timeout=5)
    assert len(outcome) == 1 and isinstance(outcome[0], QueryStalled), outcome
    assert "while the process used" in str(outcome[0])

    def computing() -> Iterator[pa.RecordBatch]:
        end = time.monotonic() + 1.2
        while time.monotonic() < end:  # a sort before its first batch keeps a core busy
            sum(range(1000))
        yield pa.record_batch({"k": [1]})

    batches = list(task_execution._pumped(computing, stall_after_s=0.4))
    assert [b.num_rows for b in batches] == [1]


def test_a_view_whose_stream_stalls_runs_again_without_repartitioning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A real DataFusion stream that stops (a UDF that sleeps on its first call, as parked
    threads would): the view runs again in a session that plans no repartitioning."""
    monkeypatch.setattr(task_execution, "STALL_AFTER_S", 0.5)
    naps: list[bool] = []
    sessions: list[bool] = []

    def nap(values: pa.Array) -> pa.Array:
        if not naps:
            naps.append(True)
            time.sleep(3)
        return values

    def session(**kwargs: Any) -> SessionContext:
        sessions.append(kwargs["repartition"])
        ctx = functions.session_context(**kwargs)
        ctx.register_udf(udf(nap, [pa.int64()], pa.int64(), "stable", name="nap"))
        return ctx

    monkeypatch.setattr(task_execution, "session_context", session)
    spec = TaskExecutionSpec("napped", "view", "SELECT nap(v) AS v FROM b", False, "p", "t")
    table = _tables(1_000)["b"]
    with caplog.at_level(logging.WARNING):
        # What ``execute_view`` runs for an intermediate view inside a build.
        result = task_execution._bounded_first(
            spec,
            lambda pool, repartition: task_execution._spill_view(
                spec, {"b": table}, "repo", pool, repartition
            ),
        )
    assert result.num_rows == 1_000
    assert sessions == [True, False]
    assert "stream stalled" in caplog.text and "without repartitioning" in caplog.text


def test_a_view_flagged_so_never_plans_a_repartition(monkeypatch: pytest.MonkeyPatch) -> None:
    """``ViewSpec.repartition=False`` (the node ids' GROUP BY in ``cpg_nodes_quality``) reaches
    the task through the plan, and its first session already plans no repartitioning; a stall
    there is raised, not retried in the same kind of session."""
    plan = compile_execution_plan()
    assert not plan.task("cpg_nodes_quality").repartition
    assert plan.task("cpg_edges").repartition
    sessions: list[bool] = []

    def session(**kwargs: Any) -> SessionContext:
        sessions.append(kwargs["repartition"])
        return functions.session_context(**kwargs)

    monkeypatch.setattr(task_execution, "session_context", session)
    spec = TaskExecutionSpec(
        "grouped", "view", "SELECT k, count(*) AS n FROM b GROUP BY k", False, "p", "t",
        repartition=False,
    )  # fmt: skip
    table = _tables(100)["b"]

    def run(pool: task_execution.Pool, repartition: bool) -> pa.Table:
        return task_execution._spill_view(spec, {"b": table}, "repo", pool, repartition)

    assert task_execution._bounded_first(spec, run).num_rows > 0
    assert sessions == [False]

    def parked(pool: task_execution.Pool, repartition: bool) -> None:
        raise QueryStalled("stream stalled: parked")

    with pytest.raises(QueryStalled):
        task_execution._unstalled(spec, parked, "default")


def test_a_view_flagged_so_reads_only_the_rows_its_filters_keep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ViewSpec.pushdown`` (the quality outputs, which pick a few rows of an output) reaches
    the sessions that write the output, and there a Parquet scan filters before it decodes
    the other columns; other outputs keep DataFusion's default."""
    plan = compile_execution_plan()
    flagged = {t.name for t in plan.tasks if t.pushdown}
    assert flagged == {"cpg_nodes_quality", "cpg_props_quality"}
    sessions: list[bool] = []

    def session(**kwargs: Any) -> SessionContext:
        sessions.append(kwargs.get("pushdown", False))
        return functions.session_context(**kwargs)

    monkeypatch.setattr(task_execution, "session_context", session)
    lake = Lake(str(tmp_path / "lake"))
    props = pa.Table.from_pylist(
        [{"entity_id": f"{i:032x}", "prop_key": "no_such_key" if i == 7 else "ast_type",
          "value_type": "string", "value_string": None if i == 3 else "x"} for i in range(10)],
        schema=OUTPUT_CONTRACTS["cpg_props"].schema,
    )  # fmt: skip
    lake.write_partition("cpg_props", props, "repo", "a" * 40)
    task = plan.task("cpg_props_quality")
    spec = TaskExecutionSpec(
        task.name, task.kind, task.sql, task.output, plan.signature, task.task_signature,
        pushdown=task.pushdown,
    )  # fmt: skip
    task_execution.execute_view_to_lake(
        spec, {"cpg_props": _output_table(lake, "cpg_props")}, "repo", lake, "a" * 40
    )
    found = lake.read_partition("cpg_props_quality", "repo", "a" * 40).to_pylist()
    assert {(r["entity_id"][-1], r["issue"]) for r in found} == {
        ("3", "missing_value"),
        ("7", "unknown_key"),
    }
    assert sessions and all(sessions)
    # What the flag sets: a scan that evaluates the filter before it decodes other columns.
    data = tmp_path / "t.parquet"
    pq.write_table(pa.table({"k": ["a", "b"] * 500, "v": list(range(1000))}), data)
    for pushdown in (True, False):
        ctx = functions.session_context(pushdown=pushdown)
        ctx.register_parquet("t", str(data))
        plan = ctx.sql("EXPLAIN SELECT v FROM t WHERE k = 'a'").to_arrow_table()
        physical = plan.column(1)[1].as_py()
        # Pushed down, the scan filters and reads ``k`` only for that: no FilterExec above.
        assert ("FilterExec" not in physical) is pushdown, physical
    assert ctx.sql("SELECT count(*) AS n FROM t WHERE k = 'a'").to_pylist() == [{"n": 500}]


def _output_table(lake: Lake, name: str) -> task_execution.OutputTable:
    table = lake.table(name)
    assert table is not None
    rows = lake.read_partition(name, "repo", "a" * 40).num_rows
    write = OutputWrite(name, lake.table_uri(name), table.version(), rows, pa.schema([]))
    return task_execution.OutputTable(write, lake, "repo", "a" * 40)


@pytest.mark.parametrize("pushdown", [True, False])
def test_a_session_restricted_to_some_files_keeps_its_own_pushdown(
    tmp_path: Path, pushdown: bool
) -> None:
    """``restrict_to_files`` turns filter pushdown on for the restricting scans, then gives
    the session back its own setting (a quality output's file-local parts keep theirs)."""
    data = tmp_path / "t.parquet"
    pq.write_table(pa.table({"path": ["a.py", "b.py"] * 50, "v": list(range(100))}), data)
    ctx = functions.session_context(pushdown=pushdown)
    ctx.register_parquet("t", str(data))
    run = RunContext(
        "r", "repo", "a" * 40, "serial", DiagnosticsCollector(), Telemetry.from_env({})
    )
    token = enter_run(run)
    try:
        restrict_to_files(ctx, ["t"], ("a.py",), pushdown)
    finally:
        exit_run(token)
    try:  # the restricted table is spilled to the run's scratch: read it before it goes
        assert ctx.sql("SELECT count(*) AS n FROM t").to_pylist() == [{"n": 50}]
        ctx.register_parquet("u", str(data))  # a table scans as the session is set up now
        physical = ctx.sql("EXPLAIN SELECT v FROM u WHERE path = 'a.py'").to_arrow_table()
        assert ("FilterExec" not in physical.column(1)[1].as_py()) is pushdown
    finally:
        if run.scratch is not None:
            run.scratch.cleanup()
