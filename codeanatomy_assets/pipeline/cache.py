"""Hamilton's cache for a build: which nodes are cached, their code versions, lineage export.

Policy (why per node):
- ``evidence`` (extraction, the expensive node) and the view tasks are cached: they are pure
  functions of their inputs. (Below this node, the lake's content-keyed evidence cache makes
  a changed commit parse only its changed files: see ``modules.dataloaders``.) Their cache
  key is Hamilton's: code version + the data versions of their dependencies, so a view
  whose inputs did not change is a hit even when the commit changed (a file edit leaves
  ``packages`` as it was, and ``package_ids`` is reused).
- scan tasks are recomputed (a dictionary lookup) but versioned, so views downstream get exact
  data versions of each evidence table.
- writes, the manifest inputs and run handles are never cached: they are effects or run-scoped.

Code versions: Hamilton versions a node by the source of its function; our task nodes are
closures that share one source, so that would let a changed SQL hit the cache (DESIGN
pitfall). ``PlanCacheAdapter`` uses the ``codeanatomy.code_version`` tag instead: the plan task
signature (SQL, nesting, dependencies' signatures) plus a digest of the execution code. The
extraction node's version is the digest of the extractor packages' sources.

Data versions of Arrow tables: Hamilton has no fingerprint for ``pyarrow.Table`` (it would be
"unhashable" and every dependent node a miss), so one is registered here: a digest of the
IPC stream; a table spilled to the run's scratch space is versioned by the table it holds,
and pickles as that table (its files go with the run). Results are pickles (Hamilton's
default format) written atomically.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import pkgutil
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
from hamilton.caching import fingerprinting
from hamilton.caching.adapter import CachingBehavior, CachingEventType, HamiltonCacheAdapter
from hamilton.caching.cache_key import decode_key
from hamilton.caching.stores.base import StoredResult
from hamilton.caching.stores.file import FileResultStore
from hamilton.caching.stores.sqlite import SQLiteMetadataStore

from codeanatomy_assets.extract.runner import ExtractOptions, Progress
from codeanatomy_assets.obs.diagnostics import DiagnosticsCollector
from codeanatomy_assets.pipeline.run_context import RunContext
from codeanatomy_assets.repo.git import BlobEntry
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import SpilledTable

CODE_VERSION_TAG = "codeanatomy.code_version"
CODE_PACKAGES_TAG = "codeanatomy.code_packages"
CACHE_VERSION = 1
# Modules whose code decides what a view task returns (besides its SQL, in the task signature).
_EXECUTION_MODULES = (
    "codeanatomy_assets.pipeline.task_execution",
    "codeanatomy_assets.cpg.nesting",
    "codeanatomy_assets.cpg.schemas",
    "codeanatomy_assets.storage.arrow_types",
    "codeanatomy_assets.normalize.ids",
)
# Inputs that are handles, not data: constant for the cache key.
IGNORED_INPUTS = frozenset({"progress", "run_context", "lake_root", "storage_options", "workers"})
# Computed handles (where to write, not what): constant for the cache key.
_HANDLE_NODES = frozenset({"lake"})
# Cheap nodes whose values feed cached nodes: run every time, versioned by content.
_VERSIONED_NODES = frozenset({"commit_entries", "extract_options"})
_DQ_TAG = "hamilton.data_quality.contains_dq_results"


def is_work_node(name: str, tags: Mapping[str, Any]) -> bool:
    """Whether node ``name`` runs its plan task (rather than validating or passing it on).

    An output view is three nodes with the same tags: ``<task>_raw`` runs the SQL,
    ``<task>_contract`` validates it, ``<task>`` passes the table on; a ``write_<task>`` node
    carrying the task's tags runs the task itself, straight into its Delta partition.
    """
    task = tags.get("task_name")
    if task is None or tags.get(_DQ_TAG):
        return False
    if name in (f"{task}_raw", f"write_{task}"):
        return True
    return name == task and tags.get("output") != "True"


def cache_behavior(name: str, tags: Mapping[str, Any], is_input: bool) -> CachingBehavior:
    """The cache policy of one node (see module docstring)."""
    if is_input:
        return CachingBehavior.IGNORE if name in IGNORED_INPUTS else CachingBehavior.DEFAULT
    if name in _HANDLE_NODES:
        return CachingBehavior.IGNORE
    if tags.get("kind") == "write":  # an effect: never skipped, never stored
        return CachingBehavior.DISABLE
    if name in _VERSIONED_NODES:
        return CachingBehavior.RECOMPUTE
    kind = tags.get("task_kind")
    if kind == "extract" or (kind == "view" and is_work_node(name, tags)):
        return CachingBehavior.DEFAULT
    if kind in ("view", "scan"):
        return CachingBehavior.RECOMPUTE
    return CachingBehavior.DISABLE


def _module_digest(name: str) -> str:
    """Digest of a module's source file, or of every module of a package (sorted by name).

    Read on every call (a few files, milliseconds per driver build): no module-level memo.
    """
    module = importlib.import_module(name)
    digest = hashlib.sha256()
    paths = [Path(module.__file__ or "")]
    if hasattr(module, "__path__"):
        for info in sorted(
            pkgutil.walk_packages(module.__path__, f"{name}."), key=lambda i: i.name
        ):
            spec = importlib.util.find_spec(info.name)
            if spec is not None and spec.origin:
                paths.append(Path(spec.origin))
    for path in paths:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:32]


def execution_code_digest() -> str:
    """Digest of the code every view task runs (task execution, nesting, contracts)."""
    return hashlib.sha256(
        "".join(_module_digest(m) for m in _EXECUTION_MODULES).encode()
    ).hexdigest()[:32]


def task_code_version(task_signature: str) -> str:
    """Code version of a plan task node: its signature and the execution code's digest."""
    blob = f"{CACHE_VERSION}:{task_signature}:{execution_code_digest()}".encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def packages_code_version(packages: str) -> str:
    """Code version from the sources of comma-separated packages (e.g. the extractors)."""
    parts = [_module_digest(p.strip()) for p in packages.split(",") if p.strip()]
    return hashlib.sha256(f"{CACHE_VERSION}:{':'.join(parts)}".encode()).hexdigest()[:32]


