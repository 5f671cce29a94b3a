"""The CPG assets: every output of a commit's Code Property Graph is one Delta-table asset.

One subsettable multi-asset computes them, because they come out of one Hamilton plan: the
plan is scoped to the selected outputs, so materializing ``cpg_nodes`` alone builds only what
nodes need, and materializing everything builds the shared evidence once. Each asset key is
the bare output name, which is also its Delta table's name.
"""

# No `from __future__ import annotations`: Dagster reads the context and resource
# annotations of decorated functions at definition time and needs real types.

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa

from codeanatomy_assets.checks import CPG_CHECK_SPECS, CpgChecks
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS, OUTPUT_CONTRACTS
from codeanatomy_assets.partitions import COMMITS_PARTITIONS, decode_partition_key
from codeanatomy_assets.pipeline.request import BuildRequest, BuildResult, OutputCommitted
from codeanatomy_assets.resources import ExecutionResource, LakeResource, WatchedReposResource

__all__ = ["CPG_ASSET_KEYS", "CPG_GROUP", "InDependencyOrder", "cpg_assets", "output_metadata"]

CPG_GROUP = "cpg"
_GRAPH_CORE = ("cpg_nodes", "cpg_edges", "cpg_props")
# Lineage between outputs: derived tables depend on the core graph tables they are views of;
# the manifest records every other output's Delta version, so it depends on all of them.
_UPSTREAM: Mapping[str, tuple[str, ...]] = {
    "cpg_props_map": ("cpg_props",),
    "cpg_edges_by_src": ("cpg_nodes", "cpg_edges"),
    "cpg_edges_by_dst": ("cpg_nodes", "cpg_edges"),
    "cpg_nodes_quality": ("cpg_nodes", "cpg_props"),
    "cpg_props_quality": ("cpg_props",),
    "run_manifest": tuple(name for name in CPG_OUTPUTS if name != "run_manifest"),
}
CPG_ASSET_KEYS: tuple[dg.AssetKey, ...] = tuple(dg.AssetKey(name) for name in CPG_OUTPUTS)


def _spec(name: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=name,
        description=OUTPUT_CONTRACTS[name].description,
        deps=list(_UPSTREAM.get(name, ())),
        group_name=CPG_GROUP,
        kinds={"delta", "hamilton"},
        metadata={"non_empty": OUTPUT_CONTRACTS[name].non_empty, "core": name in _GRAPH_CORE},
    )


def _column_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def output_metadata(committed: OutputCommitted, partition_key: str) -> dict[str, Any]:
    """What the UI shows for one output of one partition: rows, where, which version, schema,
    and the build that wrote it."""
    write = committed.write
    metadata: dict[str, Any] = {
        "dagster/row_count": dg.MetadataValue.int(write.rows),
        "dagster/column_schema": _column_schema(write.schema),
        "dagster/table_name": write.name,
        "table_uri": (
            dg.MetadataValue.url(write.table_uri)
            if "://" in write.table_uri
            else dg.MetadataValue.path(write.table_uri)
        ),
        "delta_version": dg.MetadataValue.int(write.version),
        "partition_key": partition_key,
        "plan_signature": committed.plan_signature,
        # When in the build the table was committed (the build's end for the manifest).
        "committed_after_s": dg.MetadataValue.float(round(committed.elapsed_s, 3)),
        "build_run_id": committed.run_id,
    }
    if write.counts_by_kind is not None:
        metadata["counts_by_kind"] = dg.MetadataValue.json(dict(write.counts_by_kind))
    if committed.reused_from is not None:
        # No Python file changed since this commit: its partition was linked, not rebuilt.
        metadata["reused_from_commit"] = committed.reused_from
    return metadata


class _BuildThread:
    """``build_commit`` on a thread of its own, each output handed over as it is committed.

    Why: the asset's step reports a materialization (and runs its checks) while the other
    outputs are still built. In the UI a table appears when it lands, not when the whole
    build ends, and the events Dagster writes for it (about 10 ms each on SQLite, some 70 for
    a full partition) overlap the build instead of following it. The thread runs in a copy
    of the step's context variables (tracing context among them). It is a daemon: a
    terminated run's process does not wait for it (each Delta commit is atomic, so a table
    holds its previous version or the new one).
    """

    def __init__(self, request: BuildRequest, on_output: Callable[[OutputCommitted], None]):
        self._committed: queue.SimpleQueue[OutputCommitted | None] = queue.SimpleQueue()
        self._result: BuildResult | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=contextvars.copy_context().run,
            args=(self._build, request, on_output),
            name="cpg-build",
            daemon=True,
        )
        self._thread.start()

    def _build(self, request: BuildRequest, on_output: Callable[[OutputCommitted], None]) -> None:
        # Imported here: Hamilton costs ~1 s to import and the code location must load fast.
        from codeanatomy_assets.pipeline.execution import build_commit

        def told(committed: OutputCommitted) -> None:
            on_output(committed)
            self._committed.put(committed)

        try:
            self._result = build_commit(request, on_output=told)
        except BaseException as exc:  # raised again by ``result``, in the asset's step
            self._error = exc
        finally:
            self._committed.put(None)

    def committed(self) -> Iterator[OutputCommitted]:
        """Each output as its Delta commit is done, until the build ends."""
        while (item := self._committed.get()) is not None:
            yield item

    def wait(self) -> None:
        """Until the build has ended, whatever its outcome."""
        self._thread.join()

    def result(self) -> BuildResult:
        """The build's result once it has ended; raises what the build raised."""
        self.wait()
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


