"""Control flow graphs (basic blocks and labelled edges) from the ``ast`` of one file.

Why: the CPG's BASIC_BLOCK nodes and CFG_NEXT edges, and the reaching-definition analysis in
:mod:`codeanatomy_assets.extract.dataflow`, need control flow without importing or executing the
code. Everything here is a pure function of the parsed tree; the construction itself lives in
:mod:`codeanatomy_assets.extract.cfg_builder`.

Owners. Every module body, class body and ``def``/``async def`` body has its own CFG, named by
``owner_qualname`` (``''`` for the module, otherwise ``__qualname__`` style: ``C.m``,
``f.<locals>.g``) and ``owner_line`` (the line of the ``def``/``class`` keyword, 0 for the
module). Lambdas have no statements and get no CFG. A nested ``def``/``class`` is one ordinary
statement of the enclosing CFG. Not modelled: a ``def`` whose name the enclosing function
declares ``global`` still gets the ``f.<locals>.g`` qualname.

Blocks. Index 0 is the empty ``entry`` block, index 1 the empty ``exit`` block, then blocks in
creation order (source order). Every statement of an owner (at any nesting depth, but not inside
nested defs/classes) is in exactly one block. A compound statement (``if``, ``while``, ``for``,
``with``, ``try``, ``match``) is the last statement of the block that evaluates its header; each
of its bodies starts a new block. Blocks are created lazily, so there are no empty blocks
besides entry and exit; a statement after ``return`` still gets a block (with no predecessors).
Block kinds: ``entry``, ``exit``, ``body`` (default), ``loop_header`` (holds exactly one
``while``/``for`` statement; target of back-edges), ``handler`` (first block of an ``except``
body), ``finally`` (first block of a ``finally`` body). A block that starts a handler or finally
body *and* is a loop header is a ``loop_header``. ``line_start`` is the first statement's line
(entry/exit: ``owner_line``); ``line_end`` the last line of the block's own text: the header of
a compound statement (up to its test/iterable/items/subject), the whole of any other statement
(a nested ``def``/``class`` included).

Edge labels (``src -> dst``), every triple unique:

- ``next``: fall-through to the next statement's block, from entry to the first block, into a
  body (``with``, ``try``), and from the end of the owner's body to exit.
- ``true`` / ``false``: an ``if``/``while`` test or a ``for`` header (``true``: another item,
  into the body; ``false``: exhausted, to ``else`` or what follows). ``while`` with a truthy
  constant test (``while True``, ``while 1``) has no ``false`` edge. ``if`` tests are never
  constant-folded. ``match``: ``false`` when no case is irrefutable (no case matched).
- ``case``: from the ``match`` block to the first block of each case body.
- ``loop``: back-edge from the end of a loop body to its header.
- ``break`` / ``continue``: from the block of the statement to the loop's exit / header.
- ``return``: a ``return`` statement to exit.
- ``raise``: an explicit ``raise`` (including a bare re-raise) that no enclosing ``try`` of the
  owner catches, to exit; also the end of a ``finally`` entered by an uncaught exception.
- ``exception``: to each ``except`` handler of the innermost enclosing ``try`` body from each
  block of that body (any statement may raise) and from an explicit ``raise`` in it; into a
  ``finally`` on an exception path; for ``try/except*``, also from the end of each handler to
  every later handler (several ``except*`` clauses may run).
- ``finally``: normal completion of a ``try`` body, ``else`` or handler into the ``finally``.
- ``with_exit``: from the end of a ``with`` body to what follows (``__exit__`` ran).

Edges that a construct redirects take the construct's label even when the redirected edge was
an ``if``'s ``false`` branch: the end of a loop body goes back with ``loop``, the end of a
``with`` body leaves with ``with_exit``, normal completion enters a ``finally`` with
``finally``. Wherever else fall-through edges are wired (to the next statement, to exit) they
keep their labels.

Exceptions. Implicit exceptions (any statement may raise) are modelled only where the owner can
observe them: each block of a ``try`` body gets ``exception`` edges to that ``try``'s handlers;
if no handler is catch-all (bare ``except:``, ``except BaseException``), the exception may also
escape to the ``try``'s ``finally`` or, lacking one, to the handlers/finally of the enclosing
``try`` (and so on outwards). Blocks of a handler or ``else`` go to their ``try``'s ``finally``.
An escape out of the owner is drawn (``raise`` to exit) only for explicit ``raise`` statements
and for a ``finally`` entered by an exception. Exceptions suppressed by a context manager's
``__exit__`` are not modelled.

``finally``. One copy of each ``finally`` body: it is entered by ``finally`` (normal),
``exception``, ``return``, ``break`` and ``continue`` edges; from the end of its body control
goes on to what follows the ``try`` (only if some normal path entered) and re-issues every kind
of abrupt exit that entered it (``return`` to exit or an outer ``finally``, ``break``/``continue``
to the loop, ``raise``/``exception`` outwards). Paths are therefore merged (sound, not exact).

Recursion: the builder recurses once per indentation level, which the tokenizer bounds (100
levels); ``elif`` chains, which nest without indentation, are walked iteratively. A
:class:`RecursionError` would still become :class:`CfgError`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass

from codeanatomy_assets.extract.cfg_builder import (
    COMPOUND,
    SCOPES,
    RawBlock,
    build_owner,
    sub_bodies,
)

__all__ = [
    "BLOCK_KINDS",
    "EDGE_LABELS",
    "BasicBlock",
    "CfgEdge",
    "CfgError",
    "FileCfg",
    "Owner",
    "file_cfg",
    "owners",
]

BLOCK_KINDS: tuple[str, ...] = ("entry", "exit", "body", "loop_header", "handler", "finally")
EDGE_LABELS: tuple[str, ...] = (
    "next",
    "true",
    "false",
    "case",
    "loop",
    "break",
    "continue",
    "return",
    "raise",
    "exception",
    "finally",
    "with_exit",
)
ENTRY_INDEX = 0
EXIT_INDEX = 1


class CfgError(ValueError):
    """The file's CFG cannot be built (e.g. pathological nesting); the caller records it."""


