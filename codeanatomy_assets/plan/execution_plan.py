"""The execution plan: one task per evidence table and per view, with schedule metadata.

Scan tasks are the evidence tables the extractors produce; view tasks are the views, with the
dependencies their logical plans scan. Schedule metadata (topological generation, bottom-level
cost, slack, critical path, betweenness) comes from the task DAG in rustworkx and becomes
Hamilton tags, so routing and diagnostics can read it without recomputing anything.

The plan does not depend on the repository: views are planned with a placeholder repo id that
task execution substitutes, so one plan (and one Hamilton driver) serves every partition.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import pyarrow as pa
import rustworkx as rx
from datafusion import SessionContext

from codeanatomy_assets.cpg.functions import session_context
from codeanatomy_assets.cpg.locality import PER_FILE_SHARED, LocalParts
from codeanatomy_assets.cpg.nesting import NestSpec
from codeanatomy_assets.cpg.views import ViewSpec, view_specs
from codeanatomy_assets.extract.evidence import EVIDENCE_SCHEMAS, PER_FILE_TABLES
from codeanatomy_assets.plan.inference import InferredView, infer_views

REPO_PLACEHOLDER = "repo-id-placeholder"
PLAN_VERSION = 1


@dataclass(frozen=True, slots=True)
class PlanTask:
    """One node of the plan. ``cost`` is a relative estimate (scan tasks 1, views by shape)."""

    name: str
    kind: str  # "scan" | "view"
    dependencies: tuple[str, ...]
    sql: str | None
    output: bool
    cost: float
    generation: int = 0
    generation_order: int = 0
    schedule_index: int = 0
    bottom_level_cost: float = 0.0
    slack: float = 0.0
    on_critical_path: bool = False
    betweenness: float = 0.0
    task_signature: str = ""
    nest: NestSpec | None = None
    parts: tuple[str, ...] = ()
    local: LocalParts | None = None
    per_file: bool = False
    repartition: bool = True
    pushdown: bool = False


@dataclass(frozen=True)
class ExecutionPlan:
    """Tasks in schedule order, the plan signature, and the critical path."""

    tasks: tuple[PlanTask, ...]
    signature: str
    critical_path: tuple[str, ...]
    critical_path_cost: float

    def task(self, name: str) -> PlanTask:
        for t in self.tasks:
            if t.name == name:
                return t
        raise KeyError(name)

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.tasks if t.output)

    def required_for(self, outputs: Iterable[str]) -> set[str]:
        """Every task the given outputs need (themselves included)."""
        by_name = {t.name: t for t in self.tasks}
        needed: set[str] = set()
        stack = list(outputs)
        while stack:
            name = stack.pop()
            if name in needed or name not in by_name:
                continue
            needed.add(name)
            stack.extend(by_name[name].dependencies)
        return needed


def _view_cost(sql: str, ctx: SessionContext) -> float:
    """Relative cost from the plan's shape: joins, aggregates, windows and sorts weigh most."""
    text = ctx.sql(sql).logical_plan().display_indent()
    weights = {"Join": 3.0, "Aggregate": 2.0, "Window": 2.0, "Sort": 1.5, "Union": 0.5}
    return 1.0 + sum(w * text.count(k) for k, w in weights.items())


def _digest(payload: object) -> str:
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def compile_execution_plan(
    views: tuple[ViewSpec, ...] | None = None,
    sources: Mapping[str, pa.Schema] | None = None,
) -> ExecutionPlan:
    """Plan the views over the evidence tables and schedule them."""
    views = views if views is not None else view_specs(REPO_PLACEHOLDER)
    sources = sources if sources is not None else EVIDENCE_SCHEMAS
    inferred = infer_views(views, sources)
    _check_per_file(inferred)
    ctx = session_context()
    for name, schema in sources.items():
        ctx.register_record_batches(name, [[pa.RecordBatch.from_pylist([], schema=schema)]])
    raw: list[PlanTask] = [PlanTask(name, "scan", (), None, False, 1.0) for name in sorted(sources)]
    for v in inferred:
        raw.append(
            PlanTask(
                v.spec.name,
                "view",
                v.dependencies,
                v.spec.sql,
                v.spec.output,
                _view_cost(v.spec.sql, ctx),
                nest=v.spec.nest,
                parts=v.spec.parts,
                local=v.spec.local,
                per_file=v.spec.per_file,
                repartition=v.spec.repartition,
                pushdown=v.spec.pushdown,
            )
        )
        ctx.register_record_batches(
            v.spec.name, [[pa.RecordBatch.from_pylist([], schema=v.schema)]]
        )
    return _schedule(raw)


