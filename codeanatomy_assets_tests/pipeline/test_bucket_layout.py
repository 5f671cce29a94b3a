"""A commit that changes a few files rewrites the map buckets they touch (adjacency and
properties) and links the others from the earlier partition, and computes the file-local rows
of the flat nodes, edges and properties for the changed files' groups only, linking the
other groups' files; every output is row for row that of a build from scratch."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from codeanatomy_assets.cpg.locality import LocalParts
from codeanatomy_assets.cpg.schemas import KIND_COLUMNS
from codeanatomy_assets.cpg.views import _NODE_COLUMNS, ViewSpec
from codeanatomy_assets.normalize.ids import bucket, file_code
from codeanatomy_assets.pipeline import bucket_layout, task_execution
from codeanatomy_assets.pipeline.driver_factory import DriverFactory
from codeanatomy_assets.plan import execution_plan
from codeanatomy_assets.storage import buckets, partition_files
from codeanatomy_assets.storage.buckets import (
    LOCAL_FOOTER_KEY,
    Fingerprint,
    bucket_group,
    feed_id,
    read_partials,
)
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets.storage.scratch import Scratch
from codeanatomy_assets_tests.git_fixture import GitRepo
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES
from codeanatomy_assets_tests.pipeline.lake_builds import (
    REPO,
    build,
    build_unrestricted,
    partition_rows,
)

MAPS = {"cpg_edges_by_src": "node_id", "cpg_edges_by_dst": "node_id", "cpg_props_map": "entity_id"}
# Flat outputs whose file-local rows are filed by group (``pipeline.local_layout``), by id column.
FLAT = {"cpg_nodes": "node_id", "cpg_edges": "edge_id", "cpg_props": "entity_id"}
# Enough modules that a change leaves most buckets alone.
MODULES = {f"lib/m{i:02d}.py": f"def f{i}(x):\n    return x + {i}\n" for i in range(40)}


def _neighbour(path: str) -> str:
    """A module in another bucket of ``path``'s group: a change of ``path`` carries it over."""
    mine = bucket(path, "")
    return next(
        p
        for p in (f"lib/n{i}.py" for i in range(10_000))
        if bucket(p, "") != mine and bucket_group(bucket(p, "")) == bucket_group(mine)
    )


MODULES[_neighbour("lib/m03.py")] = "def g(x):\n    return -x\n"


@pytest.fixture(scope="module")
def factory() -> DriverFactory:
    return DriverFactory()


def _layouts(lake: Lake, commit: str) -> dict[str, dict]:
    events = lake.read_partition("pipeline_events", REPO, commit).to_pylist()
    return {
        (d := json.loads(e["detail_json"]))["output"]: d
        for e in events
        if e["event"] == "bucket_layout"
    }


