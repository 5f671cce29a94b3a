"""Evidence from ``symtable``: scopes and the symbols bound in them, with their flags.

``symtable`` reports a scope's name and first line but no columns, so each scope is matched
to the span of the ``ast`` node that opens it (recorded by ``ast_extract`` as
``(name, line) -> spans``, in source order); the module scope spans the file. The scope path
(``top/C/m``; ``top/f/listcomp#1`` for a second listcomp in ``f``) is unique
within a file and is the id discriminator.
"""

from __future__ import annotations

import symtable

from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.evidence import SCOPES, SYMBOLS
from codeanatomy_assets.normalize.spans import Span

_FLAG_METHODS: tuple[tuple[str, str], ...] = (
    ("is_local", "is_local"),
    ("is_global", "is_global"),
    ("is_declared_global", "is_declared_global"),
    ("is_nonlocal", "is_nonlocal"),
    ("is_free", "is_free"),
    ("is_parameter", "is_parameter"),
    ("is_imported", "is_imported"),
    ("is_assigned", "is_assigned"),
    ("is_referenced", "is_referenced"),
    ("is_annotated", "is_annotated"),
    ("is_namespace", "is_namespace"),
)


def extract_symtable(
    text: str,
    path: str,
    module_name: str,
    whole: Span,
    scope_spans: dict[tuple[str, int], list[Span]],
) -> tuple[Columns, Columns]:
    """Scope and symbol rows for one file's source ``text``."""
    scopes = Columns(SCOPES)
    symbols = Columns(SYMBOLS)
    top = symtable.symtable(text, path, "exec")
    used: dict[tuple[str, int], int] = {}
    # stack: table, its scope path, parent scope path, qualified name of its owner
    stack: list[tuple[symtable.SymbolTable, str, str | None, str]] = [
        (top, "top", None, module_name)
    ]
    while stack:
        table, scope_path, parent_path, qual = stack.pop()
        name = table.get_name()
        line = table.get_lineno()
        if parent_path is None:
            span = whole
        else:
            key = (name, line)
            nth = used.get(key, 0)
            used[key] = nth + 1
            candidates = scope_spans.get(key, [])
            span = (
                candidates[nth]
                if nth < len(candidates)
                else Span(whole.bstart, whole.bstart, line, 0, line, 0)
            )
        scopes.append(
            path=path,
            scope_path=scope_path,
            parent_scope_path=parent_path,
            scope_type=str(table.get_type()).lower().rsplit(".", 1)[-1],
            name=name,
            qualified_name=qual,
            bstart=span.bstart,
            bend=span.bend,
            line_start=span.line_start,
            col_start=span.col_start,
            line_end=span.line_end,
            col_end=span.col_end,
        )
        children = table.get_children()
        for sym in _symbols(table, children):
            row = {flag: bool(getattr(sym, method)()) for flag, method in _FLAG_METHODS}
            symbols.append(
                path=path,
                scope_path=scope_path,
                name=sym.get_name(),
                bstart=span.bstart,
                bend=span.bend,
                line_start=span.line_start,
                col_start=span.col_start,
                line_end=span.line_end,
                col_end=span.col_end,
                **row,
            )
        # Siblings may share a name (a method redefined, a name bound in two branches):
        # the n-th repeat of a name in a scope gets "#n", so every scope path is unique.
        seen: dict[str, int] = {}
        for child in children:
            cname = child.get_name()
            n = seen.get(cname, 0)
            seen[cname] = n + 1
            child_path = f"{scope_path}/{cname}#{n}" if n else f"{scope_path}/{cname}"
            stack.append((child, child_path, scope_path, f"{qual}.{cname}"))
    return scopes, symbols


def _symbols(
    table: symtable.SymbolTable, children: list[symtable.SymbolTable]
) -> list[symtable.Symbol]:
    """The symbols of ``table``, in one pass over its children.

    ``SymbolTable.get_symbols()`` scans every child table once per symbol to find the
    namespaces a name binds: quadratic in a module's definitions (a generated module of
    30,000 functions took 37 s, all of it there). The namespaces by name are gathered once
    here and each ``Symbol`` is built from the raw flags, exactly as ``lookup`` builds it.
    """
    raw = getattr(table, "_table", None)
    flags_by_name = getattr(raw, "symbols", None)
    if not isinstance(flags_by_name, dict):  # a future CPython without the private handle
        return table.get_symbols()
    namespaces: dict[str, list[symtable.SymbolTable]] = {}
    for child in children:
        namespaces.setdefault(child.get_name(), []).append(child)
    module_scope = table.get_name() == "top"
    return [
        symtable.Symbol(name, flags, namespaces.get(name, []), module_scope=module_scope)
        for name, flags in flags_by_name.items()
    ]
