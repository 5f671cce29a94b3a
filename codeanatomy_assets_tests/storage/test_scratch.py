"""Spilled tables: scanned by DataFusion as they were, pickled as tables, gone with the run."""

from __future__ import annotations

import gc
import pickle
from pathlib import Path

import pyarrow as pa
import pytest
from datafusion import SessionContext

from codeanatomy_assets.storage.scratch import (
    PATH_COUNTS_KEY,
    Scratch,
    adopt,
    path_counts,
    spill_parts,
    union,
)

SCHEMA = pa.schema([("path", pa.string()), ("idx", pa.int64())])


def _part(path: str, n: int) -> pa.Table:
    return pa.table({"path": [path] * n, "idx": list(range(n))}, schema=SCHEMA)


def test_spilled_parts_scan_like_the_tables(tmp_path):
    scratch = Scratch(str(tmp_path))
    spilled = spill_parts(
        scratch, {"t": SCHEMA, "empty": SCHEMA}, [{"t": _part("a.py", 3)}, {"t": _part("b.py", 2)}]
    )
    assert spilled["t"].num_rows == 5 and spilled["empty"].num_rows == 0
    both = union(scratch, "t", [spilled["t"], scratch.spill("t", _part("c.py", 4))])
    ctx = SessionContext()
    both.register(ctx, "t")
    spilled["empty"].register(ctx, "e")
    rows = ctx.sql("SELECT path, count(*) AS n FROM t GROUP BY path ORDER BY path")
    assert rows.to_pylist() == [
        {"path": "a.py", "n": 3}, {"path": "b.py", "n": 2}, {"path": "c.py", "n": 4}
    ]  # fmt: skip
    assert ctx.sql("SELECT count(*) AS n FROM e").to_pylist() == [{"n": 0}]
    assert both.read().schema == SCHEMA and both.num_rows == 9
    assert spilled["t"].read().num_rows == 5  # the parts are unchanged by the union


@pytest.mark.parametrize(("dropped", "filter_by"), [(["a.py"], "drop"), (["a.py", "e.py"], "keep")])
def test_an_adopted_file_counts_only_its_kept_paths_for_every_reader(tmp_path, dropped, filter_by):
    """Files adopted from elsewhere (the evidence cache) are linked, not copied; a file given
    with paths contributes only their rows, to DataFusion, ``read``, ``batches``, ``num_rows``
    and a union, and a pickle carries exactly those rows. It is filtered by the shorter list:
    the paths dropped, or the paths kept; a file whose paths are all kept, not at all."""
    scratch = Scratch(str(tmp_path))
    rows = [_part(p, 3) for p in dropped] + [_part("b.py", 2)]
    source = scratch.spill("src", pa.concat_tables(rows))
    other = scratch.spill("src", _part("c.py", 4))
    (big,) = source.files()
    (whole,) = scratch.spill("src", _part("c.py", 1)).files()

    adopted = adopt(
        scratch, "t", SCHEMA,
        [(big, frozenset({"b.py"})), (other.files()[0], None), (whole, frozenset({"c.py"}))],
    )  # fmt: skip
    # Only the first file is filtered, by the shorter of its two lists.
    filters = {"keep": adopted.keep_paths, "drop": adopted.drop_paths}
    assert {k: list(v.values()) for k, v in filters.items() if v} == {
        filter_by: [frozenset({"b.py"}) if filter_by == "keep" else frozenset(dropped)]
    }
    adopted = union(scratch, "t", [adopted])  # a union keeps the filters
    assert adopted.files()[0].stat().st_ino == big.stat().st_ino  # linked
    expected = {"b.py": 2, "c.py": 5}
    assert adopted.num_rows == 7
    read = adopted.read()["path"].value_counts().to_pylist()
    assert {c["values"]: c["counts"] for c in read} == expected
    assert sum(b.num_rows for b in adopted.batches()) == 7
    both = union(scratch, "t", [adopted, scratch.spill("t", _part("d.py", 1))])
    assert both.num_rows == 8
    for _ in range(2):  # the files read whole are linked together once, then reused
        ctx = SessionContext()
        both.register(ctx, "t")
        found = ctx.sql("SELECT path, count(*) AS n FROM t GROUP BY path").to_pylist()
        assert {r["path"]: r["n"] for r in found} == {**expected, "d.py": 1}
    assert len(list(tmp_path.glob("**/t-*-whole-*"))) == 1
    assert pickle.loads(pickle.dumps(both)).num_rows == 8


