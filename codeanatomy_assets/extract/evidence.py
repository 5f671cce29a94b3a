"""Schemas of the evidence tables the extractors produce (the inputs of every CPG view).

Positions follow ``normalize.spans``: byte offsets half-open into the file's bytes, 1-based
lines, 0-based code-point columns. ``idx`` is a node's pre-order index within its file (the
module is 0); ``parent_idx``/``def_idx`` point at other rows of the same file.
"""

from __future__ import annotations

import pyarrow as pa

from codeanatomy_assets.cpg.vocabulary import SYMBOL_FLAGS

_S, _I32, _I64, _B = pa.string(), pa.int32(), pa.int64(), pa.bool_()

_SPAN = [
    ("bstart", _I64),
    ("bend", _I64),
    ("line_start", _I32),
    ("col_start", _I32),
    ("line_end", _I32),
    ("col_end", _I32),
]

FILES = pa.schema(
    [
        ("path", _S),
        ("blob_id", _S),
        ("size_bytes", _I64),
        ("module_name", _S),
        ("package_path", _S),  # directory of the file ('' at the root)
        ("is_stub", _B),
        ("status", _S),  # ok | error | skipped
        ("encoding", _S),
        ("line_count", _I32),
        ("line_end", _I32),
        ("col_end", _I32),
    ]
)

PACKAGES = pa.schema(
    [
        ("path", _S),  # the directory, POSIX, relative to the root
        ("parent_path", _S),  # '' for a top-level directory
        ("name", _S),
        ("qualified_name", _S),
        ("is_namespace", _B),
        ("is_import_root", _B),  # module names below are relative to it (extract.packages)
    ]
)

AST_NODES = pa.schema(
    [
        ("path", _S),
        ("idx", _I32),
        ("parent_idx", _I32),
        ("field", _S),
        ("field_index", _I32),
        ("def_idx", _I32),  # nearest enclosing MODULE/CLASS/FUNCTION row (-1 for the module)
        ("ast_type", _S),
        ("node_kind", _S),
        ("discriminator", _S),
        ("name", _S),
        ("qualified_name", _S),
        *_SPAN,
        ("ctx", _S),
        ("operator", _S),
        ("literal_type", _S),
        ("literal_value", _S),
        ("is_async", _B),
        ("decorator_count", _I32),
        ("param_kind", _S),
        ("param_index", _I32),
    ]
)

IMPORTS = pa.schema(
    [
        ("path", _S),
        ("idx", _I32),  # the Import / ImportFrom node
        ("level", _I32),
        ("module", _S),  # as written ('' for `from . import x`)
        ("name", _S),  # imported name for `from m import name`; NULL for `import m`
        ("asname", _S),
        ("target", _S),  # absolute dotted module the statement names (relative resolved)
    ]
)

SCOPES = pa.schema(
    [
        ("path", _S),
        ("scope_path", _S),  # symtable path: 'top', 'top/C', 'top/f/listcomp#1' (2nd one)
        ("parent_scope_path", _S),
        ("scope_type", _S),
        ("name", _S),
        ("qualified_name", _S),
        *_SPAN,
    ]
)

SYMBOLS = pa.schema(
    [
        ("path", _S),
        ("scope_path", _S),
        ("name", _S),
        ("bstart", _I64),
        ("bend", _I64),
        ("line_start", _I32),
        ("col_start", _I32),
        ("line_end", _I32),
        ("col_end", _I32),
        *((f"is_{flag}", _B) for flag in SYMBOL_FLAGS),
    ]
)

_OWNER = [
    ("path", _S),
    ("owner_idx", _I32),  # the MODULE/CLASS/FUNCTION row whose body the CFG is
    ("block_index", _I32),  # 0 = entry, 1 = exit, then source order (see extract.cfg)
]

CFG_BLOCKS = pa.schema([*_OWNER, ("block_kind", _S), *_SPAN])

CFG_STATEMENTS = pa.schema([*_OWNER, ("stmt_idx", _I32)])

