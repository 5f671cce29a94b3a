"""``child_nodes`` is ``ast.iter_child_nodes`` as a list: same children, same order."""

from __future__ import annotations

import ast

from codeanatomy_assets.extract.syntax import child_nodes

SOURCE = """
@deco(1)
async def f(a, /, b: int = 2, *args, c, **kw) -> "T":
    global g
    x = [y async for y in z if y] or {k: v for k, v in w}
    match x:
        case [1, *rest] | {"k": _, **more} if rest:
            pass
    try:
        return f"{x!r:>{b}}"
    except* (E, F) as e:
        del x[1:2, ...]
"""


def test_every_node_has_the_children_ast_gives_it():
    nodes = list(ast.walk(ast.parse(SOURCE)))
    assert len(nodes) > 80
    for node in nodes:
        assert child_nodes(node) == list(ast.iter_child_nodes(node))
