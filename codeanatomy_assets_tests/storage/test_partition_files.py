"""The local partition writer: bounded files with Delta statistics, nothing left on failure."""

from __future__ import annotations

import hashlib
import threading
import time

import pyarrow as pa
import pytest
from datafusion import SessionContext

from codeanatomy_assets.storage import partition_files
from codeanatomy_assets.storage.buckets import LocalBuckets, group_by_bucket
from codeanatomy_assets.storage.lake import Lake, LakeError

A, B = "a" * 40, "b" * 40
SCHEMA = pa.schema([("node_id", pa.string()), ("n", pa.int64()), ("tags", pa.list_(pa.string()))])


def _batches(start: int, stop: int, step: int = 1000):
    for lo in range(start, stop, step):
        ids = [f"{i:032x}" for i in range(lo, min(lo + step, stop))]
        yield pa.RecordBatch.from_pydict(
            {"node_id": ids, "n": [None if i % 7 == 0 else i for i in range(lo, lo + len(ids))],
             "tags": [["x"]] * len(ids)},
            schema=SCHEMA,
        )  # fmt: skip


def test_files_roll_over_and_carry_statistics(tmp_path, monkeypatch):
    monkeypatch.setattr(partition_files, "_FILE_BYTES", 100_000)
    lake = Lake(str(tmp_path))
    written = lake.write_partition_stream("t", SCHEMA, lambda: _batches(0, 10_000), "r", A)
    assert written.rows == 10_000
    table = lake.table("t")
    assert table is not None
    files = pa.table(table.get_add_actions(flatten=True)).to_pylist()
    assert len(files) > 1
    assert sum(f["num_records"] for f in files) == 10_000
    first = min(files, key=lambda f: f["min.node_id"])
    assert first["min.node_id"] == f"{0:032x}" and first["max.node_id"] < f"{10_000:032x}"
    assert first["min.n"] == 1 and first["null_count.n"] > 0
    assert "min.tags" not in first
    # A point lookup through the Delta provider reads back exactly the row.
    ctx = SessionContext()
    ctx.register_table("t", table)
    row = ctx.sql(f"SELECT n FROM t WHERE node_id = '{5000:032x}'").to_arrow_table()
    assert row.to_pylist() == [{"n": 5000}]


def test_a_stream_that_fails_leaves_the_partition_and_no_files(tmp_path):
    lake = Lake(str(tmp_path))
    lake.write_partition_stream("t", SCHEMA, lambda: _batches(0, 10), "r", A)
    lake.write_partition_stream("t", SCHEMA, lambda: _batches(0, 5), "r", B)
    before = sorted(p.name for p in (tmp_path / "t").rglob("*.parquet"))

    def failing():
        yield from _batches(100, 3000)
        raise RuntimeError("the view failed half-way")

    with pytest.raises(RuntimeError, match="half-way"):
        lake.write_partition_stream("t", SCHEMA, failing, "r", A)
    assert sorted(p.name for p in (tmp_path / "t").rglob("*.parquet")) == before
    assert lake.read_partition("t", "r", A).num_rows == 10
    assert lake.read_partition("t", "r", B).num_rows == 5


def test_a_copied_partition_owns_its_files(tmp_path, monkeypatch):
    """Linked, not rewritten; and independent of its source, which may be replaced and
    vacuumed (Delta keys files by path: a shared path would move rows between partitions)."""
    monkeypatch.setattr(partition_files, "_FILE_BYTES", 100_000)
    lake = Lake(str(tmp_path))
    lake.write_partition_stream("t", SCHEMA, lambda: _batches(0, 5_000), "r", A)
    lake.write_partition_stream("t", SCHEMA, lambda: _batches(0, 3), "r", B)
    sources = {p.stat().st_ino for p in (tmp_path / "t" / "repo_id=r" / f"commit={A}").iterdir()}
    copied = lake.copy_partition("t", "r", A, B, expected_rows=5_000)
    assert copied.rows == 5_000
    linked = list((tmp_path / "t" / "repo_id=r" / f"commit={B}").glob("*.parquet"))
    assert sources <= {p.stat().st_ino for p in linked}  # the same bytes, under new paths

    def rows(commit: str) -> pa.Table:
        return lake.read_partition("t", "r", commit).drop(["commit"]).sort_by("node_id")

    assert rows(B).equals(rows(A))
    # The source is replaced and its old files vacuumed: the copy keeps every row.
    lake.write_partition_stream("t", SCHEMA, lambda: _batches(0, 1), "r", A)
    table = lake.table("t")
    assert table is not None
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    assert lake.read_partition("t", "r", B).num_rows == 5_000
    assert lake.read_partition("t", "r", A).num_rows == 1
    # Rows that do not match what the source should hold: nothing committed, nothing left.
    before = sorted(p.name for p in (tmp_path / "t").rglob("*.parquet"))
    with pytest.raises(LakeError, match="holds 1 rows, not the 7 expected"):
        lake.copy_partition("t", "r", A, B, expected_rows=7)
    assert sorted(p.name for p in (tmp_path / "t").rglob("*.parquet")) == before
    assert lake.read_partition("t", "r", B).num_rows == 5_000


