"""Evidence from ``ast``: every syntax node with its parent edge, definitions, imports.

One pass over the tree with an explicit stack (no recursion: a left-deep chain of 100,000
binary operators must not overflow anything). Each node becomes one ``ast_nodes`` row with
its CPG kind, span, enclosing definition and the few properties views need; expression
contexts and operators are folded into properties of their owner instead of becoming nodes,
since they have no position of their own.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from typing import NamedTuple

from codeanatomy_assets.cpg.vocabulary import NodeKind
from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.evidence import AST_NODES, IMPORTS
from codeanatomy_assets.normalize.spans import LineIndex, Span

_KIND_BY_TYPE: dict[type, str] = {
    ast.Module: NodeKind.MODULE.value,
    ast.ClassDef: NodeKind.CLASS.value,
    ast.FunctionDef: NodeKind.FUNCTION.value,
    ast.AsyncFunctionDef: NodeKind.FUNCTION.value,
    ast.Lambda: NodeKind.FUNCTION.value,
    ast.arg: NodeKind.PARAMETER.value,
    ast.Call: NodeKind.CALL.value,
    ast.Name: NodeKind.NAME.value,
    ast.Attribute: NodeKind.ATTRIBUTE.value,
    ast.Import: NodeKind.IMPORT.value,
    ast.ImportFrom: NodeKind.IMPORT.value,
    ast.Constant: NodeKind.LITERAL.value,
}
_AST_NODE = NodeKind.AST_NODE.value
_FOLDED = (ast.expr_context, ast.operator, ast.boolop, ast.unaryop, ast.cmpop)
_ASYNC_TYPES = (ast.AsyncFunctionDef, ast.AsyncFor, ast.AsyncWith)
_LITERAL_CHARS = 200
# Nodes (besides Name, arg, alias and defs) at whose position a definition may be reported.
_BINDING_TYPES = (ast.ExceptHandler, ast.MatchAs, ast.MatchStar, ast.MatchMapping)

# Symtable names of the scopes an ast node opens (for matching scopes to spans).
SCOPE_NAMES: dict[type, str] = {
    ast.ListComp: "listcomp",
    ast.SetComp: "setcomp",
    ast.DictComp: "dictcomp",
    ast.GeneratorExp: "genexpr",
    ast.Lambda: "lambda",
}

# Which branch of ``extract_ast`` a node of each type takes: one dict lookup a node instead of
# a chain of ``isinstance`` tests and ``ast.X`` loads (about 30 a node; the walk's time -10 %).
(
    _OTHER, _NAME, _ATTRIBUTE, _CONSTANT, _CALL, _ARG, _MODULE, _DEF, _LAMBDA, _IMPORT,
    _ARGUMENTS, _OPERATOR, _COMPARE, _KEYWORD, _ALIAS, _BINDING,
) = range(16)  # fmt: skip
_CASES: dict[type, int] = {
    ast.Name: _NAME,
    ast.Attribute: _ATTRIBUTE,
    ast.Constant: _CONSTANT,
    ast.Call: _CALL,
    ast.arg: _ARG,
    ast.Module: _MODULE,
    ast.FunctionDef: _DEF,
    ast.AsyncFunctionDef: _DEF,
    ast.ClassDef: _DEF,
    ast.Lambda: _LAMBDA,
    ast.Import: _IMPORT,
    ast.ImportFrom: _IMPORT,
    ast.arguments: _ARGUMENTS,
    ast.BinOp: _OPERATOR,
    ast.UnaryOp: _OPERATOR,
    ast.BoolOp: _OPERATOR,
    ast.AugAssign: _OPERATOR,
    ast.Compare: _COMPARE,
    ast.keyword: _KEYWORD,
    ast.alias: _ALIAS,
    **{t: _BINDING for t in _BINDING_TYPES},
}


class _TypeInfo(NamedTuple):
    """The per-type facts of a node's row, computed once per type."""

    ast_type: str
    kind: str
    case: int
    is_stmt: bool
    scope_name: str | None  # comprehensions: the symtable name of the scope they open
    is_async: bool | None
    fields: tuple[str, ...]


