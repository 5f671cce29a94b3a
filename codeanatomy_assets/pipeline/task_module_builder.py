"""Synthesize the plan-specific Hamilton modules: plan values and one node per plan task.

For every task a function named after its output is created; its dependencies are injected
with ``@inject(dependencies=group(...))`` from the plan (never hand-written), its schedule
metadata becomes ``@tag`` values, and output views get the contract validator. For every
output a ``write_<name>`` node streams it into Delta (see ``_write_node``). Generated
functions get ``__module__`` set and the module registered in ``sys.modules``: Hamilton skips
functions it cannot place.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

import pyarrow as pa
from hamilton.function_modifiers import check_output_custom, group, inject, source, tag, value

from codeanatomy_assets.pipeline.cache import CODE_VERSION_TAG, task_code_version
from codeanatomy_assets.pipeline.node_threads import SORTED_MAP_TAG
from codeanatomy_assets.pipeline.placement import run_task
from codeanatomy_assets.pipeline.request import OutputWrite
from codeanatomy_assets.pipeline.run_context import current_run, run_scratch
from codeanatomy_assets.pipeline.task_execution import (
    Dependency,
    OutputTable,
    TaskExecutionSpec,
    execute_view,
    execute_view_to_lake,
)
from codeanatomy_assets.pipeline.validators import ContractValidator
from codeanatomy_assets.plan.execution_plan import ExecutionPlan, PlanTask
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import SpilledTable


def _new_module(name: str) -> ModuleType:
    module = ModuleType(name)
    module.__dict__["__all__"] = []
    sys.modules[name] = module
    return module


def _place(module: ModuleType, fn: Callable[..., Any], name: str) -> None:
    fn.__name__ = name
    fn.__qualname__ = name
    fn.__module__ = module.__name__
    module.__dict__[name] = fn
    module.__dict__["__all__"].append(name)


def build_execution_plan_module(plan: ExecutionPlan, name: str) -> ModuleType:
    """Nodes ``execution_plan`` and ``plan_signature``: the plan as data inside the DAG."""
    module = _new_module(name)

    def execution_plan() -> ExecutionPlan:
        return plan

    def plan_signature() -> str:
        return plan.signature

    execution_plan.__annotations__ = {"return": ExecutionPlan}
    plan_signature.__annotations__ = {"return": str}
    _place(module, execution_plan, "execution_plan")
    _place(module, plan_signature, "plan_signature")
    return module


def _tags(task: PlanTask, plan: ExecutionPlan) -> dict[str, str]:
    return {
        "layer": "execution",
        "kind": "task",
        "task_name": task.name,
        "task_kind": task.kind,
        "output": str(task.output),
        "task_cost": str(task.cost),
        "bottom_level_cost": str(task.bottom_level_cost),
        "slack": str(task.slack),
        "on_critical_path": str(task.on_critical_path),
        "betweenness_centrality": str(task.betweenness),
        "generation_index": str(task.generation),
        "generation_order": str(task.generation_order),
        "schedule_index": str(task.schedule_index),
        "plan_signature": plan.signature,
        "plan_task_signature": task.task_signature,
        # Hamilton cannot version these closures by source (all share one), so the cache uses
        # the plan task signature plus the execution code's digest (``pipeline.cache``).
        CODE_VERSION_TAG: task_code_version(task.task_signature),
    }


def _task_node(task: PlanTask, plan: ExecutionPlan) -> Callable[..., Dependency]:
    spec = TaskExecutionSpec(
        task.name,
        task.kind,
        task.sql,
        task.output,
        plan.signature,
        task.task_signature,
        task.nest,
        task.parts,
        task.local,
        task.per_file,
        task.repartition,
        task.pushdown,
    )
    tags = _tags(task, plan)
    if task.kind == "scan":

        def scan_task(
            evidence: dict[str, SpilledTable], task_spec: TaskExecutionSpec
        ) -> SpilledTable:
            return run_task(
                task_spec.task_name, tags, evidence.__getitem__, task_spec.task_name, remote=None
            )

        scan_task.__annotations__ = {
            "evidence": dict[str, SpilledTable],
            "task_spec": TaskExecutionSpec,
            "return": Dependency,
        }
        fn: Callable[..., Dependency] = inject(task_spec=value(spec))(scan_task)
    else:

        def view_task(
            dependencies: dict[str, Dependency], task_spec: TaskExecutionSpec, repo_id: str
        ) -> Dependency:
            result = run_task(
                task_spec.task_name, tags, execute_view, task_spec, dict(dependencies), repo_id
            )
            if isinstance(result, pa.Table) and not task_spec.output and current_run():
                # An intermediate that came back from a Dask worker: spilled like local ones.
                return run_scratch().spill(task_spec.task_name, result)
            return result

        view_task.__annotations__ = {
            "dependencies": dict[str, Dependency],
            "task_spec": TaskExecutionSpec,
            "repo_id": str,
            "return": pa.Table if task.output else Dependency,
        }
        deps = {d: source(d) for d in task.dependencies}
        fn = inject(dependencies=group(**deps), task_spec=value(spec))(view_task)
        if task.output:
            fn = check_output_custom(ContractValidator(task.name))(fn)
    # Every node of the task (an output view's raw, contract and final nodes) carries the
    # tags: routing and the cache read them from the node that does the work.
    return tag(target_=..., **tags)(fn)


def _write_node(task: PlanTask, plan: ExecutionPlan) -> Callable[..., OutputWrite]:
    """``write_<output>``: stream the output view into its Delta partition.

    It runs the view's SQL itself, from the same dependencies as the in-memory ``<output>``
    node, so a build never holds an output table: dependencies that are outputs arrive as
    their writes and are read back from the lake (the standard library's outputs held in
    memory until the end of the run took 14 GB). The in-memory node stays for callers that
    want the table; builds request only the writes. The node carries its task's tags, so
    routing, task spans and timings see the work where it happens.
    """
    spec = TaskExecutionSpec(
        task.name, task.kind, task.sql, task.output, plan.signature, task.task_signature,
        task.nest, task.parts, task.local, repartition=task.repartition,
        pushdown=task.pushdown,
    )  # fmt: skip
    outputs = set(plan.outputs)
    # A sorted map's write holds a bounded share of its rows at a time (``pipeline.node_threads``).
    tags = {**_tags(task, plan), "layer": "outputs", "kind": "write"}
    tags[SORTED_MAP_TAG] = str(task.nest is not None)

    def write_task(
        tables: dict[str, Dependency],
        written: dict[str, OutputWrite],
        lake: Lake,
        repo_id: str,
        commit_sha: str,
    ) -> OutputWrite:
        deps: dict[str, Dependency] = dict(tables)
        deps.update({n: OutputTable(w, lake, repo_id, commit_sha) for n, w in written.items()})
        handle = run_task(
            task.name, tags, execute_view_to_lake, spec, deps, repo_id, lake, commit_sha
        )
        run = current_run()
        if run is not None and run.on_output is not None:
            run.on_output(handle.write)
        return handle.write

    write_task.__annotations__ = {
        "tables": dict[str, Dependency],
        "written": dict[str, OutputWrite],
        "lake": Lake,
        "repo_id": str,
        "commit_sha": str,
        "return": OutputWrite,
    }
    tables = {d: source(d) for d in task.dependencies if d not in outputs}
    written = {d: source(f"write_{d}") for d in task.dependencies if d in outputs}
    fn = inject(
        tables=group(**tables) if tables else value({}),
        written=group(**written) if written else value({}),
    )(write_task)
    return tag(target_=..., **tags)(fn)


def build_task_execution_module(plan: ExecutionPlan, name: str) -> ModuleType:
    """One node per plan task, plus ``write_<output>`` for each output view."""
    module = _new_module(name)
    for task in plan.tasks:
        _place(module, _task_node(task, plan), task.name)
    for task in plan.tasks:
        if task.output:
            _place(module, _write_node(task, plan), f"write_{task.name}")
    return module


def module_names(plan_signature: str) -> Mapping[str, str]:
    """Module names scoped by plan, so two plans in one process never share a module."""
    return {
        "plan": f"codeanatomy_assets._generated.plan_{plan_signature}",
        "tasks": f"codeanatomy_assets._generated.tasks_{plan_signature}",
    }
