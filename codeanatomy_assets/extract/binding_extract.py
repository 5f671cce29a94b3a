"""Evidence for name, call, import and inheritance resolution: what one file can decide.

``binding_scopes`` collects the file's scopes; here every name use is resolved to the scope
that binds it (``name_uses``) and every call, decorator, base class, annotation, module-level
binding, ``__all__`` entry and return value becomes ``resolution_refs`` rows: the reference
the expression makes, followed through the file's own assignments (``a = A(); a.m()``,
``self.x = A()`` in any method then ``self.x.m()``, ``g = f``, lambdas, ``super()``). What
crosses files — imports, re-exports, inherited methods — is left as dotted paths and class
references for the whole-program SQL in ``cpg.resolution_views``.
"""

from __future__ import annotations

import ast
import builtins
import re
from dataclasses import replace

from codeanatomy_assets.extract.ast_extract import AstEvidence
from codeanatomy_assets.extract.binding_scopes import (
    Binding,
    FileScopes,
    Ref,
    Scope,
    collect_scopes,
)
from codeanatomy_assets.extract.columns import Columns
from codeanatomy_assets.extract.syntax import child_nodes

_BUILTINS = frozenset(dir(builtins))
_MAX_DEPTH = 4  # assignment chains followed within a file (g = f; h = g; ...)


class _Resolver:
    """Resolves names and expressions of one file against its collected scopes."""

    def __init__(self, scopes: FileScopes, index_of: dict[int, int]) -> None:
        self.scopes = scopes
        self.classes = scopes.classes
        self.index_of = index_of
        self.has_star = bool(scopes.stars)
        self.memo: dict[tuple[int, str], list[Ref]] = {}

    def lookup(self, name: str, scope: Scope) -> tuple[Scope | None, str]:
        """The scope a use of ``name`` in ``scope`` reads (LEGB), and how it was found."""
        if name in scope.globals:
            module = self.scopes.module
            return (module, "global") if name in module.bindings else (None, "global")
        current: Scope | None = scope.parent if name in scope.nonlocals else scope
        first = name not in scope.nonlocals
        while current is not None:
            # A class body is visible only to its own statements, not to nested scopes.
            if (first or current.kind != "class") and name in current.bindings:
                if current is scope:
                    return current, "local"
                return current, {"module": "global", "class": "class"}.get(
                    current.kind, "enclosing"
                )
            first = False
            current = current.parent
        return None, "builtin" if name in _BUILTINS else "unresolved"

    def name_refs(self, name: str, scope: Scope, depth: int) -> list[Ref]:
        found, how = self.lookup(name, scope)
        if found is None:
            if how == "builtin":
                return [Ref("builtin", text=name, method="builtin")]
            if self.has_star and how == "unresolved":
                return [Ref("star", text=name, method="star_import")]
            return []
        refs: list[Ref] = []
        for b in found.bindings[name]:
            refs.extend(self.binding_refs(b, how, depth))
        return refs

    def binding_refs(self, b: Binding, how: str, depth: int) -> list[Ref]:
        """What a binding refers to; memoized per binding (a name bound n times and used m
        times would otherwise be resolved n*m times, recursively), cycles give nothing."""
        key = (id(b), how)
        memo = self.memo.get(key)
        if memo is None:
            self.memo[key] = []  # in progress: a cycle through this binding resolves to []
            memo = self.memo[key] = self._binding_refs(b, how, depth)
        return memo

    def _binding_refs(self, b: Binding, how: str, depth: int) -> list[Ref]:
        if b.ref is not None:
            refs = [replace(b.ref, method=how) if b.ref.method == "local" else b.ref]
            if b.annotation is not None and b.scope is not None and depth < _MAX_DEPTH:
                # ``def f(a: A)``: ``a`` is an instance of A (strings too: ``a: "A"``).
                for named in _annotation_names(b.annotation)[:1]:
                    refs.extend(
                        replace(r, receiver="instance", method="annotation")
                        for r in self.expr_refs(named, b.scope, depth + 1)
                        if not r.receiver and r.kind in ("node", "dotted", "star")
                    )
            return refs
        if b.value is not None and b.scope is not None and depth < _MAX_DEPTH:
            return self.expr_refs(b.value, b.scope, depth + 1)
        return []

    def expr_refs(self, expr: ast.expr, scope: Scope, depth: int = 0) -> list[Ref]:
        """References ``expr`` makes, followed through this file's bindings."""
        if isinstance(expr, ast.Name):
            return self.name_refs(expr.id, scope, depth)
        if isinstance(expr, ast.Lambda):
            return [Ref("node", self.index_of[id(expr)], method="lambda")]
        if isinstance(expr, ast.Attribute):
            out: list[Ref] = []
            for r in self.expr_refs(expr.value, scope, depth):
                out.extend(self.attribute(r, expr.attr, depth))
            return out
        if isinstance(expr, ast.Subscript):
            # ``handlers[key]``: any element of the literal the container was bound to. The
            # depth bounds self-reference (``a = [a[0]]``).
            out = []
            if depth >= _MAX_DEPTH:
                return out
            for element, element_scope in self.container_elements(expr.value, scope):
                out.extend(
                    replace(r, method="container")
                    for r in self.expr_refs(element, element_scope, depth + 1)
                    if not r.receiver
                )
            return out
        if isinstance(expr, ast.Call):
            func = expr.func
            owner = scope.caller()
            if (
                isinstance(func, ast.Name)
                and func.id == "super"
                and owner.cls is not None
                and self.lookup("super", scope)[1] == "builtin"
            ):
                return [Ref("node", owner.cls.idx, receiver="super", method="super")]
            return [
                replace(
                    r, receiver="result", method="instance" if r.method == "local" else r.method
                )
                for r in self.expr_refs(func, scope, depth)
                if not r.receiver
            ]
        return []

    def container_elements(self, expr: ast.expr, scope: Scope) -> list[tuple[ast.expr, Scope]]:
        """The elements (dict values) of the dict, list, tuple or set literals ``expr`` is, or
        a name is bound to in this file; nothing for any other container."""
        if isinstance(expr, ast.Dict):
            return [(v, scope) for v in expr.values]
        if isinstance(expr, ast.List | ast.Tuple | ast.Set):
            return [(e, scope) for e in expr.elts if not isinstance(e, ast.Starred)]
        if not isinstance(expr, ast.Name):
            return []
        found, _ = self.lookup(expr.id, scope)
        out: list[tuple[ast.expr, Scope]] = []
        for b in found.bindings[expr.id] if found is not None else ():
            literal = isinstance(b.value, ast.Dict | ast.List | ast.Tuple | ast.Set)
            if literal and b.value is not None and b.scope is not None and b.ref is None:
                out.extend(self.container_elements(b.value, b.scope))
        return out

    def attribute(self, r: Ref, attr: str, depth: int) -> list[Ref]:
        if r.receiver == "instance" and not r.member and r.kind == "node":
            cls = self.classes.get(r.idx or -1)
            if cls is not None and attr in cls.attrs and depth < _MAX_DEPTH:
                out: list[Ref] = []
                for b in cls.attrs[attr]:
                    out.extend(
                        replace(x, method="attribute") for x in self.binding_refs(b, "", depth + 1)
                    )
                return out
        if r.receiver:
            if r.member:
                return []
            method = "instance" if r.receiver == "result" else r.method
            return [replace(r, member=attr, method=method)]
        if r.kind in ("node", "dotted", "star", "builtin"):
            return [replace(r, attrs=f"{r.attrs}.{attr}" if r.attrs else attr)]
        return []


