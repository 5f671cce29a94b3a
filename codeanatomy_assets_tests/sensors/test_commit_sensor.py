"""The new-commit sensor against real git repositories and a real ephemeral instance."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from codeanatomy_assets.definitions import defs
from codeanatomy_assets.partitions import COMMITS_PARTITIONS
from codeanatomy_assets.resources import WatchedRepo, WatchedReposResource
from codeanatomy_assets_tests.git_fixture import GitRepo

SENSOR = defs.resolve_sensor_def("new_commits_sensor")


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


def _watch(initial: int = 3, retain: int = 10, **repos: Path) -> WatchedReposResource:
    return WatchedReposResource(
        repos={rid: WatchedRepo(path=str(p), branch="main") for rid, p in repos.items()},
        initial_commits=initial,
        retain_commits=retain,
    )


def _tick(
    instance: dg.DagsterInstance, watched: WatchedReposResource, cursor: str | None
) -> dg.SensorResult:
    """Evaluate the sensor once and apply its partition requests, as the daemon would."""
    ctx = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"watched_repos": watched}
    )
    result = SENSOR(ctx)
    assert isinstance(result, dg.SensorResult)
    for request in result.dynamic_partitions_requests or []:
        assert isinstance(request, dg.AddDynamicPartitionsRequest)
        instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
    return result


def _keys(result: dg.SensorResult) -> list[str]:
    return [r.partition_key for r in result.run_requests or [] if r.partition_key]


def _added(result: dg.SensorResult) -> list[str]:
    return [k for r in result.dynamic_partitions_requests or [] for k in r.partition_keys or []]


def test_new_commits_are_added_once_and_later_commits_exactly(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "alpha")
    shas = repo.commits(2)
    watched = _watch(alpha=repo.path)

    first = _tick(instance, watched, None)
    assert _keys(first) == [f"alpha@{s}" for s in shas]
    assert _added(first) == _keys(first)
    assert [r.run_key for r in first.run_requests or []] == _keys(first)
    assert json.loads(first.cursor or "")["heads"] == {"alpha": shas[-1]}

    again = _tick(instance, watched, first.cursor)
    assert _keys(again) == [] and _added(again) == []

    more = repo.commits(2)
    third = _tick(instance, watched, again.cursor)
    assert _keys(third) == [f"alpha@{s}" for s in more]
    assert set(instance.get_dynamic_partitions("commits")) == {f"alpha@{s}" for s in shas + more}


def test_first_start_takes_only_the_newest_n(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    repo = GitRepo.init(tmp_path / "long")
    shas = repo.commits(12)
    result = _tick(instance, _watch(initial=3, retain=10, long=repo.path), None)
    assert _keys(result) == [f"long@{s}" for s in shas[-3:]]
    # The older commits of the window are history, not news: the next tick requests nothing.
    assert _keys(_tick(instance, _watch(long=repo.path), result.cursor)) == []


def test_force_push_requests_only_rewritten_commits_once(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "fp")
    base, _old1, old2 = repo.commits(3)
    watched = _watch(initial=5, fp=repo.path)
    first = _tick(instance, watched, None)
    assert len(_keys(first)) == 3

    repo.git("reset", "-q", "--hard", base)
    rewritten = repo.commits(2)
    second = _tick(instance, watched, first.cursor)
    assert _keys(second) == [f"fp@{s}" for s in rewritten]

    # Back to the old head (already partitions): nothing is requested twice.
    repo.git("reset", "-q", "--hard", old2)
    third = _tick(instance, watched, second.cursor)
    assert _keys(third) == []
    # A restart with a lost cursor requests nothing already known either.
    assert _keys(_tick(instance, watched, None)) == []


def test_broken_repo_is_logged_and_others_still_work(
    tmp_path: Path, instance: dg.DagsterInstance, capsys: pytest.CaptureFixture[str]
) -> None:
    good = GitRepo.init(tmp_path / "good")
    gone = GitRepo.init(tmp_path / "gone")
    gone.commits(1)
    gone_cursor = _tick(instance, _watch(gone=gone.path), None).cursor
    shutil.rmtree(gone.path)
    not_git = tmp_path / "plain"
    not_git.mkdir()
    inner = good.path / "subdir"  # inside a repository, but not one: must not watch `good`
    inner.mkdir()
    nobranch = GitRepo.init(tmp_path / "nobranch")
    nobranch.commits(1)
    nobranch.git("branch", "-q", "-m", "main", "trunk")
    sha = good.commit()

    watched = _watch(
        good=good.path, gone=gone.path, plain=not_git, nobranch=nobranch.path, inner=inner
    )
    capsys.readouterr()
    result = _tick(instance, watched, gone_cursor)
    assert _keys(result) == [f"good@{sha}"]
    heads = json.loads(result.cursor or "")["heads"]
    assert set(heads) == {"good", "gone"}  # the vanished repo keeps its last head
    # context.log is Dagster's logger, which writes to stderr rather than propagating.
    skipped = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert len(skipped) == 4, skipped
    assert any("repo=nobranch" in m and "RevisionError" in m for m in skipped)
    assert any("repo=inner" in m and "not the root of a git repository" in m for m in skipped)


def test_unreadable_cursor_is_a_first_start(tmp_path: Path, instance: dg.DagsterInstance) -> None:
    repo = GitRepo.init(tmp_path / "c")
    shas = repo.commits(2)
    result = _tick(instance, _watch(c=repo.path), "not json")
    assert _keys(result) == [f"c@{s}" for s in shas]
    assert COMMITS_PARTITIONS.name == "commits"


def test_repositories_listed_in_the_repos_file_are_watched(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "listed")
    sha = repo.commit()
    listing = tmp_path / "repos.yaml"
    listing.write_text("listed: {path: listed, branch: main}\n")
    result = _tick(instance, WatchedReposResource(repos_file=str(listing)), None)
    assert _keys(result) == [f"listed@{sha}"]


def test_force_push_with_the_old_head_garbage_collected(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    repo = GitRepo.init(tmp_path / "gc")
    base, old = repo.commits(2)
    watched = _watch(initial=2, retain=10, gc=repo.path)
    first = _tick(instance, watched, None)
    repo.git("reset", "-q", "--hard", base)
    rewritten = repo.commits(3)
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    with pytest.raises(subprocess.CalledProcessError):
        repo.git("cat-file", "-e", old)
    # The cursor's head is gone from the object database: treated as a first start (newest
    # ``initial_commits``), where the old head still present would have yielded all three.
    second = _tick(instance, watched, first.cursor)
    assert _keys(second) == [f"gc@{s}" for s in rewritten[-2:]]
