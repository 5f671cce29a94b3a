"""Build one commit: resolve, plan, execute the plan-scoped Hamilton driver, write, manifest.

Everything that can be checked without work is checked first (mode, outputs, repository,
revision, lake writable, partition values), so a bad request fails in milliseconds with a
message that names the key. Per-file failures are rows in ``extract_errors``, not failures
of the build; a failure of the build itself is recorded in ``run_manifest`` with status
``failed`` before it is raised.

Before the Hamilton run, a commit whose build inputs equal an earlier commit's (no Python
file changed) links that partition's files instead of building (``pipeline.reuse``). Around the
Hamilton run: a ``codeanatomy.build`` span (node and task spans nest under it), a
Dask backend in remote mode (closed at the end, with the local cluster it may have started),
and after it the cache lineage export and the ``pipeline_events`` table, written with the
manifest (both only when ``run_manifest`` is among the requested outputs, or on failure).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from hamilton import driver
from opentelemetry.trace import Status, StatusCode

from codeanatomy_assets.extract.incremental import evidence_cache_for
from codeanatomy_assets.extract.runner import Progress, start_workers_server
from codeanatomy_assets.obs.diagnostics import DiagnosticsCollector
from codeanatomy_assets.obs.otel import Telemetry
from codeanatomy_assets.pipeline.cache import (
    CacheLineage,
    PlanCacheAdapter,
    cache_dir_for,
    cache_lineage,
)
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.pipeline.events import events_table
from codeanatomy_assets.pipeline.heap import disable_huge_pages
from codeanatomy_assets.pipeline.local_layout import LocalInputs, entry_keys, inputs_signature
from codeanatomy_assets.pipeline.manifest import manifest_table
from codeanatomy_assets.pipeline.outputs import write_output
from codeanatomy_assets.pipeline.remote import RemoteBackend
from codeanatomy_assets.pipeline.request import (
    BuildRequest,
    BuildResult,
    ConfigError,
    OutputCommitted,
    OutputWrite,
)
from codeanatomy_assets.pipeline.reuse import (
    ReuseSource,
    copy_outputs,
    find_source,
    input_fingerprint,
)
from codeanatomy_assets.pipeline.run_context import RunContext
from codeanatomy_assets.pipeline.view_cache import ViewInputs
from codeanatomy_assets.plan.execution_plan import ExecutionPlan
from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.storage.lake import Lake, check_partition, default_repo_id
from codeanatomy_assets.storage.scratch import Scratch

PIPELINE_EVENTS_TABLE = "pipeline_events"
# Ancestors of a commit whose partitions its bucketed outputs may link from.
_BUCKET_BASE_ANCESTORS = 64


def _workers(request: BuildRequest) -> int:
    if request.execution_mode == "serial":
        return 1
    return request.workers or max(os.cpu_count() or 1, 1)


def _plan_record(plan: ExecutionPlan) -> dict[str, Any]:
    return {
        "signature": plan.signature,
        "tasks": {t.name: t.task_signature for t in plan.tasks},
        "critical_path": list(plan.critical_path),
        "critical_path_cost": plan.critical_path_cost,
    }


def _task_timings(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        e["task_name"]: {"seconds": e["duration_s"], "executor": e["executor"]}
        for e in events
        if e["event"] == "task_finish"
    }


def _export_lineage(
    dr: driver.Driver, context: RunContext, cache_dir: Path | None, plan: ExecutionPlan
) -> CacheLineage | None:
    """The run's cache lineage as JSON under ``<cache_dir>/lineage``, also as events."""
    hamilton_run_id = context.attributes.get("hamilton_run_id")
    if cache_dir is None or hamilton_run_id is None:
        return None
    adapter = dr.cache
    if not isinstance(adapter, PlanCacheAdapter):
        return None
    try:
        lineage = cache_lineage(
            adapter,
            hamilton_run_id,
            cache_dir / "lineage" / context.repo_id / context.commit / f"{context.run_id}.json",
            {"run_id": context.run_id, "plan_signature": plan.signature},
        )
    finally:
        adapter.forget(hamilton_run_id)
    for row in lineage.rows:
        context.collector.record(
            "cache",
            node=row["node"],
            status=row["status"],
            code_version=row["code_version"],
            data_version=row["data_version"],
        )
    return lineage


