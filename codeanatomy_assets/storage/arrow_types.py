"""Arrow type normalization: readers may pick physical variants of the contract's types.

DataFusion hands back ``string_view`` and Delta readers may give large types; contracts, CSV
output and comparisons speak plain ``string`` and ``list``. One mapping, used everywhere.
"""

from __future__ import annotations

import pyarrow as pa


def normalize_type(dtype: pa.DataType) -> pa.DataType:
    """Map string views, large strings and list variants (recursively) to the plain types."""
    if pa.types.is_large_string(dtype) or pa.types.is_string_view(dtype):
        return pa.string()
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_list_view(dtype):
        return pa.list_(normalize_type(dtype.value_type))
    if pa.types.is_struct(dtype):
        # Nested fields compare in one canonical form: nullable (what the contracts declare).
        return pa.struct([pa.field(f.name, normalize_type(f.type)) for f in dtype])
    return dtype


def plain_strings(table: pa.Table) -> pa.Table:
    """``table`` cast to normalized types (a no-op when nothing differs)."""
    schema = pa.schema([pa.field(f.name, normalize_type(f.type), f.nullable) for f in table.schema])
    return table if schema.equals(table.schema) else table.cast(schema)


def _nested_plain(dtype: pa.DataType) -> pa.DataType:
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype) or pa.types.is_struct(dtype):
        return normalize_type(dtype)
    return dtype


def parquet_writable(schema: pa.Schema) -> pa.Schema:
    """``schema`` with the string views inside lists and structs made plain strings.

    pyarrow's Parquet writer cannot slice a string view nested in a list or a struct
    (``ArrowNotImplementedError: Slicing not implemented for StringView``), which it does for a
    batch that is itself a slice, as DataFusion hands back over in-memory inputs (a remote
    build's class hierarchy: ``array_agg(named_struct(...))``). Top-level views it writes, so
    they are left as they are: a cast would copy every string.
    """
    fields = [pa.field(f.name, _nested_plain(f.type), f.nullable, f.metadata) for f in schema]
    return pa.schema(fields, metadata=schema.metadata)
