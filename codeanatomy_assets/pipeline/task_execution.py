"""How one plan task runs: a scan task selects its evidence table; a view task runs its SQL.

A view runs in a fresh DataFusion ``SessionContext`` holding exactly its dependencies, so
what it can read is what the plan says it reads; its sorts and aggregations spill past a
memory pool (``cpg.functions.session_context``). Output views are cast to their contract
schema (``cpg.schemas``): a view that drifts fails here, loudly, not in a reader later.

An output that is to be written streams from DataFusion into its Delta partition
(``execute_view_to_lake``) and only a handle (``OutputTable``) stays in memory; a view that
reads it reads the partition back from the lake. The graph of the standard library is
millions of rows per output: holding every output until the run ends took 14 GB. Inside a
build, intermediate views likewise stream into the run's scratch space and only a
``SpilledTable`` stays (``storage.scratch``), as the evidence does.
"""

from __future__ import annotations

import gc
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias, TypeVar

import pyarrow as pa
from datafusion import DataFrame, SessionContext

from codeanatomy_assets.cpg.functions import memory_exhausted, session_context
from codeanatomy_assets.cpg.locality import LocalParts
from codeanatomy_assets.cpg.nesting import NestSpec, nest, nest_batches
from codeanatomy_assets.cpg.schemas import KIND_COLUMNS, OUTPUT_CONTRACTS
from codeanatomy_assets.normalize.ids import sql_literal
from codeanatomy_assets.pipeline.bucket_layout import (
    IDENTITY_COLUMN,
    BucketLayout,
    SourceGroup,
    bucket_layout,
    feed_columns,
    feed_identities,
    identity,
    register_group,
    restrict_source,
    source_groups,
)
from codeanatomy_assets.pipeline.heap import peak_resident_mb, release_arrow_pool
from codeanatomy_assets.pipeline.local_layout import (
    all_carried,
    carried_rows,
    local_layout,
    only_computed,
    restrict_to_files,
)
from codeanatomy_assets.pipeline.node_threads import few_files_computed
from codeanatomy_assets.pipeline.request import OutputWrite
from codeanatomy_assets.pipeline.run_context import RunContext, current_run, run_scratch
from codeanatomy_assets.pipeline.view_cache import cache_schema, per_file_view
from codeanatomy_assets.plan.execution_plan import REPO_PLACEHOLDER
from codeanatomy_assets.storage.arrow_types import plain_strings
from codeanatomy_assets.storage.buckets import GroupFingerprints, StrayBucketError
from codeanatomy_assets.storage.lake import Lake, TableWrite
from codeanatomy_assets.storage.scratch import SpilledTable

log = logging.getLogger(__name__)
_T = TypeVar("_T")


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
    parts: tuple[str, ...] = ()
    local: LocalParts | None = None
    per_file: bool = False
    # False: the first attempt plans no repartitioning either (``cpg.views.ViewSpec``).
    repartition: bool = True
    # Scans decode the rows the filters keep (``cpg.views.ViewSpec``).
    pushdown: bool = False


class EmptyOutputError(ValueError):
    """An output whose contract says non-empty produced no rows."""


class _LinkFailed(RuntimeError):
    """An earlier partition's bucket file could not be linked; nothing was committed."""


@dataclass(frozen=True)
class OutputTable:
    """An output written to its Delta partition; dependents read it back from there."""

    write: OutputWrite
    lake: Lake
    repo_id: str
    commit: str


Dependency: TypeAlias = pa.Table | SpilledTable | OutputTable

# The part index of an output's rows carried over from an earlier partition's group files
# (``local_layout.carried_rows``), in its ``view_part`` event.
CARRIED_PART = -1

# The memory pool a view's session runs with: the small pool of a sort, the default pool,
# none at all (``cpg.functions.session_context``).
Pool: TypeAlias = Literal["sort", "default", "unbounded"]


