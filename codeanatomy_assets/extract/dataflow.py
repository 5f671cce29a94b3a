"""Reaching definitions on the CFG of each owner (module, class or def body) of one file.

Why: REACHING_DEF edges link each definition of a local variable to each use it may reach,
within one owner, computed on the CFG of :mod:`codeanatomy_assets.extract.cfg` without
importing or executing the code. What counts as a definition or use, and where, is decided in
:mod:`codeanatomy_assets.extract.dataflow_events`.

Semantics:

- A may-analysis: a definition reaches a use if some CFG path from it to the use has no other
  definition (or ``del``) of the name. Parameters are defined at the entry block.
- Edges can carry events: the edges entering a ``for`` loop (all but ``loop``/``continue``
  back-edges) evaluate the iterable; a ``for`` header's ``true`` edge defines the target; a ``case``
  edge defines the pattern's captures and evaluates the guard; an ``exception`` edge into a
  handler evaluates the exception type and defines the ``as`` name. An ``exception`` edge
  leaves its block from any point, so what it carries is the block's input plus every
  definition made inside the block.
- Names declared ``global`` or ``nonlocal`` anywhere in a def or class body are not local: they
  get no reaching-definition edges in that owner (a module-level ``global`` changes nothing).
  Uses of names with no definition in the owner (builtins, globals, free variables) get none.
- Not modelled: the implicit ``del`` of an ``except ... as`` name at the end of its handler.

Algorithm: per owner, definitions are numbered and sets of them are Python ``int`` bitsets; an
iterative worklist (no recursion) solves IN/OUT per block to a fixpoint; uses are then resolved
by replaying each block's (and each edge's) events from its input set. Owners with more blocks
than an optional ``max_blocks`` are skipped and reported by :func:`reaching_defs_report`.
"""

from __future__ import annotations

import ast
from collections import deque
from dataclasses import dataclass

from codeanatomy_assets.extract.cfg import BasicBlock, CfgEdge, FileCfg, Owner, file_cfg
from codeanatomy_assets.extract.cfg_builder import COMPOUND, SCOPES, sub_bodies
from codeanatomy_assets.extract.dataflow_events import (
    ALSO,
    DEF,
    USE,
    Event,
    case_events,
    for_iterable_events,
    for_target_events,
    handler_events,
    parameter_events,
    stmt_events,
)

__all__ = [
    "ReachingDef",
    "ReachingDefsReport",
    "SkippedOwner",
    "reaching_defs",
    "reaching_defs_report",
]


@dataclass(frozen=True, slots=True)
class ReachingDef:
    """A definition of ``name`` that may reach a load of ``name`` in the same owner.

    Positions are ``ast`` positions: 1-based line, 0-based UTF-8 byte column. The definition's
    position is that of: the ``Name`` target (assignments, ``for``, ``with ... as``, walrus,
    ``del`` kills only), the ``arg`` node (parameters), the import ``alias``, the
    ``def``/``class`` keyword, the ``except`` keyword (``except ... as``), or the pattern node
    (``case`` captures). An augmented assignment's use and definition share the target position.
    """

    owner_qualname: str  # as BasicBlock.owner_qualname ('' for the module)
    owner_line: int  # as BasicBlock.owner_line (0 for the module)
    name: str
    def_line: int  # the defining node: Name target, arg, import alias, def/class statement, ...
    def_col: int
    use_line: int  # the Name load
    use_col: int


@dataclass(frozen=True, slots=True)
class SkippedOwner:
    """An owner left out because its CFG exceeded the caller's ``max_blocks``."""

    owner_qualname: str
    owner_line: int
    blocks: int


@dataclass(frozen=True, slots=True)
class ReachingDefsReport:
    """Reaching definitions of a file and the owners skipped for size (empty without a cap)."""

    defs: tuple[ReachingDef, ...]
    skipped: tuple[SkippedOwner, ...]


def reaching_defs(tree: ast.Module, cfg: FileCfg | None = None) -> tuple[ReachingDef, ...]:
    """All reaching definitions of ``tree`` (every owner, no size cap), sorted by owner line,
    owner, use position, definition position and name. ``cfg`` must be ``file_cfg(tree)``; it is
    computed when not given."""
    return reaching_defs_report(tree, cfg).defs


