"""The asset checks against real Delta tables written through the lake.

A stand-in multi-asset with the CPG keys writes hand-made partitions (the real one needs the
whole pipeline; its own tests live in ``assets/``), so each check is seen passing and failing
on data whose defects are known exactly. Like the real one, it owns the checks and runs them
(``CpgChecks``) as its tables are committed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow as pa
import pytest

from codeanatomy_assets.checks import (
    CPG_CHECK_SPECS,
    CpgChecks,
    _Partition,
    normalize_type,
)
from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS, OUTPUT_CONTRACTS
from codeanatomy_assets.normalize.ids import node_id
from codeanatomy_assets.partitions import COMMITS_PARTITIONS, decode_partition_key
from codeanatomy_assets.storage import partition_files
from codeanatomy_assets.storage.lake import Lake

REPO = "demo"
SHA = "0123456789abcdef0123456789abcdef01234567"
KEY = f"{REPO}@{SHA}"
OTHER_SHA = "f" * 40

Rows = list[dict[str, Any]]


def _valid_rows() -> dict[str, Rows]:
    """One small, consistent graph; outputs not listed here get one all-null row."""
    return {
        "cpg_nodes": [
            {"node_id": "n1", "node_kind": "MODULE", "path": "a.py"},
            {"node_id": "n2", "node_kind": "FUNCTION", "path": "a.py"},
        ],
        "cpg_edges": [
            {"edge_id": "e1", "edge_kind": "DEFINES", "src_node_id": "n1", "dst_node_id": "n2"}
        ],
        "cpg_nodes_quality": [],
        "cpg_props_quality": [],
        "extract_errors": [],
    }


def _run(
    tmp_path: Path, rows: Mapping[str, Rows], tables: Mapping[str, pa.Table] | None = None
) -> dict[tuple[str, str], dg.AssetCheckEvaluation]:
    """Write the partition through a stand-in asset, run every check, return the results."""
    lake = Lake(str(tmp_path / "lake"))

    @dg.multi_asset(
        specs=[dg.AssetSpec(name) for name in CPG_OUTPUTS],
        check_specs=CPG_CHECK_SPECS,
        partitions_def=COMMITS_PARTITIONS,
        can_subset=True,
    )
    def stand_in(context) -> Iterator[dg.MaterializeResult | dg.AssetCheckResult]:  # type: ignore[no-untyped-def]
        # ``context`` unannotated: this module's annotations are strings, Dagster wants a type.
        partition = decode_partition_key(context.partition_key)
        checks = CpgChecks(lake, partition, context.selected_asset_check_keys)
        for name in CPG_OUTPUTS:
            schema = OUTPUT_CONTRACTS[name].schema
            table = (tables or {}).get(name)
            if table is None:
                table = pa.Table.from_pylist(rows.get(name, [{}]), schema=schema)
            # A neighbouring partition whose rows must not leak into this one's checks.
            lake.write_partition(name, table.slice(0, 0), REPO, OTHER_SHA)
            checks.output_written(lake.write_partition(name, table, REPO, SHA))
            yield dg.MaterializeResult(asset_key=name)
            yield from checks.output_results(name)
        assert checks.started  # the graph checks began while outputs were still written
        yield from checks.results()

    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("commits", [KEY])
        result = dg.materialize(
            [stand_in],
            partition_key=KEY,
            instance=instance,
        )
        return {
            (e.asset_key.to_user_string(), e.check_name): e
            for e in result.get_asset_check_evaluations()
        }


def test_every_check_passes_on_a_consistent_partition(tmp_path: Path) -> None:
    results = _run(tmp_path, _valid_rows())
    assert set(results) == {(s.asset_key.to_user_string(), s.name) for s in CPG_CHECK_SPECS}
    failed = {k: e.description for k, e in results.items() if not e.passed}
    assert failed == {}
    assert all(e.partition == KEY for e in results.values())


def test_graph_defects_fail_with_descriptions(tmp_path: Path) -> None:
    rows = _valid_rows()
    rows["cpg_nodes"].append({"node_id": "n2", "node_kind": "NAME"})
    rows["cpg_edges"] += [
        {"edge_id": "e2", "src_node_id": "n1", "dst_node_id": "ghost"},
        {"edge_id": "e2", "src_node_id": "n1", "dst_node_id": "n1"},
    ]
    rows["cpg_props"] = []
    results = _run(tmp_path, rows)
    failed = {k: e.description for k, e in results.items() if not e.passed}
    assert set(failed) == {
        ("cpg_nodes", "node_ids_unique"),
        ("cpg_edges", "edge_ids_unique"),
        ("cpg_edges", "edge_endpoints_exist"),
        ("cpg_props", "non_empty"),
    }
    assert failed[("cpg_nodes", "node_ids_unique")] == "1 duplicated node_id: ['n2 x2']"
    assert failed[("cpg_edges", "edge_endpoints_exist")] == (
        "1 edges with a missing endpoint: ['e2: n1 -> ghost']"
    )
    assert failed[("cpg_props", "non_empty")] == f"partition {KEY} has no rows"


def _stable_ids(count: int) -> list[str]:
    return [node_id(REPO, "a.py", "NAME", "Name", i, i + 1) for i in range(count)]


@pytest.mark.parametrize(
    ("ids", "proven", "unique"),
    [
        (_stable_ids(3), True, True),
        (_stable_ids(3) + _stable_ids(1), False, False),
        # Distinct ids of one group whose 64-bit keys collide (halves XOR to the same
        # value): the exact SQL question decides, and they are unique.
        (["0" * 15 + "1" + "0" * 16, "0" * 31 + "1"], False, True),
        # Not stable ids: decided in SQL only.
        (["n1", "n2"], False, True),
        (["n1", "n1"], False, False),
    ],
)
def test_uniqueness_is_decided_on_keys_then_exactly(
    tmp_path: Path, ids: list[str], proven: bool, unique: bool
) -> None:
    nodes = pa.Table.from_pylist(
        [{"node_id": i, "node_kind": "NAME"} for i in ids],
        schema=OUTPUT_CONTRACTS["cpg_nodes"].schema,
    )
    results = _run(tmp_path, _valid_rows(), {"cpg_nodes": nodes})
    check = results[("cpg_nodes", "node_ids_unique")]
    assert check.passed is unique
    assert check.metadata["duplicated_ids"].value == (0 if unique else 1)
    asked = frozenset({"node_ids_unique"})
    part = _Partition(Lake(str(tmp_path / "lake")), decode_partition_key(KEY), asked=asked)
    assert part.proof().nodes_unique is proven


def _graph(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, pa.Table]:
    return {
        "cpg_nodes": pa.Table.from_pylist(
            [{"node_id": n, "node_kind": "NAME"} for n in nodes],
            schema=OUTPUT_CONTRACTS["cpg_nodes"].schema,
        ),
        "cpg_edges": pa.Table.from_pylist(
            [
                {"edge_id": f"{i:032x}", "src_node_id": s, "dst_node_id": d}
                for i, (s, d) in enumerate(edges)
            ],
            schema=OUTPUT_CONTRACTS["cpg_edges"].schema,
        ),
    }


def test_endpoints_of_stable_ids_are_proven_on_node_keys_without_sql(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _stable_ids(4)
    tables = _graph(ids, [(ids[0], ids[1]), (ids[1], ids[2]), (ids[3], ids[3])])

    rows = _Partition.rows

    def no_graph_sql(self: _Partition, sql: str) -> list[dict[str, Any]]:
        assert "JOIN" not in sql and "GROUP BY" not in sql, sql  # the exact questions
        return rows(self, sql)

    monkeypatch.setattr(_Partition, "rows", no_graph_sql)
    results = _run(tmp_path, _valid_rows(), tables)
    assert results[("cpg_edges", "edge_endpoints_exist")].passed
    assert results[("cpg_nodes", "node_ids_unique")].passed
    assert results[("cpg_edges", "edge_ids_unique")].passed


@pytest.mark.parametrize(
    "ghost",
    [
        node_id(REPO, "b.py", "NAME", "Name", 0, 1),  # a stable id of no node
        # No node's key, but a node's high half; and a node's key with another high half:
        # neither is that node.
        "0" * 16 + "1" * 16,
        "1" * 16 + "0" * 16,
        # The same 128 bits as a node, spelled in uppercase: another string, not that node.
        "ABCDEF0123456789" * 2,
    ],
)
def test_an_endpoint_that_is_no_node_is_found_and_named_by_sql(tmp_path: Path, ghost: str) -> None:
    ids = [*_stable_ids(2), "0" * 16 + "2" * 16, "abcdef0123456789" * 2]
    tables = _graph(ids, [(ids[0], ids[1]), (ids[1], ghost)])
    results = _run(tmp_path, _valid_rows(), tables)
    check = results[("cpg_edges", "edge_endpoints_exist")]
    assert not check.passed
    assert (
        check.description == f"1 edges with a missing endpoint: ['{1:032x}: {ids[1]} -> {ghost}']"
    )


def test_edges_of_a_partition_without_nodes_all_dangle(tmp_path: Path) -> None:
    ids = _stable_ids(2)
    results = _run(tmp_path, _valid_rows(), _graph([], [(ids[0], ids[1])]))
    check = results[("cpg_edges", "edge_endpoints_exist")]
    assert not check.passed and check.metadata["dangling_edges"].value == 1


def test_schema_drift_is_named(tmp_path: Path) -> None:
    drifted = pa.table({"table_name": ["x"], "row_count": pa.array([1], pa.int32())})
    results = _run(tmp_path, _valid_rows(), {"normalize_outputs": drifted})
    check = results[("normalize_outputs", "schema_contract")]
    assert not check.passed
    assert check.description == "column 1: expected row_count int64, found row_count int32"


@pytest.mark.parametrize(
    ("physical", "contract"),
    [
        (pa.string_view(), pa.string()),
        (
            pa.large_list(pa.struct([("k", pa.large_string())])),
            pa.list_(pa.struct([("k", pa.string())])),
        ),
    ],
)
def test_reader_type_variants_match_the_contract(
    physical: pa.DataType, contract: pa.DataType
) -> None:
    assert normalize_type(physical) == normalize_type(contract)


def test_checks_that_outgrow_the_memory_pool_still_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pool too small for a uniqueness or endpoint query: it runs again unbounded, and the
    defects are still found."""
    from codeanatomy_assets.cpg import functions

    monkeypatch.setattr(functions, "MEMORY_POOL_BYTES", 64 * 1024)
    ids = [f"{i:032x}" for i in range(60_000)]
    nodes = pa.Table.from_pylist(
        [{"node_id": i, "node_kind": "NAME"} for i in ids],
        schema=OUTPUT_CONTRACTS["cpg_nodes"].schema,
    )
    edges = pa.Table.from_pylist(
        [{"edge_id": i, "src_node_id": i, "dst_node_id": i} for i in ids]
        + [{"edge_id": ids[0], "src_node_id": ids[0], "dst_node_id": "ghost"}],
        schema=OUTPUT_CONTRACTS["cpg_edges"].schema,
    )
    results = _run(tmp_path, _valid_rows(), {"cpg_nodes": nodes, "cpg_edges": edges})
    assert results[("cpg_nodes", "node_ids_unique")].passed
    duplicated = results[("cpg_edges", "edge_ids_unique")]
    assert not duplicated.passed and duplicated.metadata["duplicated_ids"].value == 1
    dangling = results[("cpg_edges", "edge_endpoints_exist")]
    assert not dangling.passed and dangling.metadata["dangling_edges"].value == 1