def test_a_small_change_rewrites_its_buckets_and_links_the_rest(
    git_repo, tmp_path, factory, monkeypatch
):
    repo = git_repo()
    first = repo.commit({**FILES, **MODULES})
    second = repo.commit(
        {
            "lib/m03.py": "import os\n\n\ndef f3(x):\n    return os.sep + x\n",  # spans move
            "lib/m07.py": None,  # deleted
            "lib/new.py": "from lib.m05 import f5\n\nY = f5(1)\n",
        }
    )
    incremental, scratch = str(tmp_path / "incremental"), str(tmp_path / "scratch")
    build(repo.path, incremental, factory, first)
    spilled, write = [], Scratch.write

    def recorded(self, name, schema, batches):
        spilled.append(name)
        return write(self, name, schema, batches)

    monkeypatch.setattr(Scratch, "write", recorded)
    # Rows per kind come from the files' footers, the linked ones' included: no scan.
    monkeypatch.setattr(Lake, "value_counts", _no_scan)
    result = build(repo.path, incremental, factory, second)
    monkeypatch.undo()
    build(repo.path, scratch, factory, second)
    # A per-file table read restricted to some files is spilled once per set of files, not
    # once per session: ``ast_node_ids`` for the per-file views downstream (the changed
    # files) and for the flat outputs (the changed file codes' files: the same ones here;
    # 7 spills without the cache).
    assert spilled.count("ast_node_ids-restricted") == 1
    lake, fresh = Lake(incremental), Lake(scratch)

    for name in [*MAPS, *FLAT]:
        assert partition_rows(lake, name, second) == partition_rows(fresh, name, second), name
    for name, column in KIND_COLUMNS.items():
        counts = lake.value_counts(name, column, REPO, second)
        assert (
            result.outputs[name].counts_by_kind
            == counts
            == fresh.value_counts(name, column, REPO, second)
        ), name
    # The edited file's own nodes keep their ids (its spans moved); its function does not.
    ids = {c: _node_ids(lake, c, "lib/m03.py") for c in (first, second)}
    for kind in ("FILE", "MODULE", "SCOPE", "SYMBOL"):
        assert ids[first][kind] & ids[second][kind], kind
    # Of the two scopes, the module's stays and the function's (its span moved) does not.
    assert len(ids[first]["SCOPE"] & ids[second]["SCOPE"]) == 1 == len(ids[second]["SCOPE"]) - 1
    assert not ids[first]["FUNCTION"] & ids[second]["FUNCTION"]
    first_layouts, layouts = _layouts(lake, first), _layouts(lake, second)
    codes = {file_code(p, "") for p in ("lib/m03.py", "lib/m07.py", "lib/new.py")}
    changed = {c[:2] for c in codes}
    now = {*FILES, *MODULES, "lib/new.py"} - {"lib/m07.py"}
    carried = _carried_rows(lake, second)
    # The first build had nothing to link: every bucket was written.
    assert {n: (d["linked"], d["rewritten"]) for n, d in first_layouts.items()} == {
        n: (0, None) for n in [*MAPS, *FLAT, "cpg_nodes_quality"]
    }
    for name in FLAT:
        files = lake.partition_files(name, REPO, second)
        earlier = {p.stat().st_ino for p in lake.partition_files(name, REPO, first)}
        linked = [p for p in files if p.stat().st_ino in earlier]
        assert layouts[name]["linked"] == len(linked) > layouts[name]["rewritten"] >= 1, name
        # Only the changed files (those of the changed paths' file codes) were computed,
        # not all 45; the rest of their groups' rows were carried over from the earlier files.
        assert layouts[name]["codes_computed"] == len(codes) == 3, name
        assert layouts[name]["files_computed"] == sum(file_code(p, "") in codes for p in now)
        assert layouts[name]["files_computed"] == 2, name  # m07.py is gone
        # 2 of 45 files: few enough for two flat writes at once (``pipeline.node_threads``);
        # the first build computed all of them.
        assert layouts[name]["few_files"] and not first_layouts[name]["few_files"], name
        # A rewritten group is carried over from its earlier file, if it had one: its rows
        # of the file codes not computed, exactly.
        before = {_group(p): p for p in lake.partition_files(name, REPO, first)}
        rewritten = {bucket_group(b) for b in changed}
        assert layouts[name]["rewritten"] == len(rewritten), name
        assert layouts[name]["files_carried"] == len(rewritten & before.keys()) >= 1, name
        kept = [i for g in rewritten & before.keys() for i in _ids(before[g], FLAT[name])]
        assert carried[name] == sum(i[:4] not in codes for i in kept) > 0, name
        # A group's file holds the ids of one group (their first character).
        groups = [{r[:1] for r in _ids(p, FLAT[name])} for p in files if "local" in _footer(p)]
        assert len(groups) >= len(linked) and all(len(g) == 1 for g in groups), name
    for name in MAPS:
        files = lake.partition_files(name, REPO, second)
        earlier = {p.stat().st_ino for p in lake.partition_files(name, REPO, first)}
        linked = [p for p in files if p.stat().st_ino in earlier]
        assert layouts[name]["linked"] == len(linked) > layouts[name]["rewritten"] >= 1, name
        # The source's group files were summed from their footers, not scanned.
        source = "cpg_props" if name == "cpg_props_map" else "cpg_edges"
        scanned = layouts[name]["files_scanned"]
        assert 1 <= scanned < len(lake.partition_files(source, REPO, second)) - 10, name
        # One file per bucket, named by the first two characters of every id in it.
        buckets = [{r[:2] for r in _ids(p, MAPS[name])} for p in files]
        assert all(len(b) == 1 for b in buckets) and len({b.pop() for b in buckets}) == len(files)


def _no_scan(*args: object, **kwargs: object) -> None:
    raise AssertionError("a partition was scanned for its rows per kind")


def _carried_rows(lake: Lake, commit: str) -> dict[str, int]:
    """Per output, the rows its ``view_part`` events say were carried over."""
    events = lake.read_partition("pipeline_events", REPO, commit).to_pylist()
    found: dict[str, int] = {}
    for e in events:
        if e["event"] == "view_part" and json.loads(e["detail_json"]).get("carried"):
            found[e["task_name"]] = found.get(e["task_name"], 0) + e["rows"]
    return found