def reaching_defs_report(
    tree: ast.Module, cfg: FileCfg | None = None, *, max_blocks: int | None = None
) -> ReachingDefsReport:
    """Reaching definitions, skipping (and listing) owners with more than ``max_blocks`` blocks.

    Why a cap exists at all: the fixpoint costs roughly blocks x definitions; callers that must
    bound time per file can set one and record what was skipped. ``None`` means no cap.
    """
    if cfg is None:
        cfg = file_cfg(tree)
    index = _TreeIndex(tree)
    blocks: dict[tuple[str, int], list[BasicBlock]] = {}
    edges: dict[tuple[str, int], list[CfgEdge]] = {}
    for block in cfg.blocks:
        blocks.setdefault((block.owner_qualname, block.owner_line), []).append(block)
    for edge in cfg.edges:
        edges.setdefault((edge.owner_qualname, edge.owner_line), []).append(edge)
    found: list[ReachingDef] = []
    skipped: list[SkippedOwner] = []
    for key, owner_blocks in blocks.items():
        if max_blocks is not None and len(owner_blocks) > max_blocks:
            skipped.append(SkippedOwner(key[0], key[1], len(owner_blocks)))
            continue
        owner_blocks.sort(key=lambda b: b.index)  # edges address blocks by index
        owner = Owner(key[0], key[1], index.scopes[key[1]] if key[1] else tree)
        found.extend(_owner_defs(owner, owner_blocks, edges.get(key, []), index))
    found.sort(key=lambda r: (r.owner_line, r.owner_qualname, r.use_line, r.use_col,
                              r.def_line, r.def_col, r.name))  # fmt: skip
    return ReachingDefsReport(tuple(found), tuple(skipped))


class _TreeIndex:
    """Statement positions -> nodes, for mapping a :class:`FileCfg` back onto the tree."""

    def __init__(self, tree: ast.Module) -> None:
        self.scopes: dict[int, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef] = {}
        self.stmts: dict[tuple[int, int], ast.stmt] = {}
        self.handlers: dict[tuple[int, int], ast.ExceptHandler] = {}
        self.cases: dict[tuple[int, int], ast.match_case] = {}
        stack: list[ast.stmt] = list(tree.body)
        while stack:
            stmt = stack.pop()
            self.stmts[(stmt.lineno, stmt.col_offset)] = stmt
            if type(stmt) not in COMPOUND:
                if isinstance(stmt, SCOPES):
                    self.scopes[stmt.lineno] = stmt  # one def/class per line, by the grammar
                    stack.extend(stmt.body)
                continue
            for body in sub_bodies(stmt):
                stack.extend(body)
            if isinstance(stmt, ast.Try | ast.TryStar):
                for handler in stmt.handlers:
                    first = handler.body[0]
                    self.handlers[(first.lineno, first.col_offset)] = handler
            elif isinstance(stmt, ast.Match):
                for case in stmt.cases:
                    first = case.body[0]
                    self.cases[(first.lineno, first.col_offset)] = case


def _edge_events(
    edge: CfgEdge, blocks: list[BasicBlock], index: _TreeIndex, in_class: bool
) -> list[Event]:
    """Events an edge carries (``for`` iterable/target, ``case`` captures/guard, handler)."""
    label = edge.label
    dst = blocks[edge.dst].statements
    events: list[Event] = []
    if label == "exception":
        handler = index.handlers.get(dst[0]) if dst else None
        if handler is not None:
            events += handler_events(handler, in_class)
    elif label == "case":
        case = index.cases.get(dst[0]) if dst else None
        if case is not None:
            events += case_events(case, in_class)
    elif label == "true":
        src = blocks[edge.src].statements
        last = index.stmts[src[-1]] if src else None
        if isinstance(last, ast.For | ast.AsyncFor):
            events += for_target_events(last)
    if blocks[edge.dst].kind == "loop_header" and label not in ("loop", "continue"):
        header = index.stmts[dst[0]]
        if isinstance(header, ast.For | ast.AsyncFor):
            events += for_iterable_events(header, in_class)
    return events


def _owner_defs(
    owner: Owner, blocks: list[BasicBlock], edges: list[CfgEdge], index: _TreeIndex
) -> list[ReachingDef]:
    """Solve reaching definitions for one owner and resolve every use."""
    node = None if isinstance(owner.node, ast.Module) else owner.node
    in_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    in_class = isinstance(node, ast.ClassDef)
    nonlocal_names: set[str] = set()
    block_events: list[list[Event]] = []
    for block in blocks:
        events: list[Event] = []
        for position in block.statements:
            stmt = index.stmts[position]
            if isinstance(stmt, ast.Global | ast.Nonlocal) and node is not None:
                nonlocal_names.update(stmt.names)  # a module-level ``global`` is a no-op
            stmt_events(stmt, events, in_function, in_class)
        block_events.append(events)
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        block_events[0] = parameter_events(node)
    edge_events = [_edge_events(edge, blocks, index, in_class) for edge in edges]
    if nonlocal_names:
        block_events = [[e for e in ev if e[1] not in nonlocal_names] for ev in block_events]
        edge_events = [[e for e in ev if e[1] not in nonlocal_names] for ev in edge_events]
    return _Solver(owner, block_events, edges, edge_events).solve()


