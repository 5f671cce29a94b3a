"""Exact reaching-definition sets for tiny programs.

Notation: ``(name, def_line, use_line)`` triples over every owner of the fixture; missing and
extra triples both fail. A few tests also pin owners and columns.
"""

from __future__ import annotations

import ast
import sysconfig
import textwrap
from pathlib import Path

import pytest

from codeanatomy_assets.extract.cfg import file_cfg
from codeanatomy_assets.extract.dataflow import (
    ReachingDef,
    SkippedOwner,
    reaching_defs,
    reaching_defs_report,
)

Triple = tuple[str, int, int]


def _defs(source: str) -> tuple[ReachingDef, ...]:
    return reaching_defs(ast.parse(textwrap.dedent(source)))


CASES: dict[str, tuple[str, set[Triple]]] = {
    "redefinition_kills": (
        """\
        def f():
            x = 1
            x = 2
            return x
        """,
        {("x", 3, 4)},
    ),
    "branches_merge": (
        """\
        def f(a):
            if a:
                x = 1
            else:
                x = 2
            return x
        """,
        {("a", 1, 2), ("x", 3, 6), ("x", 5, 6)},
    ),
    "loop_carries_defs_around_back_edge": (
        """\
        def f(n):
            i = 0
            while i < n:
                i = i + 1
            return i
        """,
        {("n", 1, 3), ("i", 2, 3), ("i", 4, 3), ("i", 2, 4), ("i", 4, 4), ("i", 2, 5),
         ("i", 4, 5)},
    ),
    "augmented_assign_uses_and_defines": (
        """\
        def f():
            s = 0
            s += 1
            return s
        """,
        {("s", 2, 3), ("s", 3, 4)},
    ),
    "augmented_subscript": (
        """\
        def f(d, k):
            d[k] += 1
            return d
        """,
        {("d", 1, 2), ("k", 1, 2), ("d", 1, 3)},
    ),
    "tuple_unpacking": (
        """\
        def f(p):
            a, (b, *c) = p
            return a, b, c
        """,
        {("p", 1, 2), ("a", 2, 3), ("b", 2, 3), ("c", 2, 3)},
    ),
    "parameters_reach_uses": (
        """\
        def f(a, /, b, *args, c=1, **kw):
            return a, b, args, c, kw
        """,
        {("a", 1, 2), ("b", 1, 2), ("args", 1, 2), ("c", 1, 2), ("kw", 1, 2)},
    ),
    "del_kills": (
        """\
        def f(a):
            x = 1
            if a:
                del x
            return x
        """,
        {("a", 1, 3), ("x", 2, 5)},
    ),
    "global_and_nonlocal_excluded": (
        """\
        def f():
            global g
            g = 1
            y = 0
            def h():
                nonlocal y
                y = 2
                return y
            return g, y, h
        """,
        {("y", 4, 9), ("h", 5, 9)},
    ),
    "comprehension_scope": (
        """\
        def f(xs, k):
            x = 0
            ys = [x * k for x in xs if x]
            return ys, x
        """,
        {("xs", 1, 3), ("k", 1, 3), ("ys", 3, 4), ("x", 2, 4)},
    ),
    "comprehension_in_class_body": (
        """\
        class C:
            a = 1
            b = [a for _ in range(3)]
            c = [i for i in range(a)]
            d = a
        """,
        {("a", 2, 4), ("a", 2, 5)},
    ),
    "walrus": (
        """\
        def f(data):
            if (n := len(data)) > 3:
                return n
            total = [(m := x) for x in data]
            return n, m, total
        """,
        {("data", 1, 2), ("n", 2, 3), ("data", 1, 4), ("n", 2, 5), ("m", 4, 5),
         ("total", 4, 5)},
    ),
    "with_as": (
        """\
        def f(p):
            with open(p) as fh:
                return fh.read()
        """,
        {("p", 1, 2), ("fh", 2, 3)},
    ),
    "except_as": (
        """\
        def f():
            try:
                v = g()
            except ValueError as e:
                v = e
            return v
        """,
        {("e", 4, 5), ("v", 3, 6), ("v", 5, 6)},
    ),
    "try_finally_sees_defs_from_exception_paths": (
        """\
        def f():
            x = 0
            try:
                x = 1
                g()
                x = 2
            finally:
                print(x)
        """,
        {("x", 2, 8), ("x", 4, 8), ("x", 6, 8)},
    ),
    "imports": (
        """\
        import os.path
        from collections import OrderedDict as OD, deque
        def f():
            return os, OD, deque
        x = os.sep
        """,
        {("os", 1, 5)},
    ),
    "def_and_class_names": (
        """\
        def g():
            return 1
        class K:
            pass
        r = g(), K
        """,
        {("g", 1, 5), ("K", 3, 5)},
    ),
    "for_target": (
        """\
        def f(xs):
            x = None
            for x in xs:
                print(x)
            return x
        """,
        {("xs", 1, 3), ("x", 3, 4), ("x", 2, 5), ("x", 3, 5)},
    ),
    "for_iterable_is_evaluated_once": (
        """\
        def f(xs):
            for x in xs:
                xs = x
            return xs
        """,
        {("xs", 1, 2), ("x", 2, 3), ("xs", 1, 4), ("xs", 3, 4)},
    ),
    "handler_and_case_bodies_starting_with_a_loop": (
        """\
        def f(v):
            try:
                g()
            except ValueError as e:
                for x in e.args:
                    print(x)
            match v:
                case [*items]:
                    for y in items:
                        print(y)
        """,
        {("e", 4, 5), ("x", 5, 6), ("v", 1, 7), ("items", 8, 9), ("y", 9, 10)},
    ),
    "match_captures_and_guard": (
        """\
        def f(v, lim):
            match v:
                case [a, *rest] if a > lim:
                    return rest
                case {"k": b, **kw}:
                    return b, kw
                case Point(x=c) as p:
                    return c, p
        """,
        {("v", 1, 2), ("lim", 1, 3), ("a", 3, 3), ("rest", 3, 4), ("b", 5, 6),
         ("kw", 5, 6), ("c", 7, 8), ("p", 7, 8)},
    ),
    "match_or_pattern_alternatives_all_reach": (
        """\
        def f(v):
            match v:
                case [x] | (
                        {"k": x}):
                    return x
        """,
        {("v", 1, 2), ("x", 3, 5), ("x", 4, 5)},
    ),
    "module_level_global_is_a_no_op": (
        """\
        global a
        a = 1
        b = a
        """,
        {("a", 2, 3)},
    ),
    "lambda_body_ignored_default_used": (
        """\
        def f(a):
            g = lambda x=a: (
                x + a)
            return g
        """,
        {("a", 1, 2), ("g", 2, 4)},
    ),
    "annotated_assignment": (
        """\
        def f():
            x: int = 1
            y: int
            return x, y
        """,
        {("x", 2, 4)},
    ),
    "module_annotation_is_a_use": (
        """\
        T = int
        v: T = 3
        w = v
        """,
        {("T", 1, 2), ("v", 2, 3)},
    ),
    "nested_function_free_variable_is_not_a_use": (
        """\
        def f():
            z = 1
            def g():
                return z
            return g
        """,
        {("g", 3, 5)},
    ),
    "break_carries_defs_out_of_loop": (
        """\
        def f(xs):
            r = None
            for x in xs:
                if x:
                    r = x
                    break
            return r
        """,
        {("xs", 1, 3), ("x", 3, 4), ("x", 3, 5), ("r", 2, 7), ("r", 5, 7)},
    ),
    "decorator_and_default_uses": (
        """\
        def f(deco, d):
            @deco
            def g(a=d):
                return a
            return g
        """,
        {("deco", 1, 2), ("d", 1, 3), ("g", 3, 5), ("a", 3, 4)},  # g is defined at its def line
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_reaching_defs(case: str) -> None:
    source, expected = CASES[case]
    assert {(r.name, r.def_line, r.use_line) for r in _defs(source)} == expected


def test_positions_and_owners() -> None:
    found = _defs(
        """\
        import os
        class C:
            def m(self, n):
                n += os.sep
                return n
        """
    )
    # os is not local to C.m (a module global): no edge for it there
    assert set(found) == {
        ReachingDef("C.m", 3, "n", 3, 16, 4, 8),
        ReachingDef("C.m", 3, "n", 4, 8, 5, 15),
    }


def test_decorated_def_position_is_the_def_keyword() -> None:
    found = _defs(
        """\
        @staticmethod
        def g():
            pass
        h = g
        """
    )
    assert found == (ReachingDef("", 0, "g", 2, 0, 4, 4),)


def test_long_elif_chain() -> None:
    arms = "".join(f"    elif x == {i}:\n        y = {i}\n" for i in range(1, 1500))
    source = "def f(x):\n    if x == 0:\n        y = 0\n" + arms + "    return y\n"
    found = reaching_defs(ast.parse(source))
    assert sum(r.name == "y" for r in found) == 1500
    assert sum(r.name == "x" for r in found) == 1500


def test_cfg_argument_is_used() -> None:
    tree = ast.parse("x = 1\ny = x\n")
    assert reaching_defs(tree, file_cfg(tree)) == reaching_defs(tree)


def test_max_blocks_skips_and_reports() -> None:
    tree = ast.parse(
        textwrap.dedent(
            """\
            def small(a):
                return a
            def big(a):
                if a:
                    a = 1
                return a
            """
        )
    )
    report = reaching_defs_report(tree, max_blocks=3)
    assert report.skipped == (SkippedOwner("big", 3, 5),)
    assert {(r.owner_qualname, r.name) for r in report.defs} == {("small", "a")}
    assert reaching_defs_report(tree).skipped == ()


STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.mark.parametrize("relative", ["argparse.py", "asyncio/base_events.py", "tarfile.py"])
def test_stdlib_uses_are_name_loads(relative: str) -> None:
    path = STDLIB / relative
    if not path.exists():
        pytest.skip(f"{path} not present")
    tree = ast.parse(path.read_bytes())
    loads = {
        (n.lineno, n.col_offset, n.id)
        for n in ast.walk(tree)
        if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    found = reaching_defs(tree)
    assert found
    augmented = {
        (n.target.lineno, n.target.col_offset, n.target.id)
        for n in ast.walk(tree)
        if isinstance(n, ast.AugAssign) and isinstance(n.target, ast.Name)
    }
    for record in found:
        assert (record.use_line, record.use_col, record.name) in loads | augmented