def _node_ids(lake: Lake, commit: str, path: str) -> dict[str, set[str]]:
    nodes = lake.read_partition("cpg_nodes", REPO, commit).to_pylist()
    found: dict[str, set[str]] = {}
    for n in nodes:
        if n["path"] == path:
            found.setdefault(n["node_kind"], set()).add(n["node_id"])
    return found


def _ids(path: Path, column: str) -> list[str]:
    return pq.read_table(path, columns=[column]).column(column).to_pylist()


def _footer(path: Path) -> str:
    return " ".join(k.decode() for k in (pq.read_metadata(path).metadata or {}))


def _group(path: Path) -> str | None:
    """The group a file-local rows' file holds (its footer says), None for another file."""
    raw = (pq.read_metadata(path).metadata or {}).get(LOCAL_FOOTER_KEY)
    return None if raw is None else str(json.loads(raw)["bucket"])


def test_a_re_materialization_and_an_unchanged_graph_stay_exact(git_repo, tmp_path, factory):
    repo = git_repo()
    first = repo.commit({**FILES, **MODULES})
    same = repo.commit({"README.md": "# docs\n"})
    root = str(tmp_path / "lake")
    build(repo.path, root, factory, first)
    # Not the partition reuse (opted out): the maps are built, and every bucket is linked.
    build(repo.path, root, factory, same, reuse_partitions=False)
    lake = Lake(root)
    for name, layout in _layouts(lake, same).items():
        # No duplicate ids, no group file of the quality table to link.
        assert layout["rewritten"] == 0, name
        assert layout["linked"] > 0 or name == "cpg_nodes_quality", name
        assert partition_rows(lake, name, same) == partition_rows(lake, name, first)
    # Building the first commit again links from the newest other partition, and stays exact.
    before = {name: partition_rows(lake, name, first) for name in [*MAPS, *FLAT]}
    build(repo.path, root, factory, first)
    for name in [*MAPS, *FLAT]:
        assert partition_rows(lake, name, first) == before[name]


def test_a_map_written_whole_is_sorted_group_by_group(git_repo, tmp_path, factory, monkeypatch):
    repo = git_repo()
    # Reads of builtins: edges to external nodes, whose buckets are not their file's.
    builtins = "def h(x):\n    return len(x) + abs(x) + max(x) + min(x) + sum(x) + hash(x)\n"
    first = repo.commit({**FILES, **MODULES, "lib/builtins_used.py": builtins})
    second = repo.commit(
        {"lib/m05.py": "def f5(x):\n    return x + 5\n\n\ndef g(y):\n    return f5(y)\n"}
    )
    grouped, whole = str(tmp_path / "grouped"), str(tmp_path / "whole")
    for commit in (first, second):
        build(repo.path, grouped, factory, commit)
    monkeypatch.setattr(bucket_layout, "_groups", lambda *args: None)  # one sort of all
    for commit in (first, second):
        build(repo.path, whole, factory, commit)
    lake = Lake(grouped)
    for commit in (first, second):
        for name, key in MAPS.items():
            # Bucket by bucket, row for row and in order, what one sort of everything gave.
            assert _buckets(lake, name, commit, key) == _buckets(Lake(whole), name, commit, key)
    # One sort per group of buckets (the fixture's ids fall in most of the 16).
    assert all(len(set(groups)) == len(groups) > 8 for groups in _map_parts(lake, first).values())
    assert all(groups == [None] for groups in _map_parts(Lake(whole), first).values())
    # Some group files hold edges whose destination is of another group: those rows were
    # held in memory and sorted with their destination's group, not their file's.
    edges = lake.partition_files("cpg_edges", REPO, first)
    partials, _ = read_partials(edges, feed_id("dst_node_id", ("edge_id",)))
    assert any(len({b[:1] for b in found}) > 1 for found in partials.values())
    # A commit that links buckets sorts those it rewrites in one query.
    layouts, parts = _layouts(lake, second), _map_parts(lake, second)
    for name in MAPS:
        assert parts[name] == [None] and 1 <= layouts[name]["rewritten"] < 8, name