class _Solver:
    """Bitset worklist solver for one owner (definitions numbered in event order)."""

    def __init__(
        self,
        owner: Owner,
        block_events: list[list[Event]],
        edges: list[CfgEdge],
        edge_events: list[list[Event]],
    ) -> None:
        self.owner = owner
        self.defs: list[tuple[str, int, int]] = []
        self.def_ids: dict[tuple[str, int, int], int] = {}
        self.masks: dict[str, int] = {}
        for events in [*block_events, *edge_events]:
            for op, name, line, col in events:
                if op in (DEF, ALSO) and (name, line, col) not in self.def_ids:
                    self.def_ids[(name, line, col)] = len(self.defs)
                    self.masks[name] = self.masks.get(name, 0) | (1 << len(self.defs))
                    self.defs.append((name, line, col))
        self.block_events = block_events
        self.edges = edges
        self.edge_events = edge_events
        self.block_gen = [self.transfer(ev) for ev in block_events]
        self.edge_gen = [self.transfer(ev) for ev in edge_events]
        self.gen_all = [self.all_defs(ev) for ev in block_events]

    def transfer(self, events: list[Event]) -> tuple[int, int]:
        """(gen, kill) bitsets of an event sequence."""
        gen = kill = 0
        masks = self.masks
        for op, name, line, col in events:
            if op == USE:
                continue
            if op == ALSO:  # adds a definition; the name's earlier kill stands
                gen |= 1 << self.def_ids[(name, line, col)]
                continue
            mask = masks.get(name, 0)
            gen &= ~mask
            kill |= mask
            if op == DEF:
                gen |= 1 << self.def_ids[(name, line, col)]
        return gen, kill

    def all_defs(self, events: list[Event]) -> int:
        """Every definition made anywhere in an event sequence (for exception edges)."""
        bits = 0
        for op, name, line, col in events:
            if op in (DEF, ALSO):
                bits |= 1 << self.def_ids[(name, line, col)]
        return bits

    def edge_input(self, position: int, ins: list[int], outs: list[int]) -> int:
        """What an edge delivers to its destination, given the solution so far."""
        edge = self.edges[position]
        if edge.label == "exception":
            base = ins[edge.src] | self.gen_all[edge.src]
        else:
            base = outs[edge.src]
        gen, kill = self.edge_gen[position]
        return (base & ~kill) | gen

    def solve(self) -> list[ReachingDef]:
        """Run the worklist to a fixpoint, then resolve the uses of blocks and edges."""
        count = len(self.block_events)
        preds: list[list[int]] = [[] for _ in range(count)]
        succs: list[list[int]] = [[] for _ in range(count)]
        for position, edge in enumerate(self.edges):
            preds[edge.dst].append(position)
            succs[edge.src].append(edge.dst)
        ins = [0] * count
        outs = [0] * count
        outs[0] = self.block_gen[0][0]
        work = deque(range(1, count))
        queued = [True] * count
        queued[0] = False
        while work:
            block = work.popleft()
            queued[block] = False
            new_in = 0
            for position in preds[block]:
                new_in |= self.edge_input(position, ins, outs)
            gen, kill = self.block_gen[block]
            new_out = (new_in & ~kill) | gen
            changed = new_in != ins[block] or new_out != outs[block]
            ins[block] = new_in
            outs[block] = new_out
            if changed:
                for succ in succs[block]:
                    if not queued[succ]:
                        queued[succ] = True
                        work.append(succ)
        found: set[tuple[str, int, int, int, int]] = set()
        for block, events in enumerate(self.block_events):
            self.replay(events, ins[block], found)
        for position, edge in enumerate(self.edges):
            events = self.edge_events[position]
            if events:
                edge_in = ins[edge.src] | self.gen_all[edge.src]
                base = edge_in if edge.label == "exception" else outs[edge.src]
                self.replay(events, base, found)
        qualname, line = self.owner.qualname, self.owner.line
        return [ReachingDef(qualname, line, *record) for record in found]

    def replay(
        self, events: list[Event], state: int, found: set[tuple[str, int, int, int, int]]
    ) -> None:
        """Walk events from ``state``, recording which definitions reach each use."""
        masks = self.masks
        defs = self.defs
        for op, name, line, col in events:
            mask = masks.get(name, 0)
            if op == USE:
                reaching = state & mask
                while reaching:
                    low = reaching & -reaching
                    _, def_line, def_col = defs[low.bit_length() - 1]
                    found.add((name, def_line, def_col, line, col))
                    reaching ^= low
            elif op == ALSO:
                state |= 1 << self.def_ids[(name, line, col)]
            else:
                state &= ~mask
                if op == DEF:
                    state |= 1 << self.def_ids[(name, line, col)]
