"""Exact CFG edge sets for tiny programs, plus structural properties on stdlib files.

Notation: an edge is ``(src, dst, label)`` where a block is written as the line of its first
statement, or ``"entry"`` / ``"exit"`` for the owner's entry and exit blocks (no fixture has two
blocks of one owner starting on the same line; the helper fails loudly if one does). Each case
lists every owner it checks by ``__qualname__`` (``""`` is the module); missing and extra edges
both fail.
"""

from __future__ import annotations

import ast
import sysconfig
import textwrap
from collections import Counter
from pathlib import Path

import pytest

from codeanatomy_assets.extract.cfg import BLOCK_KINDS, EDGE_LABELS, FileCfg, file_cfg

Node = int | str
Edge = tuple[Node, Node, str]


def _edges(cfg: FileCfg, owner: str) -> set[Edge]:
    """The owner's edges in test notation (all owners with that qualname, merged)."""
    blocks = {(b.owner_line, b.index): b for b in cfg.blocks if b.owner_qualname == owner}
    assert blocks, f"no CFG for owner {owner!r}"
    starts = Counter(
        (b.owner_line, b.line_start) for b in blocks.values() if b.kind not in ("entry", "exit")
    )
    assert max(starts.values(), default=1) == 1, f"ambiguous block lines in {owner!r}"

    def name(owner_line: int, index: int) -> Node:
        block = blocks[(owner_line, index)]
        return block.kind if block.kind in ("entry", "exit") else block.line_start

    return {
        (name(e.owner_line, e.src), name(e.owner_line, e.dst), e.label)
        for e in cfg.edges
        if e.owner_qualname == owner
    }


def _cfg(source: str) -> FileCfg:
    return file_cfg(ast.parse(textwrap.dedent(source)))


E, X = "entry", "exit"

