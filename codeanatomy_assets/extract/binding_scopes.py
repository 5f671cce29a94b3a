"""Python's scopes of one file, from its ``ast``: who binds which name, and with what value.

Python scoping is static, so a file alone decides which scope a name use reads (LEGB: the
local function, enclosing *function* scopes — class bodies do not enclose their methods —,
the module, builtins; ``global``/``nonlocal`` redirect; comprehensions have their own scope
whose first iterable is evaluated outside; a walrus binds in the enclosing non-comprehension
scope). This module collects the scopes and their bindings in one pass with an explicit stack
(no recursion); ``binding_extract`` resolves uses against them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

from codeanatomy_assets.extract.syntax import child_nodes

_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
# Nodes that neither bind, open a scope nor are a site: only their children matter.
_PLAIN = frozenset(
    {
        ast.Attribute, ast.Constant, ast.BinOp, ast.BoolOp, ast.UnaryOp, ast.Compare,
        ast.Subscript, ast.Slice, ast.Starred, ast.Tuple, ast.List, ast.Dict, ast.Set,
        ast.IfExp, ast.JoinedStr, ast.FormattedValue, ast.Await, ast.Yield, ast.YieldFrom,
        ast.keyword, ast.Expr, ast.If, ast.For, ast.AsyncFor, ast.While, ast.With,
        ast.AsyncWith, ast.withitem, ast.Try, ast.Raise, ast.Assert, ast.Delete,
    }
)  # fmt: skip
_SKIPPED = frozenset(
    {ast.Load, ast.Store, ast.Del, ast.Pass, ast.Break, ast.Continue}
    | {
        t
        for t in vars(ast).values()
        if isinstance(t, type) and issubclass(t, (ast.operator, ast.boolop, ast.unaryop, ast.cmpop))
    }
)


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference an expression makes (see ``evidence.RESOLUTION_REFS`` for the fields)."""

    kind: str
    idx: int | None = None
    text: str | None = None
    relative: bool = False
    attrs: str = ""
    receiver: str = ""
    member: str = ""  # the attribute looked up on the receiver (a method name)
    method: str = "local"
    position: int | None = None


@dataclass(slots=True)
class Binding:
    """One binding of a name: its row, a fixed reference or the expression bound to it."""

    idx: int
    ref: Ref | None = None
    value: ast.expr | None = None
    scope: Scope | None = None  # where ``value`` (and ``annotation``) is evaluated
    annotation: ast.expr | None = None  # a parameter's: its value is an instance of it


@dataclass(slots=True)
class Scope:
    """A module, class, function (lambda) or comprehension scope."""

    kind: str
    idx: int  # the row opening it (module 0, def, lambda, comprehension)
    parent: Scope | None
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    globals: set[str] = field(default_factory=set)
    nonlocals: set[str] = field(default_factory=set)
    cls: Scope | None = None  # for a method: its class scope
    self_name: str | None = None  # first parameter of a method
    self_receiver: str = "instance"  # instance (plain method) or class (classmethod)
    attrs: dict[str, list[Binding]] = field(default_factory=dict)  # class: self.x = ...

    def caller(self) -> Scope:
        """The scope whose code this is, for CALLS: comprehensions run in their owner."""
        scope = self
        while scope.kind == "comprehension" and scope.parent is not None:
            scope = scope.parent
        return scope


@dataclass(slots=True)
class FileScopes:
    """All scopes of a file, and the expressions to resolve, each with its scope."""

    module: Scope
    uses: list[tuple[ast.Name, Scope]] = field(default_factory=list)
    calls: list[tuple[ast.Call, Scope]] = field(default_factory=list)
    decorators: list[tuple[ast.expr, Scope, int]] = field(default_factory=list)
    bases: list[tuple[ast.expr, Scope, int, int]] = field(default_factory=list)
    annotations: list[tuple[ast.expr, Scope, int, str]] = field(default_factory=list)
    returns: list[tuple[ast.expr, Scope]] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    stars: list[tuple[int, str, bool]] = field(default_factory=list)
    classes: dict[int, Scope] = field(default_factory=dict)  # class row -> its scope


