"""Reuse of a whole partition: a commit whose build inputs equal an earlier commit's.

Why: most commits of a busy repository touch no Python file (docs, CI, data), and their graph
is the earlier one's, row for row. Recomputing it costs a full build (a minute for the
standard library); linking the earlier partition's files costs about a second.

What decides a build's rows, and so goes into the fingerprint: the repository id (ids hash
it), every Python entry of the tree (path, blob, mode, skipped reason), the plan signature
(every view's SQL), the extractor's sources, the installed versions of the packages that
produce rows, and the limits that turn files into error rows (``max_file_bytes``,
``file_timeout_s``). The execution mode and the worker count are left out: the three modes
write identical rows by design. The fingerprint is recorded in each run's manifest
(``inputs_json``), which is where a later build looks for a match.

A match is used only when its manifest says ``success``, it lists every requested output, and
each output's files still hold the rows the manifest counted; otherwise the build runs
normally. Only local lakes link files (``Lake.copy_partition``). Only a commit's first build
links: re-materializing a partition recomputes it, so it stays the way to repair one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datafusion import SessionContext

from codeanatomy_assets.cpg.schemas import KIND_COLUMNS
from codeanatomy_assets.extract.incremental import extractor_version
from codeanatomy_assets.pipeline.manifest import package_versions
from codeanatomy_assets.pipeline.request import OutputWrite
from codeanatomy_assets.repo.git import BlobEntry
from codeanatomy_assets.storage.arrow_types import plain_strings
from codeanatomy_assets.storage.lake import Lake, LakeError

log = logging.getLogger(__name__)

MANIFEST_TABLE = "run_manifest"


def input_fingerprint(
    *,
    repo_id: str,
    entries: Sequence[BlobEntry],
    plan_signature: str,
    max_file_bytes: int,
    file_timeout_s: float | None,
) -> str:
    """Hex digest of everything that decides a build's rows (see the module docstring)."""
    record = {
        "repo_id": repo_id,
        "entries": sorted((e.path, e.blob_id, e.mode, e.skipped) for e in entries),
        "plan_signature": plan_signature,
        "extractor_version": extractor_version(),
        "packages": package_versions(),
        "max_file_bytes": max_file_bytes,
        "file_timeout_s": file_timeout_s,
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ReuseSource:
    """An earlier partition built from the same inputs, as its manifest describes it."""

    commit: str
    run_id: str
    file_count: int
    error_count: int
    rows: Mapping[str, int]


def find_source(
    lake: Lake, repo_id: str, commit: str, fingerprint: str, outputs: Sequence[str]
) -> ReuseSource | None:
    """The newest successful build of another commit of ``repo_id`` with this fingerprint
    that wrote every one of ``outputs``; None when there is none, or when ``commit`` itself
    was built before (a re-materialization recomputes: it is how a partition is repaired)."""
    table = lake.table(MANIFEST_TABLE)
    if table is None:
        return None
    ctx = SessionContext()
    ctx.register_table(MANIFEST_TABLE, table)
    rows = plain_strings(
        ctx.sql(
            f'SELECT "commit", status, run_id, file_count, error_count, outputs_json, '
            f"inputs_json FROM {MANIFEST_TABLE} WHERE repo_id = '{repo_id}' "
            "ORDER BY finished_at DESC"
        ).to_arrow_table()
    ).to_pylist()
    if any(row["commit"] == commit for row in rows):
        return None  # built before: this build is a re-materialization, and recomputes
    for row in rows:
        if row["status"] != "success":
            continue
        inputs: dict[str, Any] = json.loads(row["inputs_json"] or "{}")
        written: dict[str, Any] = json.loads(row["outputs_json"] or "{}")
        if inputs.get("fingerprint") != fingerprint or not set(outputs) <= set(written):
            continue
        return ReuseSource(
            commit=row["commit"],
            run_id=row["run_id"],
            file_count=int(row["file_count"]),
            error_count=int(row["error_count"]),
            rows={name: int(written[name]["rows"]) for name in outputs},
        )
    return None


def copy_outputs(
    lake: Lake, repo_id: str, commit: str, source: ReuseSource, outputs: Sequence[str]
) -> dict[str, OutputWrite] | None:
    """Each of ``outputs`` copied from ``source``'s partition into ``commit``'s; None (and a
    warning) when that cannot be done, and the caller builds instead: a partial copy is then
    replaced output by output, as the build writes them."""
    if not lake.is_local:
        return None
    writes: dict[str, OutputWrite] = {}
    for name in outputs:
        column = KIND_COLUMNS.get(name)
        try:
            written = lake.copy_partition(
                name, repo_id, source.commit, commit, expected_rows=source.rows[name],
                counted=column,
            )  # fmt: skip
        except (LakeError, OSError) as exc:
            log.warning("partition of %s not reused from %s: %s", commit, source.commit, exc)
            return None
        counts = lake.written_value_counts(written, column, repo_id, commit)
        writes[name] = OutputWrite(
            name, written.table_uri, written.version, written.rows, written.schema, counts
        )
    return writes