CASES: dict[str, tuple[str, dict[str, set[Edge]]]] = {
    "straight_line": (
        """\
        def f(a):
            b = a
            c = b
            return c
        """,
        {"f": {(E, 2, "next"), (2, X, "return")}, "": {(E, 1, "next"), (1, X, "next")}},
    ),
    "if_else": (
        """\
        def f(a):
            if a:
                b = 1
            else:
                b = 2
            return b
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (2, 5, "false"), (3, 6, "next"),
               (5, 6, "next"), (6, X, "return")}},
    ),
    "if_elif_else": (
        """\
        def f(a):
            if a == 1:
                b = 1
            elif a == 2:
                b = 2
            else:
                b = 3
            return b
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (2, 4, "false"), (4, 5, "true"),
               (4, 7, "false"), (3, 8, "next"), (5, 8, "next"), (7, 8, "next"),
               (8, X, "return")}},
    ),
    "if_without_else_at_end": (
        """\
        def f(a):
            x = 1
            if a:
                x = 2
        """,
        {"f": {(E, 2, "next"), (2, 4, "true"), (2, X, "false"), (4, X, "next")}},
    ),
    "nested_if": (
        """\
        def f(a, b):
            if a:
                if b:
                    c = 1
                c = 2
            return 0
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (2, 6, "false"), (3, 4, "true"),
               (3, 5, "false"), (4, 5, "next"), (5, 6, "next"), (6, X, "return")}},
    ),
    "while": (
        """\
        def f(n):
            i = 0
            while i < n:
                i += 1
            return i
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 4, "true"), (4, 3, "loop"),
               (3, 5, "false"), (5, X, "return")}},
    ),
    "while_else": (
        """\
        def f(n):
            while n:
                n -= 1
            else:
                n = 5
            return n
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 2, "loop"), (2, 5, "false"),
               (5, 6, "next"), (6, X, "return")}},
    ),
    "while_else_break_skips_else": (
        """\
        def f(n):
            while n:
                if n > 5:
                    break
                n -= 1
            else:
                n = 0
            return n
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "true"), (3, 5, "false"),
               (4, 8, "break"), (5, 2, "loop"), (2, 7, "false"), (7, 8, "next"),
               (8, X, "return")}},
    ),
    "while_true_break": (
        """\
        def f(n):
            while True:
                if n:
                    break
                n += 1
            return n
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "true"), (3, 5, "false"),
               (4, 6, "break"), (5, 2, "loop"), (6, X, "return")}},
    ),
    "for": (
        """\
        def f(xs):
            t = 0
            for x in xs:
                t += x
            return t
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 4, "true"), (4, 3, "loop"),
               (3, 5, "false"), (5, X, "return")}},
    ),
    "for_else_break": (
        """\
        def f(xs):
            for x in xs:
                if x:
                    break
            else:
                return 0
            return 1
        """,
        # the end of the loop body (the if's false branch) goes back as 'loop'
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "true"), (3, 2, "loop"),
               (4, 7, "break"), (2, 6, "false"), (6, X, "return"), (7, X, "return")}},
    ),
    "continue": (
        """\
        def f(xs):
            for x in xs:
                if x:
                    continue
                print(x)
            return 0
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "true"), (3, 5, "false"),
               (4, 2, "continue"), (5, 2, "loop"), (2, 6, "false"), (6, X, "return")}},
    ),
    "break_in_nested_loops": (
        """\
        def f(xs):
            for x in xs:
                while x:
                    break
                y = 1
            return 0
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "true"), (3, 5, "false"),
               (4, 5, "break"), (5, 2, "loop"), (2, 6, "false"), (6, X, "return")}},
    ),
    "return_in_loop": (
        """\
        def f(xs):
            for x in xs:
                if x:
                    return x
            return None
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "true"), (3, 2, "loop"),
               (4, X, "return"), (2, 5, "false"), (5, X, "return")}},
    ),
    "unreachable_after_return": (
        """\
        def f():
            return 1
            x = 2
        """,
        {"f": {(E, 2, "next"), (2, X, "return"), (3, X, "next")}},
    ),
    "try_except": (
        """\
        def f():
            try:
                a = g()
            except ValueError:
                a = 0
            return a
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 5, "exception"), (3, 6, "next"),
               (5, 6, "next"), (6, X, "return")}},
    ),
    "try_except_as_else": (
        """\
        def f():
            try:
                a = g()
            except ValueError as e:
                return e
            else:
                a += 1
            return a
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 5, "exception"), (3, 7, "next"),
               (5, X, "return"), (7, 8, "next"), (8, X, "return")}},
    ),
    "try_except_else_finally": (
        """\
        def f():
            try:
                a = g()
            except ValueError:
                a = 0
            except KeyError:
                a = 1
            else:
                a = 2
            finally:
                h()
            return a
        """,
        # no catch-all handler: the body's exceptions may also escape into the finally;
        # handlers and else may raise into the finally; the finally re-raises to exit.
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 5, "exception"), (3, 7, "exception"),
               (3, 11, "exception"), (3, 9, "next"), (5, 11, "exception"), (5, 11, "finally"),
               (7, 11, "exception"), (7, 11, "finally"), (9, 11, "exception"),
               (9, 11, "finally"), (11, 12, "next"), (11, X, "raise"), (12, X, "return")}},
    ),
    "try_finally_return": (
        """\
        def f():
            try:
                return g()
            finally:
                h()
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 5, "exception"), (3, 5, "return"),
               (5, X, "return"), (5, X, "raise")}},
    ),
    "return_in_handler_with_finally": (
        """\
        def f():
            try:
                g()
            except ValueError:
                return 1
            finally:
                h()
            return 2
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 5, "exception"), (3, 7, "exception"),
               (3, 7, "finally"), (5, 7, "exception"), (5, 7, "return"), (7, 8, "next"),
               (7, X, "return"), (7, X, "raise"), (8, X, "return")}},
    ),
    "bare_except_is_catch_all": (
        """\
        def f():
            try:
                g()
            except:
                pass
            finally:
                h()
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 5, "exception"), (3, 7, "finally"),
               (5, 7, "exception"), (5, 7, "finally"), (7, X, "next"), (7, X, "raise")}},
    ),
    "raise_to_handler": (
        """\
        def f(a):
            try:
                if a:
                    raise ValueError
                b = 1
            except ValueError:
                b = 2
            return b
        """,
        # ValueError is not catch-all: the explicit raise may also leave the function
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 4, "true"), (3, 5, "false"),
               (3, 7, "exception"), (4, 7, "exception"), (4, X, "raise"), (5, 7, "exception"),
               (5, 8, "next"), (7, 8, "next"), (8, X, "return")}},
    ),
    "raise_outside_try": (
        """\
        def f(a):
            if a:
                raise ValueError(a)
            return a
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (2, 4, "false"), (3, X, "raise"),
               (4, X, "return")}},
    ),
    "bare_raise_in_handler": (
        """\
        def f():
            try:
                g()
            except Exception:
                log()
                raise
            return 1
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 5, "exception"), (3, 7, "next"),
               (5, X, "raise"), (7, X, "return")}},
    ),
    "nested_try_unmatched_goes_outward": (
        """\
        def f():
            try:
                try:
                    g()
                except KeyError:
                    h()
            except ValueError:
                k()
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 4, "next"), (3, 8, "exception"),
               (4, 6, "exception"), (4, 8, "exception"), (4, X, "next"), (6, 8, "exception"),
               (6, X, "next"), (8, X, "next")}},
    ),
    "break_through_finally": (
        """\
        def f(xs):
            for x in xs:
                try:
                    break
                finally:
                    g()
            return 0
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "next"), (4, 6, "break"),
               (4, 6, "exception"), (6, 7, "break"), (6, X, "raise"), (2, 7, "false"),
               (7, X, "return")}},
    ),
    "continue_through_finally": (
        """\
        def f(xs):
            while xs:
                try:
                    continue
                finally:
                    g()
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "next"), (4, 6, "continue"),
               (4, 6, "exception"), (6, 2, "continue"), (6, X, "raise"), (2, X, "false")}},
    ),
    "try_star": (
        """\
        def f():
            try:
                g()
            except* ValueError:
                a()
            except* KeyError:
                b()
            return 0
        """,
        # every matching except* clause runs: handler ends also flow to later handlers
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 5, "exception"), (3, 7, "exception"),
               (3, 8, "next"), (5, 7, "exception"), (5, 8, "next"), (7, 8, "next"),
               (8, X, "return")}},
    ),
    "with": (
        """\
        def f(p):
            with open(p) as fh:
                data = fh.read()
            return data
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 4, "with_exit"), (4, X, "return")}},
    ),
    "with_in_loop": (
        """\
        def f(xs):
            while xs:
                with g() as c:
                    c.x()
            return 0
        """,
        {"f": {(E, 2, "next"), (2, 3, "true"), (3, 4, "next"), (4, 2, "loop"),
               (2, 5, "false"), (5, X, "return")}},
    ),
    "async_with_async_for": (
        """\
        async def f(s):
            async with s as c:
                async for x in c:
                    await x
            return 0
        """,
        {"f": {(E, 2, "next"), (2, 3, "next"), (3, 4, "true"), (4, 3, "loop"),
               (3, 5, "with_exit"), (5, X, "return")}},
    ),
    "match_with_wildcard": (
        """\
        def f(v):
            match v:
                case 1:
                    r = "one"
                case [a, b]:
                    r = "pair"
                case _:
                    r = "other"
            return r
        """,
        {"f": {(E, 2, "next"), (2, 4, "case"), (2, 6, "case"), (2, 8, "case"),
               (4, 9, "next"), (6, 9, "next"), (8, 9, "next"), (9, X, "return")}},
    ),
    "match_without_wildcard": (
        """\
        def f(v):
            match v:
                case 1:
                    return 1
                case x if x > 2:
                    return x
            return 0
        """,
        {"f": {(E, 2, "next"), (2, 4, "case"), (2, 6, "case"), (2, 7, "false"),
               (4, X, "return"), (6, X, "return"), (7, X, "return")}},
    ),
    "match_capture_is_irrefutable": (
        """\
        def f(v):
            match v:
                case (1 | 2):
                    pass
                case other:
                    pass
        """,
        {"f": {(E, 2, "next"), (2, 4, "case"), (2, 6, "case"), (4, X, "next"),
               (6, X, "next")}},
    ),
    "nested_function": (
        """\
        def f(a):
            def g(b):
                return b
            return g(a)
        """,
        {"": {(E, 1, "next"), (1, X, "next")},
         "f": {(E, 2, "next"), (2, X, "return")},
         "f.<locals>.g": {(E, 3, "next"), (3, X, "return")}},
    ),
    "class_body_and_method": (
        """\
        class C:
            x = 1
            if x:
                y = 2
            def m(self):
                return self.x
        """,
        {"": {(E, 1, "next"), (1, X, "next")},
         "C": {(E, 2, "next"), (2, 4, "true"), (2, 5, "false"), (4, 5, "next"),
               (5, X, "next")},
         "C.m": {(E, 6, "next"), (6, X, "return")}},
    ),
    "class_in_function": (
        """\
        def f():
            class C:
                def m(self):
                    pass
            return C
        """,
        {"f": {(E, 2, "next"), (2, X, "return")},
         "f.<locals>.C": {(E, 3, "next"), (3, X, "next")},
         "f.<locals>.C.m": {(E, 4, "next"), (4, X, "next")}},
    ),
    "lambdas_ignored": (
        """\
        f = lambda x: x + 1
        g = [lambda: 0]
        """,
        {"": {(E, 1, "next"), (1, X, "next")}},
    ),
    "module_level": (
        """\
        import os
        if os.sep:
            A = 1
        for i in range(3):
            pass
        """,
        {"": {(E, 1, "next"), (1, 3, "true"), (1, 4, "false"), (3, 4, "next"),
              (4, 5, "true"), (5, 4, "loop"), (4, X, "false")}},
    ),
    "empty_module": ("", {"": {(E, X, "next")}}),
}  # fmt: skip