def build_commit(
    request: BuildRequest,
    *,
    factory: DriverFactory | None = None,
    progress: Callable[[int], None] | None = None,
    on_files: Callable[[int], None] | None = None,
    telemetry: Telemetry | None = None,
    on_output: Callable[[OutputCommitted], None] | None = None,
) -> BuildResult:
    """Build the requested outputs of one commit into the lake; see module docstring.

    ``on_output`` is told of each output as soon as its Delta commit is done, on the thread
    that wrote it, while the other outputs are still built: the Dagster asset reports its
    materialization and starts its checks then. It is not told of the manifest (written
    last) nor of a linked partition's outputs (all at once): ``BuildResult.committed``.
    """
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    stages: dict[str, float] = {}
    request.validate()
    repo = GitRepository(request.repo_path)
    sha = repo.resolve(request.commit)
    repo_id = request.repo_id or default_repo_id(request.repo_path)
    check_partition(repo_id, sha)
    lake = Lake(request.lake_root, dict(request.storage_options))
    lake.ensure_writable()
    entries = repo.python_entries(sha)
    stages["resolve_s"] = time.perf_counter() - t0
    # Before extraction's workers start, so that they inherit it (``pipeline.heap``).
    huge_pages_off = disable_huge_pages()
    if request.execution_mode != "remote":
        # When extraction will use worker processes, their server's imports run while the
        # plan is made.
        start_workers_server(len(entries), _workers(request), request.file_timeout_s)
    factory = factory or DriverFactory()
    mark = time.perf_counter()
    plan = factory.plan()
    stages["plan_s"] = time.perf_counter() - mark
    cache_dir = cache_dir_for(request.lake_root, request.cache_dir) if request.use_cache else None
    driver_config: dict[str, Any] = {
        "execution_mode": request.execution_mode,
        "cache_dir": str(cache_dir) if cache_dir is not None else None,
    }
    if request.execution_mode == "remote":
        driver_config["remote_cost_threshold"] = request.remote_cost_threshold
    mark = time.perf_counter()
    dr = factory.driver(driver_config)
    stages["driver_s"] = time.perf_counter() - mark
    run_id = uuid.uuid4().hex
    owned_telemetry = telemetry is None
    try:
        telemetry = telemetry or Telemetry.from_env()
    except ValueError as exc:  # a malformed OTEL_* variable: a configuration error
        raise ConfigError(str(exc)) from exc
    collector = DiagnosticsCollector()
    context = RunContext(run_id, repo_id, sha, request.execution_mode, collector, telemetry)
    # The partitions a bucketed output prefers to link from, nearest ancestor first
    # (``pipeline.bucket_layout``): a backfill that finishes commits out of order still
    # compares each one with its own history, not with whichever commit finished last.
    context.attributes["bucket_bases"] = tuple(repo.first_parents(sha, _BUCKET_BASE_ANCESTORS))
    if on_output is not None:
        told = on_output  # bound here, for the closure's type

        def _tell(write: OutputWrite) -> None:
            told(OutputCommitted(write, run_id, plan.signature, time.perf_counter() - t0))

        context.on_output = _tell
    try:
        context.scratch = Scratch()
    except ValueError as exc:  # CODEANATOMY_SCRATCH_DIR is not a usable directory
        raise ConfigError(str(exc)) from None
    collector.record("huge_pages", disabled=huge_pages_off)
    collector.record(
        "plan",
        plan_signature=plan.signature,
        tasks=len(plan.tasks),
        critical_path=list(plan.critical_path),
        critical_path_cost=plan.critical_path_cost,
    )
    selected = request.selected_outputs
    final_vars = [f"write_{name}" for name in selected if name != "run_manifest"]
    final_vars += ["files", "errors", "commit_entries"]
    inputs: dict[str, Any] = {
        "repo_path": str(request.repo_path),
        "commit_sha": sha,
        "repo_id": repo_id,
        "lake_root": request.lake_root,
        "storage_options": dict(request.storage_options),
        "workers": _workers(request),
        "max_file_bytes": request.max_file_bytes,
        "file_timeout_s": request.file_timeout_s,
        "progress": Progress(progress) if progress is not None else None,
        "run_context": context,
        "use_evidence_cache": request.use_evidence_cache,
    }
    recorded_inputs = {
        "repo_path": str(request.repo_path),
        "revision": request.commit,
        "commit": sha,
        "repo_id": repo_id,
        "outputs": list(selected),
    }
    config: dict[str, Any] = {
        "execution_mode": request.execution_mode,
        "workers": inputs["workers"],
        "max_file_bytes": request.max_file_bytes,
        "file_timeout_s": request.file_timeout_s,
        "use_cache": request.use_cache,
        "cache_dir": driver_config["cache_dir"],
        "plan": _plan_record(plan),
    }
    if on_files is not None:
        on_files(sum(1 for e in entries if e.skipped is None))
    fingerprint = input_fingerprint(
        repo_id=repo_id,
        entries=entries,
        plan_signature=plan.signature,
        max_file_bytes=request.max_file_bytes,
        file_timeout_s=request.file_timeout_s,
    )
    recorded_inputs["fingerprint"] = fingerprint
    # What a flat output's file-local rows depend on (``pipeline.local_layout``): everything
    # the fingerprint holds but the files, and the files one by one.
    context.attributes["local_inputs"] = LocalInputs(
        inputs_signature(
            input_fingerprint(
                repo_id=repo_id,
                entries=(),
                plan_signature=plan.signature,
                max_file_bytes=request.max_file_bytes,
                file_timeout_s=request.file_timeout_s,
            ),
            entries,
        ),
        entry_keys(entries),
        lambda base: entry_keys(repo.python_entries(base)),
    )
    if request.use_evidence_cache and lake.is_local:
        # What the per-file views' cache keys are made of (``pipeline.view_cache``).
        context.attributes["view_inputs"] = ViewInputs(
            lake, repo_id, entries, evidence_cache_for(lake)
        )
    reused: ReuseSource | None = None
    outputs: dict[str, OutputWrite] = {}
    results: dict[str, Any] = {}
    error: Exception | None = None
    span_attributes = {**context.span_attributes(), "codeanatomy.plan_signature": plan.signature}
    with telemetry.tracer.start_as_current_span(
        "codeanatomy.build", attributes=span_attributes, record_exception=False
    ) as run_span:
        context.run_span = run_span
        mark = time.perf_counter()
        try:
            if request.execution_mode == "remote":
                context.remote = RemoteBackend.open(
                    request.dask_address, request.remote_timeout_s, request.workers
                )
                config["remote"] = {
                    "dask_address": context.remote.address,
                    "local_cluster": context.remote.cluster is not None,
                    "cost_threshold": request.remote_cost_threshold,
                    "timeout_s": request.remote_timeout_s,
                }
                collector.record("remote_backend", **config["remote"])
                stages["remote_connect_s"] = time.perf_counter() - mark
            linked = None
            if request.reuse_partitions:
                linked = _reuse(lake, repo_id, sha, fingerprint, selected, collector)
            if linked is not None:
                reused, outputs = linked
                recorded_inputs["reused_from"] = reused.commit
            else:
                results = dr.execute(final_vars, inputs=inputs)
                outputs = {
                    name: results[f"write_{name}"] for name in selected if name != "run_manifest"
                }
        except Exception as exc:
            error = exc
            run_span.record_exception(exc)
            run_span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            stages["execute_s"] = time.perf_counter() - mark - stages.get("remote_connect_s", 0.0)
            if context.remote is not None:
                context.remote.close()
            context.scratch.cleanup()  # what is left of the run is in the lake
        lineage = _export_lineage(dr, context, cache_dir, plan)
        if lineage is not None:
            config["cache"] = lineage.summary()
        status = "failed" if error is not None else "success"
        run_span.set_attribute("codeanatomy.status", status)
        files: pa.Table | None = results.get("files")
        errors: pa.Table | None = results.get("errors")
        file_count = files.num_rows if files is not None else 0
        error_count = errors.num_rows if errors is not None else 0
        if reused is not None and error is None:
            file_count, error_count = reused.file_count, reused.error_count
        for name, write in outputs.items():
            telemetry.output_rows.record(write.rows, {"output": name})
        if error is not None or "run_manifest" in selected:
            mark = time.perf_counter()
            events = collector.snapshot()
            written = lake.write_partition(
                PIPELINE_EVENTS_TABLE, events_table(run_id, events), repo_id, sha
            )
            events_write = OutputWrite(
                name=PIPELINE_EVENTS_TABLE,
                table_uri=written.table_uri,
                version=written.version,
                rows=written.rows,
                schema=written.schema,
            )
            stages["write_events_s"] = time.perf_counter() - mark
            timings: dict[str, Any] = {
                "total_s": time.perf_counter() - t0,
                "stages": stages,
                "nodes": collector.node_durations(),
                "tasks": _task_timings(events),
            }
            manifest = manifest_table(
                run_id=run_id,
                status=status,
                started_at=started,
                finished_at=datetime.now(UTC),
                plan_signature=plan.signature,
                execution_mode=request.execution_mode,
                file_count=file_count,
                error_count=error_count,
                outputs={**outputs, PIPELINE_EVENTS_TABLE: events_write},
                timings=timings,
                inputs=recorded_inputs,
                config=config,
                error=f"{type(error).__name__}: {error}" if error is not None else None,
            )
            write = write_output("run_manifest", manifest, lake, repo_id, sha)
            if "run_manifest" in selected:
                outputs["run_manifest"] = write
    duration = time.perf_counter() - t0
    telemetry.run_duration.record(duration, {"status": status, "mode": request.execution_mode})
    if owned_telemetry:
        telemetry.shutdown()
    if error is not None:
        raise error
    return BuildResult(
        run_id=run_id,
        repo_id=repo_id,
        commit=sha,
        status=status,
        plan_signature=plan.signature,
        duration_s=duration,
        file_count=file_count,
        error_count=error_count,
        outputs=outputs,
        timings=_flat_timings(duration, stages, collector.node_durations()),
        reused_from=reused.commit if reused is not None else None,
    )


def _reuse(
    lake: Lake,
    repo_id: str,
    commit: str,
    fingerprint: str,
    selected: tuple[str, ...],
    collector: DiagnosticsCollector,
) -> tuple[ReuseSource, dict[str, OutputWrite]] | None:
    """The outputs linked from an earlier partition with the same inputs, and that source;
    None when there is none that can be linked, and the build runs (``pipeline.reuse``)."""
    wanted = [name for name in selected if name != "run_manifest"]
    source = find_source(lake, repo_id, commit, fingerprint, wanted)
    if source is None:
        return None
    mark = time.perf_counter()
    copied = copy_outputs(lake, repo_id, commit, source, wanted)
    collector.record(
        "partition_reuse",
        source_commit=source.commit,
        source_run_id=source.run_id,
        reused=copied is not None,
        duration_s=time.perf_counter() - mark,
    )
    return (source, copied) if copied is not None else None


def _flat_timings(
    total: float, stages: Mapping[str, float], nodes: Mapping[str, float]
) -> dict[str, float]:
    """``BuildResult.timings``: total, ``stage.<name>`` and seconds per node."""
    return {"total_s": total, **{f"stage.{k}": v for k, v in stages.items()}, **nodes}