@dataclass(frozen=True, slots=True)
class BasicBlock:
    """A maximal straight-line run of statements inside one owner (module, class or def).

    Positions are ``ast`` positions: 1-based ``lineno``, 0-based UTF-8 byte ``col_offset``.
    """

    owner_qualname: str  # '' for the module body, else __qualname__ ('C.m', 'f.<locals>.g')
    owner_line: int  # line of the def/class keyword; 0 for the module
    index: int  # 0-based within the owner: 0 = entry, 1 = exit, then creation (source) order
    kind: str  # one of BLOCK_KINDS
    line_start: int  # 1-based line of the first statement (entry/exit: owner_line)
    line_end: int  # 1-based last line of the block's own text (inclusive)
    statements: tuple[tuple[int, int], ...]  # (lineno 1-based, col_offset 0-based bytes), in order


@dataclass(frozen=True, slots=True)
class CfgEdge:
    """A possible transfer of control between two blocks of the same owner."""

    owner_qualname: str
    owner_line: int
    src: int  # BasicBlock.index of the source block
    dst: int  # BasicBlock.index of the destination block
    label: str  # one of EDGE_LABELS


@dataclass(frozen=True, slots=True)
class FileCfg:
    """All CFGs of one file: blocks grouped by owner (module first, then source preorder)."""

    blocks: tuple[BasicBlock, ...]
    edges: tuple[CfgEdge, ...]


@dataclass(frozen=True, slots=True)
class Owner:
    """A statement list that gets its own CFG: the module, a class body or a def body."""

    qualname: str
    line: int  # 0 for the module
    node: ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef


def owners(tree: ast.Module) -> list[Owner]:
    """Every owner of the file in source preorder, module first (explicit stack, no recursion)."""
    found = [Owner("", 0, tree)]
    stack: list[tuple[Iterator[ast.stmt], str]] = [(iter(tree.body), "")]
    while stack:
        statements, prefix = stack[-1]
        stmt = next(statements, None)
        if stmt is None:
            stack.pop()
            continue
        if isinstance(stmt, SCOPES):
            qualname = prefix + stmt.name
            found.append(Owner(qualname, stmt.lineno, stmt))
            sep = "." if isinstance(stmt, ast.ClassDef) else ".<locals>."
            stack.append((iter(stmt.body), qualname + sep))
        else:
            nested = sub_bodies(stmt)
            if nested:
                stack.append((iter([s for body in nested for s in body]), prefix))
    return found


def file_cfg(tree: ast.Module) -> FileCfg:
    """Build the CFG of every owner in ``tree`` (see the module docstring for the rules).

    Returns blocks and edges grouped by owner, module first, then owners in source preorder;
    within an owner, blocks by index and edges sorted by (src, dst, label).

    Raises:
        CfgError: the tree is too deep to process (instead of a bare RecursionError).
    """
    blocks: list[BasicBlock] = []
    edges: list[CfgEdge] = []
    try:
        for owner in owners(tree):
            raw_blocks, raw_edges = build_owner(owner.node)
            blocks.extend(_block(owner, index, raw) for index, raw in enumerate(raw_blocks))
            edges.extend(
                CfgEdge(owner.qualname, owner.line, src, dst, label)
                for src, dst, label in raw_edges
            )
    except RecursionError as exc:  # pragma: no cover - the parser bounds nesting first
        raise CfgError("statement nesting too deep for CFG construction") from exc
    return FileCfg(tuple(blocks), tuple(edges))


def _block(owner: Owner, index: int, raw: RawBlock) -> BasicBlock:
    """Freeze one builder block, computing its line range from its statements."""
    kind, statements = raw
    if not statements:
        return BasicBlock(owner.qualname, owner.line, index, kind, owner.line, owner.line, ())
    return BasicBlock(
        owner_qualname=owner.qualname,
        owner_line=owner.line,
        index=index,
        kind=kind,
        line_start=statements[0].lineno,
        line_end=max(_own_end_line(stmt) for stmt in statements),
        statements=tuple((stmt.lineno, stmt.col_offset) for stmt in statements),
    )


def _own_end_line(stmt: ast.stmt) -> int:
    """Last line of the statement's own text: the header of a compound statement."""
    if type(stmt) not in COMPOUND:
        return stmt.end_lineno or stmt.lineno
    header: list[ast.AST]
    if isinstance(stmt, ast.If | ast.While):
        header = [stmt.test]
    elif isinstance(stmt, ast.For | ast.AsyncFor):
        header = [stmt.iter]
    elif isinstance(stmt, ast.With | ast.AsyncWith):
        header = [item.optional_vars or item.context_expr for item in stmt.items]
    elif isinstance(stmt, ast.Match):
        header = [stmt.subject]
    elif isinstance(stmt, ast.Try | ast.TryStar):
        return stmt.lineno
    else:
        return stmt.end_lineno or stmt.lineno
    return max(getattr(node, "end_lineno", None) or stmt.lineno for node in header)