def test_a_map_is_sorted_group_by_group_when_few_rows_fall_outside_their_files_group():
    def rows(**buckets: int) -> dict[str, Fingerprint]:
        return {b.removeprefix("b"): Fingerprint(n, 0, 0) for b, n in buckets.items()}

    a, b = Path("a"), Path("b")
    own = {a: rows(b00=10, b0f=5), b: rows(b1c=9)}
    assert bucket_layout._groups(own, 0) == ({"0": (a,), "1": (b,)}, {})
    # A file's own group is the one most of its rows fall in; its others are held.
    mixed = {a: rows(b00=10, b13=2), b: rows(b1c=9)}
    assert bucket_layout._groups(mixed, 0) == ({"0": (a,), "1": (b,)}, {a: "0"})
    # Held rows (of no group, or of other groups) past a quarter of all: one sort instead.
    assert bucket_layout._groups(own, 8) is not None and bucket_layout._groups(own, 9) is None
    spread = {Path(g): rows(**{f"b{h}0": 1 for h in "0123456789abcdef"}) for g in "0123"}
    assert bucket_layout._groups(spread, 0) is None
    assert bucket_layout._groups({}, 0) is None


def _buckets(lake: Lake, name: str, commit: str, key: str) -> dict[str, list[dict]]:
    """A map's rows by bucket file, in file order; each file's keys strictly increase."""
    found = {}
    for path in lake.partition_files(name, REPO, commit):
        rows = pq.read_table(path).to_pylist()
        keys = [r[key] for r in rows]
        assert keys == sorted(set(keys)), path
        found[keys[0][:2]] = rows
    return found


def _map_parts(lake: Lake, commit: str) -> dict[str, list[str | None]]:
    """Each map's sorts in a build: the group each one read (None: the whole source)."""
    events = lake.read_partition("pipeline_events", REPO, commit).to_pylist()
    parts: dict[str, list[str | None]] = {name: [] for name in MAPS}
    for e in events:
        if e["event"] == "view_part" and e["task_name"] in MAPS:
            parts[e["task_name"]].append(json.loads(e["detail_json"]).get("group"))
    return parts


def test_a_branch_links_from_its_own_ancestor_not_the_newest_build(git_repo, tmp_path, factory):
    repo = git_repo()
    base = repo.commit({**FILES, **MODULES})
    main = repo.commit({f"lib/m{i:02d}.py": f"V = {i}\n" for i in range(20)})  # far from base
    repo.git("checkout", "-q", "-b", "topic", base)
    topic = repo.commit({"lib/m01.py": "def f1(x):\n    return x - 1\n"})
    root = str(tmp_path / "lake")
    for commit in (base, main, topic):  # main is the newest build when topic's runs
        build(repo.path, root, factory, commit)
    lake = Lake(root)
    layouts = _layouts(lake, topic)
    assert {d["base_commit"] for d in layouts.values()} == {base}
    assert {d["base_commit"] for d in _layouts(lake, main).values()} == {base}


def _one_module_changed(git_repo) -> tuple[GitRepo, str, str]:
    """A repository of ``FILES`` and ``MODULES``, and its first and second commits (the second
    changes one module)."""
    repo = git_repo()
    first = repo.commit({**FILES, **MODULES})
    second = repo.commit({"lib/m02.py": "def f2(x):\n    return x * 2\n"})
    return repo, first, second


def test_an_earlier_file_gone_from_disk_means_writing_every_bucket(git_repo, tmp_path, factory):
    repo, first, second = _one_module_changed(git_repo)
    root, scratch = str(tmp_path / "lake"), str(tmp_path / "scratch")
    build(repo.path, root, factory, first)
    lake = Lake(root)
    lake.partition_files("cpg_edges_by_src", REPO, first)[0].unlink()  # a vacuum, half-way
    build(repo.path, root, factory, second)
    build(repo.path, scratch, factory, second)
    layouts = _layouts(lake, second)
    assert (layouts["cpg_edges_by_src"]["linked"], layouts["cpg_edges_by_src"]["rewritten"]) == (
        0, None)  # fmt: skip
    assert layouts["cpg_edges_by_dst"]["linked"] > 0  # the other maps still link
    for name in MAPS:
        assert partition_rows(lake, name, second) == partition_rows(Lake(scratch), name, second), (
            name
        )


