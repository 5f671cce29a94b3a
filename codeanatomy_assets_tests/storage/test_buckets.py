"""Outputs sorted by id, one file per bucket: footers say what each file holds, and a later
partition links the files of the buckets it leaves as they were. Rows in any order (the flat
outputs' file-local rows) are filed one file per group of buckets, signed."""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import blake2b

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from codeanatomy_assets.storage.buckets import (
    BucketSpec,
    Fingerprints,
    GroupFingerprints,
    LocalBuckets,
    StrayBucketError,
    bucket_codes,
    bucket_group,
    feed_id,
    file_codes,
    group_by_bucket,
    read_bucket_files,
    read_local_files,
    read_partials,
    source_fingerprints,
    split_by_bucket,
    unchanged,
)
from codeanatomy_assets.storage.lake import Lake

A, B, C = "a" * 40, "b" * 40, "c" * 40
SCHEMA = pa.schema([("node_id", pa.string()), ("h", pa.int64()), ("n", pa.int64())])


def _table_spec(table: pa.Table) -> BucketSpec:
    """The writer's spec for ``table``: fingerprints from its flat rows, as a build adds them
    from the stream it nests."""
    fingerprints = Fingerprints()
    fingerprints.add(table, "node_id", "h")
    return BucketSpec("node_id", fingerprints.get)


def _rows(buckets: dict[str, int], salt: str = "") -> pa.Table:
    """``count`` rows for each bucket, sorted by node id; their identities (``h``, a 64-bit
    hash as a build computes one) differ with ``salt``."""
    ids, hashes = [], []
    for bucket, count in sorted(buckets.items()):
        for i in range(count):
            ids.append(f"{bucket}{i:030x}")
            hashes.append(int.from_bytes(blake2b(f"{salt}/{bucket}/{i}".encode(), digest_size=8)
                                         .digest(), "little", signed=True))  # fmt: skip
    return pa.table({"node_id": ids, "h": hashes, "n": list(range(len(ids)))}, SCHEMA)


def test_bucket_codes_read_the_first_two_hex_characters():
    assert bucket_codes(pa.array(["00ab", "ff", "3a9"])).tolist() == [0, 255, 58]
    assert bucket_codes(pa.chunked_array([["0a"], ["b0"]], pa.string_view())).tolist() == [10, 176]
    # Ids of one length (read as a strided view), and a slice of them.
    ids = pa.array([f"{i:02x}{'0' * 30}" for i in range(256)])
    assert bucket_codes(ids).tolist() == list(range(256))
    assert bucket_codes(ids.slice(250, 3)).tolist() == [250, 251, 252]
    assert bucket_codes(pa.array([], pa.string())).tolist() == []
    for bad in (["zz00"], ["A0"], ["0"], [None], ["0a", "0g"], ["0a00", "x0"]):
        with pytest.raises(ValueError, match="2 lowercase hex"):
            bucket_codes(pa.array(bad, pa.string()))


def test_file_codes_read_the_first_four_hex_characters():
    # Ids of several lengths (read at each id's offset) and of one (a strided view).
    assert file_codes(pa.array(["00ab", "ffff9", "3a9c0"])).tolist() == [0xAB, 0xFFFF, 0x3A9C]
    ids = pa.array([f"{i:04x}{'0' * 28}" for i in range(0, 65536, 257)])
    assert file_codes(ids).tolist() == list(range(0, 65536, 257))
    assert file_codes(ids.slice(3, 2)).tolist() == [3 * 257, 4 * 257]
    assert file_codes(pa.array(["ab12"], pa.string_view())).tolist() == [0xAB12]
    for bad in (["0a0"], ["0a0G"], ["x" * 32], [None]):
        with pytest.raises(ValueError, match="4 lowercase hex"):
            file_codes(pa.array(bad, pa.string()))