def _bind(scope: Scope, name: str, binding: Binding) -> None:
    target = scope
    if name in scope.globals:
        while target.parent is not None:
            target = target.parent
    elif name in scope.nonlocals:
        parent = scope.parent
        while parent is not None and (parent.kind != "function" or name not in parent.bindings):
            parent = parent.parent
        if parent is None:  # bound later in the enclosing function: its nearest one
            parent = scope.parent
            while parent is not None and parent.kind != "function":
                parent = parent.parent
        target = parent or scope
    target.bindings.setdefault(name, []).append(binding)


def _decorator_names(node: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    return {d.id for d in node.decorator_list if isinstance(d, ast.Name)}


def _exports(value: ast.expr) -> list[str]:
    if isinstance(value, ast.List | ast.Tuple):
        return [
            e.value for e in value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
        ]
    return []


def _exports_added(call: ast.Call) -> list[str]:
    """``__all__.extend([...])`` / ``__all__.append('x')`` at module level."""
    func = call.func
    if not (
        isinstance(func, ast.Attribute)
        and _is_name(func.value, "__all__")
        and len(call.args) == 1
        and not call.keywords
    ):
        return []
    arg = call.args[0]
    if func.attr == "extend":
        return _exports(arg)
    if func.attr == "append" and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return [arg.value]
    return []


def collect_scopes(
    tree: ast.Module, index_of: dict[int, int], targets: dict[int, tuple[str, bool]]
) -> FileScopes:
    """Scopes, bindings and sites of ``tree``; ``targets`` maps an import row to its target."""
    module = Scope("module", 0, None)
    out = FileScopes(module)
    values: dict[int, ast.expr] = {}  # id(Name target) -> the value assigned to it alone
    stack: list[tuple[ast.AST, Scope]] = [(s, module) for s in reversed(tree.body)]
    while stack:
        node, scope = stack.pop()
        ntype = type(node)
        # Fast paths: most nodes are names, contexts and plain expressions or statements.
        if ntype is ast.Name:
            if type(node.ctx) is ast.Store:  # type: ignore[attr-defined]
                row = index_of.get(id(node), -1)
                binding = Binding(row, value=values.get(id(node)), scope=scope)
                _bind(scope, node.id, binding)  # type: ignore[attr-defined]
            out.uses.append((node, scope))  # type: ignore[arg-type]
            continue
        if ntype in _SKIPPED:
            continue
        if ntype in _PLAIN:
            stack.extend([(c, scope) for c in reversed(child_nodes(node))])
            continue
        row = index_of.get(id(node), -1)
        children: list[tuple[ast.AST, Scope]] = []
        if isinstance(node, (*_FUNCTIONS, ast.Lambda)):
            inner = Scope("function", row, scope)
            if not isinstance(node, ast.Lambda):
                _bind(scope, node.name, Binding(row, Ref("node", row, method="local")))
                decorators = _decorator_names(node)
                for d in node.decorator_list:
                    out.decorators.append((d, scope, row))
                    children.append((d, scope))
                if node.returns is not None:
                    out.annotations.append((node.returns, scope, row, "return"))
                    children.append((node.returns, scope))
                if scope.kind == "class" and "staticmethod" not in decorators:
                    inner.cls = scope
                    inner.self_receiver = "class" if "classmethod" in decorators else "instance"
            args = node.args
            children.extend((d, scope) for d in [*args.defaults, *args.kw_defaults] if d)
            params = [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]
            for position, a in enumerate(p for p in params if p is not None):
                arg_row = index_of.get(id(a), -1)
                ref = Ref("param", row, a.arg, position=position, method="parameter")
                if position == 0 and inner.cls is not None:
                    inner.self_name = a.arg
                    ref = Ref("node", inner.cls.idx, receiver=inner.self_receiver, method="self")
                typed = a.annotation if ref.kind == "param" else None
                inner.bindings.setdefault(a.arg, []).append(
                    Binding(arg_row, ref, scope=scope, annotation=typed)
                )
                if a.annotation is not None:
                    out.annotations.append((a.annotation, scope, arg_row, "parameter"))
                    children.append((a.annotation, scope))
            body = [node.body] if isinstance(node, ast.Lambda) else node.body
            _declarations(body, inner)
            children.extend((stmt, inner) for stmt in body)
        elif isinstance(node, ast.ClassDef):
            _bind(scope, node.name, Binding(row, Ref("node", row, method="local")))
            inner = Scope("class", row, scope)
            out.classes[row] = inner
            for i, base in enumerate(node.bases):
                out.bases.append((base, scope, row, i))
            for d in node.decorator_list:
                out.decorators.append((d, scope, row))
            children.extend((e, scope) for e in [*node.decorator_list, *node.bases])
            children.extend((k.value, scope) for k in node.keywords)
            children.extend((stmt, inner) for stmt in node.body)
        elif isinstance(node, _COMPREHENSIONS):
            inner = Scope("comprehension", row, scope)
            first = node.generators[0]
            children.append((first.iter, scope))
            for i, gen in enumerate(node.generators):
                children.append((gen.target, inner))
                if i:
                    children.append((gen.iter, inner))
                children.extend((c, inner) for c in gen.ifs)
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            children.extend((e, inner) for e in elts)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                alias_row = index_of.get(id(alias), -1)
                target, relative = targets.get(row, ("", False))
                if isinstance(node, ast.Import):
                    bound = alias.asname or alias.name.split(".")[0]
                    dotted = alias.name if alias.asname else bound
                    ref = Ref("dotted", text=dotted, method="import")
                elif alias.name == "*":
                    out.stars.append((alias_row, target, relative))
                    continue
                else:
                    bound = alias.asname or alias.name
                    dotted = f"{target}.{alias.name}" if target else alias.name
                    ref = Ref("dotted", text=dotted, relative=relative, method="import")
                _bind(scope, bound, Binding(alias_row, ref))
        elif isinstance(node, ast.Global | ast.Nonlocal):
            pass
        else:
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr):
                targets_ = node.targets if isinstance(node, ast.Assign) else [node.target]
                value = node.value
                if value is not None and len(targets_) == 1:
                    target_node = targets_[0]
                    values[id(target_node)] = value
                    if _is_self_attr(target_node, scope):
                        cls = scope.caller().cls
                        assert cls is not None and isinstance(target_node, ast.Attribute)
                        cls.attrs.setdefault(target_node.attr, []).append(
                            Binding(index_of.get(id(target_node), -1), value=value, scope=scope)
                        )
                    if (
                        scope is module
                        and isinstance(target_node, ast.Name)
                        and target_node.id == "__all__"
                    ):
                        out.exports.extend(_exports(value))
                if isinstance(node, ast.AnnAssign):
                    out.annotations.append(
                        (node.annotation, scope, index_of.get(id(node.target), -1), "variable")
                    )
            elif isinstance(node, ast.AugAssign) and _is_name(node.target, "__all__"):
                if scope is module:
                    out.exports.extend(_exports(node.value))
            elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
                _bind(scope, node.name, Binding(row))
            elif isinstance(node, ast.Call):
                out.calls.append((node, scope))
                if scope is module:
                    out.exports.extend(_exports_added(node))
            elif isinstance(node, ast.Return) and node.value is not None:
                out.returns.append((node.value, scope))
            for child in child_nodes(node):
                if isinstance(node, ast.NamedExpr) and child is node.target:
                    values[id(child)] = node.value
                    children.append((child, _comprehension_owner(scope)))
                    continue
                children.append((child, scope))
        stack.extend(reversed(children))
    return out


def _declarations(body: list[ast.stmt] | list[ast.expr], scope: Scope) -> None:
    """``global``/``nonlocal`` anywhere in a function body (not in nested scopes)."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Global):
            scope.globals.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            scope.nonlocals.update(node.names)
        elif not isinstance(node, (*_FUNCTIONS, ast.ClassDef, ast.Lambda, ast.expr)):
            stack.extend(child_nodes(node))


def _comprehension_owner(scope: Scope) -> Scope:
    while scope.kind == "comprehension" and scope.parent is not None:
        scope = scope.parent
    return scope


def _is_name(node: ast.expr, name: str) -> bool:
    return isinstance(node, ast.Name) and node.id == name


def _is_self_attr(node: ast.expr, scope: Scope) -> bool:
    owner = scope.caller()
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and owner.self_name is not None
        and node.value.id == owner.self_name
        and owner.cls is not None
    )
