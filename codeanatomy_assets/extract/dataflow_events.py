"""Definition/use events of statements, in evaluation order, for reaching definitions.

Why a separate module: :mod:`.dataflow` solves the equations on the CFG; this module decides
what a statement defines, uses and deletes, which is where Python's scoping rules live. An
event is ``(op, name, line, col)`` with ``op`` one of :data:`USE`, :data:`DEF`, :data:`KILL`,
:data:`ALSO` and the ``ast`` position (1-based line, 0-based byte column) of the node that
uses/defines the name.

Rules (documented here once):

- Only the header of a compound statement belongs to its block: ``if``/``while`` test, ``with``
  items (context expression, then its ``as`` target), ``match`` subject and the value parts of
  all case patterns (captures and guard are on each ``case`` edge, see :func:`case_events`).
  A ``for`` header's block has no events of its own: the iterable is used on the edges that
  enter the loop (not on ``loop``/``continue`` back-edges) and the target is defined on the
  ``true`` edge (:func:`for_iterable_events`, :func:`for_target_events`).
- Assignments evaluate the right-hand side first; ``x += v`` uses ``x``, then ``v``, then
  defines ``x``; ``x: T = v`` defines ``x`` (``x: T`` alone defines nothing); annotations count
  as uses only in module and class bodies (Python does not evaluate them for function locals).
- ``def``/``class`` statements use decorators, defaults, annotations, bases and keywords, then
  define the name (at the ``def``/``class`` keyword, also when decorated). Parameter and return
  annotations count as uses even under ``from __future__ import annotations`` (which defers
  them): the analysis does not look at future imports. Imports define the bound name at the alias
  position (``import a.b`` binds ``a``); ``*`` imports define nothing. ``del x`` kills ``x``.
- Nested scopes: bodies of nested defs, classes and lambdas are not walked (a free variable used
  there is not a use here); lambda defaults are. Comprehensions are their own scope: their
  target names are ignored, their first iterable is evaluated here, and any other name they
  load is a use here (except in a class body, whose names comprehensions cannot see); a walrus
  inside a comprehension defines its name here (PEP 572).
- Walrus: the value, then the target definition.
- Case patterns: the captures of every alternative of an or-pattern reach the case body.
"""

from __future__ import annotations

import ast

from codeanatomy_assets.extract.syntax import child_nodes

__all__ = [
    "ALSO",
    "DEF",
    "KILL",
    "USE",
    "Event",
    "case_events",
    "expr_events",
    "for_iterable_events",
    "for_target_events",
    "handler_events",
    "parameter_events",
    "pattern_value_events",
    "stmt_events",
]

USE = 0
DEF = 1
KILL = 2
ALSO = 3  # a definition that does not kill the name's other definitions (or-patterns)
Event = tuple[int, str, int, int]
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_CHILD_TYPES = (ast.expr, ast.keyword)
# Child fields, in evaluation order, of the common expression types (a constant of the ``ast``
# grammar: it keeps the hot loop free of per-field isinstance checks; other types fall back to
# a generic walk over ``_fields``).
_EXPR_FIELDS: dict[type[ast.AST], tuple[str, ...]] = {
    ast.Attribute: ("value",),
    ast.Call: ("func", "args", "keywords"),
    ast.keyword: ("value",),
    ast.Subscript: ("value", "slice"),
    ast.BinOp: ("left", "right"),
    ast.BoolOp: ("values",),
    ast.UnaryOp: ("operand",),
    ast.Compare: ("left", "comparators"),
    ast.Tuple: ("elts",),
    ast.List: ("elts",),
    ast.Set: ("elts",),
    ast.Dict: ("keys", "values"),
    ast.IfExp: ("test", "body", "orelse"),
    ast.Starred: ("value",),
    ast.JoinedStr: ("values",),
    ast.FormattedValue: ("value", "format_spec"),
    ast.Slice: ("lower", "upper", "step"),
    ast.Await: ("value",),
    ast.Yield: ("value",),
    ast.YieldFrom: ("value",),
}


