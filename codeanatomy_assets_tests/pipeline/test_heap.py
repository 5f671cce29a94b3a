"""The C heap's free pages go back to the system after extraction, and Arrow's pool's after each
sorted map (``pipeline.heap``)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from codeanatomy_assets.pipeline import heap
from codeanatomy_assets.pipeline.execution import PIPELINE_EVENTS_TABLE, build_commit
from codeanatomy_assets.pipeline.heap import (
    _malloc_trim,
    release_arrow_pool,
    release_free_heap,
    resident_mb,
)
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES

glibc = pytest.mark.skipif(_malloc_trim() is None, reason="needs Linux with glibc")


@glibc
def test_release_returns_what_a_pinned_heap_keeps() -> None:
    # 1 KiB buffers come from malloc (not Python's small-object allocator), one after
    # another; the one allocated last keeps the heap's top in use, so freeing the others
    # leaves about 200 MB free but resident, as extraction does.
    chunks = [bytearray(1024) for _ in range(200_000)]
    pin = bytearray(1024)
    del chunks
    release = release_free_heap()
    assert release.supported and release.returned
    assert release.rss_before_mb is not None and release.rss_after_mb is not None
    assert release.rss_before_mb - release.rss_after_mb > 100
    assert abs(release.rss_after_mb - (resident_mb() or 0)) < 50
    assert len(pin) == 1024


@glibc
def test_a_build_records_the_release_after_extraction(git_repo, lake_root) -> None:
    repo = git_repo()
    sha = repo.commit(FILES)
    request = BuildRequest(
        repo_path=repo.path, lake_root=lake_root, repo_id="fixture", execution_mode="serial"
    )
    build_commit(request)
    events = Lake(lake_root).read_partition(PIPELINE_EVENTS_TABLE, "fixture", sha).to_pylist()
    (release,) = [e for e in events if e["event"] == "heap_release"]
    assert release["node"] == "evidence"
    detail = json.loads(release["detail_json"])
    assert isinstance(detail["returned"], bool)
    assert 0 < detail["rss_after_mb"] <= detail["rss_before_mb"] + 5  # other threads allocate


def test_without_glibc_a_release_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)  # macOS, musl
    release = heap.release_free_heap()
    assert not release.supported and not release.returned
    assert release.rss_before_mb == release.rss_after_mb


@pytest.mark.skipif(resident_mb() is None, reason="needs /proc")
def test_arrow_pool_gives_back_what_it_kept() -> None:
    # 2,000 arrays of 160 KB from Arrow's pool, freed: the pool keeps them resident (as it
    # kept what a map's sixteen group sorts freed) until told to let them go.
    source = pa.array(np.arange(20_000))
    arrays = [pc.add(source, i) for i in range(2_000)]
    del arrays
    kept = resident_mb()
    release_arrow_pool()
    after = resident_mb()
    assert kept is not None and after is not None
    assert kept - after > 100
