"""The CPG vocabulary as data: node kinds, edge kinds, property keys and their value types.

This is the one place the words of the graph are defined. Views, quality checks and docs read
these tables; nothing else spells a kind as a bare string it made up.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class NodeKind(StrEnum):
    REPOSITORY = "REPOSITORY"
    PACKAGE = "PACKAGE"
    FILE = "FILE"
    MODULE = "MODULE"
    CLASS = "CLASS"
    FUNCTION = "FUNCTION"  # functions, methods, lambdas
    PARAMETER = "PARAMETER"
    CALL = "CALL"
    NAME = "NAME"
    ATTRIBUTE = "ATTRIBUTE"
    IMPORT = "IMPORT"
    LITERAL = "LITERAL"
    AST_NODE = "AST_NODE"  # every other syntax node; its ast type is the `ast_type` property
    SCOPE = "SCOPE"
    SYMBOL = "SYMBOL"
    BASIC_BLOCK = "BASIC_BLOCK"
    EXTERNAL = "EXTERNAL"  # a module or symbol outside the repository (`os.path`, `builtins.len`)


class EdgeKind(StrEnum):
    AST_CHILD = "AST_CHILD"  # syntax parent -> child; props: ast_field, ast_field_index
    CONTAINS = "CONTAINS"  # repository/package/file/module/definition -> what lies in it
    DEFINES = "DEFINES"  # module/class/function -> class/function defined directly in it
    REFERENCES = "REFERENCES"  # NAME read -> the definition it reads (def, class, parameter,
    # assignment target of another scope; through an import: the imported definition)
    READS = "READS"  # NAME -> SYMBOL of the scope it resolves to (prop use_kind)
    WRITES = "WRITES"  # NAME store/del -> SYMBOL it binds (prop use_kind)
    IMPORTS = "IMPORTS"  # IMPORT node -> MODULE of the repository, or EXTERNAL
    CALLS = "CALLS"  # caller def/module -> callee def or EXTERNAL; resolution_method, confidence
    INHERITS = "INHERITS"  # class -> base class (CLASS or EXTERNAL), discriminated by position
    DECORATES = "DECORATES"  # decorator definition -> the def or class it decorates
    HAS_PARAMETER = "HAS_PARAMETER"  # function -> parameter, in signature order
    ARGUMENT = "ARGUMENT"
    CFG_NEXT = "CFG_NEXT"
    REACHING_DEF = "REACHING_DEF"
    SCOPE_PARENT = "SCOPE_PARENT"  # scope -> its enclosing scope
    BINDS = "BINDS"  # scope -> symbol bound in it
    # parameter / function (its return) / annotated target -> a repository CLASS named in
    # its annotation (also inside subscripts and string forward references)
    ANNOTATED_WITH = "ANNOTATED_WITH"


class ValueType(StrEnum):
    STRING = "string"
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    JSON = "json"


VALUE_COLUMNS: dict[ValueType, str] = {
    ValueType.STRING: "value_string",
    ValueType.INT: "value_int",
    ValueType.FLOAT: "value_float",
    ValueType.BOOL: "value_bool",
    ValueType.JSON: "value_json",
}


@dataclass(frozen=True, slots=True)
class PropKey:
    """A property key: its name, the one value type it may carry, and what it means."""

    key: str
    value_type: ValueType
    description: str


_SYMBOL_FLAGS = (
    "local",
    "global",
    "declared_global",
    "nonlocal",
    "free",
    "parameter",
    "imported",
    "assigned",
    "referenced",
    "annotated",
    "namespace",
)

PROP_KEYS: dict[str, PropKey] = {
    p.key: p
    for p in (
        PropKey("ast_type", ValueType.STRING, "the `ast` class name of a syntax node"),
        PropKey("ctx", ValueType.STRING, "Load, Store or Del for names, attributes, subscripts"),
        PropKey(
            "operator", ValueType.STRING, "the operator class of BinOp/UnaryOp/BoolOp/AugAssign"
        ),
        PropKey("literal_type", ValueType.STRING, "Python type name of a constant"),
        PropKey("literal_value", ValueType.STRING, "repr of a constant, cut at 200 characters"),
        PropKey("is_async", ValueType.BOOL, "async def / async for / async with"),
        PropKey("decorator_count", ValueType.INT, "number of decorators of a def or class"),
        PropKey("param_kind", ValueType.STRING, "posonly, positional, vararg, kwonly or kwarg"),
        PropKey("param_index", ValueType.INT, "0-based position of a parameter in the signature"),
        PropKey("import_level", ValueType.INT, "dots of a relative import (0 = absolute)"),
        PropKey("import_module", ValueType.STRING, "module as written in the import"),
        PropKey("import_target", ValueType.STRING, "absolute dotted path the import names"),
        PropKey("import_asname", ValueType.STRING, "the `as` alias of an imported name"),
        PropKey("blob_id", ValueType.STRING, "git blob id of a file's content"),
        PropKey("size_bytes", ValueType.INT, "file size in bytes"),
        PropKey("line_count", ValueType.INT, "number of lines of a file"),
        PropKey("encoding", ValueType.STRING, "source encoding of a file (PEP 263 / BOM)"),
        PropKey("is_stub", ValueType.BOOL, "a .pyi stub file or module"),
        PropKey("is_namespace", ValueType.BOOL, "a package directory without __init__.py"),
        PropKey("scope_type", ValueType.STRING, "symtable scope type: module, class, function..."),
        *(
            PropKey(f"is_{flag}", ValueType.BOOL, f"symtable flag: the symbol is {flag}")
            for flag in _SYMBOL_FLAGS
        ),
        PropKey(
            "block_kind",
            ValueType.STRING,
            "entry, exit, body, loop_header, handler or finally (extract.cfg)",
        ),
        PropKey(
            "cfg_label",
            ValueType.STRING,
            "branch label of a CFG_NEXT edge: next, true, false, case, loop, break, "
            "continue, return, raise, exception, finally, with_exit",
        ),
        PropKey("variable", ValueType.STRING, "the variable a REACHING_DEF edge carries"),
        PropKey("ast_field", ValueType.STRING, "AST field of the child on an AST_CHILD edge"),
        PropKey(
            "mro",
            ValueType.JSON,
            "method resolution order of a class: json list of qualified names (EXTERNAL "
            "bases by dotted path; `object` left out)",
        ),
        PropKey("annotation", ValueType.STRING, "source text of a parameter/variable annotation"),
        PropKey("return_annotation", ValueType.STRING, "source text of a return annotation"),
        PropKey("use_kind", ValueType.STRING, "read, write or delete, on READS/WRITES"),
        PropKey("ast_field_index", ValueType.INT, "position in a list field, on AST_CHILD"),
    )
}

SYMBOL_FLAGS: tuple[str, ...] = _SYMBOL_FLAGS