def expr_events(
    node: ast.AST,
    out: list[Event],
    in_class: bool = False,
    local: frozenset[str] = frozenset(),
) -> None:
    """Append the events of an expression (or assignment target) in evaluation order.

    ``local`` holds the target names of enclosing comprehensions (not this owner's names).
    Iterative (explicit stack) because expression depth is user-controlled; only comprehension
    nesting recurses, and the tokenizer caps bracket nesting at 200 levels.
    """
    stack: list[ast.AST] = [node]
    pop = stack.pop
    push = stack.append
    fields_of = _EXPR_FIELDS.get
    while stack:
        cur = pop()
        kind = type(cur)
        if kind is ast.Name:
            name = cur.id  # type: ignore[attr-defined]
            ctx = type(cur.ctx)  # type: ignore[attr-defined]
            if ctx is ast.Load:
                if name not in local:
                    out.append((USE, name, cur.lineno, cur.col_offset))  # type: ignore[attr-defined]
            else:
                op = DEF if ctx is ast.Store else KILL
                out.append((op, name, cur.lineno, cur.col_offset))  # type: ignore[attr-defined]
            continue
        if kind is ast.Constant:
            continue
        fields = fields_of(kind)
        if fields is None:
            fields = _other_expr(cur, out, in_class, local, stack)
        for field_name in reversed(fields):
            value = getattr(cur, field_name)
            if type(value) is list:
                stack.extend(v for v in reversed(value) if v is not None)
            elif value is not None:
                push(value)


def _other_expr(
    cur: ast.AST, out: list[Event], in_class: bool, local: frozenset[str], stack: list[ast.AST]
) -> tuple[str, ...]:
    """Handle the expression types outside ``_EXPR_FIELDS``; return fields still to walk."""
    if isinstance(cur, ast.NamedExpr):
        stack.append(cur.target)
        return ("value",)
    if isinstance(cur, ast.Lambda):  # only the defaults belong to this scope
        arguments = cur.args
        stack.extend(reversed([*arguments.defaults, *(d for d in arguments.kw_defaults if d)]))
        return ()
    if isinstance(cur, _COMPREHENSIONS):
        _comprehension(cur, out, in_class, local)
        return ()
    return tuple(
        name
        for name in cur._fields
        if isinstance(getattr(cur, name, None), _CHILD_TYPES)
        or (
            isinstance(getattr(cur, name, None), list)
            and any(isinstance(v, _CHILD_TYPES) for v in getattr(cur, name))
        )
    )


