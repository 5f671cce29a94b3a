"""Scalar functions the CPG views call that SQL cannot express, and the session that has
them and bounds their memory (a spilling pool, ``memory_pool_bytes``).

C3 linearization merges the base lists of every ancestor and is inherently sequential, so no
bounded set of joins computes it; it is a pure Python function over the class's sub-hierarchy
(collected by SQL), applied batch by batch inside DataFusion. Views stay SQL: the planner
still reads their dependencies from the logical plan, and every context that plans or runs a
view is made by :func:`session_context`, so the function exists wherever a view does.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence

import pyarrow as pa
from datafusion import RuntimeEnvBuilder, SessionConfig, SessionContext, udf

HIERARCHY_EDGE = pa.struct(
    [("cls", pa.string()), ("base_index", pa.int64()), ("base", pa.string())]
)
MRO_ENTRY = pa.struct([("anc_id", pa.string()), ("position", pa.int64())])


def c3_merge(class_id: str, bases: Mapping[str, Sequence[str]]) -> list[str] | None:
    """The C3 linearization of ``class_id`` (``type.mro()``), or None when Python would
    reject the hierarchy (inconsistent order or a cycle). Classes missing from ``bases``
    have no known bases (externals, depth-bounded ancestors): their MRO is themselves."""
    memo: dict[str, list[str] | None] = {}
    visiting: set[str] = set()

    def linearize(cls: str) -> list[str] | None:
        if cls in memo:
            return memo[cls]
        if cls in visiting:  # a cycle: no class statement can build it
            return None
        visiting.add(cls)
        direct = list(bases.get(cls, ()))
        parents = [linearize(b) for b in direct]
        visiting.discard(cls)
        if any(p is None for p in parents):
            memo[cls] = None
            return None
        seqs = [list(p) for p in parents if p] + ([direct] if direct else [])
        result = [cls]
        while seqs:
            head = next(
                (s[0] for s in seqs if not any(s[0] in t[1:] for t in seqs)),
                None,
            )
            if head is None:  # no good head: "Cannot create a consistent MRO"
                memo[cls] = None
                return None
            result.append(head)
            seqs = [t for t in ([x for x in s if x != head] for s in seqs) if t]
        memo[cls] = result
        return result

    return linearize(class_id)


def dfs_last(class_id: str, bases: Mapping[str, Sequence[str]]) -> list[str]:
    """Depth-first, left to right, keeping each class's last occurrence: what the MRO falls
    back to when C3 has no answer, so a broken hierarchy still resolves its members."""
    order: list[str] = []
    stack: list[tuple[str, frozenset[str]]] = [(class_id, frozenset())]
    while stack:
        cls, path = stack.pop()
        if cls in path:  # a cycle: the class is already below itself
            continue
        order.append(cls)
        for b in reversed(bases.get(cls, ())):
            stack.append((b, path | {cls}))
    last = {cls: i for i, cls in enumerate(order)}
    return [cls for i, cls in enumerate(order) if last[cls] == i]


def _bases(edges: Iterable[Mapping[str, object]] | None) -> dict[str, list[str]]:
    """Each class's bases in order, from (class, base index, base) edges."""
    bases: dict[str, list[tuple[int, str]]] = {}
    for e in edges or ():
        bases.setdefault(str(e["cls"]), []).append((int(e["base_index"]), str(e["base"])))  # type: ignore[call-overload]
    return {cls: [b for _, b in sorted(set(items))] for cls, items in bases.items()}


def class_mro(class_id: str, edges: Iterable[Mapping[str, object]] | None) -> list[str]:
    """The MRO of one class from the (class, base index, base) edges of its ancestors."""
    bases = _bases(edges)
    return c3_merge(class_id, bases) or dfs_last(class_id, bases)


def _ambiguous(edges: Iterable[Mapping[str, object]] | None) -> bool:
    """Some base of the hierarchy resolved to several classes (a name bound more than once)."""
    seen: dict[tuple[object, object], object] = {}
    for e in edges or ():
        if seen.setdefault((e["cls"], e["base_index"]), e["base"]) != e["base"]:
            return True
    return False


def c3_consistent(class_id: str, edges: Iterable[Mapping[str, object]] | None) -> bool:
    """False only when the resolved hierarchy is unambiguous and C3 rejects it, as Python
    would; a base with several candidate classes says nothing about Python's verdict."""
    edges = list(edges or ())
    return _ambiguous(edges) or c3_merge(class_id, _bases(edges)) is not None


def _c3_consistent(class_ids: pa.Array, hierarchies: pa.Array) -> pa.Array:
    return pa.array(
        [
            c3_consistent(cls, edges)
            for cls, edges in zip(class_ids.to_pylist(), hierarchies.to_pylist(), strict=True)
        ],
        type=pa.bool_(),
    )


def _c3_mro(class_ids: pa.Array, hierarchies: pa.Array) -> pa.Array:
    rows = [
        [{"anc_id": anc, "position": i} for i, anc in enumerate(class_mro(cls, edges))]
        for cls, edges in zip(class_ids.to_pylist(), hierarchies.to_pylist(), strict=True)
    ]
    return pa.array(rows, type=pa.list_(MRO_ENTRY))


