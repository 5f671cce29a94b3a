"""Asset checks on every CPG output of a partition.

All are check specs of the ``cpg`` multi-asset and run in its step, each as soon as the
tables it reads are committed (``CpgChecks``). Per output: ``schema_contract`` (column names,
order and types after the ``repo_id``/``commit`` partition columns equal ``OUTPUT_CONTRACTS``)
and, where the contract says so, ``non_empty``. For the graph: ``node_ids_unique`` on
``cpg_nodes``, and ``edge_ids_unique`` and ``edge_endpoints_exist`` (every
``src_node_id``/``dst_node_id`` is a node of the same partition) on ``cpg_edges``. A check
reads the partition as committed, never the rows in flight; selected without their assets,
checks read the partition as the lake holds it. A failure says what is wrong and shows a
few offending ids. The three graph checks are first decided together in one read of the
nodes and the edges (``graph_proof``: 64-bit keys of the ids, a sixteenth of the id space at
a time): what it proves passes without SQL; anything it cannot prove (a repeated key, an id
that is not a stable id, an endpoint not found) asks the exact question in DataFusion SQL
over the partition's files, which counts and names the offending rows, so a check never
loads a table into Python. In a local lake the proofs read the partition's files with
pyarrow, a row group at a time on the checks' own thread, without pre-buffering. On the
stdlib (3.7 M nodes, 9.4 M edges) they hold 230-270 MB at most for 2.5 s of CPU; one index of
every node and the edge ids read apart held 411 MB for 3.4 s, DataFusion scans 1,084 MB
(read-ahead on every core, kept by its allocator), and every check all in SQL took 10.7 s.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
from datafusion import SessionContext

from codeanatomy_assets.cpg.functions import memory_exhausted, session_context
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS, OUTPUT_CONTRACTS
from codeanatomy_assets.graph_proof import GraphProof, IdSource, file_group, prove_graph
from codeanatomy_assets.partitions import COMMITS_PARTITIONS, CommitPartition
from codeanatomy_assets.pipeline.request import OutputWrite
from codeanatomy_assets.storage.arrow_types import normalize_type
from codeanatomy_assets.storage.lake import PARTITION_COLUMNS, Lake, TableWrite
from codeanatomy_assets.storage.scratch import Scratch

__all__ = [
    "CPG_CHECK_SPECS",
    "GRAPH_CHECK_SPECS",
    "OUTPUT_CHECK_SPECS",
    "CpgChecks",
    "normalize_type",
]

_SAMPLE = 5
# Rows per batch when a check streams a column of the partition's files.
_BATCH_ROWS = 65_536


def _check_spec(name: str, asset: str, description: str, **kwargs: Any) -> dg.AssetCheckSpec:
    # Partitioned check specs are a Dagster preview; they are what records a result per commit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return dg.AssetCheckSpec(
            name, asset=asset, description=description, partitions_def=COMMITS_PARTITIONS,
            **kwargs,
        )  # fmt: skip


def _output_specs() -> list[dg.AssetCheckSpec]:
    specs: list[dg.AssetCheckSpec] = []
    for name in CPG_OUTPUTS:
        specs.append(_check_spec("schema_contract", name, "Columns and types match the contract."))
        if OUTPUT_CONTRACTS[name].non_empty:
            specs.append(_check_spec("non_empty", name, "The partition has at least one row."))
    return specs


# Started on a thread of their own once the tables they read are committed (``CpgChecks``).
GRAPH_CHECK_SPECS: tuple[dg.AssetCheckSpec, ...] = (
    _check_spec("node_ids_unique", "cpg_nodes", "No node_id appears twice in a partition."),
    _check_spec("edge_ids_unique", "cpg_edges", "No edge_id appears twice in a partition."),
    _check_spec(
        "edge_endpoints_exist", "cpg_edges",
        "Every edge's src_node_id and dst_node_id is a node of the same partition.",
        additional_deps=["cpg_nodes"],
    ),
)  # fmt: skip
_GRAPH_CHECK_KEYS = frozenset(spec.key for spec in GRAPH_CHECK_SPECS)
# Run right after their output's materialization is reported (``CpgChecks``).
OUTPUT_CHECK_SPECS: tuple[dg.AssetCheckSpec, ...] = tuple(_output_specs())
CPG_CHECK_SPECS: tuple[dg.AssetCheckSpec, ...] = OUTPUT_CHECK_SPECS + GRAPH_CHECK_SPECS


def _file_batches(
    path: Path, metadata: pq.FileMetaData
) -> Callable[[Sequence[str]], Iterator[pa.RecordBatch]]:
    def batches(columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        # Not pre-buffered: reading the stdlib's edge endpoints so left 118 MB in the
        # allocator instead of 66 MB, and took 0.85 s instead of 0.62 s.
        file = pq.ParquetFile(path, metadata=metadata, pre_buffer=False)
        yield from file.iter_batches(_BATCH_ROWS, columns=list(columns), use_threads=False)

    return batches


@dataclass
class _Partition:
    """One partition of the lake: its rows of each Delta table, registered on first use in one
    session (``Lake.register_partition``: the partition's files, not the table filtered). In a
    local lake the files are hard-linked into a directory of a scratch space the partition
    owns and registered as one table: a map's 256 files registered one by one, as a UNION,
    took 0.2-0.3 s to count.

    The session spills past the build's memory pool (``cpg.functions``): in SQL, the
    uniqueness check of the stdlib's 9.4 M edge ids took 1.6 GB unbounded, 1.0 GB bounded. A
    query that still outgrows it runs again in an unbounded session. The bounded session plans
    no repartitioning, which DataFusion 55 can deadlock on when it spills (one core per
    aggregation, which is one more reason to decide the graph checks on integer keys first).
    """

    lake: Lake
    partition: CommitPartition
    # Bounded, so without repartitioning: see ``session_context`` for the deadlock it avoids.
    ctx: SessionContext = field(default_factory=lambda: session_context(repartition=False))
    registered: set[str] = field(default_factory=set)
    # The graph checks of this run, which ``proof`` decides in one read of the tables.
    asked: frozenset[str] = frozenset()
    _proof: GraphProof | None = None
    # Where the partitions' files are linked (local lakes); goes with this object.
    _scratch: Scratch | None = None

    def _register(self, ctx: SessionContext, name: str) -> bool:
        # The partition alone (``Lake.register_partition``), not the table filtered.
        links = None
        if self.lake.is_local:
            if self._scratch is None:
                self._scratch = Scratch()
            links = self._scratch.new_dir(name)
        return self.lake.register_partition(
            ctx, name, self.partition.repo_id, self.partition.sha, links=links
        )

    def table(self, name: str) -> bool:
        """Register table ``name``; False when it was never written."""
        if name not in self.registered:
            if not self._register(self.ctx, name):
                return False
            self.registered.add(name)
        return True

    def _unbounded(self) -> SessionContext:
        ctx = session_context(bounded=False)
        for name in self.registered:
            self._register(ctx, name)
        return ctx

    def sources(self, name: str, column: str) -> list[IdSource]:
        """The partition's rows of table ``name`` for ``graph_proof``: in a local lake each of
        its files, read a row group at a time on this thread (a DataFusion scan of the
        stdlib's edge endpoints held 390 MB more: its read-ahead, kept by its allocator),
        with the group its ``column`` ids fall in; otherwise the registered table, streamed."""
        if not self.table(name):
            return []
        if self.lake.is_local:
            paths = self.lake.partition_files(name, self.partition.repo_id, self.partition.sha)
            footers = {path: pq.read_metadata(path) for path in paths}  # read once, used twice
            return [
                IdSource(_file_batches(path, footer), file_group(footer, column))
                for path, footer in footers.items()
            ]

        def streamed(columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
            selected = ", ".join(f'"{c}"' for c in columns)
            for batch in self.ctx.sql(f'SELECT {selected} FROM "{name}"').execute_stream():
                yield batch.to_pyarrow()

        return [IdSource(streamed)]

    def proof(self) -> GraphProof:
        """What ``graph_proof`` proves of the graph checks ``asked`` (computed once)."""
        if self._proof is None:
            self._proof = prove_graph(
                self.sources("cpg_nodes", "node_id"),
                self.sources("cpg_edges", "edge_id"),
                nodes_unique="node_ids_unique" in self.asked,
                edges_unique="edge_ids_unique" in self.asked,
                endpoints="edge_endpoints_exist" in self.asked,
            )
        return self._proof

    def row_count(self, name: str) -> int:
        """The partition's rows of table ``name``: in a local lake the sum of its files'
        footers (what a ``COUNT(*)`` reads too; on the stdlib's maps, 256 files, 0.1 s
        through DataFusion), otherwise counted by SQL."""
        if self.lake.is_local:
            paths = self.lake.partition_files(name, self.partition.repo_id, self.partition.sha)
            return sum(pq.read_metadata(path).num_rows for path in paths)
        return int(self.rows(f'SELECT COUNT(*) AS n FROM "{name}"')[0]["n"])

    def rows(self, sql: str) -> list[dict[str, Any]]:
        try:
            return self.ctx.sql(sql).to_arrow_table().to_pylist()
        except Exception as exc:  # DataFusion raises plain Exceptions
            if not memory_exhausted(exc):
                raise
            # Held in a variable: a Delta provider fails if its session goes while it runs.
            unbounded = self._unbounded()
            return unbounded.sql(sql).to_arrow_table().to_pylist()


def _schema_contract(part: _Partition, name: str) -> dg.AssetCheckResult:
    actual = part.ctx.table(name).schema()
    found = [(f.name, normalize_type(f.type)) for f in actual if f.name not in PARTITION_COLUMNS]
    wanted = [(f.name, normalize_type(f.type)) for f in OUTPUT_CONTRACTS[name].schema]
    missing_partition = [c for c in PARTITION_COLUMNS if c not in actual.names]
    diffs = [
        f"column {i}: expected {w[0]} {w[1]}, found {f[0]} {f[1]}"
        for i, (w, f) in enumerate(zip(wanted, found, strict=False))
        if w != f
    ]
    if len(found) != len(wanted):
        diffs.append(f"expected {len(wanted)} columns, found {len(found)}")
    if missing_partition:
        diffs.append(f"partition columns missing: {missing_partition}")
    return dg.AssetCheckResult(
        asset_key=name,
        check_name="schema_contract",
        passed=not diffs,
        description="; ".join(diffs[:_SAMPLE]) if diffs else "schema matches the contract",
        metadata={"columns": len(found)},
    )


def _non_empty(part: _Partition, name: str) -> dg.AssetCheckResult:
    rows = part.row_count(name)
    return dg.AssetCheckResult(
        asset_key=name,
        check_name="non_empty",
        passed=rows > 0,
        description=f"{rows} rows" if rows else f"partition {part.partition.key} has no rows",
        metadata={"rows": rows},
    )


def _unique(
    column: str, check_name: str, proven: Callable[[GraphProof], bool]
) -> Callable[[_Partition, str], dg.AssetCheckResult]:
    def run(part: _Partition, name: str) -> dg.AssetCheckResult:
        if proven(part.proof()):
            return dg.AssetCheckResult(
                asset_key=name,
                check_name=check_name,
                passed=True,
                description="unique",
                metadata={"duplicated_ids": 0},
            )
        # Count first, without sorting or fetching ids; a sample only when something is wrong.
        dupes_sql = (
            f'SELECT {column} AS id, COUNT(*) AS n FROM "{name}" '
            f"GROUP BY {column} HAVING COUNT(*) > 1"
        )
        duplicated = part.rows(f"SELECT COUNT(*) AS n FROM ({dupes_sql}) d")[0]["n"]
        sample: list[str] = []
        if duplicated:
            rows = part.rows(f"{dupes_sql} ORDER BY id LIMIT {_SAMPLE}")
            sample = [f"{d['id']} x{d['n']}" for d in rows]
        return dg.AssetCheckResult(
            asset_key=name,
            check_name=check_name,
            passed=not duplicated,
            description=f"{duplicated} duplicated {column}: {sample}" if duplicated else "unique",
            metadata={"duplicated_ids": duplicated},
        )

    return run


def _edge_endpoints_exist(part: _Partition, name: str) -> dg.AssetCheckResult:
    if part.table("cpg_nodes") and part.proof().endpoints_are_nodes:
        return dg.AssetCheckResult(
            asset_key=name,
            check_name="edge_endpoints_exist",
            passed=True,
            description="ok",
            metadata={"dangling_edges": 0},
        )
    if not part.table("cpg_nodes"):
        dangling = part.rows(f'SELECT COUNT(*) AS n FROM "{name}"')[0]["n"]
        sample: list[str] = ["cpg_nodes table was never written"]
    else:
        # One anti join over both endpoints (one hash table of the nodes, not two); the
        # offending edges are looked up only when there are any. Ids are joined as plain
        # Utf8, not the Utf8View DataFusion reads: on the stdlib the join then peaked 475 MB
        # above its start instead of 800 MB, in the same 2-3 s.
        nodes = "SELECT node_id FROM cpg_nodes"
        edges = f'SELECT edge_id, src_node_id, dst_node_id FROM "{name}"'
        missing = part.rows(
            f"WITH e AS ({edges}) SELECT COUNT(*) AS n FROM ("
            "SELECT arrow_cast(src_node_id, 'Utf8') AS id FROM e "
            "UNION ALL SELECT arrow_cast(dst_node_id, 'Utf8') FROM e) x "
            f"LEFT ANTI JOIN (SELECT arrow_cast(node_id, 'Utf8') AS node_id FROM ({nodes}) v) n "
            "ON x.id = n.node_id"
        )[0]["n"]
        found = []
        if missing:
            found = part.rows(
                f"WITH n AS ({nodes}), e AS ({edges}) "
                "SELECT e.edge_id AS edge_id, e.src_node_id AS src, e.dst_node_id AS dst "
                "FROM e LEFT JOIN n AS s ON e.src_node_id = s.node_id "
                "LEFT JOIN n AS d ON e.dst_node_id = d.node_id "
                "WHERE s.node_id IS NULL OR d.node_id IS NULL ORDER BY e.edge_id"
            )
        dangling = len(found)
        sample = [f"{r['edge_id']}: {r['src']} -> {r['dst']}" for r in found[:_SAMPLE]]
    return dg.AssetCheckResult(
        asset_key=name,
        check_name="edge_endpoints_exist",
        passed=dangling == 0,
        description=f"{dangling} edges with a missing endpoint: {sample}" if dangling else "ok",
        metadata={"dangling_edges": dangling},
    )


_CHECKS: dict[str, Callable[[_Partition, str], dg.AssetCheckResult]] = {
    "schema_contract": _schema_contract,
    "non_empty": _non_empty,
    "node_ids_unique": _unique("node_id", "node_ids_unique", lambda p: p.nodes_unique),
    "edge_ids_unique": _unique("edge_id", "edge_ids_unique", lambda p: p.edges_unique),
    "edge_endpoints_exist": _edge_endpoints_exist,
}


def _run_checks(
    part: _Partition, keys: Collection[dg.AssetCheckKey]
) -> Iterator[dg.AssetCheckResult]:
    """Run the checks ``keys`` on the partition as the lake holds it now."""
    part.asked |= {key.name for key in keys if key in _GRAPH_CHECK_KEYS}
    for key in sorted(keys, key=lambda k: k.to_user_string()):
        name = key.asset_key.to_user_string()
        if not part.table(name):
            yield dg.AssetCheckResult(
                asset_key=name,
                check_name=key.name,
                passed=False,
                description=f"Delta table {part.lake.table_uri(name)} was never written",
            )
            continue
        # No log line per check: its evaluation event already says it, and every event is a
        # write to the instance's storage (about 10 ms each on SQLite).
        yield _CHECKS[key.name](part, name)


class CpgChecks:
    """The checks selected in a ``cpg`` run, each run as soon as what it reads is committed,
    while the other outputs are still built.

    Why in the build's step: after the build they were most of what a Dagster run cost over
    the CLI (on the stdlib, a 4.4 s checks step, 2.9-3.2 s of it the graph checks). Now
    ``output_results`` runs an output's schema and non-empty checks on the caller's thread
    right after its materialization is reported, and the graph checks run on a thread of their
    own from the commit of ``cpg_nodes`` and ``cpg_edges``: beside the sorted outputs, which
    keep about 1.5 of 2 cores busy, they cost ~0.7 s (those outputs and the checks: 20.4 s one
    after the other, 17.9 s together, +100 MB). Every check reads what any later run of it
    would: the partition's committed files (``_Partition``), never rows in flight.

    ``output_written`` is told of each commit (on the writer's thread); ``results`` returns
    every selected check not returned yet, waiting for the graph checks' thread, or running
    them then when it never started (a linked partition, a checks-only run).
    """

    def __init__(
        self, lake: Lake, partition: CommitPartition, selected: Collection[dg.AssetCheckKey]
    ) -> None:
        self.lake, self.partition = lake, partition
        graph = [spec for spec in GRAPH_CHECK_SPECS if spec.key in selected]
        self._graph_keys = sorted((s.key for s in graph), key=lambda k: k.to_user_string())
        self._output_keys = {s.key for s in OUTPUT_CHECK_SPECS if s.key in selected}
        # The tables the graph checks read: their asset and its additional deps.
        self._needs = {
            key.to_user_string()
            for s in graph
            for key in (s.asset_key, *(dep.asset_key for dep in s.additional_deps))
        }
        self._part = _Partition(lake, partition)  # the caller's thread's
        self._written: set[str] = set()
        self._thread: threading.Thread | None = None
        self._graph_results: list[dg.AssetCheckResult] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def started(self) -> bool:
        """Whether the graph checks' thread has started."""
        return self._thread is not None

    def output_written(self, write: OutputWrite | TableWrite) -> None:
        with self._lock:
            self._written.add(write.name)
            if self._thread is not None or not self._graph_keys or not self._needs <= self._written:
                return
            self._thread = threading.Thread(target=self._run, name="cpg-graph-checks", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            part = _Partition(self.lake, self.partition)  # a session of the thread's own
            self._graph_results = list(_run_checks(part, self._graph_keys))
        except BaseException as exc:  # raised again by ``results``, in the asset's step
            self._error = exc

    def output_results(self, name: str) -> list[dg.AssetCheckResult]:
        """The selected schema and non-empty checks of output ``name``, run now on its
        committed partition; each is run once."""
        keys = {k for k in self._output_keys if k.asset_key.to_user_string() == name}
        self._output_keys -= keys
        return list(_run_checks(self._part, keys))

    def results(self) -> list[dg.AssetCheckResult]:
        """Every selected check not returned yet; raises what a graph check raised."""
        keys, self._output_keys = self._output_keys, set()
        results = list(_run_checks(self._part, keys))
        with self._lock:
            thread = self._thread
        if thread is None:
            return results + list(_run_checks(self._part, self._graph_keys))
        thread.join()
        if self._error is not None:
            raise self._error
        return results + self._graph_results