CFG_EDGES = pa.schema(
    [
        ("path", _S),
        ("owner_idx", _I32),
        ("src_block", _I32),
        ("dst_block", _I32),
        ("label", _S),  # next, true, false, case, loop, break, continue, return, raise...
    ]
)

REACHING_DEFS = pa.schema(
    [
        ("path", _S),
        ("owner_idx", _I32),
        ("name", _S),
        ("def_idx", _I32),  # the defining node row (Name target, arg, alias, def...)
        ("use_idx", _I32),  # the Name load row
    ]
)

# Facts for name, call and import resolution (``extract.binding_extract``): each row says
# which reference an expression makes, resolved as far as one file allows. ``ref_kind``:
# node (a def/class/lambda row of this file, ``ref_idx``), dotted (an absolute dotted path
# through an import, ``ref_text``), builtin, star (a module-level name no binding explains),
# param (a parameter ``ref_text`` at ``position`` of function row ``ref_idx``), none.
# ``attrs`` is the attribute chain read on the reference; ``receiver`` how the result is
# used: '' (the thing itself), instance / class (an instance of / the class of a class
# reference), super (the MRO after the class), result (what calling it returns); ``member``
# the attribute then looked up on the receiver (``a = A(); a.m()``: node A, result, m).
RESOLUTION_REFS = pa.schema(
    [
        ("path", _S),
        ("site_idx", _I32),  # the expression row (Call, decorator, base, annotation...)
        ("role", _S),  # call, decorator, base, annotation, binding, export, return, argument
        ("owner_idx", _I32),  # caller scope / class / annotated node / call (for arguments)
        ("name", _S),  # bound or exported name, keyword, or annotation kind
        ("position", _I32),  # base index, argument position, decorated def row
        ("ref_kind", _S),
        ("ref_idx", _I32),
        ("ref_text", _S),
        ("ref_relative", _B),  # ref_text came from a relative import (root-aware rewrite)
        ("attrs", _S),
        ("receiver", _S),
        ("member", _S),  # attribute looked up on the receiver (a method name)
        ("method", _S),  # how the file resolved it: local, enclosing, global, import, self...
        ("confidence", pa.float64()),
        ("text", _S),  # source text of annotations and bases
    ]
)

NAME_USES = pa.schema(
    [
        ("path", _S),
        ("use_idx", _I32),  # a Name row
        ("name", _S),
        ("use_kind", _S),  # read, write, delete
        ("scope_kind", _S),  # local, enclosing, global, class, builtin, unresolved
        ("scope_idx", _I32),  # the row opening the resolving scope (module 0, def, lambda)
        ("binding_idx", _I32),  # a binding row of the resolving scope (NULL: none)
    ]
)

ERRORS = pa.schema(
    [
        ("path", _S),
        ("extractor", _S),
        ("error_kind", _S),
        ("message", _S),
        ("line", _I32),
        ("col", _I32),
        ("bstart", _I64),
    ]
)

EVIDENCE_SCHEMAS: dict[str, pa.Schema] = {
    "files": FILES,
    "packages": PACKAGES,
    "ast_nodes": AST_NODES,
    "imports": IMPORTS,
    "scopes": SCOPES,
    "symbols": SYMBOLS,
    "cfg_blocks": CFG_BLOCKS,
    "cfg_statements": CFG_STATEMENTS,
    "cfg_edges": CFG_EDGES,
    "reaching_defs": REACHING_DEFS,
    "resolution_refs": RESOLUTION_REFS,
    "name_uses": NAME_USES,
    "errors": ERRORS,
}
# Tables produced per file by the extraction workers (files/packages come from the scan).
PER_FILE_TABLES: tuple[str, ...] = (
    "ast_nodes",
    "imports",
    "scopes",
    "symbols",
    "cfg_blocks",
    "cfg_statements",
    "cfg_edges",
    "reaching_defs",
    "resolution_refs",
    "name_uses",
    "errors",
)
