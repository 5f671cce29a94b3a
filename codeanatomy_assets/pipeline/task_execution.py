"""How one plan task runs: a scan task selects its evidence table; a view task runs its SQL.

A view runs in a fresh DataFusion ``SessionContext`` holding exactly its dependencies, so
what it can read is what the plan says it reads. Output views are cast to their contract
schema (``cpg.schemas``): a view that drifts fails here, loudly, not in a reader later.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pyarrow as pa
from datafusion import SessionContext

from codeanatomy_assets.cpg.nesting import NestSpec, nest
from codeanatomy_assets.cpg.schemas import OUTPUT_CONTRACTS
from codeanatomy_assets.normalize.ids import sql_literal
from codeanatomy_assets.plan.execution_plan import REPO_PLACEHOLDER
from codeanatomy_assets.storage.arrow_types import plain_strings


@dataclass(frozen=True, slots=True)
class TaskExecutionSpec:
    """What a synthesized node needs to run its task, fixed when the module is built."""

    task_name: str
    task_kind: str
    sql: str | None
    output: bool
    plan_signature: str
    task_signature: str
    nest: NestSpec | None = None


def execute_view(
    spec: TaskExecutionSpec, dependencies: Mapping[str, pa.Table], repo_id: str
) -> pa.Table:
    """Run a view task's SQL over its dependencies, for ``repo_id``."""
    assert spec.sql is not None
    ctx = SessionContext()
    for name, table in dependencies.items():
        ctx.register_record_batches(
            name,
            [table.to_batches()]
            if table.num_rows
            else [[pa.RecordBatch.from_pylist([], schema=table.schema)]],
        )
    sql = spec.sql.replace(sql_literal(REPO_PLACEHOLDER), sql_literal(repo_id))
    result = ctx.sql(sql).to_arrow_table()
    if spec.nest is not None:
        result = nest(result, spec.nest)
    if not spec.output:
        return result
    schema = OUTPUT_CONTRACTS[spec.task_name].schema
    result = plain_strings(result).select(schema.names)
    return result.cast(schema)
