"""Build a fixture repository and read its resolution edges by qualified name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.git_fixture import GitRepo

REPO_ID = "resolution"


@dataclass(frozen=True)
class Graph:
    """The nodes, edges and properties of one built commit."""

    nodes: dict[str, dict]
    edges: list[dict]
    props: list[dict]

    def name(self, node_id: str) -> str:
        """A node's qualified name; for NAME/PARAMETER uses without one, ``path:line``."""
        n = self.nodes[node_id]
        if n["qualified_name"] and n["node_kind"] not in ("NAME", "AST_NODE"):
            return n["qualified_name"]
        return f"{n['path']}:{n['line_start']}"

    def pairs(self, kind: str, under: str) -> set[tuple[str, str]]:
        """(src, dst) names of ``kind`` edges whose source lies under the path ``under``."""
        return {
            (self.name(e["src_node_id"]), self.name(e["dst_node_id"]))
            for e in self.edges
            if e["edge_kind"] == kind
            and (self.nodes[e["src_node_id"]]["path"] or "").startswith(under)
        }

    def node_props(self, key: str, under: str) -> dict[str, object]:
        """``key`` property of nodes under ``under``, by name."""
        out: dict[str, object] = {}
        for p in self.props:
            n = self.nodes.get(p["entity_id"])
            if p["prop_key"] == key and n is not None and (n["path"] or "").startswith(under):
                out[self.name(p["entity_id"])] = next(
                    p[c] for c in ("value_string", "value_json", "value_int") if p[c] is not None
                )
        return out


def build_graph(files: Mapping[str, str], root: Path, lake_root: str) -> Graph:
    """Commit ``files`` to a fresh repository under ``root`` and build its CPG."""
    repo = GitRepo.init(root)
    sha = repo.commit(dict(files))
    build_commit(BuildRequest(repo_path=repo.path, lake_root=lake_root, repo_id=REPO_ID))
    lake = Lake(lake_root)
    nodes = {n["node_id"]: n for n in lake.read_partition("cpg_nodes", REPO_ID, sha).to_pylist()}
    edges = lake.read_partition("cpg_edges", REPO_ID, sha).to_pylist()
    props = lake.read_partition("cpg_props", REPO_ID, sha).to_pylist()
    return Graph(nodes, edges, props)