def test_partitions_filed_by_group_are_proven_group_by_group(tmp_path: Path) -> None:
    """As a build writes them: file-local rows one file per group, cross-file edges in a file
    of no group. The proofs read each file's group from its statistics; an endpoint missing
    across groups is still found, and SQL names it."""
    from codeanatomy_assets.checks import _run_checks
    from codeanatomy_assets.normalize.ids import edge_id
    from codeanatomy_assets.storage.buckets import LocalBuckets

    files = [f"pkg/m{i}.py" for i in range(12)]
    nodes = {f: [node_id(REPO, f, "NAME", "Name", i, i + 1) for i in range(3)] for f in files}
    assert len({ids[0][0] for ids in nodes.values()}) > 2  # files of several groups

    def edge(src: str, dst: str) -> dict[str, str]:
        return {"edge_id": edge_id(REPO, "DEFINES", src, dst, ""), "src_node_id": src,
                "dst_node_id": dst}  # fmt: skip

    local = [edge(ids[0], ids[i]) for ids in nodes.values() for i in (1, 2)]
    ghost = node_id(REPO, "pkg/gone.py", "NAME", "Name", 0, 1)
    cross = [edge(nodes[files[0]][0], nodes[files[-1]][1]), edge(nodes[files[1]][0], ghost)]
    lake = Lake(str(tmp_path / "lake"))

    def write(name: str, rows: Rows, key: str, plain: Rows | None = None) -> None:
        schema = OUTPUT_CONTRACTS[name].schema
        table = pa.Table.from_pylist(rows, schema=schema)
        extra = pa.Table.from_pylist(plain or [], schema=schema)
        lake.write_partition_stream(
            name, schema, table.to_batches, REPO, SHA, buckets=LocalBuckets(key, "test"),
            plain=extra.to_batches if plain else None,
        )  # fmt: skip

    write("cpg_nodes", [{"node_id": n, "node_kind": "NAME"} for ids in nodes.values() for n in ids],
          "node_id")  # fmt: skip
    write("cpg_edges", local, "edge_id", cross)
    part = _Partition(lake, decode_partition_key(KEY))
    groups = [s.group for s in part.sources("cpg_edges", "edge_id")]
    assert groups.count(None) == 1 and len(groups) > 3
    keys = [s.key for s in CPG_CHECK_SPECS if s.name in ("node_ids_unique", "edge_ids_unique",
                                                         "edge_endpoints_exist")]  # fmt: skip
    results = {r.check_name: r for r in _run_checks(part, keys)}
    assert part.proof().nodes_unique and part.proof().edges_unique
    assert not part.proof().endpoints_are_nodes
    assert results["node_ids_unique"].passed and results["edge_ids_unique"].passed
    dangling = results["edge_endpoints_exist"]
    assert not dangling.passed and ghost in (dangling.description or "")