def test_a_carried_file_gone_before_it_is_read_means_computing_every_file(
    git_repo, tmp_path, factory, monkeypatch, caplog
):
    """An earlier group file whose rows were to be carried over, removed after the layout
    was planned (a vacuum): nothing is committed, and every file's rows are computed."""
    repo, first, second = _one_module_changed(git_repo)
    root, scratch = str(tmp_path / "lake"), str(tmp_path / "scratch")
    build(repo.path, root, factory, first)
    real, removed = task_execution.carried_rows, []

    def vanishing(ctx, layout, schema):
        rows = real(ctx, layout, schema)
        if layout.carry and "/cpg_edges/" in str(layout.carry[0]):
            for path in layout.carry:
                removed.append(path)
                path.unlink()
        return rows

    monkeypatch.setattr(task_execution, "carried_rows", vanishing)
    build(repo.path, root, factory, second)
    monkeypatch.undo()
    build(repo.path, scratch, factory, second)
    lake = Lake(root)
    assert removed and "an earlier file went away before it was read" in caplog.text
    layouts = _layouts(lake, second)
    assert (layouts["cpg_edges"]["linked"], layouts["cpg_edges"]["rewritten"]) == (0, None)
    assert layouts["cpg_props"]["files_carried"] > 0  # the others still carry rows over
    for name in FLAT:
        assert partition_rows(lake, name, second) == partition_rows(Lake(scratch), name, second), (
            name
        )


def test_a_link_that_fails_half_way_commits_nothing_and_writes_every_bucket(
    git_repo, tmp_path, factory, monkeypatch, caplog
):
    repo, first, second = _one_module_changed(git_repo)
    root, scratch = str(tmp_path / "lake"), str(tmp_path / "scratch")
    build(repo.path, root, factory, first)
    real, calls = partition_files.link_or_copy, []

    def vanishing(source: Path, target: Path) -> None:
        """The third bucket file of by_src to link was removed after its footer was read (a
        retention run); every other link (the evidence cache's too) happens."""
        if "cpg_edges_by_src" in source.parts:
            calls.append(source)
            if len(calls) == 3:
                raise FileNotFoundError(2, "No such file or directory", str(source))
        real(source, target)

    monkeypatch.setattr(partition_files, "link_or_copy", vanishing)
    build(repo.path, root, factory, second)
    monkeypatch.setattr(partition_files, "link_or_copy", real)
    build(repo.path, scratch, factory, second)
    lake = Lake(root)
    assert "writing every bucket instead" in caplog.text and len(calls) == 3
    layout = _layouts(lake, second)["cpg_edges_by_src"]
    assert (layout["linked"], layout["rewritten"]) == (0, None)
    for name in MAPS:
        assert partition_rows(lake, name, second) == partition_rows(Lake(scratch), name, second), (
            name
        )
    # Only the committed files are in the partition's directory: none left from the failed try.
    for name in MAPS:
        listed = set(lake.partition_files(name, REPO, second))
        on_disk = set(
            (Path(lake.table_uri(name)) / f"repo_id={REPO}" / f"commit={second}").glob("*.parquet")
        )
        assert on_disk == listed, name


def _every_file_recomputed(
    repo: GitRepo, root: str, scratch: str, factory: DriverFactory, commit: str
) -> None:
    """``commit``'s flat outputs in the lake at ``root`` linked nothing and computed every
    file's rows, which equal those of a build of ``commit`` from scratch (made at ``scratch``)."""
    build(repo.path, scratch, factory, commit)
    lake = Lake(root)
    layouts = _layouts(lake, commit)
    for name in FLAT:
        assert (layouts[name]["linked"], layouts[name]["rewritten"]) == (0, None), name
        assert partition_rows(lake, name, commit) == partition_rows(Lake(scratch), name, commit), (
            name
        )


def test_a_new_package_layout_recomputes_every_files_rows(git_repo, tmp_path, factory):
    """Qualified names follow the package layout: with a new ``__init__.py`` no earlier
    file-local row is taken, though the other modules' files did not change."""
    repo = git_repo()
    first = repo.commit({**FILES, **MODULES})
    second = repo.commit({"lib/__init__.py": ""})
    root = str(tmp_path / "lake")
    build(repo.path, root, factory, first)
    build(repo.path, root, factory, second)
    _every_file_recomputed(repo, root, str(tmp_path / "scratch"), factory, second)


def test_group_files_of_another_count_of_groups_are_neither_linked_nor_carried(
    git_repo, tmp_path, factory, monkeypatch
):
    """A lake written when rows were filed in 64 groups: a group is named by its number, so
    its files hold other buckets than the groups of the same names now; the next commit
    computes every file's rows, and they are those of a build from scratch."""
    repo = git_repo()
    first = repo.commit({**FILES, **MODULES})
    second = repo.commit({"lib/m03.py": "def f3(x):\n    return x * 3\n"})
    root = str(tmp_path / "lake")
    with monkeypatch.context() as m:
        m.setattr(buckets, "_GROUP_SHIFT", 2)
        m.setattr(buckets, "LOCAL_GROUPS", 64)
        build(repo.path, root, factory, first)
    build(repo.path, root, factory, second)
    _every_file_recomputed(repo, root, str(tmp_path / "scratch"), factory, second)