def _hash_table(obj: pa.Table, *args: Any, **kwargs: Any) -> str:
    """Digest of the table's Arrow IPC stream after combining chunks: equal content, equal
    version, whatever the chunking or buffer capacities (a table read back from the result
    store has other buffers than the one computed, but the same IPC bytes)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, obj.schema) as writer:
        writer.write_table(obj.combine_chunks())
    digest = hashlib.blake2b(memoryview(sink.getvalue()), digest_size=24)
    return fingerprinting._compact_hash(digest.digest())


def _hash_spilled(obj: SpilledTable, *args: Any, **kwargs: Any) -> str:
    """A spilled table is versioned by its content, like the in-memory table it pickles to."""
    return _hash_table(obj.read())


def _hash_blob_entry(obj: BlobEntry, *args: Any, **kwargs: Any) -> str:
    return fingerprinting.hash_primitive(repr(obj))


def _hash_extract_options(obj: ExtractOptions, *args: Any, **kwargs: Any) -> str:
    """Limits decide the evidence, worker counts do not: every mode shares one entry."""
    fields = {k: v for k, v in vars(obj).items() if k != "workers"}
    return fingerprinting.hash_primitive(repr(sorted(fields.items())))


def _hash_handle(obj: object, *args: Any, **kwargs: Any) -> str:
    return fingerprinting.hash_primitive(type(obj).__name__)


def register_fingerprints() -> None:
    """Teach Hamilton's fingerprinting our value types (idempotent; called per cached driver)."""
    fingerprinting.hash_value.register(pa.Table)(_hash_table)
    fingerprinting.hash_value.register(SpilledTable)(_hash_spilled)
    fingerprinting.hash_value.register(BlobEntry)(_hash_blob_entry)
    fingerprinting.hash_value.register(ExtractOptions)(_hash_extract_options)
    for handle in (Progress, DiagnosticsCollector, Lake, RunContext):
        fingerprinting.hash_value.register(handle)(_hash_handle)


class PlanCacheAdapter(HamiltonCacheAdapter):
    """Hamilton's cache adapter with explicit code versions for generated and extractor nodes."""

    def version_code(self, node_name: str, run_id: str | None = None) -> str:
        run_id = self.last_run_id if run_id is None else run_id
        node = self._fn_graphs[run_id].nodes[node_name]
        explicit = node.tags.get(CODE_VERSION_TAG)
        if explicit:
            # No "-" in a code version: it separates the parts of Hamilton's cache key.
            return f"{explicit}dq" if node.tags.get(_DQ_TAG) else str(explicit)
        packages = node.tags.get(CODE_PACKAGES_TAG)
        base = super().version_code(node_name, run_id)
        if packages:
            return hashlib.sha256(
                f"{base}:{packages_code_version(str(packages))}".encode()
            ).hexdigest()[:32]
        return base

    def resolve_behaviors(self, run_id: str) -> dict[str, CachingBehavior]:
        """Behaviors from ``cache_behavior`` (node tags), instead of name lists."""
        graph = self._fn_graphs[run_id]
        self._data_loaders[run_id] = []
        self._data_savers[run_id] = []
        return {n.name: cache_behavior(n.name, n.tags, n.user_defined) for n in graph.get_nodes()}

    def forget(self, run_id: str) -> None:
        """Drop the adapter's in-memory state of a finished run.

        A cached driver serves many builds; Hamilton keeps logs, keys and the graph of every
        run in the adapter, which would grow without bound in a long-lived process.
        """
        for state in (
            self._logs,
            self._fn_graphs,
            self.data_versions,
            self.code_versions,
            self.cache_keys,
            self.behaviors,
            self._data_loaders,
            self._data_savers,
        ):
            state.pop(run_id, None)
        if run_id in self.run_ids:
            self.run_ids.remove(run_id)


