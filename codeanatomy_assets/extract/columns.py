"""Columnar row buffers: append rows as Python values, hand over Arrow tables.

Extractors append millions of rows; a list per column is the cheapest way to build them in
Python, and ``pa.Table.from_pydict`` with the declared schema converts them in one pass.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable
from typing import Any

import pyarrow as pa

# Per schema (its column names), a function that builds a row appender for given lists.
_APPENDERS: dict[tuple[str, ...], Callable[..., Callable[..., None]]] = {}


def _appender_factory(names: tuple[str, ...]) -> Callable[..., Callable[..., None]]:
    """A function that, given the column lists' ``append`` methods, returns
    ``append(*, a=None, b=None, ...)`` calling each with its column's value.

    Generated once per schema, as ``dataclasses`` generates ``__init__``: a keyword call binds
    straight to parameters, where ``append(**row)`` built a dict and looped over the columns
    with ``row.get`` (about a third of the appends' time)."""
    factory = _APPENDERS.get(names)
    if factory is None:
        if not all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
            raise ValueError(f"column names must be identifiers: {names}")
        binds = [f"_{i}" for i in range(len(names))]
        params = ", ".join(f"{n}=None" for n in names)
        calls = "; ".join(f"{b}({n})" for b, n in zip(binds, names, strict=True))
        source = (
            f"def factory({', '.join(binds)}):\n"
            f"    def append(*, {params}):\n"
            f"        {calls}\n"
            f"    return append\n"
        )
        namespace: dict[str, Any] = {}
        exec(source, namespace)  # the names are identifiers (checked above)
        factory = namespace["factory"]
        _APPENDERS[names] = factory
    return factory


class Columns:
    """Lists of values, one per column of ``schema``, filled row by row (``append`` takes the
    columns as keywords; an absent one is None)."""

    __slots__ = ("append", "data", "schema")

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.data: dict[str, list[Any]] = {name: [] for name in schema.names}
        names = tuple(schema.names)
        self.append: Callable[..., None] = _appender_factory(names)(
            *(self.data[n].append for n in names)
        )

    def __len__(self) -> int:
        first = next(iter(self.data.values()), [])
        return len(first)

    def extend(self, other: Columns) -> None:
        for name, values in self.data.items():
            values.extend(other.data[name])

    def to_table(self) -> pa.Table:
        return pa.Table.from_pydict(self.data, schema=self.schema)
