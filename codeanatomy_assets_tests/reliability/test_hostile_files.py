"""Hostile files in one repository build to completion: each bad file is an error row naming
the file, the extractor and the cause; every parseable file is complete; nothing crashes."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from codeanatomy_assets.extract.ast_extract import module_name_for
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.git_fixture import GitRepo
from codeanatomy_assets_tests.reliability.hostile import HOSTILE, TOO_LARGE_PATH, Complete, Fails

_MAX_FILE_BYTES = 3_500_000


@pytest.mark.slow
def test_hostile_repository_builds_to_completion(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "hostile")
    files: dict[str, str | bytes | None] = {path: content for path, (content, _) in HOSTILE.items()}
    files[TOO_LARGE_PATH] = b"# padding\n" * (_MAX_FILE_BYTES // 10 + 1)
    # Enough ordinary files for several chunks, so the process pool really runs.
    files.update({f"ordinary/mod_{i}.py": f"def f{i}():\n    return {i}\n" for i in range(60)})
    sha = repo.commit(files)
    lake_root = str(tmp_path / "lake")
    result = build_commit(
        BuildRequest(
            repo_path=repo.path,
            lake_root=lake_root,
            repo_id="hostile",
            execution_mode="parallel",
            workers=2,
            max_file_bytes=_MAX_FILE_BYTES,
            use_cache=False,
        )
    )
    assert result.status == "success"
    lake = Lake(lake_root)
    errors = lake.read_partition("extract_errors", "hostile", sha).to_pylist()
    nodes = lake.read_partition("cpg_nodes", "hostile", sha).to_pylist()
    errors_by_path: dict[str, list[dict]] = defaultdict(list)
    for e in errors:
        errors_by_path[e["path"]].append(e)
    modules = {n["path"] for n in nodes if n["node_kind"] == "MODULE"}
    file_nodes = {n["path"] for n in nodes if n["node_kind"] == "FILE"}
    definitions: dict[str, set[str]] = defaultdict(set)
    for n in nodes:
        if n["node_kind"] in ("CLASS", "FUNCTION"):
            definitions[n["path"]].add(n["qualified_name"])

    outcomes: dict[str, str] = {}
    for path, (_, expected) in HOSTILE.items():
        assert path in file_nodes, path  # every file is in the graph, parsed or not
        rows = errors_by_path.get(path, [])
        if isinstance(expected, Fails):
            assert [(r["extractor"], r["path"]) for r in rows] == [(expected.extractor, path)]
            (row,) = rows
            assert row["error_kind"] in expected.kinds, (path, row)
            assert row["message"], path  # the cause is named
            assert expected.message in row["message"], (path, row["message"])
            assert path not in modules, path
            outcomes[path] = f"error row {row['extractor']}/{row['error_kind']}"
        else:
            assert isinstance(expected, Complete)
            assert sorted((r["extractor"], r["error_kind"]) for r in rows) == sorted(
                expected.errors
            ), (path, rows)
            assert path in modules, path
            module = next(n for n in nodes if n["node_kind"] == "MODULE" and n["path"] == path)
            assert module["qualified_name"] == module_name_for(path)
            assert definitions.get(path, set()) == set(expected.definitions), path
            outcomes[path] = "complete"
    (large,) = errors_by_path[TOO_LARGE_PATH]
    assert (large["extractor"], large["error_kind"]) == ("scan", "too_large")
    assert str(_MAX_FILE_BYTES) in large["message"]
    for i in range(60):
        assert definitions[f"ordinary/mod_{i}.py"] == {f"ordinary.mod_{i}.f{i}"}
    assert set(errors_by_path) <= {*HOSTILE, TOO_LARGE_PATH}
    print("\n".join(f"{path!r:42} {outcome}" for path, outcome in sorted(outcomes.items())))