def test_rows_outside_the_changed_groups_mean_computing_every_file(
    git_repo, tmp_path, factory, monkeypatch, caplog
):
    """The guard on file-locality: if a file-local part read every file (here its tables are
    left unrestricted), its rows of other buckets stop the write, and the output is written
    whole."""
    root, scratch = str(tmp_path / "lake"), str(tmp_path / "scratch")
    second = build_unrestricted(
        git_repo(), {**FILES, **MODULES}, root, scratch, factory, monkeypatch
    )
    lake = Lake(root)
    assert "whose files this build did not compute" in caplog.text
    layouts = _layouts(lake, second)
    for name in FLAT:
        assert (layouts[name]["linked"], layouts[name]["rewritten"]) == (0, None), name
        assert partition_rows(lake, name, second) == partition_rows(Lake(scratch), name, second), (
            name
        )


def _with_twice(views: tuple[ViewSpec, ...], files: str, packages: str) -> tuple[ViewSpec, ...]:
    """The views with ``cpg_nodes``' parts whose SQL holds ``files`` and ``packages`` each
    twice (the first file-local, the second not): every file and package id repeated, the
    files' second rows with their span backwards (``bstart`` and ``bend`` swapped)."""
    out = []
    for v in views:
        if v.name == "cpg_nodes":
            assert v.local is not None
            (f,) = [i for i, p in enumerate(v.parts) if files in p]
            (p,) = [i for i, p in enumerate(v.parts) if packages in p]
            swapped = _NODE_COLUMNS.replace("bstart, bend", "bend AS bstart, bstart AS bend")
            parts = (*v.parts, f"SELECT {swapped} FROM ({v.parts[f]}) w", v.parts[p])
            local = LocalParts(v.local.key, v.local.indices | {len(v.parts)})
            v = replace(v, sql="\nUNION ALL\n".join(parts), parts=parts, local=local)
        out.append(v)
    return tuple(out)


def test_duplicate_ids_of_unchanged_files_are_linked_and_the_others_recomputed(
    git_repo, tmp_path, monkeypatch
):
    """The quality table's duplicate ids: file-local ones per group of files (a commit
    recomputes the groups it changed and links the others), the others whole."""
    real = execution_plan.view_specs
    monkeypatch.setattr(
        execution_plan,
        "view_specs",
        lambda repo_id: _with_twice(real(repo_id), "FROM file_ids", "FROM package_ids"),
    )
    factory = DriverFactory()
    repo = git_repo()
    first = repo.commit({**FILES, **MODULES})
    second = repo.commit({"lib/m02.py": "def f2(x):\n    return x * 2\n", "lib/m07.py": None})
    root, scratch = str(tmp_path / "lake"), str(tmp_path / "scratch")
    build(repo.path, root, factory, first)
    build(repo.path, root, factory, second)
    build(repo.path, scratch, factory, second)
    lake = Lake(root)
    quality = lake.read_partition("cpg_nodes_quality", REPO, second).to_pylist()
    nodes = lake.read_partition("cpg_nodes", REPO, second).to_pylist()
    repeated = {n["node_id"] for n in nodes if n["node_kind"] in ("FILE", "PACKAGE")}
    found = [(q["entity_id"], q["detail"]) for q in quality if q["issue"] == "duplicate_id"]
    assert sorted(found) == sorted((i, "2 rows share this id") for i in repeated)
    # A check of one row (here the files' backward spans) is file-local too.
    backward = {n["node_id"] for n in nodes if n["node_kind"] == "FILE" and n["bend"] < n["bstart"]}
    assert (
        backward and {q["entity_id"] for q in quality if q["issue"] == "invalid_span"} == backward
    )
    layout = _layouts(lake, second)["cpg_nodes_quality"]
    assert layout["linked"] > layout["rewritten"] >= 1 and layout["files_computed"] < 30
    assert layout["files_carried"] >= 1
    assert partition_rows(lake, "cpg_nodes_quality", second) == partition_rows(
        Lake(scratch), "cpg_nodes_quality", second
    )
