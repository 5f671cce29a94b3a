"""Nothing outside the tree: links are recorded and never followed, submodules are recorded
and never entered, and repository code is never imported or executed (CLI and Dagster)."""

from __future__ import annotations

from pathlib import Path

import pytest

from codeanatomy_assets.assets import materialize_partition
from codeanatomy_assets.pipeline.execution import build_commit
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.git_fixture import GitRepo, Symlink
from codeanatomy_assets_tests.reliability.lake_contents import all_text

_OUTSIDE_SECRET = "OUTSIDE_SECRET_7f3a"
_SUBMODULE_SECRET = "SUBMODULE_SECRET_91cc"


def _passwd_line() -> str:
    first = Path("/etc/passwd").read_text().splitlines()[0]
    assert first.startswith("root:")
    return first


def _executing_files(marker: Path) -> dict[str, str | bytes | Symlink | None]:
    """Files that write ``marker`` (or its siblings) when imported or executed."""
    write = f"import pathlib\npathlib.Path({str(marker)!r} + {{}}).write_text('ran')\n"
    return {
        "evil.py": write.format("'.evil'") + "def harmless():\n    pass\n",
        "pkg/__init__.py": write.format("'.init'"),
        "setup.py": write.format("'.setup'"),
        "conftest.py": write.format("'.conftest'"),
        "sitecustomize.py": write.format("'.site'"),
        "pkg/__main__.py": write.format("'.main'"),
    }


def _markers(marker: Path) -> list[Path]:
    return sorted(marker.parent.glob(marker.name + "*"))


def test_links_and_submodules_are_recorded_never_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text(f"SECRET = {_OUTSIDE_SECRET!r}\n")
    lib = GitRepo.init(tmp_path / "lib")
    lib.commit({"lib.py": f"SECRET = {_SUBMODULE_SECRET!r}\n"})
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit({"ok.py": "def ok():\n    pass\n"})
    repo.git(
        "-c", "protocol.file.allow=always", "submodule", "-q", "add", str(lib.path), "vendor/lib"
    )
    links = {
        "passwd.py": Symlink("/etc/passwd"),
        "etc": Symlink("/etc"),
        "loop_a.py": Symlink("loop_b.py"),
        "loop_b.py": Symlink("loop_a.py"),
        "dangling.py": Symlink("/nonexistent/nowhere.py"),
        "up.py": Symlink("../outside.py"),
        "pkg/lib_link": Symlink("../vendor/lib"),
    }
    sha = repo.commit(links)
    lake_root = str(tmp_path / "lake")
    result = build_commit(
        BuildRequest(
            repo_path=repo.path,
            lake_root=lake_root,
            repo_id="links",
            workers=2,
            execution_mode="parallel",
        )
    )
    assert result.status == "success"
    errors = Lake(lake_root).read_partition("extract_errors", "links", sha).to_pylist()
    skipped = {(e["path"], e["extractor"], e["error_kind"]) for e in errors}
    assert skipped == {
        *((path, "scan", "symlink") for path in links),
        ("vendor/lib", "scan", "submodule"),
    }
    nodes = Lake(lake_root).read_partition("cpg_nodes", "links", sha).to_pylist()
    assert {n["qualified_name"] for n in nodes if n["node_kind"] == "MODULE"} == {"ok"}
    text = all_text(lake_root)
    assert "ok.ok" in text  # the search does see real content
    for leaked in (_passwd_line(), "root:x:0:0", _OUTSIDE_SECRET, _SUBMODULE_SECRET):
        assert leaked not in text, leaked


def test_repository_code_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    repo = GitRepo.init(tmp_path / "repo")
    sha = repo.commit(_executing_files(marker))
    lake_root = str(tmp_path / "lake")
    for mode in ("serial", "parallel"):
        build_commit(
            BuildRequest(
                repo_path=repo.path,
                lake_root=lake_root,
                repo_id="evil",
                execution_mode=mode,
                workers=2,
                use_cache=False,
            )
        )
    assert _markers(marker) == []
    nodes = Lake(lake_root).read_partition("cpg_nodes", "evil", sha).to_pylist()
    assert "evil.harmless" in {n["qualified_name"] for n in nodes}


@pytest.mark.slow
def test_repository_code_is_never_executed_through_dagster(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit(_executing_files(marker))
    result = materialize_partition(repo.path, repo_id="evil", lake_root=str(tmp_path / "lake"))
    assert result.success
    assert _markers(marker) == []
