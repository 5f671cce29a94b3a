"""One commit in, Delta tables out: exact definitions, spans, imports, partitions, ids."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from codeanatomy_assets.cpg.schemas import CPG_OUTPUTS, OUTPUT_CONTRACTS
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest, ConfigError, OutputCommitted
from codeanatomy_assets.repo.git import RepositoryError, RevisionError
from codeanatomy_assets.storage.lake import Lake, LakeError
from codeanatomy_assets_tests.pipeline.fixture_repo import CORE, CORE_DEFINITIONS, FILES


@pytest.fixture(scope="module")
def factory() -> DriverFactory:
    return DriverFactory()


def _build(repo_path: Path, lake_root: str, factory: DriverFactory, **kw):
    request = BuildRequest(repo_path=repo_path, lake_root=lake_root, repo_id="fixture", **kw)
    return build_commit(request, factory=factory)


def _rows(lake_root: str, name: str, commit: str) -> list[dict]:
    """The partition's rows in a fixed order (flat outputs are stored in none)."""
    rows = Lake(lake_root).read_partition(name, "fixture", commit).to_pylist()
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def test_fixture_build_exact_definitions_and_imports(git_repo, lake_root, factory):
    repo = git_repo()
    sha = repo.commit(FILES)
    result = _build(repo.path, lake_root, factory)
    assert result.status == "success" and result.commit == sha
    assert set(result.outputs) == set(CPG_OUTPUTS)
    nodes = _rows(lake_root, "cpg_nodes", sha)
    core = {
        (n["node_kind"], n["qualified_name"])
        for n in nodes
        if n["path"] == "pkg/core.py"
        and n["node_kind"] in ("MODULE", "CLASS", "FUNCTION", "PARAMETER")
    }
    assert core == CORE_DEFINITIONS
    by_id = {n["node_id"]: n for n in nodes}
    edges = _rows(lake_root, "cpg_edges", sha)
    imports = {
        (
            by_id[e["src_node_id"]]["path"],
            by_id[e["dst_node_id"]]["node_kind"],
            by_id[e["dst_node_id"]]["qualified_name"],
        )
        for e in edges
        if e["edge_kind"] == "IMPORTS"
    }
    assert imports == {
        ("pkg/__init__.py", "MODULE", "pkg.core"),
        ("pkg/core.py", "EXTERNAL", "os"),
        ("pkg/core.py", "MODULE", "pkg.util"),  # from . import util: the submodule
        ("tools/run.py", "MODULE", "pkg.core"),
        ("tools/run.py", "MODULE", "pkg.util"),
    }
    # `from .util import helper` names an attribute of pkg.util: the edge lands on the module.
    helper_edges = [
        e for e in edges if e["edge_kind"] == "IMPORTS" and e["resolution_method"] == "module_index"
    ]
    assert len(helper_edges) == 5
    # Every edge endpoint is a node of the same partition; ids are unique.
    assert len(by_id) == len(nodes)
    assert all(e["src_node_id"] in by_id and e["dst_node_id"] in by_id for e in edges)
    assert len({e["edge_id"] for e in edges}) == len(edges)


def test_each_alias_is_a_property_of_its_own_import_edge(git_repo, lake_root, factory):
    """``from pkg.util import helper as h, other as o``: two IMPORTS edges into one module,
    told apart by their targets; each carries its own alias, not both."""
    repo = git_repo()
    sha = repo.commit(
        {
            "pkg/__init__.py": "",
            "pkg/util.py": "def helper():\n    pass\n\n\ndef other():\n    pass\n",
            "main.py": "from pkg.util import helper as h, other as o\nimport pkg.util as u\n",
        }
    )
    assert _build(repo.path, lake_root, factory, commit=sha).status == "success"
    nodes = {n["node_id"]: n for n in _rows(lake_root, "cpg_nodes", sha)}
    imports = {
        e["edge_id"]
        for e in _rows(lake_root, "cpg_edges", sha)
        if e["edge_kind"] == "IMPORTS" and nodes[e["src_node_id"]]["path"] == "main.py"
    }
    aliases: dict[str, list[str]] = {}
    for p in _rows(lake_root, "cpg_props", sha):
        if p["prop_key"] == "import_asname":
            aliases.setdefault(p["entity_id"], []).append(p["value_string"])
    assert len(imports) == 3 and set(aliases) == imports
    assert sorted(sorted(v) for v in aliases.values()) == [["h"], ["o"], ["u"]]


