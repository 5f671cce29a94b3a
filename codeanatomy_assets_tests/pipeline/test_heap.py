"""The C heap's free pages go back to the system after extraction, and Arrow's pool's after each
sorted map; a build keeps its process off transparent huge pages (``pipeline.heap``)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from codeanatomy_assets.pipeline import heap
from codeanatomy_assets.pipeline.execution import PIPELINE_EVENTS_TABLE, build_commit
from codeanatomy_assets.pipeline.heap import (
    _malloc_trim,
    _prctl,
    huge_pages_disabled,
    release_arrow_pool,
    release_free_heap,
    resident_mb,
)
from codeanatomy_assets.pipeline.request import BuildRequest
from codeanatomy_assets.storage.lake import Lake
from codeanatomy_assets_tests.pipeline.fixture_repo import FILES


def _build_events(git_repo, lake_root, event: str) -> list[dict]:
    """The ``event`` rows of a serial build of the fixture repository."""
    repo = git_repo()
    sha = repo.commit(FILES)
    request = BuildRequest(
        repo_path=repo.path, lake_root=lake_root, repo_id="fixture", execution_mode="serial"
    )
    build_commit(request)
    events = Lake(lake_root).read_partition(PIPELINE_EVENTS_TABLE, "fixture", sha).to_pylist()
    return [e for e in events if e["event"] == event]


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
    (release,) = _build_events(git_repo, lake_root, "heap_release")
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


linux = pytest.mark.skipif(_prctl() is None, reason="needs Linux")
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
_SMAPS = Path("/proc/self/smaps_rollup")


def _thp_mode() -> str | None:
    try:
        text = _THP_MODE.read_text()
    except OSError:
        return None
    start = text.find("[")
    return text[start + 1 : text.find("]")] if start >= 0 else None


# A child process that allocates 128 MB from Arrow's pool and prints how much of its memory
# is in huge pages before and after; with "off" it first calls ``disable_huge_pages``. It
# turns the flag back on first, since it inherits it from this process.
_CHILD = """
import ctypes, re, sys
ctypes.CDLL(None).prctl(41, 0, 0, 0, 0)
import numpy as np, pyarrow as pa, pyarrow.compute as pc
from codeanatomy_assets.pipeline.heap import disable_huge_pages

def huge():
    text = open("/proc/self/smaps_rollup").read()
    return int(re.search(r"AnonHugePages:\\s+(\\d+) kB", text).group(1))

if sys.argv[1] == "off":
    assert disable_huge_pages()
before = huge()
kept = pc.add(pa.array(np.arange(16 * 2**20)), 1)
print(before, huge())
"""


@linux
@pytest.mark.skipif(
    _thp_mode() not in ("always", "madvise") or not _SMAPS.exists(),
    reason="needs transparent huge pages enabled and /proc/self/smaps_rollup",
)
def test_off_huge_pages_arrow_memory_comes_in_small_pages() -> None:
    def huge_kb(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, check=True
        ).stdout.split()
        return int(out[1]) - int(out[0])

    assert huge_kb("on") >= 64 * 1024  # the arena's madvise(MADV_HUGEPAGE) took effect
    assert huge_kb("off") == 0


@linux
def test_a_build_keeps_its_process_and_children_off_huge_pages(git_repo, lake_root) -> None:
    (record,) = _build_events(git_repo, lake_root, "huge_pages")
    assert json.loads(record["detail_json"]) == {"disabled": True}
    assert huge_pages_disabled() is True
    status = subprocess.run(["cat", "/proc/self/status"], capture_output=True, text=True)
    assert "THP_enabled:\t0" in status.stdout  # a process started afterwards inherits it


def test_without_linux_huge_pages_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_prctl", lambda: None)  # macOS
    assert heap.disable_huge_pages() is False
    assert heap.huge_pages_disabled() is None