def test_a_spilled_table_pickles_as_its_rows(tmp_path):
    spilled = Scratch(str(tmp_path)).spill("t", _part("a.py", 3))
    copy = pickle.loads(pickle.dumps(spilled))
    assert isinstance(copy, pa.Table) and copy.equals(spilled.read())


def test_scratch_goes_with_cleanup_or_its_last_table(tmp_path):
    scratch = Scratch(str(tmp_path))
    scratch.spill("t", _part("a.py", 1))
    scratch.cleanup()
    assert not scratch.path.exists()
    spilled = Scratch(str(tmp_path)).spill("t", _part("a.py", 1))
    where = Path(spilled.directory).parent
    assert where.exists()
    del spilled
    gc.collect()
    assert not where.exists()


def test_a_failed_stream_leaves_no_table(tmp_path):
    scratch = Scratch(str(tmp_path))

    def batches():
        yield from _part("a.py", 2).to_batches()
        raise RuntimeError("stream failed")

    with pytest.raises(RuntimeError):
        scratch.write("t", SCHEMA, batches())
    assert list(scratch.path.iterdir()) == []


def test_a_sliced_batch_with_string_views_in_lists_spills_and_reads_back(tmp_path):
    """DataFusion hands back slices over in-memory inputs (a remote build's class hierarchy:
    ``array_agg(named_struct(...))``); pyarrow's Parquet writer cannot slice string views
    nested in lists and structs, so those are spilled as plain strings."""
    item = pa.struct([("cls", pa.string_view()), ("base_index", pa.int64())])
    edges = pa.array([[{"cls": c, "base_index": i}] for i, c in enumerate("abc")], pa.list_(item))
    ids = pa.array(["x", "y", "z"], pa.string_view())
    batch = pa.record_batch([ids, edges], names=["class_id", "edges"]).slice(1, 2)
    spilled = Scratch(str(tmp_path)).write("class_hierarchy", batch.schema, [batch])
    assert spilled.read().to_pylist() == [
        {"class_id": "y", "edges": [{"cls": "b", "base_index": 1}]},
        {"class_id": "z", "edges": [{"cls": "c", "base_index": 2}]},
    ]


@pytest.mark.parametrize("dictionary", [True, False])
def test_path_counts_add_up_across_row_groups(tmp_path, dictionary):
    """Each row group has a dictionary of its own (or none): a path in several row groups is
    one entry, with all its rows."""
    import pyarrow.parquet as pq

    file = tmp_path / "rows.parquet"
    with pq.ParquetWriter(file, pa.schema([("path", pa.string())]), use_dictionary=dictionary) as w:
        w.write_table(pa.table({"path": ["a.py", "b.py", "a.py"]}))
        w.write_table(pa.table({"path": ["c.py", "a.py"]}))
        w.write_table(pa.table({"path": ["b.py"]}))
    assert pq.ParquetFile(file).metadata.num_row_groups == 3
    assert path_counts(file) == {"a.py": 3, "b.py": 2, "c.py": 1}


def test_a_spilled_table_with_paths_counts_them_in_its_footer(tmp_path):
    """What ``path_counts`` reads instead of the column: the rows of every batch written,
    string views included; a table whose path can be null says nothing there."""
    import pyarrow.parquet as pq

    scratch = Scratch(str(tmp_path))
    batches = [
        pa.record_batch({"path": pa.array(["a.py", "b.py", "a.py"], pa.string_view())}),
        pa.record_batch({"path": pa.array(["b.py", "c.py"], pa.string_view())}),
    ]
    table = scratch.write("t", pa.schema([("path", pa.string())]), batches)
    (file,) = table.files()
    footer = pq.read_metadata(file).metadata
    assert PATH_COUNTS_KEY in footer
    assert path_counts(file) == {"a.py": 2, "b.py": 2, "c.py": 1}
    nulls = scratch.spill("n", pa.table({"path": ["a.py", None]}))
    (file,) = nulls.files()
    assert PATH_COUNTS_KEY not in (pq.read_metadata(file).metadata or {})
    assert path_counts(file) == {"a.py": 1, None: 1}
