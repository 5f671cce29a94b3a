"""Construction of one owner's CFG from its statements (rules: :mod:`.cfg` docstring).

Why a separate module: :mod:`.cfg` holds the public value types and the documented semantics;
this module holds the mutable, private builder. Blocks are created lazily: the builder keeps
either an *open* block that accepts straight-line statements, or a list of *pending* edges
``(src, label)`` that are wired to whichever block the next statement creates. ``try`` and loop
contexts are kept on an explicit stack so that ``return``/``break``/``continue``/``raise`` find
their targets (and any ``finally`` on the way) without recursion.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field

__all__ = ["COMPOUND", "SCOPES", "RawBlock", "RawEdge", "build_owner", "sub_bodies"]

SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
# Statements with nested statement lists of the same owner.
COMPOUND = frozenset(
    {ast.If, ast.For, ast.AsyncFor, ast.While, ast.With, ast.AsyncWith, ast.Try, ast.TryStar,
     ast.Match}
)  # fmt: skip
ENTRY = 0
EXIT = 1
# (kind, statements): a block as the builder leaves it.
RawBlock = tuple[str, list[ast.stmt]]
RawEdge = tuple[int, int, str]
Pending = list[tuple[int, str]]
_ABRUPT_ORDER = ("return", "break", "continue")
_CONTROL = COMPOUND | {ast.Return, ast.Break, ast.Continue, ast.Raise}


def sub_bodies(stmt: ast.stmt) -> list[list[ast.stmt]]:
    """The statement lists nested in a compound statement of the same owner (empty if none)."""
    kind = type(stmt)
    if kind not in COMPOUND:
        return []
    if kind is ast.If or kind is ast.For or kind is ast.While or kind is ast.AsyncFor:
        return [stmt.body, stmt.orelse]  # type: ignore[attr-defined]
    if kind is ast.With or kind is ast.AsyncWith:
        return [stmt.body]  # type: ignore[attr-defined]
    if isinstance(stmt, ast.Try | ast.TryStar):
        return [stmt.body, *(h.body for h in stmt.handlers), stmt.orelse, stmt.finalbody]
    if isinstance(stmt, ast.Match):
        return [case.body for case in stmt.cases]
    return []


@dataclass(slots=True)
class _Loop:
    """An enclosing loop: where ``continue`` goes and which edges ``break`` produced."""

    header: int
    breaks: Pending = field(default_factory=list)


@dataclass(slots=True)
class _Try:
    """An enclosing ``try`` while its body, handlers or ``else`` are being built."""

    has_handlers: bool
    catch_all: bool
    has_finally: bool
    phase: str = "body"  # 'body' | 'other' (handlers and else)
    raisers: list[int] = field(default_factory=list)  # blocks whose exceptions reach handlers
    finally_raisers: list[int] = field(default_factory=list)  # ... that reach the finally
    abrupt: Pending = field(default_factory=list)  # return/break/continue into the finally
    kinds: set[str] = field(default_factory=set)  # abrupt kinds that entered the finally


def _is_catch_all(handler: ast.ExceptHandler) -> bool:
    """Whether the handler catches everything (bare ``except:`` or ``BaseException``)."""
    kind = handler.type
    return kind is None or (isinstance(kind, ast.Name) and kind.id == "BaseException")


def _irrefutable(pattern: ast.pattern) -> bool:
    """Whether a ``case`` pattern always matches (wildcard, capture, or an or-pattern of one)."""
    if isinstance(pattern, ast.MatchAs):
        return pattern.pattern is None or _irrefutable(pattern.pattern)
    if isinstance(pattern, ast.MatchOr):
        return any(_irrefutable(p) for p in pattern.patterns)
    return False


def _truthy_constant(test: ast.expr) -> bool:
    """Whether a loop test is a constant that is always true (``while True``, ``while 1``)."""
    return isinstance(test, ast.Constant) and bool(test.value)


class _Builder:
    """Mutable state for one owner; use :func:`build_owner`."""

    def __init__(self) -> None:
        self.blocks: list[RawBlock] = [("entry", []), ("exit", [])]
        self.edges: list[RawEdge] = []
        self.cur: int | None = None
        self.pending: Pending = [(ENTRY, "next")]
        self.stack: list[_Loop | _Try] = []
        self.next_kind = "body"

    # -- blocks and flow --------------------------------------------------------------
    def new_block(self, kind: str, pending: Pending) -> int:
        """Create a block, wire ``pending`` into it, register it for implicit exceptions."""
        index = len(self.blocks)
        self.blocks.append((kind, []))
        self.edges.extend((src, index, label) for src, label in pending)
        if any(isinstance(ctx, _Try) for ctx in self.stack):
            self.raise_from([index], explicit=False)
        return index

    def open_block(self) -> int:
        """The block that accepts the next straight-line statement (created if needed)."""
        if self.cur is None:
            self.cur = self.new_block(self.next_kind, self.pending)
            self.pending = []
            self.next_kind = "body"
        return self.cur

    def append(self, stmt: ast.stmt) -> int:
        """Append ``stmt`` to the open block and return the block's index."""
        index = self.open_block()
        self.blocks[index][1].append(stmt)
        return index

    def flow(self) -> Pending:
        """Take the current fall-through as pending edges, leaving no open block."""
        out = [(self.cur, "next")] if self.cur is not None else self.pending
        self.cur = None
        self.pending = []
        return out

    def body(self, statements: list[ast.stmt], pending: Pending, kind: str = "body") -> Pending:
        """Build a statement list entered by ``pending``; return its fall-through edges."""
        self.cur = None
        self.pending = pending
        self.next_kind = kind
        for stmt in statements:
            self.statement(stmt)
        self.next_kind = "body"
        return self.flow()

    def wire(self, pending: Pending, dst: int, label: str | None = None) -> None:
        """Add edges from pending sources to ``dst``, relabelled when ``label`` is given."""
        self.edges.extend((src, dst, label or own) for src, own in pending)

    # -- abrupt exits ------------------------------------------------------------------
    def jump(self, sources: list[int], kind: str) -> None:
        """Route a ``return``/``break``/``continue`` through any ``finally`` to its target."""
        for ctx in reversed(self.stack):
            if isinstance(ctx, _Try):
                if ctx.has_finally:
                    ctx.abrupt.extend((src, kind) for src in sources)
                    ctx.kinds.add(kind)
                    return
            elif kind == "break":
                ctx.breaks.extend((src, "break") for src in sources)
                return
            elif kind == "continue":
                self.edges.extend((src, ctx.header, "continue") for src in sources)
                return
        if kind == "return":
            self.edges.extend((src, EXIT, "return") for src in sources)

    def raise_from(self, sources: list[int], *, explicit: bool) -> None:
        """Route an exception raised in ``sources`` to handlers, a ``finally`` or exit."""
        for ctx in reversed(self.stack):
            if not isinstance(ctx, _Try):
                continue
            if ctx.phase == "body" and ctx.has_handlers:
                ctx.raisers.extend(sources)
                if ctx.catch_all:
                    return
            if ctx.has_finally:
                ctx.finally_raisers.extend(sources)
                ctx.kinds.add("exception")
                return
        if explicit:
            self.edges.extend((src, EXIT, "raise") for src in sources)

    # -- statements --------------------------------------------------------------------
    def statement(self, stmt: ast.stmt) -> None:
        """Add one statement (and, for compound statements, their bodies)."""
        if type(stmt) not in _CONTROL:
            self.append(stmt)
        elif isinstance(stmt, ast.If):
            self.if_(stmt)
        elif isinstance(stmt, ast.While | ast.For | ast.AsyncFor):
            self.loop(stmt)
        elif isinstance(stmt, ast.Try | ast.TryStar):
            self.try_(stmt)
        elif isinstance(stmt, ast.With | ast.AsyncWith):
            index = self.append(stmt)
            self.cur = None
            self.pending = [
                (src, "with_exit") for src, _ in self.body(stmt.body, [(index, "next")])
            ]
        elif isinstance(stmt, ast.Match):
            self.match(stmt)
        elif isinstance(stmt, ast.Return | ast.Break | ast.Continue):
            index = self.append(stmt)
            kind = {ast.Return: "return", ast.Break: "break", ast.Continue: "continue"}
            self.jump([index], kind[type(stmt)])
            self.cur = None
        elif isinstance(stmt, ast.Raise):
            self.raise_from([self.append(stmt)], explicit=True)
            self.cur = None
        else:
            self.append(stmt)

    def if_(self, stmt: ast.If) -> None:
        """An ``if`` and its ``elif`` chain, iteratively: the parser does not bound ``elif``
        chains (they nest in ``orelse`` without indentation), so recursion could overflow."""
        out: Pending = []
        while True:
            index = self.append(stmt)
            out += self.body(stmt.body, [(index, "true")])
            orelse = stmt.orelse
            if len(orelse) == 1 and isinstance(orelse[0], ast.If):
                self.pending = [(index, "false")]
                stmt = orelse[0]
                continue
            if orelse:
                out += self.body(orelse, [(index, "false")])
            else:
                out.append((index, "false"))
            break
        self.pending = out

    def loop(self, stmt: ast.While | ast.For | ast.AsyncFor) -> None:
        header = self.new_block("loop_header", self.flow())
        self.blocks[header][1].append(stmt)
        self.next_kind = "body"
        ctx = _Loop(header)
        self.stack.append(ctx)
        self.wire(self.body(stmt.body, [(header, "true")]), header, "loop")
        self.stack.pop()
        infinite = isinstance(stmt, ast.While) and _truthy_constant(stmt.test)
        exhausted: Pending = [] if infinite else [(header, "false")]
        out = self.body(stmt.orelse, exhausted) if stmt.orelse else exhausted
        self.pending = out + ctx.breaks

    def match(self, stmt: ast.Match) -> None:
        index = self.append(stmt)
        out: Pending = []
        for case in stmt.cases:
            out.extend(self.body(case.body, [(index, "case")]))
        if not any(case.guard is None and _irrefutable(case.pattern) for case in stmt.cases):
            out.append((index, "false"))
        self.pending = out

    def try_(self, stmt: ast.Try | ast.TryStar) -> None:
        index = self.append(stmt)
        ctx = _Try(
            has_handlers=bool(stmt.handlers),
            catch_all=any(_is_catch_all(h) for h in stmt.handlers),
            has_finally=bool(stmt.finalbody),
        )
        self.stack.append(ctx)
        body_end = self.body(stmt.body, [(index, "next")])
        ctx.phase = "other"
        handler_ends: Pending = []
        star = isinstance(stmt, ast.TryStar)
        for handler in stmt.handlers:
            entry: Pending = [(src, "exception") for src in dict.fromkeys(ctx.raisers)]
            if star:  # every matching except* clause runs, in order
                entry += [(src, "exception") for src, _ in handler_ends]
            handler_ends += self.body(handler.body, entry, "handler")
        else_end = self.body(stmt.orelse, body_end) if stmt.orelse else body_end
        self.stack.pop()
        normal = else_end + handler_ends
        if not stmt.finalbody:
            self.pending = normal
            return
        entry = [(src, "finally") for src, _ in normal]
        entry += [(src, "exception") for src in dict.fromkeys(ctx.finally_raisers)]
        entry += ctx.abrupt
        final_end = self.body(stmt.finalbody, entry, "finally")
        sources = list(dict.fromkeys(src for src, _ in final_end))
        for kind in _ABRUPT_ORDER:
            if kind in ctx.kinds:
                self.jump(sources, kind)
        if "exception" in ctx.kinds:
            self.raise_from(sources, explicit=True)
        self.pending = final_end if normal else []


def build_owner(
    node: ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef,
) -> tuple[list[RawBlock], list[RawEdge]]:
    """Build the CFG of one owner's body: blocks by index and unique edges, sorted."""
    builder = _Builder()
    builder.wire(builder.body(node.body, builder.pending), EXIT)
    return builder.blocks, sorted(set(builder.edges))
