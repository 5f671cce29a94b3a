"""Output contracts: the Arrow schema of every CPG output, as stored (before partition columns).

Every output is written to a Delta table of the same name with ``repo_id`` and ``commit``
prepended (see ``storage.lake``). Views are cast to these schemas before they leave the
pipeline, so a view that drifts fails the run instead of silently changing a table.
Conventions: byte offsets ``bstart``/``bend`` are half-open into the file's raw bytes; lines
are 1-based and columns 0-based counts of code points; ids are 32 lowercase hex characters.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from codeanatomy_assets.extract.evidence import ERRORS

_S = pa.string()
_I64 = pa.int64()
_I32 = pa.int32()

CPG_NODES = pa.schema(
    [
        ("node_id", _S),
        ("node_kind", _S),
        ("path", _S),
        ("file_id", _S),
        ("name", _S),
        ("qualified_name", _S),
        ("bstart", _I64),
        ("bend", _I64),
        ("line_start", _I32),
        ("col_start", _I32),
        ("line_end", _I32),
        ("col_end", _I32),
        ("origin", _S),
    ]
)

CPG_EDGES = pa.schema(
    [
        ("edge_id", _S),
        ("edge_kind", _S),
        ("src_node_id", _S),
        ("dst_node_id", _S),
        ("path", _S),
        ("bstart", _I64),
        ("bend", _I64),
        ("origin", _S),
        ("resolution_method", _S),
        ("confidence", pa.float64()),
    ]
)

_PROP_VALUE_FIELDS = [
    ("value_type", _S),
    ("value_string", _S),
    ("value_int", _I64),
    ("value_float", pa.float64()),
    ("value_bool", pa.bool_()),
    ("value_json", _S),
]

CPG_PROPS = pa.schema(
    [("entity_kind", _S), ("entity_id", _S), ("prop_key", _S), *_PROP_VALUE_FIELDS]
)

CPG_PROPS_MAP = pa.schema(
    [
        ("entity_id", _S),
        ("entity_kind", _S),
        ("props", pa.list_(pa.struct([("prop_key", _S), *_PROP_VALUE_FIELDS]))),
    ]
)

CPG_EDGES_BY_SRC = pa.schema(
    [
        ("node_id", _S),
        ("edge_count", _I64),
        ("edges", pa.list_(pa.struct([("edge_id", _S), ("edge_kind", _S), ("dst_node_id", _S)]))),
    ]
)

CPG_EDGES_BY_DST = pa.schema(
    [
        ("node_id", _S),
        ("edge_count", _I64),
        ("edges", pa.list_(pa.struct([("edge_id", _S), ("edge_kind", _S), ("src_node_id", _S)]))),
    ]
)

CPG_NODES_QUALITY = pa.schema(
    [("entity_id", _S), ("node_kind", _S), ("issue", _S), ("source", _S), ("detail", _S)]
)

CPG_PROPS_QUALITY = pa.schema(
    [("entity_id", _S), ("prop_key", _S), ("issue", _S), ("source", _S), ("detail", _S)]
)

NORMALIZE_OUTPUTS = pa.schema([("table_name", _S), ("row_count", _I64)])

# The output is the evidence table itself: one schema, defined where the rows are made.
EXTRACT_ERRORS = ERRORS

RUN_MANIFEST = pa.schema(
    [
        ("run_id", _S),
        ("status", _S),
        ("started_at", pa.timestamp("us", tz="UTC")),
        ("finished_at", pa.timestamp("us", tz="UTC")),
        ("duration_s", pa.float64()),
        ("plan_signature", _S),
        ("code_version", _S),
        ("execution_mode", _S),
        ("file_count", _I64),
        ("error_count", _I64),
        ("outputs_json", _S),
        ("timings_json", _S),
        ("inputs_json", _S),
        ("config_json", _S),
        ("package_versions_json", _S),
    ]
)


# Diagnostics events of one build (node and task timings, task routing, plan, cache outcome),
# one row per event, written by ``pipeline.execution`` beside ``run_manifest``. Not a CPG
# output: it is not in ``OUTPUT_CONTRACTS`` and has no asset.
PIPELINE_EVENTS = pa.schema(
    [
        ("run_id", _S),
        ("seq", _I64),  # order of recording within the run
        ("event", _S),  # plan, graph_start, node_start, node_finish, task_routing, ...
        ("time_unix_ms", _I64),
        ("node", _S),
        ("task_name", _S),
        ("task_kind", _S),
        ("executor", _S),  # local | remote (routing), local | dask (where a task ran)
        ("duration_s", pa.float64()),
        ("rows", _I64),
        ("success", pa.bool_()),
        ("detail_json", _S),  # every other field of the event
    ]
)


@dataclass(frozen=True, slots=True)
class OutputContract:
    """What an output promises: its schema, whether an empty result is a failure, and why."""

    name: str
    schema: pa.Schema
    non_empty: bool
    description: str


OUTPUT_CONTRACTS: dict[str, OutputContract] = {
    c.name: c
    for c in (
        OutputContract(
            "cpg_nodes",
            CPG_NODES,
            True,
            "Every node of the commit's Code Property Graph: repository, files, modules, "
            "definitions, syntax nodes, scopes, symbols and external targets, with byte spans.",
        ),
        OutputContract(
            "cpg_edges",
            CPG_EDGES,
            True,
            "Every edge of the graph (AST_CHILD, CONTAINS, DEFINES, IMPORTS, BINDS...), with "
            "how it was resolved and how confident that resolution is.",
        ),
        OutputContract(
            "cpg_props",
            CPG_PROPS,
            True,
            "Typed properties of nodes and edges, one row per (entity, key).",
        ),
        OutputContract(
            "cpg_props_map",
            CPG_PROPS_MAP,
            True,
            "All properties of an entity in one row, for point lookups.",
        ),
        OutputContract(
            "cpg_edges_by_src",
            CPG_EDGES_BY_SRC,
            True,
            "Outgoing adjacency: each node with the list of its outgoing edges.",
        ),
        OutputContract(
            "cpg_edges_by_dst",
            CPG_EDGES_BY_DST,
            True,
            "Incoming adjacency: each node with the list of its incoming edges.",
        ),
        OutputContract(
            "cpg_nodes_quality",
            CPG_NODES_QUALITY,
            False,
            "Data-quality findings on nodes (files that failed to extract, invalid spans, "
            "duplicate ids, classes without a C3 linearization...).",
        ),
        OutputContract(
            "cpg_props_quality",
            CPG_PROPS_QUALITY,
            False,
            "Data-quality findings on properties (value missing for its declared type...).",
        ),
        OutputContract(
            "normalize_outputs",
            NORMALIZE_OUTPUTS,
            True,
            "The normalized evidence tables of the run and their row counts.",
        ),
        OutputContract(
            "extract_errors",
            EXTRACT_ERRORS,
            False,
            "Files that could not be extracted (or were skipped), with extractor, cause and "
            "position: the graph of every other file is still complete.",
        ),
        OutputContract(
            "run_manifest",
            RUN_MANIFEST,
            True,
            "One row per build: status, timings, plan signature, inputs and the Delta version "
            "of every output written.",
        ),
    )
}

CPG_OUTPUTS: tuple[str, ...] = tuple(OUTPUT_CONTRACTS)
# Outputs whose rows are counted per kind for the run's metadata, and the kind column.
KIND_COLUMNS: dict[str, str] = {"cpg_nodes": "node_kind", "cpg_edges": "edge_kind"}