def test_identities_are_64_bit_integers_never_null():
    fingerprints = Fingerprints()
    fingerprints.add(_rows({"0a": 2}), "node_id", "h")
    assert fingerprints.get("0a").rows == 2 and fingerprints.get("0b").rows == 0
    for bad in (pa.array([1, None], pa.int64()), pa.array(["x", "y"])):
        table = pa.table({"node_id": ["0a" + "0" * 30] * 2, "h": bad})
        with pytest.raises(ValueError, match="64-bit integer, never null"):
            fingerprints.add(table, "node_id", "h")
    assert fingerprints.as_dict() == {"0a": fingerprints.get("0a")}


def test_rows_are_cut_where_the_bucket_changes_and_must_come_sorted():
    table = _rows({"0a": 3, "0b": 2, "ff": 4})
    pieces = list(split_by_bucket(table.to_batches(max_chunksize=4), "node_id"))
    # Batches of 4: [0a 0a 0a 0b] [0b ff ff ff] [ff].
    assert [(b, p.num_rows) for b, p in pieces] == [
        ("0a", 3), ("0b", 1), ("0b", 1), ("ff", 3), ("ff", 1)]  # fmt: skip
    unsorted = pa.concat_tables([_rows({"0a": 1}), _rows({"0b": 1}), _rows({"0a": 1})])
    with pytest.raises(ValueError, match="bucket 0a are not contiguous"):
        list(split_by_bucket(unsorted.to_batches(), "node_id"))


def test_a_bucketed_write_makes_one_file_per_bucket_with_its_fingerprint(tmp_path):
    lake = Lake(str(tmp_path))
    table = _rows({"0a": 300, "3f": 5, "ff": 70})
    written = lake.write_partition_stream(
        "t", SCHEMA, lambda: table.to_batches(max_chunksize=64), "r", A, buckets=_table_spec(table)
    )
    assert written.rows == 375
    files = read_bucket_files(lake.partition_files("t", "r", A), SCHEMA)
    assert sorted(files) == ["0a", "3f", "ff"]
    # The footers hold what a scan of the flat rows computes.
    expected = source_fingerprints(table.to_batches(max_chunksize=100), "node_id", "h")
    assert {b: f.fingerprint for b, f in files.items()} == expected
    assert pq.read_table(files["3f"].path).column("node_id").to_pylist() == [
        f"3f{i:030x}" for i in range(5)]  # fmt: skip
    assert lake.read_partition("t", "r", A).num_rows == 375


def test_a_later_partition_links_the_unchanged_buckets(tmp_path):
    lake = Lake(str(tmp_path))
    first = _rows({"0a": 30, "3f": 5, "ff": 7})
    lake.write_partition_stream(
        "t", SCHEMA, lambda: first.to_batches(), "r", A, buckets=_table_spec(first)
    )
    # The next commit: bucket 3f changed, ff is gone, 10 is new, 0a is as it was.
    second = pa.concat_tables(
        [_rows({"0a": 30}), _rows({"10": 2}), _rows({"3f": 5}, salt="changed")]
    )
    now = source_fingerprints(second.to_batches(), "node_id", "h")
    earlier = lake.earlier_bucket_files("t", "r", B, SCHEMA)
    assert sorted(earlier) == ["0a", "3f", "ff"]
    keep = unchanged(earlier, now)
    assert sorted(keep) == ["0a"]
    rewrite = second.filter(pa.compute.not_equal(pa.compute.utf8_slice_codeunits(
        second["node_id"], 0, 2), "0a"))  # fmt: skip
    written = lake.write_partition_stream(
        "t", SCHEMA, lambda: rewrite.to_batches(), "r", B, buckets=_table_spec(rewrite),
        keep=[f.path for f in keep.values()],
    )  # fmt: skip
    assert written.rows == second.num_rows
    got = lake.read_partition("t", "r", B).drop(["repo_id", "commit"]).sort_by("node_id")
    assert got.equals(second.sort_by("node_id"))
    # The kept bucket's file is the first partition's bytes, under a name of the second's.
    linked = lake.earlier_bucket_files("t", "r", C, SCHEMA)
    assert sorted(linked) == ["0a", "10", "3f"]
    assert linked["0a"].path.stat().st_ino == earlier["0a"].path.stat().st_ino
    assert linked["0a"].path.parent.name == f"commit={B}"
    assert linked["3f"].fingerprint == now["3f"] != earlier["3f"].fingerprint
    # The first partition is untouched.
    assert lake.read_partition("t", "r", A).num_rows == first.num_rows