def _is_async(ntype: type) -> bool | None:
    """True for the async forms, False for the forms that have one, else None."""
    if issubclass(ntype, _ASYNC_TYPES):
        return True
    return False if ntype in (ast.FunctionDef, ast.For, ast.With) else None


class _TypeInfos(dict[type, _TypeInfo]):
    """``_TypeInfo`` by node type, filled on first sight of a type."""

    def __missing__(self, ntype: type) -> _TypeInfo:
        info = _TypeInfo(
            ast_type=ntype.__name__,
            kind=_KIND_BY_TYPE.get(ntype, _AST_NODE),
            case=_CASES.get(ntype, _OTHER),
            is_stmt=issubclass(ntype, ast.stmt),
            scope_name=SCOPE_NAMES.get(ntype) if ntype is not ast.Lambda else None,
            is_async=_is_async(ntype),
            fields=ntype._fields,  # type: ignore[attr-defined]
        )
        self[ntype] = info
        return info


_TYPE_INFO = _TypeInfos()


class _Walked(dict[type, bool]):
    """Whether a field value of each type is a node the walk visits: a syntax node that is
    not folded into its owner (strings, ints, None and contexts are not). Filled on first
    sight of a type; a lookup replaces two ``isinstance`` tests a field."""

    def __missing__(self, vtype: type) -> bool:
        walked = issubclass(vtype, ast.AST) and not issubclass(vtype, _FOLDED)
        self[vtype] = walked
        return walked


_WALKED = _Walked()


@dataclass
class AstEvidence:
    """What one file's tree yields.

    Besides the rows, lookups for the extractors that run on the same tree and report
    ``ast`` positions (``(lineno, col_offset)``, UTF-8 columns): ``scope_spans`` for
    ``symtable``; ``statements``, ``owners`` and ``bindings`` for the CFG and reaching
    definitions, so their rows can point at node rows instead of repeating positions;
    ``index_of`` for extractors that walk the same tree objects (``binding_extract``).
    """

    nodes: Columns = field(default_factory=lambda: Columns(AST_NODES))
    imports: Columns = field(default_factory=lambda: Columns(IMPORTS))
    scope_spans: dict[tuple[str, int], list[Span]] = field(default_factory=dict)
    statements: dict[tuple[int, int], int] = field(default_factory=dict)
    owners: dict[tuple[str, int], int] = field(default_factory=dict)
    bindings: dict[tuple[int, int], list[tuple[int, str]]] = field(default_factory=dict)
    index_of: dict[int, int] = field(default_factory=dict)  # id(ast node) -> its row idx


def module_name_for(path: str) -> str:
    """Dotted module name of a repository path: ``pkg/mod.py`` -> ``pkg.mod``."""
    stem = path.rsplit(".", 1)[0]
    parts = stem.split("/")
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def resolve_import_target(
    module_name: str, is_package: bool, level: int, module: str | None
) -> str:
    """Absolute dotted module an import statement names (PEP 328 relative resolution).

    When the dots climb above the top package the written form (``..x``) is kept, so the
    import still points somewhere visible (an EXTERNAL node) instead of vanishing.
    """
    if level == 0:
        return module or ""
    package = module_name.split(".") if is_package else module_name.split(".")[:-1]
    if level - 1 > len(package) or (level - 1 == len(package) and not module):
        return "." * level + (module or "")
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, module] if module else base)


def _literal_text(value: object) -> str:
    """The literal's ``repr``, cut to ``_LITERAL_CHARS``.

    An int of more than 4,300 decimal digits is valid source when written in hex, but its
    ``repr`` raises ``ValueError`` (CPython's int-to-str limit): such ints are shown in hex.
    """
    try:
        return repr(value)[:_LITERAL_CHARS]
    except ValueError:
        return hex(value)[:_LITERAL_CHARS] if isinstance(value, int) else type(value).__name__


def _dotted(node: ast.AST) -> str | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _bounds(node: ast.AST) -> tuple[int, int, int, int] | None:
    """Position of a node that has none of its own: the hull of its positioned descendants."""
    best: tuple[int, int, int, int] | None = None
    for sub in ast.walk(node):
        line = getattr(sub, "lineno", None)
        if line is None:
            continue
        start = (line, sub.col_offset)  # type: ignore[attr-defined]
        end = (sub.end_lineno, sub.end_col_offset)  # type: ignore[attr-defined]
        if best is None:
            best = (*start, *end)
        else:
            lo = min(best[:2], start)
            hi = max(best[2:], end)
            best = (*lo, *hi)
    return best


