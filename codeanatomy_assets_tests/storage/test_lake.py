"""Partition writes replace exactly their partition; bad partition values are refused."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datafusion import SessionContext

from codeanatomy_assets.storage.lake import Lake, LakeError, check_partition

A, B = "a" * 40, "b" * 40


def test_replace_exactly_one_partition(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write_partition("t", pa.table({"x": [1, 2]}), "r", A)
    lake.write_partition("t", pa.table({"x": [3]}), "r", B)
    lake.write_partition("t", pa.table({"x": [4, 5, 6]}), "r", A)
    lake.write_partition("t", pa.table({"x": [4, 5, 6]}), "r", A)
    assert sorted(lake.read_partition("t", "r", A)["x"].to_pylist()) == [4, 5, 6]
    assert lake.read_partition("t", "r", B)["x"].to_pylist() == [3]
    assert lake.delete_partition("t", "r", A) == 3
    assert lake.read_partition("t", "r", A).num_rows == 0
    assert lake.table_names() == ["t"]


def test_a_table_is_checkpointed_every_ten_commits(tmp_path):
    """Every build commits to each table once and opens it often: an open replays the JSON
    commits since the last checkpoint, so a log without checkpoints made builds slower."""
    lake = Lake(str(tmp_path / "lake"))
    for i in range(12):
        lake.write_partition("t", pa.table({"x": [i]}), "r", f"{i:040x}")
    log = tmp_path / "lake" / "t" / "_delta_log"
    assert sorted(p.name for p in log.glob("*.checkpoint.parquet")) == [
        "00000000000000000009.checkpoint.parquet"
    ]
    assert lake.table("t").metadata().configuration == {"delta.checkpointInterval": "10"}
    assert sum(lake.read_partition("t", "r", f"{i:040x}").num_rows for i in range(12)) == 12


def test_empty_write_creates_the_table(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    written = lake.write_partition("t", pa.table({"x": pa.array([], pa.int64())}), "r", A)
    assert written.rows == 0 and written.schema.names == ["repo_id", "commit", "x"]
    assert lake.read_partition("t", "r", A).num_rows == 0


@pytest.mark.parametrize(
    ("repo_id", "commit", "message"),
    [
        ("Bad Id", A, "repo_id 'Bad Id' is invalid"),
        ("x'; DROP", A, "repo_id"),
        ("ok", "abc", "commit 'abc' is invalid"),
        ("ok", "A" * 40, "commit"),
    ],
)
def test_partition_values_are_checked(repo_id, commit, message):
    with pytest.raises(LakeError, match=message):
        check_partition(repo_id, commit)


def test_streamed_write_replaces_the_partition_in_one_version(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write_partition("t", pa.table({"x": [1]}), "r", A)
    schema = pa.schema([("x", pa.int64())])
    calls = []

    def batches():
        calls.append(1)
        for i in range(5):
            yield pa.RecordBatch.from_pydict({"x": [i, i]}, schema=schema)

    written = lake.write_partition_stream("t", schema, batches, "r", A)
    assert (written.rows, written.version, len(calls)) == (10, 1, 1)
    assert sorted(lake.read_partition("t", "r", A)["x"].to_pylist()) == sorted([0, 1, 2, 3, 4] * 2)


def test_outputs_are_zstd_and_ids_have_no_dictionary(tmp_path):
    lake = Lake(str(tmp_path))
    rows = 5000
    table = pa.table(
        {
            "edge_id": [f"{i:032x}" for i in range(rows)],
            "edge_kind": ["CALLS", "READS"] * (rows // 2),
        }
    )
    lake.write_partition("edges", table, "r", "a" * 40)
    (path,) = (tmp_path / "edges").rglob("*.parquet")
    meta = pq.ParquetFile(path).metadata.row_group(0)
    columns = {meta.column(i).path_in_schema: meta.column(i) for i in range(meta.num_columns)}
    assert {c.compression for c in columns.values()} == {"ZSTD"}
    assert "RLE_DICTIONARY" not in columns["edge_id"].encodings
    assert "RLE_DICTIONARY" in columns["edge_kind"].encodings


def test_append_stream_adds_rows_in_one_version_each(tmp_path):
    lake = Lake(str(tmp_path))
    schema = pa.schema([("k", pa.string())])

    def batches(n):
        return (pa.RecordBatch.from_pydict({"k": [f"{i}"] * 3}, schema=schema) for i in range(n))

    assert lake.append_stream("cache/t", schema, batches(2)) == 6
    assert lake.append_stream("cache/t", schema, batches(1)) == 3
    table = lake.table("cache/t")
    assert table is not None and table.version() == 1
    assert sorted(pa.table(table.get_add_actions(flatten=True))["num_records"].to_pylist()) == [
        3,
        6,
    ]


def test_the_version_reported_is_our_commit_even_if_another_follows(tmp_path, monkeypatch):
    lake = Lake(str(tmp_path))
    lake.write_partition("t", pa.table({"x": [1]}), "r", A)  # version 0
    commit_files = Lake._commit_files

    def and_then_another_writer(self, name, *args, **kwargs):
        commit_files(self, name, *args, **kwargs)  # ours: version 1
        monkeypatch.setattr(Lake, "_commit_files", commit_files)
        Lake(self.root).write_partition(name, pa.table({"x": [9]}), "r", B)  # version 2

    monkeypatch.setattr(Lake, "_commit_files", and_then_another_writer)
    written = lake.write_partition("t", pa.table({"x": [2]}), "r", A)
    table = lake.table("t")
    assert table is not None and table.version() == 2
    assert written.version == 1


def test_a_registered_partition_scans_its_current_files_only(tmp_path):
    """Not the table filtered (deltalake's provider prunes no file on a partition filter):
    the partition's files in the current version, the partition columns as constants."""
    lake = Lake(str(tmp_path / "lake"))
    lake.write_partition("t", pa.table({"x": [1, 2]}), "r", A)
    lake.write_partition("t", pa.table({"x": [3]}), "r", B)
    lake.write_partition("t", pa.table({"x": [4]}), "r", A)  # A's first file stays until vacuum
    assert len(list((tmp_path / "lake" / "t" / "repo_id=r" / f"commit={A}").glob("*.parquet"))) == 2
    ctx = SessionContext()
    assert lake.register_partition(ctx, "t", "r", A, "a_rows")
    assert ctx.sql("SELECT * FROM a_rows").to_pylist() == [{"repo_id": "r", "commit": A, "x": 4}]
    plan = ctx.sql("EXPLAIN SELECT x FROM a_rows").to_arrow_table().column(1)[1].as_py()
    assert f"commit={A}" in plan and f"commit={B}" not in plan
    assert lake.register_partition(ctx, "t", "r", "c" * 40, "c_rows")
    assert ctx.sql("SELECT * FROM c_rows").to_pylist() == []
    assert not lake.register_partition(ctx, "missing", "r", A)


def test_a_partition_linked_into_a_directory_is_one_table_of_its_current_files(
    tmp_path, monkeypatch
):
    """With ``links``: the current version's files, hard-linked, scanned as one listing
    table (never the partition's own directory, which still holds the replaced file); where
    no link can be made, the files one by one, as without ``links``."""
    lake = Lake(str(tmp_path / "lake"))
    lake.write_partition("t", pa.table({"x": [1, 2]}), "r", A)
    lake.write_partition("t", pa.table({"x": [3]}), "r", B)
    lake.write_partition_stream(  # two files, replacing the first
        "t", pa.schema([("x", pa.int64())]),
        lambda: [pa.record_batch({"x": [4]}), pa.record_batch({"x": [5]})], "r", A,
        plain=lambda: [pa.record_batch({"x": [6]})],
    )  # fmt: skip
    current = lake.partition_files("t", "r", A)
    links = tmp_path / "links"
    links.mkdir()
    ctx = SessionContext()
    assert lake.register_partition(ctx, "t", "r", A, "a_rows", links=links)
    rows = ctx.sql("SELECT * FROM a_rows ORDER BY x").to_pylist()
    assert rows == [{"repo_id": "r", "commit": A, "x": x} for x in (4, 5, 6)]
    assert sorted(p.stat().st_ino for p in links.iterdir()) == sorted(
        p.stat().st_ino for p in current
    )
    plan = ctx.sql("EXPLAIN SELECT x FROM a_rows").to_arrow_table().column(1)[1].as_py()
    assert "UnionExec" not in plan and f"{links.name}/00000-part-" in plan

    def no_link(source, target):  # another device
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr("codeanatomy_assets.storage.lake.os.link", no_link)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert lake.register_partition(ctx, "t", "r", A, "a_again", links=elsewhere)
    assert ctx.sql("SELECT x FROM a_again ORDER BY x").to_pydict() == {"x": [4, 5, 6]}
    assert not list(elsewhere.iterdir())


def test_a_partition_under_a_root_with_spaces_is_read_and_copied(tmp_path):
    """The Delta log gives file paths percent-encoded; read as they are, a registered
    partition was silently empty."""
    lake = Lake(str(tmp_path / "my lake"))
    lake.write_partition("t", pa.table({"x": [1, 2]}), "r", A)
    ctx = SessionContext()
    assert lake.register_partition(ctx, "t", "r", A)
    assert ctx.sql("SELECT x FROM t ORDER BY x").to_pydict() == {"x": [1, 2]}
    assert lake.copy_partition("t", "r", A, B).rows == 2
    assert sorted(lake.read_partition("t", "r", B)["x"].to_pylist()) == [1, 2]


def test_a_file_missing_from_a_partition_is_an_error_not_an_empty_read(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    lake.write_partition("t", pa.table({"x": [1, 2]}), "r", A)
    for path in (tmp_path / "lake" / "t").rglob("*.parquet"):
        path.unlink()
    with pytest.raises(LakeError, match="files listed in its Delta log are missing"):
        lake.register_partition(SessionContext(), "t", "r", A)


def test_a_root_deltalake_would_decode_is_refused_before_any_write(tmp_path):
    """deltalake decodes ``%20`` in a local path (also inside a ``file://`` URI): a build
    under ``a%20b`` wrote its first table there, then looked for it under ``a b``."""
    root = tmp_path / "builds%20old" / "lake"
    with pytest.raises(LakeError, match=r"builds%20old.*not usable.*two hex digits"):
        Lake(str(root)).ensure_writable()
    assert not root.exists()
    # A '%' that is not an escape is left alone by deltalake: such a root is fine.
    percent = Lake(str(tmp_path / "100%" / "lake"))
    percent.ensure_writable()
    percent.write_partition("t", pa.table({"x": [1, 2]}), "r", "a" * 40)
    assert percent.read_partition("t", "r", "a" * 40).num_rows == 2