def test_a_read_with_an_imported_and_a_local_binding_shares_its_confidence(
    git_repo, lake_root, factory
):
    """``dumps`` bound by an import and by a def: its read references both, half each (the
    reads of a file's own bindings are file-local rows, those of imports are not: a read's
    targets must still be counted together)."""
    repo = git_repo()
    sha = repo.commit(
        {
            "main.py": "try:\n    from json import dumps\nexcept ImportError:\n"
            "    def dumps(x):\n        return str(x)\n\n\nprint(dumps(1))\n",
        }
    )
    assert _build(repo.path, lake_root, factory, commit=sha).status == "success"
    nodes = {n["node_id"]: n for n in _rows(lake_root, "cpg_nodes", sha)}
    refs = [
        e
        for e in _rows(lake_root, "cpg_edges", sha)
        if e["edge_kind"] == "REFERENCES" and nodes[e["src_node_id"]]["name"] == "dumps"
    ]
    assert sorted((e["resolution_method"], e["confidence"]) for e in refs) == [
        ("import", 0.5),
        ("local", 0.5),
    ]
    assert {nodes[e["dst_node_id"]]["qualified_name"] for e in refs} == {"json.dumps", "main.dumps"}


def test_structural_edges(git_repo, lake_root, factory):
    repo = git_repo()
    sha = repo.commit(FILES)
    _build(repo.path, lake_root, factory)
    nodes = {n["node_id"]: n for n in _rows(lake_root, "cpg_nodes", sha)}

    def pairs(kind: str) -> set[tuple[str, str]]:
        return {
            (nodes[e["src_node_id"]]["qualified_name"], nodes[e["dst_node_id"]]["qualified_name"])
            for e in _rows(lake_root, "cpg_edges", sha)
            if e["edge_kind"] == kind and nodes[e["src_node_id"]]["path"] == "pkg/core.py"
        }

    assert pairs("DEFINES") == {
        ("pkg.core", "pkg.core.Engine"),
        ("pkg.core", "pkg.core.top"),
        ("pkg.core.Engine", "pkg.core.Engine.__init__"),
        ("pkg.core.Engine", "pkg.core.Engine.run"),
        ("pkg.core.Engine", "pkg.core.Engine.Nested"),
        ("pkg.core.Engine.run", "pkg.core.Engine.run.<locals>.inner"),
        (
            "pkg.core.Engine.run.<locals>.inner",
            "pkg.core.Engine.run.<locals>.inner.<locals>.<lambda>",
        ),
        ("pkg.core.Engine.Nested", "pkg.core.Engine.Nested.go"),
    }
    assert ("pkg.core.top", "pkg.core.top.a") in pairs("HAS_PARAMETER")
    assert len(pairs("HAS_PARAMETER")) == 10
    # Every syntax node but a module has one edge from its defining node (blocks are also
    # CONTAINed by theirs), in every file.
    syntax = {i for i, n in nodes.items() if n["origin"] == "ast"}
    from_definer = Counter(
        e["dst_node_id"]
        for e in _rows(lake_root, "cpg_edges", sha)
        if e["edge_kind"] in ("DEFINES", "HAS_PARAMETER", "CONTAINS")
        and e["src_node_id"] in syntax
        and e["dst_node_id"] in syntax
    )
    assert from_definer == {i: 1 for i in syntax if nodes[i]["node_kind"] != "MODULE"}
    kinds = {n["node_kind"] for n in nodes.values()}
    assert {"REPOSITORY", "PACKAGE", "FILE", "SCOPE", "SYMBOL", "EXTERNAL"} <= kinds
    scope_parents = pairs("SCOPE_PARENT")
    assert ("pkg.core.Engine.run", "pkg.core.Engine") in scope_parents
    binds = {dst for src, dst in pairs("BINDS") if src == "pkg.core.top"}
    assert binds == {"pkg.core.top.a", "pkg.core.top.b"}


