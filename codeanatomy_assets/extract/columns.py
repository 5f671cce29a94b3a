"""Columnar row buffers: append rows as Python values, hand over Arrow tables.

Extractors append millions of rows; a list per column is the cheapest way to build them in
Python, and ``pa.Table.from_pydict`` with the declared schema converts them in one pass.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa


class Columns:
    """Lists of values, one per column of ``schema``, filled row by row."""

    __slots__ = ("data", "schema")

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.data: dict[str, list[Any]] = {name: [] for name in schema.names}

    def __len__(self) -> int:
        first = next(iter(self.data.values()), [])
        return len(first)

    def append(self, **row: Any) -> None:
        for name, values in self.data.items():
            values.append(row.get(name))

    def extend(self, other: Columns) -> None:
        for name, values in self.data.items():
            values.extend(other.data[name])

    def to_table(self) -> pa.Table:
        return pa.Table.from_pydict(self.data, schema=self.schema)