def test_files_without_a_footer_or_of_another_schema_are_never_linked(tmp_path):
    lake = Lake(str(tmp_path))
    table = _rows({"0a": 3, "0b": 3})
    lake.write_partition_stream("t", SCHEMA, lambda: table.to_batches(), "r", A)  # no buckets
    assert lake.earlier_bucket_files("t", "r", B, SCHEMA) == {}
    lake.write_partition_stream(
        "t", SCHEMA, lambda: table.to_batches(), "r", B, buckets=_table_spec(table)
    )
    assert sorted(lake.earlier_bucket_files("t", "r", C, SCHEMA)) == ["0a", "0b"]
    other = SCHEMA.append(pa.field("extra", pa.string()))
    assert read_bucket_files(lake.partition_files("t", "r", B), other) == {}
    # Only the repository's own partitions count, and never the commit's own.
    assert lake.earlier_bucket_files("t", "other-repo", C, SCHEMA) == {}
    assert lake.earlier_bucket_files("t", "r", B, SCHEMA) == {}


def test_an_ancestor_named_first_is_preferred_to_the_newest_partition(tmp_path):
    lake = Lake(str(tmp_path))
    table = _rows({"0a": 3})
    for commit in (A, B):
        lake.write_partition_stream(
            "t", SCHEMA, lambda: table.to_batches(), "r", commit, buckets=_table_spec(table)
        )

    def source(files: dict) -> str:
        return next(iter(files.values())).path.parent.name

    assert source(lake.earlier_bucket_files("t", "r", C, SCHEMA)) == f"commit={B}"  # newest
    assert source(lake.earlier_bucket_files("t", "r", C, SCHEMA, prefer=[A])) == f"commit={A}"
    # A preferred commit without a partition, or the commit itself, is passed over.
    assert source(lake.earlier_bucket_files("t", "r", C, SCHEMA, prefer=[C, "d" * 40, A])) == (
        f"commit={A}"
    )
    assert source(lake.earlier_bucket_files("t", "r", A, SCHEMA, prefer=[A])) == f"commit={B}"


def test_rows_in_any_order_come_out_by_group_each_once():
    table = _rows({"0a": 40, "0b": 3, "1c": 25, "f0": 7, "ff": 9})
    shuffled = table.take(pa.array([(i * 37) % table.num_rows for i in range(table.num_rows)]))
    pieces = list(group_by_bucket(shuffled.to_batches(max_chunksize=16), "node_id",
                                  window_bytes=200, group_bytes=300))  # fmt: skip
    # Small windows and row groups: groups come in several pieces, each of one group (of
    # two buckets, named by its number: 0a and 0b are group 05, ff is 7f).
    assert len(pieces) > 3 and {g for g, _ in pieces} == {"05", "0e", "78", "7f"}
    for group, piece in pieces:
        assert {bucket_group(i[:2]) for i in piece.column("node_id").to_pylist()} == {group}
    rows = pa.concat_tables([piece for _, piece in pieces])
    assert rows.sort_by("node_id").equals(table.sort_by("node_id"))
    # Allowed groups only: a row of another group stops the stream.
    with pytest.raises(StrayBucketError, match="group 0e, not one being written"):
        list(group_by_bucket(table.to_batches(), "node_id", frozenset({"05", "78", "7f"})))


