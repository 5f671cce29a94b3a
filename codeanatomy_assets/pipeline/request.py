"""What a caller asks of one build, and what it gets back.

A build is one commit of one repository turned into the CPG outputs it names. The CLI builds
one from flags; a Dagster asset builds one per partition. Both get a ``BuildResult`` with
enough to report: every output's Delta URI, version, rows and schema, the plan signature and
timings.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from codeanatomy_assets.cpg.functions import memory_pool_bytes
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS
from codeanatomy_assets.extract.runner import DEFAULT_FILE_TIMEOUT_S

EXECUTION_MODES: tuple[str, ...] = ("serial", "parallel", "remote")
# Plan tasks whose cost tag is at least this run on the Dask cluster in remote mode (the
# whole-program joins: cpg_edges, cpg_props, normalize_outputs, import_targets by default).
DEFAULT_REMOTE_COST_THRESHOLD = 10.0
DEFAULT_REMOTE_TIMEOUT_S = 900.0


class ConfigError(ValueError):
    """A configuration value is not allowed; the message names the key and what is allowed."""


@dataclass(frozen=True)
class BuildRequest:
    """One commit to build.

    ``commit`` may be any revision (``HEAD``, a branch, a short sha); it is resolved to the
    full sha before anything runs. ``outputs`` None means every CPG output.
    ``execution_mode`` ``remote`` runs extraction and plan tasks whose cost is at least
    ``remote_cost_threshold`` on the Dask scheduler at ``dask_address`` (a local cluster is
    started for the build when it is None); each remote call waits at most
    ``remote_timeout_s``. ``use_evidence_cache`` (on by default) reuses the evidence of every
    blob already extracted, kept once per content in the lake (``extract.incremental``).
    ``reuse_partitions`` (on by default) links the outputs of an earlier commit of the same
    repository built from identical inputs (no Python file changed) instead of building
    (``pipeline.reuse``). ``use_cache`` turns Hamilton's result cache on (``cache_dir``,
    default next to a local lake: see ``pipeline.cache.cache_dir_for``). It is opt-in: it
    stores each cached node's result per distinct input, gigabytes per commit for a
    repository the size of the standard library, and nothing evicts it yet.
    """

    repo_path: Path
    lake_root: str
    commit: str = "HEAD"
    repo_id: str | None = None
    outputs: tuple[str, ...] | None = None
    workers: int | None = None
    execution_mode: str = "serial"
    storage_options: Mapping[str, str] = field(default_factory=dict)
    dask_address: str | None = None
    max_file_bytes: int = 8 * 1024 * 1024
    # Wall-clock seconds one file may take to extract (None: no limit); a file over it is a
    # `timeout` row in extract_errors. Enforced as ``extract.runner`` explains.
    file_timeout_s: float | None = DEFAULT_FILE_TIMEOUT_S
    use_cache: bool = False
    use_evidence_cache: bool = True
    reuse_partitions: bool = True
    cache_dir: str | None = None
    remote_cost_threshold: float = DEFAULT_REMOTE_COST_THRESHOLD
    remote_timeout_s: float = DEFAULT_REMOTE_TIMEOUT_S

    def validate(self) -> None:
        """Fail before any work, naming the key and the allowed values."""
        if self.execution_mode not in EXECUTION_MODES:
            raise ConfigError(
                f"execution_mode {self.execution_mode!r} is not allowed: use one of "
                f"{', '.join(EXECUTION_MODES)}"
            )
        if self.outputs is not None:
            unknown = sorted(set(self.outputs) - set(CPG_OUTPUTS))
            if unknown:
                raise ConfigError(
                    f"outputs {unknown} are unknown: allowed are {', '.join(CPG_OUTPUTS)}"
                )
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"workers {self.workers} is not allowed: use an integer >= 1")
        if self.max_file_bytes < 1:
            raise ConfigError("max_file_bytes must be a positive number of bytes")
        if self.file_timeout_s is not None and not self.file_timeout_s > 0:
            raise ConfigError(
                f"file_timeout_s {self.file_timeout_s} is not allowed: use seconds > 0, "
                "or None for no limit"
            )
        if self.execution_mode == "remote" and importlib.util.find_spec("distributed") is None:
            raise ConfigError(
                "execution_mode 'remote' needs dask.distributed, which is not installed: "
                "pip install 'codeanatomy-assets[remote]'"
            )
        if self.remote_timeout_s <= 0:
            raise ConfigError(f"remote_timeout_s {self.remote_timeout_s} must be > 0 seconds")
        try:
            memory_pool_bytes()
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    @property
    def selected_outputs(self) -> tuple[str, ...]:
        return tuple(self.outputs) if self.outputs is not None else CPG_OUTPUTS


@dataclass(frozen=True)
class OutputWrite:
    """One output written for the partition: Delta table URI and version, rows, schema."""

    name: str
    table_uri: str
    version: int
    rows: int
    schema: pa.Schema
    counts_by_kind: Mapping[str, int] | None = None


@dataclass(frozen=True)
class OutputCommitted:
    """An output whose Delta commit is done, and the build it belongs to: what
    ``build_commit(on_output=...)`` is told while the rest is still built, so that a caller
    (the Dagster asset) can report the table before the build ends."""

    write: OutputWrite
    run_id: str
    plan_signature: str
    # Seconds from the build's start to this output's commit.
    elapsed_s: float
    # The commit whose partition was linked instead of building (``pipeline.reuse``).
    reused_from: str | None = None


@dataclass(frozen=True)
class BuildResult:
    """What a build did. ``status`` is ``success`` also when some files failed to extract."""

    run_id: str
    repo_id: str
    commit: str
    status: str
    plan_signature: str
    duration_s: float
    file_count: int
    error_count: int
    outputs: Mapping[str, OutputWrite]
    timings: Mapping[str, float]
    # The commit whose partition was linked instead of building (``pipeline.reuse``).
    reused_from: str | None = None

    def committed(self, name: str) -> OutputCommitted:
        """Output ``name`` as ``on_output`` tells of one, for outputs it was not told of (the
        manifest, written last; a linked partition's outputs, all at once)."""
        return OutputCommitted(
            self.outputs[name], self.run_id, self.plan_signature, self.duration_s, self.reused_from
        )
