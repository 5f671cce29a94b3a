"""``graph_proof``: what it proves holds, and anything doubtful comes back unproven.

Sources are in memory here, each with the group the writer would have filed it under (or
none); ``test_checks`` runs the same proofs on files of a Delta partition.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeanatomy_assets import graph_proof
from codeanatomy_assets.graph_proof import GraphProof, IdSource, file_group, prove_graph
from codeanatomy_assets.normalize.ids import edge_id, node_id

REPO = "demo"


def _nodes_of(path: str, count: int) -> list[str]:
    return [node_id(REPO, path, "NAME", "Name", i, i + 1) for i in range(count)]


def _paths_by_group() -> dict[int, str]:
    """A path of each of a few groups (an id's group is its file's bucket's first digit)."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < 4:
        path = f"pkg/m{i}.py"
        found.setdefault(int(_nodes_of(path, 1)[0][0], 16), path)
        i += 1
    return found


def _source(rows: list[dict[str, str]], group: int | None = None) -> IdSource:
    table = pa.Table.from_pylist(rows)

    def batches(columns: Sequence[str]) -> Iterator[pa.RecordBatch]:
        yield from table.select(list(columns)).to_batches(max_chunksize=3)

    return IdSource(batches, group)


def _edge(src: str, dst: str) -> dict[str, str]:
    return {"edge_id": edge_id(REPO, "DEFINES", src, dst, ""), "src_node_id": src,
            "dst_node_id": dst}  # fmt: skip


class _Graph:
    """Nodes of four groups' files and edges within and across them, filed by group as the
    writer files file-local rows, with a source of no group for the cross-file ones."""

    def __init__(self) -> None:
        self.paths = _paths_by_group()
        self.nodes = {g: _nodes_of(p, 5) for g, p in self.paths.items()}
        self.local = {
            g: [_edge(ids[i], ids[i + 1]) for i in range(4)] for g, ids in self.nodes.items()
        }
        first, *rest = sorted(self.nodes)
        self.cross = [_edge(self.nodes[first][0], self.nodes[g][1]) for g in rest]

    def node_sources(self) -> list[IdSource]:
        return [_source([{"node_id": n} for n in ids], g) for g, ids in self.nodes.items()]

    def edge_sources(self, extra: dict[int, list[dict[str, str]]] | None = None) -> list[IdSource]:
        extra = extra or {}
        filed = [_source(rows + extra.get(g, []), g) for g, rows in self.local.items()]
        return [_source(self.cross), *filed]


def test_a_consistent_graph_is_proven() -> None:
    graph = _Graph()
    proof = prove_graph(graph.node_sources(), graph.edge_sources())
    assert proof == GraphProof(nodes_unique=True, edges_unique=True, endpoints_are_nodes=True)


def test_an_endpoint_in_a_group_done_earlier_is_still_found() -> None:
    graph = _Graph()
    first, *_, last = sorted(graph.nodes)
    # Filed with the last group (its source's), pointing back at the first group's node.
    back = _edge(graph.nodes[last][0], graph.nodes[first][2])
    proof = prove_graph(graph.node_sources(), graph.edge_sources({last: [back]}))
    assert proof.endpoints_are_nodes and proof.edges_unique
    # And one that is no node there is looked up too.
    ghost = f"{first:x}" + "0" * 31
    back = _edge(graph.nodes[last][0], ghost)
    proof = prove_graph(graph.node_sources(), graph.edge_sources({last: [back]}))
    assert not proof.endpoints_are_nodes and proof.edges_unique


@pytest.mark.parametrize("waiting_max", [0, 1_000_000])
def test_a_missing_endpoint_is_not_proven_wherever_it_waits(
    monkeypatch: pytest.MonkeyPatch, waiting_max: int
) -> None:
    # 0: every waiting endpoint is looked up at once (the path of files of no group).
    monkeypatch.setattr(graph_proof, "_WAITING_MAX", waiting_max)
    graph = _Graph()
    first = sorted(graph.nodes)[0]
    ghost = _nodes_of("pkg/elsewhere.py", 1)[0]
    graph.cross.append(_edge(graph.nodes[first][0], ghost))
    proof = prove_graph(graph.node_sources(), graph.edge_sources())
    assert not proof.endpoints_are_nodes and proof.edges_unique and proof.nodes_unique
    assert prove_graph(graph.node_sources()[:0], graph.edge_sources()).endpoints_are_nodes is False


def test_an_edge_id_repeated_across_sources_is_not_proven_unique() -> None:
    graph = _Graph()
    group = sorted(graph.local)[1]
    graph.cross.append(graph.local[group][0])  # the same row in a file of no group
    proof = prove_graph(graph.node_sources(), graph.edge_sources())
    assert not proof.edges_unique and proof.endpoints_are_nodes


def test_a_row_outside_its_files_group_after_that_group_is_not_proven() -> None:
    graph = _Graph()
    first, *_, last = sorted(graph.nodes)
    stray = _edge(graph.nodes[first][3], graph.nodes[first][0])  # a first-group edge ...
    proof = prove_graph(graph.node_sources(), graph.edge_sources({last: [stray]}))  # ... filed last
    assert not proof.edges_unique and proof.endpoints_are_nodes


def test_repeated_or_colliding_node_keys_are_not_proven() -> None:
    graph = _Graph()
    group = sorted(graph.nodes)[0]
    graph.nodes[group].append(graph.nodes[group][0])
    proof = prove_graph(graph.node_sources(), graph.edge_sources())
    assert not proof.nodes_unique and not proof.endpoints_are_nodes and proof.edges_unique
    # Distinct ids of one group whose halves XOR to one key: not decided on keys. Of two
    # groups they are proven distinct (a group is a digit of the id).
    one_group = ["0" * 15 + "1" + "0" * 16, "0" * 31 + "1"]
    two_groups = ["0" * 16 + "1" * 16, "1" * 16 + "0" * 16]
    for ids, proven in ((one_group, False), (two_groups, True)):
        nodes = [_source([{"node_id": n} for n in ids])]
        assert prove_graph(nodes, [], edges_unique=False, endpoints=False).nodes_unique is proven


def test_ids_that_are_not_stable_ids_are_not_proven() -> None:
    nodes = [_source([{"node_id": "n1"}, {"node_id": "n2"}])]
    edges = [_source([{"edge_id": "e1", "src_node_id": "n1", "dst_node_id": "n2"}])]
    assert prove_graph(nodes, edges) == GraphProof(False, False, False)


def test_only_what_is_asked_is_proven() -> None:
    graph = _Graph()
    proof = prove_graph(graph.node_sources(), graph.edge_sources(), nodes_unique=False,
                        endpoints=False)  # fmt: skip
    assert proof == GraphProof(nodes_unique=False, edges_unique=True, endpoints_are_nodes=False)


def test_file_group_reads_the_statistics(tmp_path: Path) -> None:
    paths = _paths_by_group()
    one, other = sorted(paths)[:2]
    ids = {g: _nodes_of(p, 3) for g, p in paths.items()}

    def written(values: list[str], **options: bool) -> pq.FileMetaData:
        path = tmp_path / f"{len(list(tmp_path.iterdir()))}.parquet"
        pq.write_table(pa.table({"node_id": values}), path, row_group_size=2, **options)
        return pq.read_metadata(path)

    assert file_group(written(ids[one]), "node_id") == one
    assert file_group(written(ids[one] + ids[other]), "node_id") is None
    assert file_group(written(ids[one], write_statistics=False), "node_id") is None
    assert file_group(written(ids[one]), "edge_id") is None
    assert file_group(written(["n1", "n2"]), "node_id") is None
