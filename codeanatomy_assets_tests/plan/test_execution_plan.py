"""Dependencies come from DataFusion logical plans; the schedule is consistent with them."""

from __future__ import annotations

import pyarrow as pa
import pytest

from codeanatomy_assets.cpg.views import ViewSpec
from codeanatomy_assets.plan.execution_plan import compile_execution_plan
from codeanatomy_assets.plan.inference import PlanningError, infer_views

SOURCES = {
    "a": pa.schema([("k", pa.int64()), ("v", pa.string())]),
    "b": pa.schema([("k", pa.int64())]),
}


def test_dependencies_are_the_scanned_tables():
    views = (
        ViewSpec("joined", "SELECT a.k, a.v FROM a JOIN b ON a.k = b.k", False),
        # Listed before its input: planning waits for `joined` to exist.
        ViewSpec(
            "final",
            "SELECT count(*) AS n FROM (SELECT k FROM joined UNION ALL SELECT k FROM b) u",
            True,
        ),
        ViewSpec("sub", "SELECT k FROM a WHERE k IN (SELECT k FROM b)", True),
    )
    inferred = {v.spec.name: v.dependencies for v in infer_views(views, SOURCES)}
    assert inferred == {"joined": ("a", "b"), "final": ("b", "joined"), "sub": ("a", "b")}


def test_unknown_table_and_bad_sql_fail_clearly():
    with pytest.raises(PlanningError, match="missing input or cycle"):
        infer_views((ViewSpec("x", "SELECT * FROM nowhere", True),), SOURCES)
    with pytest.raises(PlanningError, match="view 'y' does not plan"):
        infer_views((ViewSpec("y", "SELECT no_such_column FROM a", True),), SOURCES)


def test_cpg_plan_schedule_metadata():
    plan = compile_execution_plan()
    tasks = {t.name: t for t in plan.tasks}
    # Read from the plans, not written by hand anywhere:
    assert tasks["cpg_props_map"].dependencies == ("cpg_props",)
    assert tasks["extract_errors"].dependencies == ("errors",)
    assert set(tasks["cpg_edges"].dependencies) >= {"ast_node_ids", "import_targets"}
    for t in plan.tasks:
        for dep in t.dependencies:
            assert tasks[dep].generation < t.generation
            assert tasks[dep].schedule_index < t.schedule_index
        assert t.slack >= 0
        assert t.on_critical_path == (t.slack == 0)
    assert [tasks[n].on_critical_path for n in plan.critical_path] == [True] * len(
        plan.critical_path
    )
    assert sum(tasks[n].cost for n in plan.critical_path) == pytest.approx(plan.critical_path_cost)
    assert set(plan.outputs) == set(plan.required_for(plan.outputs)) & set(plan.outputs)
    assert plan.required_for(["extract_errors"]) == {"extract_errors", "errors"}
    # Deterministic: the same views give the same signature.
    assert compile_execution_plan().signature == plan.signature


def test_a_view_cached_per_file_reads_per_file_tables_only():
    """Its rows of a file are computed from the changed files' rows alone: a view that read a
    whole-repository table would be cached wrong, so the plan refuses it."""
    from codeanatomy_assets.cpg.views import view_specs
    from codeanatomy_assets.extract.evidence import EVIDENCE_SCHEMAS

    views = view_specs("r")
    per_file = {v.name for v in views if v.per_file}
    assert {"ast_node_ids", "symbol_ids", "name_use_symbols"} <= per_file
    plan = compile_execution_plan(views, EVIDENCE_SCHEMAS)
    assert {t.name for t in plan.tasks if t.per_file} == per_file
    wrong = (
        *views,
        ViewSpec(
            "module_defs",
            "SELECT d.path, d.node_id FROM ast_node_ids d JOIN module_index m "
            "ON d.node_id = m.node_id",
            False,
            per_file=True,
        ),
    )
    with pytest.raises(ValueError, match="module_defs is cached per file but reads module_index"):
        compile_execution_plan(wrong, EVIDENCE_SCHEMAS)
    with pytest.raises(ValueError, match="only a plain intermediate view"):
        ViewSpec("out", "SELECT 1 AS x", True, per_file=True)
