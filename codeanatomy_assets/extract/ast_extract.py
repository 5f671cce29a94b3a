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
_DEF_TYPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
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
    rows = ev.nodes.data
    col = {name: rows[name] for name in AST_NODES.names}
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
        ast_type = ntype.__name__
        kind = _KIND_BY_TYPE.get(ntype, _AST_NODE)
        if ntype is ast.Module:
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
        is_async: bool | None = None
        decorator_count = param_index = None
        if ntype is ast.Name:
            name = node.id  # type: ignore[attr-defined]
            ctx = type(node.ctx).__name__  # type: ignore[attr-defined]
            ev.bindings.setdefault((node.lineno, node.col_offset), []).append((idx, name))  # type: ignore[attr-defined]
        elif ntype is ast.Attribute:
            name = node.attr  # type: ignore[attr-defined]
            ctx = type(node.ctx).__name__  # type: ignore[attr-defined]
        elif ntype is ast.Constant:
            value = node.value  # type: ignore[attr-defined]
            literal_type = type(value).__name__
            literal_value = _literal_text(value)
        elif ntype is ast.Call:
            name = _dotted(node.func)  # type: ignore[attr-defined]
        elif ntype is ast.arg:
            name = node.arg  # type: ignore[attr-defined]
            qual = f"{owner_qual}.{name}" if owner_qual else name
            param_kind, param_index = param_info.get(id(node), (None, None))
            ev.bindings.setdefault((node.lineno, node.col_offset), []).append((idx, name))  # type: ignore[attr-defined]
        elif ntype is ast.Module:
            qual = module_name
            child_def = idx
        elif isinstance(node, _DEF_TYPES):
            name = "<lambda>" if isinstance(node, ast.Lambda) else node.name
            local = f"{prefix}{name}"
            qual = f"{module_name}.{local}" if module_name else local
            child_prefix = f"{local}." if ntype is ast.ClassDef else f"{local}.<locals>."
            child_def = idx
            child_owner = qual
            if not isinstance(node, ast.Lambda):
                decorator_count = len(node.decorator_list)
                ev.owners[(local, node.lineno)] = idx
                ev.bindings.setdefault((node.lineno, node.col_offset), []).append((idx, name))
            ev.scope_spans.setdefault(
                ("lambda" if ntype is ast.Lambda else name, span.line_start), []
            ).append(span)
        elif ntype in (ast.Import, ast.ImportFrom):
            _import_rows(ev.imports, node, path, idx, module_name, is_package)  # type: ignore[arg-type]
            name = ", ".join(a.name for a in node.names)  # type: ignore[attr-defined]
        elif ntype is ast.arguments:
            _number_params(node, param_info)  # type: ignore[arg-type]
        elif ntype in (ast.BinOp, ast.UnaryOp, ast.BoolOp, ast.AugAssign):
            operator = type(node.op).__name__  # type: ignore[attr-defined]
        elif ntype is ast.Compare:
            operator = ",".join(type(o).__name__ for o in node.ops)  # type: ignore[attr-defined]
        elif ntype is ast.keyword or ntype is ast.alias:
            name = node.arg if ntype is ast.keyword else node.name  # type: ignore[attr-defined]
            if ntype is ast.alias:
                ev.bindings.setdefault((node.lineno, node.col_offset), []).append((idx, name or ""))  # type: ignore[attr-defined]
        elif ntype in _BINDING_TYPES:
            ev.bindings.setdefault((node.lineno, node.col_offset), []).append(  # type: ignore[attr-defined]
                (idx, getattr(node, "name", None) or "")
            )
        if isinstance(node, ast.stmt):
            ev.statements.setdefault((node.lineno, node.col_offset), idx)
        if ntype in SCOPE_NAMES and ntype is not ast.Lambda:
            ev.scope_spans.setdefault((SCOPE_NAMES[ntype], span.line_start), []).append(span)
        if isinstance(node, _ASYNC_TYPES):
            is_async = True
        elif ntype in (ast.FunctionDef, ast.For, ast.With):
            is_async = False
        col["path"].append(path)
        col["idx"].append(idx)
        col["parent_idx"].append(parent)
        col["field"].append(fname)
        col["field_index"].append(findex)
        col["def_idx"].append(def_idx)
        col["ast_type"].append(ast_type)
        col["node_kind"].append(kind)
        col["discriminator"].append(f"{ast_type}#{dup}" if dup else ast_type)
        col["name"].append(name)
        col["qualified_name"].append(qual)
        col["bstart"].append(span.bstart)
        col["bend"].append(span.bend)
        col["line_start"].append(span.line_start)
        col["col_start"].append(span.col_start)
        col["line_end"].append(span.line_end)
        col["col_end"].append(span.col_end)
        col["ctx"].append(ctx)
        col["operator"].append(operator)
        col["literal_type"].append(literal_type)
        col["literal_value"].append(literal_value)
        col["is_async"].append(is_async)
        col["decorator_count"].append(decorator_count)
        col["param_kind"].append(param_kind)
        col["param_index"].append(param_index)
        children: list[tuple[ast.AST, int, str | None, int, int, str, str | None, Span]] = []
        for fld in node._fields:
            value = getattr(node, fld, None)
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, ast.AST) and not isinstance(item, _FOLDED):
                        children.append(
                            (item, idx, fld, i, child_def, child_prefix, child_owner, span)
                        )
            elif isinstance(value, ast.AST) and not isinstance(value, _FOLDED):
                children.append((value, idx, fld, -1, child_def, child_prefix, child_owner, span))
        # Decorators, defaults and bases are evaluated in the enclosing scope: their
        # qualname prefix stays the enclosing one, but for containment they sit in the def.
        stack.extend(reversed(children))
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
