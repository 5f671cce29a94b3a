"""Row buffers: keyword rows in, the declared Arrow table out."""

from __future__ import annotations

import pyarrow as pa
import pytest

from codeanatomy_assets.extract.columns import Columns

SCHEMA = pa.schema([("path", pa.string()), ("idx", pa.int32()), ("name", pa.string())])


def test_rows_become_the_declared_table_and_absent_columns_are_null():
    cols = Columns(SCHEMA)
    cols.append(path="a.py", idx=0, name="f")
    cols.append(idx=1, path="a.py")
    assert len(cols) == 2
    table = cols.to_table()
    assert table.schema == SCHEMA
    assert table.to_pylist() == [
        {"path": "a.py", "idx": 0, "name": "f"},
        {"path": "a.py", "idx": 1, "name": None},
    ]


def test_each_buffer_appends_to_its_own_lists_before_and_after_extend():
    first, second = Columns(SCHEMA), Columns(SCHEMA)
    first.append(path="a.py", idx=0)
    second.append(path="b.py", idx=1)
    first.extend(second)
    first.append(path="a.py", idx=2)
    assert first.data["idx"] == [0, 1, 2]
    assert second.data["idx"] == [1]


def test_a_column_the_schema_lacks_is_refused():
    cols = Columns(SCHEMA)
    with pytest.raises(TypeError, match="nmae"):
        cols.append(path="a.py", idx=0, nmae="typo")
    assert len(cols) == 0


def test_a_schema_whose_names_are_not_identifiers_is_refused():
    with pytest.raises(ValueError, match="identifiers"):
        Columns(pa.schema([("bad name", pa.string())]))
