"""Resolution fixtures: every case's edges exactly (missing and extra both fail)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeanatomy_assets.repo.git import GitRepository
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.resolution.accuracy import call_accuracy, differences
from codeanatomy_assets_tests.resolution.case import Case
from codeanatomy_assets_tests.resolution.cases import CASES, all_files
from codeanatomy_assets_tests.resolution.graph import REPO_ID, Graph, build_graph


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    root: Path = tmp_path_factory.mktemp("resolution")
    return build_graph(all_files(), root / "repo", str(root / "lake"))


def test_there_are_enough_cases() -> None:
    assert len(CASES) >= 40
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case_edges_exactly(graph: Graph, case: Case) -> None:
    for diff in differences(graph, case):
        assert not diff.missing and not diff.extra, diff
    for key, expected in case.props.items():
        assert graph.node_props(key, case.under) == expected, key
    for kind, edges in case.known_missing.items():
        assert not edges & graph.pairs(kind, case.under), "known gap now resolved: update the case"


def test_call_graph_accuracy(graph: Graph) -> None:
    precision, recall, *_ = call_accuracy(graph, CASES)
    assert precision == 1.0
    assert recall >= 0.95


def test_edge_ids_are_unique_and_one_base_reached_twice_is_certain(graph: Graph) -> None:
    assert len({e["edge_id"] for e in graph.edges}) == len(graph.edges)
    (inherits,) = [
        e
        for e in graph.edges
        if e["edge_kind"] == "INHERITS" and e["path"] == "inh_import_twice/m.py"
    ]
    assert inherits["confidence"] == 1.0


def test_two_possible_targets_share_the_confidence(graph: Graph) -> None:
    calls = [
        e
        for e in graph.edges
        if e["edge_kind"] == "CALLS"
        and graph.nodes[e["src_node_id"]]["path"] == "call_two_targets/m.py"
    ]
    assert sorted(e["confidence"] for e in calls) == [0.5, 0.5]


_C3 = """class O: pass
class F(O): pass
class E(O): pass
class D(O): pass
class C(D, F): pass
class B(D, E): pass
class A(B, C): pass
"""


def test_mro_is_c3_on_the_classic_example(tmp_path: Path) -> None:
    graph = build_graph({"c3/m.py": _C3}, tmp_path / "repo", str(tmp_path / "lake"))
    mro = graph.node_props("mro", "c3/")["c3.m.A"]
    assert mro == '["' + '","'.join(f"c3.m.{c}" for c in "ABCDEFO") + '"]'


def test_an_inconsistent_hierarchy_is_a_quality_finding_with_a_depth_first_mro(
    tmp_path: Path,
) -> None:
    # ``g`` rebinds ``A``: B's base is either A, and the second A would be its own ancestor;
    # an ambiguous hierarchy is not called inconsistent.
    source = (
        "class O: pass\nclass F(O): pass\nclass X(O, F): pass\nclass Y(F): pass\n"
        "def g():\n    class A: pass\n    class B(A): pass\n    class A(B): pass\n"
    )
    graph = build_graph({"bad/m.py": source}, tmp_path / "repo", str(tmp_path / "lake"))
    assert graph.node_props("mro", "bad/")["bad.m.X"] == '["bad.m.X","bad.m.F","bad.m.O"]'
    lake = Lake(str(tmp_path / "lake"))
    sha = GitRepository(tmp_path / "repo").resolve("HEAD")
    findings = lake.read_partition("cpg_nodes_quality", REPO_ID, sha).to_pylist()
    flagged = {graph.name(f["entity_id"]) for f in findings if f["issue"] == "inconsistent_mro"}
    assert flagged == {"bad.m.X"}


def test_self_call_with_an_override_shares_the_confidence(graph: Graph) -> None:
    calls = {
        (graph.name(e["dst_node_id"]), e["resolution_method"], e["confidence"])
        for e in graph.edges
        if e["edge_kind"] == "CALLS" and e["path"] == "call_override/m.py"
    }
    assert calls == {
        ("call_override.m.A.step", "self", 0.5),
        ("call_override.m.B.step", "override", 0.5),
    }
