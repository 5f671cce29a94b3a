"""Nesting sorted rows by Arrow offsets gives one row per key with its list, in order."""

from __future__ import annotations

import pyarrow as pa

from codeanatomy_assets.cpg.nesting import NestSpec, nest, nest_batches


def test_nest_runs_of_keys():
    flat = pa.table({"k": ["a", "a", "b"], "kind": ["x", "x", "y"], "v": [1, 2, 3]})
    out = nest(flat, NestSpec("k", "items", ("v",), carry=("kind",), count="n"))
    assert out.to_pylist() == [
        {"k": "a", "kind": "x", "n": 2, "items": [{"v": 1}, {"v": 2}]},
        {"k": "b", "kind": "y", "n": 1, "items": [{"v": 3}]},
    ]


def test_nest_empty():
    flat = pa.table({"k": pa.array([], pa.string()), "v": pa.array([], pa.int64())})
    out = nest(flat, NestSpec("k", "items", ("v",), count="n"))
    assert out.num_rows == 0 and out.column_names == ["k", "n", "items"]


def test_nest_batches_equals_nest_whatever_the_batch_boundaries():
    keys = sorted(["a"] * 5 + ["b"] + ["c"] * 9 + ["d"] * 2)
    flat = pa.table({"k": keys, "v": list(range(len(keys)))})
    spec = NestSpec("k", "items", ("v",), count="n")
    whole = nest(flat, spec).to_pylist()
    for size in (1, 2, 3, 5, 17, 100):
        parts = nest_batches(flat.to_batches(max_chunksize=size), spec)
        assert [row for part in parts for row in part.to_pylist()] == whole, size
