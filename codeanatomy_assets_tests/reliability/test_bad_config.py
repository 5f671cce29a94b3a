"""Bad configuration fails before any work, naming the key and what is allowed: through the
CLI (exit code 2 and the reason on stderr) and through Dagster (the run's event log)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from codeanatomy_assets.cli import main
from codeanatomy_assets.definitions import defs
from codeanatomy_assets.resources import LakeResource, WatchedRepo, WatchedReposResource
from codeanatomy_assets_tests.git_fixture import GitRepo


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    repo = GitRepo.init(tmp_path / "repo")
    repo.commit({"a.py": "def f():\n    pass\n"})
    return repo


def _blocked_lake(tmp_path: Path) -> str:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the lake's parent should be")
    return str(blocker / "lake")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--mode", "turbo"], "execution_mode 'turbo' is not allowed: use one of serial, parallel"),
        (["--workers", "0"], "workers 0 is not allowed: use an integer >= 1"),
        (["--file-timeout", "-1"], "file_timeout_s -1.0 is not allowed: use seconds > 0"),
        (["--repo-id", "Bad Id"], "repo_id 'Bad Id' is invalid: allowed are 1-64 characters"),
        (["--commit", "no-such-rev"], "unknown revision 'no-such-rev'"),
        (["--max-file-bytes", "0"], "max_file_bytes must be a positive number of bytes"),
    ],
)
def test_cli_refuses_bad_options_before_any_work(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    lake_root = tmp_path / "lake"
    assert main(["build", str(repo.path), "--lake", str(lake_root), *args]) == 2
    assert message in capsys.readouterr().err
    assert not lake_root.exists()  # refused before the lake was even created


def test_cli_materialize_refuses_an_unknown_log_level(
    repo: GitRepo, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lake_root = tmp_path / "lake"
    args = ["materialize", str(repo.path), "--lake", str(lake_root), "--log-level", "loud"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "log_level 'LOUD' is unknown: allowed are DEBUG, INFO, WARNING, ERROR, CRITICAL" in err
    assert not lake_root.exists()


def test_cli_refuses_an_unusable_scratch_directory(
    repo: GitRepo,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CODEANATOMY_SCRATCH_DIR", _blocked_lake(tmp_path))
    assert main(["build", str(repo.path), "--lake", str(tmp_path / "lake"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "CODEANATOMY_SCRATCH_DIR=" in err and "is not usable" in err, err
    assert "writable local directory" in err


def test_cli_refuses_an_unwritable_lake(repo: GitRepo, tmp_path: Path) -> None:
    """As a user runs it: a real process, its exit code and stderr."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "codeanatomy_assets.cli",
            "build",
            str(repo.path),
            "--lake",
            _blocked_lake(tmp_path),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "codeanatomy: error: lake root" in done.stderr and "is not writable" in done.stderr
    assert "Traceback" not in done.stderr


def _run(key: str, tmp_path: Path, **kwargs: object) -> dg.ExecuteInProcessResult:
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("commits", [key])
        return defs.resolve_job_def("cpg_job").execute_in_process(
            instance=instance, partition_key=key, raise_on_error=False, **kwargs
        )


def _errors(result: dg.ExecuteInProcessResult) -> str:
    """Every error (and its causes) the run's event log holds, as text."""
    texts = []
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            texts.append(error.message)
            error = error.cause
    return "\n".join(texts)


def _steps_started(result: dg.ExecuteInProcessResult) -> int:
    return sum(1 for e in result.all_events if e.event_type_value == "STEP_START")


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("not-a-key", "partition key 'not-a-key' is malformed: missing '@'; expected "
         "<repo_id>@<40-hex lowercase commit sha>"),
        ("Bad Id@" + "a" * 40, "repo_id 'Bad Id' is invalid: allowed are 1-64 characters"),
        ("ok@ABC", "commit 'ABC' is invalid: allowed is a full 40-hex lowercase sha"),
    ],
)  # fmt: skip
def test_dagster_malformed_partition_key_names_it(tmp_path: Path, key: str, message: str) -> None:
    result = _run(key, tmp_path, resources={"lake": LakeResource(root=str(tmp_path / "lake"))})
    assert not result.success
    assert message in _errors(result)
    assert not (tmp_path / "lake").exists()


def test_dagster_unknown_repository_id_names_the_configured_ones(
    repo: GitRepo, tmp_path: Path
) -> None:
    watched = WatchedReposResource(repos={"other": WatchedRepo(path=str(repo.path))})
    result = _run(
        f"ghost@{repo.head()}",
        tmp_path,
        resources={"lake": LakeResource(root=str(tmp_path / "lake")), "watched_repos": watched},
    )
    assert not result.success
    assert "repo_id 'ghost' is not a watched repository (configured: other)" in _errors(result)
    assert not (tmp_path / "lake").exists()


def test_dagster_unknown_execution_mode_fails_at_resource_init(tmp_path: Path) -> None:
    result = _run(
        "r@" + "b" * 40,
        tmp_path,
        run_config={"resources": {"execution": {"config": {"execution_mode": "gpu"}}}},
    )
    assert not result.success
    assert _steps_started(result) == 0  # nothing ran
    assert "execution_mode 'gpu' is not allowed: use one of serial, parallel" in _errors(result)


def test_dagster_unwritable_lake_fails_before_work(repo: GitRepo, tmp_path: Path) -> None:
    watched = WatchedReposResource(repos={"r": WatchedRepo(path=str(repo.path))})
    result = _run(
        f"r@{repo.head()}",
        tmp_path,
        resources={"lake": LakeResource(root=_blocked_lake(tmp_path)), "watched_repos": watched},
    )
    assert not result.success
    errors = _errors(result)
    assert "lake root" in errors and "is not writable" in errors