def test_group_files_encode_on_two_lanes_each_in_order():
    """A file's row groups go to one lane, in order; two lanes run at once (the barrier
    would break if they took turns); a task's error reaches the writer."""
    done: dict[int, list[int]] = {0: [], 1: []}
    both = threading.Barrier(2, timeout=5)

    def task(key: int, n: int):
        def run() -> None:
            if n == 0:
                both.wait()
            time.sleep(0.001 * ((n * 7) % 3))
            done[key].append(n)

        return run

    with partition_files._Lanes(2) as lanes:
        for n in range(20):
            for key in (0, 1):
                lanes.submit(key, task(key, n))
    assert done == {0: list(range(20)), 1: list(range(20))}

    with pytest.raises(OSError, match="disk full"), partition_files._Lanes(2) as lanes:
        lanes.submit(0, _disk_full)


def test_a_group_file_whose_row_group_fails_leaves_the_partition_and_no_files(
    tmp_path, monkeypatch
):
    lake = Lake(str(tmp_path))
    local = LocalBuckets("node_id", "sig")
    lake.write_partition_stream("t", SCHEMA, lambda: _batches(0, 10), "r", A, buckets=local)
    before = sorted(p.name for p in (tmp_path / "t").rglob("*.parquet"))
    real, calls = partition_files._row_group_writer, []

    def third_fails(writer, table):
        calls.append(table.num_rows)
        if len(calls) == 3:
            return _disk_full
        return real(writer, table)

    monkeypatch.setattr(partition_files, "_row_group_writer", third_fails)
    monkeypatch.setattr(partition_files, "group_by_bucket", _small_pieces)
    with pytest.raises(OSError, match="disk full"):
        lake.write_partition_stream("t", SCHEMA, lambda: _batches(0, 20_000), "r", A, buckets=local)
    assert len(calls) > 3
    assert sorted(p.name for p in (tmp_path / "t").rglob("*.parquet")) == before
    assert lake.read_partition("t", "r", A).num_rows == 10


def _disk_full() -> None:
    raise OSError("disk full")


def _small_pieces(batches, key, allowed=None):
    """``group_by_bucket`` cutting small row groups, so a write has many of them."""
    return group_by_bucket(batches, key, allowed, window_bytes=20_000, group_bytes=20_000)


KINDS = pa.schema([("node_id", pa.string()), ("kind", pa.string())])


def _kinds(start: int, stop: int, null_at: int | None = None):
    ids = [hashlib.md5(str(i).encode()).hexdigest() for i in range(start, stop)]  # any group
    kinds = [None if i == null_at else ("CALL", "NAME", "ARG")[i % 3] for i in range(start, stop)]
    yield pa.RecordBatch.from_pydict({"node_id": ids, "kind": kinds}, schema=KINDS)


def test_a_partition_counts_its_kinds_from_its_footers(tmp_path, monkeypatch):
    """What a partition holds per kind is the sum of its files' footers, written ones and
    linked ones alike, and equals a scan of the partition; a file that cannot say (a null
    kind, a file of an older version) leaves it to the scan."""
    monkeypatch.setattr(partition_files, "_FILE_BYTES", 2_000)  # several plain files
    lake = Lake(str(tmp_path))
    local = LocalBuckets("node_id", "sig")

    def write(commit: str, keep=(), null_at=None):
        return lake.write_partition_stream(
            "t", KINDS, lambda: _kinds(0, 3_000), "r", commit, buckets=local, keep=keep,
            plain=lambda: _kinds(3_000, 3_400, null_at), counted="kind",
        )  # fmt: skip

    first = write(A)
    scanned = lake.value_counts("t", "kind", "r", A)
    assert first.value_counts == scanned == {"CALL": 1_134, "NAME": 1_133, "ARG": 1_133}
    # A commit that writes the plain rows and links the group files of the first.
    files = lake.partition_files("t", "r", A)
    groups = [p for p in files if p.name.startswith("part-") and len(p.name.split("-")[1]) == 2]
    assert 1 < len(groups) < len(files)
    linked = lake.write_partition_stream(
        "t", KINDS, lambda: iter(()), "r", B, keep=groups,
        plain=lambda: _kinds(3_000, 3_400), counted="kind",
    )  # fmt: skip
    assert linked.value_counts == lake.value_counts("t", "kind", "r", B) == scanned
    # Copied whole, the footers still count.
    assert lake.copy_partition("t", "r", A, B, counted="kind").value_counts == scanned
    # A null kind: its file names no counts, so the partition's are not known from footers.
    assert write(A, null_at=3_100).value_counts is None
    assert lake.value_counts("t", "kind", "r", A) == {**scanned, "NAME": 1_132, None: 1}
    # Not asked to count: nothing said, whatever the footers hold.
    assert lake.copy_partition("t", "r", B, A).value_counts is None