def test_a_partition_of_many_files_is_counted_and_read_as_one_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local partition's rows are counted from its files' footers, and its files are read
    through one directory of links (not a UNION of one table per file); the neighbouring
    partition's rows count in neither."""
    monkeypatch.setattr(partition_files, "_FILE_BYTES", 4_000)
    lake = Lake(str(tmp_path / "lake"))
    schema = OUTPUT_CONTRACTS["cpg_edges"].schema
    edges = pa.Table.from_pylist(
        [{"edge_id": f"e{i}", "src_node_id": "n1", "dst_node_id": "n2"} for i in range(2_000)],
        schema=schema,
    )
    edges = pa.Table.from_batches(edges.to_batches(max_chunksize=100))  # a file every 4 KB
    lake.write_partition("cpg_edges", edges, REPO, SHA)
    lake.write_partition("cpg_edges", edges.slice(0, 7), REPO, OTHER_SHA)
    assert len(lake.partition_files("cpg_edges", REPO, SHA)) > 3
    part = _Partition(lake, decode_partition_key(KEY))
    assert part.row_count("cpg_edges") == 2_000
    assert part.table("cpg_edges")
    assert part.rows('SELECT COUNT(*) AS n FROM "cpg_edges"') == [{"n": 2_000}]
    plan = part.ctx.sql('SELECT * FROM "cpg_edges"').execution_plan().display_indent()
    assert "UnionExec" not in plan, plan
    assert _Partition(lake, decode_partition_key(f"{REPO}@{'e' * 40}")).row_count("cpg_edges") == 0