def _comprehension(
    node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
    out: list[Event],
    in_class: bool,
    outer: frozenset[str],
) -> None:
    """Events of a comprehension: its first iterable here, the rest with its targets local."""
    generators = node.generators
    expr_events(generators[0].iter, out, in_class, outer)
    if in_class:  # a class body's names are invisible inside the comprehension's scope
        return
    names = {n.id for gen in generators for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
    local = outer | names
    ordered: list[ast.AST] = []
    for index, gen in enumerate(generators):
        if index:
            ordered.append(gen.iter)
        ordered.extend(gen.ifs)
    if isinstance(node, ast.DictComp):
        ordered += [node.key, node.value]
    else:
        ordered.append(node.elt)
    for part in ordered:
        expr_events(part, out, in_class, local)


def _target_events(target: ast.expr, out: list[Event]) -> None:
    """Events of an assignment target (defines names; subscripts/attributes use names)."""
    expr_events(target, out)


def parameter_events(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[Event]:
    """Definitions of a function's parameters, at the entry block, at each ``arg`` node."""
    args = node.args
    params = [*args.posonlyargs, *args.args]
    if args.vararg:
        params.append(args.vararg)
    params += args.kwonlyargs
    if args.kwarg:
        params.append(args.kwarg)
    return [(DEF, p.arg, p.lineno, p.col_offset) for p in params]


def _function_header(
    node: ast.FunctionDef | ast.AsyncFunctionDef, out: list[Event], in_class: bool
) -> None:
    """Uses evaluated when a ``def`` statement runs: decorators, defaults, annotations."""
    args = node.args
    parts: list[ast.expr] = [*node.decorator_list, *args.defaults]
    parts += [d for d in args.kw_defaults if d is not None]
    params = [*args.posonlyargs, *args.args, args.vararg, *args.kwonlyargs, args.kwarg]
    parts += [p.annotation for p in params if p is not None and p.annotation is not None]
    if node.returns is not None:
        parts.append(node.returns)
    for part in parts:
        expr_events(part, out, in_class)


def stmt_events(stmt: ast.stmt, out: list[Event], in_function: bool, in_class: bool) -> None:
    """Append the events of one statement's own part (header only for compound statements)."""
    if type(stmt) is ast.Expr or type(stmt) is ast.Return:
        if stmt.value is not None:  # type: ignore[attr-defined]
            expr_events(stmt.value, out, in_class)  # type: ignore[attr-defined]
    elif isinstance(stmt, ast.Assign):
        expr_events(stmt.value, out, in_class)
        for target in stmt.targets:
            _target_events(target, out)
    elif isinstance(stmt, ast.AugAssign):
        target = stmt.target
        if isinstance(target, ast.Name):
            out.append((USE, target.id, target.lineno, target.col_offset))
            expr_events(stmt.value, out, in_class)
            out.append((DEF, target.id, target.lineno, target.col_offset))
        else:
            expr_events(target, out, in_class)
            expr_events(stmt.value, out, in_class)
    elif isinstance(stmt, ast.AnnAssign):
        if stmt.value is not None:
            expr_events(stmt.value, out, in_class)
        if not in_function:
            expr_events(stmt.annotation, out, in_class)
        if stmt.value is not None or not isinstance(stmt.target, ast.Name):
            _target_events(stmt.target, out)
    elif isinstance(stmt, ast.If | ast.While):
        expr_events(stmt.test, out, in_class)
    elif isinstance(stmt, ast.For | ast.AsyncFor):
        return  # the iterable is on the edges entering the loop: for_iterable_events
    elif isinstance(stmt, ast.With | ast.AsyncWith):
        for item in stmt.items:
            expr_events(item.context_expr, out, in_class)
            if item.optional_vars is not None:
                _target_events(item.optional_vars, out)
    elif isinstance(stmt, ast.Match):
        expr_events(stmt.subject, out, in_class)
        for case in stmt.cases:
            pattern_value_events(case.pattern, out, in_class)
    elif isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
        _function_header(stmt, out, in_class)
        out.append((DEF, stmt.name, stmt.lineno, stmt.col_offset))
    elif isinstance(stmt, ast.ClassDef):
        for part in [*stmt.decorator_list, *stmt.bases, *(k.value for k in stmt.keywords)]:
            expr_events(part, out, in_class)
        out.append((DEF, stmt.name, stmt.lineno, stmt.col_offset))
    elif isinstance(stmt, ast.Import | ast.ImportFrom):
        for alias in stmt.names:
            if alias.name != "*":
                bound = alias.asname or alias.name.split(".", 1)[0]
                out.append((DEF, bound, alias.lineno, alias.col_offset))
    elif isinstance(stmt, ast.Delete):
        for target in stmt.targets:
            expr_events(target, out, in_class)
    elif isinstance(stmt, ast.Global | ast.Nonlocal | ast.Try | ast.TryStar):
        return
    else:  # Expr, Return, Raise, Assert and statements without names (pass, break, ...)
        for child in child_nodes(stmt):
            if isinstance(child, ast.expr):
                expr_events(child, out, in_class)


def pattern_value_events(pattern: ast.pattern, out: list[Event], in_class: bool) -> None:
    """Uses in a case pattern's value parts (``case Color.RED``, class names, mapping keys)."""
    stack: list[ast.AST] = [pattern]
    while stack:
        cur = stack.pop()
        if isinstance(cur, ast.expr):
            expr_events(cur, out, in_class)
            continue
        children: list[ast.AST] = []
        if isinstance(cur, ast.MatchValue):
            children = [cur.value]
        elif isinstance(cur, ast.MatchClass):
            children = [cur.cls, *cur.patterns, *cur.kwd_patterns]
        elif isinstance(cur, ast.MatchMapping):
            children = [*cur.keys, *cur.patterns]
        elif isinstance(cur, ast.MatchSequence | ast.MatchOr):
            children = list(cur.patterns)
        elif isinstance(cur, ast.MatchAs) and cur.pattern is not None:
            children = [cur.pattern]
        stack.extend(reversed(children))


def case_events(case: ast.match_case, in_class: bool) -> list[Event]:
    """Events on a ``case`` edge: the pattern's captures (at the pattern), then the guard.

    The alternatives of an or-pattern bind the same names; all but the first bind with
    :data:`ALSO` so that each alternative's capture reaches the case body.
    """
    out: list[Event] = []
    # (pattern, done, also): done=True means its sub-patterns were bound, bind its own name.
    stack: list[tuple[ast.pattern, bool, bool]] = [(case.pattern, False, False)]
    while stack:
        cur, done, also = stack.pop()
        op = ALSO if also else DEF
        if done:
            bound = cur.name if isinstance(cur, ast.MatchAs) else getattr(cur, "rest", None)
            if bound is not None:
                out.append((op, bound, cur.lineno, cur.col_offset))
            continue
        children: list[ast.pattern] = []
        if isinstance(cur, ast.MatchAs):
            children = [cur.pattern] if cur.pattern is not None else []
        elif isinstance(cur, ast.MatchStar):
            if cur.name is not None:
                out.append((op, cur.name, cur.lineno, cur.col_offset))
        elif isinstance(cur, ast.MatchMapping):
            children = list(cur.patterns)
        elif isinstance(cur, ast.MatchClass):
            children = [*cur.patterns, *cur.kwd_patterns]
        elif isinstance(cur, ast.MatchSequence):
            children = list(cur.patterns)
        elif isinstance(cur, ast.MatchOr):
            stack.extend((p, False, True) for p in reversed(cur.patterns[1:]))
            children = cur.patterns[:1]
        if isinstance(cur, ast.MatchAs | ast.MatchMapping):
            stack.append((cur, True, also))
        stack.extend((child, False, also) for child in reversed(children))
    if case.guard is not None:
        expr_events(case.guard, out, in_class)
    return out


def for_iterable_events(stmt: ast.For | ast.AsyncFor, in_class: bool) -> list[Event]:
    """Events on the edges that enter a ``for`` header from outside the loop (not back-edges):
    the iterable is evaluated once, before the first iteration."""
    out: list[Event] = []
    expr_events(stmt.iter, out, in_class)
    return out


def for_target_events(stmt: ast.For | ast.AsyncFor) -> list[Event]:
    """Events on a ``for`` header's ``true`` edge: the target's definitions."""
    out: list[Event] = []
    _target_events(stmt.target, out)
    return out


def handler_events(handler: ast.ExceptHandler, in_class: bool) -> list[Event]:
    """Events on an ``exception`` edge into a handler: the type's uses, then the ``as`` name.

    The ``as`` name is defined at the handler's position (``except`` keyword); the implicit
    ``del`` at the end of the handler is not modelled.
    """
    out: list[Event] = []
    if handler.type is not None:
        expr_events(handler.type, out, in_class)
    if handler.name is not None:
        out.append((DEF, handler.name, handler.lineno, handler.col_offset))
    return out