def test_group_files_are_signed_and_read_back_only_under_the_same_signature(tmp_path):
    lake = Lake(str(tmp_path))
    table = _rows({"0a": 30, "0b": 3, "3f": 5, "ff": 7})
    written = lake.write_partition_stream(
        "t", SCHEMA, lambda: reversed(table.to_batches(max_chunksize=8)), "r", A,
        buckets=LocalBuckets("node_id", "sig-1"),
    )  # fmt: skip
    assert written.rows == table.num_rows
    files = lake.partition_files("t", "r", A)
    first_ids = {f: pq.read_table(f).column("node_id")[0].as_py() for f in files}
    assert read_local_files(files, SCHEMA, "sig-1") == {
        bucket_group(i[:2]): f for f, i in first_ids.items()}  # fmt: skip
    assert sorted(read_local_files(files, SCHEMA, "sig-1") or {}) == ["05", "1f", "7f"]
    # Another signature, or another schema: nothing of the partition stands for the rows.
    assert read_local_files(files, SCHEMA, "sig-2") is None
    assert read_local_files(files, SCHEMA.append(pa.field("x", pa.int8())), "sig-1") is None
    earlier = lake.earlier_local_files("t", "r", B, SCHEMA, "sig-1")
    assert earlier is not None and earlier[0] == A and sorted(earlier[1]) == ["05", "1f", "7f"]
    assert lake.earlier_local_files("t", "r", B, SCHEMA, "sig-2") is None
    # A later partition: group 05's file linked, the rest written plain, in one transaction.
    rest = table.filter(pa.compute.not_equal(
        pa.compute.utf8_slice_codeunits(table["node_id"], 0, 1), "0"))  # fmt: skip
    lake.write_partition_stream(
        "t", SCHEMA, lambda: iter(()), "r", B, buckets=LocalBuckets("node_id", "sig-1"),
        keep=[earlier[1]["05"]], plain=lambda: rest.to_batches(),
    )  # fmt: skip
    got = lake.read_partition("t", "r", B).drop(["repo_id", "commit"]).sort_by("node_id")
    assert got.equals(table.sort_by("node_id"))


def test_group_files_carry_partial_fingerprints_that_sum_to_the_whole(tmp_path):
    """A map's fingerprints over a source partition: its group files' footers summed, and
    the rows of its other files scanned."""
    lake = Lake(str(tmp_path))
    table = _rows({"0a": 30, "0b": 3, "3f": 5, "ff": 7})
    feed = feed_id("node_id", ["h"])
    # Summed every 10 rows or more: some while rows stream, the rest when a file closes.
    groups = GroupFingerprints("node_id", {feed: ("node_id", "h")}, flush_rows=10)

    def streamed() -> Iterator[pa.RecordBatch]:  # a build adds the rows as they stream
        for batch in table.to_batches(8):
            groups.add(pa.table(batch))
            yield batch

    lake.write_partition_stream(
        "t", SCHEMA, streamed, "r", A,
        buckets=LocalBuckets("node_id", "sig", partials=groups.partials),
        plain=lambda: _rows({"3f": 2, "c1": 4}, salt="plain").to_batches(),
    )  # fmt: skip
    files = lake.partition_files("t", "r", A)
    partials, others = read_partials(files, feed)
    assert sorted(sorted(found) for found in partials.values()) == [["0a", "0b"], ["3f"], ["ff"]]
    total = Fingerprints()
    for found in partials.values():
        for bucket, fingerprint in found.items():
            total.merge(bucket, fingerprint)
    (plain,) = others
    total.add(pq.read_table(plain), "node_id", "h")
    whole = lake.read_partition("t", "r", A).to_batches()
    assert total.as_dict() == source_fingerprints(whole, "node_id", "h")
    # Partials of another feed (another bucket column or identity): every file is scanned.
    assert read_partials(files, feed_id("node_id", ["n"])) == ({}, files)