ALL_OWNERS_LISTED = {
    "nested_function",
    "class_body_and_method",
    "lambdas_ignored",
    "module_level",
    "empty_module",
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cfg_edges(case: str) -> None:
    source, expected = CASES[case]
    cfg = _cfg(source)
    for owner, edges in expected.items():
        assert _edges(cfg, owner) == edges, owner
    if case in ALL_OWNERS_LISTED:
        assert {b.owner_qualname for b in cfg.blocks} == set(expected)


def _statement_positions(tree: ast.Module) -> Counter[tuple[int, int]]:
    return Counter((n.lineno, n.col_offset) for n in ast.walk(tree) if isinstance(n, ast.stmt))


def _check_structure(tree: ast.Module) -> None:
    """Every statement in exactly one block; blocks well-formed; edges between real blocks."""
    cfg = file_cfg(tree)
    in_blocks = Counter(pos for b in cfg.blocks for pos in b.statements)
    assert in_blocks == _statement_positions(tree)
    by_owner: dict[tuple[str, int], list[int]] = {}
    for block in cfg.blocks:
        by_owner.setdefault((block.owner_qualname, block.owner_line), []).append(block.index)
        assert block.kind in BLOCK_KINDS
        assert (block.kind in ("entry", "exit")) == (not block.statements)
        assert block.line_start <= block.line_end
    for key, indexes in by_owner.items():
        assert indexes == list(range(len(indexes))), key
        kinds = [b.kind for b in cfg.blocks if (b.owner_qualname, b.owner_line) == key]
        assert kinds[:2] == ["entry", "exit"]
    seen: set[tuple[str, int, int, int, str]] = set()
    for edge in cfg.edges:
        size = len(by_owner[(edge.owner_qualname, edge.owner_line)])
        assert 0 <= edge.src < size and 0 <= edge.dst < size
        assert edge.label in EDGE_LABELS
        assert edge.src != 1, "exit has no successors"
        assert edge.dst != 0, "entry has no predecessors"
        edge_key = (edge.owner_qualname, edge.owner_line, edge.src, edge.dst, edge.label)
        assert edge_key not in seen
        seen.add(edge_key)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_statement_in_exactly_one_block(case: str) -> None:
    _check_structure(ast.parse(textwrap.dedent(CASES[case][0])))


def test_block_fields_of_a_small_function() -> None:
    cfg = _cfg(
        """\
        def f(a):
            x = 1
            while (a and
                   x):
                x = 2
        """
    )
    blocks = [b for b in cfg.blocks if b.owner_qualname == "f"]
    summary = [(b.index, b.kind, b.line_start, b.line_end, b.statements) for b in blocks]
    assert summary == [
        (0, "entry", 1, 1, ()),
        (1, "exit", 1, 1, ()),
        (2, "body", 2, 2, ((2, 4),)),
        (3, "loop_header", 3, 4, ((3, 4),)),
        (4, "body", 5, 5, ((5, 8),)),
    ]
    assert {b.owner_line for b in blocks} == {1}


def test_handler_and_finally_kinds() -> None:
    cfg = _cfg(
        """\
        try:
            a()
        except E:
            b()
        finally:
            c()
        """
    )
    assert [(b.kind, b.line_start) for b in cfg.blocks] == [
        ("entry", 0), ("exit", 0), ("body", 1), ("body", 2), ("handler", 4), ("finally", 6),
    ]  # fmt: skip


def test_long_elif_chain_does_not_recurse() -> None:
    """``elif`` chains nest without indentation, so the parser accepts them ~2000 deep."""
    arms = "".join(f"elif x == {i}:\n    y = {i}\n" for i in range(1, 1500))
    tree = ast.parse("if x == 0:\n    y = 0\n" + arms)
    cfg = file_cfg(tree)
    assert len(cfg.blocks) == 2 + 2 * 1500
    assert sum(e.label == "false" for e in cfg.edges) == 1500
    _check_structure(tree)


def test_deepest_indentation_is_fine() -> None:
    source = "".join("    " * i + f"if x{i}:\n" for i in range(98)) + "    " * 98 + "pass\n"
    tree = ast.parse(source)
    assert len(file_cfg(tree).blocks) == 2 + 99
    _check_structure(tree)


def test_deeply_nested_expression_is_fine() -> None:
    tree = ast.parse("x = " + "(" * 150 + "1" + ")" * 150)
    assert len(file_cfg(tree).blocks) == 3


STDLIB = Path(sysconfig.get_paths()["stdlib"])
STDLIB_FILES = ["argparse.py", "ast.py", "asyncio/base_events.py", "tarfile.py", "typing.py"]


@pytest.mark.parametrize("relative", STDLIB_FILES)
def test_stdlib_structure(relative: str) -> None:
    path = STDLIB / relative
    if not path.exists():
        pytest.skip(f"{path} not present")
    _check_structure(ast.parse(path.read_bytes()))