def test_span_of_function_after_non_ascii_text(git_repo, lake_root, factory):
    repo = git_repo()
    sha = repo.commit(FILES)
    _build(repo.path, lake_root, factory)
    data = CORE.encode("utf-8")
    (top,) = [
        n
        for n in _rows(lake_root, "cpg_nodes", sha)
        if n["qualified_name"] == "pkg.core.top" and n["node_kind"] == "FUNCTION"
    ]
    start = data.index(b"def top")
    assert (top["bstart"], top["bend"]) == (start, len(data.rstrip(b"\n")))
    assert (top["line_start"], top["col_start"]) == (22, 0)
    assert (top["line_end"], top["col_end"]) == (23, len("    return [i for i in a]"))


def test_syntax_error_is_one_row_and_the_rest_is_complete(git_repo, lake_root, factory):
    repo = git_repo()
    sha = repo.commit(FILES)
    result = _build(repo.path, lake_root, factory)
    errors = _rows(lake_root, "extract_errors", sha)
    assert [(e["path"], e["extractor"], e["error_kind"], e["line"]) for e in errors] == [
        ("broken.py", "ast", "SyntaxError", 1)
    ]
    assert result.error_count == 1
    modules = {
        n["qualified_name"]
        for n in _rows(lake_root, "cpg_nodes", sha)
        if n["node_kind"] == "MODULE"
    }
    assert modules == {"pkg", "pkg.core", "pkg.util", "tools.run"}
    quality = _rows(lake_root, "cpg_nodes_quality", sha)
    assert [(q["node_kind"], q["issue"]) for q in quality] == [("FILE", "extract_failed")]


def test_partitions_idempotence_and_stable_ids(git_repo, lake_root, factory):
    repo = git_repo()
    first = repo.commit(FILES)
    _build(repo.path, lake_root, factory, commit=first)
    before = _rows(lake_root, "cpg_nodes", first)
    _build(repo.path, lake_root, factory, commit=first)  # re-run: same rows, not doubled
    assert _rows(lake_root, "cpg_nodes", first) == before
    second = repo.commit(
        {"pkg/util.py": "def helper():\n    return 2\n\n\ndef more():\n    pass\n"}
    )
    result = _build(repo.path, lake_root, factory)
    assert result.commit == second
    assert _rows(lake_root, "cpg_nodes", first) == before  # first partition untouched
    after = _rows(lake_root, "cpg_nodes", second)
    core_ids = lambda rows: sorted(r["node_id"] for r in rows if r["path"] == "pkg/core.py")  # noqa: E731
    assert core_ids(after) == core_ids(before)
    assert "pkg.util.more" in {r["qualified_name"] for r in after}
    assert "pkg.util.more" not in {r["qualified_name"] for r in before}
    manifest = _rows(lake_root, "run_manifest", first)
    assert len(manifest) == 1 and manifest[0]["status"] == "success"


def test_outputs_match_their_contracts(git_repo, lake_root, factory):
    repo = git_repo()
    sha = repo.commit(FILES)
    result = _build(repo.path, lake_root, factory)
    for name in CPG_OUTPUTS:
        table = Lake(lake_root).read_partition(name, "fixture", sha)
        expected = OUTPUT_CONTRACTS[name].schema
        assert table.column_names == ["repo_id", "commit", *expected.names], name
        assert result.outputs[name].rows == table.num_rows
    props_map = Lake(lake_root).read_partition("cpg_props_map", "fixture", sha)
    props = Lake(lake_root).read_partition("cpg_props", "fixture", sha)
    assert sum(len(p) for p in props_map["props"].to_pylist()) == props.num_rows
    by_src = Lake(lake_root).read_partition("cpg_edges_by_src", "fixture", sha)
    assert pa.compute.sum(by_src["edge_count"]).as_py() == result.outputs["cpg_edges"].rows


