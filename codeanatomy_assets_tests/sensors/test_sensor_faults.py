"""The sensor under load and restarts: 100 new commits at once, a daemon restart on SQLite."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from codeanatomy_assets_tests.git_fixture import GitRepo
from codeanatomy_assets_tests.sensors.test_commit_sensor import _keys, _tick, _watch


def test_a_hundred_new_commits_are_bounded_and_never_repeated(tmp_path: Path) -> None:
    repo = GitRepo.init(tmp_path / "busy")
    repo.commits(2)
    watched = _watch(initial=2, retain=10, busy=repo.path)
    with dg.DagsterInstance.ephemeral() as instance:
        first = _tick(instance, watched, None)
        burst = repo.commits(100)
        second = _tick(instance, watched, first.cursor)
        # Only the retained window of the burst is requested: never a hundred runs.
        assert _keys(second) == [f"busy@{s}" for s in burst[-10:]]
        assert _keys(_tick(instance, watched, second.cursor)) == []
        everything = _keys(first) + _keys(second)
        assert len(everything) == len(set(everything))


def test_restart_on_a_persistent_instance_resumes_from_the_cursor(tmp_path: Path) -> None:
    """The daemon's state is the cursor and the partitions in SQLite: a new process (a new
    instance object over the same DAGSTER_HOME) picks up exactly where the old one stopped."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    repo = GitRepo.init(tmp_path / "r")
    old = repo.commits(3)
    watched = _watch(initial=5, r=repo.path)
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        first = _tick(instance, watched, None)
    assert _keys(first) == [f"r@{s}" for s in old]
    new = repo.commits(2)
    with dg.DagsterInstance.local_temp(str(home)) as restarted:
        assert set(restarted.get_dynamic_partitions("commits")) == {f"r@{s}" for s in old}
        resumed = _tick(restarted, watched, first.cursor)
        assert _keys(resumed) == [f"r@{s}" for s in new]
        # Even with the cursor lost, what is already a partition is not requested again.
        assert _keys(_tick(restarted, watched, None)) == []