def _check_per_file(inferred: Iterable[InferredView]) -> None:
    """A view cached per file reads per-file tables only: its rows of a file are computed
    from the changed files' rows alone (``pipeline.view_cache``), so a view that read a
    whole-repository table would be cached wrong, silently."""
    per_file = {v.spec.name for v in inferred if v.spec.per_file}
    allowed = set(PER_FILE_TABLES) | PER_FILE_SHARED | per_file
    for v in inferred:
        outside = sorted(set(v.dependencies) - allowed) if v.spec.per_file else []
        if outside:
            raise ValueError(
                f"view {v.spec.name} is cached per file but reads {', '.join(outside)}: "
                f"allowed are per-file tables, {', '.join(sorted(PER_FILE_SHARED))} and "
                "other per-file views"
            )


def _schedule(raw: list[PlanTask]) -> ExecutionPlan:
    dag = rx.PyDiGraph()
    index = {t.name: dag.add_node(t.name) for t in raw}
    for t in raw:
        for dep in t.dependencies:
            dag.add_edge(index[dep], index[t.name], None)
    cost = {index[t.name]: t.cost for t in raw}
    order = list(rx.topological_sort(dag))
    top: dict[int, float] = {}
    for n in order:
        top[n] = max((top[p] + cost[p] for p in dag.predecessor_indices(n)), default=0.0)
    bottom: dict[int, float] = {}
    for n in reversed(order):
        bottom[n] = cost[n] + max((bottom[s] for s in dag.successor_indices(n)), default=0.0)
    cp_cost = max((top[n] + bottom[n] for n in order), default=0.0)
    betweenness = rx.digraph_betweenness_centrality(dag, normalized=True)
    generations = rx.topological_generations(dag)
    position: dict[int, tuple[int, int]] = {}
    for g, members in enumerate(generations):
        for i, n in enumerate(sorted(members, key=lambda m: dag[m])):
            position[n] = (g, i)
    by_name = {t.name: t for t in raw}
    scheduled: list[PlanTask] = []
    sched_order = sorted(order, key=lambda n: (position[n], dag[n]))
    signatures: dict[str, str] = {}
    for i, n in enumerate(sched_order):
        t = by_name[dag[n]]
        slack = round(cp_cost - (top[n] + bottom[n]), 6)
        sig = _digest(
            {
                "name": t.name,
                "kind": t.kind,
                "sql": t.sql,
                "nest": repr(t.nest),
                "local": repr(t.local),
                "per_file": t.per_file,
                "deps": [signatures[d] for d in t.dependencies],
            }
        )
        signatures[t.name] = sig
        scheduled.append(
            PlanTask(
                name=t.name,
                kind=t.kind,
                dependencies=t.dependencies,
                sql=t.sql,
                output=t.output,
                cost=t.cost,
                generation=position[n][0],
                generation_order=position[n][1],
                schedule_index=i,
                bottom_level_cost=bottom[n],
                slack=slack,
                on_critical_path=slack == 0.0,
                betweenness=round(float(betweenness[n]), 6),
                task_signature=sig,
                nest=t.nest,
                parts=t.parts,
                local=t.local,
                per_file=t.per_file,
                repartition=t.repartition,
                pushdown=t.pushdown,
            )
        )
    critical = []
    current = min(
        (
            n
            for n in order
            if not list(dag.predecessor_indices(n)) and top[n] + bottom[n] == cp_cost
        ),
        key=lambda n: dag[n],
        default=None,
    )
    while current is not None:
        critical.append(dag[current])
        nxt = [
            s
            for s in dag.successor_indices(current)
            if bottom[s] == bottom[current] - cost[current]
        ]
        current = min(nxt, key=lambda n: dag[n]) if nxt else None
    signature = _digest({"version": PLAN_VERSION, "tasks": sorted(signatures.values())})
    return ExecutionPlan(tuple(scheduled), signature, tuple(critical), cp_cost)