C3_MRO = udf(
    _c3_mro,
    [pa.string(), pa.list_(HIERARCHY_EDGE)],
    pa.list_(MRO_ENTRY),
    "immutable",
    "c3_mro",
)


C3_CONSISTENT = udf(
    _c3_consistent,
    [pa.string(), pa.list_(HIERARCHY_EDGE)],
    pa.bool_(),
    "immutable",
    "c3_consistent",
)


# Memory DataFusion may hold for sorts, aggregations and joins of one session before sorts
# and aggregations spill to temp files. Sorting the stdlib's 9.4 M edges by node took 3.9 GB
# and 6.8 s unbounded, 1.0 GB and 4.1 s with this pool (smaller runs merge faster).
MEMORY_POOL_BYTES = 1 << 30
# A view that only sorts (the adjacency and property maps: ORDER BY, then nesting) spills
# well and needs no hash table: a quarter of the pool, in one partition. Sorting the stdlib's
# 9.4 M edges by node, alone: 512 MiB in two partitions took 5.1 s, 9.1 CPU-s and 910 MB of
# process memory; 256 MiB in one took 6.8 s, 8.6 CPU-s and 670 MB (128 MiB: 12.3 CPU-s). Two
# partitions also need a final merge (SortPreservingMergeExec) that cannot spill and failed
# now and then once the two sorts had filled the pool (8.5 M props at 512 MiB, in a build;
# every other run at 256 MiB), which reran the whole sort with the default pool.
SORT_POOL_BYTES = 256 << 20
# Overrides the pool per process (a build, a Dask worker): MiB, or "unbounded".
MEMORY_POOL_ENV = "CODEANATOMY_MEMORY_POOL_MB"
_MIN_POOL_MB = 64


def memory_pool_bytes() -> int | None:
    """The pool size from ``$CODEANATOMY_MEMORY_POOL_MB`` (None: unbounded), else the default.

    Raises ValueError naming the variable and what it allows.
    """
    raw = os.environ.get(MEMORY_POOL_ENV, "").strip()
    if not raw:
        return MEMORY_POOL_BYTES
    if raw.lower() == "unbounded":
        return None
    if raw.isdigit() and int(raw) >= _MIN_POOL_MB:
        return int(raw) << 20
    raise ValueError(
        f"{MEMORY_POOL_ENV}={raw!r} is not allowed: use a whole number of MiB >= {_MIN_POOL_MB}, "
        "or 'unbounded'"
    )


# How DataFusion 55 says an operator hit the pool: the pool itself, an external sort that
# cannot reserve its merge buffer, a hash aggregate that cannot emit its first group.
_EXHAUSTED = ("Resources exhausted", "Not enough memory", "ran out of memory")


def memory_exhausted(exc: BaseException) -> bool:
    """Whether a DataFusion error says the session's memory pool was too small."""
    text = str(exc)
    return any(marker in text for marker in _EXHAUSTED)


def session_context(
    *,
    bounded: bool = True,
    sort_only: bool = False,
    repartition: bool = True,
    whole_pool: bool = False,
    pushdown: bool = False,
) -> SessionContext:
    """A DataFusion session with the CPG's functions registered; ``bounded``: sorts and
    aggregations spill past ``memory_pool_bytes()``, and an operator that cannot spill fails
    with "Resources exhausted" (``pipeline.task_execution`` runs such a view again unbounded;
    aggregations that spill are slower, sorts that spill were faster). ``sort_only``: a view
    whose only memory-hungry operator is a sort gets at most ``SORT_POOL_BYTES`` (with
    ``whole_pool``, the whole pool: a sort of a small part of a map) and one partition (no
    final merge that cannot spill; the build runs other views on the other core).
    ``repartition=False`` plans no ``RepartitionExec`` (aggregations and joins then merge
    their input partitions instead): in DataFusion 55 a ``RepartitionExec`` that spills under
    a memory limit can deadlock, every thread parked and the query never returning
    (apache/datafusion#24883, fixed upstream after 55.0.0). A uniqueness check over a spilling
    pool hung about one run in fifty. ``pushdown``: a Parquet scan decodes a row's other
    columns only where the query's filters hold (late materialization), for a view that picks
    few rows of a big table: the non-local nodes among the stdlib's 3.7 M, 0.18 s without,
    0.08 s with; DataFusion's default (off) is kept elsewhere."""
    runtime = RuntimeEnvBuilder().with_disk_manager_os()
    pool = memory_pool_bytes() if bounded else None
    if pool is not None and sort_only and not whole_pool:
        pool = min(pool, SORT_POOL_BYTES)
    if pool is not None:
        runtime = runtime.with_fair_spill_pool(pool)
    config = SessionConfig()
    if sort_only:
        # One partition, and inputs that come in several are coalesced before the sort.
        config = config.with_target_partitions(1).set(
            "datafusion.optimizer.repartition_sorts", "false"
        )
    if pushdown:
        config = config.set("datafusion.execution.parquet.pushdown_filters", "true")
    if not repartition:
        config = (
            config.set("datafusion.optimizer.repartition_aggregations", "false")
            .set("datafusion.optimizer.repartition_joins", "false")
            .set("datafusion.optimizer.enable_round_robin_repartition", "false")
        )
    ctx = SessionContext(config, runtime)
    ctx.register_udf(C3_MRO)
    ctx.register_udf(C3_CONSISTENT)
    return ctx