def _context(
    dependencies: Mapping[str, Dependency],
    *,
    pool: Pool = "default",
    repartition: bool = True,
    pushdown: bool = False,
) -> SessionContext:
    ctx = session_context(
        bounded=pool != "unbounded",
        sort_only=pool == "sort",
        repartition=repartition,
        pushdown=pushdown,
    )
    for name, dep in dependencies.items():
        if isinstance(dep, OutputTable):
            # Inside a build its files are linked into the build's scratch (removed with it)
            # and scanned as one table: a quality output's scan of a UNION of one table per
            # file cost 0.05-0.4 s more (17-65 files).
            links = (
                run_scratch().new_dir(f"{name}-files")
                if current_run() is not None and dep.lake.is_local
                else None
            )
            found = dep.lake.register_partition(
                ctx, name, dep.repo_id, dep.commit, f"lake_{name}", links=links
            )
            assert found, f"{name} was written but is not in the lake"
            columns = ", ".join(f'"{c}"' for c in OUTPUT_CONTRACTS[name].schema.names)
            ctx.register_view(name, ctx.sql(f"SELECT {columns} FROM lake_{name}"))
        elif isinstance(dep, SpilledTable):
            dep.register(ctx, name)
        else:
            ctx.register_record_batches(
                name,
                [dep.to_batches()]
                if dep.num_rows
                else [[pa.RecordBatch.from_pylist([], schema=dep.schema)]],
            )
    return ctx


# A stream that sends no batch for this long while the whole process used next to no CPU
# (this share of one core) is stuck, not slow: in DataFusion 55 a RepartitionExec that spills
# under a memory limit can park every thread for good (apache/datafusion#24883). A sort or a
# join that is slow to send its first batch keeps a core busy meanwhile.
STALL_AFTER_S = 120.0
_STALL_CPU_SHARE = 0.02
_STALLED = "stream stalled"


class QueryStalled(RuntimeError):
    """A view's stream stopped making progress; running it again without repartitioning
    avoids the known cause (``_bounded_first``)."""


def stalled(exc: BaseException) -> bool:
    """Whether ``exc`` is a stalled stream (also when the Delta writer wrapped it)."""
    return isinstance(exc, QueryStalled) or _STALLED in str(exc)