class InDependencyOrder:
    """Committed outputs handed out in an order Dagster accepts: each after the selected
    outputs it depends on (``_UPSTREAM``), since a multi-asset must yield its assets in
    topological order, and each as soon as that allows. Outputs commit in whatever order the
    build finishes them: in the remote mode ``cpg_nodes_quality`` can land before
    ``cpg_props``."""

    def __init__(self, selected: Sequence[str]) -> None:
        self.selected = tuple(selected)
        self._released: set[str] = set()
        self._held: dict[str, OutputCommitted] = {}

    @property
    def seen(self) -> set[str]:
        """The outputs added so far, released or held."""
        return self._released | self._held.keys()

    def _ready(self, name: str) -> bool:
        return all(
            up in self._released or up not in self.selected for up in _UPSTREAM.get(name, ())
        )

    def add(self, committed: OutputCommitted) -> list[OutputCommitted]:
        """``committed`` and every held output it unblocks, in an order to yield them."""
        self._held[committed.write.name] = committed
        out: list[OutputCommitted] = []
        while ready := [n for n in self.selected if n in self._held and self._ready(n)]:
            for name in ready:
                out.append(self._held.pop(name))
                self._released.add(name)
        return out


@dg.multi_asset(
    name="cpg",
    specs=[_spec(name) for name in CPG_OUTPUTS],
    check_specs=CPG_CHECK_SPECS,
    partitions_def=COMMITS_PARTITIONS,
    can_subset=True,
)
def cpg_assets(
    context: dg.AssetExecutionContext,
    lake: LakeResource,
    execution: ExecutionResource,
    watched_repos: WatchedReposResource,
) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
    """Build the selected CPG outputs of one commit into their Delta tables, reporting each
    as it is committed, with its checks (``checks.CpgChecks``)."""
    partition = decode_partition_key(context.partition_key)
    selected = tuple(n for n in CPG_OUTPUTS if dg.AssetKey(n) in context.selected_asset_keys)
    checks = CpgChecks(lake.lake(), partition, context.selected_asset_check_keys)
    if not selected:  # only checks were selected: check the partition as the lake holds it
        yield from checks.results()
        return
    request = BuildRequest(
        repo_path=Path(watched_repos.repo(partition.repo_id).path),
        lake_root=lake.resolved_root(),
        commit=partition.sha,
        repo_id=partition.repo_id,
        outputs=selected,
        workers=execution.workers,
        execution_mode=execution.execution_mode,
        storage_options=lake.storage_options(),
        dask_address=execution.dask_address,
    )
    build = _BuildThread(request, on_output=lambda c: checks.output_written(c.write))
    order = InDependencyOrder(selected)

    def report(committed: OutputCommitted) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:
        for ready in order.add(committed):
            name = ready.write.name
            yield dg.MaterializeResult(
                asset_key=name, metadata=output_metadata(ready, context.partition_key)
            )
            yield from checks.output_results(name)

    try:
        for committed in build.committed():
            if committed.write.name in selected:  # not an output written for another to read
                yield from report(committed)
    except (Exception, GeneratorExit):
        # The step fails (a check could not read, an event could not be stored): its build
        # ends with it rather than writing on behind a failed run. An interruption (a
        # terminated run) does not wait.
        build.wait()
        raise
    result = build.result()
    context.log.info(
        "partition=%s status=%s outputs=%d files=%d errors=%d duration_s=%.2f plan=%s",
        context.partition_key, result.status, len(selected), result.file_count,
        result.error_count, result.duration_s, result.plan_signature,
    )  # fmt: skip
    missing = [name for name in selected if name not in result.outputs]
    if result.status != "success" or missing:
        raise dg.Failure(
            description=f"build of {context.partition_key} ended {result.status!r}; "
            f"outputs not written: {missing or 'none'}",
            metadata={"build_run_id": result.run_id},
        )
    # The manifest, written last, and a linked partition's outputs, linked all at once.
    for name in selected:
        if name not in order.seen:
            if result.reused_from is not None:
                checks.output_written(result.outputs[name])
            yield from report(result.committed(name))
    yield from checks.results()