class _Segments:
    """``ast.get_source_segment`` without re-splitting the file on every call (it does, and
    a file with a few hundred annotations spent seconds there)."""

    _LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+$")

    def __init__(self, text: str) -> None:
        self.lines = [m.group(0).encode("utf-8") for m in self._LINE.finditer(text)]

    def __call__(self, node: ast.AST) -> str | None:
        start, end = getattr(node, "lineno", None), getattr(node, "end_lineno", None)
        if start is None or end is None or end > len(self.lines):
            return None
        first, last = node.col_offset, node.end_col_offset  # type: ignore[attr-defined]
        if start == end:
            return self.lines[start - 1][first:last].decode("utf-8", "replace")
        parts = [self.lines[start - 1][first:], *self.lines[start : end - 1]]
        parts.append(self.lines[end - 1][:last])
        return b"".join(parts).decode("utf-8", "replace")


def extract_bindings(
    tree: ast.Module, path: str, text: str, ev: AstEvidence, tables: dict[str, Columns]
) -> None:
    """Append ``resolution_refs`` and ``name_uses`` rows for one parsed file."""
    index_of = ev.index_of
    targets: dict[int, tuple[str, bool]] = {}
    imports = ev.imports.data
    for idx, target, level in zip(imports["idx"], imports["target"], imports["level"], strict=True):
        targets[idx] = (target, level > 0)
    scopes = collect_scopes(tree, index_of, targets)
    resolver = _Resolver(scopes, index_of)
    segment = _Segments(text)
    refs = tables["resolution_refs"]

    def emit(
        site: ast.AST | int,
        role: str,
        owner: int,
        found: list[Ref],
        *,
        name: str | None = None,
        position: int | None = None,
        text_: str | None = None,
        keep_empty: bool = False,
    ) -> None:
        site_idx = site if isinstance(site, int) else index_of.get(id(site), -1)
        if not found and keep_empty:
            found = [Ref("none", method="unresolved")]
        confidence = 1.0 / len(found) if found else 1.0
        for r in found:
            refs.append(
                path=path, site_idx=site_idx, role=role, owner_idx=owner, name=name,
                position=r.position if role == "call" and r.kind == "param" else position,
                ref_kind=r.kind, ref_idx=r.idx, ref_text=r.text, ref_relative=r.relative,
                attrs=r.attrs, receiver=r.receiver, member=r.member, method=r.method,
                confidence=confidence, text=text_,
            )  # fmt: skip

    for call, scope in scopes.calls:
        call_idx = index_of.get(id(call), -1)
        found = [_called(r) for r in resolver.expr_refs(call.func, scope)]
        emit(call, "call", scope.caller().idx, found, keep_empty=True)
        for i, arg in enumerate(call.args):
            if isinstance(arg, ast.Name | ast.Attribute | ast.Lambda):
                emit(arg, "argument", call_idx, resolver.expr_refs(arg, scope), position=i)
        for kw in call.keywords:
            if kw.arg and isinstance(kw.value, ast.Name | ast.Attribute | ast.Lambda):
                emit(kw.value, "argument", call_idx, resolver.expr_refs(kw.value, scope),
                     name=kw.arg, position=-1)  # fmt: skip
    for deco, scope, decorated in scopes.decorators:
        if not isinstance(deco, ast.Call):
            found = [replace(r, method="decorator") for r in resolver.expr_refs(deco, scope)]
            emit(deco, "decorator", scope.caller().idx, found, position=decorated)
    for base, scope, cls_idx, i in scopes.bases:
        emit(base, "base", cls_idx, resolver.expr_refs(base, scope), position=i,
             text_=segment(base), keep_empty=True)  # fmt: skip
    for annotation, scope, owner, kind in scopes.annotations:
        found = []
        for named in _annotation_names(annotation):
            found.extend(resolver.expr_refs(named, scope))
        emit(annotation, "annotation", owner, found, name=kind,
             text_=segment(annotation), keep_empty=True)  # fmt: skip
    for value, scope in scopes.returns:
        function = scope.caller()
        if function.kind == "function":
            emit(value, "return", function.idx, resolver.expr_refs(value, scope))
    module = scopes.module
    for bound, bindings in module.bindings.items():
        for b in bindings:
            emit(b.idx, "binding", 0, resolver.binding_refs(b, "global", 0), name=bound)
    for alias_row, target, relative in scopes.stars:
        emit(alias_row, "binding", 0, [Ref("dotted", text=target, relative=relative,
             method="import")], name="*")  # fmt: skip
    for exported in scopes.exports:
        emit(0, "export", 0, [Ref("none", method="export")], name=exported)
    _name_uses(path, scopes, resolver, index_of, tables["name_uses"])


