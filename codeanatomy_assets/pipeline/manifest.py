"""The run manifest: one row that says what a build read, did and wrote.

Pure function of what the run observed; ``execution`` writes it as the ``run_manifest``
output. JSON columns hold the nested parts, so the schema stays the contract's:

- ``outputs_json``: per output, table URI, Delta version, rows (``pipeline_events`` included).
- ``timings_json``: ``total_s``, ``stages`` (resolve, plan, driver, execute, write...),
  ``nodes`` (seconds per Hamilton node) and ``tasks`` (seconds and placement per plan task).
- ``inputs_json``: repository, revision, resolved commit, repo id, outputs asked for.
- ``config_json``: execution mode and its settings, ``plan`` (signature and per-task
  fingerprints), ``cache`` (hits, misses, lineage file), ``error`` when the run failed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from importlib import metadata
from typing import Any

import pyarrow as pa

from codeanatomy_assets import __version__
from codeanatomy_assets.cpg.schemas import RUN_MANIFEST
from codeanatomy_assets.pipeline.request import OutputWrite

_PACKAGES = (
    "dagster",
    "apache-hamilton",
    "datafusion",
    "deltalake",
    "pyarrow",
    "pygit2",
    "rustworkx",
    "opentelemetry-sdk",
    "distributed",
)


def package_versions() -> dict[str, str]:
    """Installed versions of the packages that decide what a build produces."""
    out = {"codeanatomy-assets": __version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def manifest_table(
    *,
    run_id: str,
    status: str,
    started_at: datetime,
    finished_at: datetime,
    plan_signature: str,
    execution_mode: str,
    file_count: int,
    error_count: int,
    outputs: Mapping[str, OutputWrite],
    timings: Mapping[str, Any],
    inputs: Mapping[str, Any],
    config: Mapping[str, Any],
    error: str | None = None,
) -> pa.Table:
    """The one-row manifest table (schema ``cpg.schemas.RUN_MANIFEST``)."""
    written = {
        name: {"table_uri": w.table_uri, "version": w.version, "rows": w.rows}
        for name, w in sorted(outputs.items())
    }
    row = {
        "run_id": run_id,
        "status": status,
        "started_at": started_at,
        "finished_at": finished_at,
        "duration_s": (finished_at - started_at).total_seconds(),
        "plan_signature": plan_signature,
        "code_version": __version__,
        "execution_mode": execution_mode,
        "file_count": file_count,
        "error_count": error_count,
        "outputs_json": json.dumps(written, sort_keys=True),
        "timings_json": json.dumps(dict(timings), sort_keys=True, default=str),
        "inputs_json": json.dumps(dict(inputs), sort_keys=True, default=str),
        "config_json": json.dumps({**dict(config), "error": error}, sort_keys=True, default=str),
        "package_versions_json": json.dumps(package_versions(), sort_keys=True),
    }
    return pa.Table.from_pylist([row], schema=RUN_MANIFEST)