def _pumped(
    produce: Callable[[], Iterator[pa.RecordBatch]], stall_after_s: float | None = None
) -> Iterator[pa.RecordBatch]:
    """Run ``produce`` on a thread of its own and yield its batches through a small queue.

    The Delta writer pulls batches from inside its own async runtime, where DataFusion cannot
    start a stream ("FFI future panicked"); a plain thread can. The queue bounds what is in
    flight; a consumer that stops early makes the producer stop at its next batch. A producer
    that sends nothing for ``stall_after_s`` while the process is idle raises ``QueryStalled``
    here, instead of a build that never ends (its thread is left parked).
    """
    pipe: queue.Queue[object] = queue.Queue(maxsize=4)
    done = object()
    stop = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            for batch in produce():
                while not stop.is_set():
                    try:
                        pipe.put(batch, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, raised there
            failure.append(exc)
        finally:
            while not stop.is_set():
                try:
                    pipe.put(done, timeout=0.1)
                    break
                except queue.Full:
                    continue

    stall_after_s = STALL_AFTER_S if stall_after_s is None else stall_after_s
    worker = threading.Thread(target=run, name="view-stream", daemon=True)
    worker.start()
    try:
        since, cpu_since = time.monotonic(), time.process_time()
        while True:
            try:
                item = pipe.get(timeout=min(1.0, stall_after_s))
            except queue.Empty:
                waited, used = time.monotonic() - since, time.process_time() - cpu_since
                if waited < stall_after_s:
                    continue
                if used < _STALL_CPU_SHARE * waited:
                    stop.set()  # the parked thread is left to the runtime; no need to wait
                    raise QueryStalled(
                        f"{_STALLED}: no batch for {waited:.0f} s while the process used "
                        f"{used:.2f} CPU-s (every DataFusion thread parked)"
                    ) from None
                since, cpu_since = time.monotonic(), time.process_time()
                continue
            if item is done:
                break
            since, cpu_since = time.monotonic(), time.process_time()
            yield item  # type: ignore[misc]
    finally:
        if not stop.is_set():
            stop.set()
            worker.join(timeout=5)
    if failure:
        raise failure[0]


def _sql(spec: TaskExecutionSpec, repo_id: str) -> str:
    assert spec.sql is not None
    return _bind(spec.sql, repo_id)


def _bind(sql: str, repo_id: str) -> str:
    return sql.replace(sql_literal(REPO_PLACEHOLDER), sql_literal(repo_id))


def _unstalled(spec: TaskExecutionSpec, run: Callable[[Pool, bool], _T], pool: Pool) -> _T:
    """``run`` with ``pool``; if its stream stalls, once more without repartitioning."""
    try:
        return run(pool, spec.repartition)
    except Exception as exc:
        if not stalled(exc) or not spec.repartition:
            raise
        log.warning("%s: %s; running it again without repartitioning", spec.task_name, exc)
        return run(pool, False)


def _bounded_first(spec: TaskExecutionSpec, run: Callable[[Pool, bool], _T]) -> _T:
    """Run with a spilling memory pool (a nested output, which is a sort, with the small one);
    if an operator that cannot spill (a hash join's build side, a sort's final merge) needs
    more than the pool, run again with the next larger: the default pool, then none. An
    exhausted or stalled stream raises before its Delta commit, so a failed attempt leaves
    nothing. ``run`` takes the pool and whether the session may repartition."""
    ladder: tuple[Pool, ...] = ("sort",) if spec.nest is not None else ()
    ladder += ("default", "unbounded")
    for pool, larger in itertools.pairwise(ladder):
        try:
            return _unstalled(spec, run, pool)
        except Exception as exc:  # DataFusion raises plain Exceptions
            if not memory_exhausted(exc):
                raise
            log.warning("%s: %s; running it again with pool %r", spec.task_name, exc, larger)
    return _unstalled(spec, run, ladder[-1])


def _stream_to_lake(
    spec: TaskExecutionSpec,
    dependencies: Mapping[str, Dependency],
    repo_id: str,
    lake: Lake,
    commit: str,
    pool: Pool,
    repartition: bool = True,
    link: bool = True,
) -> TableWrite:
    ctx = _context(dependencies, pool=pool, repartition=repartition, pushdown=spec.pushdown)
    schema = OUTPUT_CONTRACTS[spec.task_name].schema
    layout = None
    if spec.nest is not None:
        layout = bucket_layout(
            spec.nest, ctx, lake, spec.task_name, repo_id, commit, schema, link=link
        )
        if layout is not None and layout.groups is None and layout.rewrite is not None:
            restrict_source(ctx, spec.nest, layout)
    # A union's parts run one after another (``ViewSpec.parts``); each is planned before the
    # first runs, so a part that does not plan fails the write before it starts.
    queries = [_bind(part, repo_id) for part in spec.parts] or [_sql(spec, repo_id)]
    local = None
    if spec.local is not None and spec.nest is None:
        local = local_layout(
            spec.local, tuple(queries), lake, spec.task_name, repo_id, commit, schema,
            link=link,
        )  # fmt: skip
        if local is not None and local.few:
            few_files_computed()
    groups = None
    if local is not None:
        assert spec.local is not None
        local_ctx = ctx
        if local.paths is not None:  # only the changed buckets' files: a context of their own
            local_ctx = _context(
                dependencies, pool=pool, repartition=repartition, pushdown=spec.pushdown
            )
            restrict_to_files(local_ctx, dependencies, local.paths, spec.pushdown)
        indices, feeds = spec.local.indices, spec.local.feeds
        local_frames = [
            (i, feed_identities(local_ctx.sql(q), feeds))
            for i, q in enumerate(queries)
            if i in indices
        ]
        carried = carried_rows(local_ctx, local, schema)
        if carried is not None:
            local_frames.append((CARRIED_PART, feed_identities(carried, feeds)))
        frames = [(i, ctx.sql(q)) for i, q in enumerate(queries) if i not in indices]
        if feeds:  # the maps this output feeds: their partial fingerprints, group by group
            groups = GroupFingerprints(spec.local.key, feed_columns(feeds))
            local = replace(local, buckets=replace(local.buckets, partials=groups.partials))
    else:
        local_frames = []
        frames = list(enumerate(ctx.sql(query) for query in queries))
    groups_of_map: list[SourceGroup] = []
    if layout is not None and layout.groups is not None:
        assert spec.nest is not None
        groups_of_map = list(source_groups(ctx, spec.nest, layout))
        frames = [
            (i, _group_context(ctx, spec.nest, group, pool, repartition).sql(query))
            for group in groups_of_map
            for i, query in enumerate(queries)
        ]
    if layout is not None:
        frames = [(i, df.with_column(IDENTITY_COLUMN, identity(layout.source))) for i, df in frames]
    keep = layout.keep if layout is not None else local.keep if local is not None else ()
    counted = KIND_COLUMNS.get(spec.task_name)
    local_parts = {i for i, _ in local_frames}
    run = current_run()  # read here: the parts run on the stream's own thread
    rows = 0

    def part_tables(n: int, i: int, df: DataFrame) -> Iterator[pa.Table]:
        group = groups_of_map[n // len(queries)].group if groups_of_map else None
        tables = _part_tables(run, spec.task_name, i, df, i in local_parts, group)
        if local is not None and i == CARRIED_PART:
            return all_carried(tables, local)
        if local is not None and i in local_parts:
            return only_computed(tables, local)
        return tables

    def batches(
        frames: list[tuple[int, DataFrame]], last: bool, groups: GroupFingerprints | None = None
    ) -> Iterator[pa.RecordBatch]:
        nonlocal rows
        plain: Iterator[pa.Table] = (
            table for n, (i, df) in enumerate(frames) for table in part_tables(n, i, df)
        )
        if layout is not None:
            plain = _fingerprinted(plain, layout)
        if spec.nest is not None:
            tables = nest_batches((b for t in plain for b in t.to_batches()), spec.nest)
        else:
            tables = plain
        for table in tables:
            if groups is not None:
                groups.add(table)
            rows += table.num_rows
            yield from table.select(schema.names).cast(schema).to_batches()
        if last and rows == 0 and not keep and OUTPUT_CONTRACTS[spec.task_name].non_empty:
            # Raised inside the stream: the Delta write is abandoned, nothing is committed.
            raise EmptyOutputError(
                f"{spec.task_name} is empty, and its contract says it must not be"
            )

    try:
        if local is not None:  # the file-local rows in group files, then the others
            written = lake.write_partition_stream(
                spec.task_name, schema,
                lambda: _pumped(lambda: batches(local_frames, False, groups)),
                repo_id, commit, buckets=local.buckets, keep=keep,
                plain=lambda: _pumped(lambda: batches(frames, True)), counted=counted,
            )  # fmt: skip
        else:
            written = lake.write_partition_stream(
                spec.task_name, schema, lambda: _pumped(lambda: batches(frames, True)),
                repo_id, commit, buckets=layout.writer if layout is not None else None,
                keep=keep, counted=counted,
            )  # fmt: skip
    except StrayBucketError as exc:
        # A part said to be file-local yielded a row of a file this build did not change:
        # nothing was committed, and the caller computes every file's rows instead.
        raise _LinkFailed(f"{spec.task_name}: {exc}") from exc
    except OSError as exc:
        if not keep and not (local is not None and local.carry):
            raise
        # An earlier file went away between its footer and its link (a retention run, a
        # vacuum): nothing was committed, and the caller writes every bucket instead.
        raise _LinkFailed(f"{spec.task_name}: {exc}") from exc
    except Exception as exc:
        if local is None or all(path.exists() for path in local.carry):
            raise
        # Likewise a file whose rows were being carried over (DataFusion's error is no
        # OSError).
        raise _LinkFailed(f"{spec.task_name}: an earlier file went away: {exc}") from exc
    if layout is not None and run is not None:
        run.collector.record(
            "bucket_layout",
            output=spec.task_name,
            linked=len(layout.keep),
            rewritten=len(layout.rewrite) if layout.rewrite is not None else None,
            scan_s=round(layout.scan_s, 3),
            files_scanned=layout.scanned,
            files_read=len(layout.read) if layout.read is not None else None,
            base_commit=layout.base,
        )
    if local is not None and run is not None:
        allowed = local.buckets.allowed
        run.collector.record(
            "bucket_layout",
            output=spec.task_name,
            linked=len(local.keep),
            rewritten=len(allowed) if allowed is not None else None,
            files_computed=len(local.paths) if local.paths is not None else None,
            codes_computed=len(local.computed) if local.computed is not None else None,
            files_carried=len(local.carry),
            few_files=local.few,
            base_commit=local.base,
        )
    return written


def _group_context(
    ctx: SessionContext, nest: NestSpec, group: SourceGroup, pool: Pool, repartition: bool
) -> SessionContext:
    """A session whose map source is one group's rows (``bucket_layout.source_groups``),
    with the session's pool whole: a sixteenth of a map sorts in memory in it, where the
    small pool of a sort made it spill (the stdlib's edges by source: 2.9-3.1 s against
    4.1-5.7 s at 256-512 MiB)."""
    assert nest.buckets is not None
    like = ctx.table(nest.buckets.table).schema()
    group_ctx = session_context(
        bounded=pool != "unbounded", sort_only=True, repartition=repartition,
        whole_pool=True,
    )  # fmt: skip
    register_group(group_ctx, nest, like, group)
    return group_ctx


def _part_tables(
    run: RunContext | None,
    output: str,
    index: int,
    df: DataFrame,
    file_local: bool,
    group: str | None = None,
) -> Iterator[pa.Table]:
    """The batches of one part of an output's query (the whole query: part 0), as tables of
    plain strings; at its end a ``view_part`` event. Its seconds include the waits on the
    writer, which pulls the parts in turn; its ``peak_rss_mb`` is the process's peak so far,
    so the part where it rises is where a build's peak was reached (the first place to look
    when it nears its limit: a join's hash table, a sort). A map sorted group by group has
    one per group, which the event names."""
    start, rows = time.perf_counter(), 0
    for batch in df.execute_stream():
        table = plain_strings(pa.Table.from_batches([batch.to_pyarrow()]))
        rows += table.num_rows
        yield table
    if run is not None:
        run.collector.record(
            "view_part",
            task_name=output,
            part=index,
            file_local=file_local,
            **({"carried": True} if index == CARRIED_PART else {}),
            rows=rows,
            duration_s=round(time.perf_counter() - start, 3),
            peak_rss_mb=round(peak_resident_mb()),
            **({"group": group} if group is not None else {}),
        )


def _fingerprinted(tables: Iterator[pa.Table], layout: BucketLayout) -> Iterator[pa.Table]:
    """``tables``, each added to the layout's fingerprints before it goes on to be nested
    (which drops the identity column)."""
    for table in tables:
        layout.fingerprints.add(table, layout.key, IDENTITY_COLUMN)
        yield table


def execute_view_to_lake(
    spec: TaskExecutionSpec,
    dependencies: Mapping[str, Dependency],
    repo_id: str,
    lake: Lake,
    commit: str,
) -> OutputTable:
    """Stream an output view into its Delta partition; returns the handle dependents read."""
    try:
        written = _bounded_first(
            spec,
            lambda pool, repartition: _stream_to_lake(
                spec, dependencies, repo_id, lake, commit, pool, repartition
            ),
        )
    except _LinkFailed as exc:
        log.warning("%s; writing every bucket instead", exc)
        written = _bounded_first(
            spec,
            lambda pool, repartition: _stream_to_lake(
                spec, dependencies, repo_id, lake, commit, pool, repartition, link=False
            ),
        )
    if spec.local is not None:
        # The reference cycles a flat output's write leaves (pyarrow's footer objects, among
        # others) are freed now, not at the collector's next full pass: on the stdlib, left
        # to it, 0.3-0.4 GB more stayed resident into the next writes in some builds (the
        # build process's peak 1.72-1.89 GB against 1.44-1.52 GB, sampled every 0.2 s, two
        # builds each). A pass takes 2-14 ms in the CLI, about 90 ms in a process that has
        # loaded Dagster: only these three writes pay for one.
        gc.collect()
    if spec.nest is not None:
        release_arrow_pool()  # what its sorts freed, before the next output allocates
    counts = lake.written_value_counts(written, KIND_COLUMNS.get(spec.task_name), repo_id, commit)
    write = OutputWrite(
        spec.task_name, written.table_uri, written.version, written.rows, written.schema, counts
    )
    return OutputTable(write, lake, repo_id, commit)


def _spill_view(
    spec: TaskExecutionSpec,
    dependencies: Mapping[str, Dependency],
    repo_id: str,
    pool: Pool,
    repartition: bool,
) -> SpilledTable:
    df = _context(dependencies, pool=pool, repartition=repartition).sql(_sql(spec, repo_id))
    schema = df.schema()
    # Through a pump, for its stall watch: this stream runs the view's joins.
    return run_scratch().write(
        spec.task_name, schema, _pumped(lambda: (b.to_pyarrow() for b in df.execute_stream()))
    )


def _spill_per_file(
    spec: TaskExecutionSpec,
    dependencies: Mapping[str, Dependency],
    repo_id: str,
    paths: tuple[str, ...] | None,
    pool: Pool,
    repartition: bool,
) -> SpilledTable:
    """A per-file view over the rows of ``paths`` only (None: every file), with the schema
    its cache stores."""
    ctx = _context(dependencies, pool=pool, repartition=repartition)
    if paths is not None:
        restrict_to_files(ctx, dependencies, paths)
    df = ctx.sql(_sql(spec, repo_id))
    return run_scratch().write(
        spec.task_name,
        cache_schema(df.schema()),
        _pumped(lambda: (b.to_pyarrow() for b in df.execute_stream())),
    )


def _per_file(
    spec: TaskExecutionSpec, dependencies: Mapping[str, Dependency], repo_id: str
) -> SpilledTable | None:
    """A per-file view through its cache (``pipeline.view_cache``); None when the build
    caches no views."""
    return per_file_view(
        spec.task_name,
        spec.task_signature,
        lambda: cache_schema(_context(dependencies).sql(_sql(spec, repo_id)).schema()),
        lambda paths: _bounded_first(
            spec,
            lambda pool, repartition: _spill_per_file(
                spec, dependencies, repo_id, paths, pool, repartition
            ),
        ),
    )


def execute_view(
    spec: TaskExecutionSpec, dependencies: Mapping[str, Dependency], repo_id: str
) -> pa.Table | SpilledTable:
    """Run a view task's SQL over its dependencies, for ``repo_id``.

    Inside a build, an intermediate view streams into the run's scratch space and its
    dependents scan it from there (``storage.scratch``); a per-file view takes the rows of
    the files its cache holds from there (``pipeline.view_cache``). Otherwise (an output
    wanted in memory, a call outside a build, a Dask worker) the result is an in-memory table.
    """
    if spec.per_file and current_run() is not None:
        cached = _per_file(spec, dependencies, repo_id)
        if cached is not None:
            return cached
    if not spec.output and spec.nest is None and current_run() is not None:
        return _bounded_first(
            spec,
            lambda pool, repartition: _spill_view(spec, dependencies, repo_id, pool, repartition),
        )
    result = _bounded_first(
        spec,
        lambda pool, repartition: (
            _context(dependencies, pool=pool, repartition=repartition)
            .sql(_sql(spec, repo_id))
            .to_arrow_table()
        ),
    )
    if spec.nest is not None:
        result = nest(result, spec.nest)
    if not spec.output:
        return result
    schema = OUTPUT_CONTRACTS[spec.task_name].schema
    result = plain_strings(result).select(schema.names)
    return result.cast(schema)