def test_subset_builds_only_what_is_asked(git_repo, lake_root, factory):
    repo = git_repo()
    repo.commit(FILES)
    result = _build(repo.path, lake_root, factory, outputs=("extract_errors",))
    assert set(result.outputs) == {"extract_errors"}
    assert Lake(lake_root).table_names() == ["extract_errors"]


def test_driver_is_reused_for_the_same_plan_and_config(git_repo, lake_root):
    repo = git_repo()
    repo.commit(FILES)
    factory = DriverFactory()
    _build(repo.path, lake_root, factory, outputs=("extract_errors",))
    _build(repo.path, lake_root, factory, outputs=("normalize_outputs",))
    assert factory.builds == 1


def test_requests_that_cannot_run_fail_before_work(tmp_path, git_repo, lake_root, factory):
    repo = git_repo()
    repo.commit(FILES)
    with pytest.raises(RepositoryError):
        _build(tmp_path / "nowhere", lake_root, factory)
    with pytest.raises(RevisionError, match="no-such-branch"):
        _build(repo.path, lake_root, factory, commit="no-such-branch")
    with pytest.raises(ConfigError, match=r"execution_mode 'fast'.*serial, parallel"):
        _build(repo.path, lake_root, factory, execution_mode="fast")
    with pytest.raises(ConfigError, match="outputs \\['nodes'\\] are unknown"):
        _build(repo.path, lake_root, factory, outputs=("nodes",))
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LakeError, match="not writable"):
        _build(repo.path, str(blocker / "lake"), factory)
    assert not Path(lake_root).exists()


def test_repeated_names_keep_ids_unique(git_repo, lake_root, factory):
    repo = git_repo()
    sha = repo.commit(
        {
            "dup.py": (
                "class C:\n    def m(self):\n        pass\n\n    def m(self):\n        pass\n\n"
                "if True:\n    def f(): pass\nelse:\n    def f(): pass\n"
                "xs = [[y for y in x] for x in [[1]]]; ys = [y for y in xs]\n"
            )
        }
    )
    _build(repo.path, lake_root, factory)
    nodes = _rows(lake_root, "cpg_nodes", sha)
    assert len({n["node_id"] for n in nodes}) == len(nodes)
    assert _rows(lake_root, "cpg_nodes_quality", sha) == []
    scopes = [n for n in nodes if n["node_kind"] == "SCOPE"]
    assert sorted(n["name"] for n in scopes) == [
        "C",
        "f",
        "f",
        "listcomp",
        "listcomp",
        "listcomp",
        "m",
        "m",
        "top",
    ]
    assert all(s["bend"] > s["bstart"] for s in scopes)


def test_each_output_is_announced_once_it_is_committed(git_repo, lake_root, factory):
    """``on_output`` hears of every written output as soon as its Delta commit is done, while
    the build still runs, with the build it belongs to: the Dagster asset reports each
    materialization and runs its checks from it."""
    repo = git_repo()
    commit = repo.commit(FILES)
    seen: list[tuple[str, int]] = []
    told: list[OutputCommitted] = []

    def on_output(committed: OutputCommitted) -> None:
        # Committed already: the partition reads back with the rows the write reports.
        write = committed.write
        rows = Lake(lake_root).read_partition(write.name, "fixture", commit).num_rows
        seen.append((write.name, rows))
        told.append(committed)

    request = BuildRequest(repo_path=repo.path, lake_root=lake_root, repo_id="fixture")
    result = build_commit(request, factory=factory, on_output=on_output)
    assert {(c.run_id, c.plan_signature) for c in told} == {(result.run_id, result.plan_signature)}
    assert all(0 < c.elapsed_s < result.duration_s for c in told)
    written = {name: w.rows for name, w in result.outputs.items() if name != "run_manifest"}
    assert dict(seen) == written
    assert len(seen) == len(written)  # once each
    assert seen.index(("cpg_nodes", written["cpg_nodes"])) < len(seen) - 1  # not all at the end