def _called(r: Ref) -> Ref:
    """Calling ``cls`` instantiates the class; calling an instance runs ``__call__``."""
    if r.receiver == "class" and not r.member:
        return replace(r, receiver="")
    if r.receiver == "instance" and not r.member:
        return replace(r, member="__call__")
    return r


def _annotation_names(annotation: ast.expr) -> list[ast.expr]:
    """Outermost Name/Attribute chains in an annotation; string annotations are parsed."""
    out: list[ast.expr] = []
    stack: list[ast.AST] = [annotation]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name | ast.Attribute):
            out.append(node)  # type: ignore[arg-type]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                stack.append(ast.parse(node.value.strip(), mode="eval").body)
            except (SyntaxError, ValueError):
                continue
        else:
            stack.extend(child_nodes(node))
    return out


_USE_KINDS = {ast.Load: "read", ast.Store: "write", ast.Del: "delete"}
_FIXED = ("node", "param", "dotted")  # bindings that are definitions, not assignments


def _name_uses(
    path: str,
    scopes: FileScopes,
    resolver: _Resolver,
    index_of: dict[int, int],
    out: Columns,
) -> None:
    for node, scope in scopes.uses:
        use = index_of.get(id(node), -1)
        kind = _USE_KINDS.get(type(node.ctx), "read")
        found, how = resolver.lookup(node.id, scope)
        rows: list[Binding | None] = []
        if found is not None:
            bindings = found.bindings[node.id]
            # Inside the use's own function, reaching definitions are the precise answer for
            # variables: REFERENCES then only names definitions (defs, params, imports).
            local_var = found is scope and found.kind == "function"
            rows = [
                b for b in bindings if not local_var or (b.ref is not None and b.ref.kind in _FIXED)
            ] or [None]
        else:
            rows = [None]
        for b in rows:
            out.append(
                path=path, use_idx=use, name=node.id, use_kind=kind, scope_kind=how,
                scope_idx=found.idx if found is not None else None,
                binding_idx=b.idx if b is not None and kind == "read" else None,
            )  # fmt: skip
