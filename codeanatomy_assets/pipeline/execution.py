"""Build one commit: resolve, plan, execute the plan-scoped Hamilton driver, write, manifest.

Everything that can be checked without work is checked first (mode, outputs, repository,
revision, lake writable, partition values), so a bad request fails in milliseconds with a
message that names the key. Per-file failures are rows in ``extract_errors``, not failures
of the build; a failure of the build itself is recorded in ``run_manifest`` with status
``failed`` before it is raised.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from codeanatomy_assets.extract.runner import Progress
from codeanatomy_assets.obs.diagnostics import DiagnosticsCollector
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.pipeline.manifest import manifest_table
from codeanatomy_assets.pipeline.outputs import write_output
from codeanatomy_assets.pipeline.request import BuildRequest, BuildResult, OutputWrite
from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.storage.lake import Lake, check_partition


def default_repo_id(repo_path: str | os.PathLike[str]) -> str:
    """A path-safe slug of the repository directory's name."""
    name = os.path.basename(os.path.abspath(os.fspath(repo_path))).lower()
    slug = re.sub(r"[^a-z0-9_.-]+", "-", name).strip("-.") or "repo"
    return slug[:64]


def _workers(request: BuildRequest) -> int:
    if request.execution_mode == "serial":
        return 1
    return request.workers or max(os.cpu_count() or 1, 1)


def build_commit(
    request: BuildRequest,
    *,
    factory: DriverFactory | None = None,
    progress: Callable[[int], None] | None = None,
    on_files: Callable[[int], None] | None = None,
) -> BuildResult:
    """Build the requested outputs of one commit into the lake; see module docstring."""
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    request.validate()
    repo = GitRepository(request.repo_path)
    sha = repo.resolve(request.commit)
    repo_id = request.repo_id or default_repo_id(request.repo_path)
    check_partition(repo_id, sha)
    lake = Lake(request.lake_root, dict(request.storage_options))
    lake.ensure_writable()
    factory = factory or DriverFactory()
    plan = factory.plan()
    dr = factory.driver({"execution_mode": request.execution_mode})
    run_id = uuid.uuid4().hex
    diagnostics = DiagnosticsCollector()
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
        "progress": Progress(progress) if progress is not None else None,
        "diagnostics": diagnostics,
    }
    recorded_inputs = {
        "repo_path": str(request.repo_path),
        "revision": request.commit,
        "commit": sha,
        "repo_id": repo_id,
        "outputs": list(selected),
    }
    config = {
        "execution_mode": request.execution_mode,
        "workers": inputs["workers"],
        "max_file_bytes": request.max_file_bytes,
    }
    if on_files is not None:
        on_files(sum(1 for e in repo.python_entries(sha) if e.skipped is None))
    try:
        results = dr.execute(final_vars, inputs=inputs)
    except Exception as exc:
        failed = manifest_table(
            run_id=run_id,
            status="failed",
            started_at=started,
            finished_at=datetime.now(UTC),
            plan_signature=plan.signature,
            execution_mode=request.execution_mode,
            file_count=0,
            error_count=0,
            outputs={},
            timings=diagnostics.node_durations(),
            inputs=recorded_inputs,
            config=config,
            error=f"{type(exc).__name__}: {exc}",
        )
        lake.write_partition("run_manifest", failed, repo_id, sha)
        raise
    outputs: dict[str, OutputWrite] = {
        name: results[f"write_{name}"] for name in selected if name != "run_manifest"
    }
    files: pa.Table = results["files"]
    errors: pa.Table = results["errors"]
    status = "success"
    timings = {"total_s": time.perf_counter() - t0, **diagnostics.node_durations()}
    if "run_manifest" in selected:
        manifest = manifest_table(
            run_id=run_id,
            status=status,
            started_at=started,
            finished_at=datetime.now(UTC),
            plan_signature=plan.signature,
            execution_mode=request.execution_mode,
            file_count=files.num_rows,
            error_count=errors.num_rows,
            outputs=outputs,
            timings=timings,
            inputs=recorded_inputs,
            config=config,
        )
        outputs["run_manifest"] = write_output("run_manifest", manifest, lake, repo_id, sha)
    return BuildResult(
        run_id=run_id,
        repo_id=repo_id,
        commit=sha,
        status=status,
        plan_signature=plan.signature,
        duration_s=time.perf_counter() - t0,
        file_count=files.num_rows,
        error_count=errors.num_rows,
        outputs=outputs,
        timings=timings,
    )