def extract_ast(tree: ast.Module, path: str, module_name: str, index: LineIndex) -> AstEvidence:
    """Rows for every node of ``tree`` (``path``'s parsed module) and its imports."""
    ev = AstEvidence()
    # One tuple per node, in ``AST_NODES`` order without ``path``; turned into columns at the
    # end. Twenty-five list appends a node were a sixth of this function's time.
    rows: list[tuple[object, ...]] = []
    is_package = path.rsplit("/", 1)[-1].startswith("__init__.")
    seen: dict[tuple[str, int, int], int] = {}
    param_info: dict[int, tuple[str, int]] = {}
    whole = index.whole()
    # stack entries: node, parent idx, field, field index, enclosing def idx, def qualname
    # prefix for children, qualified name of the enclosing def, parent span
    stack: list[tuple[ast.AST, int, str | None, int, int, str, str | None, Span]] = [
        (tree, -1, None, -1, -1, "", module_name, whole)
    ]
    idx = -1
    while stack:
        node, parent, fname, findex, def_idx, prefix, owner_qual, parent_span = stack.pop()
        idx += 1
        ev.index_of[id(node)] = idx
        ntype = type(node)
        ast_type, kind, case, is_stmt, scope_name, is_async, fields = _TYPE_INFO[ntype]
        if case == _MODULE:
            span = whole
        else:
            line = getattr(node, "lineno", None)
            if line is not None:
                span = index.span(line, node.col_offset, node.end_lineno, node.end_col_offset)  # type: ignore[attr-defined]
            else:
                b = _bounds(node)
                span = (
                    index.span(*b)
                    if b
                    else Span(
                        parent_span.bstart,
                        parent_span.bstart,
                        parent_span.line_start,
                        parent_span.col_start,
                        parent_span.line_start,
                        parent_span.col_start,
                    )
                )
        key = (ast_type, span.bstart, span.bend)
        dup = seen.get(key, 0)
        seen[key] = dup + 1
        name: str | None = None
        qual: str | None = None
        child_prefix = prefix
        child_def = def_idx
        child_owner = owner_qual
        ctx = operator = literal_type = literal_value = param_kind = None
        decorator_count = param_index = None
        if case == _OTHER:
            pass
        elif case == _NAME:
            name = node.id  # type: ignore[attr-defined]
            ctx = type(node.ctx).__name__  # type: ignore[attr-defined]
            ev.bindings.setdefault((node.lineno, node.col_offset), []).append((idx, name))  # type: ignore[attr-defined]
        elif case == _ATTRIBUTE:
            name = node.attr  # type: ignore[attr-defined]
            ctx = type(node.ctx).__name__  # type: ignore[attr-defined]
        elif case == _CONSTANT:
            value = node.value  # type: ignore[attr-defined]
            literal_type = type(value).__name__
            literal_value = _literal_text(value)
        elif case == _CALL:
            name = _dotted(node.func)  # type: ignore[attr-defined]
        elif case == _ARG:
            name = node.arg  # type: ignore[attr-defined]
            qual = f"{owner_qual}.{name}" if owner_qual else name
            param_kind, param_index = param_info.get(id(node), (None, None))
            ev.bindings.setdefault((node.lineno, node.col_offset), []).append((idx, name))  # type: ignore[attr-defined]
        elif case == _MODULE:
            qual = module_name
            child_def = idx
        elif case in (_DEF, _LAMBDA):
            name = "<lambda>" if case == _LAMBDA else node.name  # type: ignore[attr-defined]
            local = f"{prefix}{name}"
            qual = f"{module_name}.{local}" if module_name else local
            child_prefix = f"{local}." if ntype is ast.ClassDef else f"{local}.<locals>."
            child_def = idx
            child_owner = qual
            if case == _DEF:
                decorator_count = len(node.decorator_list)  # type: ignore[attr-defined]
                ev.owners[(local, node.lineno)] = idx  # type: ignore[attr-defined]
                ev.bindings.setdefault((node.lineno, node.col_offset), []).append((idx, name))  # type: ignore[attr-defined]
            ev.scope_spans.setdefault(
                ("lambda" if case == _LAMBDA else name, span.line_start), []
            ).append(span)
        elif case == _IMPORT:
            _import_rows(ev.imports, node, path, idx, module_name, is_package)  # type: ignore[arg-type]
            name = ", ".join(a.name for a in node.names)  # type: ignore[attr-defined]
        elif case == _ARGUMENTS:
            _number_params(node, param_info)  # type: ignore[arg-type]
        elif case == _OPERATOR:
            operator = type(node.op).__name__  # type: ignore[attr-defined]
        elif case == _COMPARE:
            operator = ",".join(type(o).__name__ for o in node.ops)  # type: ignore[attr-defined]
        elif case == _KEYWORD:
            name = node.arg  # type: ignore[attr-defined]
        elif case == _ALIAS:
            name = node.name  # type: ignore[attr-defined]
            ev.bindings.setdefault((node.lineno, node.col_offset), []).append((idx, name or ""))  # type: ignore[attr-defined]
        elif case == _BINDING:
            ev.bindings.setdefault((node.lineno, node.col_offset), []).append(  # type: ignore[attr-defined]
                (idx, getattr(node, "name", None) or "")
            )
        if is_stmt:
            ev.statements.setdefault((node.lineno, node.col_offset), idx)  # type: ignore[attr-defined]
        if scope_name is not None:
            ev.scope_spans.setdefault((scope_name, span.line_start), []).append(span)
        bstart, bend, line_start, col_start, line_end, col_end = span
        rows.append(
            (
                idx, parent, fname, findex, def_idx, ast_type, kind,
                f"{ast_type}#{dup}" if dup else ast_type, name, qual,
                bstart, bend, line_start, col_start, line_end, col_end,
                ctx, operator, literal_type, literal_value, is_async, decorator_count,
                param_kind, param_index,
            )
        )  # fmt: skip
        children: list[tuple[ast.AST, int, str | None, int, int, str, str | None, Span]] = []
        for fld in fields:
            value = getattr(node, fld, None)
            if type(value) is list:
                for i, item in enumerate(value):
                    if _WALKED[type(item)]:
                        children.append(
                            (item, idx, fld, i, child_def, child_prefix, child_owner, span)
                        )
            elif _WALKED[type(value)]:
                children.append((value, idx, fld, -1, child_def, child_prefix, child_owner, span))  # type: ignore[arg-type]
        # Decorators, defaults and bases are evaluated in the enclosing scope: their
        # qualname prefix stays the enclosing one, but for containment they sit in the def.
        stack.extend(reversed(children))
    data = ev.nodes.data
    data["path"].extend([path] * len(rows))
    for column, values in zip(AST_NODES.names[1:], zip(*rows, strict=True), strict=True):
        data[column].extend(values)
    return ev


def _number_params(args: ast.arguments, out: dict[int, tuple[str, int]]) -> None:
    position = 0
    groups: list[tuple[str, list[ast.arg]]] = [
        ("posonly", args.posonlyargs),
        ("positional", args.args),
        ("vararg", [args.vararg] if args.vararg else []),
        ("kwonly", args.kwonlyargs),
        ("kwarg", [args.kwarg] if args.kwarg else []),
    ]
    for kind, group in groups:
        for a in group:
            out[id(a)] = (kind, position)
            position += 1


def _import_rows(
    out: Columns,
    node: ast.Import | ast.ImportFrom,
    path: str,
    idx: int,
    module_name: str,
    is_package: bool,
) -> None:
    if isinstance(node, ast.Import):
        for alias in node.names:
            out.append(
                path=path,
                idx=idx,
                level=0,
                module=alias.name,
                name=None,
                asname=alias.asname,
                target=alias.name,
            )
        return
    target = resolve_import_target(module_name, is_package, node.level, node.module)
    for alias in node.names:
        out.append(
            path=path,
            idx=idx,
            level=node.level,
            module=node.module or "",
            name=alias.name,
            asname=alias.asname,
            target=target,
        )
