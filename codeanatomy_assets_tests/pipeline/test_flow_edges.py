"""CFG and reaching definitions reach the CPG: blocks, labelled CFG_NEXT, REACHING_DEF."""

from __future__ import annotations

from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake

SOURCE = """def f(x):
    y = 0
    while x:
        if x > 2:
            break
        y = y + x
        x -= 1
    return y
"""


def _partition(git_repo, lake_root):
    repo = git_repo()
    sha = repo.commit({"flow.py": SOURCE})
    build_commit(BuildRequest(repo_path=repo.path, lake_root=lake_root, repo_id="flow"))
    lake = Lake(lake_root)
    nodes = {n["node_id"]: n for n in lake.read_partition("cpg_nodes", "flow", sha).to_pylist()}
    edges = lake.read_partition("cpg_edges", "flow", sha).to_pylist()
    props = lake.read_partition("cpg_props", "flow", sha).to_pylist()
    return nodes, edges, props


def test_cfg_of_a_loop_with_break(git_repo, lake_root):
    nodes, edges, props = _partition(git_repo, lake_root)
    labels = {p["entity_id"]: p["value_string"] for p in props if p["prop_key"] == "cfg_label"}

    def where(node_id: str) -> object:
        n = nodes[node_id]
        return n["name"] if n["name"] in ("entry", "exit") else n["line_start"]

    cfg = {
        (where(e["src_node_id"]), where(e["dst_node_id"]), labels[e["edge_id"]])
        for e in edges
        if e["edge_kind"] == "CFG_NEXT"
        and nodes[e["src_node_id"]]["qualified_name"].startswith("flow.f#")
    }
    assert cfg == {
        ("entry", 2, "next"),
        (2, 3, "next"),
        (3, 4, "true"),
        (3, 8, "false"),
        (4, 5, "true"),
        (4, 6, "false"),
        (5, 8, "break"),
        (6, 3, "loop"),
        (8, "exit", "return"),
    }
    # Every statement of f is in exactly one block of f.
    in_block = [
        nodes[e["dst_node_id"]]["line_start"]
        for e in edges
        if e["edge_kind"] == "CONTAINS"
        and nodes[e["src_node_id"]]["node_kind"] == "BASIC_BLOCK"
        and nodes[e["src_node_id"]]["qualified_name"].startswith("flow.f#")
    ]
    assert sorted(in_block) == [2, 3, 4, 5, 6, 7, 8]


def test_reaching_definitions(git_repo, lake_root):
    nodes, edges, props = _partition(git_repo, lake_root)
    variables = {p["entity_id"]: p["value_string"] for p in props if p["prop_key"] == "variable"}
    reaching = {
        (
            variables[e["edge_id"]],
            nodes[e["src_node_id"]]["line_start"],
            nodes[e["dst_node_id"]]["line_start"],
        )
        for e in edges
        if e["edge_kind"] == "REACHING_DEF"
    }
    assert reaching == {
        ("x", 1, 3), ("x", 1, 4), ("x", 1, 6), ("x", 1, 7),
        ("x", 7, 3), ("x", 7, 4), ("x", 7, 6), ("x", 7, 7),
        ("y", 2, 6), ("y", 2, 8), ("y", 6, 6), ("y", 6, 8),
    }  # fmt: skip
    # Definitions land on the defining node: the parameter and the Name targets.
    kinds = {
        nodes[e["src_node_id"]]["node_kind"] for e in edges if e["edge_kind"] == "REACHING_DEF"
    }
    assert kinds == {"PARAMETER", "NAME"}