def cache_dir_for(lake_root: str, cache_dir: str | None) -> Path | None:
    """Where the cache lives: ``cache_dir``, else beside a local lake, else nowhere.

    Beside the lake means ``<parent>/.codeanatomy/cache`` (``<parent>/cache`` when the lake's
    parent already is a ``.codeanatomy`` directory). An object-store lake has no local parent:
    caching then needs an explicit ``cache_dir``.
    """
    if cache_dir is not None:
        return Path(cache_dir)
    lake = Lake(lake_root)
    if not lake.is_local:
        return None
    parent = Path(lake_root.removeprefix("file://")).absolute().parent
    return parent / "cache" if parent.name == ".codeanatomy" else parent / ".codeanatomy" / "cache"


class AtomicFileResultStore(FileResultStore):
    """Hamilton's file result store, writing each result to a temporary file then renaming.

    The stock store writes in place: a build killed mid-write (or a concurrent reader) leaves
    a truncated pickle that every later build fails to load. A rename is atomic.
    """

    @staticmethod
    def _write_result(file_path: Path, stored_result: StoredResult) -> None:
        partial = file_path.with_name(f".{file_path.name}.{os.getpid()}.{threading.get_ident()}")
        partial.write_bytes(stored_result.save())
        os.replace(partial, file_path)


def cache_adapter(path: Path) -> PlanCacheAdapter:
    """The adapter for a driver, with the policy of ``cache_behavior``.

    Metadata in SQLite (waiting up to a minute for another build's write lock: builds of
    several partitions may share the cache), results as pickles under ``results/``.
    """
    register_fingerprints()
    path.mkdir(parents=True, exist_ok=True)
    return PlanCacheAdapter(
        path=str(path),
        metadata_store=SQLiteMetadataStore(path=str(path), connection_kwargs={"timeout": 60.0}),
        result_store=AtomicFileResultStore(path=str(path / "results")),
    )


@dataclass(frozen=True)
class CacheLineage:
    """Per-node cache outcome of one Hamilton run, and where it was exported."""

    run_id: str
    rows: tuple[dict[str, Any], ...]
    path: Path | None

    def summary(self) -> dict[str, Any]:
        """Counts of hits, misses and recomputes, and the hit/miss names (for the manifest)."""
        by_status: dict[str, list[str]] = {}
        for row in self.rows:
            by_status.setdefault(row["status"], []).append(row["node"])
        return {
            "hamilton_run_id": self.run_id,
            "lineage_path": str(self.path) if self.path else None,
            "counts": {k: len(v) for k, v in sorted(by_status.items())},
            "hits": sorted(by_status.get("hit", [])),
        }


def cache_lineage(
    adapter: HamiltonCacheAdapter, run_id: str, path: Path | None, extra: Mapping[str, Any]
) -> CacheLineage:
    """Per cached node: hit/miss/recompute, code version, data version, dependencies' versions.

    Read from the adapter's logs of the run (what happened) and its in-memory keys (the key
    a node was looked up with encodes its code version and its dependencies' data versions).
    Written as JSON to ``path`` when given.
    """
    logs = adapter.logs(run_id=run_id, level="debug")
    behaviors = adapter.behaviors.get(run_id, {})
    rows: list[dict[str, Any]] = []
    for node_name, events in sorted(logs.items(), key=lambda kv: str(kv[0])):
        name = node_name[0] if isinstance(node_name, tuple) else node_name
        behavior = behaviors.get(name)
        if behavior is None or behavior in (CachingBehavior.DISABLE, CachingBehavior.IGNORE):
            continue
        types = {e.event_type for e in events}
        if CachingEventType.IS_INPUT in types:
            continue
        if CachingEventType.GET_RESULT in types:
            status = "hit"
        elif CachingEventType.EXECUTE_NODE in types:
            status = "recompute" if behavior == CachingBehavior.RECOMPUTE else "miss"
        else:
            continue  # looked up but not executed (the run failed before it)
        key = adapter.cache_keys.get(run_id, {}).get(name)
        decoded = decode_key(key) if isinstance(key, str) else {}
        rows.append(
            {
                "node": name,
                "status": status,
                "behavior": behavior.name.lower(),
                "code_version": decoded.get("code_version"),
                "data_version": adapter.data_versions.get(run_id, {}).get(name),
                "dependencies_data_versions": dict(decoded.get("dependencies_data_versions", {})),
                "cache_key": key,
            }
        )
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = {"hamilton_run_id": run_id, **dict(extra), "nodes": rows}
        path.write_text(json.dumps(payload, indent=1, sort_keys=True, default=str))
    return CacheLineage(run_id, tuple(rows), path)
